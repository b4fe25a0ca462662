"""Activations of nn.functional against PyTorch: values, gradients, dtypes, double backward."""

import math
import warnings

import numpy as np
import pytest
from oracle import compare, needs_torch, rand, torch

import deltaprop as dp
from deltaprop.nn import functional as F
from deltaprop.ops.activation import GeluTanhFunction, erfc_nonneg, normal_cdf

TF = torch.nn.functional if torch is not None else None

# inputs including exact zeros (the kinks of relu / leaky_relu) and a wide range
GRID = np.concatenate([np.linspace(-6, 6, 49), [0.0, -0.0, 1e-9, -1e-9]]).reshape(-1, 1)


@needs_torch
@pytest.mark.parametrize(
    "name, dp_fn, th_fn",
    [
        ("relu", F.relu, lambda x: TF.relu(x)),
        ("leaky_default", F.leaky_relu, lambda x: TF.leaky_relu(x)),
        ("leaky_0.2", lambda x: F.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2)),
        ("leaky_neg", lambda x: F.leaky_relu(x, -1.5), lambda x: TF.leaky_relu(x, -1.5)),
        ("gelu", F.gelu, lambda x: TF.gelu(x)),
        ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"),
         lambda x: TF.gelu(x, approximate="tanh")),
        ("sigmoid", F.sigmoid, torch.sigmoid if torch else None),
        ("tanh", F.tanh, torch.tanh if torch else None),
    ],
)  # fmt: skip
@pytest.mark.parametrize("shape", [(53, 1), (4, 13)])
def test_elementwise_activation_matches_torch(name, dp_fn, th_fn, shape):
    x = GRID.reshape(shape) if shape[0] == 53 else rand(*shape, low=-4, high=4)
    compare(dp_fn, th_fn, [x])


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_float64_accuracy_wide_range(approximate):
    x = np.linspace(-12, 12, 4001)
    compare(lambda a: F.gelu(a, approximate), lambda a: TF.gelu(a, approximate=approximate),
            [x], atol=1e-12, rtol=1e-9)  # fmt: skip


def test_erfc_matches_math_erfc_float64():
    z = np.concatenate([np.linspace(0, 26, 5001), np.geomspace(1e-12, 1.0, 100)])
    want = np.array([math.erfc(v) for v in z])
    got = erfc_nonneg(z)
    np.testing.assert_allclose(got, want, rtol=2e-13, atol=0)  # relative, deep into the tail


def test_erfc_float32_and_limits():
    z = np.linspace(0, 9, 1001)
    got = erfc_nonneg(z.astype(np.float32))
    assert got.dtype == np.float32
    want = np.array([math.erfc(v) for v in z.astype(np.float32).astype(np.float64)])
    np.testing.assert_allclose(got, want, rtol=2e-5)
    np.testing.assert_allclose(erfc_nonneg(np.array([0.0, np.inf])), [1.0, 0.0], rtol=1e-15, atol=0)


def test_normal_cdf_symmetry_and_tail():
    x = np.linspace(-30, 30, 601)
    phi = normal_cdf(x)
    np.testing.assert_allclose(phi + normal_cdf(-x), 1.0, atol=1e-15)
    # the left tail keeps relative accuracy: Phi(-30) = erfc(30/sqrt 2)/2 ~ 4.9e-198
    assert phi[0] == pytest.approx(0.5 * math.erfc(30 / math.sqrt(2)), rel=1e-12)


@pytest.mark.parametrize("fn", [F.relu, F.leaky_relu, F.gelu, F.sigmoid, F.tanh,
                                lambda x: F.gelu(x, approximate="tanh")])  # fmt: skip
def test_float32_preserved_and_extreme_inputs(fn):
    x = dp.tensor(np.array([-1000.0, -30.0, -1.0, 0.0, 1.0, 30.0, 1000.0], np.float32),
                  requires_grad=True)  # fmt: skip
    y = fn(x)
    assert y.dtype == np.float32
    assert np.isfinite(y.data).all()
    y.sum().backward()
    assert x.grad.dtype == np.float32
    assert np.isfinite(x.grad.data).all()


