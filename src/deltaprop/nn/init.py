"""Weight initialisation, as ``torch.nn.init``: every function fills a tensor in place.

The functions write into ``tensor.data`` (outside the graph, keeping its dtype) and return the
tensor. Random draws come from the global generator (``deltaprop.random.default_generator()``),
so ``dp.manual_seed(n)`` makes them reproducible; ``generator=`` takes a
``numpy.random.Generator`` instead.

Fans (as PyTorch): for a weight of shape ``(out, in, *kernel)``, with ``r = prod(kernel)``
(1 for a Linear weight), ``fan_in = in * r`` and ``fan_out = out * r``.

* ``xavier_uniform_``: ``U(-a, a)`` with ``a = gain * sqrt(6 / (fan_in + fan_out))``
* ``xavier_normal_``: ``N(0, std^2)`` with ``std = gain * sqrt(2 / (fan_in + fan_out))``
* ``kaiming_uniform_``: ``U(-b, b)`` with ``b = gain * sqrt(3 / fan)``, ``gain = calculate_gain(
  nonlinearity, a)``, ``fan`` = fan_in or fan_out (``mode``)
* ``kaiming_normal_``: ``N(0, std^2)`` with ``std = gain / sqrt(fan)``

>>> import deltaprop as dp
>>> from deltaprop import nn
>>> w = dp.empty(3, 5)
>>> _ = dp.manual_seed(0)
>>> _ = nn.init.kaiming_uniform_(w, nonlinearity="relu")   # bound = sqrt(2) * sqrt(3 / 5)
>>> bool((w.abs() <= (6 / 5) ** 0.5).all())
True
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from deltaprop.random import default_generator
from deltaprop.tensor import Tensor

__all__ = [
    "calculate_gain",
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "zeros_",
    "ones_",
    "eye_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "orthogonal_",
]

_LINEAR_FNS = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
)


def _array(tensor: Any, fn: str) -> np.ndarray:
    if isinstance(tensor, Tensor):
        return tensor.data
    if isinstance(tensor, np.ndarray):
        return tensor
    raise TypeError(f"{fn}: expected a Tensor, got {type(tensor).__name__}")


def _gen(generator: np.random.Generator | None) -> np.random.Generator:
    return default_generator() if generator is None else generator


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for an activation (PyTorch's table).

    ======================  ==================================
    nonlinearity            gain
    ======================  ==================================
    linear / conv / sigmoid 1
    tanh                    5/3
    relu                    sqrt(2)
    leaky_relu              sqrt(2 / (1 + negative_slope^2))
    selu                    3/4
    ======================  ==================================

    >>> round(calculate_gain("leaky_relu", 0.2), 6)
    1.38675
    """
    if nonlinearity in _LINEAR_FNS or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif (not isinstance(param, bool) and isinstance(param, int)) or isinstance(param, float):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _calculate_fan_in_and_fan_out(tensor: Any) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight of shape ``(out, in, *kernel)``."""
    shape = _array(tensor, "fan").shape
    if len(shape) < 2:
        raise ValueError(
            "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions"
        )
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _calculate_correct_fan(tensor: Any, mode: str) -> int:
    mode = mode.lower()
    valid = ["fan_in", "fan_out"]
    if mode not in valid:
        raise ValueError(f"Mode {mode} not supported, please use one of {valid}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(
    tensor: Tensor, a: float = 0.0, b: float = 1.0, generator: np.random.Generator | None = None
) -> Tensor:
    """Fill with samples of ``U(a, b)``."""
    arr = _array(tensor, "uniform_")
    arr[...] = _gen(generator).uniform(a, b, size=arr.shape)
    return tensor


def normal_(
    tensor: Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    generator: np.random.Generator | None = None,
) -> Tensor:
    """Fill with samples of ``N(mean, std^2)``."""
    return _normal(tensor, "normal_", mean, std, -math.inf, math.inf, generator)


def trunc_normal_(
    tensor: Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    generator: np.random.Generator | None = None,
) -> Tensor:
    """Fill with samples of ``N(mean, std^2)`` truncated to ``[a, b]`` (redrawing outliers)."""
    if not a < b:
        raise ValueError(f"trunc_normal_: expected a < b, got a={a}, b={b}")
    return _normal(tensor, "trunc_normal_", mean, std, a, b, generator)


def _normal(
    tensor: Tensor, fn: str, mean: float, std: float, a: float, b: float, generator: Any
) -> Tensor:
    """Fill with ``N(mean, std^2)`` samples, redrawing those outside ``[a, b]``."""
    arr = _array(tensor, fn)
    gen = _gen(generator)
    out = gen.normal(mean, std, size=arr.shape)
    bad = (out < a) | (out > b)
    while bad.any():  # rejection sampling: only the outliers are drawn again
        out[bad] = gen.normal(mean, std, size=int(bad.sum()))
        bad = (out < a) | (out > b)
    arr[...] = out
    return tensor


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with ``val``."""
    _array(tensor, "constant_")[...] = val
    return tensor


