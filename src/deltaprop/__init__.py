"""deltaprop: a NumPy deep learning framework built around backpropagation.

>>> import deltaprop as dp
>>> x = dp.tensor(-2.0, requires_grad=True)
>>> y = dp.tensor(5.0, requires_grad=True)
>>> z = dp.tensor(-4.0, requires_grad=True)
>>> f = (x + y) * z          # the circuit of the backprop notes: f = -12
>>> f.backward()
>>> x.grad.item(), y.grad.item(), z.grad.item()
(-4.0, -4.0, 3.0)
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import numpy as np

from deltaprop import autograd
from deltaprop.autograd import GradcheckError, gradcheck
from deltaprop.errors import (
    CheckpointError,
    DTypeError,
    InputError,
    InvalidArgumentError,
    ShapeError,
)
from deltaprop.ops.activation import log_softmax_along as log_softmax
from deltaprop.ops.activation import relu, sigmoid, tanh
from deltaprop.ops.activation import softmax_along as softmax
from deltaprop.ops.elementwise import (
    abs,
    add,
    clamp,
    div,
    exp,
    log,
    maximum,
    minimum,
    mul,
    neg,
    pow,
    sqrt,
    sub,
    where,
)
from deltaprop.ops.matmul import matmul
from deltaprop.ops.reduce import amax, amin, argmax, argmin, max, mean, min, std, sum, var
from deltaprop.ops.shape import (
    DimError,
    cat,
    expand,
    flatten,
    permute,
    reshape,
    squeeze,
    stack,
    transpose,
    unsqueeze,
)
from deltaprop.random import get_rng_state, manual_seed, set_rng_state
from deltaprop.tensor import (
    Function,
    Tensor,
    _make,
    _to_array,
    bool_,
    double,
    enable_grad,
    float16,
    float32,
    float64,
    half,
    int8,
    int16,
    int32,
    int64,
    is_grad_enabled,
    is_tensor,
    long,
    no_grad,
    uint8,
)

__version__ = "0.1.0"

# glibc's default malloc returns large freed blocks to the OS and page-faults them back on the
# next training step, which can halve NumPy training speed; fixed thresholds keep them in the
# heap (see deltaprop/_malloc.py). Process-wide and harmless; DELTAPROP_TUNE_MALLOC=0 opts out.
if os.environ.get("DELTAPROP_TUNE_MALLOC", "1") != "0":
    from deltaprop._malloc import tune_malloc as _tune_malloc

    _tune_malloc()

clip = clamp
concatenate = cat


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """A new tensor holding a copy of ``data`` (float32 by default; float64 arrays stay float64).

    >>> tensor([[1, 2], [3, 4]], dtype=float32)
    tensor([[1., 2.],
            [3., 4.]])
    """
    t = _make(_to_array(data, dtype))
    if requires_grad:
        t.requires_grad_(True)
    return t


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with ``array`` (changes to one show in the other)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    return _make(_to_array(array, copy=False))


def as_tensor(data: Any, dtype: Any = None) -> Tensor:
    """Like :func:`tensor` but shares memory with an ndarray of the right dtype."""
    if isinstance(data, Tensor) and (dtype is None or data.dtype == np.dtype(dtype)):
        return data
    return _make(_to_array(data, dtype, copy=False))


def _size(size: tuple) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for s in size:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise ValueError(f"size must be non-negative ints, got {size!r}")
    return tuple(int(s) for s in size)


def _new(arr: np.ndarray, requires_grad: bool) -> Tensor:
    t = _make(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _float(dtype: Any) -> np.dtype:
    return np.dtype(dtype) if dtype is not None else float32


def zeros(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _new(np.zeros(_size(size), dtype=_float(dtype)), requires_grad)


def ones(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _new(np.ones(_size(size), dtype=_float(dtype)), requires_grad)


def empty(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _new(np.empty(_size(size), dtype=_float(dtype)), requires_grad)


def full(size: Any, fill_value: float, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    if dtype is None:
        dtype = float32 if isinstance(fill_value, float) else np.asarray(fill_value).dtype
    return _new(np.full(_size((size,)), fill_value, dtype=dtype), requires_grad)


def zeros_like(x: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _new(np.zeros(x.shape, dtype=dtype or x.dtype), requires_grad)


def ones_like(x: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _new(np.ones(x.shape, dtype=dtype or x.dtype), requires_grad)


def full_like(x: Tensor, fill_value: float, dtype: Any = None) -> Tensor:
    return _make(np.full(x.shape, fill_value, dtype=dtype or x.dtype))


def arange(start: float, end: float | None = None, step: float = 1, dtype: Any = None,
           requires_grad: bool = False) -> Tensor:  # fmt: skip
    """Values from ``start`` to ``end`` (exclusive): int64 for int arguments, else float32."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        ints = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = np.int64 if ints else float32
    return _new(np.arange(start, end, step, dtype=dtype), requires_grad)


