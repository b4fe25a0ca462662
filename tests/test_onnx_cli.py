"""``deltaprop export``: a LeNet-5 trained briefly on the bundled digits, exported, classifies the
test digits in ONNX Runtime with the accuracy ``deltaprop evaluate`` reports; bad input exits 2
with one sentence."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="ONNX export tests need onnx: pip install '.[onnx]'")
ort = pytest.importorskip(
    "onnxruntime", reason="ONNX export tests need onnxruntime: pip install '.[onnx]'"
)

from onnx_helpers import session  # noqa: E402

import deltaprop as dp  # noqa: E402
from deltaprop.cli import main  # noqa: E402
from deltaprop.datasets import load_digits  # noqa: E402


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from deltaprop.training import TrainSettings, train

    out = tmp_path_factory.mktemp("lenet") / "run"
    settings = TrainSettings(dataset="digits", model="lenet5", epochs=2, seed=0)
    train(settings, out, progress=False, plots=False, echo=lambda line: None)
    return out


def _evaluate(run, capsys, checkpoint="last") -> tuple[int, int]:
    """(correct, total) as printed by ``deltaprop evaluate``."""
    assert main(["evaluate", "--run", str(run), "--checkpoint", checkpoint]) == 0
    text = capsys.readouterr().out
    correct, total = re.search(r"accuracy: [\d.]+% \((\d+)/(\d+)\)", text).groups()
    return int(correct), int(total)


@pytest.mark.parametrize("checkpoint", ["last", "best"])
def test_exported_lenet_has_evaluate_accuracy(run_dir, tmp_path, capsys, checkpoint):
    out = tmp_path / "lenet.onnx"
    args = ["export", "--run", str(run_dir), "--checkpoint", checkpoint, "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "input  float32[batch, 1, 8, 8]" in printed
    assert "logits  float32[batch, 10]" in printed
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto, full_check=True)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["class_names"]) == [str(d) for d in range(10)]

    digits = load_digits()
    logits = session(out).run(None, {"input": digits.X_test})[0]  # raw pixels in
    correct = int((logits.argmax(axis=1) == digits.y_test).sum())
    assert (correct, len(digits.y_test)) == _evaluate(run_dir, capsys, checkpoint)
    assert correct > 0.3 * len(digits.y_test)  # it learnt something in two epochs


def test_no_normalize_takes_normalised_samples(run_dir, tmp_path, capsys):
    from deltaprop.training.predict import load_run

    out = tmp_path / "bare.onnx"
    assert main(["export", "--run", str(run_dir), "--out", str(out), "--no-normalize"]) == 0
    capsys.readouterr()
    loaded = load_run(run_dir)
    x = loaded.normalize(load_digits().X_test[:50])
    got = session(out).run(None, {"input": x})[0]
    ref = loaded.model(dp.tensor(x)).data
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    names = {i.name for i in onnx.load(str(out)).graph.initializer}
    assert "input_mean" not in names and "0.weight" in names


def test_default_output_is_in_the_run(run_dir, capsys):
    assert main(["export", "--run", str(run_dir), "--opset", "20"]) == 0
    assert f"wrote {run_dir / 'model.onnx'}" in capsys.readouterr().out
    assert onnx.load(str(run_dir / "model.onnx")).opset_import[0].version == 20


@pytest.mark.parametrize(
    "args,message",
    [
        (["--run", "{tmp}/nowhere"], "nowhere"),
        (["--run", "{run}", "--checkpoint", "{tmp}/none.safetensors"], "does not exist"),
        (["--run", "{run}", "--out", "{tmp}/missing/m.onnx"], "does not exist"),
        (["--run", "{run}", "--out", "{tmp}"], "is a directory"),
        (["--run", "{run}", "--opset", "9"], "opset_version 9 is not supported"),
    ],
)
def test_bad_input_exits_2_with_one_sentence(run_dir, tmp_path, capsys, args, message):
    args = [a.format(tmp=tmp_path, run=run_dir) for a in args]
    assert main(["export", *args]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("deltaprop export: error: ") and message in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert captured.out == ""


def test_table_model_with_batchnorm(tmp_path, capsys):
    """A TOML model with BatchNorm1d on a 2-feature table (per-feature normalisation)."""
    from deltaprop.datasets import load
    from deltaprop.training import TrainSettings, train

    model_file = Path(__file__).parent.parent / "examples" / "models" / "mlp_batchnorm.toml"
    run = tmp_path / "run"
    settings = TrainSettings(dataset="moons", model=str(model_file), epochs=3, seed=0)
    train(settings, run, progress=False, plots=False, echo=lambda line: None)
    assert main(["export", "--run", str(run), "--out", str(tmp_path / "m.onnx")]) == 0
    assert "input  float32[batch, 2]" in capsys.readouterr().out
    names = {i.name for i in onnx.load(str(tmp_path / "m.onnx")).graph.initializer}
    assert {"2.running_mean", "2.running_var", "input_mean", "input_std"} <= names
    moons = load("moons")
    logits = session(tmp_path / "m.onnx").run(None, {"input": moons.X_test})[0]
    correct = int((logits.argmax(axis=1) == moons.y_test).sum())
    assert (correct, len(moons.y_test)) == _evaluate(run, capsys)
