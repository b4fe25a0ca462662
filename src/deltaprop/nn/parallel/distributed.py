"""``DistributedDataParallel``: one model replica per process, gradients averaged over them.

How the gradients travel (as PyTorch's DDP)
------------------------------------------
* When the wrapper is built, the parameters are assigned to a few flat *buckets* in reverse
  order of ``parameters()`` (roughly the order in which backward produces their gradients):
  the first bucket holds up to 1 MiB, the others up to ``bucket_cap_mb``; one dtype per bucket.
  Rank 0's parameters and buffers are broadcast to every rank, so all replicas start equal.
* During ``backward()``, each parameter's post-accumulate-grad hook copies its gradient, times
  1/world_size, into its bucket's slot. When a bucket's last gradient has arrived, the bucket's
  non-blocking ``MPI_Iallreduce`` (a sum) starts at once, while backward goes on computing the
  gradients of the layers below: communication overlaps computation. Buckets start strictly in
  index order, the same on every rank, as MPI requires.
* The last bucket is reduced at once with a blocking ``MPI_Allreduce`` (nothing is left to
  overlap with), then the wrapper waits for the others and copies the averages back into
  ``.grad``: after ``backward()`` returns, every rank holds the same mean gradient
  ``(1/N) sum_r grad_r``, which is the gradient of the loss averaged over all N*b samples of the
  N local batches of b samples.

``no_sync()`` skips the communication (gradients accumulate locally, for gradient
accumulation); the next backward outside it averages the accumulated gradients.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from deltaprop.distributed import backend as _backend
from deltaprop.distributed.collectives import all_gather_object
from deltaprop.errors import ShapeError
from deltaprop.nn.module import Module
from deltaprop.tensor import Tensor, _make, is_grad_enabled

__all__ = ["DistributedDataParallel"]

_FIRST_BUCKET_BYTES = 1024 * 1024  # as PyTorch's first bucket: start communicating early


class _Bucket:
    """A flat buffer holding the gradients of a few parameters (one dtype)."""

    def __init__(self, params: list[tuple[str, Any]]) -> None:
        self.names = [name for name, _ in params]
        self.params = [p for _, p in params]
        self.dtype = self.params[0].data.dtype
        sizes = [p.data.size for p in self.params]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.flat = np.zeros(int(self.offsets[-1]), dtype=self.dtype)
        self.views = [
            self.flat[self.offsets[i] : self.offsets[i + 1]].reshape(p.data.shape)
            for i, p in enumerate(self.params)
        ]
        self.reset()

    def reset(self) -> None:
        """Every gradient of the bucket is awaited again."""
        self.ready = [False] * len(self.params)
        self.pending = len(self.params)


class DistributedDataParallel(Module):
    """Data parallelism over the processes of the MPI world (as ``torch.nn.parallel.DDP``).

    Each process holds a full replica of ``module`` and runs it on its own share of the data
    (see :class:`deltaprop.data.DistributedSampler`); after every ``backward()`` each parameter's
    ``.grad`` is the mean over the ranks of their gradients, so an optimizer step keeps the
    replicas identical. N ranks with batch b each give the parameters of one process with
    batch N*b, up to floating-point rounding.

    Args:
        module: the model to replicate (the same architecture on every rank: checked).
        broadcast_buffers: before each training forward, copy rank 0's buffers (BatchNorm's
            running statistics) to every rank.
        bucket_cap_mb: the size of a gradient bucket in MiB (the first bucket holds at most
            1 MiB, to start communicating early); None means 25.
        find_unused_parameters: look, after each forward, for parameters the output does not
            depend on and count them as ready (with a zero contribution); without it such a
            parameter makes the next forward raise an error naming it.
        gradient_as_bucket_view: leave each ``.grad`` as a view into its bucket after the
            reduction (saves a copy per step).
        device_ids, output_device, dim, process_group: accepted for PyTorch compatibility;
            deltaprop runs on the CPU in the world group (None or their defaults only).

    Raises:
        RuntimeError: the process group is not initialised, or MPI is not installed.
        ShapeError: the ranks' modules have different parameters.

    Attributes: ``module`` (the wrapped model; its ``state_dict()`` has no ``module.`` prefix).

    The averaging lives in hooks on the parameters, so it also happens when ``module`` is
    called directly instead of through the wrapper (as the training application does, to keep
    its checkpoints free of the ``module.`` prefix); every backward pass is then one step, and
    neither the buffer broadcast nor ``find_unused_parameters`` applies.

    Example (run as ``mpirun -n 2 python train.py``)::

        dist.init_process_group("mpi")
        model = dp.nn.parallel.DistributedDataParallel(dp.nn.Linear(10, 1))
        loss = model(x_local).square().mean()
        loss.backward()           # every rank's .grad: the mean of both ranks' gradients
    """

    def __init__(
        self,
        module: Module,
        device_ids: Any = None,
        output_device: Any = None,
        dim: int = 0,
        broadcast_buffers: bool = True,
        process_group: Any = None,
        bucket_cap_mb: float | None = 25,
        find_unused_parameters: bool = False,
        gradient_as_bucket_view: bool = False,
    ) -> None:
        super().__init__()
        if bucket_cap_mb is None:  # (as PyTorch: the default)
            bucket_cap_mb = 25
        if not isinstance(module, Module):
            raise TypeError(
                f"DistributedDataParallel: module must be a deltaprop.nn.Module, got "
                f"{type(module).__name__}"
            )
        for name, value, default in (("device_ids", device_ids, None),
                                     ("output_device", output_device, None), ("dim", dim, 0),
                                     ("process_group", process_group, None)):  # fmt: skip
            if value != default:
                raise ValueError(
                    f"DistributedDataParallel: {name}={value!r} is not supported: deltaprop "
                    f"runs on the CPU in one process group (leave {name} at {default!r})"
                )
        if isinstance(bucket_cap_mb, bool) or not isinstance(bucket_cap_mb, (int, float)):
            raise TypeError(f"DistributedDataParallel: bucket_cap_mb must be a number, got "
                            f"{bucket_cap_mb!r}")  # fmt: skip
        if not bucket_cap_mb > 0:
            raise ValueError(
                f"DistributedDataParallel: bucket_cap_mb must be positive, got {bucket_cap_mb}"
            )
        # its own communicator: the buckets' non-blocking reductions never interleave with other
        # collectives (SyncBatchNorm's, the program's), whatever their order on each rank
        self._comm = _backend.comm().Dup()  # raises when not initialised / MPI missing
        self._mpi = _backend.mpi()
        self.module = module
        self.broadcast_buffers = bool(broadcast_buffers)
        self.bucket_cap_mb = bucket_cap_mb
        self.find_unused_parameters = bool(find_unused_parameters)
        self.gradient_as_bucket_view = bool(gradient_as_bucket_view)
        self.require_backward_grad_sync = True
        self.world_size = self._comm.Get_size()
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self._check_same_parameters(named)
        self._broadcast_state()
        self._buckets = _assign_buckets(named[::-1], bucket_cap_mb * 1024 * 1024)
        self._scale = 1.0 / self.world_size
        self._where: dict[int, tuple[_Bucket, int]] = {}
        for bucket in self._buckets:
            for i, p in enumerate(bucket.params):
                self._where[id(p)] = (bucket, i)
                p.register_post_accumulate_grad_hook(self._grad_ready)
        self._requests: list[Any] = []
        self._next_bucket = 0  # the next bucket to start (strictly in order)
        self._started = False  # a reduction is under way (some gradient arrived)
        self._reduced = False  # a reduction completed since the last forward
        self._via_wrapper = False  # the model is called through this wrapper (not directly)
        self._unused: list[Any] = []  # find_unused_parameters: the unused ones of this forward
        self._wait_seconds = 0.0  # time spent waiting for the reduction (not overlapped)
        self._reductions = 0

    # -- construction --------------------------------------------------------------------------
    def _check_same_parameters(self, named: list[tuple[str, Any]]) -> None:
        mine = [(n, tuple(p.shape), p.data.dtype.str) for n, p in named]
        everyone: list[Any] = [None] * self.world_size
        all_gather_object(everyone, mine)
        for r, theirs in enumerate(everyone):
            if theirs == mine:
                continue
            if len(theirs) != len(mine):
                raise ShapeError(
                    f"DistributedDataParallel: rank {r}'s module has {len(theirs)} parameters "
                    f"that require grad, rank {self._comm.Get_rank()}'s has {len(mine)}; every "
                    f"rank must wrap the same model"
                )
            for (n1, s1, d1), (n2, s2, d2) in zip(mine, theirs):
                if (n1, s1, d1) != (n2, s2, d2):
                    raise ShapeError(
                        f"DistributedDataParallel: parameter {n1} has shape {s1} and dtype "
                        f"{np.dtype(d1)} on rank {self._comm.Get_rank()} but rank {r} has "
                        f"{n2} of shape {s2} and dtype {np.dtype(d2)}; every rank must wrap the "
                        f"same model"
                    )

    def _broadcast_state(self) -> None:
        """Rank 0's parameters and buffers to every rank (one broadcast per dtype)."""
        arrays = [p.data for p in self.module.parameters()]
        arrays += [b.data for b in self.module.buffers() if b is not None]
        _broadcast_arrays(self._comm, arrays)

    # -- forward -------------------------------------------------------------------------------
    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        self._via_wrapper = True
        self._prepare_for_backward()
        grad_on = is_grad_enabled()
        if self.broadcast_buffers and grad_on and self.training and self.world_size > 1:
            buffers = [b.data for b in self.module.buffers() if b is not None]
            if buffers:
                _broadcast_arrays(self._comm, buffers)
        out = self.module(*inputs, **kwargs)
        self._unused = []
        if self.find_unused_parameters and grad_on and self.require_backward_grad_sync:
            used = _leaves_reached(out)
            self._unused = [p for b in self._buckets for p in b.params if id(p) not in used]
            for p in self._unused:  # counted as ready now, contributing zeros
                bucket, i = self._where[id(p)]
                bucket.views[i][...] = 0
                self._mark_ready(bucket, i)
        return out

    def _prepare_for_backward(self) -> None:
        """A new iteration: every bucket waits for all its gradients again."""
        if self._started:
            self._raise_unfinished()
        self._started = self._reduced = False
        for bucket in self._buckets:
            bucket.reset()
        self._next_bucket = 0

    def _raise_unfinished(self) -> None:
        missing = [
            b.names[i] for b in self._buckets for i, ready in enumerate(b.ready) if not ready
        ]
        raise RuntimeError(
            "DistributedDataParallel: expected to have finished reducing the gradients of the "
            "previous iteration before starting a new one, but these parameters received no "
            f"gradient in its backward pass: {', '.join(missing)}. Make every parameter take "
            "part in computing the loss, or pass find_unused_parameters=True"
        )

    @contextmanager
    def no_sync(self) -> Iterator[None]:
        """Inside this context, backward() leaves the gradients local (they accumulate); the
        first backward after it averages the accumulated gradients over the ranks."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    # -- backward: gradients into buckets, buckets onto the wire ---------------------------------
    def _grad_ready(self, p: Any) -> None:
        if not self.require_backward_grad_sync:
            return
        bucket, i = self._where[id(p)]
        if self._reduced and not self._via_wrapper:
            self._reduced = False  # the module is called directly: each backward is a new step
        if bucket.ready[i] or self._reduced:
            unused = "" if self._via_wrapper else (
                " or a parameter received no gradient in the previous backward pass, which then "
                "never finished reducing"
            )  # fmt: skip
            raise RuntimeError(
                f"DistributedDataParallel: the gradient of {bucket.names[i]} arrived twice in one "
                f"iteration (backward run twice after one forward?{unused}); run every backward "
                "but the last inside no_sync(), or call the model again before each backward"
            )
        grad = p.grad.data
        if grad is not bucket.views[i]:
            np.multiply(grad, self._scale, out=bucket.views[i])
        else:  # a view left by the previous step, accumulated in place by the engine
            bucket.views[i] *= self._scale
        self._started = True
        self._mark_ready(bucket, i)

    def _mark_ready(self, bucket: _Bucket, i: int) -> None:
        bucket.ready[i] = True
        bucket.pending -= 1
        if bucket.pending:
            if self._requests:  # let MPI move the buckets already started
                self._mpi.Request.Testall(self._requests)
            return
        buckets, MPI = self._buckets, self._mpi
        while self._next_bucket < len(buckets) and buckets[self._next_bucket].pending == 0:
            flat = buckets[self._next_bucket].flat
            self._next_bucket += 1
            if self._next_bucket == len(buckets):  # the last one: nothing left to overlap with
                self._finish(flat)
                return
            self._requests.append(self._comm.Iallreduce(MPI.IN_PLACE, flat, op=MPI.SUM))

    def _finish(self, last: np.ndarray) -> None:
        """Reduce the last bucket (blocking), wait for the others, hand out the averages."""
        MPI = self._mpi
        start = time.perf_counter()
        self._comm.Allreduce(MPI.IN_PLACE, last, op=MPI.SUM)
        MPI.Request.Waitall(self._requests)
        self._wait_seconds += time.perf_counter() - start
        self._reductions += 1
        self._requests = []
        unused = {id(p) for p in self._unused}
        globally_unused: set[int] = set()
        if self.find_unused_parameters:
            globally_unused = self._globally_unused()
        for bucket in self._buckets:
            for p, view in zip(bucket.params, bucket.views):
                if id(p) in globally_unused:
                    continue
                if self.gradient_as_bucket_view:
                    if p.grad is None or p.grad.data is not view:
                        p.grad = _make(view)
                elif p.grad is None or id(p) in unused:
                    p.grad = _make(view.copy())
                else:
                    p.grad.data[...] = view
        for bucket in self._buckets:  # ready for the next backward pass
            bucket.reset()
        self._next_bucket = 0
        self._started = False
        self._reduced = True

    def _globally_unused(self) -> set[int]:
        """The parameters that no rank used in this iteration (their ``.grad`` is left alone)."""
        params = [p for b in self._buckets for p in b.params]
        unused = {id(p) for p in self._unused}
        flags = np.array([id(p) in unused for p in params], dtype=np.int32)
        self._comm.Allreduce(self._mpi.IN_PLACE, flags, op=self._mpi.MIN)
        return {id(p) for p, f in zip(params, flags) if f}

    def extra_repr(self) -> str:
        sizes = ", ".join(str(len(b.params)) for b in self._buckets)
        return f"world_size={self.world_size}, buckets=[{sizes}] parameters"


def _assign_buckets(named: list[tuple[str, Any]], cap_bytes: float) -> list[_Bucket]:
    """Consecutive parameters (of one dtype) fill a bucket up to its cap."""
    groups: list[list[tuple[str, Any]]] = []
    current: list[tuple[str, Any]] = []
    size = 0
    limit = min(_FIRST_BUCKET_BYTES, cap_bytes)
    for name, p in named:
        nbytes = p.data.nbytes
        if current and (size + nbytes > limit or p.data.dtype != current[0][1].data.dtype):
            groups.append(current)
            current, size, limit = [], 0, cap_bytes
        current.append((name, p))
        size += nbytes
    if current:
        groups.append(current)
    return [_Bucket(g) for g in groups]


def _broadcast_arrays(comm: Any, arrays: list[np.ndarray]) -> None:
    """Rank 0's values of ``arrays`` to every rank, in place: one broadcast per dtype."""
    by_dtype: dict[np.dtype, list[np.ndarray]] = {}
    for a in arrays:
        by_dtype.setdefault(a.dtype, []).append(a)
    for dtype in sorted(by_dtype, key=lambda d: d.str):
        group = by_dtype[dtype]
        flat = np.concatenate([a.reshape(-1) for a in group])
        comm.Bcast(flat.view(np.uint8), root=0)
        offset = 0
        for a in group:
            a[...] = flat[offset : offset + a.size].reshape(a.shape)
            offset += a.size


def _leaves_reached(out: Any) -> set[int]:
    """The ids of the leaf tensors the output(s) were computed from."""
    stack: list[Any] = []
    todo = [out]
    while todo:
        item = todo.pop()
        if isinstance(item, Tensor):
            stack.append(item)
        elif isinstance(item, (list, tuple)):
            todo.extend(item)
        elif isinstance(item, dict):
            todo.extend(item.values())
    seen_fns: set[int] = set()
    leaves: set[int] = set()
    while stack:
        t = stack.pop()
        fn = t._ctx
        if fn is None:
            leaves.add(id(t))
        elif id(fn) not in seen_fns:
            seen_fns.add(id(fn))
            stack.extend(fn.inputs)
    return leaves
