"""Bad input thrown at the ``deltaprop`` command line (as a separate process) and at dp.load.

Every case must end with exit status 2 and one sentence ``deltaprop CMD: error: ...`` naming
what is wrong, never a traceback and never exit 0. Every command line runs in-process through
``deltaprop.cli.main``; one of each kind of input also runs as ``python -m deltaprop`` in a
fresh process (concurrently, in a module fixture).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.errors import CheckpointError

LEGACY_RUN = Path(__file__).parent / "data" / "legacy_v1" / "run_end"
SRC = str(Path(dp.__file__).resolve().parents[1])


# ----------------------------------------------------------------------------------------------
# the files the cases use
# ----------------------------------------------------------------------------------------------


def _png(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` grey pixels (the data is a stub)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def _copy_run(root: Path, name: str) -> Path:
    run = root / name
    shutil.copytree(LEGACY_RUN, run)
    return run


def _edit_config(run: Path, change) -> None:
    path = run / "config.json"
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))


def _legacy_checkpoint(meta: bytes, arrays: dict | None = None) -> bytes:
    """A training checkpoint in the format-1 layout with a given ``__meta__``."""
    buf = io.BytesIO()
    tree = {"__meta__": dp.from_numpy(np.frombuffer(meta, np.uint8).copy())}
    tree.update(arrays or {})
    dp.save(tree, buf)
    return buf.getvalue()


def _state_with(run: Path, change) -> None:
    """Rewrite the run's last checkpoint with ``change(state)`` applied."""
    path = run / "checkpoints" / "last.safetensors"
    state = dp.load(path)
    change(state)
    dp.save(state, path)


def _build_files(root: Path) -> None:
    (root / "notutf8.toml").write_bytes(bytes(range(128, 256)) * 8)
    (root / "afile").write_text("x")
    (root / "adir").mkdir()
    (root / "conv0.toml").write_text(
        '[[layers]]\ntype = "Conv2d"\nout_channels = 4\nkernel_size = 0\n'
        '[[layers]]\ntype = "Flatten"\n[[layers]]\ntype = "Linear"\n'
    )
    (root / "stride.toml").write_text(
        '[[layers]]\ntype = "Conv2d"\nout_channels = 4\nkernel_size = 3\nstride = -1\n'
        '[[layers]]\ntype = "Flatten"\n[[layers]]\ntype = "Linear"\n'
    )
    (root / "nolayers.toml").write_text('name = "x"\n')
    (root / "bad.toml").write_text("[[layers]\n")
    (root / "bomb.png").write_bytes(_png(20000, 20000))
    (root / "big.png").write_bytes(_png(8000, 8000))
    (root / "notimage.png").write_bytes(b"this is not a png")
    (root / "notutf8.csv").write_bytes(b"\xff\xfe\x00garbage")
    mnist0 = root / "mnist0"
    mnist0.mkdir()
    for name, magic, dims in (
        ("train-images-idx3-ubyte", 2051, (0, 28, 28)),
        ("train-labels-idx1-ubyte", 2049, (0,)),
        ("t10k-images-idx3-ubyte", 2051, (0, 28, 28)),
        ("t10k-labels-idx1-ubyte", 2049, (0,)),
    ):
        (mnist0 / name).write_bytes(struct.pack(f">I{len(dims)}I", magic, *dims))

    # run directories whose config.json is damaged
    for name, content in (
        ("cfg_empty", b""),
        ("cfg_notjson", b"{not json"),
        ("cfg_notutf8", b"\xff\xfe{}"),
        ("cfg_list", b"[1, 2]"),
        ("cfg_number", b"42"),
    ):
        (_copy_run(root, name) / "config.json").write_bytes(content)
    changes = {
        "cfg_nosettings": lambda c: c.pop("settings"),
        "cfg_nolayers": lambda c: c.pop("layers"),
        "cfg_nodataset": lambda c: c.pop("dataset"),
        "cfg_nonormalize": lambda c: c.pop("normalize"),
        "cfg_layers_str": lambda c: c.update(layers="Linear"),
        "cfg_lr_str": lambda c: c["settings"].update(lr="fast"),
        "cfg_epochs_neg": lambda c: c["settings"].update(epochs=-3),
        "cfg_shape_str": lambda c: c["dataset"].update(input_shape="2"),
        "cfg_classes_zero": lambda c: c["dataset"].update(num_classes=0),
        "cfg_names_short": lambda c: c["dataset"].update(class_names=["a"]),
        "cfg_std_zero": lambda c: c["normalize"].update(std=[0.0, 0.0]),
        "cfg_layers_misfit": lambda c: c["layers"][0].update(in_features=5),
        "cfg_layer_type": lambda c: c["layers"][0].update(type="Transformer"),
        "cfg_huge_layer": lambda c: (
            c["layers"][0].update(out_features=10**12),
            c["layers"][2].update(in_features=10**12),
        ),
    }
    for name, change in changes.items():
        _edit_config(_copy_run(root, name), change)

    # run directories whose last checkpoint is damaged (best is removed: one file to blame)
    ckpts = {
        "ck_meta_badjson": _legacy_checkpoint(b"{oops"),
        "ck_meta_notutf8": _legacy_checkpoint(b"\xff\xfe\xfd"),
        "ck_meta_list": _legacy_checkpoint(b"[1, 2]"),
        "ck_meta_nostate": _legacy_checkpoint(b'{"format": 1}'),
        "ck_truncated": (LEGACY_RUN / "checkpoints" / "last.safetensors").read_bytes()[:500],
        "ck_empty": b"",
        "ck_pickle": b"\x80\x04\x95" + b"\x00" * 40,
    }
    for name, content in ckpts.items():
        run = _copy_run(root, name)
        (run / "checkpoints" / "last.safetensors").write_bytes(content)
    state_changes = {
        "ck_nomodel": lambda s: s.pop("model"),
        "ck_missing_weight": lambda s: s["model"].pop("0.weight"),
        "ck_wrong_shape": lambda s: s["model"].update({"0.weight": dp.zeros(3, 2)}),
        "ck_epoch_str": lambda s: s.update(epoch="two"),
        "ck_rng_garbage": lambda s: s.update(rng={"bit_generator": "nope", "state": 5}),
        "ck_partial_bad": lambda s: s.update(partial={"batch": "x"}),
        "ck_not_dict": None,
    }
    for name, change in state_changes.items():
        run = _copy_run(root, name)
        if change is None:
            dp.save([1, 2, 3], run / "checkpoints" / "last.safetensors")
        else:
            _state_with(run, change)
    other = _copy_run(root, "other_sizes")  # a checkpoint of a run with other layer sizes
    _state_with(other, lambda s: s["model"].update({"0.weight": dp.zeros(8, 2)}))


