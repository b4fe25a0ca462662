"""Collective operations on Tensors: ``all_reduce``, ``broadcast``, ``all_gather``, ``barrier``.

Each one is an MPI collective on the Tensor's array, in place where PyTorch's is. Before the
data moves, the ranks exchange a few integers describing the call (which collective, its
operator or root, dtype and shape): when the ranks disagree, every rank raises the same clear
error naming what each rank passed, instead of MPI reading past a buffer or waiting forever.
That costs one small ``Allgather`` per call; ``DistributedDataParallel`` checks its buffers
once, when it is built, and then communicates without it.
"""

from __future__ import annotations

import enum
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np

from deltaprop.distributed.backend import _check_group, comm, mpi
from deltaprop.errors import DTypeError, ShapeError
from deltaprop.tensor import Tensor

__all__ = [
    "ReduceOp",
    "Work",
    "all_reduce",
    "broadcast",
    "all_gather",
    "barrier",
    "broadcast_object_list",
    "all_gather_object",
]


class ReduceOp(enum.Enum):
    """How ``all_reduce`` combines the ranks' tensors, element by element.

    ``SUM``, ``AVG`` (the sum divided by the world size: floating-point tensors only),
    ``PRODUCT``, ``MIN``, ``MAX``. For bool tensors ``SUM`` and ``MAX`` are a logical or,
    ``PRODUCT`` and ``MIN`` a logical and.
    """

    SUM = 0
    AVG = 1
    PRODUCT = 2
    MIN = 3
    MAX = 4


_KINDS = {"all_reduce": 1, "broadcast": 2, "all_gather": 3}
_MAX_DIMS = 32
_META_LEN = 5 + _MAX_DIMS


def mpi_op(op: ReduceOp, dtype: np.dtype) -> Any:
    """The MPI operator that computes ``op`` on arrays of ``dtype`` (AVG: a sum)."""
    MPI = mpi()
    if dtype == np.bool_:
        return MPI.LOR if op in (ReduceOp.SUM, ReduceOp.MAX) else MPI.LAND
    return {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.PRODUCT: MPI.PROD,
            ReduceOp.MIN: MPI.MIN, ReduceOp.MAX: MPI.MAX}[op]  # fmt: skip


class Work:
    """The handle of a collective started with ``async_op=True``: ``wait()`` finishes it.

    ``is_completed()`` says whether the data has arrived without waiting.
    """

    def __init__(self, request: Any = None, finish: Any = None) -> None:
        self._request = request
        self._finish = finish
        self._done = request is None

    def is_completed(self) -> bool:
        if not self._done and self._request.Test():
            self._complete()
        return self._done

    def wait(self, timeout: Any = None) -> bool:
        if not self._done:
            self._request.Wait()
            self._complete()
        return True

    def _complete(self) -> None:
        self._done = True
        if self._finish is not None:
            self._finish()
            self._finish = None


def _check_tensor(where: str, tensor: Any) -> np.ndarray:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{where}: tensor must be a deltaprop Tensor, got {type(tensor).__name__}")
    if tensor.ndim > _MAX_DIMS:
        raise ShapeError(f"{where}: tensors of at most {_MAX_DIMS} dims, got shape {tensor.shape}")
    return tensor.data


def _dtype_code(dtype: np.dtype) -> int:
    return int.from_bytes(dtype.str.encode()[:7], "little")


