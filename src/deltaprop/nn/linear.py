"""Linear layers: :class:`Identity`, and :class:`Linear` over :func:`ops.linear.linear`."""

from __future__ import annotations

from typing import Any

from deltaprop.nn.common import (
    as_input,
    default_init,
    named_error,
    parameter_dtype,
    positive_int,
    weight_and_bias,
)
from deltaprop.nn.module import Module
from deltaprop.ops.linear import linear
from deltaprop.tensor import Tensor

__all__ = ["Identity", "Linear"]


class Identity(Module):
    """Returns its input unchanged: ``y = x`` (any arguments to the constructor are ignored).

    >>> import deltaprop as dp
    >>> dp.nn.Identity()(dp.ones(2)).tolist()
    [1.0, 1.0]
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: Tensor) -> Tensor:
        return input


class Linear(Module):
    r"""Affine map ``y = x W^T + b``.

    Shapes: input ``(*, in_features)``; output ``(*, out_features)``; ``weight``
    ``(out_features, in_features)``; ``bias`` ``(out_features,)``.

    Backward: ``dL/dx = dL/dy W``, ``dL/dW = (dL/dy)^T x`` (summed over the leading dims),
    ``dL/db = sum of dL/dy`` over the leading dims: for one neuron, ``dE/dw_ij = delta_j o_i``.

    Initialisation (PyTorch's): ``W, b ~ U(-1/sqrt(in_features), 1/sqrt(in_features))``
    (``kaiming_uniform_(a=sqrt(5))`` for the weight).

    >>> import deltaprop as dp
    >>> m = dp.nn.Linear(20, 30)
    >>> m(dp.randn(128, 20)).shape
    (128, 30)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.in_features = positive_int("Linear", "in_features", in_features, True)
        self.out_features = positive_int("Linear", "out_features", out_features, True)
        dt = parameter_dtype(device, dtype)
        weight_and_bias(self, (self.out_features, self.in_features), bias, dt)

    def reset_parameters(self) -> None:
        """Re-draw the parameters with PyTorch's default initialisation."""
        default_init(self.weight, self.bias)

    def forward(self, input: Tensor) -> Tensor:
        if type(input) is not Tensor:
            input = as_input(self, input)
        # (reading the registry directly skips Module.__getattr__: a hot path for small nets)
        params = self._parameters
        try:
            return linear(input, params["weight"], params["bias"])
        except (ValueError, TypeError) as e:
            raise named_error(self, e) from None

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )
