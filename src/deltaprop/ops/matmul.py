"""Matrix product with NumPy's rules: 1-D, 2-D and batched (broadcast) operands.

y = a @ b      dL/da = gy @ b^T,   dL/db = a^T @ gy
A 1-D ``a`` acts as a row (1, k), a 1-D ``b`` as a column (k, 1), and the added axis is
removed again; batch axes that were broadcast are summed back in the gradient.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deltaprop.ops.common import as_operands, check_broadcast
from deltaprop.ops.dual import swap_last, unbroadcast
from deltaprop.tensor import Function, Tensor


class MatMulFunction(Function):
    """y = a @ b.  dy/da = gy @ b^T,  dy/db = a^T @ gy (per batch, broadcast axes summed)."""

    def forward(self, a, b):
        return np.matmul(a, b)

    def backward(self, gy):
        a, b = self.saved_inputs()
        if a.ndim == 2 and b.ndim == 2:  # the common case, no reshapes needed
            ga = unbroadcast(gy @ b.T, a) if self.needs_grad[0] else None
            gb = unbroadcast(a.T @ gy, b) if self.needs_grad[1] else None
            return ga, gb
        a2 = a.reshape((1, a.shape[0])) if a.ndim == 1 else a
        b2 = b.reshape((b.shape[0], 1)) if b.ndim == 1 else b
        batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
        gy2 = gy.reshape(batch + (a2.shape[-2], b2.shape[-1]))
        ga = gb = None
        if self.needs_grad[0]:
            ga = unbroadcast(gy2 @ swap_last(b2), a2).reshape(a.shape)
        if self.needs_grad[1]:
            gb = unbroadcast(swap_last(a2) @ gy2, b2).reshape(b.shape)
        return ga, gb


def matmul(a: Any, b: Any) -> Tensor:
    """``a @ b`` with NumPy's matmul semantics."""
    a, b = as_operands(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(
            f"matmul: both operands need at least 1 dimension, got shapes {a.shape} and {b.shape}"
        )
    ka = a.shape[-1]
    kb = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if ka != kb:
        raise ValueError(
            f"matmul: shapes {a.shape} and {b.shape} are not aligned: the last dim of the first "
            f"({ka}) must equal the {'only' if b.ndim == 1 else 'second-to-last'} dim of the "
            f"second ({kb})"
        )
    if a.ndim > 2 or b.ndim > 2:
        batch_a, batch_b = a.shape[:-2] if a.ndim > 1 else (), b.shape[:-2] if b.ndim > 1 else ()
        check_broadcast("matmul", f"batch dimensions of {a.shape} and {b.shape}", batch_a, batch_b)
    return MatMulFunction().apply(a, b)
