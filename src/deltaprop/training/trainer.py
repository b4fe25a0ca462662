"""The training loop behind ``deltaprop train``: epochs, checkpoints, exact resume.

:func:`train` is the whole job: load the dataset, build the model, train for the configured
epochs and write into the run directory::

    runs/NAME/
      config.json           every setting (defaults filled in), the model's layers, the
                            normalisation, data shapes, class names, versions
      metrics.csv           one row per epoch: train/test loss and accuracy, lr, seconds
      checkpoints/last.safetensors   model + optimizer + scheduler + epoch + RNG states
      checkpoints/best.safetensors   the same, at the epoch with the best test accuracy
      loss.png accuracy.png confusion_matrix.png [filters.png]

Exact resume: the checkpoint holds everything the rest of the run depends on (parameters,
optimizer moments, scheduler counters, the global generator that draws dropout masks, the
shuffling generator as it was at the start of the current epoch, the metrics so far, and the
position inside the epoch). Resuming from it replays the same batches with the same random
draws, so an interrupted-and-resumed run produces the same numbers as an uninterrupted one.

Interrupts: the first Ctrl-C (SIGINT) asks the loop to stop at the end of the current batch;
the loop then saves a checkpoint (mid-epoch) and raises :class:`TrainingInterrupted`. A second
Ctrl-C aborts at once. A killed process loses at most the epoch in progress: ``last`` is
rewritten (atomically) after every epoch.

>>> from deltaprop.training import TrainSettings, train
>>> result = train(TrainSettings(dataset="xor", epochs=2), "runs/xor-demo")  # doctest: +SKIP
>>> result.history[-1]["test_acc"] > 0.5  # doctest: +SKIP
True
"""

from __future__ import annotations

import dataclasses
import json
import platform
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deltaprop.errors import TrainingError, TrainingInterrupted
from deltaprop.training.checkpoint import load_checkpoint, save_checkpoint
from deltaprop.training.metrics import write_metrics_csv
from deltaprop.training.settings import (
    COMMON_DEFAULTS,
    TrainSettings,
    data_kind,
    resolve_settings,
)

__all__ = [
    "RunResult",
    "TrainingError",
    "TrainingInterrupted",
    "TrainingRun",
    "Normalizer",
    "build_optimizer",
    "build_scheduler",
    "evaluate_model",
    "train",
]

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
LAST_CHECKPOINT = "checkpoints/last.safetensors"
BEST_CHECKPOINT = "checkpoints/best.safetensors"


# ----------------------------------------------------------------------------------------------
# Pieces: normalisation, optimizer, scheduler, evaluation
# ----------------------------------------------------------------------------------------------


@dataclass
class Normalizer:
    """``(x - mean) / std`` with statistics of the training set.

    Images ``(N, C, H, W)`` get one mean and std per channel, tables ``(N, D)`` one per feature;
    a zero std is replaced by 1. Stored in ``config.json`` so that ``evaluate`` and ``predict``
    feed the model exactly what it was trained on.

    >>> import numpy as np
    >>> norm = Normalizer.fit(np.array([[0.0, 1.0], [2.0, 1.0]], np.float32))
    >>> norm.mean, norm.std
    ([1.0, 1.0], [1.0, 1.0])
    >>> norm(np.array([[2.0, 1.0]], np.float32)).tolist()
    [[1.0, 0.0]]
    """

    mean: list[float]
    std: list[float]

    @classmethod
    def fit(cls, X: np.ndarray) -> Normalizer:
        axes = (0, 2, 3) if X.ndim == 4 else (0,)
        mean = X.mean(axis=axes, dtype=np.float64)
        std = X.std(axis=axes, dtype=np.float64)
        std[std < 1e-12] = 1.0
        return cls(mean.tolist(), std.tolist())

    @classmethod
    def identity(cls) -> Normalizer:
        return cls([0.0], [1.0])

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """A new float32 array ``(X - mean) / std`` (``X`` is not modified)."""
        shape = (1, -1, 1, 1) if X.ndim == 4 else (1, -1)
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        if mean.size > 1:
            mean, std = mean.reshape(shape), std.reshape(shape)
        out = np.subtract(X, mean, dtype=np.float32)
        out /= std
        return out

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean, "std": self.std}


