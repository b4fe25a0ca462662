"""Elementwise ops: values and gradients vs PyTorch float64, gradcheck, dtypes, stability."""

import numpy as np
import pytest
from oracle import compare, needs_torch, rand, torch

import deltaprop as dp

# shapes for binary ops, including broadcasting and size-1 dimensions
BINARY_SHAPES = [
    ((3,), (3,)),
    ((2, 3), (2, 3)),
    ((2, 3), (3,)),
    ((2, 1), (1, 4)),
    ((4, 1, 3), (2, 1)),
    ((), (2, 2)),
    ((1,), (3, 1)),
]

BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b),
    "sub": (lambda a, b: a - b, lambda a, b: a - b),
    "mul": (lambda a, b: a * b, lambda a, b: a * b),
    "div": (lambda a, b: a / b, lambda a, b: a / b),
    "maximum": (dp.maximum, lambda a, b: torch.maximum(a, b)),
    "minimum": (dp.minimum, lambda a, b: torch.minimum(a, b)),
    "pow": (lambda a, b: a.abs() ** b, lambda a, b: a.abs() ** b),
}


@needs_torch
@pytest.mark.parametrize("name", list(BINARY))
@pytest.mark.parametrize("sa,sb", BINARY_SHAPES)
def test_binary_vs_torch(name, sa, sb):
    f, g = BINARY[name]
    a = rand(*sa, seed=1)
    b = rand(*sb, seed=2)
    if name == "div":
        b = np.where(np.abs(b) < 0.3, 0.7, b)
    compare(f, g, [a, b])


UNARY = {
    "neg": (lambda x: -x, lambda x: -x, (-2, 2)),
    "exp": (lambda x: x.exp(), lambda x: x.exp(), (-2, 2)),
    "log": (lambda x: x.log(), lambda x: x.log(), (0.1, 3)),
    "sqrt": (lambda x: x.sqrt(), lambda x: x.sqrt(), (0.1, 3)),
    "abs": (lambda x: x.abs(), lambda x: x.abs(), (-2, 2)),
    "tanh": (lambda x: x.tanh(), lambda x: x.tanh(), (-3, 3)),
    "sigmoid": (lambda x: x.sigmoid(), lambda x: x.sigmoid(), (-5, 5)),
    "relu": (lambda x: x.relu(), lambda x: x.relu(), (-2, 2)),
    "pow3": (lambda x: x**3, lambda x: x**3, (-2, 2)),
    "pow-0.5": (lambda x: x**-0.5, lambda x: x**-0.5, (0.2, 2)),
    "rpow": (lambda x: 2.0**x, lambda x: 2.0**x, (-2, 2)),
    "clamp": (lambda x: x.clamp(-0.5, 0.7), lambda x: x.clamp(-0.5, 0.7), (-2, 2)),
    "clamp_min": (lambda x: x.clamp(min=0.1), lambda x: x.clamp(min=0.1), (-2, 2)),
    "scalar_ops": (
        lambda x: (3 - x) * 2 / (x + 5) + 1,
        lambda x: (3 - x) * 2 / (x + 5) + 1,
        (-2, 2),
    ),
}


@pytest.mark.parametrize("name", list(UNARY))
@pytest.mark.parametrize("shape", [(), (4,), (2, 3), (2, 1, 3)])
def test_unary_vs_torch(name, shape):
    f, g, (lo, hi) = UNARY[name]
    compare(f, g, [rand(*shape, seed=3, low=lo, high=hi)])


def test_where_vs_torch():
    cond = rand(2, 3, seed=5) > 0
    compare(
        lambda a, b: dp.where(dp.tensor(cond), a, b),
        lambda a, b: torch.where(torch.tensor(cond), a, b),
        [rand(2, 3, seed=1), rand(3, seed=2)],
    )


