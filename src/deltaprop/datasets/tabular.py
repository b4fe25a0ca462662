"""Tabular classification data from CSV files: numeric features and one label column.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "flowers.csv"
>>> _ = path.write_text("length,width,kind\\n1.0,0.5,rose\\n2.0,1.5,tulip\\n"
...                     "1.1,0.4,rose\\n2.2,1.4,tulip\\n1.2,0.6,rose\\n")
>>> splits = load_csv(path, test_fraction=0.4)
>>> splits.class_names, splits.X_train.shape, splits.X_test.shape
(('rose', 'tulip'), (3, 2), (2, 2))
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deltaprop.datasets.base import DatasetError, DatasetSplits, stratified_split
from deltaprop.userfiles import parses_as_float

__all__ = ["load_csv", "read_csv_table"]


@dataclass
class CsvTable:
    """A parsed CSV file: features, raw labels and where each row came from."""

    path: Path
    header: list[str] | None
    features: np.ndarray  # (N, D) float32
    labels: list[str]  # raw label strings, one per row
    line_numbers: list[int]  # line of each row in the file (1-based)
    label_index: int  # the label's column in the file


def load_csv(
    path: str | os.PathLike[str],
    *,
    label_column: int | str | None = None,
    test_path: str | os.PathLike[str] | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    header: bool | None = None,
    delimiter: str = ",",
) -> DatasetSplits:
    """Load a classification table: every column but the label is a numeric feature.

    Args:
        path: the CSV file (blank lines and lines starting with ``#`` are skipped).
        label_column: the label's column: None for the last one, an int index (negative
            counts from the end) or a header name.
        test_path: a separate test file with the same columns; without it the rows of
            ``path`` are split (stratified, seeded) with ``test_fraction`` of them for testing.
        test_fraction: share of the rows held out when there is no ``test_path``.
        seed: seed of that split (see :func:`~deltaprop.datasets.base.stratified_split`).
        header: whether the first row names the columns; None detects it: the first row is a
            header when one of its fields is not a number where the second row has a number.
        delimiter: the field separator.

    Labels that are all integers are classes in numeric order (class names are their text);
    otherwise labels are strings, classes in sorted order. Class ``k`` is label index ``k``.

    Raises:
        DatasetError: empty file, ragged rows, a non-numeric or missing feature, an unknown
            label column or a test label absent from the training file; the message names the
            file and line.
    """
    train = read_csv_table(path, label_column=label_column, header=header, delimiter=delimiter)
    class_values, train_targets = _encode_labels(train)
    if test_path is None:
        train_rows, test_rows = stratified_split(train_targets, test_fraction, seed)
        X_train, y_train = train.features[train_rows], train_targets[train_rows]
        X_test, y_test = train.features[test_rows], train_targets[test_rows]
    else:
        test = read_csv_table(
            test_path, label_column=label_column, header=header, delimiter=delimiter
        )
        if test.features.shape[1] != train.features.shape[1]:
            raise DatasetError(
                f"{test.path}: {test.features.shape[1]} feature columns, but the training file "
                f"{train.path} has {train.features.shape[1]}"
            )
        X_train, y_train = train.features, train_targets
        X_test, y_test = test.features, _encode_test_labels(test, train, class_values)
    return DatasetSplits(
        X_train=X_train,
        y_train=y_train,
        X_test=X_test,
        y_test=y_test,
        num_classes=len(class_values),
        class_names=tuple(str(value) for value in class_values),
        input_shape=(train.features.shape[1],),
        name=f"csv:{Path(path).name}",
    )


def read_csv_table(
    path: str | os.PathLike[str],
    *,
    label_column: int | str | None = None,
    header: bool | None = None,
    delimiter: str = ",",
) -> CsvTable:
    """Parse a CSV file into float32 features and raw label strings (see :func:`load_csv`)."""
    path = Path(path)
    rows, line_numbers = _read_rows(path, delimiter)
    has_header = _detect_header(rows) if header is None else header
    names = rows[0] if has_header else None
    if has_header:
        rows, line_numbers = rows[1:], line_numbers[1:]
    if not rows:
        raise DatasetError(f"{path}: no data rows after the header line")
    width = len(rows[0])
    if width < 2:
        raise DatasetError(
            f"{path}: each row has {width} field; need at least one feature and the label "
            f"(is the delimiter {delimiter!r} right?)"
        )
    label_index = _label_index(path, label_column, names, width)
    feature_columns = [j for j in range(width) if j != label_index]
    features = _parse_features(path, rows, line_numbers, feature_columns, names)
    labels = [row[label_index] for row in rows]
    for line, label in zip(line_numbers, labels):
        if label == "":
            raise DatasetError(
                f"{path}, line {line}: the label (column {label_index + 1}) is empty"
            )
    return CsvTable(path, names, features, labels, line_numbers, label_index)


def _read_rows(path: Path, delimiter: str) -> tuple[list[list[str]], list[int]]:
    """Non-blank, non-comment rows (fields stripped) and their line numbers; checks widths."""
    rows: list[list[str]] = []
    line_numbers: list[int] = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            for fields in reader:
                fields = [field.strip() for field in fields]
                if not any(fields) or fields[0].startswith("#"):
                    continue
                if rows and len(fields) != len(rows[0]):
                    raise DatasetError(
                        f"{path}, line {reader.line_num}: {len(fields)} fields, expected "
                        f"{len(rows[0])} as on line {line_numbers[0]}"
                    )
                rows.append(fields)
                line_numbers.append(reader.line_num)
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot read the file as CSV ({exc})") from exc
    if not rows:
        raise DatasetError(f"{path}: empty file (no rows)")
    return rows, line_numbers


def _detect_header(rows: list[list[str]]) -> bool:
    """A first row with a non-number where the second row has a number is a header."""
    if len(rows) == 1:
        return not any(parses_as_float(field) for field in rows[0])
    return any(
        not parses_as_float(first) and parses_as_float(second)
        for first, second in zip(rows[0], rows[1])
    )


def _label_index(
    path: Path, label_column: int | str | None, names: list[str] | None, width: int
) -> int:
    if label_column is None:
        return width - 1
    if isinstance(label_column, str):
        if names is None:
            raise DatasetError(
                f"{path}: label column {label_column!r} given by name, but the file has no "
                "header row (pass an index, or header=True)"
            )
        if label_column not in names:
            raise DatasetError(f"{path}: no column named {label_column!r}; the columns are {names}")
        return names.index(label_column)
    if not -width <= label_column < width:
        raise DatasetError(
            f"{path}: label column {label_column} out of range for rows of {width} fields"
        )
    return label_column % width


def _parse_features(
    path: Path,
    rows: list[list[str]],
    line_numbers: list[int],
    columns: list[int],
    names: list[str] | None,
) -> np.ndarray:
    """The feature columns as float32; on a bad value, an error naming its line and column."""
    cells = [[row[j] for j in columns] for row in rows]
    try:
        values = np.array(cells, dtype=np.float64)
    except ValueError:
        values = None
    if values is not None and np.isfinite(values).all():
        return values.astype(np.float32)
    # Slow path, only to locate the first bad value for the error message.
    for line, row in zip(line_numbers, rows):
        for j in columns:
            text = row[j]
            column = f"column {j + 1}" + (f" ({names[j]!r})" if names else "")
            if text == "":
                raise DatasetError(f"{path}, line {line}, {column}: missing value")
            try:
                number = float(text)
            except ValueError:
                raise DatasetError(
                    f"{path}, line {line}, {column}: {text!r} is not a number "
                    "(only the label column may hold text)"
                ) from None
            if not math.isfinite(number):
                raise DatasetError(f"{path}, line {line}, {column}: {text!r} is not finite")
    raise DatasetError(f"{path}: cannot parse the features")  # unreachable in practice


def _as_integer(text: str) -> int | None:
    """The integer a label spells ("3", "3.0"), else None."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    if math.isfinite(number) and number.is_integer():
        return int(number)
    return None


