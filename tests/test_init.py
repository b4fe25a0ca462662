"""nn.init: gains and fans as PyTorch, bounds and statistics of each initialiser, seeding,
in-place filling with the dtype kept."""

import math

import numpy as np
import pytest
from oracle import needs_torch, torch

import deltaprop as dp
from deltaprop import nn
from deltaprop.nn import init


@needs_torch
@pytest.mark.parametrize(
    "nonlinearity,param",
    [("linear", None), ("conv2d", None), ("conv_transpose3d", None), ("sigmoid", None),
     ("tanh", None), ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2),
     ("leaky_relu", 1), ("selu", None)],
)  # fmt: skip
def test_calculate_gain_matches_torch(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(
        torch.nn.init.calculate_gain(nonlinearity, param), rel=1e-15
    )


def test_calculate_gain_errors():
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="not a valid number"):
        init.calculate_gain("leaky_relu", True)


@needs_torch
@pytest.mark.parametrize("shape", [(3, 5), (16, 6, 5, 5), (4, 2, 3), (7, 1, 1, 1, 2)])
def test_fans_match_torch(shape):
    ours = init._calculate_fan_in_and_fan_out(dp.empty(*shape))
    assert ours == torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(*shape))


def test_fan_needs_two_dims_and_mode_is_checked():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(dp.empty(5))
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_uniform_(dp.empty(3, 3), mode="fan_avg")


def _big(*shape, dtype=dp.float32):
    return dp.empty(*shape, dtype=dtype)


@pytest.mark.parametrize(
    "fill,bound",
    [
        (lambda t: init.uniform_(t, -0.3, 0.7), (-0.3, 0.7)),
        (lambda t: init.xavier_uniform_(t), math.sqrt(6 / (200 + 300))),
        (lambda t: init.xavier_uniform_(t, gain=2.0), 2 * math.sqrt(6 / (200 + 300))),
        (lambda t: init.kaiming_uniform_(t), math.sqrt(2) * math.sqrt(3 / 300)),  # a=0
        (lambda t: init.kaiming_uniform_(t, a=math.sqrt(5)), 1 / math.sqrt(300)),
        (lambda t: init.kaiming_uniform_(t, mode="fan_out", nonlinearity="relu"),
         math.sqrt(2) * math.sqrt(3 / 200)),
    ],
)  # fmt: skip
def test_uniform_initialisers_fill_their_interval(fill, bound):
    dp.manual_seed(0)
    t = _big(200, 300)
    lo, hi = bound if isinstance(bound, tuple) else (-bound, bound)
    out = fill(t)
    assert out is t and t.dtype == np.float32
    assert t.data.min() >= np.float32(lo) and t.data.max() <= np.float32(hi)  # (rounding)
    assert t.data.min() < lo + 0.01 * (hi - lo) and t.data.max() > hi - 0.01 * (hi - lo)
    # uniform variance (hi - lo)^2 / 12, mean (lo + hi) / 2
    assert abs(t.data.var() - (hi - lo) ** 2 / 12) < 0.03 * (hi - lo) ** 2 / 12
    assert abs(t.data.mean() - (lo + hi) / 2) < 0.01 * (hi - lo)


@pytest.mark.parametrize(
    "fill,mean,std",
    [
        (lambda t: init.normal_(t, 1.0, 0.5), 1.0, 0.5),
        (lambda t: init.xavier_normal_(t), 0.0, math.sqrt(2 / (200 + 300))),
        (lambda t: init.kaiming_normal_(t, nonlinearity="relu"), 0.0, math.sqrt(2 / 300)),
        (lambda t: init.kaiming_normal_(t, mode="fan_out", nonlinearity="tanh"), 0.0,
         5 / 3 / math.sqrt(200)),
    ],
)  # fmt: skip
def test_normal_initialisers_statistics(fill, mean, std):
    dp.manual_seed(1)
    t = _big(200, 300)
    fill(t)
    assert abs(t.data.mean() - mean) < 0.02 * std + 1e-3
    assert abs(t.data.std() - std) < 0.02 * std


def test_kaiming_on_conv_weight_uses_receptive_field():
    dp.manual_seed(2)
    w = _big(64, 32, 3, 3)
    init.kaiming_uniform_(w, nonlinearity="relu")
    bound = math.sqrt(2) * math.sqrt(3 / (32 * 9))
    assert w.data.max() <= bound and w.data.max() > 0.98 * bound


def test_trunc_normal_constant_ones_zeros_eye_orthogonal():
    dp.manual_seed(3)
    t = init.trunc_normal_(_big(100, 100), std=2.0, a=-1.0, b=3.0)
    assert t.data.min() >= -1.0 and t.data.max() <= 3.0
    assert init.constant_(_big(2, 2), 0.25).tolist() == [[0.25, 0.25], [0.25, 0.25]]
    assert init.ones_(_big(3)).tolist() == [1.0, 1.0, 1.0]
    assert init.zeros_(_big(3)).tolist() == [0.0, 0.0, 0.0]
    np.testing.assert_array_equal(init.eye_(_big(2, 3)).data, np.eye(2, 3))
    q = init.orthogonal_(_big(4, 6, dtype=dp.float64)).data
    np.testing.assert_allclose(q @ q.T, np.eye(4), atol=1e-12)
    q = init.orthogonal_(_big(6, 4, dtype=dp.float64), gain=2.0).data
    np.testing.assert_allclose(q.T @ q, 4 * np.eye(4), atol=1e-12)


def test_init_is_in_place_on_parameters_and_keeps_dtype():
    lin = nn.Linear(3, 4, dtype=dp.float64)
    arr = lin.weight.data
    out = init.xavier_normal_(lin.weight)
    assert out is lin.weight and lin.weight.data is arr and arr.dtype == np.float64
    assert lin.weight.requires_grad and lin.weight.grad_fn is None


def test_init_reproducible_with_manual_seed_and_generator():
    dp.manual_seed(7)
    a = init.kaiming_normal_(_big(5, 5)).data.copy()
    dp.manual_seed(7)
    b = init.kaiming_normal_(_big(5, 5)).data.copy()
    np.testing.assert_array_equal(a, b)
    g1, g2 = np.random.default_rng(9), np.random.default_rng(9)
    np.testing.assert_array_equal(
        init.uniform_(_big(4), generator=g1).data, init.uniform_(_big(4), generator=g2).data
    )


def test_zero_element_tensor_warns_and_is_left_alone():
    with pytest.warns(UserWarning, match="zero-element"):
        t = init.kaiming_uniform_(_big(0, 3))
    assert t.shape == (0, 3)


def test_init_rejects_non_tensors():
    with pytest.raises(TypeError, match="expected a Tensor"):
        init.ones_([1.0, 2.0])
