"""A run directory's ``config.json``: read and checked before anything is built from it.

``deltaprop train --resume``, ``evaluate`` and ``predict`` rebuild a model from the
``config.json`` that ``train`` wrote. The file may have been edited, truncated or replaced, so
:func:`read_config` checks every entry they use (types, ranges, that the layers fit the data
shape) and raises one sentence naming the file and the entry.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from deltaprop.errors import InputError, ModelError
from deltaprop.training.settings import TrainSettings

__all__ = ["CONFIG_FILE", "read_config"]

CONFIG_FILE = "config.json"


def read_config(run_dir: str | Path, error: type[InputError]) -> dict[str, Any]:
    """The checked ``config.json`` of ``run_dir`` (which must hold one).

    Raises:
        error: the file is unreadable, not JSON, or an entry is missing or of the wrong type;
            ModelError: its layers do not fit its data shape.
    """
    from deltaprop.models import resolve_layers
    from deltaprop.userfiles import read_json

    path = Path(run_dir) / CONFIG_FILE
    config = read_json(path, "run configuration", error)
    where = f"run configuration {str(path)!r}"

    def bad(what: str) -> InputError:
        return error(f"{where} is damaged: {what}")

    if not isinstance(config, dict):
        raise bad(f"it holds a JSON {type(config).__name__}, not an object")
    for key, kind in (("settings", dict), ("layers", list), ("dataset", dict),
                      ("normalize", dict), ("model_name", str)):  # fmt: skip
        if key not in config:
            raise bad(f"it has no {key!r} entry")
        if not isinstance(config[key], kind):
            raise bad(f"{key!r} must be a JSON {_json_name(kind)}, got {config[key]!r}")
    TrainSettings.from_dict(config["settings"], where=f"{where}, settings")
    dataset = config["dataset"]
    shape = dataset.get("input_shape")
    if not _ints(shape, 1, 3) or not all(s > 0 for s in shape):
        raise bad(f"dataset input_shape must be a list of 1 to 3 positive ints, got {shape!r}")
    classes = dataset.get("num_classes")
    if not _ints([classes], 1, 1) or classes < 1:
        raise bad(f"dataset num_classes must be a positive int, got {classes!r}")
    names = dataset.get("class_names")
    if (
        not isinstance(names, list)
        or len(names) != classes
        or not all(isinstance(n, str) for n in names)
    ):
        raise bad(f"dataset class_names must be a list of {classes} strings, got {names!r}")
    if not isinstance(dataset.get("name"), str):
        raise bad(f"dataset name must be a string, got {dataset.get('name')!r}")
    _check_normalize(config["normalize"], shape, bad)
    layers = config["layers"]
    if not layers or not all(isinstance(layer, dict) for layer in layers):
        raise bad("'layers' must be a non-empty list of layer objects")
    try:
        resolve_layers(layers, shape, classes)
    except ModelError as e:
        raise bad(f"its layers do not fit: {e}") from None
    for key in ("command", "resumed_with"):
        if key in config and not isinstance(config[key], list):
            raise bad(f"{key!r} must be a list, got {config[key]!r}")
    return config


def _json_name(kind: type) -> str:
    return {dict: "object", list: "array", str: "string"}[kind]


def _ints(values: Any, low: int, high: int) -> bool:
    return (
        isinstance(values, list)
        and low <= len(values) <= high
        and all(isinstance(v, int) and not isinstance(v, bool) for v in values)
    )


def _check_normalize(norm: dict[str, Any], shape: list[int], bad: Any) -> None:
    """mean/std: equal-length lists of finite numbers (one, or one per channel/feature)."""
    mean, std = norm.get("mean"), norm.get("std")
    allowed = {1, shape[0]}
    for key, values in (("mean", mean), ("std", std)):
        if (
            not isinstance(values, list)
            or len(values) not in allowed
            or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                for v in values
            )
        ):
            raise bad(
                f"normalize {key} must be a list of {' or '.join(map(str, sorted(allowed)))} "
                f"finite numbers, got {values!r}"
            )
    if len(mean) != len(std) or not all(v > 0 for v in std):
        raise bad("normalize mean and std must have equal lengths and std must be positive")