def _encode_labels(table: CsvTable) -> tuple[list[int] | list[str], np.ndarray]:
    """Sorted class values and the label index (int64) of each row."""
    integers = [_as_integer(label) for label in table.labels]
    if all(value is not None for value in integers):
        int_classes = sorted(set(integers))
        lookup_int = {value: k for k, value in enumerate(int_classes)}
        targets = np.array([lookup_int[value] for value in integers], dtype=np.int64)
        return int_classes, targets
    if all(parses_as_float(label) for label in table.labels):
        position = next(k for k, value in enumerate(integers) if value is None)
        raise DatasetError(
            f"{table.path}, line {table.line_numbers[position]}: label "
            f"{table.labels[position]!r} is a non-integer number; load_csv loads classification "
            "data (class labels are integers or names)"
        )
    str_classes = sorted(set(table.labels))
    lookup_str = {value: k for k, value in enumerate(str_classes)}
    return str_classes, np.array([lookup_str[label] for label in table.labels], dtype=np.int64)


def _encode_test_labels(
    test: CsvTable, train: CsvTable, class_values: list[int] | list[str]
) -> np.ndarray:
    """The test labels as the training file's class indices."""
    lookup = {str(value): k for k, value in enumerate(class_values)}
    numeric = bool(class_values) and isinstance(class_values[0], int)
    targets = []
    for line, label in zip(test.line_numbers, test.labels):
        key = label
        if numeric:
            value = _as_integer(label)
            key = str(value) if value is not None else label
        if key not in lookup:
            raise DatasetError(
                f"{test.path}, line {line}: label {label!r} does not occur in the training file "
                f"{train.path} (classes: {[str(v) for v in class_values]})"
            )
        targets.append(lookup[key])
    return np.array(targets, dtype=np.int64)
