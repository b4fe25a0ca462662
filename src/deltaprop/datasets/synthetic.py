"""Seeded 2-D toy problems for teaching: XOR, two moons and spirals.

``make_*`` return one set of points ``(X (N, 2) float32, y (N,) int64)`` in shuffled order;
``load_*`` return ``DatasetSplits`` (a stratified, seeded 80/20 split of ``n_samples`` points).
The same seed gives the same points (with the same NumPy version).

>>> X, y = make_spirals(n_samples=300, n_classes=3, seed=0)
>>> X.shape, X.dtype, sorted(set(y.tolist()))
((300, 2), dtype('float32'), [0, 1, 2])
"""

from __future__ import annotations

import numpy as np

from deltaprop.datasets.base import DatasetSplits, stratified_split

__all__ = ["make_xor", "make_moons", "make_spirals", "load_xor", "load_moons", "load_spirals"]


def _check(n_samples: int, noise: float, minimum: int = 1) -> None:
    if n_samples < minimum:
        raise ValueError(f"n_samples must be at least {minimum}, got {n_samples}")
    if noise < 0:
        raise ValueError(f"noise must be non-negative, got {noise}")


def make_xor(
    n_samples: int = 400, noise: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Points uniform in [-1, 1]^2; label 1 where the two coordinates have different signs.

    Labels are taken before ``noise`` (standard deviation of Gaussian jitter added to both
    coordinates), so a larger noise blurs the boundaries along the axes.

    >>> X, y = make_xor(8, noise=0.0, seed=1)
    >>> bool(((X[:, 0] * X[:, 1] < 0) == (y == 1)).all())
    True
    """
    _check(n_samples, noise)
    rng = np.random.default_rng(seed)
    points = rng.uniform(-1.0, 1.0, size=(n_samples, 2))
    y = ((points[:, 0] > 0) != (points[:, 1] > 0)).astype(np.int64)
    X = points + noise * rng.standard_normal((n_samples, 2))
    return X.astype(np.float32), y


def make_moons(
    n_samples: int = 400, noise: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles (as scikit-learn's ``make_moons``).

    Class 0 is the upper moon (centre (0, 0)), class 1 the lower one (centre (1, 0.5));
    ``noise`` is the standard deviation of Gaussian jitter added to the coordinates.

    >>> X, y = make_moons(100, seed=0)
    >>> X.shape, int(y.sum())
    ((100, 2), 50)
    """
    _check(n_samples, noise, minimum=2)
    rng = np.random.default_rng(seed)
    n_upper = n_samples // 2
    n_lower = n_samples - n_upper
    t_upper = np.linspace(0.0, np.pi, n_upper)
    t_lower = np.linspace(0.0, np.pi, n_lower)
    upper = np.stack([np.cos(t_upper), np.sin(t_upper)], axis=1)
    lower = np.stack([1.0 - np.cos(t_lower), 0.5 - np.sin(t_lower)], axis=1)
    X = np.concatenate([upper, lower]) + noise * rng.standard_normal((n_samples, 2))
    y = np.concatenate([np.zeros(n_upper, np.int64), np.ones(n_lower, np.int64)])
    order = rng.permutation(n_samples)
    return X[order].astype(np.float32), y[order]


def make_spirals(
    n_samples: int = 600, n_classes: int = 3, noise: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved spiral arms, one per class (the CS231n toy problem).

    Arm ``k`` has radius growing from 0 to 1 while its angle turns from ``4k`` to ``4(k+1)``
    radians; ``noise`` is the standard deviation of Gaussian jitter of the angle (radians).
    ``n_samples`` is split as evenly as possible between the arms.

    >>> X, y = make_spirals(30, n_classes=2, noise=0.0)
    >>> float(np.abs(X).max()) <= 1.0, np.bincount(y).tolist()
    (True, [15, 15])
    """
    _check(n_samples, noise, minimum=n_classes)
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}")
    rng = np.random.default_rng(seed)
    points = []
    labels = []
    for k in range(n_classes):
        n_k = n_samples // n_classes + (1 if k < n_samples % n_classes else 0)
        radius = np.linspace(0.0, 1.0, n_k)
        angle = np.linspace(4.0 * k, 4.0 * (k + 1), n_k) + noise * rng.standard_normal(n_k)
        points.append(np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1))
        labels.append(np.full(n_k, k, dtype=np.int64))
    X = np.concatenate(points)
    y = np.concatenate(labels)
    order = rng.permutation(n_samples)
    return X[order].astype(np.float32), y[order]


def _splits(
    X: np.ndarray, y: np.ndarray, name: str, num_classes: int, test_fraction: float, seed: int
) -> DatasetSplits:
    train, test = stratified_split(y, test_fraction, seed)
    return DatasetSplits(
        X_train=X[train],
        y_train=y[train],
        X_test=X[test],
        y_test=y[test],
        num_classes=num_classes,
        class_names=tuple(str(k) for k in range(num_classes)),
        input_shape=(2,),
        name=name,
    )


def load_xor(
    n_samples: int = 400, noise: float = 0.1, seed: int = 0, test_fraction: float = 0.2
) -> DatasetSplits:
    """:func:`make_xor` split into train and test (stratified, seeded by ``seed``)."""
    X, y = make_xor(n_samples, noise, seed)
    return _splits(X, y, "xor", 2, test_fraction, seed)


def load_moons(
    n_samples: int = 400, noise: float = 0.1, seed: int = 0, test_fraction: float = 0.2
) -> DatasetSplits:
    """:func:`make_moons` split into train and test (stratified, seeded by ``seed``)."""
    X, y = make_moons(n_samples, noise, seed)
    return _splits(X, y, "moons", 2, test_fraction, seed)


def load_spirals(
    n_samples: int = 600,
    n_classes: int = 3,
    noise: float = 0.2,
    seed: int = 0,
    test_fraction: float = 0.2,
) -> DatasetSplits:
    """:func:`make_spirals` split into train and test (stratified, seeded by ``seed``)."""
    X, y = make_spirals(n_samples, n_classes, noise, seed)
    return _splits(X, y, "spirals", n_classes, test_fraction, seed)
