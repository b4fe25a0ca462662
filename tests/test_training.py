"""The training application's Python API: checkpoints, metrics, settings, train/resume, predict."""

from __future__ import annotations

import csv
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.training import (
    Normalizer,
    TrainingError,
    TrainingInterrupted,
    TrainSettings,
    classification_report,
    confusion_matrix,
    load_checkpoint,
    resolve_settings,
    save_checkpoint,
    train,
)
from deltaprop.training.metrics import (
    format_confusion_matrix,
    read_metrics_csv,
    write_metrics_csv,
)
from deltaprop.training.settings import data_kind

# A small, fast configuration with dropout (so the dropout RNG matters for exact resume).
DIGITS = dict(dataset="digits", hidden=(32,), dropout=0.2, batch_size=64)


def _quiet(**kwargs):
    return dict(progress=False, plots=False, echo=lambda line: None, **kwargs)


def _rows_without_seconds(out: Path) -> list[dict]:
    return [
        {k: v for k, v in row.items() if k != "seconds"}
        for row in read_metrics_csv(out / "metrics.csv")
    ]


def _weights(out: Path, name: str = "last") -> dict[str, np.ndarray]:
    state = load_checkpoint(out / "checkpoints" / f"{name}.safetensors")
    return {k: np.asarray(v.data) for k, v in state["model"].items()}


def _assert_same_run(a: Path, b: Path) -> None:
    assert _rows_without_seconds(a) == _rows_without_seconds(b)
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        np.testing.assert_array_equal(wa[key], wb[key], err_msg=key)


# ----------------------------------------------------------------------------------------------
# checkpoints
# ----------------------------------------------------------------------------------------------


def test_checkpoint_tree_roundtrip_keeps_types(tmp_path):
    tensor = dp.tensor([[1.0, 2.0]])
    tree = {
        "state": {0: {"step": dp.tensor(3.0), "exp_avg": tensor}, 5: {"m": np.arange(3)}},
        "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "params": [0, 5], "name": None}],
        "rng": np.random.default_rng(7).bit_generator.state,  # 128-bit integers
        "flag": True,
        "np_scalar": np.float32(0.5),
    }
    path = tmp_path / "tree.safetensors"
    save_checkpoint(path, {"opt": tree})
    from safetensors.numpy import load_file

    assert set(load_file(str(path))) == {"opt.state.0.step", "opt.state.0.exp_avg", "opt.state.5.m"}
    back = load_checkpoint(path)["opt"]
    assert list(back["state"]) == [0, 5]
    assert isinstance(back["state"][0]["exp_avg"], dp.Tensor)
    np.testing.assert_array_equal(back["state"][0]["exp_avg"].numpy(), tensor.numpy())
    assert back["state"][0]["step"].shape == ()
    assert isinstance(back["state"][5]["m"], np.ndarray)
    assert back["state"][5]["m"].dtype == np.arange(3).dtype
    assert back["param_groups"][0]["betas"] == (0.9, 0.999)
    assert back["rng"] == tree["rng"]
    assert back["flag"] is True and back["np_scalar"] == 0.5


def test_checkpoint_rejects_unknown_objects(tmp_path):
    with pytest.raises(TypeError, match="cannot store a value of type object"):
        save_checkpoint(tmp_path / "x.safetensors", {"x": object()})
    assert not list(tmp_path.iterdir())


def test_checkpoint_file_roundtrip(tmp_path):
    state = {
        "model": {"0.weight": dp.randn(3, 2), "0.bias": dp.zeros(3)},
        "epoch": 4,
        "rng": dp.get_rng_state(),
        "history": [{"epoch": 1, "test_acc": 0.5}],
    }
    path = tmp_path / "sub" / "ck.safetensors"
    save_checkpoint(path, state)
    back = load_checkpoint(path)
    assert back["epoch"] == 4 and back["history"] == state["history"]
    assert back["rng"] == state["rng"]
    np.testing.assert_array_equal(
        back["model"]["0.weight"].numpy(), state["model"]["0.weight"].numpy()
    )
    assert back["model"]["0.weight"].dtype == np.float32
    assert [p.name for p in path.parent.iterdir()] == ["ck.safetensors"]  # no temporary left


