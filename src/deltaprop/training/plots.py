"""PNG plots of a training run (matplotlib, drawn off-screen).

* ``loss.png``, ``accuracy.png``: train and test curves per epoch;
* ``confusion_matrix.png``: true class (rows) against predicted class (columns) on the test set;
* ``filters.png``: for a model with convolutions, the first Conv2d layer's learned kernels.

Figures are made with ``matplotlib.figure.Figure`` directly (no ``pyplot``, no global backend
switch), so plotting works on machines without a display and never opens a window.

>>> import numpy as np
>>> history = [{"epoch": 1, "train_loss": 1.0, "test_loss": 1.1, "train_acc": 0.5,
...             "test_acc": 0.4}]
>>> plot_curves(history, "/tmp/dp-doctest-plots")  # doctest: +SKIP
[PosixPath('/tmp/dp-doctest-plots/loss.png'), PosixPath('/tmp/dp-doctest-plots/accuracy.png')]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "first_conv_weight",
    "plot_confusion_matrix",
    "plot_curves",
    "plot_filters",
    "write_run_plots",
]


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def plot_curves(history: Sequence[dict[str, Any]], out: str | Path) -> list[Path]:
    """``loss.png`` and ``accuracy.png`` in ``out``: train and test value per epoch."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    epochs = [row["epoch"] for row in history]
    paths = []
    for metric, title, name in (
        ("loss", "cross-entropy loss", "loss.png"),
        ("acc", "accuracy", "accuracy.png"),
    ):
        fig = _figure(6, 4)
        ax = fig.add_subplot()
        for split, style in (("train", "o-"), ("test", "s-")):
            values = [row[f"{split}_{metric}"] for row in history]
            if metric == "acc":
                values = [100 * v for v in values]
            ax.plot(epochs, values, style, markersize=3, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(title + (" (%)" if metric == "acc" else ""))
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend()
        path = out / name
        fig.savefig(path)
        paths.append(path)
    return paths


def plot_confusion_matrix(
    matrix: np.ndarray, class_names: Sequence[str], path: str | Path, title: str = ""
) -> Path:
    """The confusion matrix as an image with the counts written in the cells (<= 20 classes)."""
    k = len(class_names)
    size = max(4.0, 0.45 * k + 2.0)
    fig = _figure(size + 1.0, size)
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_xticks(range(k), [str(n) for n in class_names], rotation=45 if k > 10 else 0)
    ax.set_yticks(range(k), [str(n) for n in class_names])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    total = int(matrix.sum())
    correct = int(np.trace(matrix))
    accuracy = f"accuracy {correct / total:.2%} ({correct}/{total})" if total else ""
    ax.set_title(f"{title} {accuracy}".strip())
    if k <= 20:
        threshold = matrix.max() / 2 if matrix.size else 0
        for i in range(k):
            for j in range(k):
                value = int(matrix[i, j])
                if value:
                    color = "white" if value > threshold else "black"
                    ax.text(j, i, str(value), ha="center", va="center", color=color, fontsize=8)
    path = Path(path)
    fig.savefig(path)
    return path


def first_conv_weight(model: Any) -> np.ndarray | None:
    """The weight ``(out_channels, in_channels, kh, kw)`` of the model's first Conv2d, or None."""
    from deltaprop import nn

    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return np.asarray(module.weight.data)
    return None


def plot_filters(weight: np.ndarray, path: str | Path) -> Path:
    """The kernels of a conv layer in a grid, one panel per output channel.

    Each kernel is shown on its own symmetric grey scale (black: most negative weight, white:
    most positive, mid-grey: zero). Several input channels are averaged, except 3 (shown as
    RGB after scaling to [0, 1]).
    """
    n = weight.shape[0]
    cols = min(n, 8)
    rows = math.ceil(n / cols)
    fig = _figure(1.3 * cols + 0.5, 1.3 * rows + 0.6)
    fig.suptitle(f"first conv layer: {n} filters {weight.shape[2]}x{weight.shape[3]}")
    for i in range(n):
        ax = fig.add_subplot(rows, cols, i + 1)
        kernel = weight[i]
        if kernel.shape[0] == 3:
            lo, hi = kernel.min(), kernel.max()
            ax.imshow(((kernel - lo) / (hi - lo + 1e-12)).transpose(1, 2, 0))
        else:
            kernel = kernel.mean(axis=0)
            limit = float(np.abs(kernel).max()) or 1.0
            ax.imshow(kernel, cmap="gray", vmin=-limit, vmax=limit)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(str(i), fontsize=8)
    path = Path(path)
    fig.savefig(path)
    return path


def write_run_plots(
    out: str | Path,
    history: Sequence[dict[str, Any]],
    model: Any,
    y_test: np.ndarray | None,
    predictions: np.ndarray | None,
    class_names: Sequence[str],
) -> list[Path]:
    """Every plot of a run into ``out``; returns the files written.

    The confusion matrix needs ``predictions`` (of the test set) and is skipped without them.
    """
    from deltaprop.training.metrics import confusion_matrix

    out = Path(out)
    paths = plot_curves(history, out) if history else []
    if predictions is not None and y_test is not None:
        matrix = confusion_matrix(y_test, predictions, len(class_names))
        paths.append(
            plot_confusion_matrix(matrix, class_names, out / "confusion_matrix.png", "test set:")
        )
    weight = first_conv_weight(model) if model is not None else None
    if weight is not None:
        paths.append(plot_filters(weight, out / "filters.png"))
    return paths
