"""The shape layer :class:`Flatten` (over :func:`deltaprop.ops.shape.flatten`)."""

from __future__ import annotations

from deltaprop.nn.common import as_input, call_op
from deltaprop.nn.module import Module
from deltaprop.ops.shape import flatten
from deltaprop.tensor import Tensor

__all__ = ["Flatten"]


class Flatten(Module):
    """Flattens dims ``start_dim..end_dim`` into one: ``(N, C, H, W) -> (N, C*H*W)`` by default.

    >>> import deltaprop as dp
    >>> dp.nn.Flatten()(dp.zeros(32, 1, 5, 5)).shape
    (32, 25)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input: Tensor) -> Tensor:
        return call_op(self, flatten, as_input(self, input), self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
