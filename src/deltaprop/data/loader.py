"""``DataLoader``: batches of a dataset as deltaprop Tensors, optionally shuffled each epoch.

Two paths produce a batch:

* fast path: when the dataset supports batch indexing (``TensorDataset`` and ``Subset``s of
  it) and no ``collate_fn`` is given, each batch is one fancy index per underlying array
  (``array[batch_indices]``), so an epoch copies one batch at a time, never the dataset;
* generic path: otherwise the samples ``dataset[i]`` of the batch are fetched one by one and
  merged by ``collate_fn`` (``default_collate`` stacks them into Tensors).

Batches are built with ``deltaprop.from_numpy``: features keep the dtype they have (the
datasets of ``deltaprop.datasets`` give float32); one integer per sample (class labels)
becomes int64, as ``cross_entropy`` expects.

>>> import numpy as np
>>> import deltaprop as dp
>>> from deltaprop.data import DataLoader, TensorDataset
>>> ds = TensorDataset(np.zeros((10, 3), np.float32), np.arange(10))
>>> loader = DataLoader(ds, batch_size=4, shuffle=True, generator=0)
>>> len(loader)
3
>>> [tuple(x.shape) for x, y in loader]
[(4, 3), (4, 3), (2, 3)]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from deltaprop.data.dataset import as_numpy, resolve_generator

__all__ = ["DataLoader", "default_collate", "batch_to_tensor"]


def batch_to_tensor(batch: np.ndarray) -> Any:
    """Wrap one batch array as a deltaprop Tensor (sharing memory where the dtype is kept).

    A 1-D integer array (one integer per sample: class labels) becomes int64; other numeric
    arrays keep their dtype. Non-numeric arrays (strings, objects) are returned unchanged.

    >>> import numpy as np
    >>> batch_to_tensor(np.array([1, 2], dtype=np.uint8)).dtype == np.int64
    True
    """
    import deltaprop

    if batch.dtype.kind not in "biuf":
        return batch
    if batch.ndim == 1 and batch.dtype.kind in "iu" and batch.dtype != np.int64:
        batch = batch.astype(np.int64)
    return deltaprop.from_numpy(np.ascontiguousarray(batch))


def default_collate(samples: Sequence[Any]) -> Any:
    """Merge a list of samples into one batch (as PyTorch's ``default_collate``).

    Tuples and lists are merged field by field (giving a tuple), dicts key by key; arrays,
    Tensors and NumPy scalars are stacked along a new first axis; Python ints become int64,
    Python floats float32 and bools bool; strings stay a list. Numeric batches are returned
    as Tensors (see :func:`batch_to_tensor`).

    Raises:
        ValueError: the samples have different structures or array shapes.

    >>> import numpy as np
    >>> x, y = default_collate([(np.zeros(2), 1), (np.ones(2), 0)])
    >>> tuple(x.shape), y.numpy().tolist()
    ((2, 2), [1, 0])
    """
    if len(samples) == 0:
        raise ValueError("default_collate: cannot collate an empty list of samples")
    first = samples[0]
    if isinstance(first, (tuple, list)):
        width = len(first)
        for position, sample in enumerate(samples):
            if not isinstance(sample, (tuple, list)) or len(sample) != width:
                raise ValueError(
                    f"default_collate: sample 0 has {width} fields but sample {position} is "
                    f"{_describe(sample)}"
                )
        return tuple(default_collate([s[k] for s in samples]) for k in range(width))
    if isinstance(first, dict):
        return {key: default_collate([s[key] for s in samples]) for key in first}
    if isinstance(first, (str, bytes)):
        return list(samples)
    if isinstance(first, bool):
        return batch_to_tensor(np.asarray(samples, dtype=bool))
    if isinstance(first, int):
        return batch_to_tensor(np.asarray(samples, dtype=np.int64))
    if isinstance(first, float):
        return batch_to_tensor(np.asarray(samples, dtype=np.float32))
    arrays = [as_numpy(s) for s in samples]
    shape = arrays[0].shape
    for position, array in enumerate(arrays):
        if array.shape != shape:
            raise ValueError(
                f"default_collate: sample 0 has shape {shape} but sample {position} has shape "
                f"{array.shape}; samples of a batch must have equal shapes"
            )
    return batch_to_tensor(np.stack(arrays))


def _describe(sample: Any) -> str:
    if isinstance(sample, (tuple, list)):
        return f"a {type(sample).__name__} of {len(sample)} fields"
    return f"a {type(sample).__name__}"


class DataLoader:
    """Iterate over a dataset in batches of Tensors (as ``torch.utils.data.DataLoader``).

    Args:
        dataset: a ``Dataset`` (or any object with ``__len__`` and integer ``__getitem__``).
        batch_size: samples per batch.
        shuffle: draw a new random order at the start of every epoch.
        drop_last: drop the last batch when it is smaller than ``batch_size``.
        generator: the randomness of ``shuffle``: an int seed (a generator created once here,
            so the epochs differ from each other but the whole run repeats), a
            ``numpy.random.Generator``, or None for deltaprop's global generator (seeded by
            ``deltaprop.manual_seed``; read at the start of each epoch).
        collate_fn: merges a list of samples into a batch; giving one disables the fast path.
        sampler: an iterable of sample indices with ``len()`` (e.g. a distributed sampler that
            gives each process its share); it replaces ``shuffle``, as in PyTorch. Iterated
            once per epoch.

    ``len(loader)`` is the number of batches per epoch. Iterating yields, for a
    ``TensorDataset`` of k arrays, a tuple of k Tensors.

    >>> import numpy as np
    >>> from deltaprop.data import TensorDataset
    >>> ds = TensorDataset(np.arange(10, dtype=np.float32), np.arange(10))
    >>> loader = DataLoader(ds, batch_size=4, drop_last=True)
    >>> len(loader), [y.numpy().tolist() for _, y in loader]
    (2, [[0, 1, 2, 3], [4, 5, 6, 7]])
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        generator: int | np.random.Generator | None = None,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        sampler: Iterable[int] | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise TypeError(f"batch_size must be a positive int, got {batch_size!r}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size}")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        self.sampler = sampler
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.collate_fn = collate_fn
        # An int seed becomes one Generator now: every epoch then draws a new order, and the
        # sequence of orders is the same in every run. None is resolved at each epoch, so a
        # later deltaprop.manual_seed() takes effect.
        self.generator: np.random.Generator | None = (
            None if generator is None else resolve_generator(generator)
        )

    def __len__(self) -> int:
        n = len(self.dataset) if self.sampler is None else len(self.sampler)  # type: ignore
        if self.drop_last:
            return n // self.batch_size
        return math.ceil(n / self.batch_size)

    def batch_indices(self) -> Iterator[np.ndarray]:
        """The index arrays of one epoch's batches (drawing a new order when shuffling)."""
        n = len(self.dataset)
        if self.sampler is not None:
            order = np.fromiter(iter(self.sampler), dtype=np.int64)
        elif self.shuffle:
            generator = self.generator if self.generator is not None else resolve_generator(None)
            order = generator.permutation(n)
        else:
            order = np.arange(n)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield order[start : start + self.batch_size]

    def __iter__(self) -> Iterator[Any]:
        fast = self.collate_fn is None and bool(getattr(self.dataset, "supports_batch", False))
        collate = self.collate_fn if self.collate_fn is not None else default_collate
        for indices in self.batch_indices():
            if fast:
                yield tuple(batch_to_tensor(a) for a in self.dataset.get_batch(indices))
            else:
                yield collate([self.dataset[int(i)] for i in indices])

    def __repr__(self) -> str:
        return (
            f"DataLoader(len(dataset)={len(self.dataset)}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, drop_last={self.drop_last})"
        )
