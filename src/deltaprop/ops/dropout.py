"""Inverted dropout: zero each element with probability p, scale the kept ones by 1 / (1 - p).

    y = x * m,   m_i = 1/(1-p) with probability 1-p, else 0   (m drawn once per forward)
    dy/dx = m    (the same mask: a dropped unit passes no gradient back)

Scaling at training time keeps ``E[y] = x``, so evaluation is the identity. The mask comes from
``deltaprop.random.default_generator()``: ``dp.manual_seed`` makes it reproducible.
"""

from __future__ import annotations

import numpy as np

from deltaprop.ops.common import as_tensor, check_float
from deltaprop.random import default_generator
from deltaprop.tensor import Function, Tensor


class DropoutFunction(Function):
    """y = x * mask.  gx = gy * mask  (``mask`` holds 0 or 1/(1-p), in the input's dtype).

    The mask is drawn in ``forward`` (from the global generator), so every run of the op --
    eager, or replayed by ``deltaprop.compile`` -- draws anew.
    """

    def __init__(self, p: float) -> None:
        self.p = p

    def forward(self, x):
        self.mask = dropout_mask(x.shape, self.p, x.dtype)
        return x * self.mask

    def backward(self, gy):
        return (gy * self.mask,)


def dropout_mask(shape: tuple[int, ...], p: float, dtype: np.dtype) -> np.ndarray:
    """A fresh mask of ``shape``: ``1/(1-p)`` with probability ``1-p``, else 0 (all 0 if p = 1)."""
    u = default_generator().random(shape, dtype=np.float32)
    scale = 1.0 / (1.0 - p) if p < 1.0 else 0.0
    return np.multiply(u >= p, scale, dtype=dtype)


def dropout(x: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Inverted dropout, as ``torch.nn.functional.dropout``.

    Identity (the input itself) when ``training`` is False or ``p == 0``; ``p`` must lie in
    [0, 1]. ``inplace`` is accepted for PyTorch compatibility; the result is a new tensor.

    >>> import deltaprop as dp
    >>> _ = dp.manual_seed(0)
    >>> y = dropout(dp.ones(1000), p=0.25)
    >>> sorted(set(y.numpy().tolist()))   # dropped, or scaled by 1/(1 - 0.25) (in float32)
    [0.0, 1.3333333730697632]
    """
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: dropout probability has to be between 0 and 1, but got {p}")
    x = as_tensor(x)
    if not training or p == 0.0:
        return x
    check_float("dropout", "input", x)
    return DropoutFunction(p).apply(x)


__all__ = ["dropout", "dropout_mask", "DropoutFunction"]