def zeros_(tensor: Tensor) -> Tensor:
    """Fill with 0."""
    _array(tensor, "zeros_")[...] = 0
    return tensor


def ones_(tensor: Tensor) -> Tensor:
    """Fill with 1."""
    _array(tensor, "ones_")[...] = 1
    return tensor


def eye_(tensor: Tensor) -> Tensor:
    """Fill a 2-D tensor with the identity matrix (ones on the diagonal)."""
    arr = _array(tensor, "eye_")
    if arr.ndim != 2:
        raise ValueError(f"eye_: only tensors with 2 dimensions are supported, got {arr.shape}")
    arr[...] = np.eye(*arr.shape)
    return tensor


def xavier_uniform_(
    tensor: Tensor, gain: float = 1.0, generator: np.random.Generator | None = None
) -> Tensor:
    """Glorot uniform: ``U(-a, a)`` with ``a = gain * sqrt(6 / (fan_in + fan_out))``."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    a = math.sqrt(3.0) * std
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(
    tensor: Tensor, gain: float = 1.0, generator: np.random.Generator | None = None
) -> Tensor:
    """Glorot normal: ``N(0, std^2)`` with ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator)


def _kaiming_std(tensor: Any, a: float, mode: str, nonlinearity: str) -> float | None:
    if 0 in _array(tensor, "kaiming").shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return None
    fan = _calculate_correct_fan(tensor, mode)
    gain = calculate_gain(nonlinearity, a)
    return gain / math.sqrt(fan)


def kaiming_uniform_(
    tensor: Tensor,
    a: float = 0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: np.random.Generator | None = None,
) -> Tensor:
    """He uniform: ``U(-bound, bound)`` with ``bound = gain * sqrt(3 / fan)``.

    ``gain = calculate_gain(nonlinearity, a)`` (``a`` is the negative slope of a leaky ReLU);
    ``fan`` is fan_in (preserves the forward variance) or fan_out (the backward one). Linear and
    Conv2d use ``a=sqrt(5)``, which gives ``bound = 1 / sqrt(fan_in)``.
    """
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(
    tensor: Tensor,
    a: float = 0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: np.random.Generator | None = None,
) -> Tensor:
    """He normal: ``N(0, std^2)`` with ``std = gain / sqrt(fan)``."""
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    return normal_(tensor, 0.0, std, generator)


def orthogonal_(
    tensor: Tensor, gain: float = 1.0, generator: np.random.Generator | None = None
) -> Tensor:
    """A (semi-)orthogonal matrix (rows or columns orthonormal) times ``gain``; dimensions after
    the first are flattened."""
    arr = _array(tensor, "orthogonal_")
    if arr.ndim < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    if arr.size == 0:
        return tensor
    rows = arr.shape[0]
    cols = arr.size // rows
    flat = _gen(generator).standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))  # make the decomposition unique (uniform over orthogonal matrices)
    if rows < cols:
        q = q.T
    arr[...] = (gain * q).reshape(arr.shape)
    return tensor
