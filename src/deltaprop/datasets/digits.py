"""The bundled 8x8 handwritten digits (UCI "Optical Recognition of Handwritten Digits").

1,797 grey images of 8x8 pixels with values 0..16, ten classes (about 180 each), from
E. Alpaydin and C. Kaynak, UCI Machine Learning Repository, CC BY 4.0: the copy
scikit-learn ships (``digits.csv.gz``, see ``datasets/data/README.md``). It needs no network
and trains in seconds, which makes it the default dataset of examples and tests.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from deltaprop.datasets.base import DatasetError, DatasetSplits, stratified_split

__all__ = ["load_digits", "read_digits", "DIGITS_PATH"]

#: The bundled file: 1,797 comma-separated rows of 64 pixels (0..16) and the label.
DIGITS_PATH = Path(__file__).resolve().parent / "data" / "digits.csv.gz"


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits as stored: pixels ``(1797, 8, 8)`` uint8 0..16, labels ``(1797,)`` int64.

    >>> pixels, labels = read_digits()
    >>> pixels.shape, int(pixels.max()), labels[:5].tolist()
    ((1797, 8, 8), 16, [0, 1, 2, 3, 4])
    """
    try:
        with gzip.open(DIGITS_PATH, "rt") as handle:
            table = np.loadtxt(handle, delimiter=",", dtype=np.int64)
    except OSError as exc:
        raise DatasetError(f"{DIGITS_PATH}: cannot read the bundled digits ({exc})") from exc
    if table.shape != (1797, 65):
        raise DatasetError(f"{DIGITS_PATH}: expected 1797 rows of 65 values, got {table.shape}")
    pixels = table[:, :64].astype(np.uint8).reshape(-1, 8, 8)
    return pixels, table[:, 64].copy()


def load_digits(*, test_fraction: float = 0.2, seed: int = 0) -> DatasetSplits:
    """The 8x8 digits with a fixed train/test split: 1,437 train and 360 test images.

    Images are ``(N, 1, 8, 8)`` float32 in [0, 1] (pixel / 16); labels int64 0..9.

    The split is stratified and seeded: with the defaults the test split holds
    ``ceil(0.2 * 1797) = 360`` images, 35 to 37 of each digit (each class's share of 360,
    rounded by largest remainder), chosen by
    :func:`~deltaprop.datasets.base.stable_permutation` with seed 0, which is the same in
    every NumPy version; both splits keep the file's order. Other ``test_fraction``/``seed``
    values give other splits of the same kind.

    >>> splits = load_digits()
    >>> splits.X_train.shape, splits.X_test.shape, splits.num_classes
    ((1437, 1, 8, 8), (360, 1, 8, 8), 10)
    """
    pixels, labels = read_digits()
    train, test = stratified_split(labels, test_fraction, seed)
    images = pixels.reshape(-1, 1, 8, 8).astype(np.float32) / np.float32(16.0)
    return DatasetSplits(
        X_train=images[train],
        y_train=labels[train],
        X_test=images[test],
        y_test=labels[test],
        num_classes=10,
        class_names=tuple(str(d) for d in range(10)),
        input_shape=(1, 8, 8),
        name="digits",
    )
