"""Model presets, TOML model files and shape inference (deltaprop.models)."""

from __future__ import annotations

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.models import (
    ModelError,
    build_model,
    describe_layers,
    lenet5_layers,
    load_model_file,
    mlp_layers,
    preset_layers,
    resolve_layers,
)

EXAMPLES = __import__("pathlib").Path(__file__).resolve().parents[1] / "examples" / "models"


def _types(layers):
    return [layer["type"] for layer in layers]


# ----------------------------------------------------------------------------------------------
# presets
# ----------------------------------------------------------------------------------------------


def test_mnist_mlp_is_784_256_128_10():
    layers, shape = resolve_layers(mlp_layers((1, 28, 28), 10), (1, 28, 28), 10)
    linear = [(l["in_features"], l["out_features"]) for l in layers if l["type"] == "Linear"]
    assert linear == [(784, 256), (256, 128), (128, 10)]
    assert shape == (10,)
    assert layers[0]["type"] == "Flatten"


@pytest.mark.parametrize(
    "activation, expected", [("relu", "ReLU"), ("tanh", "Tanh"), ("GELU", "GELU")]
)
@pytest.mark.parametrize("hidden", [(), (16,), (32, 16, 8)])
def test_mlp_hidden_and_activation(hidden, activation, expected):
    layers = mlp_layers((5,), 3, hidden=hidden, activation=activation, dropout=0.25)
    assert _types(layers).count("Linear") == len(hidden) + 1
    assert _types(layers).count(expected) == len(hidden)
    assert _types(layers).count("Dropout") == len(hidden)
    resolved, shape = resolve_layers(layers, (5,), 3)
    sizes = [l["out_features"] for l in resolved if l["type"] == "Linear"]
    assert sizes == [*hidden, 3]
    assert shape == (3,)


def test_lenet5_classic_on_28x28():
    layers, shape = resolve_layers(lenet5_layers((1, 28, 28), 10), (1, 28, 28), 10)
    assert _types(layers) == [
        "Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d", "Flatten",
        "Linear", "ReLU", "Linear", "ReLU", "Linear",
    ]  # fmt: skip
    convs = [l for l in layers if l["type"] == "Conv2d"]
    assert (convs[0]["kernel_size"], convs[0]["padding"], convs[1]["kernel_size"]) == (5, 2, 5)
    fcs = [(l["in_features"], l["out_features"]) for l in layers if l["type"] == "Linear"]
    assert fcs == [(400, 120), (120, 84), (84, 10)]
    assert shape == (10,)


def test_lenet5_adapted_to_8x8_digits():
    layers, _ = resolve_layers(lenet5_layers((1, 8, 8), 10), (1, 8, 8), 10)
    convs = [l for l in layers if l["type"] == "Conv2d"]
    assert [(c["kernel_size"], c["padding"]) for c in convs] == [(3, 1), (3, 1)]
    assert [l for l in layers if l["type"] == "Linear"][0]["in_features"] == 16 * 2 * 2


@pytest.mark.parametrize("shape", [(2,), (1, 2, 2)])
def test_lenet5_rejects_tables_and_tiny_images(shape):
    with pytest.raises(ModelError, match="lenet5"):
        lenet5_layers(shape, 2)


def test_unknown_preset_and_activation():
    with pytest.raises(ModelError, match="unknown model preset 'resnet'"):
        preset_layers("resnet", (2,), 2)
    with pytest.raises(ModelError, match="unknown activation 'swish'"):
        mlp_layers((2,), 2, activation="swish")
    with pytest.raises(ModelError, match="dropout"):
        mlp_layers((2,), 2, dropout=1.0)


# ----------------------------------------------------------------------------------------------
# shape inference and errors
# ----------------------------------------------------------------------------------------------


def test_inference_fills_sizes_and_keeps_input():
    layers = [
        {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 1},
        {"type": "BatchNorm2d"},
        {"type": "relu"},
        {"type": "AvgPool2d", "kernel_size": 2},
        {"type": "Flatten"},
        {"type": "LayerNorm"},
        {"type": "Linear"},
    ]
    original = [dict(layer) for layer in layers]
    resolved, shape = resolve_layers(layers, (3, 9, 9), 7)
    assert layers == original  # not modified
    assert resolved[0]["type"] == "Conv2d" and resolved[0]["in_channels"] == 3
    assert resolved[1]["num_features"] == 4
    # 9x9, k3 s2 p1 -> 5x5, pool 2 -> 2x2: 4 * 2 * 2 = 16 features
    assert resolved[5]["normalized_shape"] == [16]
    assert (resolved[6]["in_features"], resolved[6]["out_features"]) == (16, 7)
    assert shape == (7,)


