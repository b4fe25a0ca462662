"""One training job, as ``deltaprop train`` runs it: dataset, settings, model, loop, outputs.

:func:`train` is the whole job: load the dataset, build the model, train for the configured
epochs and write into the run directory::

    runs/NAME/
      config.json           every setting (defaults filled in), the model's layers, the
                            normalisation, data shapes, class names, versions
      metrics.csv           one row per epoch: train/test loss and accuracy, lr, seconds
      checkpoints/last.safetensors   model + optimizer + scheduler + epoch + RNG states
      checkpoints/best.safetensors   the same, at the epoch with the best test accuracy
      loss.png accuracy.png confusion_matrix.png [filters.png]

The loop, its checkpoints, exact resume and Ctrl-C live in :mod:`deltaprop.training.loop`;
the factories from settings (normalisation, optimizer, scheduler, model layers) in
:mod:`deltaprop.training.factories`.

>>> from deltaprop.training import TrainSettings, train
>>> result = train(TrainSettings(dataset="xor", epochs=2), "runs/xor-demo")  # doctest: +SKIP
>>> result.history[-1]["test_acc"] > 0.5  # doctest: +SKIP
True
"""

from __future__ import annotations

import dataclasses
import json
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deltaprop.distributed.training import current_world
from deltaprop.errors import DatasetError, TrainingError, TrainingInterrupted
from deltaprop.training.factories import (
    Normalizer,
    check_memory,
    check_requested,
    model_layers,
    prepare_settings,
)
from deltaprop.training.loop import TrainingRun
from deltaprop.training.rundir import CONFIG_FILE, read_config
from deltaprop.training.settings import COMMON_DEFAULTS, TrainSettings, check_setting
from deltaprop.userfiles import check_output_dir, check_readable_dir

__all__ = [
    "RunResult",
    "TrainingError",
    "TrainingInterrupted",
    "TrainingRun",
    "Normalizer",
    "train",
]


@dataclass
class RunResult:
    """What :func:`train` returns."""

    out: Path
    history: list[dict[str, Any]]
    test_acc: float
    config: dict[str, Any]
    model: Any = None
    predictions: np.ndarray | None = None
    plots: list[Path] = field(default_factory=list)