def check_same_call(
    where: str, kind: str, arg: int, data: np.ndarray | None, problem: Exception | None = None
) -> None:
    """Every rank must call the same collective with the same dtype and shape (and operator or
    root ``arg``): exchange those and raise the same error on every rank when they differ.

    ``problem`` is this rank's own argument error, if any (``data`` may then be None): it is
    raised here, after the exchange, and the other ranks raise an error naming this rank, so
    that no rank is left waiting for a collective the others will not call.
    """
    c = comm()
    meta = np.full(_META_LEN, -1, dtype=np.int64)
    meta[:2] = (_KINDS[kind], problem is not None)
    if data is not None and problem is None:
        meta[2:5] = (arg, _dtype_code(data.dtype), data.ndim)
        meta[5 : 5 + data.ndim] = data.shape
    table = np.empty((c.Get_size(), _META_LEN), dtype=np.int64)
    c.Allgather(meta, table)
    if (table == meta).all() and problem is None:
        return
    if problem is not None:
        raise problem
    bad = [r for r in range(c.Get_size()) if table[r, 1]]
    if bad:
        raise RuntimeError(
            f"{where}: rank {', '.join(map(str, bad))} passed invalid arguments to the same "
            f"call (its error says which), so this rank stops too"
        )
    rows = [(row[0], row[2], row[3], row[4], *row[5:]) for row in table.tolist()]
    names = {v: k for k, v in _KINDS.items()}
    codes = {row[2] for row in rows}
    dtypes = {code: np.dtype(code.to_bytes(8, "little").rstrip(b"\0").decode()) for code in codes}

    def describe(row: tuple[int, ...]) -> str:
        shape = tuple(row[4 : 4 + row[3]])
        return f"{names.get(row[0], '?')} of a {dtypes[row[2]]} tensor of shape {shape}"

    listing = "; ".join(f"rank {r}: {describe(row)}" for r, row in enumerate(rows))
    if len({row[0] for row in rows}) > 1:
        raise RuntimeError(f"{where}: the ranks called different collectives ({listing})")
    if len({row[1] for row in rows}) > 1:
        what = "reduce operators" if kind == "all_reduce" else "source ranks (src)"
        values = ", ".join(f"rank {r}: {row[1]}" for r, row in enumerate(rows))
        raise ValueError(f"{where}: the ranks passed different {what} ({values})")
    if len(codes) > 1:
        raise DTypeError(f"{where}: every rank must pass a tensor of the same dtype ({listing})")
    raise ShapeError(f"{where}: every rank must pass a tensor of the same shape ({listing})")


def _checked_data(kind: str, tensor: Any, check_args: Callable[[np.ndarray], int]) -> np.ndarray:
    """``tensor``'s array, once every rank has checked its call to the collective ``kind``.

    ``check_args(data)`` checks the call's other arguments and returns its operator or root (the
    ``arg`` that :func:`check_same_call` compares). This rank's argument error is raised after the
    exchange, and the other ranks raise one naming this rank (see :func:`check_same_call`).
    """
    data, arg, problem = None, -1, None
    try:
        data = _check_tensor(kind, tensor)
        arg = check_args(data)
    except (TypeError, ValueError) as exc:
        problem = exc
    check_same_call(kind, kind, arg, data, problem)
    return data


def _as_op(op: Any) -> ReduceOp:
    if not isinstance(op, ReduceOp):
        raise TypeError(
            f"all_reduce: op must be a deltaprop.distributed.ReduceOp (SUM, AVG, PRODUCT, MIN, "
            f"MAX), got {op!r}"
        )
    return op


def _buffer(data: np.ndarray) -> np.ndarray:
    """An array MPI can work on in place: ``data`` itself, or a contiguous (float32 for
    float16, which MPI cannot reduce) copy to write back afterwards."""
    if data.dtype == np.float16:
        return data.astype(np.float32)
    if data.flags.c_contiguous and data.flags.writeable:
        return data
    return np.ascontiguousarray(data)


def all_reduce(
    tensor: Tensor, op: ReduceOp = ReduceOp.SUM, group: Any = None, async_op: bool = False
) -> Work | None:
    """Combine ``tensor`` across all ranks, in place: afterwards every rank holds the result.

    ``op=ReduceOp.SUM`` gives ``sum_r tensor_r``; ``AVG`` ``sum_r tensor_r / world_size``. Every
    rank must pass a tensor of the same shape and dtype (checked: a clear error on every rank).
    With ``async_op=True`` the reduction runs in the background and a :class:`Work` is returned;
    the tensor holds the result after ``work.wait()``.

    Example (on 2 ranks)::

        t = dp.tensor([float(dist.get_rank() + 1)])
        dist.all_reduce(t)                         # tensor([3.]) on both ranks
    """
    _check_group(group)

    def check_op(data: np.ndarray) -> int:
        if _as_op(op) is ReduceOp.AVG and data.dtype.kind != "f":
            raise DTypeError(
                f"all_reduce: ReduceOp.AVG needs a floating-point tensor, got {data.dtype} "
                "(use SUM)"
            )
        return op.value

    data = _checked_data("all_reduce", tensor, check_op)
    c, MPI = comm(), mpi()
    buf = _buffer(data)
    size = c.Get_size()

    def finish() -> None:
        if op is ReduceOp.AVG:
            np.divide(buf, size, out=buf)
        if buf is not data:
            data[...] = buf

    if data.size == 0:
        return Work() if async_op else None
    if async_op:
        return Work(c.Iallreduce(MPI.IN_PLACE, buf, op=mpi_op(op, buf.dtype)), finish)
    c.Allreduce(MPI.IN_PLACE, buf, op=mpi_op(op, buf.dtype))
    finish()
    return None


