"""The ``train``, ``evaluate`` and ``predict`` subcommands of the ``deltaprop`` command line.

:func:`add_commands` registers them on the dispatcher's subparsers (``deltaprop.cli``). Each
command function takes the parsed ``argparse.Namespace`` and returns an exit status; user
errors (:class:`deltaprop.errors.InputError`) reach ``deltaprop.cli.main``, which prints them as
one sentence with exit status 2 and no traceback.

Examples::

    deltaprop train                                  # mlp on the bundled 8x8 digits
    deltaprop train --dataset mnist --data-dir ~/data/mnist --model lenet5 --out runs/lenet
    deltaprop train --out runs/lenet --resume        # continue an interrupted run
    deltaprop evaluate --run runs/lenet
    deltaprop predict --run runs/lenet digit.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from deltaprop.cliutils import add_command, add_run_arguments, sentence
from deltaprop.errors import CommandError, DivergenceError, InputError
from deltaprop.training.argtypes import (
    hidden_sizes,
    non_negative_float,
    positive_float,
    positive_int,
    probability,
    seed,
)

__all__ = ["add_commands", "cmd_evaluate", "cmd_predict", "cmd_train", "settings_from_args"]


def add_commands(subparsers: Any) -> None:
    """Register ``train``, ``evaluate`` and ``predict`` on an argparse subparsers object."""
    _add_train(subparsers)
    _add_evaluate(subparsers)
    _add_predict(subparsers)


# ----------------------------------------------------------------------------------------------
# train
# ----------------------------------------------------------------------------------------------


def _add_train(subparsers: Any) -> None:
    from deltaprop.models import ACTIVATIONS
    from deltaprop.training.settings import OPTIMIZERS, SCHEDULERS, describe_defaults

    p = add_command(
        subparsers,
        "train",
        cmd_train,
        "train a classifier and write metrics, checkpoints and plots",
        "Train a classifier. Options left out take defaults chosen for the model and the kind of "
        "data (below; docs/training.md explains them); config.json in the run directory lists "
        "every setting used.",
        epilog="defaults:\n  "
        + describe_defaults().replace("\n", "\n  ")
        + "\n\nkinds of data: images (>= 16x16: mnist, fashion-mnist), small-images (the 8x8 "
        "digits),\n  points (xor, moons, spirals), table (csv:PATH)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = p.add_argument_group("data")
    data.add_argument(
        "--dataset",
        help="digits (bundled; the default), mnist, fashion-mnist, csv:PATH, xor, moons or spirals",
    )
    data.add_argument("--data-dir", help="directory of the MNIST / Fashion-MNIST IDX files")
    data.add_argument(
        "--no-normalize",
        dest="normalize",
        action="store_const",
        const=False,
        help="feed raw inputs instead of standardising them with the training set's mean/std",
    )
    model = p.add_argument_group("model")
    model.add_argument(
        "--model", help="logreg, mlp (default), lenet5, or the path of a TOML model file"
    )
    model.add_argument("--hidden", type=hidden_sizes, help="mlp hidden sizes, e.g. 256,128")
    model.add_argument("--activation", choices=sorted(ACTIVATIONS), help="mlp/lenet5 activation")
    model.add_argument("--dropout", type=probability, help="dropout after hidden layers")
    opt = p.add_argument_group("optimisation")
    opt.add_argument("--epochs", type=positive_int)
    opt.add_argument(
        "--batch-size",
        type=positive_int,
        help="samples per batch in each process (with --nproc N or mpirun -n N, the global "
        "batch is N times it)",
    )
    opt.add_argument("--optimizer", choices=OPTIMIZERS, help="(default: adam)")
    opt.add_argument("--lr", type=positive_float, help="learning rate")
    opt.add_argument("--momentum", type=non_negative_float, help="sgd and rmsprop only")
    opt.add_argument("--weight-decay", type=non_negative_float)
    opt.add_argument("--scheduler", choices=SCHEDULERS, help="per-epoch lr schedule")
    opt.add_argument("--step-size", type=positive_int, help="StepLR period in epochs")
    opt.add_argument("--gamma", type=positive_float, help="StepLR / ExponentialLR factor")
    opt.add_argument("--seed", type=seed, help="seed of initialisation, shuffling and dropout")
    run = p.add_argument_group("run")
    run.add_argument(
        "--out", help="run directory (default: runs/DATASET-MODEL, numbered if it exists)"
    )
    run.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its checkpoint"
    )
    run.add_argument(
        "--nproc",
        type=positive_int,
        help="train on N processes of this machine (data parallel, through MPI: starts mpirun "
        "itself; on several machines run mpirun -n N deltaprop train ... instead)",
    )
    run.add_argument(
        "--compile",
        action="store_true",
        help="record the training step once and replay it (deltaprop.compile): same numbers, "
        "less Python per batch",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument("--no-plots", action="store_true", help="do not write PNG plots")


def settings_from_args(args: argparse.Namespace) -> Any:
    """The :class:`TrainSettings` given on the command line (None where not given)."""
    from deltaprop.training.settings import TrainSettings

    return TrainSettings(
        dataset=args.dataset,
        data_dir=args.data_dir,
        model=args.model,
        hidden=args.hidden,
        activation=args.activation,
        dropout=args.dropout,
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        scheduler=args.scheduler,
        step_size=args.step_size,
        gamma=args.gamma,
        seed=args.seed,
        normalize=args.normalize,
    )


def _default_out(settings: Any) -> Path:
    dataset = (settings.dataset or "digits").lower()
    if dataset.startswith("csv:"):
        dataset = Path(dataset[4:]).stem or "csv"
    model = Path(settings.model).stem if settings.model else "mlp"
    base = Path("runs") / f"{dataset}-{model}"
    candidate, number = base, 1
    while (candidate / "config.json").exists():
        number += 1
        candidate = base.with_name(f"{base.name}-{number}")
    return candidate


def cmd_train(args: argparse.Namespace) -> int:
    """``deltaprop train``: returns 0; 3 when the loss or a gradient became NaN/infinite (the
    last good checkpoint kept); 130 when stopped by Ctrl-C (checkpoint saved).

    ``--nproc N`` (N > 1) runs the same command on N processes through ``mpirun``; a process
    started by ``mpirun`` joins the others (see :mod:`deltaprop.distributed.training`).
    """
    from deltaprop.distributed import is_mpi_launched
    from deltaprop.distributed.training import abort, finish, join_mpirun_world, launch

    if args.nproc is not None and is_mpi_launched():
        raise CommandError(
            "--nproc starts mpirun itself; under mpirun leave it out (mpirun -n N sets the "
            "number of processes)"
        )
    if args.nproc is not None and args.nproc > 1:
        argv = getattr(args, "argv", None)
        return launch(args.nproc, argv if argv is not None else sys.argv[1:])
    world = join_mpirun_world()
    if world is None:
        return _train(args)
    try:
        status = _train(args)
    except InputError as e:  # one sentence, from the rank that found it
        print(f"deltaprop train: error: (rank {world.rank}) {sentence(e)}", file=sys.stderr)
        status = 2
    except KeyboardInterrupt:  # a second Ctrl-C: stop now, whatever the other ranks do
        print(f"deltaprop train: interrupted (rank {world.rank})", file=sys.stderr)
        return abort(130)
    return finish(world, status)


def _train(args: argparse.Namespace) -> int:
    from deltaprop.distributed.training import current_world
    from deltaprop.training.trainer import TrainingInterrupted, train

    world = current_world()
    writer = world is None or world.is_writer
    settings = settings_from_args(args)
    if args.resume and not args.out:
        raise CommandError("--resume needs --out, the directory of the run to continue")
    out = Path(args.out) if args.out else _default_out(settings)
    try:
        result = train(
            settings,
            out,
            resume=args.resume,
            progress=not args.no_progress,
            plots=not args.no_plots,
            compile_step=args.compile,
        )
    except TrainingInterrupted as e:
        if writer:
            nproc = f"--nproc {world.size} " if world is not None else ""
            print(f"{e}\nresume with: deltaprop train {nproc}--out {out} --resume", file=sys.stderr)
        return 130
    except DivergenceError as e:  # the settings were valid; training blew up (exit status 3)
        print(f"deltaprop train: error: {sentence(e)}", file=sys.stderr)
        return 3
    if not writer:
        return 0
    total = len(result.predictions) if result.predictions is not None else 0
    correct = round(result.test_acc * total)
    print(f"test accuracy: {result.test_acc:.2%} ({correct}/{total})")
    print(f"run directory: {out}  (metrics.csv, config.json, checkpoints/)")
    if result.plots:
        print("plots: " + ", ".join(str(p) for p in result.plots))
    return 0


# ----------------------------------------------------------------------------------------------
# evaluate
# ----------------------------------------------------------------------------------------------


def _add_evaluate(subparsers: Any) -> None:
    p = add_command(
        subparsers,
        "evaluate",
        cmd_evaluate,
        "accuracy, per-class precision/recall and confusion matrix of a trained run",
        "Evaluate a trained run on its dataset's test split (or the train split).",
    )
    add_run_arguments(p)
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--data-dir", help="where the IDX files are now, if they moved")


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``deltaprop evaluate``: prints accuracy, per-class metrics and the confusion matrix."""
    report = evaluate_run(args.run, args.checkpoint, args.split, args.data_dir)
    print(report["text"])
    return 0


