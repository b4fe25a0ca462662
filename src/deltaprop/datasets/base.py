"""What every dataset loader shares: ``DatasetSplits``, ``DatasetError`` and the seeded splits."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from deltaprop.errors import DatasetError

if TYPE_CHECKING:
    from deltaprop.data import TensorDataset

__all__ = [
    "DatasetError",
    "DatasetSplits",
    "default_data_dir",
    "stable_permutation",
    "stratified_split",
]


@dataclass(frozen=True, repr=False)
class DatasetSplits:
    """A dataset's train and test splits as NumPy arrays, with what a model needs to know.

    Images are ``(N, C, H, W)`` float32 in [0, 1]; tables ``(N, D)`` float32; labels ``(N,)``
    int64 class indices in ``0 .. num_classes - 1``.

    Attributes:
        X_train, y_train, X_test, y_test: the arrays.
        num_classes: number of classes.
        class_names: the name of each class index.
        input_shape: the shape of one sample, e.g. ``(1, 28, 28)`` or ``(2,)``.
        name: the dataset's name, e.g. ``"digits"``.

    >>> from deltaprop.datasets import load_moons
    >>> splits = load_moons(n_samples=100)
    >>> X_train, y_train, X_test, y_test = splits.arrays()
    >>> X_train.shape, X_test.shape, splits.num_classes
    ((80, 2), (20, 2), 2)
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    class_names: tuple[str, ...]
    input_shape: tuple[int, ...]
    name: str

    def __post_init__(self) -> None:
        for split, X, y in (
            ("train", self.X_train, self.y_train),
            ("test", self.X_test, self.y_test),
        ):
            if X.shape[0] != y.shape[0]:
                raise DatasetError(
                    f"{self.name}: {split} split has {X.shape[0]} samples but {y.shape[0]} labels"
                )
            if tuple(X.shape[1:]) != tuple(self.input_shape):
                raise DatasetError(
                    f"{self.name}: {split} samples have shape {X.shape[1:]}, "
                    f"expected {self.input_shape}"
                )
        if len(self.class_names) != self.num_classes:
            raise DatasetError(
                f"{self.name}: {len(self.class_names)} class names for {self.num_classes} classes"
            )

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(X_train, y_train, X_test, y_test)``."""
        return self.X_train, self.y_train, self.X_test, self.y_test

    def train_dataset(self) -> TensorDataset:
        """The training split as a ``TensorDataset`` of ``(X, y)`` (no copy)."""
        from deltaprop.data import TensorDataset

        return TensorDataset(self.X_train, self.y_train)

    def test_dataset(self) -> TensorDataset:
        """The test split as a ``TensorDataset`` of ``(X, y)`` (no copy)."""
        from deltaprop.data import TensorDataset

        return TensorDataset(self.X_test, self.y_test)

    def __repr__(self) -> str:
        return (
            f"DatasetSplits(name={self.name!r}, train={self.X_train.shape[0]}, "
            f"test={self.X_test.shape[0]}, input_shape={self.input_shape}, "
            f"num_classes={self.num_classes})"
        )


def default_data_dir() -> Path:
    """Where downloaded datasets go: ``$DELTAPROP_DATA`` or ``~/.cache/deltaprop/datasets``."""
    configured = os.environ.get("DELTAPROP_DATA")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "deltaprop" / "datasets"


def stable_permutation(n: int, seed: int) -> np.ndarray:
    """A permutation of ``range(n)`` that depends only on ``seed``, in every NumPy version.

    It sorts the raw 64-bit outputs of the PCG64 bit generator, a stream NumPy keeps stable
    (``Generator.permutation`` may change between NumPy releases), so the fixed splits of
    the bundled datasets never move.

    >>> stable_permutation(5, seed=0).tolist() == stable_permutation(5, seed=0).tolist()
    True
    """
    keys = np.random.PCG64(seed).random_raw(n)
    return np.argsort(keys, kind="stable")


def stratified_split(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified train/test split: sorted index arrays ``(train, test)``.

    The test split has ``ceil(test_fraction * n)`` samples (scikit-learn's rule); each class
    gets its share of them (largest remainders break ties, lower class first), and the
    members of a class that go to the test split are the first ones in
    ``stable_permutation(n, seed)``.

    >>> import numpy as np
    >>> train, test = stratified_split(np.array([0] * 8 + [1] * 2), 0.5, seed=0)
    >>> len(train), len(test), sorted(np.array([0] * 8 + [1] * 2)[test].tolist())
    (5, 5, [0, 0, 0, 0, 1])
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    labels = np.asarray(labels)
    n = labels.shape[0]
    if n < 2:
        raise DatasetError(f"cannot split {n} sample(s) into train and test sets")
    n_test = min(math.ceil(test_fraction * n), n - 1)
    classes, counts = np.unique(labels, return_counts=True)
    quotas = counts * (n_test / n)
    take = np.floor(quotas).astype(np.int64)
    remaining = n_test - int(take.sum())
    by_remainder = np.argsort(-(quotas - take), kind="stable")
    take[by_remainder[:remaining]] += 1
    permutation = stable_permutation(n, seed)
    permuted_labels = labels[permutation]
    is_test = np.zeros(n, dtype=bool)
    for cls, k in zip(classes, take):
        is_test[permutation[permuted_labels == cls][:k]] = True
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)
