"""The fully connected (affine) layer ``y = x W^T + b`` as one fused op.

Shapes: ``x (..., in)``, ``W (out, in)``, ``b (out,)`` give ``y (..., out)``. With the batch dims
flattened, ``X (M, in)`` and the upstream gradient ``gY (M, out)``:

    gX = gY W              (M, out) @ (out, in)
    gW = gY^T X            (out, M) @ (M, in)
    gb = sum_rows gY       (out,)

In the notation of the backprop notes, row m of ``gY`` holds the error terms ``delta_j`` of sample
m, so ``gW[j, i] = sum_m delta_j o_i`` and ``gb[j] = sum_m delta_j``; ``gX = gY W`` is how the
deltas flow back through the same weights that carried the activations forward.
"""

from __future__ import annotations

import functools

import numpy as np

from deltaprop.errors import ShapeError
from deltaprop.ops.common import as_tensor, check_float, check_same_dtype
from deltaprop.tensor import Function, Tensor


@functools.lru_cache(maxsize=64)
def _ones(n: int, dtype: np.dtype) -> np.ndarray:
    ones = np.ones(n, dtype)
    ones.flags.writeable = False
    return ones


def column_sums(g: np.ndarray) -> np.ndarray:
    """``g.sum(axis=0)`` of a 2-D float array as one BLAS product ``ones(M) @ g``.

    NumPy reduces over the first axis row by row, with a fixed cost per row that dominates for
    the narrow gradients of small layers (a (100, 16) gradient: ~7 µs against ~0.7 µs here); the
    product adds the same numbers in BLAS's order instead (a float sum, equally accurate).

    >>> column_sums(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    array([ 9., 12.])
    """
    if g.dtype not in (np.float32, np.float64):
        return g.sum(axis=0)
    return np.dot(_ones(g.shape[0], g.dtype), g)


class LinearFunction(Function):
    """y = x W^T + b.  gx = gy W,  gW = gy^T x,  gb = sum_rows gy  (batch dims flattened).

    Inputs are ``(x, W)`` or ``(x, W, b)``. The backward formula uses only ``@``, ``.T``,
    ``reshape`` and ``sum``, so it also runs on Tensors (double backward needs no twin).
    """

    def forward(self, x, w, b=None):
        x2 = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])
        # np.dot of 2-D arrays makes matmul's BLAS call (same numbers) with less overhead; BLAS
        # reads the transposed weight in place: no copy
        y = np.dot(x2, w.T)
        if b is not None:
            y += b
        return y if x.ndim == 2 else y.reshape(x.shape[:-1] + (w.shape[0],))

    def backward(self, gy):
        xs = self.saved_inputs()
        x, w = xs[0], xs[1]
        n_out, n_in = w.shape
        g2 = gy if gy.ndim == 2 else gy.reshape((-1, n_out))
        arrays = type(g2) is np.ndarray  # else Tensors: the backward is being recorded
        gx = gw = gb = None
        if self.needs_grad[0]:
            gx = np.dot(g2, w) if arrays else g2 @ w
            if x.ndim != 2:
                gx = gx.reshape(x.shape)
        if self.needs_grad[1]:
            x2 = x if x.ndim == 2 else x.reshape((-1, n_in))
            gw = np.dot(g2.T, x2) if arrays else g2.T @ x2
        if len(xs) == 3 and self.needs_grad[2]:
            gb = column_sums(g2) if arrays else g2.sum(axis=0)
        return (gx, gw) if len(xs) == 2 else (gx, gw, gb)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Affine map ``y = x W^T + b`` over the last dim, as ``torch.nn.functional.linear``.

    ``x`` is ``(..., in_features)``, ``weight`` ``(out_features, in_features)``, ``bias``
    ``(out_features,)`` or None; the result is ``(..., out_features)``.

    >>> import deltaprop as dp
    >>> from deltaprop.nn import functional as F
    >>> x = dp.tensor([[1.0, 2.0]])
    >>> w = dp.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, -1.0]])
    >>> F.linear(x, w, dp.tensor([0.5, 0.0, 0.0]))
    tensor([[ 1.5,  3. , -2. ]])
    """
    if type(x) is Tensor and isinstance(weight, Tensor) and isinstance(bias, Tensor):
        xd, wd, bd = x.data, weight.data, bias.data  # fast path: the checks below, inlined
        if (
            xd.ndim == 2
            and wd.ndim == 2
            and xd.shape[1] == wd.shape[1]
            and bd.shape == (wd.shape[0],)
            and xd.dtype == wd.dtype == bd.dtype
            and xd.dtype.kind == "f"
        ):
            return LinearFunction().apply(x, weight, bias)
    x, weight = as_tensor(x), as_tensor(weight)
    check_float("linear", "input", x)
    check_float("linear", "weight", weight)
    if weight.ndim != 2:
        raise ShapeError(
            f"linear: weight must be 2-D (out_features, in_features), got shape {weight.shape}"
        )
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ShapeError(
            f"linear: expected input with last dimension {weight.shape[1]}, got shape {x.shape}: "
            f"input shape {x.shape} and weight shape {weight.shape} cannot be multiplied "
            "(weight is (out_features, in_features))"
        )
    check_same_dtype("linear", x, "weight", weight)
    if bias is None:
        return LinearFunction().apply(x, weight)
    bias = as_tensor(bias)
    if bias.shape != (weight.shape[0],):
        raise ShapeError(
            f"linear: bias shape {bias.shape} does not match out_features: expected "
            f"({weight.shape[0]},) for weight shape {weight.shape}"
        )
    check_same_dtype("linear", x, "bias", bias)
    return LinearFunction().apply(x, weight, bias)


__all__ = ["linear", "LinearFunction"]
