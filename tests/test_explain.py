"""deltaprop explain: the numbers of every example spec against closed-form formulas.

The expected values are computed here from the textbook formulas (NumPy, float64), never by the
explainer: forward net/out, the loss, the deltas, the weight gradients and the updated weights.
"""

from __future__ import annotations

import numpy as np
import pytest
from explain_helpers import EXAMPLES, sigmoid

import deltaprop as dp
from deltaprop.explain import (
    CircuitTrace,
    NetworkTrace,
    SpecError,
    explain_file,
    load_spec,
    parse_spec,
    trace,
    trace_circuit,
)


def layer(d: dict, i: int) -> dict:
    return d["steps"][0]["layers"][i] if isinstance(i, int) else d


# ----------------------------------------------------------------------------------------------
# the 2-2-2 network of the published worked example
# ----------------------------------------------------------------------------------------------


def test_mattmazur_published_values():
    tr = explain_file(EXAMPLES / "mattmazur-2-2-2.toml")
    d = tr.to_dict()
    step = d["steps"][0]
    assert step["loss"] == pytest.approx(0.298371109, abs=1e-9)
    out, hid = step["layers"][1], step["layers"][0]
    # published: out_h1 = 0.593269992, out_o1 = 0.75136507, delta_o1 = 0.138498562
    assert hid["out"][0][0] == pytest.approx(0.593269992, abs=1e-9)
    assert out["out"][0] == pytest.approx([0.75136507, 0.772928465], abs=1e-8)
    assert out["delta"][0][0] == pytest.approx(0.138498562, abs=1e-9)
    # published updated weights w5..w8 (output layer) and w1..w4 (hidden layer)
    assert np.allclose(
        out["weights_after"], [[0.35891648, 0.408666186], [0.511301270, 0.561370121]], atol=1e-8
    )
    assert np.allclose(
        hid["weights_after"], [[0.149780716, 0.19956143], [0.24975114, 0.29950229]], atol=1e-8
    )
    # train_biases = false: the biases keep their values
    assert out["biases_after"] == [0.6, 0.6] and hid["biases_after"] == [0.35, 0.35]


def test_mattmazur_closed_form_every_number():
    d = explain_file(EXAMPLES / "mattmazur-2-2-2.toml").to_dict()
    x = np.array([0.05, 0.10])
    t = np.array([0.01, 0.99])
    W1 = np.array([[0.15, 0.20], [0.25, 0.30]])
    b1 = np.array([0.35, 0.35])
    W2 = np.array([[0.40, 0.45], [0.50, 0.55]])
    b2 = np.array([0.60, 0.60])
    n1 = W1 @ x + b1
    h = sigmoid(n1)
    n2 = W2 @ h + b2
    o = sigmoid(n2)
    d2 = (o - t) * o * (1 - o)  # delta_o = (o - t) o (1 - o)
    d1 = (W2.T @ d2) * h * (1 - h)  # delta_h = (sum_l delta_l w_hl) h (1 - h)
    L1, L2 = d["steps"][0]["layers"]
    np.testing.assert_allclose(L1["net"], [n1], rtol=1e-12)
    np.testing.assert_allclose(L2["net"], [n2], rtol=1e-12)
    np.testing.assert_allclose(L2["delta"], [d2], rtol=1e-10)
    np.testing.assert_allclose(L1["delta"], [d1], rtol=1e-10)
    np.testing.assert_allclose(L2["weight_grad"], np.outer(d2, h), rtol=1e-10)
    np.testing.assert_allclose(L1["weight_grad"], np.outer(d1, x), rtol=1e-10)
    np.testing.assert_allclose(L2["bias_grad"], d2, rtol=1e-10)
    np.testing.assert_allclose(L2["weights_after"], W2 - 0.5 * np.outer(d2, h), rtol=1e-12)
    assert d["steps"][0]["loss"] == pytest.approx(0.5 * np.sum((t - o) ** 2), rel=1e-12)


