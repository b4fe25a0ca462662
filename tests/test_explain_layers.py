"""deltaprop explain of LayerNorm, BatchNorm (training mode), AvgPool2d and Dropout.

Every number of the JSON output (forward values, statistics, deltas, gradients, updated
weights) is compared with closed forms written here in NumPy from the formulas of the notes,
and ``trace(model)`` of each layer with PyTorch in float64.
"""

from __future__ import annotations

import numpy as np
import pytest
from explain_helpers import EXAMPLES, sigmoid

import deltaprop as dp
from deltaprop import nn
from deltaprop.explain import SpecError, explain_file, load_spec, parse_spec, trace
from deltaprop.explain.notation import Fmt

TOL = {"rtol": 1e-10, "atol": 1e-12}


def layernorm_closed_form(x, gamma, beta, eps, dy):
    """Forward and backward of a layer norm over the last axis (the notes' closed form)."""
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    sigma = np.sqrt(var + eps)
    xhat = (x - mu) / sigma
    g = dy * gamma
    dx = (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True)) / sigma
    return mu, var, xhat, gamma * xhat + beta, dx, (dy * xhat).sum(0), dy.sum(0)


def test_layernorm_example_every_number():
    d = explain_file(EXAMPLES / "layernorm.toml", verify=True).to_dict()
    step = d["steps"][0]
    assert step["verify"]["ok"]
    lin1, ln, lin2 = step["layers"]
    x, t = np.array([[1.0, 2.0]]), np.array([[1.0]])
    W1 = np.array([[0.5, -0.2], [0.1, 0.4], [-0.3, 0.8]])
    b1 = np.array([0.1, 0.0, -0.1])
    gamma, beta = np.array([1.0, 0.5, 2.0]), np.array([0.0, 0.1, -0.1])
    W2, b2 = np.array([[0.3, -0.6, 0.9]]), np.array([0.05])
    h = x @ W1.T + b1
    # forward with the backward's upstream gradient computed from the closed form
    mu, var, xhat, y, _, _, _ = layernorm_closed_form(h, gamma, beta, 1e-5, np.zeros_like(h))
    o = sigmoid(y @ W2.T + b2)
    E = 0.5 * ((t - o) ** 2).sum()
    d_o = (o - t) * o * (1 - o)
    dy = d_o @ W2
    *_, dx, dgamma, dbeta = layernorm_closed_form(h, gamma, beta, 1e-5, dy)
    assert step["loss"] == pytest.approx(E, rel=1e-12)
    np.testing.assert_allclose(lin1["net"], h, **TOL)
    nd = ln["normalization"]
    np.testing.assert_allclose(nd["mean"], mu.ravel(), **TOL)
    np.testing.assert_allclose(nd["var"], var.ravel(), **TOL)
    np.testing.assert_allclose(nd["xhat"], xhat, **TOL)
    np.testing.assert_allclose(ln["net"], y, **TOL)
    np.testing.assert_allclose(lin2["delta"], d_o, **TOL)
    np.testing.assert_allclose(ln["delta"], dy, **TOL)
    # the three parts add up to the closed form, which is the engine's input gradient
    parts = np.array(nd["part_xhat"]) + np.array(nd["part_mean"]) + np.array(nd["part_var"])
    np.testing.assert_allclose(parts, dx, **TOL)
    np.testing.assert_allclose(nd["input_grad"], dx, **TOL)
    np.testing.assert_allclose(lin1["delta"], dx, **TOL)
    np.testing.assert_allclose(ln["weight_grad"], dgamma, **TOL)
    np.testing.assert_allclose(ln["bias_grad"], dbeta, **TOL)
    np.testing.assert_allclose(lin1["weight_grad"], dx.T @ x, **TOL)
    np.testing.assert_allclose(lin1["weights_after"], W1 - 0.5 * dx.T @ x, **TOL)
    np.testing.assert_allclose(ln["weights_after"], gamma - 0.5 * dgamma, **TOL)
    np.testing.assert_allclose(lin2["weights_after"], W2 - 0.5 * d_o.T @ y, **TOL)