# ----------------------------------------------------------------------------------------------
# the table: (command line, words the error sentence must contain)
# ----------------------------------------------------------------------------------------------

TRAIN = ["train", "--no-progress", "--no-plots", "--epochs", "1"]
XOR = [*TRAIN, "--dataset", "xor"]
RESUME_EVALUATE_PREDICT = [
    ("cfg_empty", "is empty"),
    ("cfg_notjson", "is not valid JSON"),
    ("cfg_notutf8", "is not UTF-8"),
    ("cfg_list", "holds a JSON list"),
    ("cfg_number", "holds a JSON int"),
    ("cfg_nosettings", "no 'settings' entry"),
    ("cfg_nolayers", "no 'layers' entry"),
    ("cfg_nodataset", "no 'dataset' entry"),
    ("cfg_nonormalize", "no 'normalize' entry"),
    ("cfg_layers_str", "'layers' must be a JSON array"),
    ("cfg_lr_str", "lr must be a finite positive number, got 'fast'"),
    ("cfg_epochs_neg", "epochs must be a positive int"),
    ("cfg_shape_str", "input_shape must be a list"),
    ("cfg_classes_zero", "num_classes must be a positive int"),
    ("cfg_names_short", "class_names must be a list of 2 strings"),
    ("cfg_std_zero", "std must be positive"),
    ("cfg_layers_misfit", "expects 5 input features but receives 2"),
    ("cfg_layer_type", "unknown type 'Transformer'"),
]
CHECKPOINT_CASES = [
    ("ck_meta_badjson", "unreadable __meta__"),
    ("ck_meta_notutf8", "unreadable __meta__"),
    ("ck_meta_list", "not a format-1 training checkpoint"),
    ("ck_meta_nostate", "not a format-1 training checkpoint"),
    ("ck_truncated", "truncated"),
    ("ck_empty", "too short"),
    ("ck_pickle", "not a valid safetensors"),
    ("ck_nomodel", "no model state"),
    ("ck_missing_weight", "it has no '0.weight' (shape (4, 2) in the model)"),
    ("ck_wrong_shape", "'0.weight' has shape (3, 2) in the checkpoint and (4, 2) in the model"),
    ("ck_not_dict", "holds a list, not a training state"),
]
RESUME_ONLY_CHECKPOINT_CASES = [
    ("ck_epoch_str", "'epoch' must be a non-negative int, got 'two'"),
    ("ck_rng_garbage", "'rng' is not a random generator state"),
    ("ck_partial_bad", "'partial' must be a dict"),
]

