"""Datasets with train/test splits, as NumPy arrays in a ``DatasetSplits``.

* ``load_digits()``: the bundled 8x8 handwritten digits (1,437 train / 360 test, no network);
* ``load_mnist(data_dir)``, ``load_fashion_mnist(data_dir)``: IDX files, downloaded if absent;
* ``load_csv(path)``: a classification table;
* ``load_xor()``, ``load_moons()``, ``load_spirals()``: seeded 2-D toy problems;
* ``load(name, data_dir=None)``: any of these by the name the command line uses.

Images are ``(N, 1, H, W)`` float32 in [0, 1], tables ``(N, D)`` float32, labels int64.

>>> from deltaprop.datasets import load
>>> splits = load("digits")
>>> X_train, y_train, X_test, y_test = splits.arrays()
>>> X_train.shape, y_test.shape, splits.class_names[:3]
((1437, 1, 8, 8), (360,), ('0', '1', '2'))
>>> train_set = splits.train_dataset()  # a deltaprop.data.TensorDataset
>>> len(train_set)
1437
"""

from __future__ import annotations

import os

from deltaprop.datasets.base import DatasetError, DatasetSplits, default_data_dir
from deltaprop.datasets.digits import load_digits, read_digits
from deltaprop.datasets.idx import read_idx, read_idx_images, read_idx_labels
from deltaprop.datasets.mnist import load_fashion_mnist, load_mnist
from deltaprop.datasets.synthetic import (
    load_moons,
    load_spirals,
    load_xor,
    make_moons,
    make_spirals,
    make_xor,
)
from deltaprop.datasets.tabular import load_csv

__all__ = [
    "DATASET_NAMES",
    "DatasetError",
    "DatasetSplits",
    "default_data_dir",
    "load",
    "load_digits",
    "read_digits",
    "load_mnist",
    "load_fashion_mnist",
    "read_idx",
    "read_idx_images",
    "read_idx_labels",
    "load_csv",
    "load_xor",
    "load_moons",
    "load_spirals",
    "make_xor",
    "make_moons",
    "make_spirals",
]

#: The names :func:`load` understands (``csv:PATH`` with a file path after the colon).
DATASET_NAMES = ("digits", "mnist", "fashion-mnist", "csv:PATH", "xor", "moons", "spirals")


def load(
    name: str, data_dir: str | os.PathLike[str] | None = None, *, download: bool = True
) -> DatasetSplits:
    """Load a dataset by name, with each loader's defaults.

    Args:
        name: ``digits``, ``mnist``, ``fashion-mnist`` (or ``fashion_mnist``), ``csv:PATH``,
            ``xor``, ``moons`` or ``spirals`` (case-insensitive).
        data_dir: the directory of the MNIST / Fashion-MNIST IDX files; ignored by the others.
        download: allow downloading missing MNIST / Fashion-MNIST files.

    Raises:
        DatasetError: an unknown name, or the loader's own errors.

    >>> load("moons").name
    'moons'
    """
    text = name.strip()
    if text[:4].lower() == "csv:":
        path = text[4:]
        if not path:
            raise DatasetError("dataset 'csv:PATH' needs a file path after 'csv:'")
        return load_csv(path)
    key = text.lower().replace("_", "-")
    if key == "digits":
        return load_digits()
    if key == "mnist":
        return load_mnist(data_dir, download=download)
    if key == "fashion-mnist":
        return load_fashion_mnist(data_dir, download=download)
    if key == "xor":
        return load_xor()
    if key == "moons":
        return load_moons()
    if key == "spirals":
        return load_spirals()
    raise DatasetError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASET_NAMES)}")