def test_load_checkpoint_errors(tmp_path):
    from deltaprop.training import CheckpointError

    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(junk)


# ----------------------------------------------------------------------------------------------
# metrics
# ----------------------------------------------------------------------------------------------


def test_confusion_matrix_matches_a_loop():
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    expected = np.zeros((4, 4), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        expected[t, p] += 1
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, 4), expected)


def test_classification_report_values():
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 2, 2])
    report = classification_report(y_true, y_pred, 4)  # class 3 never occurs
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["precision"] == pytest.approx([1.0, 0.5, 0.5, 0.0])
    assert report["recall"] == pytest.approx([2 / 3, 0.5, 1.0, 0.0])
    assert report["f1"][0] == pytest.approx(2 * 1.0 * (2 / 3) / (1.0 + 2 / 3))
    assert report["support"] == [3, 2, 1, 0]


def test_format_confusion_matrix_has_a_row_per_class():
    text = format_confusion_matrix(np.array([[5, 0], [1, 12]]), ["cat", "dog"])
    lines = text.splitlines()
    assert len(lines) == 3 and lines[2].split() == ["dog", "1", "12"]


def test_metrics_csv_roundtrip(tmp_path):
    rows = [
        {"epoch": 1, "train_loss": 0.1 + 0.2, "train_acc": 1 / 3, "test_loss": 0.5,
         "test_acc": 0.25, "lr": 1e-3, "seconds": 1.5},
    ]  # fmt: skip
    write_metrics_csv(tmp_path / "m.csv", rows)
    assert read_metrics_csv(tmp_path / "m.csv") == rows  # floats read back exactly
    with open(tmp_path / "m.csv") as f:
        assert next(csv.reader(f)) == [
            "epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds",
        ]  # fmt: skip


# ----------------------------------------------------------------------------------------------
# settings and normalisation
# ----------------------------------------------------------------------------------------------


def test_defaults_by_model_and_data():
    mlp = resolve_settings(TrainSettings(dataset="mnist"), "images")
    assert (mlp.model, mlp.hidden, mlp.dropout, mlp.optimizer, mlp.scheduler) == (
        "mlp", (256, 128), 0.2, "adam", "cosine",
    )  # fmt: skip
    lenet = resolve_settings(TrainSettings(dataset="mnist", model="lenet5"), "images")
    assert lenet.epochs == 15 and lenet.lr == 2e-3
    lenet_sgd = resolve_settings(TrainSettings(model="lenet5", optimizer="sgd"), "images")
    assert lenet_sgd.lr == 0.05  # the table's lr is Adam's: SGD takes its own default
    sgd = resolve_settings(TrainSettings(optimizer="sgd"), "small-images")
    assert sgd.lr == 0.05 and sgd.momentum == 0.9
    given = resolve_settings(TrainSettings(lr=0.3, epochs=2), "points")
    assert given.lr == 0.3 and given.epochs == 2
    step = resolve_settings(TrainSettings(scheduler="step", epochs=9), "table")
    assert step.step_size == 3 and step.gamma == 0.1


@pytest.mark.parametrize(
    "name, shape, kind",
    [("mnist", (1, 28, 28), "images"), ("digits", (1, 8, 8), "small-images"),
     ("spirals", (2,), "points"), ("csv:iris.csv", (4,), "table")],
)  # fmt: skip
def test_data_kind(name, shape, kind):
    assert data_kind(name, shape) == kind