def test_layernorm_text_states_the_three_parts_and_the_closed_form():
    text = explain_file(EXAMPLES / "layernorm.toml").to_text(width=200)
    assert "mu = 1/3 (h1 + h2 + h3) = 1/3 (0.2 + 0.9 + 1.2) = 0.7667" in text
    assert "dE/dh1 = g_y1 / sigma + dE/dmu / 3 + dE/dvar * 2 (h1 - mu) / 3 =" in text
    assert "(closed form)" in text and "dE/dgamma1 = dE/dy1 * xhat_y1" in text


def test_batchnorm_example_statistics_over_the_batch():
    d = explain_file(EXAMPLES / "batchnorm.toml", verify=True).to_dict()
    step = d["steps"][0]
    assert step["verify"]["ok"]
    lin1, bn, lin2 = step["layers"]
    x = np.array([[1.0, 0.0], [0.5, 1.0], [-1.0, 2.0]])
    t = np.array([[1.0], [0.0], [1.0]])
    W1, b1 = np.array([[0.4, -0.7], [0.9, 0.2]]), np.array([0.0, 0.1])
    gamma, beta = np.array([1.5, 0.8]), np.array([0.2, -0.1])
    W2, b2 = np.array([[0.6, -0.5]]), np.array([0.1])
    m = 3
    h = x @ W1.T + b1
    # batch norm = layer norm of the transposed matrix (each feature over the batch)
    mu, var, xhat, _, _, _, _ = layernorm_closed_form(h.T, 1.0, 0.0, 1e-5, np.zeros_like(h.T))
    y = gamma * xhat.T + beta
    a = sigmoid(y)
    o = sigmoid(a @ W2.T + b2)
    E = ((o - t) ** 2).sum() / (2 * m)
    d_o = (o - t) * o * (1 - o) / m
    dy = (d_o @ W2) * a * (1 - a)
    g = dy * gamma
    xh = xhat.T
    sigma = np.sqrt(var.ravel() + 1e-5)
    dx = (g - g.mean(0) - xh * (g * xh).mean(0)) / sigma
    assert step["loss"] == pytest.approx(E, rel=1e-12)
    np.testing.assert_allclose(bn["normalization"]["mean"], mu.ravel(), **TOL)
    np.testing.assert_allclose(bn["normalization"]["var"], var.ravel(), **TOL)
    np.testing.assert_allclose(bn["net"], y, **TOL)
    np.testing.assert_allclose(bn["out"], a, **TOL)
    np.testing.assert_allclose(bn["delta"], dy, **TOL)
    np.testing.assert_allclose(bn["input_grad"], dx, **TOL)
    np.testing.assert_allclose(bn["weight_grad"], (dy * xh).sum(0), **TOL)
    np.testing.assert_allclose(bn["bias_grad"], dy.sum(0), **TOL)
    np.testing.assert_allclose(lin1["weight_grad"], dx.T @ x, **TOL)
    np.testing.assert_allclose(lin1["weights_after"], W1 - 1.0 * dx.T @ x, **TOL)
    np.testing.assert_allclose(lin2["weights_after"], W2 - 1.0 * d_o.T @ a, **TOL)


def test_avgpool_example_spreads_each_gradient_evenly():
    d = explain_file(EXAMPLES / "avgpool.toml", verify=True).to_dict()
    step = d["steps"][0]
    assert step["verify"]["ok"]
    conv, pool, lin = step["layers"]
    X = np.array(
        [[1.0, 2.0, 0.0, 1.0], [0.0, 1.0, 3.0, -1.0], [2.0, -1.0, 1.0, 0.5], [1.0, 0.0, -2.0, 1.0]]
    )
    K = np.array([[0.5, -1.0], [0.25, 1.0]])
    net = np.array(
        [[(X[r : r + 2, c : c + 2] * K).sum() + 0.1 for c in range(3)] for r in range(3)]
    )
    a = np.maximum(net, 0)
    pooled = np.array([[a[r : r + 2, c : c + 2].mean() for c in range(2)] for r in range(2)])
    w = np.array([0.3, -0.2, 0.5, 0.1])
    o = sigmoid(pooled.ravel() @ w)
    delta_o = o - 1.0  # sigmoid + binary cross entropy: delta = o - t (one output, mean = sum)
    dpool = (delta_o * w).reshape(2, 2)
    da = np.zeros((3, 3))
    for r in range(2):
        for c in range(2):
            da[r : r + 2, c : c + 2] += dpool[r, c] / 4  # 1/(kh kw) to every input of the window
    dnet = da * (net > 0)
    dK = np.array([[(X[i : i + 3, j : j + 3] * dnet).sum() for j in range(2)] for i in range(2)])
    # one input channel given as H x W: the JSON keeps the spec's shape (no channel axis)
    np.testing.assert_allclose(np.array(pool["net"])[0], pooled, **TOL)
    np.testing.assert_allclose(lin["delta"], [[delta_o]], **TOL)
    np.testing.assert_allclose(np.array(pool["input_grad"])[0], da, **TOL)
    assert all(r["share"] == 0.25 and len(r["inputs"]) == 4 for r in pool["routes"])
    np.testing.assert_allclose(np.array(conv["delta"])[0], dnet, **TOL)
    np.testing.assert_allclose(conv["weight_grad"], dK, **TOL)
    np.testing.assert_allclose(conv["weights_after"], K - 0.1 * dK, **TOL)


