"""F.dropout: inverted scaling, identity when not training, gradient = mask, seeding, errors."""

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.nn import functional as F


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("dtype", [dp.float32, dp.float64])
def test_dropout_scales_kept_values_and_drops_about_p(p, dtype):
    dp.manual_seed(0)
    n = 200_000
    x = dp.ones(n, dtype=dtype)
    y = F.dropout(x, p=p)
    assert y.dtype == dtype
    kept = y.data != 0
    np.testing.assert_allclose(y.data[kept], 1.0 / (1.0 - p), rtol=1e-6)
    # fraction dropped is p within 6 standard deviations of a binomial proportion
    sd = np.sqrt(p * (1 - p) / n)
    assert abs((~kept).mean() - p) < 6 * sd
    # inverted dropout keeps the expectation
    assert abs(y.data.mean() - 1.0) < 6 * np.sqrt(p / (1 - p) / n)


@pytest.mark.parametrize("dtype", [dp.float32, dp.float64])
def test_dropout_gradient_is_the_mask(dtype):
    dp.manual_seed(1)
    x = dp.tensor(np.random.default_rng(0).normal(size=(50, 40)), dtype=dtype, requires_grad=True)
    y = F.dropout(x, p=0.3)
    g = np.random.default_rng(1).normal(size=(50, 40)).astype(dtype)
    y.backward(g)
    assert x.grad.dtype == dtype
    mask = y.data / x.data
    np.testing.assert_allclose(x.grad.data, g * mask, rtol=1e-6)
    kept = mask != 0
    np.testing.assert_allclose(mask[kept], 1 / 0.7, rtol=1e-6)
    assert 0 < kept.mean() < 1


def test_dropout_identity_when_not_training_or_p_zero():
    x = dp.randn(4, 5, requires_grad=True)
    assert F.dropout(x, p=0.5, training=False) is x
    assert F.dropout(x, p=0.0) is x


def test_dropout_p_one_zeroes_everything():
    x = dp.randn(10, requires_grad=True)
    y = F.dropout(x, p=1.0)
    np.testing.assert_array_equal(y.data, 0.0)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, 0.0)


def test_dropout_reproducible_with_manual_seed():
    dp.manual_seed(123)
    a = F.dropout(dp.ones(100), 0.5).data
    dp.manual_seed(123)
    b = F.dropout(dp.ones(100), 0.5).data
    c = F.dropout(dp.ones(100), 0.5).data
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)  # a fresh mask per call


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_dropout_bad_p_raises(p):
    with pytest.raises(ValueError, match=f"between 0 and 1, but got {p}"):
        F.dropout(dp.ones(3), p=p)


def test_dropout_double_backward():
    dp.manual_seed(3)
    x = dp.tensor(np.linspace(-1, 1, 20), dtype=dp.float64, requires_grad=True)
    y = F.dropout(x, 0.4)
    mask = y.data / x.data
    (g,) = dp.autograd.grad((y * y).sum(), x, create_graph=True)  # 2 m^2 x
    (h,) = dp.autograd.grad(g.sum(), x)  # 2 m^2
    np.testing.assert_allclose(g.data, 2 * mask**2 * x.data, rtol=1e-12)
    np.testing.assert_allclose(h.data, 2 * mask**2, rtol=1e-12)