def test_mattmazur_text_shows_the_rule_with_numbers():
    text = explain_file(EXAMPLES / "mattmazur-2-2-2.toml").to_text(width=200)
    assert "delta_o1 = (o1 - t1) * o1 * (1 - o1) = 0.7414 * 0.1868 = 0.1385" in text
    assert "delta_h1 = (delta_o1 * w_h1,o1 + delta_o2 * w_h1,o2) * h1 * (1 - h1)" in text
    assert "dE/dw_h1,o1 = delta_o1 * h1 = 0.1385 * 0.5933 = 0.08217" in text
    assert "0.35891648" in text  # updated w_h1,o1 in the update table


# ----------------------------------------------------------------------------------------------
# the other examples
# ----------------------------------------------------------------------------------------------


def test_circuit_xy_z():
    tr = explain_file(EXAMPLES / "circuit-xy-z.toml")
    assert isinstance(tr, CircuitTrace)
    x, y, z = -2.0, 5.0, -4.0
    q = x + y
    assert tr.node("q").value == q and tr.node("f").value == q * z
    # df/dz = q, df/dq = z, df/dx = df/dy = z (add distributes, mul swaps)
    assert tr.node("z").grad == q and tr.node("q").grad == z
    assert tr.node("x").grad == z and tr.node("y").grad == z
    text = tr.to_text(width=200)
    assert "df/dz = df/df * q = 1 * 3 = 3" in text
    assert "df/dx = df/dq * 1 = (-4) * 1 = -4" in text


def test_sigmoid_neuron_online_two_steps():
    d = explain_file(EXAMPLES / "sigmoid-neuron.toml").to_dict()
    X = np.array([[1.0, 2.0], [-1.0, 0.5]])
    T = np.array([1.0, 0.0])
    w, b, lr = np.array([0.5, -0.3]), 0.1, 1.0
    assert [s["samples"] for s in d["steps"]] == [[0], [1]]
    for k, step in enumerate(d["steps"]):  # online: one sample per update
        x, t = X[k], T[k]
        o = sigmoid(w @ x + b)
        delta = (o - t) * o * (1 - o)
        assert step["loss"] == pytest.approx(0.5 * (t - o) ** 2, rel=1e-12)
        L = step["layers"][0]
        assert L["delta"][0][0] == pytest.approx(delta, rel=1e-10)
        np.testing.assert_allclose(L["weight_grad"], [delta * x], rtol=1e-10)
        w, b = w - lr * delta * x, b - lr * delta
        np.testing.assert_allclose(L["weights_after"], [w], rtol=1e-12)
        assert L["biases_after"][0] == pytest.approx(b, rel=1e-12)


