"""What the layers share: constructor argument checks, parameter creation, and naming errors.

A layer checks its constructor arguments (so a bad layer is refused when it is built) and
leaves the checks of each call to its functional op: :func:`named_error` puts the layer's
``repr`` in front of the op's message, so an error names both the layer and the op.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from deltaprop.nn import init
from deltaprop.nn.module import Module, Parameter
from deltaprop.ops.common import int_pair
from deltaprop.tensor import Tensor, _make

__all__ = [
    "parameter_dtype",
    "positive_int",
    "positive_pair",
    "as_input",
    "named_error",
    "call_op",
    "weight_and_bias",
    "default_init",
    "affine_parameters",
]


def parameter_dtype(device: Any, dtype: Any) -> np.dtype:
    """A layer's parameter dtype: float32 by default, any floating dtype if given; ``device``
    must be None or ``'cpu'`` (deltaprop runs on the CPU only)."""
    if device is not None and str(device).split(":")[0] != "cpu":
        raise ValueError(f"deltaprop runs on the CPU only, got device {device!r}")
    dt = np.dtype(np.float32 if dtype is None else dtype)
    if dt.kind != "f":
        raise TypeError(f"layer parameters must have a floating point dtype, got {dt}")
    return dt


def positive_int(layer: str, name: str, value: Any, allow_zero: bool = False) -> int:
    """``value`` as an int, which must be positive (or non-negative with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{layer}: {name} must be an int, got {type(value).__name__}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(
            f"{layer}: {name} must be {'non-negative' if allow_zero else 'positive'}, got {value}"
        )
    return int(value)


def positive_pair(layer: str, name: str, value: Any, allow_zero: bool = False) -> tuple[int, int]:
    """``value`` (an int or a pair of ints) as a pair of positive (non-negative) ints."""
    h, w = int_pair(layer, name, value)
    return positive_int(layer, name, h, allow_zero), positive_int(layer, name, w, allow_zero)


def as_input(layer: Module, x: Any) -> Tensor:
    """``x`` as a Tensor (an ndarray is wrapped), or a TypeError naming the layer."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray):
        return _make(x)
    raise TypeError(f"{layer._get_name()}: expected a Tensor input, got {type(x).__name__}")


def named_error(layer: Module, err: Exception) -> Exception:
    """The op's error ``err`` again (same type), its message prefixed by the layer's ``repr``."""
    try:
        return type(err)(f"{layer!r}: {err}")
    except TypeError:  # an exception type whose constructor takes other arguments
        return err


def call_op(layer: Module, op: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``op(*args, **kwargs)`` for ``layer``: an error the op raises also names the layer."""
    try:
        return op(*args, **kwargs)
    except (ValueError, TypeError, IndexError) as e:
        raise named_error(layer, e) from None


def weight_and_bias(
    module: Module, weight_shape: tuple[int, ...], bias: bool, dtype: np.dtype
) -> None:
    """Register a layer's weight (and a bias of size weight_shape[0], or None), then draw them
    with the layer's ``reset_parameters``."""
    module.register_parameter("weight", Parameter(np.empty(weight_shape, dtype=dtype)))
    bias_p = Parameter(np.empty((weight_shape[0],), dtype=dtype)) if bias else None
    module.register_parameter("bias", bias_p)
    module.reset_parameters()


def default_init(weight: Parameter, bias: Parameter | None) -> None:
    """PyTorch's default for Linear and Conv2d: weight kaiming_uniform_(a=sqrt(5)), bias
    uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) (zero when fan_in is 0)."""
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = init._calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        init.uniform_(bias, -bound, bound)


def affine_parameters(
    module: Module, shape: tuple[int, ...], affine: bool, bias: bool, dtype: np.dtype
) -> None:
    """A norm layer's learnable scale (ones) and shift (zeros), or None where disabled."""
    module.register_parameter("weight", Parameter(np.ones(shape, dtype=dtype)) if affine else None)
    module.register_parameter(
        "bias", Parameter(np.zeros(shape, dtype=dtype)) if affine and bias else None
    )
