"""What keeps a training run safe: NaN/inf detection and the Ctrl-C handler of the loop.

:func:`non_finite` says whether a step's loss or gradients went NaN or infinite,
:func:`divergence_error` words the one-sentence error the run then stops with, and
:class:`sigint_requests_stop` turns the first Ctrl-C into a request to stop after the current
batch (the loop saves a checkpoint first).

When the check runs: in the eager loop, after the batch's backward pass and before
``optimizer.step()``, so a NaN or infinite gradient is never applied. With a compiled step
(``--compile``, ``TrainingRun.step_fn``) the optimizer step is part of the step, so the check
runs after it: that batch's update has already changed the parameters in memory, but the run
stops all the same without writing a checkpoint from them (the last good one stays).

>>> import deltaprop as dp
>>> w = dp.ones(2, requires_grad=True)
>>> (w * float("inf")).sum().backward()
>>> non_finite(1.0, [("w", w)])
'the gradient of w became inf'
"""

from __future__ import annotations

import math
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

from deltaprop.errors import DivergenceError

__all__ = ["divergence_error", "non_finite", "sigint_requests_stop"]


def non_finite(loss: float, parameters: list[tuple[str, Any]]) -> str | None:
    """``"the training loss became nan"``, ``"the gradient of NAME became inf"``, or None.

    One ``sum`` per gradient: NaN and infinity propagate through it (a sum that overflows
    float32 without any infinite element also counts: the step would be as harmful).
    """
    if not math.isfinite(loss):
        return f"the training loss became {loss}"
    for name, p in parameters:
        g = p.grad
        if g is not None and not math.isfinite(float(g.data.sum())):
            bad = g.data[~np.isfinite(g.data)]
            return f"the gradient of {name} became {bad.flat[0] if bad.size else 'inf'}"
    return None


def divergence_error(
    what: str, last: Path, epochs_done: int, settings: Any, lr: float
) -> DivergenceError:
    """The error a diverged run stops with: what happened, the checkpoint kept, what to try."""
    kept = (
        f"the last good checkpoint is {last} (end of epoch {epochs_done})"
        if epochs_done > 0 and last.is_file()
        else "no checkpoint was written (it diverged in the first epoch)"
    )
    hints = [f"lower --lr (now {lr:g})"]
    if not settings.normalize:
        hints.append("drop --no-normalize")
    if float(settings.weight_decay or 0) > 0:
        hints.append(f"lower --weight-decay (now {float(settings.weight_decay):g})")
    return DivergenceError(
        f"{what}; training stopped and {kept}; try again with a smaller step: " + " or ".join(hints)
    )


class sigint_requests_stop:
    """While active (main thread only), the first Ctrl-C calls ``run.request_stop()``."""

    def __init__(self, run: Any) -> None:
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
            if self.run.is_writer:  # one message per job, not one per process
                print(
                    "\nstopping after this batch to save a checkpoint (Ctrl-C again to abort)",
                    file=sys.stderr,
                )

        signal.signal(signal.SIGINT, handler)

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
