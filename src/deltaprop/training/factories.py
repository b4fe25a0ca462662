"""Factories from settings: normalisation, optimizer, scheduler, model layers; checked settings.

Each function turns the resolved :class:`~deltaprop.training.settings.TrainSettings` of a run
into the object the training loop uses, so that ``train``, ``evaluate`` and ``predict`` build
the same things from the same ``config.json``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from deltaprop.errors import InputError, TrainingError
from deltaprop.training.settings import (
    COMMON_DEFAULTS,
    TrainSettings,
    check_setting,
    data_kind,
    resolve_settings,
)

__all__ = [
    "Normalizer",
    "build_optimizer",
    "build_scheduler",
    "check_memory",
    "check_requested",
    "estimate_memory",
    "model_layers",
    "prepare_settings",
]


@dataclass
class Normalizer:
    """``(x - mean) / std`` with statistics of the training set.

    Images ``(N, C, H, W)`` get one mean and std per channel, tables ``(N, D)`` one per feature;
    a zero std is replaced by 1. Stored in ``config.json`` so that ``evaluate`` and ``predict``
    feed the model exactly what it was trained on.

    >>> import numpy as np
    >>> norm = Normalizer.fit(np.array([[0.0, 1.0], [2.0, 1.0]], np.float32))
    >>> norm.mean, norm.std
    ([1.0, 1.0], [1.0, 1.0])
    >>> norm(np.array([[2.0, 1.0]], np.float32)).tolist()
    [[1.0, 0.0]]
    """

    mean: list[float]
    std: list[float]

    @classmethod
    def fit(cls, X: np.ndarray) -> Normalizer:
        axes = (0, 2, 3) if X.ndim == 4 else (0,)
        mean = X.mean(axis=axes, dtype=np.float64)
        std = X.std(axis=axes, dtype=np.float64)
        std[std < 1e-12] = 1.0
        return cls(mean.tolist(), std.tolist())

    @classmethod
    def identity(cls) -> Normalizer:
        return cls([0.0], [1.0])

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """A new float32 array ``(X - mean) / std`` (``X`` is not modified)."""
        shape = (1, -1, 1, 1) if X.ndim == 4 else (1, -1)
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        if mean.size > 1:
            mean, std = mean.reshape(shape), std.reshape(shape)
        out = np.subtract(X, mean, dtype=np.float32)
        out /= std
        return out

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean, "std": self.std}


def build_optimizer(settings: TrainSettings, parameters: list) -> Any:
    """The optimizer named by ``settings.optimizer`` (PyTorch update rules)."""
    from deltaprop import optim

    name = settings.optimizer
    lr, wd = settings.lr, settings.weight_decay
    if name == "sgd":
        return optim.SGD(parameters, lr=lr, momentum=settings.momentum, weight_decay=wd)
    if name == "adam":
        return optim.Adam(parameters, lr=lr, weight_decay=wd)
    if name == "adamw":
        return optim.AdamW(parameters, lr=lr, weight_decay=wd)
    if name == "rmsprop":
        return optim.RMSprop(parameters, lr=lr, momentum=settings.momentum, weight_decay=wd)
    raise TrainingError(f"unknown optimizer {name!r}; choose sgd, adam, adamw or rmsprop")


def build_scheduler(settings: TrainSettings, optimizer: Any) -> Any:
    """The learning-rate scheduler (stepped once per epoch), or None for ``none``."""
    from deltaprop.optim import lr_scheduler

    name = settings.scheduler
    if name == "none":
        return None
    if name == "step":
        return lr_scheduler.StepLR(optimizer, step_size=settings.step_size, gamma=settings.gamma)
    if name == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs)
    if name == "exponential":
        return lr_scheduler.ExponentialLR(optimizer, gamma=settings.gamma)
    raise TrainingError(f"unknown scheduler {name!r}; choose none, step, cosine or exponential")


def model_layers(settings: TrainSettings, input_shape: tuple[int, ...], num_classes: int) -> tuple:
    """``(model name, resolved layers)`` for the (prepared) settings' preset or TOML file."""
    from deltaprop.models import PRESETS, load_model_file, preset_layers, resolve_layers

    if settings.model in PRESETS:
        name = settings.model
        dropout = settings.dropout
        layers = preset_layers(
            name,
            input_shape,
            num_classes,
            hidden=settings.hidden,
            activation=settings.activation,
            dropout=None if dropout is None else float(dropout),
        )
    else:
        name, layers = load_model_file(settings.model)
    resolved, _ = resolve_layers(layers, input_shape, num_classes)
    return name, resolved