@pytest.mark.parametrize(
    "layers, shape, message",
    [
        ([{"type": "Linear"}], (1, 8, 8), "add a Flatten layer"),
        ([{"type": "Linear", "in_features": 3, "out_features": 2}], (4,), "expects 3 input"),
        ([{"type": "Conv2d", "out_channels": 2, "kernel_size": 3}], (4,), "needs image"),
        (
            [{"type": "Conv2d", "out_channels": 2, "kernel_size": 9}, {"type": "Flatten"}],
            (1, 8, 8),
            "does not fit the 8x8 input",
        ),
        ([{"type": "Conv2d", "in_channels": 3, "out_channels": 2, "kernel_size": 1}], (1, 4, 4),
         "expects 3 input channels"),
        ([{"type": "Linear", "out_features": 5}], (4,), "data has 3 classes"),
        ([{"type": "Flatten"}, {"type": "Linear"}, {"type": "Softmax2"}], (4,), "unknown type"),
        ([{"type": "Linear", "units": 3}], (4,), "unknown argument"),
        ([{"type": "Conv2d", "out_channels": 2}], (1, 4, 4), "kernel_size"),
        ([{"type": "Dropout", "p": 1.5}, {"type": "Linear"}], (4,), "p must lie"),
        ([{"type": "MaxPool2d", "kernel_size": 5}], (1, 4, 4), "window does not fit"),
    ],
)  # fmt: skip
def test_model_that_does_not_fit_says_so(layers, shape, message):
    with pytest.raises(ModelError, match=message):
        resolve_layers(layers, shape, 3)


def test_error_names_the_layer_index():
    layers = [{"type": "Flatten"}, {"type": "Linear", "in_features": 10, "out_features": 3}]
    with pytest.raises(ModelError, match=r"layer 1 \(Linear\) expects 10 input features but "
                       r"receives 64"):  # fmt: skip
        resolve_layers(layers, (1, 8, 8), 3)


def test_describe_layers():
    text = describe_layers([{"type": "Linear", "in_features": 2, "out_features": 1}])
    assert text == "Linear(in_features=2, out_features=1)"


# ----------------------------------------------------------------------------------------------
# TOML files
# ----------------------------------------------------------------------------------------------


def test_model_file_roundtrip(tmp_path):
    path = tmp_path / "net.toml"
    path.write_text(
        'name = "tiny"\n\n[[layers]]\ntype = "Linear"\nout_features = 8\n\n'
        '[[layers]]\ntype = "Tanh"\n\n[[layers]]\ntype = "Linear"\n'
    )
    name, layers = load_model_file(path)
    assert name == "tiny"
    resolved, shape = resolve_layers(layers, (2,), 4)
    assert _types(resolved) == ["Linear", "Tanh", "Linear"]
    assert shape == (4,)


@pytest.mark.parametrize(
    "text, message",
    [
        ("layers = 3\n", "needs a non-empty list of layers"),
        ("name = 'x'\n", "needs a non-empty list of layers"),
        ("[[layers]]\nsize = 3\n", "layer 0 needs a 'type'"),
        ("[[layers\n", "not valid TOML"),
    ],
)
def test_bad_model_files(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ModelError, match=message):
        load_model_file(path)


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_model_file(tmp_path / "nope.toml")


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_example_model_files_build(path):
    _, layers = load_model_file(path)
    shape = (1, 28, 28) if "mnist" in path.stem else (1, 8, 8)
    model, resolved = build_model(layers, shape, 10)
    out = model(dp.zeros(2, *shape))
    assert out.shape == (2, 10)


# ----------------------------------------------------------------------------------------------
# building real modules
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, shape",
    [("logreg", (4,)), ("mlp", (1, 8, 8)), ("lenet5", (1, 8, 8)), ("lenet5", (1, 28, 28))],
)
def test_presets_build_and_run(name, shape):
    dp.manual_seed(0)
    model, resolved = build_model(preset_layers(name, shape, 10, hidden=(16,)), shape, 10)
    x = dp.tensor(np.random.default_rng(0).random((3, *shape), dtype=np.float32))
    out = model(x)
    assert out.shape == (3, 10)
    assert out.dtype == np.float32
    out.sum().backward()
    assert all(p.grad is not None and p.grad.dtype == np.float32 for p in model.parameters())


def test_preset_options_left_out_take_the_presets_own_defaults():
    assert preset_layers("mlp", (1, 8, 8), 10) == mlp_layers((1, 8, 8), 10)
    assert preset_layers("lenet5", (1, 28, 28), 10) == lenet5_layers((1, 28, 28), 10)
    assert preset_layers("mlp", (4,), 3, hidden=(8,), activation="tanh", dropout=0.5) == (
        mlp_layers((4,), 3, hidden=(8,), activation="tanh", dropout=0.5)
    )
    assert preset_layers("lenet5", (1, 8, 8), 3, activation="gelu", dropout=0.1) == (
        lenet5_layers((1, 8, 8), 3, activation="gelu", dropout=0.1)
    )
    assert preset_layers("mlp", (4,), 3, hidden=()) == mlp_layers((4,), 3, hidden=())


def test_same_seed_same_weights():
    layers = preset_layers("mlp", (4,), 3, hidden=(8,))
    dp.manual_seed(3)
    a, _ = build_model(layers, (4,), 3)
    dp.manual_seed(3)
    b, _ = build_model(layers, (4,), 3)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb
        np.testing.assert_array_equal(va.numpy(), vb.numpy())
