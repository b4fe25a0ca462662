"""Property-based tests: random shapes and values for elementwise, reduction and shape ops.

Each property compares deltaprop's value with NumPy's and its gradient with the closed form
(or with a finite-difference check), for arbitrary shapes hypothesis generates.
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import deltaprop as dp

FLOATS = st.floats(-3, 3, allow_nan=False, allow_infinity=False, width=64)
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
SETTINGS = settings(max_examples=40, deadline=None)


def arrays(shape):
    return hnp.arrays(np.float64, shape, elements=FLOATS)


@SETTINGS
@given(data=st.data(), shape=shapes)
def test_binary_broadcast_values_and_grads(data, shape):
    bshape = data.draw(hnp.broadcastable_shapes(shape, min_dims=0, max_dims=3, max_side=4))
    a_np, b_np = data.draw(arrays(shape)), data.draw(arrays(bshape))
    a = dp.tensor(a_np, requires_grad=True)
    b = dp.tensor(b_np, requires_grad=True)
    y = a * b + a - b / (b * b + 1)
    np.testing.assert_allclose(y.data, a_np * b_np + a_np - b_np / (b_np * b_np + 1))
    y.sum().backward()
    assert a.grad.shape == shape and b.grad.shape == bshape
    # d/da sum(a*b + a) = sum of (b + 1) over the positions each element of a was broadcast to
    n_out = int(np.prod(np.broadcast_shapes(shape, bshape)))
    assert np.isclose(
        a.grad.data.sum(), (np.broadcast_to(b_np, np.broadcast_shapes(shape, bshape)) + 1).sum()
    )
    assert n_out >= a_np.size
    assert dp.gradcheck(lambda a, b: a * b + a - b / (b * b + 1), (a, b))


@SETTINGS
@given(data=st.data(), shape=shapes)
def test_unary_values_and_grads(data, shape):
    x_np = data.draw(arrays(shape))
    x = dp.tensor(x_np, requires_grad=True)
    y = x.tanh() + x.sigmoid() + x.exp() + x.relu() + x.abs()
    s = 1 / (1 + np.exp(-x_np))
    np.testing.assert_allclose(
        y.data, np.tanh(x_np) + s + np.exp(x_np) + np.maximum(x_np, 0) + np.abs(x_np), rtol=1e-12
    )
    y.sum().backward()
    expected = 1 - np.tanh(x_np) ** 2 + s * (1 - s) + np.exp(x_np) + (x_np > 0) + np.sign(x_np)
    np.testing.assert_allclose(x.grad.data, expected, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(data=st.data(), shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
def test_reductions_match_numpy(data, shape):
    x_np = data.draw(arrays(shape))
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    keep = data.draw(st.booleans())
    x = dp.tensor(x_np, requires_grad=True)
    np.testing.assert_allclose(x.sum(dim, keep).data, x_np.sum(dim, keepdims=keep), atol=1e-12)
    np.testing.assert_allclose(x.mean(dim, keep).data, x_np.mean(dim, keepdims=keep), atol=1e-12)
    np.testing.assert_allclose(x.max(dim, keep).values.data, x_np.max(dim, keepdims=keep))
    np.testing.assert_allclose(x.amin(dim, keep).data, x_np.min(dim, keepdims=keep))
    (x.sum(dim) * 2 + x.mean(dim)).sum().backward()
    np.testing.assert_allclose(x.grad.data, np.full(shape, 2 + 1 / shape[dim]), rtol=1e-12)
    x.grad = None
    x.max(dim).values.sum().backward()
    # each slice along dim sends exactly 1 to one element
    np.testing.assert_allclose(x.grad.data.sum(dim), np.ones(np.delete(shape, dim % len(shape))))


@SETTINGS
@given(data=st.data(), shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=3))
def test_permute_reshape_roundtrip_grad(data, shape):
    x_np = data.draw(arrays(shape))
    perm = data.draw(st.permutations(range(len(shape))))
    x = dp.tensor(x_np, requires_grad=True)
    y = x.permute(*perm).reshape(-1)
    np.testing.assert_array_equal(y.data, x_np.transpose(perm).reshape(-1))
    w = np.arange(y.shape[0], dtype=np.float64)
    (y * dp.tensor(w)).sum().backward()
    expected = np.empty_like(x_np)
    expected.transpose(perm).reshape(-1)[:] = 0  # shape check only
    np.testing.assert_array_equal(x.grad.data.transpose(perm).reshape(-1), w)


@settings(max_examples=15, deadline=None)
@given(data=st.data(), shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=3))
def test_gradcheck_random_composite(data, shape):
    # distinct values along every axis: std's derivative is undefined at zero spread
    x_np = data.draw(arrays(shape)) + np.arange(int(np.prod(shape))).reshape(shape) * 0.37
    x = dp.tensor(x_np, requires_grad=True)
    dim = data.draw(st.integers(0, len(shape) - 1))
    assert dp.gradcheck(lambda t: (t.tanh() * t).softmax(dim) + t.std(dim, keepdim=True), (x,),
                        atol=1e-5)  # fmt: skip