def test_bce_cancellation_is_stated():
    text = explain_file(EXAMPLES / "avgpool.toml").to_text(width=200)
    rule = "delta_o1 = (o1 - t1) / (o1 (1 - o1)) / (m K) * o1 * (1 - o1) = (o1 - t1) / (m K) ="
    assert rule in text
    assert "Cancellation" in text and "so delta = o - t" in text


def test_dropout_example_mask_scaling_and_gradient():
    spec = load_spec(EXAMPLES / "dropout.toml")
    d = explain_file(EXAMPLES / "dropout.toml", verify=True).to_dict()
    step = d["steps"][0]
    assert step["verify"]["ok"]
    lin1, drop, lin2 = step["layers"]
    mask = np.array(drop["mask"])
    assert set(np.unique(mask)) <= {0.0, 2.0} and 0 < (mask == 0).sum() < mask.size
    # the mask is the engine's dropout draw with the spec's seed
    state = dp.random.get_rng_state()
    dp.manual_seed(spec.seed)
    engine_mask = dp.nn.functional.dropout(dp.ones(1, 4, dtype=dp.float64), p=0.5).numpy()
    dp.random.set_rng_state(state)
    np.testing.assert_array_equal(mask, engine_mask)
    x = np.array([[1.0, 0.5, -0.5]])
    W1 = np.array([[0.2, -0.4, 0.1], [0.5, 0.3, -0.2], [-0.1, 0.6, 0.4], [0.3, 0.2, 0.7]])
    b1 = np.array([0.1, 0.0, 0.2, -0.1])
    W2 = np.array([[0.4, -0.3, 0.2, 0.1], [-0.2, 0.5, 0.3, -0.4]])
    b2 = np.array([0.0, 0.1])
    h = np.maximum(x @ W1.T + b1, 0)
    r = h * mask
    z = r @ W2.T + b2
    o = np.exp(z) / np.exp(z).sum()
    delta2 = o - np.array([[0.0, 1.0]])  # softmax + cross entropy: delta = o - t
    dr = delta2 @ W2
    dh = dr * mask  # through the same mask
    np.testing.assert_allclose(drop["out"], r, **TOL)
    np.testing.assert_allclose(lin2["delta"], delta2, **TOL)
    np.testing.assert_allclose(drop["input_grad"], dh, **TOL)
    np.testing.assert_allclose(lin1["delta"], dh * (x @ W1.T + b1 > 0), **TOL)
    np.testing.assert_allclose(lin2["weights_after"], W2 - 0.1 * delta2.T @ r, **TOL)


def test_near_zero_values_print_as_zero():
    assert Fmt(4).at(1.0, 3e-17).s(3e-17) == "0"
    assert Fmt(4).at(1e-16).s(3e-17) == "3e-17"  # small, but not small for its line
    spec = parse_spec(
        {
            "loss": "mse_half",
            "lr": 0.1,
            "layers": [{"type": "layernorm"}, {"weights": [[1.0, 1.0, 1.0]], "biases": [0.0]}],
            "data": {"inputs": [[0.1, 0.2, -0.3]], "targets": [[0.0]]},
        }
    )
    from deltaprop.explain import explain_spec

    text = explain_spec(spec).to_text(width=200)
    mean = 0.1 + 0.2 - 0.3  # 5.55e-17 in floating point
    assert mean != 0 and "mu = 1/3 (i1 + i2 + i3) = 1/3 (0.1 + 0.2 + (-0.3)) = 0\n" in text


