"""``deltaprop train / evaluate / predict`` from the command line: outputs and exit statuses."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deltaprop.training.commands import add_commands


def run_cli(argv: list[str]) -> int:
    """Run a training subcommand as ``deltaprop.cli.main`` does (exit status; 2 on user error)."""
    from deltaprop.cli import CommandError, main

    try:
        import deltaprop.explain.commands  # noqa: F401
    except ImportError:  # the explain commands are not there yet: dispatch ours only
        parser = argparse.ArgumentParser(prog="deltaprop")
        sub = parser.add_subparsers(dest="command", required=True)
        add_commands(sub)
        args = parser.parse_args(argv)
        try:
            return int(args.func(args) or 0)
        except CommandError as e:
            print(f"deltaprop {args.command}: error: {e}", file=sys.stderr)
            return 2
    return main(argv)


QUIET = ["--no-progress", "--no-plots"]


def test_parser_registers_three_commands_with_funcs():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    add_commands(sub)
    for argv in (["train"], ["evaluate", "--run", "r"], ["predict", "--run", "r", "a.png"]):
        args = parser.parse_args(argv)
        assert callable(args.func)
    args = parser.parse_args(
        ["train", "--hidden", "256,128", "--activation", "tanh", "--lr", "0.1"]
    )
    assert args.hidden == (256, 128) and args.activation == "tanh" and args.lr == 0.1
    assert args.epochs is None and args.optimizer is None  # defaults are resolved later


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--optimizer", "lbfgs"],
        ["train", "--epochs", "0"],
        ["train", "--hidden", "12,x"],
        ["train", "--dropout", "1.5"],
        ["train", "--lr", "-1"],
        ["train", "--scheduler", "linear"],
        ["predict", "--run", "r"],  # no files
    ],
)
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        run_cli(argv)
    assert info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_train_evaluate_predict_csv(tmp_path, capsys):
    out = tmp_path / "moons"
    assert run_cli(["train", "--dataset", "moons", "--epochs", "3", "--out", str(out), *QUIET]) == 0
    text = capsys.readouterr().out
    assert "epoch   3/3" in text and "test accuracy:" in text and str(out) in text
    assert (out / "metrics.csv").is_file() and (out / "config.json").is_file()

    assert run_cli(["evaluate", "--run", str(out)]) == 0
    text = capsys.readouterr().out
    assert "accuracy:" in text and "precision" in text and "confusion matrix" in text

    rows = tmp_path / "points.csv"
    rows.write_text("x,y\n-1.0,0.5\n2.0,-0.3\n")
    assert run_cli(["predict", "--run", str(out), str(rows), "--top", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{rows}:1: ") and "p=" in lines[0]


def test_train_with_toml_model_and_resume(tmp_path, capsys):
    model = tmp_path / "net.toml"
    model.write_text('[[layers]]\ntype = "Linear"\nout_features = 16\n\n[[layers]]\ntype = "Tanh"\n'
                     '\n[[layers]]\ntype = "Linear"\n')  # fmt: skip
    out = tmp_path / "spirals"
    argv = [
        "train",
        "--dataset",
        "spirals",
        "--model",
        str(model),
        "--epochs",
        "2",
        "--out",
        str(out),
    ]
    assert run_cli([*argv, *QUIET]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model_name"] == "net" and config["layers"][0]["in_features"] == 2
    assert config["layers"][-1]["out_features"] == 3
    assert run_cli([*argv, *QUIET]) == 2  # the run exists: needs --resume
    assert "pass --resume" in capsys.readouterr().err
    assert run_cli(["train", "--out", str(out), "--resume", "--epochs", "3", *QUIET]) == 0
    assert "resuming" in capsys.readouterr().out
    assert len((out / "metrics.csv").read_text().splitlines()) == 1 + 3


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dataset", "csv:/nonexistent/table.csv"], "table.csv"),
        (["--dataset", "moons", "--model", "lenet5"], "lenet5 needs image samples"),
        (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
        (["--model", "missing.toml"], "model file 'missing.toml' does not exist"),
        (["--resume"], "holds no run (config.json is missing)"),
        (["--model", "logreg", "--hidden", "8"], "--hidden"),
    ],
)
def test_user_errors_exit_2_with_one_sentence(tmp_path, argv, message, capsys):
    status = run_cli(["train", *argv, "--epochs", "1", "--out", str(tmp_path / "r"), *QUIET])
    assert status == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_resume_needs_out(capsys):
    assert run_cli(["train", "--resume"]) == 2
    assert "--resume needs --out" in capsys.readouterr().err


def test_model_that_does_not_fit_the_data(tmp_path, capsys):
    model = tmp_path / "wrong.toml"
    model.write_text('[[layers]]\ntype = "Linear"\nin_features = 784\nout_features = 10\n')
    status = run_cli(
        ["train", "--dataset", "xor", "--model", str(model), "--out", str(tmp_path / "r")]
    )
    assert status == 2
    assert "expects 784 input features but receives 2" in capsys.readouterr().err


def test_evaluate_and_predict_errors(tmp_path, capsys):
    assert run_cli(["evaluate", "--run", str(tmp_path)]) == 2
    assert "not a training run" in capsys.readouterr().err
    assert run_cli(["predict", "--run", str(tmp_path), "x.png"]) == 2


def test_predict_image_on_digits_run(tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "digits"
    assert run_cli(["train", "--epochs", "2", "--hidden", "32", "--out", str(out), *QUIET]) == 0
    capsys.readouterr()
    image = np.full((40, 40), 255, np.uint8)  # a dark "1" on white paper
    image[5:35, 18:22] = 0
    Image.fromarray(image).save(tmp_path / "one.png")
    assert run_cli(["predict", "--run", str(out), str(tmp_path / "one.png")]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{tmp_path / 'one.png'}: ") and "(p=" in line


def test_default_out_is_numbered(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        assert run_cli(["train", "--dataset", "xor", "--epochs", "1", *QUIET]) == 0
    assert (Path("runs/xor-mlp/config.json")).is_file()
    assert (Path("runs/xor-mlp-2/config.json")).is_file()


def test_console_entry_point_has_no_traceback(tmp_path):
    """``python -m deltaprop`` end to end, in a fresh process."""
    pytest.importorskip("deltaprop.explain.commands")
    bad = subprocess.run(
        [sys.executable, "-m", "deltaprop", "train", "--dataset", "csv:missing.csv"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr and "missing.csv" in bad.stderr


def test_ctrl_c_then_resume_matches_a_straight_run(tmp_path, monkeypatch, capsys):
    """Ctrl-C during epoch 2 exits 130 with the resume command; resuming gives the same run."""
    import functools
    import os
    import signal

    from deltaprop.training import trainer
    from deltaprop.training.metrics import read_metrics_csv

    argv = ["train", "--epochs", "3", "--hidden", "32", "--batch-size", "64", *QUIET]
    assert run_cli([*argv, "--out", str(tmp_path / "straight")]) == 0

    def press_ctrl_c(run):
        if run.epoch == 1 and run.partial.batch == 7:
            os.kill(os.getpid(), signal.SIGINT)

    original = trainer.train
    monkeypatch.setattr(trainer, "train", functools.partial(original, on_batch_end=press_ctrl_c))
    out = tmp_path / "interrupted"
    assert run_cli([*argv, "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert "stopped at epoch 2, batch 7" in err and f"deltaprop train --out {out} --resume" in err
    monkeypatch.setattr(trainer, "train", original)
    assert run_cli(["train", "--out", str(out), "--resume", *QUIET]) == 0

    def rows(run):
        return [
            {k: v for k, v in r.items() if k != "seconds"}
            for r in read_metrics_csv(run / "metrics.csv")
        ]

    assert len(rows(out)) == 3
    assert rows(out) == rows(tmp_path / "straight")
