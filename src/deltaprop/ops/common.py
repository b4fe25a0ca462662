"""What the ops share: operand conversion, argument checks and the sliding-window geometry.

* :func:`as_tensor`, :func:`as_operands`: Python numbers and arrays as constant Tensors.
* :func:`check_float`, :func:`check_same_dtype`: dtype checks that raise :class:`DTypeError`.
* :func:`int_pair`: an int or a pair of ints as ``(for H, for W)``.
* :func:`conv_output_size`: the number of windows along one axis, the one formula used by
  convolution, pooling, model shape inference and the explainers,

      out = floor((size + pad_lo + pad_hi - d (k - 1) - 1) / s) + 1

  (``ceil`` instead of ``floor`` in ceil mode, where a last window starting in the padding is
  dropped, as PyTorch).
* :func:`window_slices`, :func:`pad2d`: the strided slices that one kernel offset reads across
  all windows, and constant padding composed of differentiable ops.

>>> conv_output_size(28, 5)                                  # LeNet's first layer
24
>>> conv_output_size(7, 3, stride=2, ceil_mode=True), conv_output_size(7, 3, stride=2)
(3, 3)
>>> conv_output_size(6, 3, stride=2, padding=1, ceil_mode=True)
4
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deltaprop.errors import DTypeError, ShapeError
from deltaprop.tensor import Tensor, _make, _to_array, float32

__all__ = [
    "as_tensor",
    "as_operands",
    "check_float",
    "check_same_dtype",
    "int_pair",
    "check_broadcast",
    "conv_output_size",
    "window_slices",
    "pad2d",
]


# ----------------------------------------------------------------------------------------------
# operands
# ----------------------------------------------------------------------------------------------


def as_tensor(v: Any, like: Tensor | None = None) -> Tensor:
    """A constant Tensor for a Python/NumPy operand, keeping ``like``'s float dtype for scalars."""
    if isinstance(v, Tensor):
        return v
    if isinstance(v, (bool, int, float)):
        dt = like.dtype if like is not None else None
        if dt is None or (dt.kind != "f" and isinstance(v, float)):
            dt = float32 if isinstance(v, float) else None
        return _make(np.asarray(v, dtype=dt))
    if isinstance(v, np.ndarray):
        return _make(v)
    return _make(_to_array(v, copy=False))


def as_operands(a: Any, b: Any) -> tuple[Tensor, Tensor]:
    """Both operands of a binary op as Tensors (a Python scalar takes the other's dtype)."""
    if isinstance(a, Tensor):
        return a, (b if isinstance(b, Tensor) else as_tensor(b, a))
    return as_tensor(a, b), b


# ----------------------------------------------------------------------------------------------
# argument checks
# ----------------------------------------------------------------------------------------------


def check_float(op: str, name: str, t: Tensor) -> None:
    """Raise :class:`DTypeError` unless ``t`` has a floating dtype."""
    if t.dtype.kind != "f":
        raise DTypeError(f"{op}: {name} must be a floating point tensor, got dtype {t.dtype}")


def check_same_dtype(op: str, x: Tensor, name: str, other: Tensor) -> None:
    """Raise :class:`DTypeError` unless ``other`` has ``x``'s dtype (no silent promotion)."""
    if other.dtype != x.dtype:
        raise DTypeError(
            f"{op}: {name} has dtype {other.dtype} but the input has dtype {x.dtype}; "
            "convert one of them (e.g. .float() or .double())"
        )


def check_broadcast(op: str, what: str, *shapes: tuple[int, ...]) -> None:
    """Raise :class:`ShapeError` ``"{op}: {what} cannot be broadcast together"`` unless the
    shapes broadcast (NumPy's rule)."""
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        raise ShapeError(f"{op}: {what} cannot be broadcast together") from None


def int_pair(op: str, name: str, value: Any) -> tuple[int, int]:
    """``value`` (an int or a sequence of one or two ints) as a pair ``(for H, for W)``."""
    items = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if len(items) not in (1, 2) or any(
        isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in items
    ):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    if len(items) == 1:
        items = items * 2
    return int(items[0]), int(items[1])


# ----------------------------------------------------------------------------------------------
# sliding windows
# ----------------------------------------------------------------------------------------------


def conv_output_size(
    size: int,
    kernel: int,
    stride: int = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Number of windows along one axis of length ``size`` (PyTorch's output-size rule).

    ``padding`` pads both ends by the same amount, or is a pair ``(before, after)``. In
    ``ceil_mode`` the division rounds up, but a last window that would start inside the
    trailing padding is dropped (as PyTorch's ``pooling_output_shape``). The result is below 1
    when the (dilated) kernel does not fit.
    """
    lo, hi = padding if isinstance(padding, tuple) else (padding, padding)
    span = size + lo + hi - dilation * (kernel - 1) - 1
    if not ceil_mode:
        return span // stride + 1
    out = (span + stride - 1) // stride + 1
    if (out - 1) * stride >= size + lo:
        out -= 1  # the last window would start inside the bottom/right padding
    return out


def window_slices(
    i: int, j: int, out_hw: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]
) -> tuple[slice, slice]:
    """The (H, W) slices of a padded input that kernel offset (i, j) sees across all windows.

    Window (oh, ow) reads padded row ``s_h oh + d_h i`` and column ``s_w ow + d_w j``.
    """
    (ho, wo), (sh, sw), (dh, dw) = out_hw, stride, dilation
    return (
        slice(dh * i, dh * i + sh * (ho - 1) + 1, sh),
        slice(dw * j, dw * j + sw * (wo - 1) + 1, sw),
    )


def pad2d(x: Tensor, pads: tuple[int, int, int, int], value: float = 0.0) -> Tensor:
    """``x`` (..., H, W) padded with the constant ``value`` by (top, bottom, left, right).

    Composed of ``cat`` with constant tensors, so it is differentiable (the twins use it).
    """
    from deltaprop.ops.shape import cat

    top, bottom, left, right = pads
    if left or right:
        lead = x.shape[:-1]
        parts = [_make(np.full(lead + (left,), value, x.dtype))] if left else []
        parts.append(x)
        if right:
            parts.append(_make(np.full(lead + (right,), value, x.dtype)))
        x = cat(parts, dim=-1)
    if top or bottom:
        lead, w = x.shape[:-2], x.shape[-1]
        parts = [_make(np.full(lead + (top, w), value, x.dtype))] if top else []
        parts.append(x)
        if bottom:
            parts.append(_make(np.full(lead + (bottom, w), value, x.dtype)))
        x = cat(parts, dim=-2)
    return x