def test_ties_follow_torch():
    """maximum/minimum split a tie's gradient in half; relu and abs give 0 at 0; clamp passes
    the gradient at the boundary (inclusive)."""
    x = np.array([0.0, 1.0, -1.0, 0.5])
    kw = {"smooth": False}  # ties: the subgradient conventions, no finite differences
    compare(lambda a, b: dp.maximum(a, b), lambda a, b: torch.maximum(a, b), [x, x.copy()], **kw)
    compare(lambda a, b: dp.minimum(a, b), lambda a, b: torch.minimum(a, b), [x, x.copy()], **kw)
    compare(lambda a: a.relu(), lambda a: a.relu(), [x], **kw)
    compare(lambda a: a.abs(), lambda a: a.abs(), [x], **kw)
    compare(lambda a: a.clamp(-1.0, 0.5), lambda a: a.clamp(-1.0, 0.5), [x], **kw)


@pytest.mark.parametrize(
    "fn",
    [
        lambda a, b: a * b + a / (b * b + 1),
        lambda a, b: dp.maximum(a, b) - dp.minimum(a, b * 0.5),
        lambda a, b: (a.exp() + b.tanh()).sigmoid() * (b * b + 0.5).log(),
        lambda a, b: (a * a + 0.1).sqrt() ** 1.5 + (b.abs() + 0.5) ** a,
        lambda a, b: dp.where(a > 0, a * b, -b).clamp(-1.0, 1.0),
    ],
)
def test_gradcheck_elementwise(fn):
    a = dp.tensor(rand(3, 4, seed=7), dtype=dp.float64, requires_grad=True)
    b = dp.tensor(rand(4, seed=8), dtype=dp.float64, requires_grad=True)
    assert dp.gradcheck(fn, (a, b))


def test_float32_stays_float32():
    """Python scalars must not promote float32 to float64 (values or gradients)."""
    x = dp.randn(3, 2, requires_grad=True)
    y = ((x * 2.5 + 1) / 3.0 - 0.5) ** 2
    y = (y.exp() + y.sigmoid() + y.tanh() + (y + 1).log() + (y + 1).sqrt()).clamp(0.0, 10.0)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_mixed_dtype_gradients_keep_input_dtype():
    a = dp.randn(3, requires_grad=True)
    b = dp.tensor(np.ones(3), requires_grad=True)  # float64 array stays float64
    y = a * b
    assert y.dtype == np.float64
    y.sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64


@pytest.mark.parametrize("v", [1000.0, -1000.0, 88.8, -89.0])
def test_sigmoid_is_stable_for_large_inputs(v):
    x = dp.tensor([v], requires_grad=True)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # no overflow, no NaN
        y = x.sigmoid()
        y.sum().backward()
    assert np.isfinite(y.data).all() and np.isfinite(x.grad.data).all()
    expected = 1.0 if v > 0 else 0.0
    assert abs(y.item() - expected) < 1e-6 or (v < 0 and y.item() < 1e-37)


def test_tanh_of_1000_is_finite():
    x = dp.tensor([1000.0, -1000.0], requires_grad=True)
    y = x.tanh()
    y.sum().backward()
    assert y.tolist() == [1.0, -1.0] and x.grad.tolist() == [0.0, 0.0]


def test_broadcast_error_names_op_and_shapes():
    a, b = dp.ones(2, 3), dp.ones(4)
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4,\)"):
        a + b
    with pytest.raises(ValueError, match=r"mul: shapes \(2, 3\) and \(4,\)"):
        a * b


def test_comparisons_give_bool_without_grad():
    x = dp.tensor([1.0, 2.0, 3.0], requires_grad=True)
    m = x > 1.5
    assert m.dtype == np.bool_ and not m.requires_grad
    assert m.tolist() == [False, True, True]
    assert (x == 2.0).tolist() == [False, True, False]
    assert (~m).tolist() == [True, False, False]


def test_integer_tensors_never_require_grad():
    with pytest.raises(RuntimeError, match="floating point"):
        dp.tensor([1, 2, 3], requires_grad=True)
    i = dp.tensor([1, 2])
    assert i.dtype == np.int64 and (i / 2).dtype == np.float32


def test_where_requires_bool_condition():
    with pytest.raises(TypeError, match="where: condition must be a bool"):
        dp.where(dp.ones(2), dp.ones(2), dp.zeros(2))


def test_clamp_needs_a_bound():
    with pytest.raises(ValueError, match="clamp"):
        dp.ones(2).clamp()