def linspace(start: float, end: float, steps: int, dtype: Any = None) -> Tensor:
    return _make(np.linspace(start, end, steps, dtype=_float(dtype)))


def eye(n: int, m: int | None = None, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return _new(np.eye(n, m, dtype=_float(dtype)), requires_grad)


def rand(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Uniform samples on [0, 1) from the global generator (see :func:`manual_seed`)."""
    from deltaprop.random import default_generator

    arr = default_generator().random(_size(size), dtype=np.float64).astype(_float(dtype))
    return _new(arr, requires_grad)


def randn(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples from the global generator (see :func:`manual_seed`)."""
    from deltaprop.random import default_generator

    arr = default_generator().standard_normal(_size(size)).astype(_float(dtype))
    return _new(arr, requires_grad)


def randint(low: int, high: int | None = None, size: Any = (), dtype: Any = None) -> Tensor:
    from deltaprop.random import default_generator

    if high is None:
        low, high = 0, low
    arr = default_generator().integers(low, high, size=_size((size,)))
    return _make(arr.astype(dtype or np.int64))


def randperm(n: int) -> Tensor:
    from deltaprop.random import default_generator

    return _make(default_generator().permutation(n).astype(np.int64))


def numel(x: Tensor) -> int:
    return x.numel()


def allclose(a: Any, b: Any, rtol: float = 1e-5, atol: float = 1e-8) -> bool:
    return bool(np.allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol))


def save(obj: Any, path: Any) -> None:
    """Save a state dict (or nested dict of tensors) in the safetensors format, atomically."""
    from deltaprop.io import save as _save

    _save(obj, path)


def load(path: Any) -> Any:
    """Load what :func:`save` wrote (never executes code from the file)."""
    from deltaprop.io import load as _load

    return _load(path)


def compile(fn: Any = None, *, fullgraph: bool = False, disable: bool = False,
            cache_size_limit: int = 8) -> Any:  # fmt: skip
    """Record a training step once and replay its NumPy work, as ``torch.compile`` is used:
    ``dp.compile(step)`` or ``@dp.compile``. See :mod:`deltaprop.compiler`."""
    from deltaprop.compiler import compile as _compile

    return _compile(fn, fullgraph=fullgraph, disable=disable, cache_size_limit=cache_size_limit)


# Sub-packages with heavier or optional parts are imported on first use, so that
# `import deltaprop` stays fast: dp.nn, dp.optim, dp.data, dp.datasets, dp.explain, dp.viz.
_LAZY = {"nn", "optim", "data", "datasets", "explain", "viz", "io", "cli", "models", "onnx",
         "compiler"}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return importlib.import_module(f"deltaprop.{name}")
    raise AttributeError(f"module 'deltaprop' has no attribute {name!r}")


__all__ = [
    "compile",
    "Tensor", "Function", "tensor", "from_numpy", "as_tensor", "zeros", "ones", "empty", "full",
    "zeros_like", "ones_like", "full_like", "arange", "linspace", "eye", "rand", "randn", "randint",
    "randperm", "manual_seed", "get_rng_state", "set_rng_state", "no_grad", "enable_grad",
    "is_grad_enabled", "is_tensor", "autograd", "gradcheck", "GradcheckError", "DimError",
    "ShapeError", "DTypeError", "InvalidArgumentError", "InputError", "CheckpointError",
    "add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sqrt", "abs", "tanh", "sigmoid",
    "relu", "softmax", "log_softmax", "clamp", "clip", "where", "maximum", "minimum", "matmul",
    "sum", "mean", "max", "min", "amax", "amin", "var", "std", "argmax", "argmin", "reshape",
    "flatten", "transpose", "permute", "unsqueeze", "squeeze", "expand", "cat", "concatenate",
    "stack", "save", "load", "float16", "float32", "float64", "half", "double", "long", "int8",
    "int16", "int32", "int64", "uint8", "bool_", "numel", "allclose",
]  # fmt: skip
