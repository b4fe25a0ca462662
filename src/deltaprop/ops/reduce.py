"""Reductions over dims. ``dim``/``keepdim`` (PyTorch) or ``axis``/``keepdims`` (NumPy).

sum     y = sum x            dy/dx_i = 1                 gx = gy broadcast back
mean    y = sum x / N        dy/dx_i = 1/N               gx = gy / N broadcast back
max     y = max x            the max gate: gy goes to the maximal element (ties: see below)
var     y = sum (x-m)^2/(N-c) dy/dx_i = 2 (x_i - m)/(N-c)
std     y = sqrt(var)        dy/dx_i = (x_i - m) / ((N-c) y)
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable
from typing import Any

import numpy as np

from deltaprop.errors import DTypeError
from deltaprop.ops.dual import broadcast_to
from deltaprop.ops.shape import normalize_dim
from deltaprop.tensor import Function, Tensor, _make

max_result = namedtuple("max", ["values", "indices"])
min_result = namedtuple("min", ["values", "indices"])


def _axes(x: Tensor, op: str, dim: Any, axis: Any) -> tuple[int, ...] | None:
    if dim is not None and axis is not None:
        raise TypeError(f"{op}: pass either dim or axis, not both")
    d = dim if dim is not None else axis
    if d is None:
        return None
    ds = tuple(d) if isinstance(d, (tuple, list)) else (d,)
    axes = tuple(sorted({normalize_dim(i, x.ndim, op) for i in ds}))
    if x.ndim == 0:
        return ()
    return axes


def _keep(keepdim: bool, keepdims: Any) -> bool:
    return bool(keepdims) if keepdims is not None else bool(keepdim)


def _kept_shape(shape: tuple[int, ...], axes: tuple[int, ...] | None) -> tuple[int, ...]:
    """The output shape with reduced axes kept as size 1."""
    if axes is None:
        return (1,) * len(shape)
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


def _reduced_shape(shape: tuple[int, ...], axes: tuple[int, ...] | None) -> tuple[int, ...]:
    """The output shape with reduced axes dropped."""
    if axes is None:
        return ()
    return tuple(s for i, s in enumerate(shape) if i not in axes)


def _count(shape: tuple[int, ...], axes: tuple[int, ...] | None) -> int:
    if axes is None:
        return int(np.prod(shape)) if shape else 1
    return int(np.prod([shape[i] for i in axes])) if axes else 1


class SumFunction(Function):
    """y = sum of x over axes.  dy/dx_i = 1: gx = gy broadcast back to x's shape."""

    def __init__(self, axes: tuple[int, ...] | None, keepdims: bool) -> None:
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        shape = self.inputs[0].shape
        if not self.keepdims:
            gy = gy.reshape(_kept_shape(shape, self.axes))
        return (broadcast_to(gy, shape),)


