"""Activation functions of ``nn.functional``: each with its forward and local derivative.

relu        y = max(x, 0)                     dy/dx = 1[x > 0]
leaky_relu  y = x if x > 0 else s x           dy/dx = 1 if x > 0 else s
gelu        y = x Phi(x)                      dy/dx = Phi(x) + x phi(x)
            Phi(x) = (1 + erf(x / sqrt 2)) / 2 the standard normal CDF, phi(x) its density
gelu tanh   y = x (1 + tanh u) / 2,  u = sqrt(2/pi) (x + 0.044715 x^3)
            dy/dx = (1 + tanh u) / 2 + x (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2) / 2
sigmoid     y = 1 / (1 + e^-x)                dy/dx = y (1 - y)
tanh        y = tanh(x)                       dy/dx = 1 - y^2
softmax     y_i = e^(x_i - m) / sum_k e^(x_k - m),  m = max_k x_k
            dy_i/dx_j = y_i (1[i=j] - y_j)   =>  gx = y * (gy - sum(gy * y))
log_softmax y_i = x_i - m - log sum_k e^(x_k - m)
            dy_i/dx_j = 1[i=j] - softmax_j    =>  gx = gy - softmax(x) * sum(gy)

softmax and log_softmax subtract the maximum first (log-sum-exp): no overflow for any input.

NumPy has no ``erf``. :func:`normal_cdf` evaluates ``erfc`` with a Chebyshev expansion of
``log(erfc(z) / t) + z^2`` in ``t = 2 / (2 + z)`` (the method of Numerical Recipes, 3rd ed.,
``Erf::erfccheb``; coefficients recomputed here with 40-digit arithmetic): 28 terms give float64
accuracy (relative error ~1e-15) for every z >= 0, 14 terms give float32 accuracy. Using ``erfc``
of ``|x|`` keeps ``Phi`` accurate in *relative* terms far into the left tail, where ``gelu(x)`` is
tiny.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from deltaprop.errors import InvalidArgumentError
from deltaprop.ops.common import as_tensor, check_float
from deltaprop.ops.dual import exp as dual_exp
from deltaprop.ops.dual import where as dual_where
from deltaprop.ops.shape import normalize_dim
from deltaprop.tensor import Function, Tensor

_SQRT1_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_K = 0.044715

# Chebyshev coefficients c_j of f(t) = log(erfc(z) / t) + z^2, t = 2/(2+z), in x = 2t - 1:
# f = c_0 / 2 + sum_j c_j T_j(x).  |c_j| < 3e-17 beyond j = 27, < 1.3e-9 beyond j = 13.
_ERFC_COEF = (
    -1.3026537197817094, 0.6419697923564902, 0.019476473204185836, -0.009561514786808632,
    -0.0009465953444820369, 0.00036683949785276145, 4.252332480690777e-05,
    -2.0278578112534242e-05, -1.6242900046470256e-06, 1.3036558355805232e-06,
    1.5626441722066142e-08, -8.523809591492654e-08, 6.5290544390988515e-09,
    5.059343495551469e-09, -9.91364156493033e-10, -2.273651222931836e-10,
    9.646791102015527e-11, 2.3940380830391146e-12, -6.886027526497553e-12,
    8.944879273090725e-13, 3.130921399342958e-13, -1.1270822361367252e-13,
    3.810905255189232e-16, 7.106097613609237e-15, -1.5230282014571043e-15,
    -9.457494571291233e-17, 1.210237189224279e-16, -2.816663087747177e-17,
)  # fmt: skip


def erfc_nonneg(z: np.ndarray) -> np.ndarray:
    """``erfc(z)`` for ``z >= 0`` (array in, array of the same float dtype out).

    ``erfc(z) = t exp(-z^2 + f(t))``, ``t = 2 / (2 + z)``, f a Chebyshev series summed by
    Clenshaw's recurrence (three buffers, no per-term allocation). Relative accuracy ~1e-15 in
    float64 and ~1e-7 in float32; ``erfc(inf) = 0``.

    >>> import numpy as np
    >>> round(float(erfc_nonneg(np.array(1.0))), 14)  # erfc(1) = 0.15729920705028513...
    0.15729920705029
    """
    n = len(_ERFC_COEF) if z.dtype.itemsize >= 8 else 14
    t = 2.0 / (2.0 + z)
    ty = t * 4.0
    ty -= 2.0  # ty = 2x, x = 2t - 1 in [-1, 1]
    d = np.zeros_like(ty)
    dd = np.zeros_like(ty)
    tmp = np.empty_like(ty)
    for c in _ERFC_COEF[n - 1 : 0 : -1]:  # b_k = c_k + 2x b_{k+1} - b_{k+2}
        np.multiply(ty, d, out=tmp)
        tmp -= dd
        tmp += c
        d, dd, tmp = tmp, d, dd
    # f = c_0/2 + x b_1 - b_2 ;  result t * exp(-z^2 + f)
    np.multiply(ty, d, out=tmp)
    tmp += _ERFC_COEF[0]
    tmp *= 0.5
    tmp -= dd
    np.multiply(z, z, out=d)
    tmp -= d
    np.exp(tmp, out=tmp)
    tmp *= t
    return tmp


def normal_cdf(x: np.ndarray) -> np.ndarray:
    """``Phi(x) = (1 + erf(x / sqrt 2)) / 2 = erfc(-x / sqrt 2) / 2`` elementwise, on arrays.

    Computed as ``h = erfc(|x| / sqrt 2) / 2`` (= Phi(-|x|)), then ``Phi = h`` for x < 0 and
    ``1 - h`` for x >= 0: accurate in relative terms in the left tail.
    """
    h = erfc_nonneg(np.abs(x) * _SQRT1_2)
    h *= 0.5
    np.subtract(1.0, h, out=h, where=x >= 0)
    return h


class ReluFunction(Function):
    """y = max(x, 0).  dy/dx = 1 where x > 0, else 0 (0 at x = 0, as PyTorch)."""

    def forward(self, x):
        self.mask = x > 0
        return np.maximum(x, 0)

    def backward(self, gy):
        return (gy * self.mask,)


class LeakyReluFunction(Function):
    """y = x if x > 0 else s x.  dy/dx = 1 if x > 0 else s (s at x = 0, as PyTorch)."""

    def __init__(self, negative_slope: float) -> None:
        self.slope = negative_slope

    def forward(self, x):
        self.pos = x > 0
        return np.where(self.pos, x, x * self.slope)

    def backward(self, gy):
        return (dual_where(self.pos, gy, gy * self.slope),)


class SigmoidFunction(Function):
    """y = 1 / (1 + e^-x), computed stably.  dy/dx = y (1 - y): one gate instead of four.

    With ``e = exp(-|x|)`` (never overflows): ``y = 1/(1+e)`` for x >= 0 and ``e/(1+e)`` for x < 0.
    """

    def forward(self, x):
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1, e).astype(x.dtype, copy=False) / (1 + e)

    def backward(self, gy):
        y = self.saved_output()
        return (gy * y * (1 - y),)


class TanhFunction(Function):
    """y = tanh(x).  dy/dx = 1 - y^2."""

    def forward(self, x):
        return np.tanh(x)

    def backward(self, gy):
        y = self.saved_output()
        return (gy * (1 - y * y),)


class SoftmaxFunction(Function):
    """y = softmax(x) along ``dim``.  gx = y * (gy - sum_dim(gy * y))."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def forward(self, x):
        e = np.exp(x - x.max(axis=self.dim, keepdims=True))
        e /= e.sum(axis=self.dim, keepdims=True)
        return e

    def backward(self, gy):
        y = self.saved_output()
        return (y * (gy - (gy * y).sum(axis=self.dim, keepdims=True)),)