def build_optimizer(settings: TrainSettings, parameters: list) -> Any:
    """The optimizer named by ``settings.optimizer`` (PyTorch update rules)."""
    from deltaprop import optim

    name = settings.optimizer
    lr, wd = settings.lr, settings.weight_decay
    if name == "sgd":
        return optim.SGD(parameters, lr=lr, momentum=settings.momentum, weight_decay=wd)
    if name == "adam":
        return optim.Adam(parameters, lr=lr, weight_decay=wd)
    if name == "adamw":
        return optim.AdamW(parameters, lr=lr, weight_decay=wd)
    if name == "rmsprop":
        return optim.RMSprop(parameters, lr=lr, momentum=settings.momentum, weight_decay=wd)
    raise TrainingError(f"unknown optimizer {name!r}; choose sgd, adam, adamw or rmsprop")


def build_scheduler(settings: TrainSettings, optimizer: Any) -> Any:
    """The learning-rate scheduler (stepped once per epoch), or None for ``none``."""
    from deltaprop.optim import lr_scheduler

    name = settings.scheduler
    if name == "none":
        return None
    if name == "step":
        return lr_scheduler.StepLR(optimizer, step_size=settings.step_size, gamma=settings.gamma)
    if name == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs)
    if name == "exponential":
        return lr_scheduler.ExponentialLR(optimizer, gamma=settings.gamma)
    raise TrainingError(f"unknown scheduler {name!r}; choose none, step, cosine or exponential")


def evaluate_model(
    model: Any, X: np.ndarray, y: np.ndarray, batch_size: int = 1000
) -> tuple[float, float, np.ndarray]:
    """Mean cross-entropy, accuracy and predicted classes of ``model`` on ``(X, y)``.

    Runs in eval mode under ``no_grad`` in batches of ``batch_size``, and restores the
    module's previous mode.
    """
    import deltaprop as dp
    from deltaprop.nn import functional as F

    was_training = model.training
    model.eval()
    loss_sum = 0.0
    predictions = np.empty(len(X), dtype=np.int64)
    try:
        with dp.no_grad():
            for start in range(0, len(X), batch_size):
                xb = dp.from_numpy(X[start : start + batch_size])
                yb = dp.from_numpy(y[start : start + batch_size])
                logits = model(xb)
                loss_sum += float(F.cross_entropy(logits, yb).item()) * len(yb)
                predictions[start : start + len(yb)] = logits.data.argmax(axis=1)
    finally:
        model.train(was_training)
    n = max(len(X), 1)
    return loss_sum / n, float((predictions == y).mean()) if len(X) else 0.0, predictions


# ----------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------