def test_normalizer_per_channel_and_per_feature():
    rng = np.random.default_rng(0)
    images = (
        rng.random((10, 2, 3, 3), dtype=np.float32) * np.array([1, 5], np.float32)[:, None, None]
    )
    norm = Normalizer.fit(images)
    out = norm(images)
    assert out.dtype == np.float32 and out.shape == images.shape
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), 1, atol=1e-4)
    table = np.array([[1, 7], [3, 7]], np.float32)  # a constant column keeps std 1
    assert Normalizer.fit(table).std == [1.0, 1.0]
    assert Normalizer.identity()(table).tolist() == table.tolist()


# ----------------------------------------------------------------------------------------------
# training runs
# ----------------------------------------------------------------------------------------------


def test_train_writes_the_run_directory(tmp_path):
    out = tmp_path / "run"
    settings = TrainSettings(dataset="digits", model="lenet5", epochs=3, batch_size=128)
    result = train(settings, out, progress=False, echo=lambda s: None)
    rows = read_metrics_csv(out / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert all(0 <= r["test_acc"] <= 1 and r["train_loss"] > 0 and r["lr"] > 0 for r in rows)
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert result.test_acc == pytest.approx(rows[-1]["test_acc"])
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["dataset"] == "digits" and config["settings"]["epochs"] == 3
    assert config["settings"]["lr"] == 1e-3 and config["settings"]["seed"] == 0
    assert config["dataset"]["num_classes"] == 10 and config["dataset"]["input_shape"] == [1, 8, 8]
    assert len(config["normalize"]["mean"]) == 1  # one channel
    assert config["versions"]["numpy"] == np.__version__
    assert config["layers"][-1]["out_features"] == 10
    assert (out / "checkpoints" / "last.safetensors").is_file()
    assert (out / "checkpoints" / "best.safetensors").is_file()
    names = {p.name for p in result.plots}
    assert names == {"loss.png", "accuracy.png", "confusion_matrix.png", "filters.png"}
    for p in result.plots:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    state = load_checkpoint(out / "checkpoints" / "last.safetensors")
    assert state["epoch"] == 3 and len(state["history"]) == 3
    assert set(state) >= {"model", "optimizer", "scheduler", "rng", "shuffle_rng"}
    assert state["optimizer"]["state"]  # Adam moments are saved


def test_lr_column_follows_the_schedule(tmp_path):
    settings = TrainSettings(
        dataset="xor", epochs=4, scheduler="step", step_size=2, gamma=0.5, lr=0.1
    )
    train(settings, tmp_path / "r", **_quiet())
    lrs = [r["lr"] for r in read_metrics_csv(tmp_path / "r" / "metrics.csv")]
    assert lrs == pytest.approx([0.1, 0.1, 0.05, 0.05])


def test_same_seed_same_metrics(tmp_path):
    settings = TrainSettings(epochs=2, seed=5, **DIGITS)
    train(settings, tmp_path / "a", **_quiet())
    train(settings, tmp_path / "b", **_quiet())
    _assert_same_run(tmp_path / "a", tmp_path / "b")
    other = TrainSettings(epochs=2, seed=6, **DIGITS)
    train(other, tmp_path / "c", **_quiet())
    assert (
        _weights(tmp_path / "a")["1.weight"].tolist()
        != _weights(tmp_path / "c")["1.weight"].tolist()
    )


def _stop_after(batches: int):
    count = {"n": 0}

    def hook(run):
        count["n"] += 1
        if count["n"] == batches:
            run.request_stop()

    return hook


@pytest.mark.parametrize("stop_at_batch", [23, 30], ids=["end-of-epoch-1", "mid-epoch-2"])
def test_resume_reproduces_an_uninterrupted_run(tmp_path, stop_at_batch):
    """Train 2 epochs straight vs interrupted (23 batches = one epoch) + resumed: identical."""
    settings = TrainSettings(epochs=2, **DIGITS)  # 1437 samples / 64 = 23 batches per epoch
    train(settings, tmp_path / "straight", **_quiet())
    with pytest.raises(TrainingInterrupted) as info:
        train(settings, tmp_path / "resumed", **_quiet(on_batch_end=_stop_after(stop_at_batch)))
    assert info.value.checkpoint.is_file()
    state = load_checkpoint(info.value.checkpoint)
    assert (state["epoch"], state["partial"]["batch"]) == divmod(stop_at_batch, 23)
    train(TrainSettings(), tmp_path / "resumed", resume=True, **_quiet())
    _assert_same_run(tmp_path / "straight", tmp_path / "resumed")


def test_sigint_saves_a_checkpoint_and_stops(tmp_path):
    def interrupt(run):
        if run.partial.batch == 5:
            os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted, match="batch 5 of 23"):
        train(TrainSettings(epochs=2, **DIGITS), tmp_path / "r", **_quiet(on_batch_end=interrupt))
    assert signal.getsignal(signal.SIGINT) is before  # handler restored
    state = load_checkpoint(tmp_path / "r" / "checkpoints" / "last.safetensors")
    assert (state["epoch"], state["partial"]["batch"]) == (0, 5)


