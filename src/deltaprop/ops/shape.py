"""Shape ops: they move or select elements, so their backward moves the gradient back.

reshape/view/flatten/squeeze/unsqueeze   backward: reshape gy to the input shape
permute/transpose                        backward: the inverse permutation of gy
expand (broadcast)                       backward: sum gy over the broadcast axes
x[index]                                 backward: scatter gy into zeros (repeats accumulate)
cat / stack                              backward: slice gy into the pieces
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deltaprop.errors import DimError
from deltaprop.ops.common import as_tensor
from deltaprop.ops.dual import permute as dual_permute
from deltaprop.ops.dual import scatter_add, selects_once, sum_to
from deltaprop.tensor import Function, Tensor


def normalize_dim(dim: Any, ndim: int, op: str) -> int:
    """``dim`` as a non-negative int, or a clear error naming the op and the valid range."""
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{op}: dim must be an int, got {type(dim).__name__}")
    lo, hi = (-ndim, ndim - 1) if ndim > 0 else (-1, 0)
    if not lo <= dim <= hi:
        raise DimError(
            f"{op}: dimension out of range (expected to be in range of [{lo}, {hi}], but got {dim})"
        )
    return int(dim) % max(ndim, 1)


def _shape_arg(op: str, shape: tuple) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for s in shape:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"{op}: shape entries must be ints, got {shape!r}")
    return tuple(int(s) for s in shape)


class ReshapeFunction(Function):
    """y = x with a new shape (same elements in the same order).  gx = gy reshaped back."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def forward(self, x):
        return x.reshape(self.shape)

    def backward(self, gy):
        return (gy.reshape(self.inputs[0].shape),)


class PermuteFunction(Function):
    """y = x with its axes reordered.  gx = gy with the inverse order."""

    def __init__(self, axes: tuple[int, ...]) -> None:
        self.axes = axes

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, gy):
        return (dual_permute(gy, tuple(np.argsort(self.axes))),)