class MeanFunction(Function):
    """y = sum of x over axes / N.  dy/dx_i = 1/N."""

    def __init__(self, axes: tuple[int, ...] | None, keepdims: bool) -> None:
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        self.n = _count(x.shape, self.axes)
        return x.mean(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        shape = self.inputs[0].shape
        if not self.keepdims:
            gy = gy.reshape(_kept_shape(shape, self.axes))
        return (broadcast_to(gy / self.n, shape),)


class MaxMinFunction(Function):
    """y = max (or min) of x over axes.

    The max gate routes the whole upstream gradient to the maximal element. Which element, where
    several tie: with ``dim`` given (``x.max(dim)``) the one whose index is returned (the first);
    for a full reduction or ``amax`` it is shared equally among all tying elements (as PyTorch).
    """

    def __init__(self, axes: tuple[int, ...] | None, keepdims: bool, is_max: bool,
                 index_dim: int | None = None) -> None:  # fmt: skip
        self.axes, self.keepdims, self.is_max, self.index_dim = axes, keepdims, is_max, index_dim

    def forward(self, x):
        f = np.max if self.is_max else np.min
        y = f(x, axis=self.axes, keepdims=True)
        if self.index_dim is not None:  # route to the returned index (first occurrence)
            arg = (np.argmax if self.is_max else np.argmin)(x, axis=self.index_dim, keepdims=True)
            mask = np.zeros(x.shape, dtype=x.dtype)
            np.put_along_axis(mask, arg, 1, axis=self.index_dim)
            self.indices = arg
        else:  # share among ties
            hit = x == y
            mask = hit / hit.sum(axis=self.axes, keepdims=True).astype(x.dtype)
            mask = mask.astype(x.dtype, copy=False)
        self.mask = mask
        return y if self.keepdims else y.reshape(_reduced_shape(x.shape, self.axes))

    def backward(self, gy):
        shape = self.inputs[0].shape
        if not self.keepdims:
            gy = gy.reshape(_kept_shape(shape, self.axes))
        return (gy * self.mask,)


class _MomentFunction(Function):
    """What var and std share: the reduced axes, keepdims and the correction (ddof), the
    forward through NumPy's ``statistic`` and, for backward, the centred input ``x - mean``."""

    statistic: Callable[..., np.ndarray]  # np.var or np.std

    def __init__(self, axes: tuple[int, ...] | None, keepdims: bool, correction: float) -> None:
        self.axes, self.keepdims, self.correction = axes, keepdims, correction

    def forward(self, x):
        self.n = _count(x.shape, self.axes)
        return self.statistic(x, axis=self.axes, keepdims=self.keepdims, ddof=self.correction)

    def _kept(self, g: Any) -> Any:
        """``g`` (shaped like the output) with the reduced axes kept as size 1."""
        return g if self.keepdims else g.reshape(_kept_shape(self.inputs[0].shape, self.axes))

    def _centred(self) -> Any:
        (x,) = self.saved_inputs()
        return x - x.mean(axis=self.axes, keepdims=True)


class VarFunction(_MomentFunction):
    """y = sum (x - mean)^2 / (N - correction).  dy/dx_i = 2 (x_i - mean) / (N - correction)."""

    statistic = staticmethod(np.var)

    def backward(self, gy):
        gy, xc = self._kept(gy), self._centred()
        dof = self.n - self.correction
        if dof == 0:  # no degrees of freedom: NaN, as torch (without NumPy's warning)
            with np.errstate(invalid="ignore"):
                return (gy * xc * float("inf"),)
        return (gy * xc * (2.0 / dof),)


class StdFunction(_MomentFunction):
    """y = sqrt(var).  dy/dx_i = (x_i - mean) / ((N - correction) y)."""

    statistic = staticmethod(np.std)

    def backward(self, gy):
        gy, y, xc = self._kept(gy), self._kept(self.saved_output()), self._centred()
        return (gy * xc / (y * (self.n - self.correction)),)


# ----------------------------------------------------------------------------------------------
# functions
# ----------------------------------------------------------------------------------------------


def sum(x: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None,
        keepdims: Any = None) -> Tensor:  # fmt: skip
    """Sum over ``dim`` (all elements by default)."""
    return SumFunction(_axes(x, "sum", dim, axis), _keep(keepdim, keepdims)).apply(x)


def mean(x: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None,
         keepdims: Any = None) -> Tensor:  # fmt: skip
    """Mean over ``dim`` (all elements by default)."""
    if x.dtype.kind != "f":
        raise DTypeError(
            f"mean: could not infer the output dtype: expected a floating point tensor, got "
            f"dtype {x.dtype} (convert it with .float())"
        )
    return MeanFunction(_axes(x, "mean", dim, axis), _keep(keepdim, keepdims)).apply(x)


def _max_min(x: Tensor, dim: Any, keepdim: bool, axis: Any, keepdims: Any, is_max: bool) -> Any:
    op = "max" if is_max else "min"
    if x.data.size == 0:
        raise ValueError(f"{op}: expected a non-empty tensor, got shape {x.shape}")
    d = dim if dim is not None else axis
    keep = _keep(keepdim, keepdims)
    if d is None:
        return MaxMinFunction(None, keep, is_max).apply(x)
    if isinstance(d, (tuple, list)):  # numpy-style multi-axis: values only
        return MaxMinFunction(_axes(x, op, d, None), keep, is_max).apply(x)
    ax = normalize_dim(d, x.ndim, op)
    fn = MaxMinFunction((ax,), keep, is_max, index_dim=ax)
    values = fn.apply(x)
    idx = fn.indices if keep else np.squeeze(fn.indices, axis=ax)
    result = max_result if is_max else min_result
    return result(values, _make(idx.astype(np.int64)))


def max(x: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None,
        keepdims: Any = None) -> Any:  # fmt: skip
    """Maximum: a scalar tensor, or with ``dim`` the named tuple ``(values, indices)``."""
    return _max_min(x, dim, keepdim, axis, keepdims, True)


def min(x: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None,
        keepdims: Any = None) -> Any:  # fmt: skip
    """Minimum: a scalar tensor, or with ``dim`` the named tuple ``(values, indices)``."""
    return _max_min(x, dim, keepdim, axis, keepdims, False)


def amax(x: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """Maximum values over ``dim``; the gradient is shared equally among ties."""
    return MaxMinFunction(_axes(x, "amax", dim, None), keepdim, True).apply(x)


def amin(x: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    return MaxMinFunction(_axes(x, "amin", dim, None), keepdim, False).apply(x)


def _correction(unbiased: Any, correction: Any) -> float:
    if correction is not None:
        return float(correction)
    if unbiased is not None:
        return 1.0 if unbiased else 0.0
    return 1.0


def var(x: Tensor, dim: Any = None, keepdim: bool = False, *, unbiased: Any = None,
        correction: Any = None, axis: Any = None, keepdims: Any = None) -> Tensor:  # fmt: skip
    """Variance, unbiased by default (``correction=1``; ``unbiased=False`` gives 0)."""
    if isinstance(dim, bool):  # torch's var(x, unbiased) positional form
        unbiased, dim = dim, None
    c = _correction(unbiased, correction)
    return VarFunction(_axes(x, "var", dim, axis), _keep(keepdim, keepdims), c).apply(x)


def std(x: Tensor, dim: Any = None, keepdim: bool = False, *, unbiased: Any = None,
        correction: Any = None, axis: Any = None, keepdims: Any = None) -> Tensor:  # fmt: skip
    """Standard deviation, unbiased by default."""
    if isinstance(dim, bool):
        unbiased, dim = dim, None
    c = _correction(unbiased, correction)
    return StdFunction(_axes(x, "std", dim, axis), _keep(keepdim, keepdims), c).apply(x)


def argmax(x: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    if dim is None:
        return _make(np.asarray(np.argmax(x.data), dtype=np.int64))
    d = normalize_dim(dim, x.ndim, "argmax")
    return _make(np.argmax(x.data, axis=d, keepdims=keepdim).astype(np.int64))


def argmin(x: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    if dim is None:
        return _make(np.asarray(np.argmin(x.data), dtype=np.int64))
    d = normalize_dim(dim, x.ndim, "argmin")
    return _make(np.argmin(x.data, axis=d, keepdims=keepdim).astype(np.int64))
