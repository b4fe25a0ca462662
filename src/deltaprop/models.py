"""Model presets (``logreg``, ``mlp``, ``lenet5``) and models described in TOML files.

Every model here is an ``nn.Sequential`` built from a *layer list*: a list of dicts, one per
layer, each with a ``type`` (the ``deltaprop.nn`` class name, as in PyTorch) and that class's
keyword arguments. Presets produce such a list; a TOML file holds one; the training run saves
the *resolved* list (every size filled in) in its ``config.json``, so ``evaluate`` and
``predict`` rebuild exactly the trained model.

Sizes that follow from the data may be left out and are inferred by walking the sample shape
through the layers: ``in_features`` of ``Linear``, ``in_channels`` of ``Conv2d``,
``num_features`` of ``BatchNorm1d/2d``, ``normalized_shape`` of ``LayerNorm`` and the
``out_features`` of the *last* ``Linear`` (the number of classes). A layer that does not fit
the shape it receives raises :class:`ModelError` with one sentence naming the layer and shapes.

A model file (``examples/models/small_cnn.toml``)::

    name = "small-cnn"

    [[layers]]
    type = "Conv2d"
    out_channels = 16
    kernel_size = 3
    padding = 1

    [[layers]]
    type = "ReLU"

    [[layers]]
    type = "MaxPool2d"
    kernel_size = 2

    [[layers]]
    type = "Flatten"

    [[layers]]
    type = "Linear"        # out_features = number of classes (inferred: last Linear)

Example:

>>> from deltaprop.models import preset_layers, resolve_layers
>>> layers = preset_layers("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=(32,))
>>> [layer["type"] for layer in layers]
['Flatten', 'Linear', 'ReLU', 'Linear']
>>> resolved, out_shape = resolve_layers(layers, (1, 8, 8), 10)
>>> resolved[1]["in_features"], resolved[-1]["out_features"], out_shape
(64, 10, (10,))
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deltaprop.errors import ModelError
from deltaprop.ops.common import conv_output_size

__all__ = [
    "ACTIVATIONS",
    "PRESETS",
    "ModelError",
    "build_model",
    "build_sequential",
    "lenet5_layers",
    "load_model_file",
    "logreg_layers",
    "mlp_layers",
    "preset_layers",
    "resolve_layers",
]

#: The preset names ``--model`` accepts (anything else is read as a TOML file path).
PRESETS = ("logreg", "mlp", "lenet5")

#: ``--activation`` names and the layer type each one becomes.
ACTIVATIONS = {
    "relu": "ReLU",
    "tanh": "Tanh",
    "sigmoid": "Sigmoid",
    "gelu": "GELU",
    "leaky_relu": "LeakyReLU",
}

Shape = tuple[int, ...]
Layer = dict[str, Any]


# ----------------------------------------------------------------------------------------------
# Presets
# ----------------------------------------------------------------------------------------------


def logreg_layers(input_shape: Sequence[int], num_classes: int) -> list[Layer]:
    """Multinomial logistic regression: ``[Flatten,] Linear(D, num_classes)``.

    Logits ``z = W x + b`` with ``W`` of shape ``(num_classes, D)``; softmax and the
    cross-entropy loss are applied by the loss function.

    >>> [layer["type"] for layer in logreg_layers((2,), 2)]
    ['Linear']
    """
    layers: list[Layer] = [{"type": "Flatten"}] if len(input_shape) > 1 else []
    layers.append({"type": "Linear", "out_features": int(num_classes)})
    return layers


def mlp_layers(
    input_shape: Sequence[int],
    num_classes: int,
    hidden: Sequence[int] = (256, 128),
    activation: str = "relu",
    dropout: float = 0.0,
) -> list[Layer]:
    """A multi-layer perceptron: ``[Flatten,] (Linear, activation, [Dropout]) * k, Linear``.

    ``h_1 = act(W_1 x + b_1)``, ..., logits ``z = W_{k+1} h_k + b_{k+1}``. On 28x28 MNIST with
    the default hidden sizes this is the 784-256-128-10 network.

    Args:
        input_shape: one sample's shape (images are flattened first).
        num_classes: size of the output layer.
        hidden: the hidden layer sizes (may be empty: logistic regression).
        activation: one of :data:`ACTIVATIONS`.
        dropout: drop probability after each hidden activation (0: no Dropout layers).

    >>> [layer["type"] for layer in mlp_layers((2,), 2, hidden=(8,), dropout=0.1)]
    ['Linear', 'ReLU', 'Dropout', 'Linear']
    """
    act = _activation_type(activation)
    if not 0.0 <= dropout < 1.0:
        raise ModelError(f"mlp: dropout must lie in [0, 1), got {dropout}")
    layers: list[Layer] = [{"type": "Flatten"}] if len(input_shape) > 1 else []
    for size in hidden:
        if int(size) <= 0:
            raise ModelError(f"mlp: hidden sizes must be positive, got {list(hidden)}")
        layers.append({"type": "Linear", "out_features": int(size)})
        layers.append({"type": act})
        if dropout > 0:
            layers.append({"type": "Dropout", "p": float(dropout)})
    layers.append({"type": "Linear", "out_features": int(num_classes)})
    return layers


def lenet5_layers(
    input_shape: Sequence[int],
    num_classes: int,
    activation: str = "relu",
    dropout: float = 0.0,
) -> list[Layer]:
    """LeNet-5: conv-pool-conv-pool-fc-fc-fc (ReLU and max pooling, the modern variant).

    For images of at least 16x16 (MNIST's 28x28) it is the classic network::

        Conv2d(C, 6, 5, padding=2) ReLU MaxPool2d(2)     28x28 -> 14x14
        Conv2d(6, 16, 5)           ReLU MaxPool2d(2)     14x14 -> 10x10 -> 5x5
        Flatten Linear(400, 120) ReLU Linear(120, 84) ReLU Linear(84, num_classes)

    Smaller images (the 8x8 ``digits``) cannot take two 5x5 convolutions and two poolings, so
    both convolutions become 3x3 with padding 1 (8x8 -> 4x4 -> 2x2, 16*2*2 = 64 features into
    the same 120-84-classes head). ``dropout`` > 0 adds Dropout after the two hidden fc layers.

    >>> len(lenet5_layers((1, 28, 28), 10))
    12
    """
    if len(input_shape) != 3:
        raise ModelError(
            f"lenet5 needs image samples of shape (channels, height, width), but the data's "
            f"samples have shape {tuple(input_shape)}; use --model mlp or logreg for tables"
        )
    act = _activation_type(activation)
    channels, height, width = (int(s) for s in input_shape)
    if min(height, width) >= 16:
        k1, p1, k2, p2 = 5, 2, 5, 0
    elif min(height, width) >= 4:
        k1, p1, k2, p2 = 3, 1, 3, 1
    else:
        raise ModelError(
            f"lenet5 needs images of at least 4x4 pixels, but the data's images are "
            f"{height}x{width}"
        )
    drop = [{"type": "Dropout", "p": float(dropout)}] if dropout > 0 else []
    return [
        {"type": "Conv2d", "in_channels": channels, "out_channels": 6, "kernel_size": k1,
         "padding": p1},
        {"type": act},
        {"type": "MaxPool2d", "kernel_size": 2},
        {"type": "Conv2d", "out_channels": 16, "kernel_size": k2, "padding": p2},
        {"type": act},
        {"type": "MaxPool2d", "kernel_size": 2},
        {"type": "Flatten"},
        {"type": "Linear", "out_features": 120},
        {"type": act},
        *drop,
        {"type": "Linear", "out_features": 84},
        {"type": act},
        *copy.deepcopy(drop),
        {"type": "Linear", "out_features": int(num_classes)},
    ]  # fmt: skip


def preset_layers(
    name: str,
    input_shape: Sequence[int],
    num_classes: int,
    *,
    hidden: Sequence[int] | None = None,
    activation: str | None = None,
    dropout: float | None = None,
) -> list[Layer]:
    """The layer list of preset ``name`` (one of :data:`PRESETS`) for the given data.

    ``hidden`` only applies to ``mlp``; ``activation`` and ``dropout`` to ``mlp`` and
    ``lenet5``. An option left as None takes the preset's own default.

    >>> [layer["type"] for layer in preset_layers("logreg", (1, 8, 8), 10)]
    ['Flatten', 'Linear']
    """
    given = {"hidden": hidden, "activation": activation, "dropout": dropout}
    given = {key: value for key, value in given.items() if value is not None}
    if name == "logreg":
        return logreg_layers(input_shape, num_classes)
    if name == "mlp":
        return mlp_layers(input_shape, num_classes, **given)
    if name == "lenet5":
        given.pop("hidden", None)  # no hidden sizes: LeNet-5's layers are fixed
        return lenet5_layers(input_shape, num_classes, **given)
    raise ModelError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}")


def _activation_type(name: str) -> str:
    key = name.strip().lower().replace("-", "_")
    if key not in ACTIVATIONS:
        raise ModelError(
            f"unknown activation {name!r}; choose one of {', '.join(sorted(ACTIVATIONS))}"
        )
    return ACTIVATIONS[key]


# ----------------------------------------------------------------------------------------------
# TOML model files
# ----------------------------------------------------------------------------------------------


def load_model_file(path: str | os.PathLike[str]) -> tuple[str, list[Layer]]:
    """Read a TOML model file: ``(name, layers)``.

    The file has an optional top-level ``name`` and an array of tables ``[[layers]]``, each
    with a ``type`` and that layer's keyword arguments (see the module docstring).

    Raises:
        ModelError: the file is missing, is not valid TOML, or has no ``[[layers]]`` list of
            tables with a ``type`` each.
    """
    from deltaprop.userfiles import read_toml

    file = Path(path)
    document = read_toml(file, "model file", ModelError)
    layers = document.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ModelError(
            f"model file {str(file)!r} needs a non-empty list of layers ([[layers]] tables)"
        )
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict) or not isinstance(layer.get("type"), str):
            raise ModelError(f"model file {str(file)!r}: layer {i} needs a 'type' string")
    name = document.get("name", file.stem)
    if not isinstance(name, str) or not name.strip():
        raise ModelError(f"model file {str(file)!r}: name must be a non-empty string, got {name!r}")
    return name, [dict(layer) for layer in layers]


# ----------------------------------------------------------------------------------------------
# Shape inference
# ----------------------------------------------------------------------------------------------

#: Canonical layer type names (the ``deltaprop.nn`` classes), keyed by lower-case spelling.
_TYPES = {
    t.lower(): t
    for t in (
        "Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "Flatten", "Dropout", "BatchNorm1d",
        "BatchNorm2d", "LayerNorm", "ReLU", "LeakyReLU", "Tanh", "Sigmoid", "GELU", "Softmax",
    )
}  # fmt: skip

#: The keyword arguments each layer type accepts here (a subset of PyTorch's).
_ARGS = {
    "Linear": {"in_features", "out_features", "bias"},
    "Conv2d": {"in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
               "bias"},
    "MaxPool2d": {"kernel_size", "stride", "padding"},
    "AvgPool2d": {"kernel_size", "stride", "padding"},
    "Flatten": set(),
    "Dropout": {"p"},
    "BatchNorm1d": {"num_features", "eps", "momentum"},
    "BatchNorm2d": {"num_features", "eps", "momentum"},
    "LayerNorm": {"normalized_shape", "eps"},
    "ReLU": set(),
    "LeakyReLU": {"negative_slope"},
    "Tanh": set(),
    "Sigmoid": set(),
    "GELU": {"approximate"},
    "Softmax": {"dim"},
}  # fmt: skip


def resolve_layers(
    layers: Sequence[Layer], input_shape: Sequence[int], num_classes: int | None = None
) -> tuple[list[Layer], Shape]:
    """Fill in the inferred sizes and check every layer against the shape it receives.

    Walks one sample's shape (no batch axis) through the layers. Returns the resolved layer
    list (new dicts; the input is not modified) and the output shape, which must be
    ``(num_classes,)``; with ``num_classes=None`` every size is given and any output shape is
    accepted (the layers of an ``explain`` spec).

    Raises:
        ModelError: an unknown layer type or argument, a missing required argument, or a layer
            that does not fit its input shape; the sentence names the layer and the shapes.

    >>> layers = [{"type": "Conv2d", "out_channels": 4, "kernel_size": 3}, {"type": "Flatten"},
    ...           {"type": "Linear"}]
    >>> resolved, shape = resolve_layers(layers, (1, 8, 8), 10)
    >>> resolved[0]["in_channels"], resolved[2]["in_features"], shape
    (1, 144, (10,))
    """
    shape: Shape = tuple(int(s) for s in input_shape)
    last_linear = max(
        (i for i, layer in enumerate(layers) if str(layer.get("type", "")).lower() == "linear"),
        default=-1,
    )
    resolved: list[Layer] = []
    for i, raw in enumerate(layers):
        layer = _canonical(raw, i)
        where = f"layer {i} ({layer['type']})"
        shape = _infer(layer, shape, where, num_classes if i == last_linear else None)
        resolved.append(layer)
    if num_classes is not None and shape != (int(num_classes),):
        raise ModelError(
            f"the model's output has shape {shape} per sample, but the data has {num_classes} "
            f"classes: the last layer must output {num_classes} values (end with a Linear layer)"
        )
    return resolved, shape


#: Scalar arguments: (kind of value, smallest allowed, largest allowed or None).
_SCALARS = {
    "eps": ("number", 0.0, None),
    "momentum": ("number", 0.0, 1.0),
    "negative_slope": ("number", None, None),
    "bias": ("bool", None, None),
    "ceil_mode": ("bool", None, None),
}


def _check_scalars(layer: Layer, where: str) -> None:
    """Types and finite ranges of the scalar arguments (numbers, flags, GELU's approximate)."""
    for name, (kind, low, high) in _SCALARS.items():
        if name not in layer:
            continue
        value = layer[name]
        if kind == "bool":
            if not isinstance(value, bool):
                raise ModelError(f"{where}: {name} must be true or false, got {value!r}")
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or (low is not None and value < low)
            or (high is not None and value > high)
        ):
            bounds = f" in [{low}, {high}]" if high is not None else ""
            bounds = bounds or (f" >= {low}" if low is not None else "")
            raise ModelError(f"{where}: {name} must be a finite number{bounds}, got {value!r}")
    for name in ("in_features", "out_features", "in_channels", "out_channels", "num_features"):
        if name in layer:
            _positive(layer, name, where)
    if "approximate" in layer and layer["approximate"] not in ("none", "tanh"):
        raise ModelError(
            f"{where}: approximate must be 'none' or 'tanh', got {layer['approximate']!r}"
        )


def _canonical(raw: Layer, i: int) -> Layer:
    if not isinstance(raw, dict) or "type" not in raw:
        raise ModelError(f"layer {i} must be a table with a 'type', got {raw!r}")
    key = str(raw["type"]).lower()
    if key not in _TYPES:
        raise ModelError(
            f"layer {i} has unknown type {raw['type']!r}; known types: "
            f"{', '.join(sorted(_TYPES.values()))}"
        )
    kind = _TYPES[key]
    layer = {"type": kind, **{k: v for k, v in raw.items() if k != "type"}}
    unknown = sorted(set(layer) - {"type"} - _ARGS[kind])
    if unknown:
        raise ModelError(
            f"layer {i} ({kind}) got unknown argument(s) {', '.join(unknown)}; it accepts "
            f"{', '.join(sorted(_ARGS[kind])) or 'no arguments'}"
        )
    _check_scalars(layer, f"layer {i} ({kind})")
    return layer


def _pair(value: Any, name: str, where: str, minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints, each at least ``minimum`` (0 for padding, else 1)."""
    pair = None
    if isinstance(value, int) and not isinstance(value, bool):
        pair = (value, value)
    elif (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        pair = (int(value[0]), int(value[1]))
    sign = "non-negative" if minimum == 0 else "positive"
    if pair is None or min(pair) < minimum:
        raise ModelError(f"{where}: {name} must be a {sign} int or a pair of them, got {value!r}")
    return pair


def _positive(layer: Layer, name: str, where: str) -> int:
    value = layer.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ModelError(f"{where}: {name} must be a positive int, got {value!r}")
    return value


def _infer(layer: Layer, shape: Shape, where: str, classes: int | None) -> Shape:
    """Fill ``layer``'s inferred arguments in place and return its output shape."""
    kind = layer["type"]
    if kind == "Linear":
        if len(shape) != 1:
            raise ModelError(
                f"{where} receives samples of shape {shape}, but Linear needs flat feature "
                f"vectors: add a Flatten layer before it"
            )
        layer.setdefault("in_features", shape[0])
        if layer["in_features"] != shape[0]:
            raise ModelError(
                f"{where} expects {layer['in_features']} input features but receives {shape[0]}"
            )
        if "out_features" not in layer and classes is not None:
            layer["out_features"] = classes
        return (_positive(layer, "out_features", where),)
    if kind == "Conv2d":
        if len(shape) != 3:
            raise ModelError(
                f"{where} needs image samples (channels, height, width), but receives shape {shape}"
            )
        layer.setdefault("in_channels", shape[0])
        if layer["in_channels"] != shape[0]:
            raise ModelError(
                f"{where} expects {layer['in_channels']} input channels but receives "
                f"{shape[0]} (sample shape {shape})"
            )
        out_channels = _positive(layer, "out_channels", where)
        if "kernel_size" not in layer:
            raise ModelError(f"{where} needs a kernel_size")
        kh, kw = _pair(layer["kernel_size"], "kernel_size", where)
        sh, sw = _pair(layer.get("stride", 1), "stride", where)
        ph, pw = _pair(layer.get("padding", 0), "padding", where, minimum=0)
        dh, dw = _pair(layer.get("dilation", 1), "dilation", where)
        height = conv_output_size(shape[1], kh, sh, ph, dh)
        width = conv_output_size(shape[2], kw, sw, pw, dw)
        if height < 1 or width < 1:
            raise ModelError(
                f"{where}: a {kh}x{kw} kernel does not fit the {shape[1]}x{shape[2]} input "
                f"(padding {ph}x{pw}); use a smaller kernel, more padding or fewer poolings"
            )
        return (out_channels, height, width)
    if kind in ("MaxPool2d", "AvgPool2d"):
        if len(shape) != 3:
            raise ModelError(
                f"{where} needs image samples (channels, height, width), but receives shape {shape}"
            )
        if "kernel_size" not in layer:
            raise ModelError(f"{where} needs a kernel_size")
        kh, kw = _pair(layer["kernel_size"], "kernel_size", where)
        stride = layer.get("stride")
        sh, sw = (kh, kw) if stride is None else _pair(stride, "stride", where)
        ph, pw = _pair(layer.get("padding", 0), "padding", where, minimum=0)
        dh, dw = _pair(layer.get("dilation", 1), "dilation", where)
        if 2 * ph > kh or 2 * pw > kw:
            raise ModelError(
                f"{where}: padding {ph}x{pw} must be at most half the {kh}x{kw} window"
            )
        ceil_mode = bool(layer.get("ceil_mode", False))
        height = conv_output_size(shape[1], kh, sh, ph, dh, ceil_mode)
        width = conv_output_size(shape[2], kw, sw, pw, dw, ceil_mode)
        if height < 1 or width < 1:
            raise ModelError(
                f"{where}: a {kh}x{kw} window does not fit the {shape[1]}x{shape[2]} input"
            )
        return (shape[0], height, width)
    if kind == "Flatten":
        return (math.prod(shape),)
    if kind == "BatchNorm1d":
        if len(shape) not in (1, 2):
            raise ModelError(
                f"{where} needs (features,) or (channels, length) samples, got {shape}"
            )
        layer.setdefault("num_features", shape[0])
        if layer["num_features"] != shape[0]:
            raise ModelError(f"{where} expects {layer['num_features']} features, got {shape[0]}")
        return shape
    if kind == "BatchNorm2d":
        if len(shape) != 3:
            raise ModelError(f"{where} needs image samples (channels, height, width), got {shape}")
        layer.setdefault("num_features", shape[0])
        if layer["num_features"] != shape[0]:
            raise ModelError(f"{where} expects {layer['num_features']} channels, got {shape[0]}")
        return shape
    if kind == "LayerNorm":
        normalized = layer.setdefault("normalized_shape", [shape[-1]])
        normalized = [normalized] if isinstance(normalized, int) else normalized
        if not isinstance(normalized, list) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in normalized
        ):
            raise ModelError(
                f"{where}: normalized_shape must be a positive int or a list of them, got "
                f"{layer['normalized_shape']!r}"
            )
        layer["normalized_shape"] = normalized
        if tuple(shape[len(shape) - len(normalized) :]) != tuple(normalized):
            raise ModelError(
                f"{where} normalizes over shape {tuple(normalized)}, but receives samples of "
                f"shape {shape}"
            )
        return shape
    if kind == "Dropout":
        p = layer.get("p", 0.5)
        if not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise ModelError(f"{where}: p must lie in [0, 1), got {p!r}")
        return shape
    if kind == "Softmax" and layer.get("dim") is not None:
        dim, ndim = layer["dim"], len(shape) + 1  # the batch axis comes first
        if isinstance(dim, bool) or not isinstance(dim, int) or not -ndim <= dim < ndim:
            raise ModelError(
                f"{where}: dim must be an int in [{-ndim}, {ndim - 1}] for samples of shape "
                f"{shape} (dim 0 is the batch), got {dim!r}"
            )
    return shape  # activations keep the shape


# ----------------------------------------------------------------------------------------------
# Building
# ----------------------------------------------------------------------------------------------


def build_sequential(layers: Sequence[Layer]) -> Any:
    """``nn.Sequential`` of resolved layers (see :func:`resolve_layers`).

    Each dict becomes ``getattr(deltaprop.nn, type)(**arguments)``; the parameters are drawn
    from deltaprop's global generator (seed it with ``deltaprop.manual_seed`` first).
    """
    from deltaprop import nn

    modules = []
    for i, layer in enumerate(layers):
        kind = layer["type"]
        cls = getattr(nn, kind, None)
        if cls is None:
            raise ModelError(f"layer {i}: deltaprop.nn has no {kind} layer")
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in layer.items()}
        del kwargs["type"]
        modules.append(cls(**kwargs))
    return nn.Sequential(*modules)


def build_model(
    layers: Sequence[Layer], input_shape: Sequence[int], num_classes: int
) -> tuple[Any, list[Layer]]:
    """Resolve ``layers`` for the data's shape and build them: ``(model, resolved_layers)``.

    >>> import deltaprop as dp
    >>> _ = dp.manual_seed(0)
    >>> model, resolved = build_model(mlp_layers((4,), 3, hidden=(5,)), (4,), 3)
    >>> tuple(model(dp.zeros(2, 4)).shape), resolved[0]["in_features"]
    ((2, 3), 4)
    """
    resolved, _ = resolve_layers(layers, input_shape, num_classes)
    return build_sequential(resolved), resolved


def describe_layers(layers: Sequence[Layer]) -> str:
    """One line per layer, PyTorch-style: ``Linear(in_features=64, out_features=10)``.

    >>> describe_layers([{"type": "ReLU"}, {"type": "Linear", "in_features": 2, "out_features": 1}])
    'ReLU()\\nLinear(in_features=2, out_features=1)'
    """
    lines = []
    for layer in layers:
        args = ", ".join(f"{k}={v}" for k, v in layer.items() if k != "type")
        lines.append(f"{layer['type']}({args})")
    return "\n".join(lines)