CASES = [
    # train: arguments
    ([*TRAIN, "--seed", "-1"], "argument --seed: expected an integer from 0"),
    ([*TRAIN, "--seed", "1.5"], "argument --seed"),
    ([*TRAIN, "--hidden", "10,,20"], "argument --hidden: expected comma-separated"),
    ([*TRAIN, "--hidden", "10,"], "argument --hidden"),
    ([*TRAIN, "--hidden", "0"], "argument --hidden"),
    ([*TRAIN, "--hidden", "1000000000"], "needs about"),
    ([*TRAIN, "--hidden", "99999999999999999999999"], "needs about"),
    ([*TRAIN, "--batch-size", "0"], "argument --batch-size"),
    ([*TRAIN, "--epochs", "-2"], "argument --epochs"),
    ([*TRAIN, "--lr", "inf"], "argument --lr: expected a finite number"),
    ([*TRAIN, "--lr", "nan"], "argument --lr: expected a finite number"),
    ([*TRAIN, "--lr", "-1"], "argument --lr"),
    ([*TRAIN, "--optimizer", "sgd", "--momentum", "inf"], "argument --momentum"),
    ([*TRAIN, "--weight-decay", "inf"], "argument --weight-decay"),
    ([*TRAIN, "--scheduler", "step", "--gamma", "inf"], "argument --gamma"),
    ([*TRAIN, "--dropout", "1.5"], "argument --dropout"),
    ([*TRAIN, "--resume"], "--resume needs --out"),
    # train: files
    ([*TRAIN, "--model", "notutf8.toml"], "model file 'notutf8.toml' is not UTF-8"),
    ([*TRAIN, "--model", "adir"], "model file 'adir' is a directory"),
    ([*TRAIN, "--model", "missing.toml"], "model file 'missing.toml' does not exist"),
    ([*TRAIN, "--model", "bad.toml"], "is not valid TOML"),
    ([*TRAIN, "--model", "nolayers.toml"], "needs a non-empty list of layers"),
    ([*TRAIN, "--model", "conv0.toml"], "kernel_size must be a positive int"),
    ([*TRAIN, "--model", "stride.toml"], "stride must be a positive int"),
    ([*XOR, "--out", "afile"], "--out 'afile' is a file"),
    ([*XOR, "--out", "afile/run"], "'afile' is a file, not a directory"),
    ([*XOR, "--out", "/proc/deltaprop-run"], "--out '/proc/deltaprop-run' cannot be created"),
    ([*TRAIN, "--dataset", "csv:adir"], "adir"),
    ([*TRAIN, "--dataset", "csv:missing.csv"], "missing.csv"),
    ([*TRAIN, "--dataset", "cifar"], "unknown dataset 'cifar'"),
    ([*TRAIN, "--dataset", "mnist", "--data-dir", "afile"], "afile: is a file"),
    ([*TRAIN, "--dataset", "mnist", "--data-dir", "mnist0"], "holds 0 images"),
    ([*XOR, "--out", "afile", "--resume"], "is a file, not a run directory"),
    ([*XOR, "--out", "adir", "--resume"], "holds no run"),
    # evaluate / predict: the run, the checkpoint, the inputs
    (["evaluate", "--run", "missing"], "run directory missing does not exist"),
    (["evaluate", "--run", "afile"], "afile is a file, not a run directory"),
    (["evaluate", "--run", "adir"], "adir is not a training run"),
    (["evaluate", "--run", "run_ok", "--checkpoint", "adir"], "is a directory"),
    (["evaluate", "--run", "run_ok", "--checkpoint", "afile"], "too short"),
    (["evaluate", "--run", "other_sizes"], "has shape (8, 2) in the checkpoint and (4, 2)"),
    (["evaluate", "--run", "cfg_huge_layer"], "needs about"),
    (["predict", "--run", "digits_run", "bomb.png"], "images up to 50,000,000 pixels"),
    (["predict", "--run", "digits_run", "big.png"], "images up to 50,000,000 pixels"),
    (["predict", "--run", "digits_run", "notimage.png"], "not an image"),
    (["predict", "--run", "run_ok", "adir"], "expected an image file"),
    (["predict", "--run", "run_ok", "notutf8.csv"], "not UTF-8"),
    (["predict", "--run", "run_ok", "missing.csv"], "no such file"),
    (["predict", "--run", "run_ok", "x.png", "--top", "0"], "argument --top"),
]
for run, words in RESUME_EVALUATE_PREDICT + CHECKPOINT_CASES:
    CASES.append((["evaluate", "--run", run], words))
    CASES.append((["predict", "--run", run, "points.csv"], words))
    CASES.append((["train", "--no-progress", "--no-plots", "--out", run, "--resume"], words))