class ExpandFunction(Function):
    """y = x broadcast to a larger shape.  gx = gy summed over the broadcast axes."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def forward(self, x):
        return np.broadcast_to(x, self.shape)

    def backward(self, gy):
        return (sum_to(gy, self.inputs[0].shape),)


class GetItemFunction(Function):
    """y = x[index].  gx = zeros with gy added at index (repeated integer indices accumulate)."""

    def __init__(self, index: Any) -> None:
        self.index = index

    def forward(self, x):
        return x[self.index]

    def backward(self, gy):
        x = self.inputs[0]
        return (scatter_add(x.shape, self.index, gy, x.dtype),)


class IndexAddFunction(Function):
    """y = zeros(shape) with x added at index (getitem's backward, recorded).  gx = gy[index]."""

    def __init__(self, shape: tuple[int, ...], index: Any) -> None:
        self.shape, self.index = shape, index

    def forward(self, x):
        out = np.zeros(self.shape, dtype=x.dtype)
        if selects_once(self.index):
            out[self.index] = x
        else:
            np.add.at(out, self.index, x)
        return out

    def backward(self, gy):
        return (gy[self.index],)


class CatFunction(Function):
    """y = the inputs joined along ``dim``.  Each input's gradient is its slice of gy."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def forward(self, *xs):
        return np.concatenate(xs, axis=self.dim)

    def backward(self, gy):
        grads, start = [], 0
        lead = (slice(None),) * self.dim
        for t, need in zip(self.inputs, self.needs_grad):
            stop = start + t.shape[self.dim]
            grads.append(gy[lead + (slice(start, stop),)] if need else None)
            start = stop
        return tuple(grads)


class StackFunction(Function):
    """y = the inputs stacked along a new axis ``dim``.  Input i's gradient is gy[..., i, ...]."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def forward(self, *xs):
        return np.stack(xs, axis=self.dim)

    def backward(self, gy):
        lead = (slice(None),) * self.dim
        return tuple(gy[lead + (i,)] if need else None for i, need in enumerate(self.needs_grad))


# ----------------------------------------------------------------------------------------------
# functions
# ----------------------------------------------------------------------------------------------


def reshape(x: Tensor, *shape: Any) -> Tensor:
    shape = _shape_arg("reshape", shape)
    if shape == x.shape:
        return ReshapeFunction(shape).apply(x) if x.requires_grad else x
    n_unknown = sum(1 for s in shape if s == -1)
    known = int(np.prod([s for s in shape if s != -1])) if shape else 1
    if (
        n_unknown > 1
        or any(s < -1 for s in shape)
        or (n_unknown == 0 and known != x.data.size)
        or (n_unknown == 1 and (known == 0 or x.data.size % known))
    ):
        raise ValueError(
            f"reshape: shape {shape} is invalid for a tensor of shape {x.shape} "
            f"({x.data.size} elements)"
        )
    return ReshapeFunction(shape).apply(x)


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    if x.ndim == 0:
        return reshape(x, 1)
    s = normalize_dim(start_dim, x.ndim, "flatten")
    e = normalize_dim(end_dim, x.ndim, "flatten")
    if s > e:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    shape = x.shape[:s] + (int(np.prod(x.shape[s : e + 1])),) + x.shape[e + 1 :]
    return ReshapeFunction(shape).apply(x)


def permute(x: Tensor, *dims: Any) -> Tensor:
    dims = _shape_arg("permute", dims)
    if len(dims) != x.ndim:
        raise ValueError(
            f"permute: number of dims {len(dims)} does not match the tensor's {x.ndim} "
            f"dimensions (shape {x.shape})"
        )
    axes = tuple(normalize_dim(d, x.ndim, "permute") for d in dims)
    if len(set(axes)) != len(axes):
        raise ValueError(f"permute: repeated dim in {dims}")
    return PermuteFunction(axes).apply(x)


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    d0 = normalize_dim(dim0, x.ndim, "transpose")
    d1 = normalize_dim(dim1, x.ndim, "transpose")
    axes = list(range(x.ndim))
    axes[d0], axes[d1] = axes[d1], axes[d0]
    return PermuteFunction(tuple(axes)).apply(x)


def unsqueeze(x: Tensor, dim: int) -> Tensor:
    d = normalize_dim(dim, x.ndim + 1, "unsqueeze")
    return ReshapeFunction(x.shape[:d] + (1,) + x.shape[d:]).apply(x)


def squeeze(x: Tensor, dim: Any = None) -> Tensor:
    if dim is None:
        shape = tuple(s for s in x.shape if s != 1)
    else:
        dims = dim if isinstance(dim, (tuple, list)) else (dim,)
        ds = {normalize_dim(d, x.ndim, "squeeze") for d in dims}
        shape = tuple(s for i, s in enumerate(x.shape) if not (i in ds and s == 1))
    return ReshapeFunction(shape).apply(x)


def expand(x: Tensor, *sizes: Any) -> Tensor:
    sizes = _shape_arg("expand", sizes)
    if len(sizes) < x.ndim:
        raise ValueError(
            f"expand: the number of sizes {len(sizes)} must be >= the tensor's dimensions "
            f"{x.ndim} (shape {x.shape})"
        )
    lead = len(sizes) - x.ndim
    shape = []
    for i, s in enumerate(sizes):
        old = x.shape[i - lead] if i >= lead else None
        if s == -1:
            if old is None:
                raise ValueError(f"expand: -1 is not allowed for a new leading dimension ({sizes})")
            s = old
        if old is not None and old != 1 and old != s:
            raise ValueError(
                f"expand: the expanded size {s} must match the existing size {old} at "
                f"dimension {i} (tensor shape {x.shape}, sizes {sizes})"
            )
        shape.append(s)
    shape = tuple(shape)
    if shape == x.shape:
        return x
    return ExpandFunction(shape).apply(x)


def to_numpy_index(index: Any) -> Any:
    """Turn Tensor / list parts of an index into NumPy arrays."""
    if isinstance(index, tuple):
        return tuple(_index_part(i) for i in index)
    return _index_part(index)


def _index_part(i: Any) -> Any:
    if isinstance(i, Tensor):
        i = i.data
    elif isinstance(i, list):
        i = np.asarray(i)
    if isinstance(i, np.ndarray):
        if i.dtype.kind not in "biu":
            raise TypeError(
                f"getitem: tensors used as indices must be integer or bool, got dtype {i.dtype}"
            )
        if i.ndim == 0 and i.dtype.kind != "b":
            return int(i)
    elif i is not None and i is not Ellipsis and not isinstance(i, (int, np.integer, slice)):
        raise TypeError(
            f"getitem: unsupported index {i!r} of type {type(i).__name__}; use ints, slices, "
            "None, Ellipsis, integer arrays or boolean masks"
        )
    return i


def split_int_index(index: Any) -> tuple[tuple, tuple] | None:
    """PyTorch's rule for an index mixing ints and arrays, as two NumPy indices, or None.

    PyTorch applies an int index as basic indexing (it selects and removes its dim) before the
    advanced (array) indices, so an int never separates them: in ``x[1, :, idx]`` the dims of
    ``idx`` stay where ``idx`` is. NumPy counts the int as an advanced index, which moves the
    advanced dims to the front. ``x[first][second]`` gives PyTorch's result: ``first`` holds the
    ints (every other part a full slice, a basic index: a view), ``second`` the rest.
    """
    if not isinstance(index, tuple):
        return None
    has_int = has_array = False
    for i in index:
        if isinstance(i, (int, np.integer)) and not isinstance(i, bool):
            has_int = True
        elif isinstance(i, np.ndarray):
            has_array = True
    if not (has_int and has_array):
        return None
    first: list[Any] = []
    second: list[Any] = []
    for i in index:
        if isinstance(i, (int, np.integer)) and not isinstance(i, bool):
            first.append(i)
        elif i is None:
            second.append(i)
        elif i is Ellipsis:
            first.append(i)
            second.append(i)
        else:
            # a bool mask covers as many dims as it has
            n = i.ndim if isinstance(i, np.ndarray) and i.dtype.kind == "b" else 1
            first.extend([slice(None)] * n)
            second.append(i)
    return tuple(first), tuple(second)


def getitem(x: Tensor, index: Any) -> Tensor:
    """``x[index]`` with PyTorch's semantics (NumPy's, except ints mixed with arrays)."""
    index = to_numpy_index(index)
    try:
        split = split_int_index(index)
        if split is not None:
            return GetItemFunction(split[1]).apply(GetItemFunction(split[0]).apply(x))
        return GetItemFunction(index).apply(x)
    except IndexError as e:
        raise IndexError(f"getitem: {e} (tensor shape {x.shape})") from None


def setitem(data: np.ndarray, index: Any, value: Any) -> None:
    """``data[index] = value`` in place, with the index rule of :func:`getitem`."""
    index = to_numpy_index(index)
    split = split_int_index(index)
    if split is not None:
        data[split[0]][split[1]] = value  # data[first] is a view: the write reaches data
    else:
        data[index] = value


def _tensors(op: str, tensors: Any) -> list[Tensor]:
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{op}: expected a list or tuple of tensors, got {type(tensors).__name__}")
    if not tensors:
        raise ValueError(f"{op}: expected a non-empty list of tensors")

    return [as_tensor(t) for t in tensors]


def cat(tensors: Any, dim: int = 0) -> Tensor:
    ts = _tensors("cat", tensors)
    d = normalize_dim(dim, ts[0].ndim, "cat")
    for i, t in enumerate(ts):
        if (
            t.ndim != ts[0].ndim
            or t.shape[:d] + t.shape[d + 1 :] != ts[0].shape[:d] + ts[0].shape[d + 1 :]
        ):
            raise ValueError(
                f"cat: sizes must match except in dimension {d}, but tensor 0 has shape "
                f"{ts[0].shape} and tensor {i} has shape {t.shape}"
            )
    return CatFunction(d).apply(*ts)


def stack(tensors: Any, dim: int = 0) -> Tensor:
    ts = _tensors("stack", tensors)
    d = normalize_dim(dim, ts[0].ndim + 1, "stack")
    for i, t in enumerate(ts):
        if t.shape != ts[0].shape:
            raise ValueError(
                f"stack: all tensors must have the same shape, but tensor 0 has shape "
                f"{ts[0].shape} and tensor {i} has shape {t.shape}"
            )
    return StackFunction(d).apply(*ts)


__all__ = ["DimError", "normalize_dim", "reshape", "flatten", "permute", "transpose", "unsqueeze",
           "squeeze", "expand", "getitem", "cat", "stack"]  # fmt: skip