def test_resume_extends_a_finished_run(tmp_path):
    out = tmp_path / "r"
    train(TrainSettings(dataset="xor", epochs=2, scheduler="none"), out, **_quiet())
    result = train(TrainSettings(epochs=4), out, resume=True, **_quiet())
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]
    assert json.loads((out / "config.json").read_text())["settings"]["epochs"] == 4


def test_existing_run_needs_resume(tmp_path):
    out = tmp_path / "r"
    train(TrainSettings(dataset="xor", epochs=1), out, **_quiet())
    with pytest.raises(TrainingError, match="already holds a run; pass --resume"):
        train(TrainSettings(dataset="xor", epochs=1), out, **_quiet())
    with pytest.raises(TrainingError, match="started with lr="):
        train(TrainSettings(lr=0.5), out, resume=True, **_quiet())
    with pytest.raises(TrainingError, match="fewer than"):
        train(TrainSettings(epochs=0), out, resume=True, **_quiet())
    with pytest.raises(TrainingError, match="holds no run"):
        train(TrainSettings(), tmp_path / "empty", resume=True, **_quiet())


@pytest.mark.parametrize(
    "settings, message",
    [
        (TrainSettings(model="lenet5", hidden=(3,)), "--hidden"),
        (TrainSettings(model="logreg", dropout=0.1), "--dropout applies"),
        (TrainSettings(momentum=0.9), "--momentum applies to the sgd and rmsprop"),
        (TrainSettings(gamma=0.5), "--gamma applies"),
        (TrainSettings(scheduler="exponential", step_size=2), "--step-size applies"),
    ],
)
def test_ignored_options_are_rejected(tmp_path, settings, message):
    with pytest.raises(TrainingError, match=message):
        train(settings, tmp_path / "r", **_quiet())
    assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------------------------
# loading a run: evaluate and predict
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits"
    train(TrainSettings(dataset="digits", epochs=3), out, **_quiet())
    return out


def test_evaluate_run_matches_training(digits_run):
    from deltaprop.training.commands import evaluate_run

    report = evaluate_run(digits_run)
    last = read_metrics_csv(digits_run / "metrics.csv")[-1]
    assert report["accuracy"] == pytest.approx(last["test_acc"])
    assert report["loss"] == pytest.approx(last["test_loss"], rel=1e-5)
    assert report["confusion"].sum() == 360
    assert "precision" in report["text"] and "confusion matrix" in report["text"]
    assert report["accuracy"] > 0.8


def test_predict_on_dataset_images_matches_evaluate(digits_run, tmp_path):
    from PIL import Image

    from deltaprop.datasets import load_digits
    from deltaprop.training.predict import load_run, predict_files

    splits = load_digits()
    loaded = load_run(digits_run)
    files = []
    for i in range(5):  # the test images as 8-bit PNGs of the model's size
        path = tmp_path / f"digit{i}.png"
        Image.fromarray((splits.X_test[i, 0] * 255).round().astype(np.uint8)).save(path)
        files.append(path)
    results = predict_files(loaded, files, top=3)
    from deltaprop.training.predict import predict_arrays

    expected = predict_arrays(loaded, splits.X_test[:5]).argmax(axis=1)
    assert [r["indices"][0] for r in results] == expected.tolist()
    for r in results:
        assert len(r["classes"]) == 3 and r["probabilities"] == sorted(
            r["probabilities"], reverse=True
        )
        assert 0 < r["probabilities"][0] <= 1


