"""2-D max and average pooling over (N, C, H, W) inputs, with PyTorch's semantics.

Windows of ``kernel_size`` (kh, kw) move by ``stride`` (default: the kernel size) over the input
padded by ``padding`` on each side (at most half the kernel). Along one axis there are

    Ho = floor((H + 2 p - d (kh - 1) - 1 + (s - 1 if ceil_mode else 0)) / s) + 1

windows (less one, in ceil mode, if the last would start in the bottom padding).

Max pooling, the max gate::

    y[n, c, i, j] = max_{u, v} xpad[n, c, s i + d u, s j + d v]    (padding is -inf)
    dL/dx: each window's gy goes to the one element where its maximum was (ties: the first in
           row-major window order, as PyTorch); overlapping windows add up.

Average pooling::

    y[n, c, i, j] = sum_{u, v} xpad[n, c, s i + u, s j + v] / D[i, j]
    dL/dx: every element of window (i, j) gets gy[i, j] / D[i, j]; overlapping windows add up.

``D`` is the window area, counting the padding that lies inside the padded input when
``count_include_pad`` (the default) and only the real input elements otherwise;
``divisor_override`` replaces it.

Both loop in Python over the kh*kw kernel offsets only: one strided slice of the padded input per
offset covers that offset of every window at once (forward), and backward adds the gradients
back through the same slices (col2im). Max pooling remembers, per window, the offset of its
maximum (a small integer array), so backward scatters ``gy`` to exactly one slot per window.
For the common non-overlapping 2x2 stride-2 case without padding the slices are views of the
input itself (no padded copy), which makes it the fast path without a separate code path.

>>> import deltaprop as dp
>>> x = dp.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], requires_grad=True)
>>> y = max_pool2d(x, 2)
>>> y.tolist()
[[[[4.0]]]]
>>> y.sum().backward()
>>> x.grad.tolist()
[[[[0.0, 0.0], [0.0, 1.0]]]]
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from deltaprop.errors import ShapeError
from deltaprop.ops.common import as_tensor, conv_output_size, int_pair, pad2d, window_slices
from deltaprop.tensor import Function, Tensor, _make

__all__ = ["max_pool2d", "avg_pool2d", "MaxPool2DFunction", "AvgPool2DFunction", "PoolWindow"]


class PoolWindow(NamedTuple):
    """The geometry of a pooling: (kh, kw) windows moved by ``stride``, ``padding`` on each side,
    ``dilation`` between a window's elements, and the (Ho, Wo) windows that fit."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    out_hw: tuple[int, int]


