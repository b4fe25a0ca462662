"""The classic worked example of backpropagation (a 2-2-2 sigmoid network, one SGD step),
computed with the hand formulas of docs/backprop-notes.md and compared with the framework
(nn.Linear + nn.Sigmoid + optim.SGD), and with the published values (E = 0.298371109,
updated w5 = 0.35891648).

Network: inputs i1, i2; hidden h1, h2; outputs o1, o2; all sigmoid.
    net_h1 = w1 i1 + w2 i2 + b1     net_h2 = w3 i1 + w4 i2 + b1
    net_o1 = w5 h1 + w6 h2 + b2     net_o2 = w7 h1 + w8 h2 + b2
    E = sum_k 1/2 (t_k - o_k)^2
"""

import math

import numpy as np
import pytest

import deltaprop as dp
from deltaprop import nn, optim

W = {"w1": 0.15, "w2": 0.20, "w3": 0.25, "w4": 0.30,
     "w5": 0.40, "w6": 0.45, "w7": 0.50, "w8": 0.55}  # fmt: skip
B1, B2 = 0.35, 0.60
I1, I2 = 0.05, 0.10
T1, T2 = 0.01, 0.99
ETA = 0.5


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def hand_computation() -> dict:
    """Every quantity of one forward/backward/update, by the formulas of the backprop notes."""
    w = W
    # forward: net_j = sum_i w_ij o_i + b_j,  o_j = f(net_j)
    net_h1 = w["w1"] * I1 + w["w2"] * I2 + B1
    net_h2 = w["w3"] * I1 + w["w4"] * I2 + B1
    h1, h2 = sigmoid(net_h1), sigmoid(net_h2)
    net_o1 = w["w5"] * h1 + w["w6"] * h2 + B2
    net_o2 = w["w7"] * h1 + w["w8"] * h2 + B2
    o1, o2 = sigmoid(net_o1), sigmoid(net_o2)
    E = 0.5 * (T1 - o1) ** 2 + 0.5 * (T2 - o2) ** 2
    # output deltas: delta_j = (o_j - t_j) * o_j (1 - o_j)
    d_o1 = (o1 - T1) * o1 * (1 - o1)
    d_o2 = (o2 - T2) * o2 * (1 - o2)
    # hidden deltas: delta_j = (sum_l delta_l w_jl) * o_j (1 - o_j)
    d_h1 = (d_o1 * w["w5"] + d_o2 * w["w7"]) * h1 * (1 - h1)
    d_h2 = (d_o1 * w["w6"] + d_o2 * w["w8"]) * h2 * (1 - h2)
    # weight gradients: dE/dw_ij = delta_j * o_i;  bias gradients: dE/db_j = delta_j
    grads = {
        "w1": d_h1 * I1, "w2": d_h1 * I2, "w3": d_h2 * I1, "w4": d_h2 * I2,
        "w5": d_o1 * h1, "w6": d_o1 * h2, "w7": d_o2 * h1, "w8": d_o2 * h2,
    }  # fmt: skip
    # update: w <- w - eta * dE/dw
    updated = {k: w[k] - ETA * g for k, g in grads.items()}
    return {
        "h": (h1, h2), "o": (o1, o2), "E": E, "delta_o": (d_o1, d_o2), "delta_h": (d_h1, d_h2),
        "grads": grads, "updated": updated,
        "b1_new": (B1 - ETA * d_h1, B1 - ETA * d_h2), "b2_new": (B2 - ETA * d_o1, B2 - ETA * d_o2),
    }  # fmt: skip


def build(dtype):
    """The network as nn.Linear layers (weight is (out, in): row j holds the weights into j)."""
    fc1, fc2 = nn.Linear(2, 2), nn.Linear(2, 2)
    model = nn.Sequential(fc1, nn.Sigmoid(), fc2, nn.Sigmoid()).to(dtype)
    model.load_state_dict({
        "0.weight": np.array([[W["w1"], W["w2"]], [W["w3"], W["w4"]]]),
        "0.bias": np.array([B1, B1]),
        "2.weight": np.array([[W["w5"], W["w6"]], [W["w7"], W["w8"]]]),
        "2.bias": np.array([B2, B2]),
    })  # fmt: skip
    return model, fc1, fc2