for run, words in RESUME_ONLY_CHECKPOINT_CASES:
    CASES.append((["train", "--no-progress", "--no-plots", "--out", run, "--resume"], words))

#: The cases also run as a separate process (``python -m deltaprop``): one of each kind of
#: input named in the bug report; every case runs in-process through ``deltaprop.cli.main``.
_IN_A_FRESH_PROCESS = [
    ("--seed", "-1"), ("--hidden", "1000000000"), ("--hidden", "10,,20"), ("--lr", "inf"),
    ("--model", "notutf8.toml"), ("--model", "conv0.toml"), ("--out", "/proc/deltaprop-run"),
    ("--data-dir", "mnist0"), ("digits_run", "bomb.png"), ("--run", "other_sizes"),
    ("--run", "cfg_notutf8"), ("--run", "cfg_lr_str"),
    ("--out", "ck_meta_badjson"), ("--out", "ck_wrong_shape"), ("--out", "ck_rng_garbage"),
]  # fmt: skip
SUBPROCESS = {
    next(i for i, (argv, _) in enumerate(CASES) if " ".join(pair) in " ".join(argv))
    for pair in _IN_A_FRESH_PROCESS
}


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC, "DELTAPROP_DATA": str(cwd / "no-data")}
    return subprocess.run(
        [sys.executable, "-m", "deltaprop", *argv],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=120,
    )  # fmt: skip


def _run_in_process(argv: list[str], cwd: Path) -> tuple[int, str]:
    """``deltaprop.cli.main(argv)`` in ``cwd``: (exit status, stderr). An exception that
    escapes main (a traceback on the command line) fails the test that called this."""
    import contextlib

    from deltaprop.cli import main

    err = io.StringIO()
    here = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                status = main(argv)
            except SystemExit as e:  # argparse's usage errors
                status = e.code
    finally:
        os.chdir(here)
    return int(status), err.getvalue()


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-input")
    _build_files(root)
    _copy_run(root, "run_ok")
    from deltaprop.training import TrainSettings, train

    quiet = dict(progress=False, plots=False, echo=lambda line: None)
    train(TrainSettings(epochs=1, hidden=(8,)), root / "digits_run", **quiet)
    (root / "points.csv").write_text("x,y\n0.5,0.5\n")
    return root


@pytest.fixture(scope="module")
def subprocess_results(root):
    workers = 4  # the processes mostly wait on imports and files
    order = sorted(SUBPROCESS)
    with ThreadPoolExecutor(workers) as pool:
        done = pool.map(lambda i: _run(CASES[i][0], root), order)
        return dict(zip(order, done))