class _Pool2DFunction(Function):
    """Shared geometry (a :class:`PoolWindow`) and the padded input the windows read."""

    def __init__(self, window: PoolWindow) -> None:
        self.kernel, self.stride, self.padding, self.dilation, self.out_hw = window

    def _extent(self, h: int, w: int) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) padding so that every window lies inside the array."""
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.stride, self.dilation
        (ph, pw), (ho, wo) = self.padding, self.out_hw
        need_h = (ho - 1) * sh + dh * (kh - 1) + 1  # rows the windows span, from the top pad
        need_w = (wo - 1) * sw + dw * (kw - 1) + 1
        return ph, max(0, need_h - h - ph), pw, max(0, need_w - w - pw)

    def _padded(self, x: np.ndarray, value: Any) -> np.ndarray:
        """``x`` padded with ``value`` (the input itself when no padding is needed)."""
        n, c, h, w = x.shape
        pt, pb, pl, pr = self._extent(h, w)
        if not (pt or pb or pl or pr):
            return x
        xp = np.full((n, c, h + pt + pb, w + pl + pr), value, dtype=x.dtype)
        xp[:, :, pt : pt + h, pl : pl + w] = x
        return xp

    def _offsets(self):
        """(k, (row slice, column slice)) for each kernel offset, in row-major window order."""
        kh, kw = self.kernel
        for i in range(kh):
            for j in range(kw):
                yield i * kw + j, window_slices(i, j, self.out_hw, self.stride, self.dilation)

    def _disjoint(self) -> bool:
        """True when no two windows share an input element (stride >= dilated kernel)."""
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.stride, self.dilation
        return sh >= dh * (kh - 1) + 1 and sw >= dw * (kw - 1) + 1

    def _col2im(self, x_shape: tuple[int, ...], write: Any) -> np.ndarray:
        """dL/dx from per-offset gradients: ``write(k, dst, disjoint)`` puts offset k's share of
        every window into ``dst``, the (N, C, Ho, Wo) strided slice of the padded gradient that
        offset k reads (assigning when windows are disjoint, adding when they overlap); the
        padding is cropped off at the end."""
        n, c, h, w = x_shape
        pt, pb, pl, pr = self._extent(h, w)
        hp, wp = h + pt + pb, w + pl + pr
        ho, wo = self.out_hw
        disjoint = self._disjoint()
        # windows tile the padded array exactly: every element is written once, no zero fill
        tiles = self.kernel == self.stride and self.dilation == (1, 1)
        tiles = tiles and ho * self.stride[0] == hp and wo * self.stride[1] == wp
        dxp = (np.empty if tiles else np.zeros)((n, c, hp, wp), dtype=self.dtype)
        for k, (si, sj) in self._offsets():
            write(k, dxp[:, :, si, sj], disjoint)
        if pt or pb or pl or pr:
            return dxp[:, :, pt : pt + h, pl : pl + w].copy()
        return dxp

    def _twin_windows(self, x: Tensor, value: float) -> Tensor:
        """The windows as a tensor (N, C, Ho, Wo, kh*kw), offsets in row-major order."""
        from deltaprop.ops.shape import stack

        xp = pad2d(x, self._extent(x.shape[2], x.shape[3]), value)
        return stack([xp[:, :, si, sj] for _, (si, sj) in self._offsets()], dim=-1)


class MaxPool2DFunction(_Pool2DFunction):
    """y = max over each window of the (-inf padded) input.

    Forward keeps ``argmax`` (N, C, Ho, Wo): the window offset k = u*kw + v of the maximum, the
    first one in row-major order among ties (an element replaces the running maximum only when
    strictly greater). Backward: dL/dx at that offset of each window += gy, zero elsewhere.
    """

    def forward(self, x):
        self.dtype = x.dtype
        fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
        if self._is_2x2(x.shape):
            xp, (y, arg) = x, self._forward_2x2(x)
        else:
            xp = self._padded(x, fill)
            y, arg = self._forward_offsets(xp)
        if x.dtype.kind == "f" and np.isnan(y.max()):  # max propagates NaN: one fast pass
            # as PyTorch, a NaN counts as the maximum of its window: the last NaN takes the
            # gradient (a rare slow path, so that the loops stay lean)
            for k, (si, sj) in self._offsets():
                np.copyto(arg, k, where=np.isnan(xp[:, :, si, sj]))
        self.argmax = arg
        return y

    def _is_2x2(self, shape: tuple[int, ...]) -> bool:
        """The common 2x2 window, stride 2, no padding, no dilation, every window inside the
        input (not so in ceil mode with an odd size): the fast path."""
        return (
            2 * self.out_hw[0] <= shape[2]
            and 2 * self.out_hw[1] <= shape[3]
            and self.kernel == (2, 2)
            and self.stride == (2, 2)
            and self.padding == (0, 0)
            and self.dilation == (1, 1)
        )

    def _forward_offsets(self, xp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(y, argmax) by a running maximum over the kernel offsets' strided slices."""
        kk = self.kernel[0] * self.kernel[1]
        idx_dtype = np.uint8 if kk <= 256 else np.int32
        offsets = self._offsets()
        _, (si, sj) = next(offsets)
        y = xp[:, :, si, sj].copy()
        arg = np.zeros(y.shape, dtype=idx_dtype)
        for k, (si, sj) in offsets:
            v = xp[:, :, si, sj]
            newer = np.greater(v, y)  # strictly greater: the first maximum wins ties
            np.maximum(y, v, out=y)
            arg *= ~newer  # forget the old offset where a strictly greater value came
            arg += newer * idx_dtype(k)
        return y, arg

    def _forward_2x2(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(y, argmax) of 2x2 windows with stride 2: a tournament on contiguous planes.

        One strided copy gathers the four window positions into contiguous planes
        ``v[a, b] = x[:, :, 2 i + a, 2 j + b]`` (N, C, Ho, Wo); then every comparison runs on
        contiguous arrays (vectorised), instead of on stride-2 views::

            top = max(v00, v01), bottom = max(v10, v11), y = max(top, bottom)
            argmax = (2 + [v11 > v10]) if bottom > top else [v01 > v00]

        Strict comparisons keep the first maximum in row-major order, as PyTorch.
        """
        n, c = x.shape[:2]
        ho, wo = self.out_hw
        win = x[:, :, : 2 * ho, : 2 * wo].reshape(n, c, ho, 2, wo, 2)
        planes = np.empty((2, 2, n, c, ho, wo), dtype=x.dtype)
        np.copyto(planes, win.transpose(3, 5, 0, 1, 2, 4))
        v00, v01, v10, v11 = planes[0, 0], planes[0, 1], planes[1, 0], planes[1, 1]
        right_top = np.greater(v01, v00).view(np.uint8)
        right_bottom = np.greater(v11, v10).view(np.uint8)
        top = np.maximum(v00, v01)
        bottom = np.maximum(v10, v11, out=v10)
        lower = np.greater(bottom, top).view(np.uint8)
        y = np.maximum(top, bottom, out=top)
        # argmax = lower ? 2 + right_bottom : right_top, on uint8 without branches
        arg = np.bitwise_xor(right_top, right_bottom)
        np.bitwise_and(arg, lower, out=arg)
        np.bitwise_xor(arg, right_top, out=arg)
        np.left_shift(lower, 1, out=lower)
        np.bitwise_or(arg, lower, out=arg)
        return y, arg

    def backward(self, gy):
        arg = self.argmax

        def write(k, dst, disjoint):
            if disjoint:
                np.multiply(gy, arg == k, out=dst)
            else:
                dst += gy * (arg == k)

        return (self._col2im(self.inputs[0].shape, write),)

    def indices(self, h: int, w: int) -> np.ndarray:
        """Flat index (row * W + column) in the unpadded (H, W) plane of each window's maximum."""
        kw = self.kernel[1]
        (sh, sw), (ph, pw), (dh, dw) = self.stride, self.padding, self.dilation
        ho, wo = self.out_hw
        u, v = np.divmod(self.argmax.astype(np.int64), kw)
        rows = np.arange(ho, dtype=np.int64).reshape(ho, 1) * sh - ph + u * dh
        cols = np.arange(wo, dtype=np.int64) * sw - pw + v * dw
        return rows * w + cols

    def twin(self, x: Tensor) -> Tensor:
        """max over the stacked windows; ``max(dim)`` routes the gradient to the first maximum."""
        fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
        return self._twin_windows(x, fill).max(dim=-1)[0]


class AvgPool2DFunction(_Pool2DFunction):
    """y = sum over each window / D (zero padding).  dL/dx: gy / D to every window element."""

    def __init__(
        self, window: PoolWindow, count_include_pad: bool, divisor_override: int | None
    ) -> None:
        if window.dilation != (1, 1):
            raise ValueError(f"avg_pool2d has no dilation, got {window.dilation}")
        super().__init__(window)
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def divisor(self, h: int, w: int, dtype: Any) -> np.ndarray | float:
        """D (Ho, Wo), or a Python float when every window has the same one.

        Per axis, window i spans [s i - p, s i - p + k) clipped to [-p, H + p) (padding counted)
        or to [0, H) (real elements only); D is the product of the two axes' lengths.
        """
        if self.divisor_override is not None:
            return float(self.divisor_override)
        counts = []
        for size, k, s, p, o in zip((h, w), self.kernel, self.stride, self.padding, self.out_hw):
            start = np.arange(o) * s - p
            end = np.minimum(start + k, size + p)
            if not self.count_include_pad:
                start, end = np.maximum(start, 0), np.minimum(end, size)
            counts.append(end - start)
        d = np.outer(counts[0], counts[1])
        if (d == d.flat[0]).all():
            return float(d.flat[0])
        return d.astype(dtype)

    def forward(self, x):
        self.dtype = x.dtype
        xp = self._padded(x, 0)
        acc_dtype = x.dtype if x.dtype.kind == "f" else np.int64
        offsets = self._offsets()
        _, (si, sj) = next(offsets)
        y = xp[:, :, si, sj].astype(acc_dtype)
        for _, (si, sj) in offsets:
            y += xp[:, :, si, sj]
        d = self.divisor(x.shape[2], x.shape[3], acc_dtype)
        if x.dtype.kind != "f":  # integer average truncated toward zero, as PyTorch
            return np.trunc(y / d).astype(x.dtype)
        if isinstance(d, float):
            y *= 1.0 / d
        else:
            y /= d
        return y

    def backward(self, gy):
        x_shape = self.inputs[0].shape
        d = self.divisor(x_shape[2], x_shape[3], gy.dtype)
        g = gy * (1.0 / d) if isinstance(d, float) else gy / d

        def write(k, dst, disjoint):
            if disjoint:
                np.copyto(dst, g)
            else:
                dst += g

        return (self._col2im(x_shape, write),)

    def twin(self, x: Tensor) -> Tensor:
        """sum over the stacked (zero padded) windows, divided by D."""
        d = self.divisor(x.shape[2], x.shape[3], x.dtype)
        s = self._twin_windows(x, 0.0).sum(dim=-1)
        return s * (1.0 / d) if isinstance(d, float) else s / _make(d)


# ----------------------------------------------------------------------------------------------
# functions
# ----------------------------------------------------------------------------------------------


def _geometry(
    op: str, x: Tensor, kernel_size: Any, stride: Any, padding: Any, dilation: Any, ceil_mode: bool
) -> PoolWindow:
    """The checked window geometry of a pooling of ``x``, with PyTorch's rules."""
    if x.ndim not in (3, 4):
        raise ShapeError(
            f"{op}: expected a 3-D (unbatched, C x H x W) or 4-D (batched, N x C x H x W) input, "
            f"got shape {x.shape}"
        )
    kernel = int_pair(op, "kernel_size", kernel_size)
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
        stride_ = kernel
    else:
        stride_ = int_pair(op, "stride", stride)
    pad = int_pair(op, "padding", padding)
    dil = int_pair(op, "dilation", dilation)
    if min(kernel) < 1:
        raise ValueError(f"{op}: kernel_size must be positive, got {kernel_size!r}")
    if min(stride_) < 1:
        raise ValueError(f"{op}: stride must be positive, got {stride!r}")
    if min(dil) < 1:
        raise ValueError(f"{op}: dilation must be positive, got {dilation!r}")
    if min(pad) < 0:
        raise ValueError(f"{op}: padding must be non-negative, got {padding!r}")
    if pad[0] > kernel[0] // 2 or pad[1] > kernel[1] // 2:
        raise ValueError(
            f"{op}: padding should be at most half of the kernel size, got padding={pad} for "
            f"kernel_size={kernel}"
        )
    h, w = x.shape[-2], x.shape[-1]
    out_hw = (
        conv_output_size(h, kernel[0], stride_[0], pad[0], dil[0], ceil_mode),
        conv_output_size(w, kernel[1], stride_[1], pad[1], dil[1], ceil_mode),
    )
    if min(out_hw) < 1 or min(x.shape[-3:]) < 1:
        raise ShapeError(
            f"{op}: input of shape {x.shape} is too small for kernel_size={kernel}, "
            f"padding={pad}, dilation={dil}: the output would be {out_hw[0]} x {out_hw[1]}"
        )
    return PoolWindow(kernel, stride_, pad, dil, out_hw)


def max_pool2d(
    x: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """Max over (kh, kw) windows of an (N, C, H, W) or (C, H, W) input, as ``F.max_pool2d``.

    ``stride`` defaults to ``kernel_size``; ``padding`` (implicit -inf, at most half the kernel)
    and ``dilation`` are ints or pairs. The gradient of each window goes to one maximal element,
    the first in row-major window order. With ``return_indices`` also returns, as int64, the flat
    index ``row * W + column`` of each maximum in its (H, W) input plane.

    >>> import deltaprop as dp
    >>> x = dp.arange(16.0).reshape(1, 1, 4, 4)
    >>> max_pool2d(x, 2).tolist()
    [[[[5.0, 7.0], [13.0, 15.0]]]]
    """
    x = as_tensor(x)
    window = _geometry("max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode)
    if x.dtype.kind not in "fiu":
        raise TypeError(f"max_pool2d: expected a float or integer tensor, got {x.dtype}")
    op = MaxPool2DFunction(window)
    x4 = x.unsqueeze(0) if x.ndim == 3 else x
    y = op.apply(x4)
    if x.ndim == 3:
        y = y.squeeze(0)
    if not return_indices:
        return y
    idx = op.indices(x.shape[-2], x.shape[-1])
    return y, _make(idx[0] if x.ndim == 3 else idx)


def avg_pool2d(
    x: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """Mean over (kh, kw) windows of an (N, C, H, W) or (C, H, W) input, as ``F.avg_pool2d``.

    ``stride`` defaults to ``kernel_size``; ``padding`` is zeros (at most half the kernel).
    With ``count_include_pad`` (default) the padding counts in each window's divisor; without,
    only real elements do; ``divisor_override`` fixes the divisor.

    >>> import deltaprop as dp
    >>> x = dp.arange(16.0).reshape(1, 1, 4, 4)
    >>> avg_pool2d(x, 2).tolist()
    [[[[2.5, 4.5], [10.5, 12.5]]]]
    """
    x = as_tensor(x)
    window = _geometry("avg_pool2d", x, kernel_size, stride, padding, 1, ceil_mode)
    if x.dtype.kind != "f" and x.dtype != np.int64:
        raise TypeError(f"avg_pool2d: expected a float or int64 tensor, got {x.dtype}")
    if divisor_override is not None and (
        isinstance(divisor_override, bool)
        or not isinstance(divisor_override, (int, np.integer))
        or divisor_override == 0
    ):
        raise ValueError(f"avg_pool2d: divisor must be a non-zero int, got {divisor_override!r}")
    op = AvgPool2DFunction(window, bool(count_include_pad), divisor_override)
    if x.ndim == 3:
        return op.apply(x.unsqueeze(0)).squeeze(0)
    return op.apply(x)
