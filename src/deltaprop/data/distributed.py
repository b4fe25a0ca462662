"""``DistributedSampler``: each rank's share of a dataset, as ``torch.utils.data``'s.

The partition rule (PyTorch's, index for index): with ``n`` samples and ``R`` replicas each rank
gets ``num_samples = ceil(n / R)`` indices; the index list (``0..n-1``, or a permutation of it
fixed by ``seed`` and the epoch) is padded by repeating its beginning up to ``R * num_samples``, and
rank r takes every R-th index starting at r. With ``drop_last=True`` the tail is cut instead:
``num_samples = ceil((n - R) / R)`` when R does not divide n. So every rank runs the same number
of batches, and together the ranks see each sample once per epoch (plus the few repeated).

>>> s = DistributedSampler(range(10), num_replicas=4, rank=1, shuffle=False)
>>> list(s), len(s)
([1, 5, 9], 3)
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["DistributedSampler"]


def _check_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"DistributedSampler: {name} must be an int, got {value!r}")
    return int(value)


class DistributedSampler:
    """The indices of ``dataset`` that this rank uses, one epoch after the other.

    Args:
        dataset: anything with ``len()``.
        num_replicas: the number of ranks sharing the data (default: the world size of the
            initialised process group).
        rank: this rank, ``0 <= rank < num_replicas`` (default: the process group's rank).
        shuffle: a new permutation every epoch (fixed by ``seed`` and the epoch: the same on
            every rank, so the shares never overlap).
        seed: the permutation's seed; must be the same on every rank.
        drop_last: drop the tail that does not divide evenly instead of padding it with
            repeated samples.

    Call :meth:`set_epoch` at the start of each epoch when shuffling, or every epoch uses the
    same order. Use it through ``DataLoader(dataset, batch_size=b, sampler=sampler)``.

    Raises:
        ValueError: ``rank`` outside ``[0, num_replicas - 1]``, or ``num_replicas < 1``.
        RuntimeError: ``num_replicas``/``rank`` left out without an initialised process group.

    >>> s = DistributedSampler(range(5), num_replicas=2, rank=1, shuffle=False)
    >>> list(s)   # 0..4 padded with 0 to length 6; rank 1 takes positions 1, 3, 5
    [1, 3, 0]
    >>> s = DistributedSampler(range(8), num_replicas=2, rank=0, seed=3)
    >>> s.set_epoch(1)
    >>> sorted(s) != sorted(DistributedSampler(range(8), num_replicas=2, rank=1, seed=3))
    True
    """

    def __init__(
        self,
        dataset: Any,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if num_replicas is None or rank is None:
            from deltaprop.distributed import backend

            if not backend.is_initialized():
                raise RuntimeError(
                    "DistributedSampler: num_replicas and rank default to the process group's "
                    "world size and rank, but no process group is initialized: call "
                    "deltaprop.distributed.init_process_group('mpi') first, or pass "
                    "num_replicas= and rank="
                )
            if num_replicas is None:
                num_replicas = backend.get_world_size()
            if rank is None:
                rank = backend.get_rank()
        num_replicas = _check_int("num_replicas", num_replicas)
        rank = _check_int("rank", rank)
        if num_replicas < 1:
            raise ValueError(
                f"DistributedSampler: num_replicas must be at least 1, got {num_replicas}"
            )
        if not 0 <= rank < num_replicas:
            raise ValueError(
                f"DistributedSampler: invalid rank {rank}, rank should be in the interval "
                f"[0, {num_replicas - 1}] (num_replicas={num_replicas})"
            )
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.shuffle = bool(shuffle)
        self.seed = _check_int("seed", seed)
        if self.seed < 0:
            raise ValueError(f"DistributedSampler: seed must be non-negative, got {seed}")
        self.drop_last = bool(drop_last)
        n = len(dataset)
        if self.drop_last and n % num_replicas != 0:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def indices(self) -> np.ndarray:
        """This rank's indices for the current epoch (an int64 array of ``len(self)``)."""
        n = len(self.dataset)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(n)
        else:
            order = np.arange(n, dtype=np.int64)
        if not self.drop_last:
            padding = self.total_size - n
            if padding > 0:
                order = np.concatenate([order, np.resize(order, padding)]) if n else order
        else:
            order = order[: self.total_size]
        return order[self.rank : self.total_size : self.num_replicas].astype(np.int64)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of ``epoch`` (with ``shuffle=True``); call it every epoch."""
        self.epoch = _check_int("epoch", epoch)

    def __repr__(self) -> str:
        return (
            f"DistributedSampler(len(dataset)={len(self.dataset)}, num_replicas="
            f"{self.num_replicas}, rank={self.rank}, shuffle={self.shuffle}, seed={self.seed}, "
            f"drop_last={self.drop_last})"
        )