def _check(argv: list[str], words: str, status: int, stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert status == 2, (status, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr  # one sentence: no usage text, no warnings before it
    last = lines[0]
    assert last.startswith(f"deltaprop {argv[0]}: error: "), stderr
    assert words in last, last


def _name(argv: list[str]) -> str:
    common = ("--no-progress", "--no-plots", "--epochs", "1")
    return " ".join([argv[0], *(a for a in argv[1:] if a not in common)])


@pytest.mark.parametrize("index", range(len(CASES)), ids=[_name(a) for a, _ in CASES])
def test_bad_command_line_ends_in_one_sentence(root, monkeypatch, index):
    argv, words = CASES[index]
    monkeypatch.setenv("DELTAPROP_DATA", str(root / "no-data"))
    status, stderr = _run_in_process(argv, root)
    _check(argv, words, status, stderr)


@pytest.mark.parametrize(
    "index", sorted(SUBPROCESS), ids=[_name(CASES[i][0]) for i in sorted(SUBPROCESS)]
)
def test_bad_command_line_in_a_fresh_process(subprocess_results, index):
    argv, words = CASES[index]
    result = subprocess_results[index]
    _check(argv, words, result.returncode, result.stderr)


def test_predict_and_evaluate_still_work_on_the_good_run(tmp_path):
    """The fixture's good run (format 1) is usable: the errors above are about the inputs."""
    shutil.copytree(LEGACY_RUN, tmp_path / "r")
    (tmp_path / "p.csv").write_text("0.5,0.5\n")
    assert _run(["evaluate", "--run", "r"], tmp_path).returncode == 0
    out = _run(["predict", "--run", "r", "p.csv"], tmp_path)
    assert out.returncode == 0 and out.stdout.startswith("p.csv:1: ")


def _as_unprivileged_user():
    """(cwd, preexec_fn) for running the CLI where file modes apply: as ``nobody`` when the
    tests run as root (root reads and writes whatever the mode), else as the current user."""
    import tempfile

    if os.geteuid() != 0:
        return None, None
    try:
        import pwd

        nobody = pwd.getpwnam("nobody")
    except (ImportError, KeyError):
        pytest.skip("running as root and there is no 'nobody' user to drop to")

    def drop() -> None:
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)

    try:
        subprocess.run([sys.executable, "-c", "import deltaprop"], preexec_fn=drop, check=True,
                       env={**os.environ, "PYTHONPATH": SRC}, capture_output=True)  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("running as root, and user 'nobody' cannot run this Python and deltaprop")
    where = Path(tempfile.mkdtemp(prefix="deltaprop-perm-"))
    os.chown(where, nobody.pw_uid, nobody.pw_gid)
    return (where, nobody), drop


@pytest.mark.parametrize(
    "argv, words",
    [
        ([*XOR, "--out", "locked/run"], "cannot be created: permission denied"),
        ([*XOR, "--out", "locked"], "is not writable: permission denied"),
        ([*TRAIN, "--model", "secret.toml"], "cannot be read: permission denied"),
        (["evaluate", "--run", "secret_run"], "cannot be read: permission denied"),
        ([*XOR, "--out", "secret_run", "--resume"], "cannot be read: permission denied"),
        (["evaluate", "--run", "locked_run"], "run directory 'locked_run' cannot be read"),
    ],
)
def test_unreadable_and_unwritable_paths(tmp_path, argv, words):
    user, drop = _as_unprivileged_user()
    root = tmp_path if user is None else user[0]
    try:
        (root / "locked").mkdir(mode=0o500)
        (root / "secret.toml").write_text('[[layers]]\ntype = "Linear"\n')
        (root / "secret.toml").chmod(0)
        run = _copy_run(root, "secret_run")
        (run / "config.json").chmod(0)
        _copy_run(root, "locked_run").chmod(0o200)
        if user is not None:  # the files belong to the user the command runs as
            owned = [root / "locked", root / "secret.toml", root / "locked_run", run]
            for path in (*owned, *run.rglob("*")):
                os.chown(path, user[1].pw_uid, user[1].pw_gid)
        env = {**os.environ, "PYTHONPATH": SRC, "HOME": str(root)}
        result = subprocess.run(
            [sys.executable, "-m", "deltaprop", *argv],
            capture_output=True, text=True, cwd=root, env=env, timeout=120, preexec_fn=drop,
        )  # fmt: skip
    finally:
        if user is not None:
            shutil.rmtree(root, ignore_errors=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert words in result.stderr.strip().splitlines()[-1], result.stderr


def test_permission_errors_become_one_sentence(tmp_path, monkeypatch):
    """What the test above checks end to end where file modes apply (not as root)."""
    from deltaprop import userfiles
    from deltaprop.errors import ModelError, TrainingError

    secret = tmp_path / "m.toml"
    secret.write_text('[[layers]]\ntype = "Linear"\n')
    real_open = open

    def deny(path, *args, **kwargs):
        if str(path) == str(secret):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", deny)
    with pytest.raises(ModelError, match="model file '.*m.toml' cannot be read: permission denied"):
        userfiles.read_toml(secret, "model file", ModelError)

    def no_write(**kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(userfiles.tempfile, "mkstemp", no_write)
    with pytest.raises(TrainingError, match="--out '.*out' is not writable: permission denied"):
        userfiles.check_output_dir(tmp_path / "out", "--out", TrainingError)
    monkeypatch.setattr(userfiles.os, "access", lambda path, mode: False)
    with pytest.raises(TrainingError, match="run directory '.*' cannot be read: permission"):
        userfiles.check_readable_dir(tmp_path, "run directory", TrainingError)


# ----------------------------------------------------------------------------------------------
# non-finite training: stops, names epoch and batch, keeps the last good checkpoint
# ----------------------------------------------------------------------------------------------


def test_divergence_stops_with_exit_3_and_keeps_the_last_good_checkpoint(tmp_path):
    from deltaprop.errors import DivergenceError
    from deltaprop.training import TrainSettings, load_checkpoint, train

    out = tmp_path / "r"
    settings = TrainSettings(dataset="xor", epochs=1, optimizer="sgd", lr=0.05, scheduler="none")
    quiet = dict(progress=False, plots=False, echo=lambda line: None)
    train(settings, out, **quiet)
    before = (out / "checkpoints" / "last.safetensors").read_bytes()

    def poison(run):  # a learning rate that makes the next step overflow
        if run.epoch == 1 and run.partial.batch == 3:
            run.optimizer.param_groups[0]["lr"] = 1e38

    with pytest.raises(DivergenceError, match=r"at epoch 2, batch \d+ of 10") as info:
        train(TrainSettings(epochs=3), out, resume=True, on_batch_end=poison, **quiet)
    message = str(info.value)
    assert "end of epoch 1" in message and "lower --lr" in message
    assert (out / "checkpoints" / "last.safetensors").read_bytes() == before
    state = load_checkpoint(out / "checkpoints" / "last.safetensors")
    assert state["epoch"] == 1
    assert all(np.isfinite(v.data).all() for v in state["model"].values())
    # the command line: exit status 3, one sentence, no metrics written for the bad epoch
    result = _run([*XOR, "--out", "cli", "--optimizer", "sgd", "--lr", "1e30"], tmp_path)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("deltaprop train: error: the training loss became nan at epoch 1")
    assert not (tmp_path / "cli" / "metrics.csv").exists()


# ----------------------------------------------------------------------------------------------
# dp.load: CheckpointError and nothing else
# ----------------------------------------------------------------------------------------------


def _with_structure(structure) -> bytes:
    header = {
        "__metadata__": {
            "format": "deltaprop",
            "format_version": "1",
            "structure": json.dumps(structure) if not isinstance(structure, str) else structure,
        }
    }
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text


def _with_header(header) -> bytes:
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + b"\x00" * 16


@pytest.mark.parametrize(
    "content, words",
    [
        (_with_structure("[" * 100_000 + "]" * 100_000), "unreadable structure"),
        (_with_structure(json.loads("[" * 500 + "]" * 500)), "nested more than"),
        (_with_structure({"__dict__": [[["a"], 1]]}), "malformed dict entry"),
        (_with_structure({"__dict__": [[True, 1]]}), "malformed dict entry"),
        (_with_structure({"__dict__": "x"}), "malformed dict entry"),
        (_with_structure({"__tuple__": 5}), "tuple entry"),
        (_with_structure({"__tensor__": ["x"]}), "does not contain"),
        (_with_structure({"__float__": 5}), "bad float value"),
        (_with_structure({"__scalar__": "x", "dtype": "float32"}), "bad float value"),
        (_with_structure({"__scalar__": 1, "dtype": "object"}), "bad scalar entry"),
        (_with_structure({"__scalar__": 300, "dtype": "uint8"}), "bad scalar entry"),
        (_with_header({"w": {"dtype": "F32", "shape": [2], "data_offsets": ["0", "8"]}}),
         "data_offsets"),
        (_with_header({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}),
         "data_offsets"),
        (_with_header({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}),
         "needs 12 bytes"),
        (_with_header({"w": {"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}}), "shape"),
        (_with_header({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}), "shape"),
        (_with_header({"w": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}), "dtype"),
        (_with_header({"w": [1, 2]}), "not a JSON object"),
        (_with_header({"__metadata__": [1], "w": {}}), "__metadata__"),
        (_with_header({"__metadata__": {"format": 5}}), "__metadata__"),
        (_with_header({"__metadata__": {"format": "deltaprop", "format_version": "1"}}),
         "structure entry is missing"),
    ],
)  # fmt: skip
def test_load_raises_only_checkpoint_error(tmp_path, content, words):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=words.replace("(", r"\(")) as info:
        dp.load(path)
    assert "bad.safetensors" in str(info.value)


def test_load_notices_data_damaged_on_disk(tmp_path):
    path = tmp_path / "w.safetensors"
    dp.save({"w": dp.arange(100).float()}, path)
    raw = bytearray(path.read_bytes())
    raw[-10] ^= 0x40  # one bit of the last weight
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="does not match the checksum"):
        dp.load(path)


# ----------------------------------------------------------------------------------------------
# a damaged `last` on disk: resume falls back to the verified checkpoint before it
# ----------------------------------------------------------------------------------------------


def test_damaged_last_resumes_from_the_previous_checkpoint(tmp_path):
    from deltaprop.training import TrainSettings, train

    quiet = dict(progress=False, plots=False)
    settings = TrainSettings(
        dataset="xor", hidden=(4,), epochs=3, optimizer="sgd", scheduler="step", seed=3
    )
    straight = train(settings, tmp_path / "straight", echo=lambda line: None, **quiet)

    out = tmp_path / "damaged"
    train(TrainSettings(**{**settings.__dict__, "epochs": 2}), out, echo=lambda s: None, **quiet)
    last = out / "checkpoints" / "last.safetensors"
    previous = out / "checkpoints" / "previous.safetensors"
    assert dp.load(previous)["epoch"] == 1 and dp.load(last)["epoch"] == 2
    raw = bytearray(last.read_bytes())
    raw[len(raw) // 2 :] = bytes(len(raw) - len(raw) // 2)  # the second half zeroed on disk
    last.write_bytes(bytes(raw))

    lines: list[str] = []
    resumed = train(TrainSettings(epochs=3), out, resume=True, echo=lines.append, **quiet)
    warning = next(line for line in lines if line.startswith("warning:"))
    assert "last.safetensors" in warning and f"resuming from {previous} instead" in warning
    assert any("resuming run" in line and "epoch 2 of 3" in line for line in lines)

    def rows(history):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in history]

    assert rows(resumed.history) == rows(straight.history)
    from deltaprop.training.commands import evaluate_run

    assert evaluate_run(out, "previous")["text"].startswith(f"run {out} (mlp, checkpoint previous")


def test_resume_message_names_epochs_and_batches(tmp_path):
    from deltaprop.errors import TrainingInterrupted
    from deltaprop.training import TrainSettings, train

    def stop(run):
        if run.partial.batch == 4:
            run.request_stop()

    out = tmp_path / "r"
    settings = TrainSettings(dataset="xor", epochs=5, scheduler="none")
    with pytest.raises(TrainingInterrupted):
        train(settings, out, progress=False, plots=False, echo=lambda s: None, on_batch_end=stop)
    lines: list[str] = []
    train(TrainSettings(), out, resume=True, progress=False, plots=False, echo=lines.append)
    assert f"resuming run {out}: epoch 1 of 5, after batch 4 of 10" in lines


def test_kill_9_then_resume_matches_a_straight_run(tmp_path):
    """A run killed with SIGKILL at an arbitrary moment (even while writing a checkpoint)
    resumes to exactly the metrics of an uninterrupted run."""
    import signal
    import time

    argv = [*TRAIN[:-2], "--epochs", "8", "--hidden", "64", "--batch-size", "16"]
    assert _run([*argv, "--out", "straight"], tmp_path).returncode == 0
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen(
        [sys.executable, "-m", "deltaprop", *argv, "--out", "killed"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    metrics = tmp_path / "killed" / "metrics.csv"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 3:  # 2 epochs done
            break
        time.sleep(0.005)
    killed = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if not killed:
        pytest.skip("the run finished before it could be killed (machine too fast)")
    resumed = _run([*TRAIN[:-2], "--out", "killed", "--resume"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr

    def rows(run):
        lines = (tmp_path / run / "metrics.csv").read_text().splitlines()
        return [line.rsplit(",", 1)[0] for line in lines]  # all but the seconds column

    assert len(rows("killed")) == 9
    assert rows("killed") == rows("straight")
