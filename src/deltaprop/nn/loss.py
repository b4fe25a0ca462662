"""Loss layers (over :mod:`deltaprop.ops.loss`, where each loss and its gradient is derived).

``reduction`` is ``'mean'`` (default), ``'sum'`` or ``'none'``; the legacy ``size_average`` and
``reduce`` arguments map onto it as in PyTorch.
"""

from __future__ import annotations

import numpy as np

from deltaprop.nn.module import Module
from deltaprop.ops.loss import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    mse_loss,
    nll_loss,
)
from deltaprop.tensor import Tensor, _make

__all__ = ["MSELoss", "CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss"]


def _constant(t: object) -> Tensor | None:
    """A weight argument as a constant Tensor (None stays None)."""
    return t if t is None or isinstance(t, Tensor) else _make(np.asarray(t))


def _legacy_reduction(size_average: bool | None, reduce: bool | None) -> str:
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if not reduce:
        return "none"
    return "mean" if size_average else "sum"


class _Loss(Module):
    def __init__(
        self, size_average: bool | None = None, reduce: bool | None = None, reduction: str = "mean"
    ) -> None:
        super().__init__()
        if size_average is not None or reduce is not None:
            reduction = _legacy_reduction(size_average, reduce)
        if reduction not in ("none", "mean", "sum"):
            raise ValueError(f"{reduction} is not a valid value for reduction")
        self.reduction = reduction


class _WeightedLoss(_Loss):
    def __init__(
        self,
        weight: Tensor | None = None,
        size_average: bool | None = None,
        reduce: bool | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _constant(weight))


class _ClassLoss(_WeightedLoss):
    """A loss over class indices: a per-class ``weight`` and an ``ignore_index``."""

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average: bool | None = None,
        ignore_index: int = -100,
        reduce: bool | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index


class MSELoss(_Loss):
    r"""Mean squared error: ``l_n = (x_n - y_n)^2``, then mean (default), sum or none.

    Backward: ``dL/dx = 2 (x - y) / N`` for the mean. (The backprop notes' ``E = 1/2 sum (t-o)^2``
    is ``0.5 * MSELoss(reduction='sum')``.)

    >>> import deltaprop as dp
    >>> dp.nn.MSELoss()(dp.tensor([1.0, 2.0]), dp.tensor([0.0, 0.0])).item()
    2.5
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return mse_loss(input, target, reduction=self.reduction)


class CrossEntropyLoss(_ClassLoss):
    r"""Cross entropy of logits and class indices (or class probabilities):
    ``l_n = -w_{y_n} log softmax(x_n)_{y_n}``; the mean divides by ``sum_n w_{y_n}``.

    Input ``(N, C)`` (or ``(N, C, d1, ...)``) logits; target ``(N,)`` int64 class indices
    (entries equal to ``ignore_index`` are skipped) or ``(N, C)`` probabilities.
    ``label_smoothing`` mixes the target with the uniform distribution. Backward (no weights, no
    smoothing, mean): ``dL/dx = (softmax(x) - onehot(y)) / N``.

    >>> import deltaprop as dp
    >>> loss = dp.nn.CrossEntropyLoss()
    >>> round(loss(dp.zeros(2, 4), dp.tensor([0, 3])).item(), 4)    # log(4)
    1.3863
    """

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average: bool | None = None,
        ignore_index: int = -100,
        reduce: bool | None = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(weight, size_average, ignore_index, reduce, reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
        self.label_smoothing = label_smoothing

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return cross_entropy(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )


class NLLLoss(_ClassLoss):
    r"""Negative log likelihood of log-probabilities: ``l_n = -w_{y_n} x_{n, y_n}``; the mean
    divides by ``sum_n w_{y_n}`` (``LogSoftmax`` + ``NLLLoss`` = ``CrossEntropyLoss``).

    >>> import deltaprop as dp
    >>> dp.nn.NLLLoss()(dp.tensor([[-1.0, -2.0]]), dp.tensor([1])).item()
    2.0
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return nll_loss(
            input, target, weight=self.weight, ignore_index=self.ignore_index,
            reduction=self.reduction,
        )  # fmt: skip


class BCELoss(_WeightedLoss):
    r"""Binary cross entropy of probabilities: ``l_n = -w_n [y_n log x_n + (1 - y_n) log(1 - x_n)]``
    (the logs are clamped at -100, as PyTorch). Backward ``dL/dx = (x - y) / (x (1 - x))``
    (times ``w / N`` for the mean).

    >>> import deltaprop as dp
    >>> round(dp.nn.BCELoss()(dp.tensor([0.5]), dp.tensor([1.0])).item(), 4)
    0.6931
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    r"""Sigmoid + binary cross entropy in one stable step:
    ``l_n = -w_n [p y_n log sigmoid(x_n) + (1 - y_n) log(1 - sigmoid(x_n))]`` with ``p`` the
    ``pos_weight`` (per class, broadcast over the last dim). Backward (``p = 1``):
    ``dL/dx = sigmoid(x) - y`` (the ``o (1 - o)`` cancels).

    >>> import deltaprop as dp
    >>> round(dp.nn.BCEWithLogitsLoss()(dp.tensor([0.0]), dp.tensor([1.0])).item(), 4)
    0.6931
    """

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average: bool | None = None,
        reduce: bool | None = None,
        reduction: str = "mean",
        pos_weight: Tensor | None = None,
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _constant(weight))
        self.register_buffer("pos_weight", _constant(pos_weight))

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return binary_cross_entropy_with_logits(
            input, target, self.weight, reduction=self.reduction, pos_weight=self.pos_weight
        )
