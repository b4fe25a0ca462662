"""Reductions and softmax: values and gradients vs PyTorch float64, gradcheck, tie rules."""

import numpy as np
import pytest
from oracle import compare, rand

import deltaprop as dp

SHAPES_DIMS = [
    ((5,), None),
    ((5,), 0),
    ((2, 3), None),
    ((2, 3), 0),
    ((2, 3), 1),
    ((2, 3), -1),
    ((2, 1, 4), 1),
    ((2, 3, 4), (0, 2)),
    ((3, 4, 2), -2),
]


# a full reduction (dim=None) has no keepdim in torch
GRID = [(s, d, k) for s, d in SHAPES_DIMS for k in (False, True) if d is not None or not k]


@pytest.mark.parametrize("shape,dim,keepdim", GRID)
@pytest.mark.parametrize("op", ["sum", "mean", "var", "std", "amax", "amin"])
def test_reductions_vs_torch(shape, dim, keepdim, op):
    x = rand(*shape, seed=11)
    if dim is None:
        compare(lambda t: getattr(t, op)(), lambda t: getattr(t, op)(), [x])
    else:
        compare(
            lambda t: getattr(t, op)(dim, keepdim=keepdim),
            lambda t: getattr(t, op)(dim, keepdim=keepdim),
            [x],
        )


@pytest.mark.parametrize("op", ["max", "min"])
@pytest.mark.parametrize("shape,dim", [((5,), 0), ((2, 3), 1), ((2, 3, 4), 0), ((3, 4), -1)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min_with_dim_returns_values_and_indices(op, shape, dim, keepdim):
    x = rand(*shape, seed=12)
    out = compare(
        lambda t: getattr(t, op)(dim, keepdim=keepdim),
        lambda t: getattr(t, op)(dim, keepdim=keepdim),
        [x],
    )
    values, indices = out
    r = getattr(dp.tensor(x), op)(dim, keepdim)
    assert r.values.shape == values.shape and r.indices.dtype == np.int64


def test_max_gradient_ties_follow_torch():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.5]])
    kw = {"smooth": False}  # ties: the subgradient conventions, no finite differences
    compare(lambda t: t.max(), lambda t: t.max(), [x], **kw)  # shared among all maxima
    compare(lambda t: t.max(1).values, lambda t: t.max(1).values, [x], **kw)  # to the index
    compare(lambda t: t.amax(1), lambda t: t.amax(1), [x], **kw)  # shared
    compare(lambda t: t.min(0).values, lambda t: t.min(0).values, [x], **kw)


@pytest.mark.parametrize("kw", [{"unbiased": False}, {"correction": 0}, {"correction": 2}])
def test_var_std_corrections(kw):
    x = rand(4, 5, seed=3)
    compare(lambda t: t.var(1, **kw), lambda t: t.var(1, **kw), [x])
    compare(lambda t: t.std(0, **kw), lambda t: t.std(0, **kw), [x])


def test_numpy_axis_keepdims_spelling():
    x = dp.tensor(rand(2, 3, 4, seed=1))
    np.testing.assert_allclose(x.sum(axis=1, keepdims=True).data, x.data.sum(1, keepdims=True))
    np.testing.assert_allclose(x.mean(axis=(0, 2)).data, x.data.mean((0, 2)), rtol=1e-6)
    assert x.max(axis=2).values.shape == (2, 3)  # torch's axis= alias also gives (values, indices)
    with pytest.raises(TypeError, match="either dim or axis"):
        x.sum(dim=0, axis=1)


@pytest.mark.parametrize("shape,dim", [((4,), 0), ((2, 5), 1), ((2, 5), 0), ((2, 3, 4), 1)])
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_vs_torch(shape, dim, op):
    compare(lambda t: getattr(t, op)(dim), lambda t: getattr(t, op)(dim), [rand(*shape, seed=4)])


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_large_inputs_no_overflow(op):
    x = dp.tensor([[1000.0, 0.0, -1000.0], [-1e4, -1e4, -1e4]], requires_grad=True)
    y = getattr(x, op)(1)
    (y * dp.tensor([[1.0, 2.0, 3.0], [1.0, 0.0, 0.0]])).sum().backward()
    assert np.isfinite(y.data).all() and np.isfinite(x.grad.data).all()
    if op == "softmax":
        np.testing.assert_allclose(y.data.sum(1), [1.0, 1.0], rtol=1e-6)


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: x.sum(0) * x.mean(1, keepdim=True),
        lambda x: x.var(1) + x.std(0).sum(),
        lambda x: x.max(1).values + x.min(0).values.sum() + x.amax(),
        lambda x: x.softmax(1) * x.log_softmax(0),
    ],
)
def test_gradcheck_reductions(fn):
    x = dp.tensor(rand(3, 4, seed=9), dtype=dp.float64, requires_grad=True)
    assert dp.gradcheck(fn, (x,))


def test_dim_out_of_range_is_clear():
    x = dp.ones(2, 3)
    for call in (lambda: x.sum(2), lambda: x.max(dim=-3), lambda: x.softmax(5)):
        with pytest.raises(ValueError, match=r"dimension out of range.*\[-2, 1\]"):
            call()
    with pytest.raises(IndexError):  # also an IndexError, as in PyTorch
        x.mean(3)
    with pytest.raises(TypeError, match="dim must be an int"):
        x.sum("a")


def test_reductions_keep_float32():
    x = dp.randn(3, 4, requires_grad=True)
    y = x.sum(0) + x.mean(0) + x.var(0) + x.std(0) + x.max(0).values + x.softmax(0).sum(0)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_argmax_argmin():
    x = dp.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 7.0]])
    assert x.argmax(1).tolist() == [1, 0] and x.argmin(1).tolist() == [0, 1]
    assert x.argmax().item() == 3 and x.argmax(1).dtype == np.int64