def test_load_image_inverts_and_centres(tmp_path):
    from PIL import Image

    from deltaprop.training.predict import load_image

    page = np.full((100, 60), 255, np.uint8)  # white paper, a black bar off-centre
    page[10:50, 5:15] = 0
    Image.fromarray(page).save(tmp_path / "ink.png")
    x = load_image(tmp_path / "ink.png", (1, 28, 28))
    assert x.shape == (1, 28, 28) and x.dtype == np.float32
    assert x[0, 0, 0] == 0.0 and x.max() > 0.9  # inverted: light strokes on black
    rows, cols = np.nonzero(x[0] > 0.5)
    assert 10 <= rows.mean() <= 17 and 10 <= cols.mean() <= 17  # centred
    assert rows.max() - rows.min() <= 20  # fits the 20x20 box
    dark = np.zeros((8, 8), np.uint8)
    dark[2:6, 3] = 255
    Image.fromarray(dark).save(tmp_path / "dark.png")
    same = load_image(tmp_path / "dark.png", (1, 8, 8))
    np.testing.assert_array_equal(same[0], dark / np.float32(255))  # right size: unchanged


def test_predict_errors(digits_run, tmp_path):
    from deltaprop.training.predict import PredictError, load_run, predict_files

    loaded = load_run(digits_run)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(PredictError, match="not an image"):
        predict_files(loaded, [tmp_path / "notes.txt"])
    with pytest.raises(PredictError, match="no such file"):
        predict_files(loaded, [tmp_path / "missing.png"])
    with pytest.raises(PredictError, match="CSV rows only work"):
        predict_files(loaded, [tmp_path / "rows.csv"])
    with pytest.raises(PredictError, match="not a training run"):
        load_run(tmp_path)


# ----------------------------------------------------------------------------------------------
# accuracy targets (slow: python -m pytest -m slow)
# ----------------------------------------------------------------------------------------------

MNIST_10K = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "mnist-10k"


@pytest.mark.slow
def test_digits_default_run_reaches_97_percent(tmp_path):
    result = train(TrainSettings(), tmp_path / "digits", **_quiet())
    assert result.test_acc >= 0.97


@pytest.mark.slow
@pytest.mark.parametrize("model, target", [("mlp", 0.965), ("lenet5", 0.983)])
def test_mnist_10k_defaults_reach_targets(tmp_path, model, target):
    if not MNIST_10K.is_dir():
        pytest.skip(f"{MNIST_10K} is not present")
    settings = TrainSettings(dataset="mnist", data_dir=str(MNIST_10K), model=model)
    result = train(settings, tmp_path / model, **_quiet())
    assert result.test_acc >= target


# ----------------------------------------------------------------------------------------------
# run directories written by earlier versions
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("run", ["run_end", "run_mid"])
def test_format_1_run_resumes_to_the_uninterrupted_result(tmp_path, run):
    """A finished run and a run stopped mid-epoch, both in checkpoint format 1, resume to
    the metrics an uninterrupted 3-epoch run reaches (recorded in tests/data/legacy_v1)."""
    import shutil

    out = tmp_path / run
    shutil.copytree(Path(__file__).parent / "data" / "legacy_v1" / run, out)
    result = train(TrainSettings(epochs=3), out, resume=True, **_quiet())
    last = result.history[-1]
    assert last["epoch"] == 3
    assert last["train_loss"] == 0.6697835743427276
    assert last["test_loss"] == 0.6764136552810669
    assert last["test_acc"] == 0.6125
