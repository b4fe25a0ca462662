"""nn.utils: gradient clipping and parameters <-> vector, against PyTorch and by their rules."""

import numpy as np
import pytest
from oracle import needs_torch, rand, torch

import deltaprop as dp
from deltaprop import nn
from deltaprop.nn.utils import (
    clip_grad_norm_,
    clip_grad_value_,
    parameters_to_vector,
    vector_to_parameters,
)


def _params_with_grads(seed=0):
    shapes = [(3, 4), (4,), (2, 2, 2)]
    ps = [nn.Parameter(dp.tensor(rand(*s, seed=seed + i), dtype=dp.float64)) for i, s in
          enumerate(shapes)]  # fmt: skip
    for i, p in enumerate(ps):
        p.grad = dp.tensor(rand(*p.shape, seed=seed + 10 + i, low=-3, high=3), dtype=dp.float64)
    return ps


def test_clip_grad_value_clamps_each_element_in_place():
    ps = _params_with_grads()
    before = [p.grad.data.copy() for p in ps]
    buffers = [p.grad.data for p in ps]
    none = nn.Parameter(dp.zeros(2))  # no gradient: left alone
    assert clip_grad_value_(ps + [none], 1.5) is None
    for p, b, buf in zip(ps, before, buffers):
        np.testing.assert_array_equal(p.grad.data, np.clip(b, -1.5, 1.5))
        assert p.grad.data is buf  # in place
    assert none.grad is None
    assert np.abs(np.concatenate([p.grad.data.ravel() for p in ps])).max() == 1.5
    p = nn.Parameter(dp.zeros(3))  # a single tensor is accepted too
    p.grad = dp.tensor([-5.0, 0.25, 9.0])
    clip_grad_value_(p, 1)
    assert p.grad.tolist() == [-1.0, 0.25, 1.0]


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
def test_clip_grad_norm_scales_to_the_max_norm(norm_type):
    ps = _params_with_grads(3)
    flat = np.concatenate([p.grad.data.ravel() for p in ps])
    want = np.linalg.norm(flat, ord=norm_type)
    total = clip_grad_norm_(ps, max_norm=1.0, norm_type=norm_type)
    np.testing.assert_allclose(total.item(), want, rtol=1e-12)
    clipped = np.concatenate([p.grad.data.ravel() for p in ps])
    np.testing.assert_allclose(clipped, flat / (want + 1e-6), rtol=1e-12)
    assert clip_grad_norm_(ps, max_norm=10.0, norm_type=norm_type).item() < 1.0  # unchanged
    np.testing.assert_allclose(np.concatenate([p.grad.data.ravel() for p in ps]), clipped)


def test_clip_grad_norm_non_finite():
    p = nn.Parameter(dp.zeros(2))
    p.grad = dp.tensor([np.inf, 1.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_([p], 1.0, error_if_nonfinite=True)


def test_parameters_to_vector_and_back_round_trip():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    vec = parameters_to_vector(model.parameters())
    sizes = [p.numel() for p in model.parameters()]
    assert vec.shape == (sum(sizes),) and vec.dtype == np.float32
    np.testing.assert_array_equal(
        vec.data, np.concatenate([p.data.ravel() for p in model.parameters()])
    )
    vec.data[0] = 123.0  # a copy: the parameters are not touched
    assert model[0].weight.data[0, 0] != 123.0
    new = dp.arange(float(sum(sizes)))
    vector_to_parameters(new, model.parameters())
    np.testing.assert_array_equal(model[0].weight.data.ravel(), np.arange(12.0))
    np.testing.assert_array_equal(model[0].bias.data, np.arange(12.0, 16.0))
    np.testing.assert_array_equal(model[2].bias.data, new.data[-2:])
    np.testing.assert_array_equal(parameters_to_vector(model.parameters()).data, new.data)


def test_vector_to_parameters_refuses_a_wrong_size_and_writes_nothing():
    model = nn.Linear(2, 2)
    before = parameters_to_vector(model.parameters()).data.copy()
    for bad in (dp.zeros(5), dp.zeros(7), dp.zeros(2, 3)):
        with pytest.raises(ValueError, match=r"1-D vector of 6 elements.*got shape"):
            vector_to_parameters(bad, model.parameters())
    np.testing.assert_array_equal(parameters_to_vector(model.parameters()).data, before)


@needs_torch
def test_utils_match_torch():
    ps = _params_with_grads(5)
    ts = [torch.tensor(p.data.copy(), requires_grad=True) for p in ps]
    for p, t in zip(ps, ts):
        t.grad = torch.tensor(p.grad.data.copy())
    clip_grad_value_(ps, 0.7)
    torch.nn.utils.clip_grad_value_(ts, 0.7)
    for p, t in zip(ps, ts):
        np.testing.assert_array_equal(p.grad.data, t.grad.numpy())
    total = clip_grad_norm_(ps, 0.5)
    t_total = torch.nn.utils.clip_grad_norm_(ts, 0.5)
    np.testing.assert_allclose(total.item(), t_total.item(), rtol=1e-12)
    for p, t in zip(ps, ts):
        np.testing.assert_allclose(p.grad.data, t.grad.numpy(), rtol=1e-12)
    vec, t_vec = parameters_to_vector(ps), torch.nn.utils.parameters_to_vector(ts)
    np.testing.assert_array_equal(vec.data, t_vec.detach().numpy())
    vector_to_parameters(vec * 2, ps)
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(t_vec * 2, ts)
    for p, t in zip(ps, ts):
        np.testing.assert_array_equal(p.data, t.detach().numpy())
