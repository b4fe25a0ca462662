"""softmax and log_softmax over one dim, by log-sum-exp (no overflow for any input).

softmax      y_i = e^(x_i - m) / sum_k e^(x_k - m),  m = max_k x_k
             dy_i/dx_j = y_i (1[i=j] - y_j)   =>  gx = y * (gy - sum(gy * y))
log_softmax  y_i = x_i - m - log sum_k e^(x_k - m)
             dy_i/dx_j = 1[i=j] - softmax_j    =>  gx = gy - softmax(x) * sum(gy)
"""

from __future__ import annotations

import numpy as np

from deltaprop.ops.dual import exp as dual_exp
from deltaprop.ops.shape import normalize_dim
from deltaprop.tensor import Function, Tensor


class Softmax(Function):
    """y = softmax(x) along ``dim``.  gx = y * (gy - sum_dim(gy * y))."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def forward(self, x):
        e = np.exp(x - x.max(axis=self.dim, keepdims=True))
        e /= e.sum(axis=self.dim, keepdims=True)
        return e

    def backward(self, gy):
        y = self.saved_output()
        return (y * (gy - (gy * y).sum(axis=self.dim, keepdims=True)),)


class LogSoftmax(Function):
    """y = log_softmax(x) along ``dim``.  gx = gy - exp(y) * sum_dim(gy)."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def forward(self, x):
        z = x - x.max(axis=self.dim, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=self.dim, keepdims=True))

    def backward(self, gy):
        y = self.saved_output()
        return (gy - dual_exp(y) * gy.sum(axis=self.dim, keepdims=True),)


def _check(x: Tensor, dim: int | None, op: str) -> int:
    if dim is None:
        raise TypeError(f"{op}: dim must be given (e.g. dim=-1 for the last axis)")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating point tensor, got dtype {x.dtype}")
    return normalize_dim(dim, x.ndim, op)


def softmax(x: Tensor, dim: int | None = None) -> Tensor:
    """Softmax along ``dim``: positive values that sum to 1."""
    return Softmax(_check(x, dim, "softmax")).apply(x)


def log_softmax(x: Tensor, dim: int | None = None) -> Tensor:
    """log(softmax(x)) along ``dim``, computed without overflow or log(0)."""
    return LogSoftmax(_check(x, dim, "log_softmax")).apply(x)
