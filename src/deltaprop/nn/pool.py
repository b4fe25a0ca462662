"""Pooling layers :class:`MaxPool2d` and :class:`AvgPool2d` (over :mod:`deltaprop.ops.pool`),
which share their base :class:`_Pool2d`."""

from __future__ import annotations

from typing import Any

from deltaprop.nn.common import as_input, call_op, positive_pair
from deltaprop.nn.module import Module
from deltaprop.ops.pool import avg_pool2d, max_pool2d
from deltaprop.tensor import Tensor

__all__ = ["MaxPool2d", "AvgPool2d"]


class _Pool2d(Module):
    """What both pooling layers hold and check: kernel, stride (default: the kernel), padding
    and ceil mode; ``forward`` calls the layer's functional op (``_pool``);
    ``extra_repr`` starts with kernel, stride and padding."""

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None,
        padding: int | tuple[int, int],
        ceil_mode: bool,
    ) -> None:
        super().__init__()
        name = self._get_name()
        positive_pair(name, "kernel_size", kernel_size)
        if stride is not None:
            positive_pair(name, "stride", stride)
        positive_pair(name, "padding", padding, allow_zero=True)
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode

    def _pool(self, input: Tensor) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, input: Tensor) -> Any:
        return call_op(self, self._pool, as_input(self, input))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    r"""2-D max pooling: ``y[n, c, i, j] = max_{u, v} x_pad[n, c, i*s + u, j*s + v]``.

    ``stride`` defaults to ``kernel_size``; padding is implicit minus infinity. Backward sends
    each window's upstream gradient to the position of its maximum (one element on ties), zero
    elsewhere. Shapes: ``(N, C, H, W) -> (N, C, H_out, W_out)`` (or unbatched ``(C, H, W)``),
    ``H_out = floor((H + 2p - d (k - 1) - 1) / s) + 1`` (ceil with ``ceil_mode``).
    ``return_indices=True`` also returns the flat index of each maximum in its input plane.

    >>> import deltaprop as dp
    >>> pool = dp.nn.MaxPool2d(2)
    >>> pool
    MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
    >>> pool(dp.arange(16.0).reshape(1, 1, 4, 4)).tolist()
    [[[[5.0, 7.0], [13.0, 15.0]]]]
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode)
        positive_pair("MaxPool2d", "dilation", dilation)
        self.dilation = dilation
        self.return_indices = return_indices

    def _pool(self, input: Tensor) -> Any:
        return max_pool2d(
            input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
            self.return_indices,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, dilation={self.dilation}, ceil_mode={self.ceil_mode}"


class AvgPool2d(_Pool2d):
    r"""2-D average pooling: ``y[n, c, i, j] = 1/(kh kw) sum_{u, v} x_pad[n, c, i*s + u, j*s + v]``.

    ``stride`` defaults to ``kernel_size``; zero padding counts in the average
    (``count_include_pad=True``; with False only real elements count; ``divisor_override``
    fixes the divisor). Backward gives every position of a window ``upstream / divisor``.

    >>> import deltaprop as dp
    >>> dp.nn.AvgPool2d(2)(dp.arange(16.0).reshape(1, 1, 4, 4)).tolist()
    [[[[2.5, 4.5], [10.5, 12.5]]]]
    >>> ones = dp.ones(1, 1, 2, 2)        # each 2x2 window: one real element, three of padding
    >>> dp.nn.AvgPool2d(2, padding=1)(ones).tolist()
    [[[[0.25, 0.25], [0.25, 0.25]]]]
    >>> dp.nn.AvgPool2d(2, padding=1, count_include_pad=False)(ones).tolist()
    [[[[1.0, 1.0], [1.0, 1.0]]]]
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def _pool(self, input: Tensor) -> Tensor:
        return avg_pool2d(
            input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
            self.count_include_pad, self.divisor_override,
        )  # fmt: skip
