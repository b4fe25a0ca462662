"""ONNX export checked in ONNX Runtime: every preset, every example TOML model, a model with a
skip connection and concatenation, and one small model per op mapping.

Each exported file must pass ``onnx.checker.check_model(full_check=True)``, and ONNX Runtime's
output must equal deltaprop's eval output within 1e-5 relative (float32) at two batch sizes fed
through the dynamic batch axis.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="ONNX export tests need onnx: pip install '.[onnx]'")
ort = pytest.importorskip(
    "onnxruntime", reason="ONNX export tests need onnxruntime: pip install '.[onnx]'"
)

from onnx_helpers import check_batches, export_bytes  # noqa: E402

import deltaprop as dp  # noqa: E402
from deltaprop import nn  # noqa: E402
from deltaprop.errors import ModelError  # noqa: E402
from deltaprop.models import PRESETS, build_model, load_model_file, preset_layers  # noqa: E402
from deltaprop.nn import functional as F  # noqa: E402

EXAMPLES = sorted((Path(__file__).parent.parent / "examples" / "models").glob("*.toml"))

#: Each dataset's sample shape and number of classes (MNIST and Fashion-MNIST: 28x28 images).
DATASETS = {
    "digits": ((1, 8, 8), 10),
    "mnist": ((1, 28, 28), 10),
    "spirals": ((2,), 3),
    "xor": ((2,), 2),
}


def _images(shape, scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    return lambda n: (rng.standard_normal((n, *shape)) * scale).astype(np.float32)


def _settle_batchnorm(model, shape, steps=3):
    """A few training-mode forwards so BatchNorm's running statistics are not the defaults."""
    rng = np.random.default_rng(1)
    model.train()
    for _ in range(steps):
        model(dp.tensor((rng.standard_normal((16, *shape)) * 2 + 0.5).astype(np.float32)))
    model.eval()


# ----------------------------------------------------------------------------------------------
# presets, example models, a non-Sequential model
# ----------------------------------------------------------------------------------------------


def _fits(layers_of, shape, classes) -> bool:
    try:
        build_model(layers_of(shape, classes), shape, classes)
    except ModelError:
        return False
    return True


PRESET_CASES = [
    (preset, dataset, activation, dropout)
    for preset in PRESETS
    for dataset, (shape, classes) in DATASETS.items()
    for activation, dropout in (
        [("relu", 0.0)]
        if preset == "logreg"
        else [("relu", 0.0), ("tanh", 0.0), ("sigmoid", 0.0), ("gelu", 0.3), ("leaky_relu", 0.3)]
    )
    if _fits(lambda s, c, p=preset: preset_layers(p, s, c), shape, classes)  # lenet5: images
]

EXAMPLE_CASES = [
    pytest.param(path, dataset, id=f"{path.stem}-{dataset}")
    for path in EXAMPLES
    for dataset, (shape, classes) in DATASETS.items()
    if _fits(lambda s, c, p=path: load_model_file(p)[1], shape, classes)
]


def test_cases_cover_every_preset_and_example_model():
    assert {case[0] for case in PRESET_CASES} == set(PRESETS)
    assert EXAMPLES and {case.values[0] for case in EXAMPLE_CASES} == set(EXAMPLES)


@pytest.mark.parametrize("preset,dataset,activation,dropout", PRESET_CASES)
def test_presets_match_onnx_runtime(preset, dataset, activation, dropout):
    shape, classes = DATASETS[dataset]
    dp.manual_seed(0)
    layers = preset_layers(preset, shape, classes, activation=activation, dropout=dropout)
    model, _ = build_model(layers, shape, classes)
    data = check_batches(model, _images(shape))
    proto = onnx.load_from_string(data)
    params = {i.name for i in proto.graph.initializer if not i.name.startswith("/")}
    assert params == set(model.state_dict())  # named as in the state_dict (constants: "/...")
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


@pytest.mark.parametrize("path,dataset", EXAMPLE_CASES)
def test_example_models_match_onnx_runtime(path, dataset):
    shape, classes = DATASETS[dataset]
    dp.manual_seed(0)
    model, _ = build_model(load_model_file(path)[1], shape, classes)
    _settle_batchnorm(model, shape)
    data = check_batches(model, _images(shape))
    names = {i.name for i in onnx.load_from_string(data).graph.initializer}
    floats = {k for k, v in model.state_dict().items() if v.dtype.kind == "f"}
    assert floats <= names  # batch norm's running statistics under their state_dict names


class SkipConcat(nn.Module):
    """conv stem; a residual block y = f(x) + x; two branches concatenated; functional ops."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.block = nn.Sequential(
            nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 1)
        )
        self.wide = nn.Conv2d(4, 3, 3, stride=2, padding=2, dilation=2)
        self.norm = nn.LayerNorm(7)
        self.head = nn.Linear(4 * 4 * 4 + 3 * 4 * 4 + 7, 5)
        self.side = nn.Linear(8 * 8, 7)

    def forward(self, x):
        h = F.relu(self.stem(x))
        h = self.block(h) + h  # skip connection
        a = F.max_pool2d(h, 2)  # (N, 4, 4, 4)
        b = F.avg_pool2d(self.wide(h), 3, stride=1, padding=1, count_include_pad=False)
        s = self.norm(F.gelu(self.side(x.reshape(x.shape[0], -1))))
        feats = dp.cat([a.flatten(1), b.flatten(1), s], dim=1)  # concatenation
        return F.log_softmax(self.head(feats) * 0.5 - feats.mean(), dim=1)


def test_skip_connection_and_concatenation():
    dp.manual_seed(0)
    model = SkipConcat()
    _settle_batchnorm(model, (1, 8, 8))
    data = check_batches(model, _images((1, 8, 8)))
    proto = onnx.load_from_string(data)
    ops = {n.op_type for n in proto.graph.node}
    assert {"Conv", "Add", "Concat", "MaxPool", "AveragePool", "BatchNormalization"} <= ops
    assert {"LayerNormalization", "LogSoftmax", "Erf", "Reshape"} <= ops
    names = {i.name for i in proto.graph.initializer}
    assert {"block.1.running_mean", "block.1.running_var", "stem.weight", "head.bias"} <= names
    assert any(n.name.startswith("/block.0/") for n in proto.graph.node)


def test_export_restores_training_mode_and_leaves_no_gradients():
    dp.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Linear(4, 2))
    model.train()
    x = dp.randn(2, 3)
    export_bytes(model, x)
    assert all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    assert not x.requires_grad


def test_written_to_a_path(tmp_path):
    dp.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2))
    path = tmp_path / "model.onnx"
    dp.onnx.export(model, dp.randn(2, 3), path, input_names=["x"], output_names=["y"])
    proto = onnx.load(str(path))
    assert [i.name for i in proto.graph.input] == ["x"]
    assert [o.name for o in proto.graph.output] == ["y"]
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [2, 3]
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