def test_softmax_cross_entropy():
    d = explain_file(EXAMPLES / "softmax-ce.toml").to_dict()
    W = np.array([[0.2, -0.5, 0.1], [1.5, 1.3, 2.1], [0.0, 0.25, 0.2]])
    b = np.array([1.1, 3.2, -1.2])
    x = np.array([1.0, 0.5, -0.5])
    t = np.array([0.0, 1.0, 0.0])  # class index 1
    net = W @ x + b
    o = np.exp(net - net.max())
    o /= o.sum()
    L = d["steps"][0]["layers"][0]
    np.testing.assert_allclose(L["out"], [o], rtol=1e-12)
    assert d["steps"][0]["loss"] == pytest.approx(-np.log(o[1]), rel=1e-12)
    np.testing.assert_allclose(L["delta"], [o - t], rtol=1e-10, atol=1e-15)  # delta = o - t
    np.testing.assert_allclose(L["weight_grad"], np.outer(o - t, x), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(L["weights_after"], W - 0.1 * np.outer(o - t, x), rtol=1e-12)
    np.testing.assert_allclose(L["biases_after"], b - 0.1 * (o - t), rtol=1e-12)


def test_minibatch_vectorised_form_two_steps():
    d = explain_file(EXAMPLES / "minibatch-2-layer.toml").to_dict()
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    Y = np.array([[0.0], [1.0], [1.0], [0.0]])
    # the notes use W (in x out); the spec stores rows = neurons (as nn.Linear): transpose
    W1 = np.array([[0.5, -0.4], [0.3, 0.8]]).T
    b1 = np.array([0.1, -0.2])
    W2 = np.array([[0.7, -0.6]]).T
    b2 = np.array([0.05])
    m, lr = 4, 2.0
    for step in d["steps"]:
        i1 = X @ W1 + b1
        o1 = sigmoid(i1)
        i2 = o1 @ W2 + b2
        o2 = sigmoid(i2)
        cost = np.sum((o2 - Y) ** 2) / (2 * m)
        D2 = (o2 - Y) * o2 * (1 - o2) / m
        dW2, db2 = o1.T @ D2, D2.sum(axis=0)
        D1 = (D2 @ W2.T) * o1 * (1 - o1)
        dW1, db1 = X.T @ D1, D1.sum(axis=0)
        assert step["loss"] == pytest.approx(cost, rel=1e-12)
        L1, L2 = step["layers"]
        np.testing.assert_allclose(L2["delta"], D2, rtol=1e-10)
        np.testing.assert_allclose(L1["delta"], D1, rtol=1e-9)
        np.testing.assert_allclose(L2["weight_grad"], dW2.T, rtol=1e-10)
        np.testing.assert_allclose(L1["weight_grad"], dW1.T, rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(L1["bias_grad"], db1, rtol=1e-9)
        W1, b1, W2, b2 = W1 - lr * dW1, b1 - lr * db1, W2 - lr * dW2, b2 - lr * db2
        np.testing.assert_allclose(L1["weights_after"], W1.T, rtol=1e-12)
        np.testing.assert_allclose(L2["weights_after"], W2.T, rtol=1e-12)
        np.testing.assert_allclose(L2["biases_after"], b2, rtol=1e-12)


def test_conv_pool_im2col_argmax_col2im():
    d = explain_file(EXAMPLES / "conv-pool.toml").to_dict()
    x = np.array([[1.0, 2.0, 0.0], [0.0, 1.0, 3.0], [2.0, -1.0, 1.0]])
    K = np.array([[1.0, -1.0], [0.5, 2.0]])
    b, t, lr = 0.1, 1.0, 0.1
    # cross-correlation, stride 1: net[r, c] = sum_ij K[i, j] x[r + i, c + j] + b
    net = np.array([[np.sum(K * x[r : r + 2, c : c + 2]) + b for c in range(2)] for r in range(2)])
    r, c = np.unravel_index(np.argmax(net), net.shape)
    pooled = net[r, c]
    g = pooled - t  # dE/d(pooled) for E = 1/2 (t - pooled)^2
    conv, pool = d["steps"][0]["layers"]
    np.testing.assert_allclose(conv["net"], [net], rtol=1e-12)
    assert d["steps"][0]["loss"] == pytest.approx(0.5 * (t - pooled) ** 2, rel=1e-12)
    mask = np.zeros((2, 2))
    mask[r, c] = 1
    np.testing.assert_allclose(pool["argmax_mask"], [mask])
    delta = g * mask  # the max gate routes the gradient to the argmax only
    np.testing.assert_allclose(conv["delta"], [delta], rtol=1e-12)
    dK = np.array([[np.sum(delta * x[i : i + 2, j : j + 2]) for j in range(2)] for i in range(2)])
    np.testing.assert_allclose(conv["weight_grad"], dK, rtol=1e-12)
    assert conv["bias_grad"] == pytest.approx([g], rel=1e-12)
    dX = np.zeros((3, 3))
    dX[r : r + 2, c : c + 2] += g * K  # col2im: the window of the argmax gets g * K
    np.testing.assert_allclose(conv["im2col"]["col2im"], [dX], rtol=1e-12, atol=1e-15)
    cols = np.array([x[i : i + 2, j : j + 2].ravel() for i in range(2) for j in range(2)])
    np.testing.assert_allclose(conv["im2col"]["cols"], cols)
    np.testing.assert_allclose(conv["im2col"]["gemm"], (cols @ K.ravel() + b)[:, None], rtol=1e-12)
    np.testing.assert_allclose(conv["weights_after"], K - lr * dK, rtol=1e-12)


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.toml")))
def test_every_example_verifies(name):
    tr = explain_file(EXAMPLES / name, verify=True)
    if isinstance(tr, NetworkTrace):
        for st in tr.steps:
            assert st.verification.ok, st.verification
            assert st.verification.worst.error < 1e-6


# ----------------------------------------------------------------------------------------------
# spec schema: extensions and errors
# ----------------------------------------------------------------------------------------------

BASE = {
    "loss": "mse_half",
    "lr": 0.5,
    "layers": [
        {"weights": [[0.15, 0.2], [0.25, 0.3]], "biases": [0.35, 0.35], "activation": "sigmoid"},
        {"weights": [[0.4, 0.45], [0.5, 0.55]], "biases": [0.6, 0.6], "activation": "sigmoid"},
    ],
    "data": {"inputs": [[0.05, 0.1]], "targets": [[0.01, 0.99]]},
}


def spec_with(**changes):
    import copy

    raw = copy.deepcopy(BASE)
    for k, v in changes.items():
        if v is None:
            raw.pop(k)
        else:
            raw[k] = v
    return raw


@pytest.mark.parametrize(
    "raw, key, expected",
    [
        (spec_with(loss=None), "loss", "expected one of mse_half"),
        (spec_with(lr=None), "lr", "expected the learning rate"),
        (spec_with(data={"inputs": [[0.05, 0.1]]}), "data.targets", "expected one row per sample"),
        (
            spec_with(layers=[{"biases": [1.0], "activation": "sigmoid"}]),
            "layers[0].weights",
            "expected the linear weights",
        ),
        (
            spec_with(
                layers=[
                    BASE["layers"][0],
                    {"weights": [[0.4, 0.45, 1.0], [0.5, 0.55, 1.0]], "biases": [0.6, 0.6]},
                ]
            ),
            "layers[1].weights",
            "expected 2 columns (one per output of layers[0]",
        ),
        (
            spec_with(layers=[{"weights": [[1.0, 2.0]], "biases": [1.0, 2.0]}]),
            "layers[0].biases",
            "expected 1 values",
        ),
        (
            spec_with(layers=[{"weights": [[1.0, 2.0]], "biases": [1.0], "activation": "sigmod"}]),
            "layers[0].activation",
            "expected one of sigmoid, tanh, relu, linear, softmax",
        ),
        (
            spec_with(layers=[{"weights": [[1.0, 2.0], [1.0]], "biases": [1.0, 1.0]}]),
            "layers[0].weights",
            "rows have different lengths",
        ),
        (spec_with(lerning_rate=0.1), "lerning_rate", "unknown key"),
        (spec_with(loss="hinge"), "loss", "expected one of mse_half, mse, bce, ce"),
        (spec_with(steps=0), "steps", "expected an integer >= 1"),
        (
            spec_with(data={"inputs": [[0.05, 0.1]], "targets": [[0.01, 0.99, 1.0]]}),
            "data.targets",
            "expected 2 values per sample",
        ),
        (spec_with(loss="ce"), "loss", 'expected activation = "softmax"'),
        (spec_with(layers=None), "layers", "missing [[layers]]"),
        (spec_with(layers=None, sizes=[2, 2]), "seed", "missing key"),
    ],
)
def test_malformed_spec_names_the_key(raw, key, expected):
    with pytest.raises(SpecError) as info:
        parse_spec(raw, source="bad.toml")
    msg = str(info.value)
    assert msg.startswith(f"bad.toml: {key}: "), msg
    assert expected in msg, msg


def test_bad_toml_and_missing_file(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "nope.toml")
    with pytest.raises(SpecError, match="is a directory"):
        load_spec(tmp_path)
    p = tmp_path / "binary.toml"
    p.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(SpecError, match="not UTF-8"):
        load_spec(p)
    p = tmp_path / "broken.toml"
    p.write_text("loss = \n")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(p)


def test_sizes_and_seed_draw_reproducible_weights():
    raw = {
        "loss": "mse_half",
        "lr": 0.1,
        "sizes": [2, 3, 1],
        "seed": 0,
        "activations": ["tanh", "sigmoid"],
        "data": {"inputs": [[1.0, 2.0]], "targets": [[0.5]]},
    }
    a, b = parse_spec(raw), parse_spec(raw)
    # the same layer list as a model file: Linear + activation modules
    assert [layer["type"] for layer in a.layers] == ["Linear", "Tanh", "Linear", "Sigmoid"]
    w = [a.net.params[i]["weight"] for i in (0, 2)]
    assert [x.shape for x in w] == [(3, 2), (1, 3)]
    assert np.array_equal(w[0], b.net.params[0]["weight"])
    assert np.all(np.abs(w[0]) <= 1 / np.sqrt(2))
    c = parse_spec(dict(raw, seed=1))
    assert not np.array_equal(w[0], c.net.params[0]["weight"])


@pytest.mark.parametrize(
    "loss, act",
    [
        ("mse", "linear"),
        ("mse", "relu"),
        ("bce", "sigmoid"),
        ("mse_half", "tanh"),
        ("mse_half", "softmax"),
    ],
)
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_losses_and_activations_match_closed_form(loss, act, reduction):
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, (3, 2))
    T = rng.uniform(0.1, 0.9, (3, 2))
    W = rng.uniform(-1, 1, (2, 2))
    b = rng.uniform(-1, 1, 2)
    raw = {
        "loss": loss,
        "lr": 0.1,
        "reduction": reduction,
        "layers": [{"weights": W.tolist(), "biases": b.tolist(), "activation": act}],
        "data": {"inputs": X.tolist(), "targets": T.tolist()},
    }
    tr = trace_spec_verified(raw)
    net = X @ W.T + b
    f = {
        "linear": lambda z: z,
        "relu": lambda z: np.maximum(z, 0),
        "sigmoid": sigmoid,
        "tanh": np.tanh,
    }
    if act == "softmax":
        o = np.exp(net) / np.exp(net).sum(axis=1, keepdims=True)
    else:
        o = f[act](net)
    m, k = o.shape
    if loss == "mse_half":
        E = 0.5 * np.sum((o - T) ** 2) / (m if reduction == "mean" else 1)
        dEdo = (o - T) / (m if reduction == "mean" else 1)
    elif loss == "mse":
        E = np.sum((o - T) ** 2) / (m * k if reduction == "mean" else 1)
        dEdo = 2 * (o - T) / (m * k if reduction == "mean" else 1)
    else:
        E = -np.sum(T * np.log(o) + (1 - T) * np.log(1 - o)) / (m * k if reduction == "mean" else 1)
        dEdo = (o - T) / (o * (1 - o)) / (m * k if reduction == "mean" else 1)
    if act == "softmax":  # dE/dnet_i = sum_k dE/do_k o_k ([i=k] - o_i)
        delta = o * (dEdo - np.sum(dEdo * o, axis=1, keepdims=True))
    else:
        local = {
            "linear": np.ones_like(o),
            "relu": (net > 0) * 1.0,
            "sigmoid": o * (1 - o),
            "tanh": 1 - o**2,
        }[act]
        delta = dEdo * local
    L = tr.steps[0].layers[0]
    assert tr.steps[0].loss == pytest.approx(E, rel=1e-10)
    np.testing.assert_allclose(L.delta, delta, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(L.weight_grad, delta.T @ X, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(L.weights_after, W - 0.1 * delta.T @ X, rtol=1e-12)
    assert tr.steps[0].verification.ok
    assert len(tr.to_text()) > 0 and "\\begin{align*}" in tr.to_latex()


def trace_spec_verified(raw):
    from deltaprop.explain import trace_spec

    return trace_spec(parse_spec(raw), verify=True)


def test_batch_size_cycles_through_the_data():
    raw = spec_with(
        data={"inputs": [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], "targets": [[0, 1], [1, 0], [1, 1]]},
        batch_size=2,
        steps=3,
    )
    tr = trace_spec_verified(raw)
    assert [s.samples for s in tr.steps] == [[0, 1], [2, 0], [1, 2]]
    # each step starts from the weights the previous one left
    for a, b in zip(tr.steps, tr.steps[1:]):
        np.testing.assert_array_equal(a.layers[0].weights_after, b.layers[0].weights)


def test_float32_spec_keeps_float32():
    tr = trace_spec_verified(spec_with(dtype="float32"))
    L = tr.steps[0].layers[1]
    assert L.net.dtype == np.float32 and L.delta.dtype == np.float32
    assert L.weight_grad.dtype == np.float32 and L.weights_after.dtype == np.float32
    assert tr.steps[0].loss == pytest.approx(0.298371109, rel=1e-6)
    assert tr.steps[0].verification.ok


def test_multiple_hidden_layers_are_named_and_verified():
    raw = {
        "loss": "mse_half",
        "lr": 0.1,
        "sizes": [2, 3, 3, 1],
        "seed": 4,
        "activation": "tanh",
        "data": {"inputs": [[0.5, -1.0], [1.0, 0.25]], "targets": [[0.3], [-0.2]]},
    }
    tr = trace_spec_verified(raw)
    assert [L.names for L in tr.steps[0].layers] == [
        ["h1_1", "h1_2", "h1_3"],
        ["h2_1", "h2_2", "h2_3"],
        ["o1"],
    ]
    assert tr.steps[0].verification.ok


# ----------------------------------------------------------------------------------------------
# Python API on nn modules
# ----------------------------------------------------------------------------------------------


def _mazur_model():
    from deltaprop import nn

    model = nn.Sequential(nn.Linear(2, 2), nn.Sigmoid(), nn.Linear(2, 2), nn.Sigmoid())
    with dp.no_grad():
        model[0].weight.copy_(dp.tensor([[0.15, 0.20], [0.25, 0.30]]))
        model[0].bias.copy_(dp.tensor([0.35, 0.35]))
        model[2].weight.copy_(dp.tensor([[0.40, 0.45], [0.50, 0.55]]))
        model[2].bias.copy_(dp.tensor([0.60, 0.60]))
    return model


def test_trace_of_a_sequential_trains_it_in_place():
    model = _mazur_model()
    tr = trace(model, [[0.05, 0.10]], [[0.01, 0.99]], loss="mse_half", lr=0.5, verify=True)
    assert tr.steps[0].loss == pytest.approx(0.298371109, rel=1e-6)
    L2 = tr.steps[0].layers[1]
    assert L2.delta.dtype == np.float32  # the model's dtype is kept
    assert L2.weights_after[0, 0] == pytest.approx(0.35891648, rel=1e-6)
    np.testing.assert_array_equal(model[2].weight.data, L2.weights_after)
    assert tr.steps[0].verification.ok
    html = tr._repr_html_()
    assert html.startswith('<div class="deltaprop-explain">') and "<html" not in html


def test_trace_rejects_unsupported_modules():
    from deltaprop import nn

    with pytest.raises(TypeError, match="GELU"):
        trace(nn.Sequential(nn.Linear(2, 2), nn.GELU()), [[1.0, 2.0]], [[1.0, 0.0]])
    with pytest.raises(ValueError, match="end the model with nn.Softmax"):
        trace(nn.Sequential(nn.Linear(2, 2)), [[1.0, 2.0]], [1], loss="ce")


def test_trace_of_conv_model_checks_displays_against_engine():
    from deltaprop import nn

    dp.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 2, 2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2, 2),
        nn.Softmax(dim=-1),
    ).double()
    x = dp.randn(2, 1, 3, 3, dtype=dp.float64)
    tr = trace(model, x, [0, 1], loss="ce", lr=0.1, verify=True)
    conv = tr.steps[0].layers[0]
    np.testing.assert_allclose(conv.conv.dx, conv.input_grad, rtol=1e-12)
    assert tr.steps[0].verification.ok


# ----------------------------------------------------------------------------------------------
# circuits
# ----------------------------------------------------------------------------------------------


def test_circuit_accumulates_gradients_of_shared_values():
    tr = trace_circuit("a = x * y; b = x + y; f = max(a, b)", {"x": 3.0, "y": -1.0})
    # a = -3, b = 2: max routes the gradient to b; b = x + y distributes it
    assert tr.node("f").value == 2.0
    assert tr.node("a").grad == 0.0 and tr.node("b").grad == 1.0
    assert tr.node("x").grad == 1.0 and tr.node("y").grad == 1.0
    tr = trace_circuit("f = x * x + sigmoid(x)", {"x": 0.5})
    s = sigmoid(0.5)
    assert tr.node("x").grad == pytest.approx(2 * 0.5 + s * (1 - s), rel=1e-12)
    assert "gradients add up" in tr.to_text()


@pytest.mark.parametrize(
    "expr, values, match",
    [
        ("f = x +", {"x": 1.0}, "cannot parse"),
        ("f = foo(x)", {"x": 1.0}, "unknown function"),
        ("f = x * y", {"x": 1.0}, "variable 'y' has no value"),
        ("f = x[0]", {"x": 1.0}, "unsupported"),
    ],
)
def test_circuit_errors(expr, values, match):
    with pytest.raises(SpecError, match=match):
        trace_circuit(expr, values)