class LogSoftmaxFunction(Function):
    """y = log_softmax(x) along ``dim``.  gx = gy - exp(y) * sum_dim(gy)."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def forward(self, x):
        z = x - x.max(axis=self.dim, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=self.dim, keepdims=True))

    def backward(self, gy):
        y = self.saved_output()
        return (gy - dual_exp(y) * gy.sum(axis=self.dim, keepdims=True),)


class NormalCdfFunction(Function):
    """y = Phi(x), the standard normal CDF.  dy/dx = phi(x) = exp(-x^2/2) / sqrt(2 pi).

    The backward formula uses only dual helpers, so it is differentiable again (gelu's twin).
    """

    def forward(self, x):
        return normal_cdf(x)

    def backward(self, gy):
        (x,) = self.saved_inputs()
        return (gy * (dual_exp(x * x * -0.5) * _INV_SQRT_2PI),)


class GeluFunction(Function):
    """y = x Phi(x) (exact GELU).  dy/dx = Phi(x) + x phi(x),  phi(x) = exp(-x^2/2)/sqrt(2 pi)."""

    def forward(self, x):
        self.cdf = normal_cdf(x)
        return x * self.cdf

    def backward(self, gy):
        x = self.inputs[0].data
        g = x * x
        g *= -0.5
        np.exp(g, out=g)
        g *= _INV_SQRT_2PI
        g *= x
        g += self.cdf
        g *= gy
        return (g,)

    def twin(self, x: Tensor) -> Tensor:
        return x * NormalCdfFunction().apply(x)


class GeluTanhFunction(Function):
    """y = x (1 + tanh u) / 2,  u = sqrt(2/pi) (x + 0.044715 x^3)  (GELU, tanh approximation).

    dy/dx = (1 + tanh u) / 2 + x (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2) / 2.
    """

    def forward(self, x):
        u = x * x
        u *= _GELU_K
        u += 1.0
        u *= x
        u *= _SQRT_2_OVER_PI
        th = np.tanh(u, out=u)
        self.th = th
        y = th + 1.0
        y *= x
        y *= 0.5
        return y

    def backward(self, gy):
        x = self.inputs[0].data
        th = self.th
        du = x * x
        du *= 3.0 * _GELU_K
        du += 1.0
        du *= 0.5 * _SQRT_2_OVER_PI  # du/dx / 2
        sech2 = th * th
        np.subtract(1.0, sech2, out=sech2)
        du *= sech2
        du *= x
        du += 0.5
        du += 0.5 * th
        du *= gy
        return (du,)

    def twin(self, x: Tensor) -> Tensor:
        u = (x + x * x * x * _GELU_K) * _SQRT_2_OVER_PI
        return x * (u.tanh() + 1.0) * 0.5


# ----------------------------------------------------------------------------------------------
# functions
# ----------------------------------------------------------------------------------------------


def relu(x: Tensor, inplace: bool = False) -> Tensor:
    """``max(x, 0)`` elementwise; the gradient at 0 is 0 (as PyTorch).

    ``inplace`` is accepted for PyTorch compatibility; the result is always a new tensor.

    >>> import deltaprop as dp
    >>> relu(dp.tensor([-1.0, 0.0, 2.0]))
    tensor([0., 0., 2.])
    """
    return ReluFunction().apply(as_tensor(x))


def leaky_relu(x: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """``x`` where ``x > 0``, else ``negative_slope * x``.

    ``inplace`` is accepted for PyTorch compatibility; the result is always a new tensor.

    >>> import deltaprop as dp
    >>> leaky_relu(dp.tensor([-2.0, 3.0]), 0.5)
    tensor([-1.,  3.])
    """
    x = as_tensor(x)
    check_float("leaky_relu", "input", x)
    return LeakyReluFunction(float(negative_slope)).apply(x)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """GELU: ``x Phi(x)`` (``approximate='none'``, exact erf form) or its tanh approximation.

    >>> import deltaprop as dp
    >>> gelu(dp.tensor([0.0, 1.0], dtype=dp.float64)).numpy().round(6)
    array([0.      , 0.841345])
    """
    x = as_tensor(x)
    check_float("gelu", "input", x)
    if approximate == "none":
        return GeluFunction().apply(x)
    if approximate == "tanh":
        return GeluTanhFunction().apply(x)
    raise InvalidArgumentError(
        f"gelu: approximate argument must be either 'none' or 'tanh', got {approximate!r}"
    )


def sigmoid(x: Tensor) -> Tensor:
    """``1 / (1 + exp(-x))``, stable for any input; dy/dx = y (1 - y).

    >>> import deltaprop as dp
    >>> sigmoid(dp.tensor([0.0, 1000.0, -1000.0]))
    tensor([0.5, 1. , 0. ])
    """
    return SigmoidFunction().apply(as_tensor(x))


def tanh(x: Tensor) -> Tensor:
    """``tanh(x)``; dy/dx = 1 - y^2."""
    return TanhFunction().apply(as_tensor(x))


def softmax_dim(x: Tensor, dim: Any, op: str = "softmax") -> int:
    """``dim`` checked and normalised for a softmax of ``x`` (which must be floating point)."""
    if dim is None:
        raise TypeError(f"{op}: dim must be given (e.g. dim=-1 for the last axis)")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating point tensor, got dtype {x.dtype}")
    return normalize_dim(dim, x.ndim, op)


def _implicit_dim(name: str, ndim: int, stacklevel: int) -> int:
    """PyTorch's legacy implicit dim (with its deprecation warning) when ``dim`` is None."""
    warnings.warn(
        f"Implicit dimension choice for {name} has been deprecated. "
        "Change the call to include dim=X as an argument.",
        UserWarning,
        stacklevel=stacklevel,
    )
    return 0 if ndim in (0, 1, 3) else 1


def _softmax_input(name: str, x: Any, dim: Any, stacklevel: int, dtype: Any) -> tuple:
    x = as_tensor(x)
    if dtype is not None:
        x = x.to(dtype)
    if dim is None:
        dim = _implicit_dim(name, x.ndim, stacklevel + 1)
    return x, softmax_dim(x, dim, name)


def softmax(x: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    """Softmax along ``dim`` (``dtype`` casts the input first), as ``torch.nn.functional``.

    Positive values that sum to 1 along ``dim``. With ``dim=None`` PyTorch's legacy choice is
    made (dim 0 for 0-, 1- and 3-D inputs, else 1) with a warning.

    >>> import deltaprop as dp
    >>> softmax(dp.tensor([[0.0, 0.0]]), dim=1)
    tensor([[0.5, 0.5]])
    """
    x, d = _softmax_input("softmax", x, dim, _stacklevel, dtype)
    return SoftmaxFunction(d).apply(x)


def log_softmax(x: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    """``log(softmax(x, dim))`` computed without overflow or log(0) (log-sum-exp)."""
    x, d = _softmax_input("log_softmax", x, dim, _stacklevel, dtype)
    return LogSoftmaxFunction(d).apply(x)


def softmax_along(x: Tensor, dim: int) -> Tensor:
    """Softmax along a required ``dim``, as ``torch.softmax`` and ``Tensor.softmax``."""
    return SoftmaxFunction(softmax_dim(x, dim, "softmax")).apply(x)


def log_softmax_along(x: Tensor, dim: int) -> Tensor:
    """log_softmax along a required ``dim``, as ``torch.log_softmax``."""
    return LogSoftmaxFunction(softmax_dim(x, dim, "log_softmax")).apply(x)


__all__ = [
    "relu", "leaky_relu", "gelu", "sigmoid", "tanh", "softmax", "log_softmax", "softmax_along",
    "log_softmax_along", "softmax_dim", "normal_cdf", "erfc_nonneg", "ReluFunction",
    "LeakyReluFunction", "SigmoidFunction", "TanhFunction", "SoftmaxFunction",
    "LogSoftmaxFunction", "GeluFunction", "GeluTanhFunction", "NormalCdfFunction",
]  # fmt: skip
