"""Training settings and their defaults per model and per kind of dataset.

Every option of ``deltaprop train`` is a field of :class:`TrainSettings`. An option left unset
(None) takes its default from, in order:

1. the table :data:`DEFAULTS`, keyed by (model, kind of data): the settings that reach the
   documented results (docs/results.md) with no hand-tuned flags (a learning rate there is
   for the table's optimizer, Adam: choosing another optimizer takes that one's default);
2. the optimizer's defaults (:data:`OPTIMIZER_DEFAULTS`, e.g. ``lr`` 0.05 for SGD, 1e-3 for
   Adam);
3. :data:`COMMON_DEFAULTS`.

The kind of data is ``images`` (at least 16x16 pixels: MNIST, Fashion-MNIST), ``small-images``
(the 8x8 ``digits``), ``points`` (the 2-D toy problems ``xor``, ``moons``, ``spirals``) or
``table`` (a CSV file).

>>> s = resolve_settings(TrainSettings(dataset="mnist", model="lenet5"), "images")
>>> s.optimizer, s.lr, s.epochs, s.scheduler
('adam', 0.002, 15, 'cosine')
>>> resolve_settings(TrainSettings(model="mlp", optimizer="sgd"), "small-images").lr
0.05
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from deltaprop.errors import TrainingError

__all__ = [
    "COMMON_DEFAULTS",
    "DEFAULTS",
    "OPTIMIZERS",
    "OPTIMIZER_DEFAULTS",
    "SCHEDULERS",
    "TrainSettings",
    "check_setting",
    "data_kind",
    "resolve_settings",
]

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULERS = ("none", "step", "cosine", "exponential")


@dataclass
class TrainSettings:
    """Every setting of a training run (None: use the default for this model and data).

    Attributes:
        dataset: ``digits`` (the default), ``mnist``, ``fashion-mnist``, ``csv:PATH``,
            ``xor``, ``moons`` or ``spirals``.
        data_dir: directory of the MNIST / Fashion-MNIST IDX files.
        model: (default ``mlp``) a preset (``logreg``, ``mlp``, ``lenet5``) or the path of a
            TOML model file.
        hidden: mlp hidden layer sizes.
        activation: activation of mlp and lenet5 (``relu``, ``tanh``, ``sigmoid``, ``gelu``,
            ``leaky_relu``).
        dropout: dropout probability after hidden layers (mlp, lenet5).
        epochs, batch_size: passes over the training set, samples per step.
        optimizer: ``sgd``, ``adam``, ``adamw`` or ``rmsprop``.
        lr, momentum, weight_decay: optimizer settings (momentum: SGD and RMSprop).
        scheduler: ``none``, ``step``, ``cosine`` (over all epochs) or ``exponential``; stepped
            once per epoch.
        step_size, gamma: StepLR's period and factor; ExponentialLR's factor.
        seed: seeds weight initialisation, shuffling and dropout.
        normalize: standardise inputs with the training set's mean and std (per channel for
            images, per feature for tables).
    """

    dataset: str | None = None
    data_dir: str | None = None
    model: str | None = None
    hidden: tuple[int, ...] | None = None
    activation: str | None = None
    dropout: float | None = None
    epochs: int | None = None
    batch_size: int | None = None
    optimizer: str | None = None
    lr: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    scheduler: str | None = None
    step_size: int | None = None
    gamma: float | None = None
    seed: int | None = None
    normalize: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-able dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        if out["hidden"] is not None:
            out["hidden"] = list(out["hidden"])
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "settings") -> TrainSettings:
        """Inverse of :meth:`to_dict` (unknown keys are ignored), every value checked.

        Raises:
            TrainingError: a value of the wrong type or out of range, naming ``where`` (the
                file it came from) and the setting.
        """
        if not isinstance(data, dict):
            raise TrainingError(f"{where} must be a JSON object of settings, got {data!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        for name, value in values.items():
            check_setting(name, value, where)
        if values.get("hidden") is not None:
            values["hidden"] = tuple(values["hidden"])
        return cls(**values)


COMMON_DEFAULTS: dict[str, Any] = {
    "dataset": "digits",
    "model": "mlp",
    "hidden": (256, 128),
    "activation": "relu",
    "dropout": 0.0,
    "epochs": 20,
    "batch_size": 64,
    "optimizer": "adam",
    "weight_decay": 0.0,
    "scheduler": "cosine",
    "seed": 0,
    "normalize": True,
}

OPTIMIZER_DEFAULTS: dict[str, dict[str, Any]] = {
    "sgd": {"lr": 0.05, "momentum": 0.9},
    "adam": {"lr": 1e-3, "momentum": 0.0},
    "adamw": {"lr": 1e-3, "momentum": 0.0, "weight_decay": 0.01},
    "rmsprop": {"lr": 1e-3, "momentum": 0.0},
}

#: (model, kind of data) -> defaults. ``"*"`` matches any model (a TOML file).
DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    # MNIST / Fashion-MNIST (28x28)
    ("mlp", "images"): {"hidden": (256, 128), "dropout": 0.2, "epochs": 30, "batch_size": 64,
                        "lr": 2e-3},
    ("lenet5", "images"): {"epochs": 15, "batch_size": 32, "lr": 2e-3},
    ("logreg", "images"): {"epochs": 20, "batch_size": 128},
    ("*", "images"): {"epochs": 15, "batch_size": 64},
    # the bundled 8x8 digits (1,437 training images)
    ("mlp", "small-images"): {"hidden": (128, 64), "dropout": 0.1, "epochs": 20, "batch_size": 32},
    ("lenet5", "small-images"): {"epochs": 30, "batch_size": 32},
    ("logreg", "small-images"): {"epochs": 30, "batch_size": 32, "lr": 1e-2},
    ("*", "small-images"): {"epochs": 30, "batch_size": 32},
    # 2-D toy problems (320 training points)
    ("mlp", "points"): {"hidden": (32, 32), "epochs": 100, "batch_size": 32, "lr": 1e-2},
    ("logreg", "points"): {"epochs": 50, "batch_size": 32, "lr": 1e-2},
    ("*", "points"): {"epochs": 100, "batch_size": 32, "lr": 1e-2},
    # CSV tables
    ("mlp", "table"): {"hidden": (64, 32), "epochs": 50, "batch_size": 32},
    ("logreg", "table"): {"epochs": 50, "batch_size": 32, "lr": 1e-2},
    ("*", "table"): {"epochs": 50, "batch_size": 32},
}  # fmt: skip

_STEP_DEFAULT_GAMMA = {"step": 0.1, "exponential": 0.95}

#: The largest seed (NumPy's generators take any non-negative int; PyTorch's seeds are 64-bit).
MAX_SEED = 2**64 - 1


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


#: setting -> (test of a value, what is allowed); None is always allowed (the default).
_ALLOWED: dict[str, tuple[Any, str]] = {
    "dataset": (lambda v: isinstance(v, str) and v.strip() != "", "a dataset name"),
    "data_dir": (lambda v: isinstance(v, str), "a directory path"),
    "model": (lambda v: isinstance(v, str) and v.strip() != "", "a preset name or a file"),
    "hidden": (
        lambda v: isinstance(v, (list, tuple)) and all(_is_int(h) and h > 0 for h in v),
        "a list of positive ints",
    ),
    "activation": (lambda v: isinstance(v, str), "an activation name"),
    "dropout": (lambda v: _is_number(v) and 0 <= v < 1, "a probability in [0, 1)"),
    "epochs": (lambda v: _is_int(v) and v >= 1, "a positive int"),
    "batch_size": (lambda v: _is_int(v) and v >= 1, "a positive int"),
    "optimizer": (lambda v: v in OPTIMIZERS, "one of " + ", ".join(OPTIMIZERS)),
    "lr": (lambda v: _is_number(v) and v > 0, "a finite positive number"),
    "momentum": (lambda v: _is_number(v) and v >= 0, "a finite non-negative number"),
    "weight_decay": (lambda v: _is_number(v) and v >= 0, "a finite non-negative number"),
    "scheduler": (lambda v: v in SCHEDULERS, "one of " + ", ".join(SCHEDULERS)),
    "step_size": (lambda v: _is_int(v) and v >= 1, "a positive int"),
    "gamma": (lambda v: _is_number(v) and v > 0, "a finite positive number"),
    "seed": (lambda v: _is_int(v) and 0 <= v <= MAX_SEED, f"an int in [0, {MAX_SEED}]"),
    "normalize": (lambda v: isinstance(v, bool), "true or false"),
}


def check_setting(name: str, value: Any, where: str = "settings") -> None:
    """TrainingError unless ``value`` is allowed for setting ``name`` (None always is).

    >>> check_setting("lr", float("inf"), "--lr")
    Traceback (most recent call last):
    ...
    deltaprop.errors.TrainingError: --lr: lr must be a finite positive number, got inf
    """
    if value is None or name not in _ALLOWED:
        return
    test, allowed = _ALLOWED[name]
    if not test(value):
        raise TrainingError(f"{where}: {name} must be {allowed}, got {value!r}")


def data_kind(dataset_name: str, input_shape: tuple[int, ...]) -> str:
    """``images``, ``small-images``, ``points`` or ``table`` (see the module docstring).

    >>> data_kind("mnist", (1, 28, 28)), data_kind("digits", (1, 8, 8)), data_kind("moons", (2,))
    ('images', 'small-images', 'points')
    """
    if len(input_shape) == 3:
        return "images" if min(input_shape[1:]) >= 16 else "small-images"
    if dataset_name in ("xor", "moons", "spirals"):
        return "points"
    return "table"


def resolve_settings(settings: TrainSettings, kind: str) -> TrainSettings:
    """A copy of ``settings`` with every None replaced by its default (see module docstring)."""
    values = dataclasses.asdict(settings)
    values["model"] = values["model"] or COMMON_DEFAULTS["model"]
    model_key = values["model"] if values["model"] in ("logreg", "mlp", "lenet5") else "*"
    table = DEFAULTS.get((model_key, kind), DEFAULTS.get(("*", kind), {}))
    if values["hidden"] is not None:
        values["hidden"] = tuple(values["hidden"])
    table_optimizer = table.get("optimizer", COMMON_DEFAULTS["optimizer"])
    optimizer = values["optimizer"] or table_optimizer
    values["optimizer"] = optimizer
    for name, value in values.items():
        if value is not None or name in ("data_dir",):
            continue
        if name in table and (name != "lr" or optimizer == table_optimizer):
            values[name] = table[name]
        elif name in OPTIMIZER_DEFAULTS.get(optimizer, {}):
            values[name] = OPTIMIZER_DEFAULTS[optimizer][name]
        elif name in COMMON_DEFAULTS:
            values[name] = COMMON_DEFAULTS[name]
    if values["step_size"] is None:
        values["step_size"] = max(1, int(values["epochs"]) // 3)
    if values["gamma"] is None:
        values["gamma"] = _STEP_DEFAULT_GAMMA.get(values["scheduler"], 0.1)
    return TrainSettings(**values)


def describe_defaults() -> str:
    """The defaults table as text, one line per (model, kind of data) (for ``--help``).

    >>> print(describe_defaults().splitlines()[0])  # doctest: +ELLIPSIS
    mlp on images: ...
    """
    lines = []
    for (model, kind), table in DEFAULTS.items():
        values = {**COMMON_DEFAULTS, **OPTIMIZER_DEFAULTS[COMMON_DEFAULTS["optimizer"]], **table}
        parts = []
        if model == "mlp":
            parts.append("hidden " + ",".join(str(h) for h in values["hidden"]))
        if model in ("mlp", "lenet5") and values["dropout"]:
            parts.append(f"dropout {values['dropout']:g}")
        parts += [
            f"{values['epochs']} epochs",
            f"batch {values['batch_size']}",
            f"{values['optimizer']} lr {values['lr']:g}",
            f"{values['scheduler']} schedule",
        ]
        name = "a TOML model" if model == "*" else model
        lines.append(f"{name} on {kind}: " + ", ".join(parts))
    return "\n".join(lines)