# ----------------------------------------------------------------------------------------------
# trace(model) against PyTorch (float64)
# ----------------------------------------------------------------------------------------------


def _torch_step(model_t, x, t, lr):
    import torch

    xt = torch.tensor(x, requires_grad=True)
    out = model_t(xt)
    loss = 0.5 * ((out - torch.tensor(t)) ** 2).sum()
    loss.backward()
    grads = [p.grad.numpy().copy() for p in model_t.parameters()]
    with torch.no_grad():
        for p in model_t.parameters():
            p -= lr * p.grad
    return float(loss.detach()), grads, [p.detach().numpy().copy() for p in model_t.parameters()]


@pytest.mark.parametrize("kind", ["layernorm", "batchnorm", "avgpool"])
def test_trace_of_a_model_matches_pytorch(kind):
    torch = pytest.importorskip("torch", reason="PyTorch is the float64 oracle")
    dp.manual_seed(1)
    if kind == "avgpool":
        model = nn.Sequential(
            nn.Conv2d(1, 2, 2),
            nn.Tanh(),
            nn.AvgPool2d(2, stride=1),
            nn.Flatten(),
            nn.Linear(8, 2),
            nn.Sigmoid(),
        ).double()
        tmodel = torch.nn.Sequential(
            torch.nn.Conv2d(1, 2, 2),
            torch.nn.Tanh(),
            torch.nn.AvgPool2d(2, stride=1),
            torch.nn.Flatten(),
            torch.nn.Linear(8, 2),
            torch.nn.Sigmoid(),
        ).double()
        x = np.random.default_rng(0).normal(size=(2, 1, 4, 4))
    else:
        norm = nn.LayerNorm(3) if kind == "layernorm" else nn.BatchNorm1d(3)
        tnorm = torch.nn.LayerNorm(3) if kind == "layernorm" else torch.nn.BatchNorm1d(3)
        model = nn.Sequential(
            nn.Linear(2, 3), norm, nn.Sigmoid(), nn.Linear(3, 2), nn.Sigmoid()
        ).double()
        tmodel = torch.nn.Sequential(
            torch.nn.Linear(2, 3),
            tnorm,
            torch.nn.Sigmoid(),
            torch.nn.Linear(3, 2),
            torch.nn.Sigmoid(),
        ).double()
        x = np.random.default_rng(0).normal(size=(4, 2))
    rng = np.random.default_rng(7)
    with torch.no_grad():
        for p, tp in zip(model.parameters(), tmodel.parameters()):
            v = rng.normal(size=p.shape) * 0.5 + (1.0 if tp.shape == (3,) and p.ndim == 1 else 0)
            p.data[...] = v
            tp.copy_(torch.tensor(v))
    t = rng.uniform(size=(x.shape[0], 2))
    before = [p.detach().numpy().copy() for p in model.parameters()]
    tr = trace(model, x, t, loss="mse_half", lr=0.3, verify=True)
    loss, grads, after = _torch_step(tmodel, x, t, 0.3)
    step = tr.steps[0]
    assert step.verification.ok
    assert step.loss == pytest.approx(loss, rel=1e-12)
    mine = [g for rec in step.layers for g in (rec.weight_grad, rec.bias_grad) if g is not None]
    for a, b in zip(mine, grads):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    for p, b, a0, g in zip(model.parameters(), after, before, grads):
        np.testing.assert_allclose(p.detach().numpy(), b, rtol=1e-10, atol=1e-12)
        # trained in place (a bias before batch norm has no gradient: the mean removes it)
        assert not np.allclose(p.detach().numpy(), a0) or np.allclose(g, 0, atol=1e-12)


def test_trace_of_dropout_uses_the_global_generator():
    dp.manual_seed(5)
    model = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Dropout(0.5), nn.Linear(6, 1)).double()
    tr = trace(model, [[1.0, -1.0, 0.5]], [[1.0]], verify=True)
    rec = tr.steps[0].layers[1]
    assert rec.type == "dropout" and set(np.unique(rec.mask)) <= {0.0, 2.0}
    np.testing.assert_allclose(rec.out, rec.input * rec.mask)
    assert tr.steps[0].verification.ok


def test_trace_needs_training_mode():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)).double()
    model.eval()
    with pytest.raises(ValueError, match="model.train"):
        trace(model, [[1.0, 2.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]])


