"""Activation layers (over :mod:`deltaprop.ops.activation`, where each formula is derived)."""

from __future__ import annotations

from collections.abc import Callable

from deltaprop.nn.common import as_input, call_op
from deltaprop.nn.module import Module
from deltaprop.ops.activation import gelu, leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from deltaprop.tensor import Tensor

__all__ = ["ReLU", "LeakyReLU", "GELU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax"]


class _Pointwise(Module):
    """An activation applied element by element: ``forward`` is the op the subclass names in
    ``_op``."""

    _op: Callable[[Tensor], Tensor]

    def forward(self, input: Tensor) -> Tensor:
        return self._op(as_input(self, input))


class _Softmax(Module):
    """What Softmax and LogSoftmax share: ``dim``, and ``forward`` the op the subclass names in
    ``_op`` along it."""

    _op: Callable[..., Tensor]

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        return call_op(self, self._op, as_input(self, input), self.dim, _stacklevel=5)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class ReLU(_Pointwise):
    """``y = max(0, x)``; backward passes the gradient where ``x > 0``.

    >>> import deltaprop as dp
    >>> dp.nn.ReLU()(dp.tensor([-1.0, 2.0])).tolist()
    [0.0, 2.0]
    """

    _op = staticmethod(relu)

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """``y = x`` for ``x >= 0``, ``negative_slope * x`` otherwise.

    >>> import deltaprop as dp
    >>> dp.nn.LeakyReLU(0.1)(dp.tensor([-1.0, 2.0])).tolist()
    [-0.10000000149011612, 2.0]
    """

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return call_op(self, leaky_relu, as_input(self, input), self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class GELU(Module):
    r"""``y = x * Phi(x)`` with ``Phi`` the standard normal CDF (``approximate='none'``, the erf
    form) or ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` (``approximate='tanh'``).

    >>> import deltaprop as dp
    >>> dp.nn.GELU()
    GELU(approximate='none')
    """

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, input: Tensor) -> Tensor:
        return call_op(self, gelu, as_input(self, input), approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Sigmoid(_Pointwise):
    """``y = 1 / (1 + exp(-x))``; local derivative ``y (1 - y)``.

    >>> import deltaprop as dp
    >>> dp.nn.Sigmoid()(dp.tensor([0.0])).tolist()
    [0.5]
    """

    _op = staticmethod(sigmoid)


class Tanh(_Pointwise):
    """``y = tanh(x)``; local derivative ``1 - y^2``.

    >>> import deltaprop as dp
    >>> dp.nn.Tanh()(dp.tensor([0.0])).tolist()
    [0.0]
    """

    _op = staticmethod(tanh)


class Softmax(_Softmax):
    r"""``y_i = exp(x_i) / sum_k exp(x_k)`` along ``dim``; backward
    ``dx = y * (dy - sum(dy * y))``. With ``dim=None`` PyTorch's legacy choice is made
    (dim 0 for 0-, 1- and 3-D inputs, else 1) with a warning.

    >>> import deltaprop as dp
    >>> dp.nn.Softmax(dim=1)(dp.zeros(1, 4)).tolist()
    [[0.25, 0.25, 0.25, 0.25]]
    """

    _op = staticmethod(softmax)


class LogSoftmax(_Softmax):
    r"""``y_i = x_i - log sum_k exp(x_k)`` along ``dim`` (computed stably); backward
    ``dx = dy - softmax(x) * sum(dy)``.

    >>> import deltaprop as dp
    >>> dp.nn.LogSoftmax(dim=1)
    LogSoftmax(dim=1)
    """

    _op = staticmethod(log_softmax)