def check_requested(settings: TrainSettings) -> None:
    """Reject options that the chosen model or optimizer would silently ignore."""
    model = settings.model or COMMON_DEFAULTS["model"]
    optimizer = settings.optimizer or COMMON_DEFAULTS["optimizer"]
    if settings.hidden is not None and model != "mlp":
        raise TrainingError(f"--hidden sets the mlp's layer sizes; it does not apply to {model}")
    for name in ("activation", "dropout"):
        if getattr(settings, name) is not None and model not in ("mlp", "lenet5"):
            raise TrainingError(f"--{name} applies to the mlp and lenet5 models, not to {model}")
    if settings.momentum is not None and optimizer not in ("sgd", "rmsprop"):
        raise TrainingError(
            f"--momentum applies to the sgd and rmsprop optimizers, not to {optimizer}"
        )
    scheduler = settings.scheduler or COMMON_DEFAULTS["scheduler"]
    if settings.step_size is not None and scheduler != "step":
        raise TrainingError(f"--step-size applies to the step scheduler, not to {scheduler}")
    if settings.gamma is not None and scheduler not in ("step", "exponential"):
        raise TrainingError(
            f"--gamma applies to the step and exponential schedulers, not to {scheduler}"
        )


def prepare_settings(settings: TrainSettings, splits: Any) -> TrainSettings:
    """Resolve defaults for this model and dataset, and check the values."""
    kind = data_kind(splits.name, tuple(splits.input_shape))
    resolved = resolve_settings(settings, kind)
    if resolved.model != "mlp":
        resolved.hidden = None
    if resolved.model not in ("mlp", "lenet5"):
        resolved.activation = None
        resolved.dropout = None
    if resolved.optimizer not in ("sgd", "rmsprop"):
        resolved.momentum = None  # not used: keep config.json honest
    if resolved.scheduler != "step":
        resolved.step_size = None
    if resolved.scheduler not in ("step", "exponential"):
        resolved.gamma = None
    for name, value in resolved.to_dict().items():
        check_setting(name, value, "--" + name.replace("_", "-"))
    return resolved


#: Arrays per parameter while training: the value, its gradient and the optimizer's state.
_STATE_PER_PARAMETER = {"sgd": 3, "adam": 4, "adamw": 4, "rmsprop": 4, None: 1}


def layer_parameters(layer: dict[str, Any]) -> int:
    """Number of values (parameters and buffers) of one resolved layer (see models).

    >>> layer_parameters({"type": "Linear", "in_features": 64, "out_features": 10})
    650
    """
    kind = layer["type"]
    bias = 0 if layer.get("bias", True) is False else 1
    if kind == "Linear":
        return int(layer["in_features"]) * int(layer["out_features"]) + bias * int(
            layer["out_features"]
        )
    if kind == "Conv2d":
        k = layer["kernel_size"]
        kh, kw = (k, k) if isinstance(k, int) else k
        out = int(layer["out_channels"])
        return out * int(layer["in_channels"]) * int(kh) * int(kw) + bias * out
    if kind in ("BatchNorm1d", "BatchNorm2d"):
        return 4 * int(layer["num_features"]) + 1
    if kind == "LayerNorm":
        return 2 * math.prod(int(n) for n in layer["normalized_shape"])
    return 0


def estimate_memory(
    layers: list[dict[str, Any]],
    input_shape: tuple[int, ...],
    batch_size: int,
    optimizer: str | None,
) -> tuple[int, int]:
    """``(bytes, parameters)``: about how much memory training (or, with ``optimizer=None``,
    evaluating) the resolved ``layers`` on batches of ``batch_size`` needs.

    Counts float32 parameters with their gradients and optimizer state, and per layer the
    batch's output and its gradient (a convolution also its unfolded input). Exact integers,
    so absurd sizes give absurd figures instead of overflowing.

    >>> layers = [{"type": "Linear", "in_features": 1000, "out_features": 1000}]
    >>> nbytes, n = estimate_memory(layers, (1000,), 32, "adam")
    >>> n, nbytes // 2**20
    (1001000, 15)
    """
    from deltaprop.models import resolve_layers

    parameters = sum(layer_parameters(layer) for layer in layers)
    total = 4 * parameters * _STATE_PER_PARAMETER.get(optimizer, 4)
    per_sample = math.prod(tuple(input_shape))
    resolve_layers(layers, input_shape, None)  # a layer that does not fit: ModelError naming it
    shape = tuple(int(s) for s in input_shape)
    for layer in layers:
        _, shape = resolve_layers([layer], shape, None)  # this layer's output shape
        if layer["type"] == "Conv2d":
            k = layer["kernel_size"]
            kh, kw = (k, k) if isinstance(k, int) else k
            per_sample += int(layer["in_channels"]) * kh * kw * math.prod(shape[1:])
        per_sample += 2 * math.prod(shape)
    return total + 4 * int(batch_size) * per_sample, parameters


def check_memory(
    layers: list[dict[str, Any]],
    input_shape: tuple[int, ...],
    batch_size: int,
    optimizer: str | None,
    error: type[InputError] = TrainingError,
) -> None:
    """Refuse (``error``, one sentence with both figures) a model and batch that would need
    more memory than the machine has available."""
    from deltaprop.userfiles import available_memory, describe_bytes

    need, parameters = estimate_memory(layers, input_shape, batch_size, optimizer)
    available = available_memory()
    if available is not None and need > available:
        doing = f"train with batches of {batch_size}" if optimizer else "evaluate"
        raise error(
            f"the model ({parameters:,} parameters) needs about {describe_bytes(need)} of memory "
            f"to {doing}, but this machine has {describe_bytes(available)} available; use "
            "smaller layers (--hidden, or the model file) or a smaller --batch-size"
        )