def _combo(name):
    if name == "conv-bn2d-relu-maxpool":
        return (
            nn.Sequential(
                nn.Conv2d(1, 2, 2),
                nn.BatchNorm2d(2),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Flatten(),
                nn.Linear(2, 1),
            ),
            (3, 1, 3, 3),
            1,
        )
    if name == "conv-dropout-avgpool-softmax":
        return (
            nn.Sequential(
                nn.Conv2d(1, 2, 2),
                nn.Dropout(0.3),
                nn.AvgPool2d(2),
                nn.Flatten(),
                nn.Linear(2, 2),
                nn.Softmax(dim=-1),
            ),
            (2, 1, 3, 3),
            2,
        )
    if name == "layernorm-over-the-last-dim-of-an-image":
        return (
            nn.Sequential(
                nn.Conv2d(1, 1, 2),
                nn.LayerNorm([2], elementwise_affine=False),
                nn.Flatten(),
                nn.Linear(4, 1),
            ),
            (2, 1, 3, 3),
            1,
        )
    if name == "layernorm-first":
        return nn.Sequential(nn.LayerNorm(3), nn.Linear(3, 2), nn.Sigmoid()), (2, 3), 2
    if name == "batchnorm-first-cumulative":
        return nn.Sequential(nn.BatchNorm1d(3, momentum=None), nn.Linear(3, 2)), (4, 3), 2
    return nn.Sequential(nn.Dropout(0.5), nn.Linear(3, 2), nn.Tanh()), (4, 3), 2


@pytest.mark.parametrize(
    "name",
    [
        "conv-bn2d-relu-maxpool",
        "conv-dropout-avgpool-softmax",
        "layernorm-over-the-last-dim-of-an-image",
        "layernorm-first",
        "batchnorm-first-cumulative",
        "dropout-first",
    ],
)
def test_any_sequential_of_supported_modules_is_explained_and_verified(name):
    dp.manual_seed(1)
    model, shape, k = _combo(name)
    model = model.double()
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape)
    loss = "ce" if "softmax" in name else "mse_half"
    t = np.eye(k)[[0, 1]] if loss == "ce" else rng.uniform(size=(shape[0], k))
    tr = trace(model, x, t, loss=loss, lr=0.1, verify=True)
    assert tr.steps[0].verification.ok
    for fmt in ("text", "markdown", "latex", "html", "json"):
        assert getattr(tr, f"to_{fmt}")()


def test_norm_parameters_under_their_module_names_and_a_dropout_seed_in_its_table():
    base = load_spec(EXAMPLES / "layernorm.toml")
    raw = {
        "loss": "mse_half",
        "lr": 0.5,
        "layers": [
            {"weights": [[0.5, -0.2], [0.1, 0.4], [-0.3, 0.8]], "biases": [0.1, 0.0, -0.1]},
            {"type": "layernorm", "weights": [1.0, 0.5, 2.0], "biases": [0.0, 0.1, -0.1]},
            {"weights": [[0.3, -0.6, 0.9]], "biases": [0.05], "activation": "sigmoid"},
        ],
        "data": {"inputs": [[1.0, 2.0]], "targets": [[1.0]]},
    }
    spec = parse_spec(raw)
    for i in base.net.params:
        for k in base.net.params[i]:
            np.testing.assert_array_equal(spec.net.params[i][k], base.net.params[i][k])
    raw["layers"][1]["gamma"] = [1.0, 1.0, 1.0]
    with pytest.raises(SpecError, match="either gamma or weights"):
        parse_spec(raw, source="s")
    drop = load_spec(EXAMPLES / "dropout.toml")
    raw = {
        "loss": "ce",
        "lr": 0.1,
        "layers": [dict(t) for t in _tables(drop)],
        "data": {"inputs": [[1.0, 0.5, -0.5]], "targets": [1]},
    }
    raw["layers"][1]["seed"] = drop.seed
    assert parse_spec(raw).seed == drop.seed


def _tables(spec):
    """The [[layers]] tables of the dropout example, rebuilt from its parsed spec."""
    p = spec.net.params
    return [
        {"weights": p[0]["weight"].tolist(), "biases": p[0]["bias"].tolist(), "activation": "relu"},
        {"type": "dropout", "p": 0.5},
        {
            "weights": p[3]["weight"].tolist(),
            "biases": p[3]["bias"].tolist(),
            "activation": "softmax",
        },
    ]