def versions() -> dict[str, str]:
    """Versions of deltaprop, Python, NumPy and the platform (recorded in config.json)."""
    import deltaprop

    return {
        "deltaprop": deltaprop.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def load_dataset(settings: TrainSettings) -> Any:
    """Load ``settings.dataset`` (raises DatasetError with one sentence)."""
    from deltaprop.datasets import load

    return load(settings.dataset, data_dir=settings.data_dir)


def train(
    settings: TrainSettings,
    out: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    plots: bool = True,
    echo: Callable[[str], None] = print,
    on_batch_end: Callable[[TrainingRun], None] | None = None,
    compile_step: bool = False,
) -> RunResult:
    """Train a model as ``deltaprop train`` does; returns the history and the final accuracy.

    Args:
        settings: the requested settings (None fields take their defaults).
        out: the run directory. It must not hold another run unless ``resume``.
        resume: continue the run in ``out`` from its last checkpoint, with its saved settings
            (``settings.epochs`` may raise the number of epochs).
        progress: show tqdm bars.
        plots: write the PNG plots at the end.
        echo: receives the one-line messages (epoch summaries).
        on_batch_end: see :class:`TrainingRun`.
        compile_step: run each batch's training step through :func:`deltaprop.compile`
            (the same numbers; its NaN/infinity check then comes after the update).

    Raises:
        TrainingError, ModelError, DatasetError, CheckpointError: user errors, one sentence.
        DivergenceError: the loss or a gradient became NaN or infinite (a TrainingError).
        TrainingInterrupted: stopped by Ctrl-C after saving a checkpoint.
    """
    out = Path(out)
    config_path = out / CONFIG_FILE
    world = current_world()  # several processes (mpirun): rank 0 writes, all train
    if world is not None and not world.is_writer:
        progress, plots, echo = False, False, _silent
    if resume:
        if out.exists() and not out.is_dir():
            raise TrainingError(f"cannot resume: --out {str(out)!r} is a file, not a run directory")
        if out.is_dir():
            check_readable_dir(out, "--out", TrainingError)
        if not config_path.exists():
            raise TrainingError(f"cannot resume: {out} holds no run ({CONFIG_FILE} is missing)")
        saved = read_config(out, TrainingError)
        settings = _merge_resume(TrainSettings.from_dict(saved["settings"]), settings)
    else:
        if config_path.exists():
            raise TrainingError(
                f"{out} already holds a run; pass --resume to continue it or choose another --out"
            )
        check_requested(settings)
        for name, value in settings.to_dict().items():
            check_setting(name, value, "--" + name.replace("_", "-"))

    if settings.dataset is None:
        settings = dataclasses.replace(settings, dataset=COMMON_DEFAULTS["dataset"])
    splits = load_dataset(settings)
    if len(splits.y_train) == 0 or len(splits.y_test) == 0:
        raise DatasetError(
            f"dataset {settings.dataset} has {len(splits.y_train)} training and "
            f"{len(splits.y_test)} test samples; each split needs at least one"
        )
    settings = prepare_settings(settings, splits)
    model_name, layers = model_layers(settings, tuple(splits.input_shape), splits.num_classes)
    batch = min(int(settings.batch_size), max(len(splits.y_train), 1))
    check_memory(layers, tuple(splits.input_shape), batch, settings.optimizer)
    normalizer = Normalizer.fit(splits.X_train) if settings.normalize else Normalizer.identity()
    X_train, X_test = normalizer(splits.X_train), normalizer(splits.X_test)
    config = {
        "settings": settings.to_dict(),
        "model_name": model_name,
        "layers": layers,
        "dataset": {
            "name": splits.name,
            "input_shape": list(splits.input_shape),
            "num_classes": splits.num_classes,
            "class_names": list(splits.class_names),
            "train_samples": int(len(splits.y_train)),
            "test_samples": int(len(splits.y_test)),
        },
        "normalize": normalizer.to_dict(),
        "versions": versions(),
        "command": list(sys.argv),
        "world_size": world.size if world is not None else 1,
    }
    if resume:  # keep the command that started the run; list the resumptions after it
        config["command"] = saved.get("command", config["command"])
        config["resumed_with"] = [*saved.get("resumed_with", []), list(sys.argv)]
    check_output_dir(out, "--out", TrainingError)
    if world is not None:
        on_batch_end = world.on_batch_end(on_batch_end)
    run = TrainingRun(
        settings,
        layers,
        X_train,
        splits.y_train,
        X_test,
        splits.y_test,
        out,
        progress=progress,
        echo=echo,
        on_batch_end=on_batch_end,
        is_writer=world is None or world.is_writer,
        sampler=world.sampler(len(splits.y_train), settings.seed) if world is not None else None,
        evaluate=world.evaluate if world is not None else None,
    )
    if compile_step:
        if world is not None:
            raise TrainingError("--compile trains in one process; leave it out with --nproc/mpirun")
        run.step_fn = compiled_step(run.model, run.optimizer)
    if resume and saved.get("world_size", 1) != config["world_size"]:
        run.resume_epoch_start = True  # the epochs are shared out differently now
    if resume and run.resume(warn=echo) is not None:
        if run.scheduler is not None and settings.scheduler == "cosine":
            run.scheduler.T_max = int(settings.epochs)
        echo(f"resuming run {out}: {_position(run)}")
    elif resume:
        echo(f"{out} has no checkpoint yet (stopped during epoch 1): starting it again")
    if world is not None:
        world.attach(run)  # after resuming: every rank starts from rank 0's state
        world.barrier()  # every rank has checked the run directory before rank 0 writes
    if world is None or world.is_writer:
        _write_json(config_path, config)

    n_params = sum(int(p.data.size) for p in run.model.parameters())
    if run.epoch == 0 and run.partial.batch == 0:
        echo(
            f"training {model_name} ({n_params:,} parameters) on {splits.name} "
            f"({len(splits.y_train):,} train / {len(splits.y_test):,} test samples) for "
            f"{settings.epochs} epoch{'s' if settings.epochs != 1 else ''}: "
            f"{settings.optimizer} lr {settings.lr:g}, batch "
            f"{settings.batch_size}, scheduler {settings.scheduler}"
        )
    try:
        history = run.fit()
    except TrainingInterrupted:
        if plots and run.history:
            _safe_plots(run, splits, config, None)
        raise
    _, test_acc, predictions = run.evaluate(run.model, X_test, splits.y_test)
    result = RunResult(out, history, test_acc, config, run.model, predictions)
    if plots:
        result.plots = _safe_plots(run, splits, config, predictions)
    return result


def _silent(message: str) -> None:
    """The messages of every process but rank 0 of a data-parallel run."""


def _position(run: TrainingRun) -> str:
    """Where a resumed run continues, e.g. ``epoch 2 of 5, after batch 231 of 469``."""
    epochs = int(run.settings.epochs)
    if run.epoch >= epochs:
        return f"all {epochs} epochs are done"
    where = f"epoch {run.epoch + 1} of {epochs}"
    if run.partial.batch:
        where += f", after batch {run.partial.batch} of {len(run.loader)}"
    return where


def _safe_plots(run: TrainingRun, splits: Any, config: dict, predictions: Any) -> list[Path]:
    from deltaprop.training.plots import write_run_plots

    names = config["dataset"]["class_names"]
    return write_run_plots(run.out, run.history, run.model, splits.y_test, predictions, names)


#: Settings that may differ when resuming (they do not change the numbers of the run).
_RESUMABLE = {"data_dir", "epochs"}


def _merge_resume(saved: TrainSettings, requested: TrainSettings) -> TrainSettings:
    """The saved settings, with ``epochs``/``data_dir`` taken from the request when given.

    Any other setting given explicitly with a different value is an error: a resumed run
    continues with the settings it started with.
    """
    saved_values = saved.to_dict()
    merged = dict(saved_values)
    for name, value in requested.to_dict().items():
        if value is None:
            continue  # not given: keep the saved value
        if name in _RESUMABLE:
            merged[name] = value
        elif value != saved_values.get(name):
            raise TrainingError(
                f"the run was started with {name}={saved_values.get(name)!r}; --resume continues "
                f"with its saved settings (drop that option or start a new --out)"
            )
    if requested.epochs is not None and int(requested.epochs) < int(saved.epochs or 0):
        raise TrainingError(
            f"--epochs {requested.epochs} is fewer than the {saved.epochs} the run was started with"
        )
    return TrainSettings.from_dict(merged)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def compiled_step(model: Any, optimizer: Any) -> Callable[[Any, Any], tuple[Any, Any]]:
    """The training step of a batch (forward, cross entropy, backward, update) under
    :func:`deltaprop.compile`: ``step(x, y) -> (loss, logits)``, for ``TrainingRun.step_fn``."""
    from deltaprop.compiler import compile as dp_compile
    from deltaprop.nn import functional as F

    def step(x: Any, y: Any) -> tuple[Any, Any]:
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss, logits

    return dp_compile(step)