@needs_torch
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_float32_close_to_torch(approximate):
    x = rand(1000, low=-8, high=8).astype(np.float32)
    got = F.gelu(dp.tensor(x), approximate).data
    want = TF.gelu(torch.tensor(x), approximate=approximate).numpy()
    np.testing.assert_allclose(got, want, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("dim", [0, 1, -1, 2])
@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax_family_matches_torch(dim, fn):
    compare(lambda x: getattr(F, fn)(x, dim), lambda x: getattr(TF, fn)(x, dim),
            [rand(3, 4, 5)])  # fmt: skip


@needs_torch
@pytest.mark.parametrize("shape", [(4,), (2, 3), (2, 3, 4), (2, 3, 4, 5)])
@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax_implicit_dim_warns_like_torch(shape, fn):
    x = rand(*shape)
    with pytest.warns(UserWarning, match="Implicit dimension choice"):
        got = getattr(F, fn)(dp.tensor(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = getattr(TF, fn)(torch.tensor(x))
    np.testing.assert_allclose(got.data, want.numpy(), rtol=1e-6)


def test_softmax_dtype_argument():
    y = F.softmax(dp.tensor([[1.0, 2.0]]), dim=1, dtype=dp.float64)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y.data.sum(), 1.0)


@pytest.mark.parametrize(
    "fn",
    [F.gelu, lambda x: F.gelu(x, approximate="tanh"), lambda x: F.leaky_relu(x, 0.1),
     F.sigmoid, F.tanh, lambda x: F.softmax(x, 1), lambda x: F.log_softmax(x, 0)],
)  # fmt: skip
def test_gradcheck(fn):
    x = dp.tensor(rand(3, 4, seed=3) + 0.01, dtype=dp.float64, requires_grad=True)
    assert dp.gradcheck(fn, (x,))


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_fused_matches_twin(approximate):
    """The composed twin (the teaching version) is a second oracle for the fused op."""
    x = dp.tensor(rand(50, low=-5, high=5), dtype=dp.float64, requires_grad=True)
    y = F.gelu(x, approximate)
    (gx,) = dp.autograd.grad(y.sum(), x)
    fn = y.grad_fn
    x2 = dp.tensor(x.data, requires_grad=True)
    y2 = fn.twin(x2)
    (gx2,) = dp.autograd.grad(y2.sum(), x2)
    np.testing.assert_allclose(y.data, y2.data, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(gx.data, gx2.data, rtol=1e-12, atol=1e-15)
    assert isinstance(fn, GeluTanhFunction) == (approximate == "tanh")


@needs_torch
@pytest.mark.parametrize(
    "dp_fn, th_fn",
    [
        (F.gelu, lambda x: TF.gelu(x)),
        (lambda x: F.gelu(x, approximate="tanh"), lambda x: TF.gelu(x, approximate="tanh")),
        (lambda x: F.leaky_relu(x, 0.3), lambda x: TF.leaky_relu(x, 0.3)),
    ],
)
def test_second_derivative_matches_torch(dp_fn, th_fn):
    x = rand(20, low=-3, high=3)
    v = rand(20, seed=5)
    xd = dp.tensor(x, requires_grad=True)
    (g,) = dp.autograd.grad((dp_fn(xd) * dp_fn(xd)).sum(), xd, create_graph=True)
    (h,) = dp.autograd.grad((g * dp.tensor(v)).sum(), xd)
    xt = torch.tensor(x, requires_grad=True)
    (gt,) = torch.autograd.grad((th_fn(xt) * th_fn(xt)).sum(), xt, create_graph=True)
    (ht,) = torch.autograd.grad((gt * torch.tensor(v)).sum(), xt)
    np.testing.assert_allclose(g.data, gt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h.data, ht.numpy(), rtol=1e-9, atol=1e-12)


def test_gelu_bad_approximate():
    with pytest.raises(ValueError, match="approximate.*'none' or 'tanh'.*'erf'"):
        F.gelu(dp.zeros(2), approximate="erf")


def test_integer_input_rejected():
    with pytest.raises(TypeError, match="leaky_relu.*floating point"):
        F.leaky_relu(dp.tensor([1, 2]))


def test_relu_subgradient_and_leaky_slope_at_zero():
    x = dp.tensor([0.0, 0.0], requires_grad=True)
    F.relu(x).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0])
    x = dp.tensor([0.0], requires_grad=True)
    F.leaky_relu(x, 0.2).sum().backward()
    np.testing.assert_allclose(x.grad.data, [0.2])  # as torch: the slope at exactly 0


def test_functional_namespace_has_the_api():
    names = ["linear", "conv2d", "max_pool2d", "avg_pool2d", "layer_norm", "batch_norm",
             "dropout", "relu", "leaky_relu", "gelu", "sigmoid", "tanh", "softmax", "log_softmax",
             "mse_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
             "cross_entropy", "nll_loss"]  # fmt: skip
    for name in names:
        assert callable(getattr(F, name)), name
    assert sorted(F.__all__) == sorted(names)
