"""The loss functions of ``nn.functional`` exported (logits and targets as graph inputs, with a
dynamic batch axis) and checked in ONNX Runtime against deltaprop, every reduction and option."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="ONNX export tests need onnx: pip install '.[onnx]'")
ort = pytest.importorskip(
    "onnxruntime", reason="ONNX export tests need onnxruntime: pip install '.[onnx]'"
)

from onnx_helpers import check_batches, export_bytes, session  # noqa: E402

import deltaprop as dp  # noqa: E402
from deltaprop import nn  # noqa: E402
from deltaprop.errors import ExportError  # noqa: E402
from deltaprop.nn import functional as F  # noqa: E402


class WithTarget(nn.Module):
    """logits = fc(x); returns loss(logits, target)."""

    def __init__(self, loss, features=4, classes=3):
        super().__init__()
        dp.manual_seed(0)
        self.fc = nn.Linear(features, classes)
        self.loss = loss

    def forward(self, x, target):
        return self.loss(self.fc(x), target)


def _float_targets(kind, classes=3):
    rng = np.random.default_rng(5)

    def make(n):
        x = rng.standard_normal((n, 4)).astype(np.float32) * 3
        if kind == "probability":
            t = rng.random((n, classes)).astype(np.float32)
            t /= t.sum(axis=1, keepdims=True)
        else:  # values in [0, 1]
            t = rng.random((n, classes)).astype(np.float32)
        return x, t

    return make


def _class_targets(ignore=None, classes=3):
    rng = np.random.default_rng(6)

    def make(n):
        x = rng.standard_normal((n, 4)).astype(np.float32) * 3
        t = rng.integers(0, classes, n).astype(np.int64)
        if ignore is not None:
            t[::3] = ignore
        return x, t

    return make


W = dp.tensor([0.2, 1.0, 2.5])

FLOAT_TARGET_LOSSES = {
    "mse-mean": lambda a, t: F.mse_loss(a, t),
    "mse-sum": lambda a, t: F.mse_loss(a, t, reduction="sum"),
    "mse-none": lambda a, t: F.mse_loss(a, t, reduction="none"),
    "bce": lambda a, t: F.binary_cross_entropy(F.sigmoid(a), t),
    "bce-weight-none": lambda a, t: F.binary_cross_entropy(F.sigmoid(a), t, W, reduction="none"),
    "bce-logits": lambda a, t: F.binary_cross_entropy_with_logits(a * 30, t),
    "bce-logits-pos-weight": lambda a, t: F.binary_cross_entropy_with_logits(
        a, t, W, pos_weight=dp.tensor([1.0, 3.0, 0.5]), reduction="sum"
    ),
}

CLASS_TARGET_LOSSES = {
    "ce-mean": (lambda a, t: F.cross_entropy(a, t), None),
    "ce-none": (lambda a, t: F.cross_entropy(a, t, reduction="none"), None),
    "ce-weight-ignore": (lambda a, t: F.cross_entropy(a, t, W, ignore_index=-1), -1),
    "ce-smoothing": (
        lambda a, t: F.cross_entropy(a, t, label_smoothing=0.1, reduction="sum"),
        None,
    ),
    "ce-all-options": (
        lambda a, t: F.cross_entropy(a, t, W, ignore_index=2, label_smoothing=0.2),
        2,
    ),
    "nll-of-log-softmax": (lambda a, t: F.cross_entropy(F.log_softmax(a, 1), t), None),
}


@pytest.mark.parametrize("name", FLOAT_TARGET_LOSSES)
def test_losses_with_float_targets(name):
    loss = FLOAT_TARGET_LOSSES[name]
    model = WithTarget(lambda a, t: loss(a, t))
    check_batches(model, _float_targets("unit"), batches=(4, 9))


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_with_probability_targets(smoothing, reduction):
    def loss(a, t):
        return F.cross_entropy(a, t, W, reduction=reduction, label_smoothing=smoothing)

    check_batches(WithTarget(loss), _float_targets("probability"), batches=(4, 9))


@pytest.mark.parametrize("name", CLASS_TARGET_LOSSES)
def test_cross_entropy_with_class_index_targets(name):
    loss, ignore = CLASS_TARGET_LOSSES[name]
    data = check_batches(WithTarget(loss), _class_targets(ignore), batches=(6, 10))
    target = onnx.load_from_string(data).graph.input[1]
    assert target.type.tensor_type.elem_type == onnx.TensorProto.INT64


def test_cross_entropy_over_pixels():
    """(N, C, H, W) logits with (N, H, W) class indices: segmentation-style."""

    class PerPixel(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 3, 3, padding=1)

        def forward(self, x, t):
            return F.cross_entropy(self.conv(x), t, W, ignore_index=0, reduction="none")

    rng = np.random.default_rng(1)

    def make(n):
        return (rng.standard_normal((n, 1, 4, 5)).astype(np.float32),
                rng.integers(0, 3, (n, 4, 5)).astype(np.int64))  # fmt: skip

    check_batches(PerPixel(), make, batches=(2, 3))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_with_constant_targets(reduction):
    target = dp.tensor([2, 0, 1, 1])
    model = WithTarget(
        lambda a, t: F.nll_loss(F.log_softmax(a + t, 1), target, W, reduction=reduction)
    )
    x = np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32)
    t = np.zeros((4, 3), np.float32)
    sess = session(export_bytes(model, (x, t)))
    (got,) = sess.run(None, {"input_0": x, "input_1": t})
    with dp.no_grad():
        ref = model.eval()(dp.tensor(x), dp.tensor(t)).data
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_nll_loss_targets_cannot_follow_a_dynamic_axis():
    target = dp.tensor([2, 0, 1, 1])
    model = WithTarget(lambda a, t: F.nll_loss(F.log_softmax(a + t, 1), target))
    x, t = np.zeros((4, 4), np.float32), np.zeros((4, 3), np.float32)
    with pytest.raises(ExportError, match="nll_loss keeps its targets inside the op"):
        export_bytes(model, (x, t), dynamic_axes={"input_0": [0], "input_1": [0]})


def test_nll_loss_of_input_targets_is_refused():
    """nll_loss reads its targets when it is called: an input's values would be frozen."""
    model = WithTarget(lambda a, t: F.nll_loss(F.log_softmax(a, 1), t))
    x, t = np.zeros((4, 4), np.float32), np.array([2, 0, 1, 1], np.int64)
    with pytest.raises(ExportError, match="op NLLLoss.*reads a value computed from the input"):
        export_bytes(model, (x, t))