@dataclass
class _EpochProgress:
    """What has been accumulated so far in the current epoch (saved on interrupt)."""

    batch: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class TrainingRun:
    """Model, optimizer, scheduler, data and position of one training run.

    Args:
        settings: resolved settings (see :func:`~deltaprop.training.settings.resolve_settings`).
        layers: the resolved layer list of the model (see :mod:`deltaprop.models`).
        X_train, y_train, X_test, y_test: normalised float32 inputs and int64 labels.
        out: the run directory (checkpoints, metrics.csv).
        progress: show a tqdm bar per epoch.
        echo: where the one-line epoch summaries go (``print`` by default).
        on_batch_end: called with the run after every optimizer step (tests use it to
            simulate an interrupt with :meth:`request_stop`).
    """

    def __init__(
        self,
        settings: TrainSettings,
        layers: list[dict[str, Any]],
        X_train: np.ndarray,
        y_train: np.ndarray,
        X_test: np.ndarray,
        y_test: np.ndarray,
        out: Path,
        *,
        progress: bool = True,
        echo: Callable[[str], None] = print,
        on_batch_end: Callable[[TrainingRun], None] | None = None,
    ) -> None:
        import deltaprop as dp
        from deltaprop.data import DataLoader, TensorDataset
        from deltaprop.models import build_sequential

        self.settings = settings
        self.out = Path(out)
        self.progress = progress
        self.echo = echo
        self.on_batch_end = on_batch_end
        self.X_test, self.y_test = X_test, y_test
        dp.manual_seed(int(settings.seed))
        self.model = build_sequential(layers)
        self.optimizer = build_optimizer(settings, list(self.model.parameters()))
        self.scheduler = build_scheduler(settings, self.optimizer)
        # Shuffling has its own generator, so its stream does not depend on how many numbers
        # dropout drew; its state at the start of each epoch is what a checkpoint stores.
        self.shuffle_generator = np.random.default_rng([int(settings.seed), 1])
        self.loader = DataLoader(
            TensorDataset(X_train, y_train),
            batch_size=int(settings.batch_size),
            shuffle=True,
            generator=self.shuffle_generator,
        )
        self.epoch = 0  # completed epochs
        self.history: list[dict[str, Any]] = []
        self.best_acc = -1.0
        self.partial = _EpochProgress()
        self.epoch_shuffle_state = self.shuffle_generator.bit_generator.state
        self._stop = False

    # state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the run exactly (see the module docstring)."""
        import deltaprop as dp

        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "epoch": self.epoch,
            "partial": self.partial.to_dict(),
            "rng": dp.get_rng_state(),
            "shuffle_rng": self.epoch_shuffle_state,
            "history": self.history,
            "best_acc": self.best_acc,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        import deltaprop as dp

        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.epoch = int(state["epoch"])
        self.partial = _EpochProgress(**state["partial"])
        dp.set_rng_state(state["rng"])
        self.epoch_shuffle_state = state["shuffle_rng"]
        self.shuffle_generator.bit_generator.state = state["shuffle_rng"]
        self.history = list(state["history"])
        self.best_acc = float(state["best_acc"])

    def save(self, name: str = LAST_CHECKPOINT) -> Path:
        path = self.out / name
        save_checkpoint(path, self.state_dict())
        return path

    def request_stop(self) -> None:
        """Ask the loop to stop after the current batch (and save a checkpoint)."""
        self._stop = True

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # loop -------------------------------------------------------------------------------
    def fit(self) -> list[dict[str, Any]]:
        """Train until ``settings.epochs`` epochs are done; returns the metrics history.

        Raises:
            TrainingInterrupted: :meth:`request_stop` was called (e.g. by Ctrl-C); a checkpoint
                was saved first.
        """
        with _sigint_requests_stop(self):
            while self.epoch < int(self.settings.epochs):
                self._train_epoch()
                if self.partial.batch < len(self.loader):  # stopped inside the epoch
                    path = self.save()
                    raise TrainingInterrupted(
                        f"stopped at epoch {self.epoch + 1}, batch {self.partial.batch} of "
                        f"{len(self.loader)}; checkpoint saved to {path}",
                        path,
                    )
                self._end_epoch()
                if self._stop and self.epoch < int(self.settings.epochs):
                    path = self.out / LAST_CHECKPOINT
                    raise TrainingInterrupted(
                        f"stopped after epoch {self.epoch}; checkpoint saved to {path}", path
                    )
        return self.history

    def _train_epoch(self) -> None:
        """Run (the rest of) one epoch; returns early, mid-epoch, when a stop was requested."""
        from deltaprop.nn import functional as F

        progress = self.partial
        if progress.batch == 0:
            self.epoch_shuffle_state = self.shuffle_generator.bit_generator.state
        else:  # resuming mid-epoch: replay this epoch's order, skip the batches already done
            self.shuffle_generator.bit_generator.state = self.epoch_shuffle_state
        start = time.perf_counter() - progress.seconds
        total_batches = len(self.loader)
        bar = self._progress_bar(progress)
        self.model.train()
        model, optimizer = self.model, self.optimizer
        batches = iter(self.loader)
        for _ in range(progress.batch):
            next(batches)
        try:
            for x, y in batches:
                logits = model(x)
                loss = F.cross_entropy(logits, y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                n = len(y.data)
                progress.loss_sum += float(loss.item()) * n
                progress.correct += int((logits.data.argmax(axis=1) == y.data).sum())
                progress.seen += n
                progress.batch += 1
                if bar is not None:
                    bar.update(n)
                    if progress.batch % 10 == 0 or progress.batch == total_batches:
                        bar.set_postfix(
                            loss=f"{progress.loss_sum / progress.seen:.4f}",
                            acc=f"{progress.correct / progress.seen:.2%}",
                            refresh=False,
                        )
                if self.on_batch_end is not None:
                    self.on_batch_end(self)
                if self._stop and progress.batch < total_batches:
                    break
        finally:
            progress.seconds = time.perf_counter() - start
            if bar is not None:
                bar.close()

    def _progress_bar(self, progress: _EpochProgress) -> Any:
        if not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(
            total=len(self.loader.dataset),
            initial=progress.seen,
            desc=f"epoch {self.epoch + 1}/{self.settings.epochs}",
            unit="samples",
            unit_scale=True,
            leave=False,
            dynamic_ncols=True,
            file=sys.stderr,
            disable=None,  # no bar when stderr is not a terminal (logs, nohup)
        )

    def _end_epoch(self) -> None:
        """Evaluate, step the scheduler, record the metrics row, save the checkpoints."""
        progress = self.partial
        start = time.perf_counter() - progress.seconds
        lr = self.lr
        test_loss, test_acc, _ = evaluate_model(self.model, self.X_test, self.y_test)
        if self.scheduler is not None:
            self.scheduler.step()
        seconds = time.perf_counter() - start
        row = {
            "epoch": self.epoch + 1,
            "train_loss": progress.loss_sum / max(progress.seen, 1),
            "train_acc": progress.correct / max(progress.seen, 1),
            "test_loss": test_loss,
            "test_acc": test_acc,
            "lr": lr,
            "seconds": round(seconds, 3),
        }
        self.history.append(row)
        self.epoch += 1
        self.partial = _EpochProgress()
        self.epoch_shuffle_state = self.shuffle_generator.bit_generator.state
        improved = test_acc > self.best_acc
        if improved:
            self.best_acc = test_acc
        self.save(LAST_CHECKPOINT)
        if improved:
            self.save(BEST_CHECKPOINT)
        write_metrics_csv(self.out / METRICS_FILE, self.history)
        rate = progress.seen / progress.seconds if progress.seconds > 0 else float("nan")
        self.echo(
            f"epoch {row['epoch']:>3}/{self.settings.epochs}  "
            f"train loss {row['train_loss']:.4f} acc {row['train_acc']:6.2%}  "
            f"test loss {test_loss:.4f} acc {test_acc:6.2%}  lr {lr:.2e}  "
            f"{seconds:.1f}s ({rate:,.0f} train samples/s)"
        )


class _sigint_requests_stop:
    """While active (main thread only), the first Ctrl-C calls ``run.request_stop()``."""

    def __init__(self, run: TrainingRun) -> None:
        self.run = run
        self.previous: Any = None

    def __enter__(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self.previous = signal.getsignal(signal.SIGINT)

        def handler(signum: int, frame: Any) -> None:
            if self.run._stop:  # second Ctrl-C: abort now
                raise KeyboardInterrupt
            self.run.request_stop()
            print(
                "\nstopping after this batch to save a checkpoint (Ctrl-C again to abort)",
                file=sys.stderr,
            )

        signal.signal(signal.SIGINT, handler)

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


# ----------------------------------------------------------------------------------------------
# The whole job
# ----------------------------------------------------------------------------------------------


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


def model_layers(settings: TrainSettings, input_shape: tuple[int, ...], num_classes: int) -> tuple:
    """``(model name, resolved layers)`` for the settings' preset or TOML file."""
    from deltaprop.models import PRESETS, load_model_file, preset_layers, resolve_layers

    if settings.model in PRESETS:
        name = settings.model
        layers = preset_layers(
            name,
            input_shape,
            num_classes,
            hidden=settings.hidden or (),
            activation=settings.activation or "relu",
            dropout=float(settings.dropout or 0.0),
        )
    else:
        name, layers = load_model_file(settings.model)
    resolved, _ = resolve_layers(layers, input_shape, num_classes)
    return name, resolved


def check_requested(settings: TrainSettings) -> None:
    """Reject options that the chosen model or optimizer would silently ignore."""
    model = settings.model or COMMON_DEFAULTS["model"]
    optimizer = settings.optimizer or COMMON_DEFAULTS["optimizer"]
    if settings.hidden is not None and model != "mlp":
        raise TrainingError(f"--hidden sets the mlp's layer sizes; it does not apply to {model}")
    for name in ("activation", "dropout"):
        if getattr(settings, name) is not None and model not in ("mlp", "lenet5"):
            raise TrainingError(f"--{name} applies to the mlp and lenet5 models, not to {model}")
    if settings.momentum is not None and optimizer not in ("sgd", "rmsprop"):
        raise TrainingError(
            f"--momentum applies to the sgd and rmsprop optimizers, not to {optimizer}"
        )
    scheduler = settings.scheduler or COMMON_DEFAULTS["scheduler"]
    if settings.step_size is not None and scheduler != "step":
        raise TrainingError(f"--step-size applies to the step scheduler, not to {scheduler}")
    if settings.gamma is not None and scheduler not in ("step", "exponential"):
        raise TrainingError(
            f"--gamma applies to the step and exponential schedulers, not to {scheduler}"
        )


def prepare_settings(settings: TrainSettings, splits: Any) -> TrainSettings:
    """Resolve defaults for this model and dataset, and check the values."""
    kind = data_kind(splits.name, tuple(splits.input_shape))
    resolved = resolve_settings(settings, kind)
    if resolved.model != "mlp":
        resolved.hidden = None
    if resolved.model not in ("mlp", "lenet5"):
        resolved.activation = None
        resolved.dropout = None
    if resolved.optimizer not in ("sgd", "rmsprop"):
        resolved.momentum = None  # not used: keep config.json honest
    if resolved.scheduler != "step":
        resolved.step_size = None
    if resolved.scheduler not in ("step", "exponential"):
        resolved.gamma = None
    checks = [
        (int(resolved.epochs) >= 1, "--epochs must be at least 1"),
        (int(resolved.batch_size) >= 1, "--batch-size must be at least 1"),
        (float(resolved.lr) > 0, "--lr must be positive"),
        (float(resolved.momentum or 0) >= 0, "--momentum must not be negative"),
        (float(resolved.weight_decay) >= 0, "--weight-decay must not be negative"),
        (int(resolved.step_size or 1) >= 1, "--step-size must be at least 1"),
        (float(resolved.gamma or 1) > 0, "--gamma must be positive"),
    ]
    for ok, message in checks:
        if not ok:
            raise TrainingError(message)
    return resolved


def train(
    settings: TrainSettings,
    out: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    plots: bool = True,
    echo: Callable[[str], None] = print,
    on_batch_end: Callable[[TrainingRun], None] | None = None,
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

    Raises:
        TrainingError, ModelError, DatasetError, CheckpointError: user errors, one sentence.
        TrainingInterrupted: stopped by Ctrl-C after saving a checkpoint.
    """
    try:
        from deltaprop._malloc import tune_malloc

        tune_malloc()
    except ImportError:
        pass
    out = Path(out)
    config_path = out / CONFIG_FILE
    if resume:
        if not config_path.is_file():
            raise TrainingError(f"cannot resume: {out} holds no run ({CONFIG_FILE} is missing)")
        saved = json.loads(config_path.read_text())
        settings = _merge_resume(TrainSettings.from_dict(saved["settings"]), settings)
    else:
        if config_path.exists():
            raise TrainingError(
                f"{out} already holds a run; pass --resume to continue it or choose another --out"
            )
        check_requested(settings)

    if settings.dataset is None:
        settings = dataclasses.replace(settings, dataset=COMMON_DEFAULTS["dataset"])
    splits = load_dataset(settings)
    settings = prepare_settings(settings, splits)
    model_name, layers = model_layers(settings, tuple(splits.input_shape), splits.num_classes)
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
    }
    if resume:  # keep the command that started the run; list the resumptions after it
        config["command"] = saved.get("command", config["command"])
        config["resumed_with"] = [*saved.get("resumed_with", []), list(sys.argv)]
    out.mkdir(parents=True, exist_ok=True)
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
    )
    if resume and (out / LAST_CHECKPOINT).is_file():
        run.load_state_dict(load_checkpoint(out / LAST_CHECKPOINT))
        if run.scheduler is not None and settings.scheduler == "cosine":
            run.scheduler.T_max = int(settings.epochs)
        where = f"epoch {run.epoch + 1}" + (
            f", batch {run.partial.batch}" if run.partial.batch else ""
        )
        echo(f"resuming {out} at {where} of {settings.epochs}")
    elif resume:
        echo(f"{out} has no checkpoint yet (stopped during epoch 1): starting it again")
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
    _, test_acc, predictions = evaluate_model(run.model, X_test, splits.y_test)
    result = RunResult(out, history, test_acc, config, run.model, predictions)
    if plots:
        result.plots = _safe_plots(run, splits, config, predictions)
    return result


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