def evaluate_run(
    run: str | Path, checkpoint: str = "last", split: str = "test", data_dir: str | None = None
) -> dict[str, Any]:
    """Evaluate a run's model on a split: the classification report plus ``loss`` and ``text``."""
    from deltaprop.datasets import load
    from deltaprop.training.metrics import (
        classification_report,
        evaluate_model,
        format_confusion_matrix,
        format_report,
    )
    from deltaprop.training.predict import PredictError, load_run

    loaded = load_run(run, checkpoint)
    settings = loaded.config["settings"]
    splits = load(settings["dataset"], data_dir=data_dir or settings.get("data_dir"))
    expected = tuple(loaded.input_shape)
    if tuple(splits.input_shape) != expected:
        raise PredictError(
            f"the dataset now has samples of shape {tuple(splits.input_shape)}, but the model "
            f"was trained on {expected}"
        )
    X, y = (splits.X_test, splits.y_test) if split == "test" else (splits.X_train, splits.y_train)
    loss, _, predictions = evaluate_model(loaded.model, loaded.normalize(X), y)
    names = loaded.class_names
    report = classification_report(y, predictions, len(names))
    report["loss"] = loss
    correct = int(report["confusion"].trace())
    report["text"] = "\n".join(
        [
            f"run {run} ({loaded.config['model_name']}, checkpoint {loaded.checkpoint.name}) on "
            f"{splits.name} {split} split: {len(y)} samples",
            f"accuracy: {report['accuracy']:.2%} ({correct}/{len(y)})   loss: {loss:.4f}",
            "",
            format_report(report, names),
            "",
            "confusion matrix (rows: true class, columns: predicted class)",
            format_confusion_matrix(report["confusion"], names),
        ]
    )
    return report


# ----------------------------------------------------------------------------------------------
# predict
# ----------------------------------------------------------------------------------------------


def _add_predict(subparsers: Any) -> None:
    p = add_command(
        subparsers,
        "predict",
        cmd_predict,
        "classify image files (PNG/JPEG) or CSV rows with a trained run",
        "Classify image files or CSV rows. Images are converted to grayscale, inverted when their "
        "background is light (the training digits are light on black), cropped to the strokes, "
        "resized to the model's input and centred.",
    )
    add_run_arguments(p)
    p.add_argument("files", nargs="+", metavar="FILE", help="image files or .csv files")
    p.add_argument("--top", type=positive_int, default=1, help="show the k most likely classes")


def cmd_predict(args: argparse.Namespace) -> int:
    """``deltaprop predict``: one line per input, ``FILE: CLASS (p=0.987)``."""
    from deltaprop.training.predict import load_run, predict_files

    loaded = load_run(args.run, args.checkpoint)
    results = predict_files(loaded, args.files, top=args.top)
    for r in results:
        ranked = ", ".join(
            f"{name} (p={p:.3f})" for name, p in zip(r["classes"], r["probabilities"])
        )
        print(f"{r['source']}: {ranked}")
    return 0
