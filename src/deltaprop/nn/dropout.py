"""The dropout layer :class:`Dropout` (over :func:`deltaprop.ops.dropout.dropout`)."""

from __future__ import annotations

from deltaprop.nn.common import as_input
from deltaprop.nn.module import Module
from deltaprop.ops.dropout import dropout
from deltaprop.tensor import Tensor

__all__ = ["Dropout"]


class Dropout(Module):
    r"""During training, zeroes each element with probability ``p`` and scales the rest by
    ``1 / (1 - p)`` (so the expectation is unchanged); the identity in evaluation mode.

    Backward: the upstream gradient times the same mask and scale.

    >>> import deltaprop as dp
    >>> drop = dp.nn.Dropout(0.5).eval()
    >>> drop(dp.ones(3)).tolist()
    [1.0, 1.0, 1.0]
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return dropout(as_input(self, input), self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
