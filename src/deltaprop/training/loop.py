"""The training loop and its checkpoints: epochs, batches, exact resume, Ctrl-C.

:class:`TrainingRun` holds the model, optimizer, scheduler, data and position of one run and
trains it epoch by epoch, writing ``checkpoints/last.safetensors`` after every epoch (and
``best.safetensors`` when the test accuracy improved).

Exact resume: the checkpoint holds everything the rest of the run depends on (parameters,
optimizer moments, scheduler counters, the global generator that draws dropout masks, the
shuffling generator as it was at the start of the current epoch, the metrics so far, and the
position inside the epoch). Resuming from it replays the same batches with the same random
draws, so an interrupted-and-resumed run produces the same numbers as an uninterrupted one.

Interrupts: the first Ctrl-C (SIGINT) asks the loop to stop at the end of the current batch;
the loop then saves a checkpoint (mid-epoch) and raises :class:`TrainingInterrupted`. A second
Ctrl-C aborts at once. A killed process loses at most the epoch in progress: ``last`` is
rewritten after every epoch.

Nothing is lost: a new ``last`` is written under a temporary name, read back and compared
before it replaces the old one, which becomes ``previous``. Resuming from a ``last`` that was
damaged on disk (every checkpoint carries a checksum of its data) falls back to ``previous``
with a warning.

Divergence: a loss or a gradient that becomes NaN or infinite stops the run with
:class:`~deltaprop.errors.DivergenceError` naming the epoch and batch; the last good checkpoint
stays as it was. The eager loop checks before the optimizer applies the gradients; a
``step_fn`` updates the parameters inside the step, so there the check comes after the update.

Hooks for other ways of running the loop: ``is_writer=False`` (every process of a
data-parallel run but one) trains without writing checkpoints, metrics or messages;
``sampler`` replaces the shuffled order of the training set (e.g. by each process's share);
``step_fn(x, y)``, when given, replaces the forward-loss-backward of a batch and returns
``(loss, logits)``; ``evaluate(model, X, y)`` replaces :func:`evaluate_model` for the
end-of-epoch test (e.g. split over processes).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deltaprop.errors import CheckpointError, TrainingInterrupted
from deltaprop.training.checkpoint import check_training_state, load_checkpoint, write_verified
from deltaprop.training.factories import build_optimizer, build_scheduler
from deltaprop.training.guards import divergence_error, non_finite, sigint_requests_stop
from deltaprop.training.metrics import evaluate_model, write_metrics_csv
from deltaprop.training.settings import TrainSettings

__all__ = [
    "BEST_CHECKPOINT",
    "LAST_CHECKPOINT",
    "METRICS_FILE",
    "PREVIOUS_CHECKPOINT",
    "TrainingRun",
    "evaluate_model",
]

METRICS_FILE = "metrics.csv"
LAST_CHECKPOINT = "checkpoints/last.safetensors"
PREVIOUS_CHECKPOINT = "checkpoints/previous.safetensors"
BEST_CHECKPOINT = "checkpoints/best.safetensors"


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
        is_writer, sampler, step_fn, evaluate: see the module docstring.
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
        is_writer: bool = True,
        sampler: Any = None,
        step_fn: Callable[[Any, Any], tuple[Any, Any]] | None = None,
        evaluate: Callable[..., tuple[float, float, np.ndarray]] | None = None,
    ) -> None:
        import deltaprop as dp
        from deltaprop.data import DataLoader, TensorDataset
        from deltaprop.models import build_sequential

        self.settings = settings
        self.out = Path(out)
        self.X_test, self.y_test = X_test, y_test
        self.progress = progress
        self.echo = echo
        self.on_batch_end = on_batch_end
        self.is_writer = is_writer
        self.evaluate = evaluate if evaluate is not None else evaluate_model
        self.step_fn = step_fn
        # set when resuming with another number of processes: their shares of an epoch differ,
        # so an epoch interrupted in the middle restarts from its first batch
        self.resume_epoch_start = False
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
            shuffle=sampler is None,
            generator=self.shuffle_generator,
            sampler=sampler,
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

    def load_state_dict(self, state: dict[str, Any], where: str = "the checkpoint") -> None:
        """Restore what :meth:`state_dict` returned.

        Raises:
            CheckpointError: ``state`` does not belong to this run (a missing entry, a value of
                the wrong type, a weight of another shape); ``where`` names the file.
        """
        import deltaprop as dp

        if self.resume_epoch_start and isinstance(state, dict) and "partial" in state:
            state = {**state, "partial": _EpochProgress().to_dict()}
        check_training_state(state, self.model, len(self.loader), where)
        self.model.load_state_dict(state["model"])
        try:  # the optimizer and scheduler check their own state dicts (ValueError, KeyError)
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler is not None and state.get("scheduler") is not None:
                self.scheduler.load_state_dict(state["scheduler"])
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(
                f"{where} does not fit the run's optimizer or scheduler: {e}"
            ) from None
        self.epoch = int(state["epoch"])
        self.partial = _EpochProgress(**state["partial"])
        dp.set_rng_state(state["rng"])
        self.epoch_shuffle_state = state["shuffle_rng"]
        self.shuffle_generator.bit_generator.state = state["shuffle_rng"]
        self.history = list(state["history"])
        self.best_acc = float(state["best_acc"])

    def save(self, name: str = LAST_CHECKPOINT) -> Path:
        """Write the state to ``out/name`` (``last``: verified, the old one kept as ``previous``).

        Does nothing but return the path when this process is not the writer.
        """
        path = self.out / name
        if self.is_writer:
            previous = self.out / PREVIOUS_CHECKPOINT if name == LAST_CHECKPOINT else None
            write_verified(path, self.state_dict(), previous)
        return path

    def resume(self, warn: Callable[[str], None]) -> Path | None:
        """Load ``last`` (or, if it is damaged or does not fit, ``previous``); returns the file
        used, or None when the run has no checkpoint yet.

        Raises:
            CheckpointError: every checkpoint there is unusable (the message gives each reason).
        """
        reasons = []
        for name in (LAST_CHECKPOINT, PREVIOUS_CHECKPOINT):
            path = self.out / name
            if not path.is_file():
                continue
            try:
                self.load_state_dict(load_checkpoint(path), f"checkpoint {str(path)!r}")
            except CheckpointError as e:
                reasons.append(str(e))
                continue
            if reasons:
                warn(f"warning: {reasons[0]}; resuming from {path} instead")
            return path
        if reasons:
            raise CheckpointError("; ".join(reasons) + " (no usable checkpoint left)")
        return None

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
        with sigint_requests_stop(self):
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
        if hasattr(self.loader.sampler, "set_epoch"):  # a new share of the data each epoch
            self.loader.sampler.set_epoch(self.epoch)
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
        parameters = list(model.named_parameters())
        # Overflow to inf/NaN is detected and reported by _check_finite (one sentence naming the
        # epoch and batch), so NumPy's own warnings would only repeat it, less clearly.
        quiet = np.errstate(over="ignore", invalid="ignore", divide="ignore")
        quiet.__enter__()
        try:
            for x, y in batches:
                if self.step_fn is not None:
                    loss, logits = self.step_fn(x, y)
                else:
                    logits = model(x)
                    loss = F.cross_entropy(logits, y)
                    optimizer.zero_grad()
                    loss.backward()
                value = float(loss.item())
                self._check_finite(value, parameters, progress.batch + 1, total_batches)
                if self.step_fn is None:
                    optimizer.step()
                n = len(y.data)
                progress.loss_sum += value * n
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
            quiet.__exit__(None, None, None)
            progress.seconds = time.perf_counter() - start
            if bar is not None:
                bar.close()

    def _check_finite(
        self, loss: float, parameters: list[tuple[str, Any]], batch: int, total: int
    ) -> None:
        """DivergenceError when the loss or a gradient is NaN or infinite (before the
        optimizer step in the eager loop, after it with a ``step_fn``)."""
        what = non_finite(loss, parameters)
        if what is not None:
            self._diverged(f"{what} at epoch {self.epoch + 1}, batch {batch} of {total}")

    def _diverged(self, what: str) -> None:
        raise divergence_error(what, self.out / LAST_CHECKPOINT, self.epoch, self.settings, self.lr)

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
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            test_loss, test_acc, _ = self.evaluate(self.model, self.X_test, self.y_test)
        if not math.isfinite(test_loss) and len(self.y_test):
            self._diverged(f"the test loss became {test_loss} at the end of epoch {self.epoch + 1}")
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
        if not self.is_writer:
            return
        write_metrics_csv(self.out / METRICS_FILE, self.history)
        rate = progress.seen / progress.seconds if progress.seconds > 0 else float("nan")
        self.echo(
            f"epoch {row['epoch']:>3}/{self.settings.epochs}  "
            f"train loss {row['train_loss']:.4f} acc {row['train_acc']:6.2%}  "
            f"test loss {test_loss:.4f} acc {test_acc:6.2%}  lr {lr:.2e}  "
            f"{seconds:.1f}s ({rate:,.0f} train samples/s)"
        )