def test_hand_formulas_reproduce_the_published_values():
    r = hand_computation()
    assert r["E"] == pytest.approx(0.298371109, abs=1e-9)
    assert r["o"][0] == pytest.approx(0.75136507, abs=1e-8)
    assert r["o"][1] == pytest.approx(0.772928465, abs=1e-9)
    assert r["grads"]["w5"] == pytest.approx(0.082167041, abs=1e-9)
    assert r["updated"]["w5"] == pytest.approx(0.35891648, abs=1e-8)
    assert r["updated"]["w6"] == pytest.approx(0.408666186, abs=1e-9)
    assert r["updated"]["w7"] == pytest.approx(0.511301270, abs=1e-9)
    assert r["updated"]["w8"] == pytest.approx(0.561370121, abs=1e-9)
    assert r["updated"]["w1"] == pytest.approx(0.149780716, abs=1e-9)
    assert r["updated"]["w2"] == pytest.approx(0.19956143, abs=1e-8)
    assert r["updated"]["w3"] == pytest.approx(0.24975114, abs=1e-8)
    assert r["updated"]["w4"] == pytest.approx(0.29950229, abs=1e-8)


@pytest.mark.parametrize("dtype,tol", [(dp.float64, 1e-12), (dp.float32, 1e-6)])
def test_framework_matches_every_hand_computed_quantity(dtype, tol):
    r = hand_computation()
    model, fc1, fc2 = build(dtype)
    x = dp.tensor([[I1, I2]], dtype=dtype)
    t = dp.tensor([[T1, T2]], dtype=dtype)

    # forward, keeping the intermediate tensors to check the deltas dE/dnet
    net_h = fc1(x)
    net_h.retain_grad()
    h = model[1](net_h)
    net_o = fc2(h)
    net_o.retain_grad()
    o = model[3](net_o)
    np.testing.assert_allclose(o.data, [r["o"]], atol=tol)
    np.testing.assert_allclose(h.data, [r["h"]], atol=tol)
    # E = sum 1/2 (t - o)^2  =  0.5 * MSELoss(reduction="sum")
    E = 0.5 * nn.MSELoss(reduction="sum")(o, t)
    assert E.dtype == dtype
    assert E.item() == pytest.approx(r["E"], abs=tol)
    assert E.item() == pytest.approx(0.298371109, abs=max(tol, 1e-9))

    opt = optim.SGD(model.parameters(), lr=ETA)
    opt.zero_grad()
    E.backward()
    # deltas: delta_j = dE/dnet_j
    np.testing.assert_allclose(net_o.grad.data, [r["delta_o"]], atol=tol)
    np.testing.assert_allclose(net_h.grad.data, [r["delta_h"]], atol=tol)
    # gradients: dE/dw_ij = delta_j o_i, laid out as (out, in)
    g = r["grads"]
    np.testing.assert_allclose(fc2.weight.grad.data, [[g["w5"], g["w6"]], [g["w7"], g["w8"]]],
                               atol=tol)  # fmt: skip
    np.testing.assert_allclose(fc1.weight.grad.data, [[g["w1"], g["w2"]], [g["w3"], g["w4"]]],
                               atol=tol)  # fmt: skip
    np.testing.assert_allclose(fc2.bias.grad.data, r["delta_o"], atol=tol)
    np.testing.assert_allclose(fc1.bias.grad.data, r["delta_h"], atol=tol)
    for p in model.parameters():
        assert p.grad.dtype == dtype

    opt.step()
    u = r["updated"]
    np.testing.assert_allclose(fc2.weight.data, [[u["w5"], u["w6"]], [u["w7"], u["w8"]]], atol=tol)
    np.testing.assert_allclose(fc1.weight.data, [[u["w1"], u["w2"]], [u["w3"], u["w4"]]], atol=tol)
    np.testing.assert_allclose(fc1.bias.data, r["b1_new"], atol=tol)
    np.testing.assert_allclose(fc2.bias.data, r["b2_new"], atol=tol)
    assert fc2.weight.data[0, 0] == pytest.approx(0.35891648, abs=max(tol, 1e-8))
    assert fc1.weight.dtype == dtype

    # the error goes down after the step
    E2 = 0.5 * nn.MSELoss(reduction="sum")(model(x), t)
    assert E2.item() < E.item()
