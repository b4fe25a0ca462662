"""Classification metrics, the evaluation of a model on a split, and the per-epoch metrics
table (``metrics.csv``).

>>> import numpy as np
>>> y_true = np.array([0, 0, 1, 1, 2])
>>> y_pred = np.array([0, 1, 1, 1, 2])
>>> confusion_matrix(y_true, y_pred, 3).tolist()
[[1, 1, 0], [0, 2, 0], [0, 0, 1]]
>>> report = classification_report(y_true, y_pred, 3)
>>> round(report["accuracy"], 2), [round(p, 2) for p in report["precision"]]
(0.8, [1.0, 0.67, 1.0])
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from deltaprop.io import atomic_write

__all__ = [
    "METRICS_COLUMNS",
    "classification_report",
    "confusion_matrix",
    "evaluate_model",
    "format_confusion_matrix",
    "format_report",
    "read_metrics_csv",
    "write_metrics_csv",
]

#: The columns of ``metrics.csv``, one row per epoch.
METRICS_COLUMNS = (
    "epoch",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "lr",
    "seconds",
)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``C[i, j]`` = number of samples of true class ``i`` predicted as class ``j`` (int64).

    One ``bincount`` over ``i * K + j``; no loop over samples.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"confusion_matrix: y_true has shape {y_true.shape} but y_pred has {y_pred.shape}"
        )
    k = int(num_classes)
    flat = np.bincount(y_true * k + y_pred, minlength=k * k)
    return flat[: k * k].reshape(k, k)


def classification_report(
    y_true: np.ndarray, y_pred: np.ndarray, num_classes: int
) -> dict[str, Any]:
    """Accuracy and per-class precision, recall, F1 and support.

    ``precision_k = C[k, k] / sum_i C[i, k]`` (of the samples predicted k, the share that are k),
    ``recall_k = C[k, k] / sum_j C[k, j]`` (of the samples of class k, the share found),
    ``F1 = 2 P R / (P + R)``; a ratio with a zero denominator is reported as 0.

    Returns a dict with ``accuracy`` (float), ``confusion`` (the matrix) and the lists
    ``precision``, ``recall``, ``f1``, ``support``.
    """
    matrix = confusion_matrix(y_true, y_pred, num_classes)
    diagonal = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0).astype(np.float64)
    actual = matrix.sum(axis=1).astype(np.float64)
    precision = np.divide(diagonal, predicted, out=np.zeros_like(diagonal), where=predicted > 0)
    recall = np.divide(diagonal, actual, out=np.zeros_like(diagonal), where=actual > 0)
    denominator = precision + recall
    f1 = np.divide(
        2 * precision * recall, denominator, out=np.zeros_like(diagonal), where=denominator > 0
    )
    total = matrix.sum()
    return {
        "accuracy": float(diagonal.sum() / total) if total else 0.0,
        "confusion": matrix,
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "support": actual.astype(np.int64).tolist(),
    }


def format_report(report: dict[str, Any], class_names: Sequence[str]) -> str:
    """A per-class table of precision / recall / F1 / support, as text.

    >>> import numpy as np
    >>> print(format_report(classification_report(np.array([0, 1]), np.array([0, 1]), 2),
    ...                     ["cat", "dog"]))  # doctest: +NORMALIZE_WHITESPACE
    class  precision  recall     f1  support
    cat        1.000   1.000  1.000        1
    dog        1.000   1.000  1.000        1
    """
    width = max([5, *(len(str(n)) for n in class_names)])
    lines = [f"{'class':<{width}}  precision  recall     f1  support"]
    for name, p, r, f, s in zip(
        class_names, report["precision"], report["recall"], report["f1"], report["support"]
    ):
        lines.append(f"{str(name):<{width}}  {p:9.3f}  {r:6.3f}  {f:5.3f}  {s:7d}")
    return "\n".join(lines)


def format_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str]) -> str:
    """The confusion matrix as text: rows are true classes, columns predicted classes.

    >>> import numpy as np
    >>> print(format_confusion_matrix(np.array([[3, 1], [0, 4]]), ["a", "b"]))
    true\\pred a b
    a         3 1
    b         0 4
    """
    names = [str(n) for n in class_names]
    label = "true\\pred"
    first = max(len(label), *(len(n) for n in names))
    cell = max(len(str(int(matrix.max()))) if matrix.size else 1, *(len(n) for n in names))
    lines = [f"{label:<{first}} " + " ".join(f"{n:>{cell}}" for n in names)]
    for name, row in zip(names, matrix):
        lines.append(f"{name:<{first}} " + " ".join(f"{int(v):>{cell}d}" for v in row))
    return "\n".join(lines)


def write_metrics_csv(path: str | os.PathLike[str], rows: Sequence[dict[str, Any]]) -> None:
    """Write the metrics table (header + one row per epoch) atomically.

    The whole history is rewritten each epoch (it is a few kilobytes): after a resume the file
    always matches the checkpoint it continues from.
    """

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(METRICS_COLUMNS)
            for row in rows:
                writer.writerow([_format_value(row[c]) for c in METRICS_COLUMNS])

    atomic_write(path, write)


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)  # shortest text that reads back as the same float
    return str(value)


def read_metrics_csv(path: str | os.PathLike[str]) -> list[dict[str, float]]:
    """Read ``metrics.csv`` back: a list of dicts (``epoch`` as int, the rest as floats)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()} for row in rows]


def evaluate_model(
    model: Any, X: np.ndarray, y: np.ndarray, batch_size: int = 1000
) -> tuple[float, float, np.ndarray]:
    """Mean cross-entropy, accuracy and predicted classes of ``model`` on ``(X, y)``.

    Runs in eval mode under ``no_grad`` in batches of ``batch_size``, and restores the
    module's previous mode.
    """
    import deltaprop as dp
    from deltaprop.nn import functional as F

    was_training = model.training
    model.eval()
    loss_sum = 0.0
    predictions = np.empty(len(X), dtype=np.int64)
    try:
        with dp.no_grad():
            for start in range(0, len(X), batch_size):
                xb = dp.from_numpy(X[start : start + batch_size])
                yb = dp.from_numpy(y[start : start + batch_size])
                logits = model(xb)
                loss_sum += float(F.cross_entropy(logits, yb).item()) * len(yb)
                predictions[start : start + len(yb)] = logits.data.argmax(axis=1)
    finally:
        model.train(was_training)
    n = max(len(X), 1)
    return loss_sum / n, float((predictions == y).mean()) if len(X) else 0.0, predictions
