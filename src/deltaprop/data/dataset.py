"""Datasets: the map-style ``Dataset`` protocol, ``TensorDataset``, ``Subset`` and ``random_split``.

A dataset maps an index ``0 <= i < len(dataset)`` to one sample, usually a tuple
``(features, label)`` of NumPy arrays or scalars. Datasets whose samples are rows of in-memory
arrays (``TensorDataset`` and its ``Subset``s) also answer :meth:`Dataset.get_batch`, which
returns a whole batch with one fancy index per array; ``DataLoader`` uses it so that an epoch
never copies more than one batch at a time.

>>> import numpy as np
>>> ds = TensorDataset(np.zeros((10, 3), np.float32), np.arange(10))
>>> len(ds), int(ds[2][1])
(10, 2)
>>> train, val = random_split(ds, [0.8, 0.2], generator=0)
>>> len(train), len(val)
(8, 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["Dataset", "TensorDataset", "Subset", "random_split", "as_numpy", "resolve_generator"]


class Dataset:
    """Base class of map-style datasets (as ``torch.utils.data.Dataset``).

    Subclasses implement ``__getitem__(index)`` (one sample) and ``__len__()``. Array-backed
    subclasses may also implement :meth:`get_batch` and set ``supports_batch = True``.

    >>> class Squares(Dataset):
    ...     def __len__(self):
    ...         return 4
    ...     def __getitem__(self, i):
    ...         return float(i), i * i
    >>> Squares()[3]
    (3.0, 9)
    """

    #: True when :meth:`get_batch` returns whole batches straight from in-memory arrays.
    supports_batch: bool = False

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")

    def get_batch(self, indices: np.ndarray) -> tuple[np.ndarray, ...]:
        """Return the samples at ``indices`` (a 1-D int array), one stacked array per field."""
        raise NotImplementedError(f"{type(self).__name__} does not support batch indexing")


def as_numpy(value: Any) -> np.ndarray:
    """Return ``value`` as a NumPy array, sharing memory with a deltaprop Tensor or an array.

    >>> as_numpy([1, 2]).tolist()
    [1, 2]
    """
    if isinstance(value, np.ndarray):
        return value
    data = _tensor_data(value)
    if data is not None:
        return data
    return np.asarray(value)


def _tensor_data(value: Any) -> np.ndarray | None:
    """The NumPy array behind a deltaprop Tensor, or None when ``value`` is not a Tensor."""
    try:
        from deltaprop import Tensor
    except ImportError:  # engine not importable: nothing can be a Tensor
        return None
    if isinstance(value, Tensor):
        return value.data
    return None


class TensorDataset(Dataset):
    """A dataset of rows of equally long arrays (as ``torch.utils.data.TensorDataset``).

    Accepts deltaprop Tensors or NumPy arrays (or anything ``np.asarray`` accepts); Tensors and
    arrays are not copied. Sample ``i`` is the tuple ``(a[i] for a in arrays)`` of NumPy values;
    the ``DataLoader`` turns batches of them into Tensors.

    Args:
        *tensors: arrays that all have the same first dimension (the sample axis).

    Raises:
        ValueError: no arrays were given, an array is 0-d, or the first dimensions differ.

    >>> import numpy as np
    >>> ds = TensorDataset(np.ones((3, 2)), np.array([0, 1, 0]))
    >>> x, y = ds[1]
    >>> x.shape, int(y)
    ((2,), 1)
    >>> [a.shape for a in ds.get_batch(np.array([2, 0]))]
    [(2, 2), (2,)]
    """

    supports_batch = True

    def __init__(self, *tensors: Any) -> None:
        if not tensors:
            raise ValueError("TensorDataset needs at least one array")
        arrays = tuple(as_numpy(t) for t in tensors)
        for position, array in enumerate(arrays):
            if array.ndim == 0:
                raise ValueError(
                    f"TensorDataset: array {position} is a scalar (shape ()); every array needs "
                    "a first dimension indexing the samples"
                )
        if any(a.shape[0] != arrays[0].shape[0] for a in arrays):
            shapes = ", ".join(str(a.shape) for a in arrays)
            raise ValueError(
                f"TensorDataset: all arrays must have the same first dimension (number of "
                f"samples), got shapes {shapes}"
            )
        #: The underlying NumPy arrays, in the order given.
        self.arrays: tuple[np.ndarray, ...] = arrays

    @property
    def tensors(self) -> tuple[np.ndarray, ...]:
        """The underlying arrays (PyTorch's attribute name)."""
        return self.arrays

    def __len__(self) -> int:
        return self.arrays[0].shape[0]

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        return tuple(a[index] for a in self.arrays)

    def get_batch(self, indices: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(a[indices] for a in self.arrays)

    def __repr__(self) -> str:
        fields = ", ".join(f"{a.dtype}{list(a.shape)}" for a in self.arrays)
        return f"TensorDataset({fields})"


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices`` (as ``torch.utils.data.Subset``).

    Holds only the index array; when ``dataset`` supports batch indexing, so does the subset
    (it composes the indices, so a batch is still one fancy index into the original arrays).

    >>> import numpy as np
    >>> sub = Subset(TensorDataset(np.arange(10) * 10), [3, 7])
    >>> len(sub), int(sub[1][0])
    (2, 70)
    """

    def __init__(self, dataset: Any, indices: Sequence[int] | np.ndarray) -> None:
        index_array = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(dataset)
        if index_array.size and (index_array.min() < -n or index_array.max() >= n):
            raise IndexError(f"Subset: indices must lie in [0, {n}) for a dataset of length {n}")
        self.dataset = dataset
        self.indices: np.ndarray = index_array

    @property
    def supports_batch(self) -> bool:  # type: ignore[override]
        return bool(getattr(self.dataset, "supports_batch", False))

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __getitem__(self, index: int) -> Any:
        return self.dataset[int(self.indices[index])]

    def get_batch(self, indices: np.ndarray) -> tuple[np.ndarray, ...]:
        return self.dataset.get_batch(self.indices[indices])


def resolve_generator(generator: int | np.random.Generator | None) -> np.random.Generator:
    """Turn a seed, a Generator or None into a ``numpy.random.Generator``.

    None means deltaprop's global generator (seeded by ``deltaprop.manual_seed``).

    >>> int(resolve_generator(0).integers(100)) == int(resolve_generator(0).integers(100))
    True
    """
    if generator is None:
        from deltaprop.random import default_generator

        return default_generator()
    if isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        return np.random.default_rng(int(generator))
    raise TypeError(
        "generator must be None, an int seed or a numpy.random.Generator, "
        f"got {type(generator).__name__}"
    )


def random_split(
    dataset: Any,
    lengths: Sequence[int | float],
    generator: int | np.random.Generator | None = None,
) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random ``Subset``s (as PyTorch's ``random_split``).

    Args:
        dataset: any dataset (anything with ``len`` and integer indexing).
        lengths: the subset sizes, summing to ``len(dataset)``; or fractions summing to 1, in
            which case each size is ``floor(fraction * len)`` and the remaining samples are
            given one each to the subsets in order (PyTorch's rule).
        generator: an int seed, a ``numpy.random.Generator``, or None for deltaprop's global
            generator.

    >>> import numpy as np
    >>> parts = random_split(TensorDataset(np.arange(10)), [0.5, 0.3, 0.2], generator=1)
    >>> [len(p) for p in parts]
    [5, 3, 2]
    """
    n = len(dataset)
    sizes = _split_sizes(n, lengths)
    permutation = resolve_generator(generator).permutation(n)
    subsets = []
    start = 0
    for size in sizes:
        subsets.append(Subset(dataset, permutation[start : start + size]))
        start += size
    return subsets


def _split_sizes(n: int, lengths: Sequence[int | float]) -> list[int]:
    """Subset sizes for ``random_split``: integers as given, or fractions turned into counts."""
    if len(lengths) == 0:
        raise ValueError("random_split: lengths must not be empty")
    all_ints = all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in lengths)
    if all_ints:
        sizes = [int(x) for x in lengths]
        if any(s < 0 for s in sizes):
            raise ValueError(f"random_split: lengths must not be negative, got {list(lengths)}")
        if sum(sizes) != n:
            raise ValueError(
                f"random_split: lengths {sizes} sum to {sum(sizes)}, but the dataset has {n} "
                "samples"
            )
        return sizes
    fractions = [float(x) for x in lengths]
    if any(f < 0 or f > 1 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(
            "random_split: lengths must be integers summing to the dataset length or "
            f"fractions in [0, 1] summing to 1, got {list(lengths)}"
        )
    sizes = [int(np.floor(n * f)) for f in fractions]
    remainder = n - sum(sizes)
    for i in range(remainder):
        sizes[i % len(sizes)] += 1
    return sizes
