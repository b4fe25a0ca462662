"""Elementwise ops. Each class states its forward and, next to it, its local derivative.

Binary ops broadcast as NumPy does; their backward reduces the upstream gradient back to each
input's shape (:func:`~deltaprop.ops.dual.unbroadcast`). ``gy`` is the upstream gradient dL/dy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deltaprop.ops.common import as_operands, check_broadcast
from deltaprop.ops.dual import log as dual_log
from deltaprop.ops.dual import unbroadcast
from deltaprop.ops.dual import where as dual_where
from deltaprop.tensor import Function, Tensor, _make, float32


class BinaryFunction(Function):
    """A binary op that broadcasts, shared by the arithmetic ops: a Python number or array
    operand becomes a constant Tensor (:func:`as_operands`), clear shape errors, PyTorch's dtype
    promotion."""

    op = "binary"

    def apply(self, a: Any, b: Any) -> Tensor:  # type: ignore[override]
        if not (isinstance(a, Tensor) and isinstance(b, Tensor)):
            a, b = as_operands(a, b)
        if a.data.shape != b.data.shape:
            check_broadcast(self.op, f"shapes {a.shape} and {b.shape}", a.shape, b.shape)
        if a.data.dtype != b.data.dtype:
            a, b = _promote(a, b)
        return Function.apply(self, a, b)


def _promote(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """PyTorch's rule where it differs from NumPy's: a float tensor combined with an integer or
    bool tensor keeps the float dtype (NumPy would make float32 with int64 float64)."""
    fa, fb = a.dtype.kind == "f", b.dtype.kind == "f"
    if fa and not fb:
        return a, cast(b, a.dtype)
    if fb and not fa:
        return cast(a, b.dtype), b
    return a, b


# ----------------------------------------------------------------------------------------------
# arithmetic
# ----------------------------------------------------------------------------------------------


class AddFunction(BinaryFunction):
    """y = a + b.  dy/da = 1, dy/db = 1: the add gate passes gy unchanged to both inputs."""

    op = "add"

    def forward(self, a, b):
        return a + b

    def backward(self, gy):
        a, b = self.inputs
        ga = unbroadcast(gy, a) if self.needs_grad[0] else None
        gb = unbroadcast(gy, b) if self.needs_grad[1] else None
        return ga, gb


class SubFunction(BinaryFunction):
    """y = a - b.  dy/da = 1, dy/db = -1."""

    op = "sub"

    def forward(self, a, b):
        return a - b

    def backward(self, gy):
        a, b = self.inputs
        ga = unbroadcast(gy, a) if self.needs_grad[0] else None
        gb = unbroadcast(-gy, b) if self.needs_grad[1] else None
        return ga, gb


class MulFunction(BinaryFunction):
    """y = a * b.  dy/da = b, dy/db = a: the mul gate swaps its inputs."""

    op = "mul"

    def forward(self, a, b):
        return a * b

    def backward(self, gy):
        a, b = self.saved_inputs()
        ga = unbroadcast(gy * b, a) if self.needs_grad[0] else None
        gb = unbroadcast(gy * a, b) if self.needs_grad[1] else None
        return ga, gb


class DivFunction(BinaryFunction):
    """y = a / b.  dy/da = 1/b, dy/db = -a/b^2."""

    op = "div"

    def forward(self, a, b):
        return a / b

    def backward(self, gy):
        a, b = self.saved_inputs()
        ga = unbroadcast(gy / b, a) if self.needs_grad[0] else None
        gb = unbroadcast(-gy * a / (b * b), b) if self.needs_grad[1] else None
        return ga, gb


class NegFunction(Function):
    """y = -x.  dy/dx = -1."""

    def forward(self, x):
        return -x

    def backward(self, gy):
        return (-gy,)


class PowConstFunction(Function):
    """y = x^p for a constant p.  dy/dx = p x^(p-1)."""

    def __init__(self, p: float) -> None:
        self.p = p

    def forward(self, x):
        return x**self.p

    def backward(self, gy):
        (x,) = self.saved_inputs()
        p = self.p
        if p == 2:
            return (gy * (2 * x),)
        return (gy * (p * x ** (p - 1)),)


class PowFunction(BinaryFunction):
    """y = a^b.  dy/da = b a^(b-1), dy/db = a^b ln a (taken as 0 where a = 0, as PyTorch)."""

    op = "pow"

    def forward(self, a, b):
        return a**b

    def backward(self, gy):
        a, b = self.saved_inputs()
        ga = gb = None
        if self.needs_grad[0]:
            ga = unbroadcast(gy * b * a ** (b - 1), a)
        if self.needs_grad[1]:
            y = self.saved_output()
            a_data = self.inputs[0].data
            safe_a = dual_where(a_data == 0, 1.0, a) if (a_data == 0).any() else a
            gb = unbroadcast(gy * y * dual_log(safe_a), b)
        return ga, gb


def add(a: Any, b: Any) -> Tensor:
    return AddFunction().apply(a, b)


def sub(a: Any, b: Any) -> Tensor:
    return SubFunction().apply(a, b)


def mul(a: Any, b: Any) -> Tensor:
    return MulFunction().apply(a, b)


def div(a: Any, b: Any) -> Tensor:
    a, b = as_operands(a, b)
    if a.dtype.kind != "f" and b.dtype.kind != "f":  # true division of integers -> float32
        a, b = cast(a, float32), cast(b, float32)
    return DivFunction().apply(a, b)


def neg(x: Tensor) -> Tensor:
    return NegFunction().apply(x)


def pow(a: Any, b: Any) -> Tensor:
    """``a ** b``; a constant exponent uses the cheaper :class:`PowConstFunction`."""
    if isinstance(a, Tensor) and isinstance(b, (int, float)) and not isinstance(b, bool):
        return PowConstFunction(b).apply(a)
    return PowFunction().apply(a, b)


# ----------------------------------------------------------------------------------------------
# unary functions
# ----------------------------------------------------------------------------------------------


class ExpFunction(Function):
    """y = e^x.  dy/dx = e^x = y."""

    def forward(self, x):
        return np.exp(x)

    def backward(self, gy):
        return (gy * self.saved_output(),)


class LogFunction(Function):
    """y = ln x.  dy/dx = 1/x."""

    def forward(self, x):
        return np.log(x)

    def backward(self, gy):
        (x,) = self.saved_inputs()
        return (gy / x,)


class SqrtFunction(Function):
    """y = sqrt(x).  dy/dx = 1 / (2 sqrt(x)) = 1/(2y) (infinite at x = 0, as PyTorch)."""

    def forward(self, x):
        return np.sqrt(x)

    def backward(self, gy):
        return (gy / (2 * self.saved_output()),)


class AbsFunction(Function):
    """y = |x|.  dy/dx = sign(x); the subgradient at 0 is 0 (as PyTorch)."""

    def forward(self, x):
        return np.abs(x)

    def backward(self, gy):
        return (gy * np.sign(self.inputs[0].data),)


class MaximumFunction(BinaryFunction):
    """y = max(a, b) elementwise.  The max gate routes gy to the larger input; a tie splits it
    in half between both (as PyTorch)."""

    op = "maximum"

    def forward(self, a, b):
        return np.maximum(a, b)

    def backward(self, gy):
        a, b = self.inputs
        wa = (a.data > b.data) + 0.5 * (a.data == b.data)
        ga = unbroadcast(gy * wa.astype(a.dtype), a) if self.needs_grad[0] else None
        gb = unbroadcast(gy * (1 - wa).astype(b.dtype), b) if self.needs_grad[1] else None
        return ga, gb


class MinimumFunction(BinaryFunction):
    """y = min(a, b) elementwise.  Routes gy to the smaller input; a tie splits it in half."""

    op = "minimum"

    def forward(self, a, b):
        return np.minimum(a, b)

    def backward(self, gy):
        a, b = self.inputs
        wa = (a.data < b.data) + 0.5 * (a.data == b.data)
        ga = unbroadcast(gy * wa.astype(a.dtype), a) if self.needs_grad[0] else None
        gb = unbroadcast(gy * (1 - wa).astype(b.dtype), b) if self.needs_grad[1] else None
        return ga, gb


class ClampFunction(Function):
    """y = min(max(x, lo), hi).  dy/dx = 1 where lo <= x <= hi (inclusive, as PyTorch), else 0."""

    def __init__(self, lo: float | None, hi: float | None) -> None:
        self.lo, self.hi = lo, hi

    def forward(self, x):
        y = x
        if self.lo is not None:
            y = np.maximum(y, np.asarray(self.lo, dtype=x.dtype))
        if self.hi is not None:
            y = np.minimum(y, np.asarray(self.hi, dtype=x.dtype))
        return y if y is not x else x.copy()

    def backward(self, gy):
        x = self.inputs[0].data
        mask = np.ones(x.shape, dtype=bool)
        if self.lo is not None:
            mask &= x >= self.lo
        if self.hi is not None:
            mask &= x <= self.hi
        return (gy * mask,)


class WhereFunction(Function):
    """y = a where cond else b.  dy/da = cond, dy/db = not cond (cond is a constant mask)."""

    def __init__(self, cond: np.ndarray) -> None:
        self.cond = cond

    def forward(self, a, b):
        return np.where(self.cond, a, b)

    def backward(self, gy):
        a, b = self.inputs
        zero = 0.0
        ga = unbroadcast(dual_where(self.cond, gy, zero), a) if self.needs_grad[0] else None
        gb = unbroadcast(dual_where(self.cond, zero, gy), b) if self.needs_grad[1] else None
        return ga, gb


class CastFunction(Function):
    """y = x converted to another dtype.  dy/dx = 1 (the gradient is cast back)."""

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = dtype

    def forward(self, x):
        self.in_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return (gy.astype(self.in_dtype),)


class CloneFunction(Function):
    """y = copy of x.  dy/dx = 1."""

    def forward(self, x):
        return x.copy()

    def backward(self, gy):
        return (gy,)


def exp(x: Tensor) -> Tensor:
    return ExpFunction().apply(x)


def log(x: Tensor) -> Tensor:
    return LogFunction().apply(x)


def sqrt(x: Tensor) -> Tensor:
    return SqrtFunction().apply(x)


def abs(x: Tensor) -> Tensor:
    return AbsFunction().apply(x)


def maximum(a: Any, b: Any) -> Tensor:
    return MaximumFunction().apply(a, b)


def minimum(a: Any, b: Any) -> Tensor:
    return MinimumFunction().apply(a, b)


def clamp(x: Tensor, min: float | None = None, max: float | None = None) -> Tensor:
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    lo = float(min) if min is not None else None
    hi = float(max) if max is not None else None
    return ClampFunction(lo, hi).apply(x)


def where(cond: Any, a: Any, b: Any) -> Tensor:
    """``a`` where ``cond`` is true, else ``b`` (all three broadcast together)."""
    c = cond.data if isinstance(cond, Tensor) else np.asarray(cond)
    if c.dtype != np.bool_:
        raise TypeError(f"where: condition must be a bool tensor, got dtype {c.dtype}")
    a, b = as_operands(a, b)
    what = f"condition {c.shape}, input {a.shape} and other {b.shape}"
    check_broadcast("where", what, c.shape, a.shape, b.shape)
    return WhereFunction(c).apply(a, b)


def cast(x: Tensor, dtype: Any) -> Tensor:
    dt = np.dtype(dtype)
    if dt == x.dtype:
        return x
    if dt.kind != "f" and x.requires_grad:
        return _make(x.data.astype(dt))  # leaves the graph: integer tensors have no gradient
    return CastFunction(dt).apply(x)


def compare(a: Any, b: Any, ufunc: Any) -> Tensor:
    """Elementwise comparison (no gradient): a bool tensor."""
    a, b = as_operands(a, b)
    try:
        return _make(np.asarray(ufunc(a.data, b.data)))
    except ValueError:
        raise ValueError(
            f"{ufunc.__name__}: shapes {a.shape} and {b.shape} cannot be broadcast together"
        ) from None
