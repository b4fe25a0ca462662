"""The convolution layer :class:`Conv2d` (over :func:`deltaprop.ops.conv.conv2d`)."""

from __future__ import annotations

from typing import Any

from deltaprop.nn.common import (
    as_input,
    call_op,
    default_init,
    parameter_dtype,
    positive_int,
    positive_pair,
    weight_and_bias,
)
from deltaprop.nn.module import Module
from deltaprop.ops.conv import conv2d
from deltaprop.tensor import Tensor

__all__ = ["Conv2d"]


class Conv2d(Module):
    r"""2-D convolution (cross-correlation, as PyTorch) over ``(N, C_in, H, W)`` inputs.

    ``y[n, k, i, j] = b[k] + sum_{c, u, v} W[k, c, u, v] * x_pad[n, c, i*s + u*d, j*s + v*d]``
    with stride ``s``, dilation ``d`` and zero padding ``p``. Output size per spatial dim:
    ``H_out = floor((H + 2p - d (kh - 1) - 1) / s) + 1``.

    Shapes: input ``(N, C_in, H, W)`` or ``(C_in, H, W)``; output ``(N, C_out, H_out, W_out)``;
    ``weight`` ``(C_out, C_in, kh, kw)``; ``bias`` ``(C_out,)``. Computed as one GEMM on the
    unrolled receptive fields (im2col); backward ``dW = cols^T dY``, ``dX = col2im(dY W)``.

    ``padding`` may be an int, a pair, ``"valid"`` (no padding) or ``"same"`` (stride 1; output
    size = input size, any extra padding on the bottom/right as PyTorch).

    Initialisation: ``W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, ``fan_in = C_in * kh * kw``.

    >>> import deltaprop as dp
    >>> m = dp.nn.Conv2d(3, 6, 5)
    >>> m
    Conv2d(3, 6, kernel_size=(5, 5), stride=(1, 1))
    >>> m(dp.randn(2, 3, 32, 32)).shape
    (2, 6, 28, 28)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        name = "Conv2d"
        self.in_channels = positive_int(name, "in_channels", in_channels)
        self.out_channels = positive_int(name, "out_channels", out_channels)
        self.kernel_size = positive_pair(name, "kernel_size", kernel_size)
        self.stride = positive_pair(name, "stride", stride)
        self.dilation = positive_pair(name, "dilation", dilation)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(
                    f"Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}"
                )
            if padding == "same" and self.stride != (1, 1):
                raise ValueError("padding='same' is not supported for strided convolutions")
            self.padding: tuple[int, int] | str = padding
        else:
            self.padding = positive_pair(name, "padding", padding, allow_zero=True)
        self.groups = positive_int(name, "groups", groups)
        if self.in_channels % self.groups:
            raise ValueError("in_channels must be divisible by groups")
        if self.out_channels % self.groups:
            raise ValueError("out_channels must be divisible by groups")
        if padding_mode != "zeros":
            raise NotImplementedError(
                f"Conv2d: padding_mode={padding_mode!r} is not supported (only 'zeros')"
            )
        self.padding_mode = padding_mode
        self.output_padding = (0, 0)
        self.transposed = False
        dt = parameter_dtype(device, dtype)
        kh, kw = self.kernel_size
        weight_and_bias(
            self, (self.out_channels, self.in_channels // self.groups, kh, kw), bias, dt
        )

    def reset_parameters(self) -> None:
        """Re-draw the parameters with PyTorch's default initialisation."""
        default_init(self.weight, self.bias)

    def forward(self, input: Tensor) -> Tensor:
        input = as_input(self, input)
        params = self._parameters
        return call_op(
            self, conv2d, input, params["weight"], params["bias"], self.stride, self.padding,
            self.dilation, self.groups,
        )  # fmt: skip

    def extra_repr(self) -> str:
        s = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s