def _as_bytes(data: np.ndarray) -> np.ndarray:
    return data.reshape(-1).view(np.uint8)


def broadcast(
    tensor: Tensor, src: int = 0, group: Any = None, async_op: bool = False
) -> Work | None:
    """Copy rank ``src``'s ``tensor`` into ``tensor`` on every other rank (in place)."""
    _check_group(group)
    c = comm()
    size = c.Get_size()

    def check_src(data: np.ndarray) -> int:
        if isinstance(src, bool) or not isinstance(src, (int, np.integer)) or not 0 <= src < size:
            raise ValueError(
                f"broadcast: src must be a rank between 0 and {size - 1} (the world has {size} "
                f"processes), got {src!r}"
            )
        return int(src)

    data = _checked_data("broadcast", tensor, check_src)
    buf = data if data.flags.c_contiguous and data.flags.writeable else data.copy()

    def finish() -> None:
        if buf is not data:
            data[...] = buf

    if async_op:
        return Work(c.Ibcast(_as_bytes(buf), root=int(src)), finish)
    c.Bcast(_as_bytes(buf), root=int(src))
    finish()
    return None


def all_gather(
    tensor_list: list[Tensor], tensor: Tensor, group: Any = None, async_op: bool = False
) -> Work | None:
    """Gather every rank's ``tensor`` into ``tensor_list`` (``tensor_list[r]`` gets rank r's).

    ``tensor_list`` holds ``world_size`` tensors of ``tensor``'s shape and dtype, written in
    place.
    """
    _check_group(group)
    c = comm()
    size = c.Get_size()

    def check_outputs(data: np.ndarray) -> int:
        if not isinstance(tensor_list, (list, tuple)) or len(tensor_list) != size:
            got = len(tensor_list) if isinstance(tensor_list, (list, tuple)) else tensor_list
            raise ValueError(
                f"all_gather: tensor_list must be a list of world_size = {size} tensors, got "
                f"{got!r}"
            )
        for r, t in enumerate(tensor_list):
            out = _check_tensor(f"all_gather: tensor_list[{r}]", t)
            if out.shape != data.shape or out.dtype != data.dtype:
                raise ShapeError(
                    f"all_gather: tensor_list[{r}] has shape {out.shape} and dtype {out.dtype}; "
                    f"each must match tensor's shape {data.shape} and dtype {data.dtype}"
                )
        return 0

    data = _checked_data("all_gather", tensor, check_outputs)
    send = _as_bytes(np.ascontiguousarray(data))
    recv = np.empty((size, send.size), dtype=np.uint8)

    def finish() -> None:
        for r, t in enumerate(tensor_list):
            t.data[...] = recv[r].view(data.dtype).reshape(data.shape)

    if async_op:
        return Work(c.Iallgather(send, recv), finish)
    c.Allgather(send, recv)
    finish()
    return None


def barrier(group: Any = None, async_op: bool = False) -> Work | None:
    """Wait until every rank has reached this call."""
    _check_group(group)
    if async_op:
        return Work(comm().Ibarrier())
    comm().Barrier()
    return None


def broadcast_object_list(object_list: list[Any], src: int = 0, group: Any = None) -> None:
    """Replace ``object_list``'s items by rank ``src``'s (picklable Python objects), in place."""
    _check_group(group)
    c = comm()
    size = c.Get_size()
    if not 0 <= int(src) < size:
        raise ValueError(f"broadcast_object_list: src must be a rank between 0 and {size - 1}")
    payload = c.bcast(pickle.dumps(list(object_list)) if c.Get_rank() == src else None, src)
    object_list[:] = pickle.loads(payload)


def all_gather_object(object_list: list[Any], obj: Any, group: Any = None) -> None:
    """Fill ``object_list`` (of world_size items) with every rank's ``obj`` (picklable)."""
    _check_group(group)
    c = comm()
    if len(object_list) != c.Get_size():
        raise ValueError(
            f"all_gather_object: object_list must have world_size = {c.Get_size()} items, got "
            f"{len(object_list)}"
        )
    object_list[:] = c.allgather(obj)
