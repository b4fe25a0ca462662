"""F.linear against PyTorch (float64 values and gradients), dtypes, errors, double backward."""

import numpy as np
import pytest
from oracle import compare, needs_torch, rand, torch

import deltaprop as dp
from deltaprop.errors import DTypeError, ShapeError
from deltaprop.nn import functional as F


@needs_torch
@pytest.mark.parametrize("x_shape", [(5, 3), (2, 4, 3), (3,), (2, 2, 2, 3), (1, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(x_shape, bias):
    arrays = [rand(*x_shape, seed=1), rand(4, 3, seed=2)] + ([rand(4, seed=3)] if bias else [])
    compare(F.linear, torch.nn.functional.linear, arrays)


@needs_torch
@pytest.mark.parametrize("grad", [[True, False, False], [False, True, True], [False, False, True]])
def test_linear_partial_requires_grad(grad):
    compare(
        F.linear,
        torch.nn.functional.linear,
        [rand(6, 3, seed=1), rand(2, 3, seed=2), rand(2, seed=3)],
        grad=grad,
    )


def test_linear_formula_and_bias_broadcast():
    x = np.arange(6.0).reshape(2, 3)
    w = np.array([[1.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    b = np.array([10.0, -10.0])
    y = F.linear(dp.tensor(x), dp.tensor(w), dp.tensor(b))
    np.testing.assert_allclose(y.data, x @ w.T + b, rtol=1e-6)


@pytest.mark.parametrize("x_shape", [(4, 3), (2, 3, 3)])
def test_linear_float32_end_to_end(x_shape):
    x = dp.tensor(rand(*x_shape).astype(np.float32), requires_grad=True)
    w = dp.tensor(rand(5, 3, seed=2).astype(np.float32), requires_grad=True)
    b = dp.tensor(rand(5, seed=3).astype(np.float32), requires_grad=True)
    y = F.linear(x, w, b)
    assert y.dtype == np.float32
    (y * y).sum().backward()
    for t in (x, w, b):
        assert t.grad.dtype == np.float32
        assert t.grad.shape == t.shape


def test_linear_gradcheck():
    x = dp.tensor(rand(3, 2, 4), dtype=dp.float64, requires_grad=True)
    w = dp.tensor(rand(3, 4, seed=5), dtype=dp.float64, requires_grad=True)
    b = dp.tensor(rand(3, seed=6), dtype=dp.float64, requires_grad=True)
    assert dp.gradcheck(F.linear, (x, w, b))


def test_linear_shape_error_names_both_shapes():
    x, w = dp.zeros(5, 4), dp.zeros(3, 5)
    with pytest.raises(ShapeError, match=r"\(5, 4\).*\(3, 5\)"):
        F.linear(x, w)
    with pytest.raises(ValueError):  # also a ValueError (and a RuntimeError, as torch raises)
        F.linear(x, w)
    with pytest.raises(RuntimeError):
        F.linear(x, w)


def test_linear_bad_bias_and_weight():
    with pytest.raises(ShapeError, match=r"bias shape \(4,\)"):
        F.linear(dp.zeros(2, 3), dp.zeros(5, 3), dp.zeros(4))
    with pytest.raises(ShapeError, match="2-D"):
        F.linear(dp.zeros(2, 3), dp.zeros(3))
    with pytest.raises(DTypeError, match="float64"):
        F.linear(dp.zeros(2, 3), dp.zeros(5, 3, dtype=dp.float64))
    with pytest.raises(TypeError, match="floating point"):
        F.linear(dp.tensor([[1, 2, 3]]), dp.zeros(5, 3))


def _hvp(lib, loss_fn, params, vs):
    """Hessian-vector product by double backward, in deltaprop or torch."""
    loss = loss_fn(*params)
    if lib == "dp":
        gs = dp.autograd.grad(loss, params, create_graph=True)
        dot = sum((g * v).sum() for g, v in zip(gs, vs))
        return [h.data for h in dp.autograd.grad(dot, params)]
    gs = torch.autograd.grad(loss, params, create_graph=True)
    dot = sum((g * v).sum() for g, v in zip(gs, vs))
    return [h.numpy() for h in torch.autograd.grad(dot, params)]


@needs_torch
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_hessian_vector_product_linear_tanh_mse(reduction):
    arrays = [rand(6, 3, seed=1), rand(4, 3, seed=2), rand(4, seed=3)]
    target = rand(6, 4, seed=4)
    vs = [rand(4, 3, seed=7), rand(4, seed=8)]

    def dp_loss(x, w, b):
        return F.mse_loss(F.tanh(F.linear(x, w, b)), dp.tensor(target), reduction=reduction)

    def th_loss(x, w, b):
        y = torch.tanh(torch.nn.functional.linear(x, w, b))
        return torch.nn.functional.mse_loss(y, torch.tensor(target), reduction=reduction)

    dp_params = [dp.tensor(a, requires_grad=True) for a in arrays]
    th_params = [torch.tensor(a, requires_grad=True) for a in arrays]
    got = _hvp("dp", dp_loss, dp_params, [dp.tensor(v) for v in [rand(6, 3, seed=9)] + vs])
    want = _hvp("torch", th_loss, th_params, [torch.tensor(v) for v in [rand(6, 3, seed=9)] + vs])
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-9)


@needs_torch
def test_hessian_vector_product_linear_cross_entropy():
    arrays = [rand(5, 3, seed=1), rand(4, 3, seed=2), rand(4, seed=3)]
    target = np.array([0, 3, 1, 1, 2])
    vs = [rand(5, 3, seed=6), rand(4, 3, seed=7), rand(4, seed=8)]

    def dp_loss(x, w, b):
        return F.cross_entropy(F.linear(x, w, b), dp.tensor(target))

    def th_loss(x, w, b):
        return torch.nn.functional.cross_entropy(
            torch.nn.functional.linear(x, w, b), torch.tensor(target)
        )

    got = _hvp("dp", dp_loss, [dp.tensor(a, requires_grad=True) for a in arrays],
               [dp.tensor(v) for v in vs])  # fmt: skip
    want = _hvp("torch", th_loss, [torch.tensor(a, requires_grad=True) for a in arrays],
                [torch.tensor(v) for v in vs])  # fmt: skip
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-9)
