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
rewritten (atomically) after every epoch.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deltaprop.errors import TrainingInterrupted
from deltaprop.training.checkpoint import save_checkpoint
from deltaprop.training.factories import build_optimizer, build_scheduler
from deltaprop.training.metrics import write_metrics_csv
from deltaprop.training.settings import TrainSettings

__all__ = ["BEST_CHECKPOINT", "LAST_CHECKPOINT", "METRICS_FILE", "TrainingRun", "evaluate_model"]

METRICS_FILE = "metrics.csv"
LAST_CHECKPOINT = "checkpoints/last.safetensors"
BEST_CHECKPOINT = "checkpoints/best.safetensors"


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
