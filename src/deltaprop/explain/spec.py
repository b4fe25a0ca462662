"""Spec files for ``deltaprop explain``: the TOML schema, parsed and checked.

A spec describes one small network (or one circuit) and the data of the steps to explain. The
schema of issue 5 is kept as it is and only extended::

    title = "2-2-2 sigmoid network"
    loss = "mse_half"        # mse_half, mse, bce, ce
    lr = 0.5
    steps = 1
    train_biases = true
    [[layers]]               # one table per layer, input side first
    weights = [[0.15, 0.20], [0.25, 0.30]]   # rows = neurons, columns = inputs (as nn.Linear)
    biases = [0.35, 0.35]
    activation = "sigmoid"   # sigmoid, tanh, relu, linear, softmax
    [[layers]]
    weights = [[0.40, 0.45], [0.50, 0.55]]
    biases = [0.60, 0.60]
    activation = "sigmoid"
    [data]
    inputs = [[0.05, 0.10]]  # one row per sample
    targets = [[0.01, 0.99]]

Extensions (all optional):

* ``sizes = [2, 2, 2]`` with ``seed = 0`` (and ``activation = "sigmoid"`` or
  ``activations = [...]``, default sigmoid) instead of ``[[layers]]``: weights and biases drawn
  uniformly from ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]`` (nn.Linear's default range) with
  ``numpy.random.default_rng(seed)``.
* ``reduction = "sum" | "mean"``: how the per-sample losses combine. Defaults: ``sum`` for
  ``mse_half`` (``E = sum_s sum_k 1/2 (t - o)^2``; ``mean`` divides by the number of samples m,
  the ``1/(2m)`` cost of the vectorised notes), ``mean`` for the others as in PyTorch (``mse`` and
  ``bce`` average over all m*k elements, ``ce`` over the m samples).
* ``batch_size = 1`` for online learning (one sample per update, cycling through the data);
  default: all samples in one mini-batch per step.
* ``dtype = "float32"``: the default is ``float64``, so the printed numbers match hand
  derivations to every digit.
* ``type = "conv2d"`` layers (``weights`` a kh x kw kernel or a (K, C, kh, kw) array, ``biases``,
  ``stride``, ``padding``, ``activation``) and ``type = "maxpool2d"`` layers (``kernel_size``,
  ``stride``, ``padding``); the input of a conv spec is one H x W image, a list of them, or an
  (N, C, H, W) array. A ``linear`` layer after them sees the flattened feature map.
* ``[circuit]`` with ``expression = "q = x + y; f = q * z"`` and ``values = {x = -2, ...}``:
  a computational graph of scalar gates instead of a network (see :mod:`.circuit`).

Every problem raises :class:`SpecError` naming the key and what was expected.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

LOSSES = ("mse_half", "mse", "bce", "ce")
ACTIVATIONS = ("sigmoid", "tanh", "relu", "linear", "softmax")
LAYER_TYPES = ("linear", "conv2d", "maxpool2d")
REDUCTIONS = ("sum", "mean")
DTYPES = ("float64", "float32")

_TOP_KEYS = {
    "title",
    "loss",
    "lr",
    "steps",
    "train_biases",
    "layers",
    "data",
    "sizes",
    "seed",
    "activation",
    "activations",
    "reduction",
    "batch_size",
    "dtype",
    "circuit",
    "description",
}
_LAYER_KEYS = {
    "linear": {"type", "weights", "biases", "activation", "name"},
    "conv2d": {"type", "weights", "biases", "activation", "stride", "padding", "name"},
    "maxpool2d": {"type", "kernel_size", "stride", "padding", "name"},
}


class SpecError(ValueError):
    """A malformed spec: the message names the key and what was expected."""


# ----------------------------------------------------------------------------------------------
# parsed specs
# ----------------------------------------------------------------------------------------------


@dataclass
class LinearSpec:
    """A fully connected layer: ``net = o_prev @ weights.T + biases``, ``o = f(net)``."""

    weights: np.ndarray  # (neurons, inputs)
    biases: np.ndarray  # (neurons,)
    activation: str
    type: str = "linear"


@dataclass
class Conv2dSpec:
    """A convolution layer: ``net = conv2d(o_prev, weights) + biases``, ``o = f(net)``."""

    weights: np.ndarray  # (K, C, kh, kw)
    biases: np.ndarray  # (K,)
    activation: str
    stride: int = 1
    padding: int = 0
    kernel_as_matrix: bool = False  # given as one kh x kw matrix: report it that way
    type: str = "conv2d"


@dataclass
class MaxPool2dSpec:
    """A max-pooling layer (no parameters): ``out = max over each window``."""

    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: int = 0
    activation: str = "linear"
    type: str = "maxpool2d"


LayerSpec = LinearSpec | Conv2dSpec | MaxPool2dSpec


@dataclass
class NetworkSpec:
    """A network spec: layers, data and the training settings of the steps to explain."""

    title: str
    loss: str
    lr: float
    layers: list[LayerSpec]
    inputs: np.ndarray  # (m, n) or (m, C, H, W)
    targets: np.ndarray  # (m, k) or the output shape per sample; one-hot for ce
    steps: int = 1
    train_biases: bool = True
    reduction: str = "sum"
    batch_size: int | None = None
    dtype: str = "float64"
    description: str = ""
    target_indices: bool = False  # ce targets given as class indices
    kind: str = "network"


@dataclass
class CircuitSpec:
    """A circuit spec: statements of scalar gates and the values of the variables."""

    title: str
    expression: str
    values: dict[str, float] = field(default_factory=dict)
    description: str = ""
    dtype: str = "float64"
    kind: str = "circuit"


# ----------------------------------------------------------------------------------------------
# loading
# ----------------------------------------------------------------------------------------------


def load_spec(path: str | Path) -> NetworkSpec | CircuitSpec:
    """Read and check a spec file.

    ``load_spec("examples/explain/mattmazur-2-2-2.toml")`` gives a :class:`NetworkSpec` with
    ``loss == "mse_half"`` and ``lr == 0.5``; a malformed file raises :class:`SpecError`.
    """
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"{p}: no such spec file")
    try:
        with p.open("rb") as f:
            raw = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{p}: not valid TOML ({e})") from None
    return parse_spec(raw, source=str(p), default_title=p.stem)


def parse_spec(
    raw: dict[str, Any], source: str = "spec", default_title: str = "deltaprop explain"
) -> NetworkSpec | CircuitSpec:
    """Check a spec given as a dict (the parsed TOML) and return the typed spec."""
    where = _Where(source)
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: expected a table of keys, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise where.err(unknown[0], f"unknown key; expected one of {', '.join(sorted(_TOP_KEYS))}")
    title = _string(raw.get("title", default_title), "title", where)
    description = _string(raw.get("description", ""), "description", where)
    dtype = _choice(raw.get("dtype", "float64"), "dtype", DTYPES, where)
    if "circuit" in raw:
        return _parse_circuit(raw, title, description, dtype, where)

    if "loss" not in raw:
        raise where.err("loss", f"missing key; expected one of {', '.join(LOSSES)}")
    loss = _choice(raw["loss"], "loss", LOSSES, where)
    if "lr" not in raw:
        raise where.err("lr", "missing key; expected the learning rate, a number such as 0.5")
    lr = _number(raw["lr"], "lr", where)
    steps = _int(raw.get("steps", 1), "steps", where, minimum=1)
    train_biases = _bool(raw.get("train_biases", True), "train_biases", where)
    reduction = _choice(
        raw.get("reduction", "sum" if loss == "mse_half" else "mean"),
        "reduction",
        REDUCTIONS,
        where,
    )
    batch_size = raw.get("batch_size")
    if batch_size is not None:
        batch_size = _int(batch_size, "batch_size", where, minimum=1)

    if "data" not in raw:
        raise where.err("data", "missing table [data]; expected inputs = [...] and targets = [...]")
    data = raw["data"]
    if not isinstance(data, dict):
        raise where.err("data", "expected a table with inputs and targets")
    for key in data:
        if key not in ("inputs", "targets"):
            raise where.err(f"data.{key}", "unknown key; expected inputs and targets")
    for key in ("inputs", "targets"):
        if key not in data:
            raise where.err(f"data.{key}", "missing key; expected one row per sample")

    if "layers" in raw and "sizes" in raw:
        raise where.err("sizes", "give either [[layers]] or sizes (with seed), not both")
    if "layers" in raw:
        for key in ("activation", "activations", "seed"):
            if key in raw:
                raise where.err(key, "only used with sizes = [...]; put activations in [[layers]]")
        layer_tables = raw["layers"]
        if not isinstance(layer_tables, list) or not layer_tables:
            raise where.err("layers", "expected one or more [[layers]] tables")
        first_type = (
            layer_tables[0].get("type", "linear") if isinstance(layer_tables[0], dict) else None
        )
        inputs = _parse_inputs(data["inputs"], first_type, where)
        layers, out_shape = _parse_layers(layer_tables, inputs.shape[1:], where)
    elif "sizes" in raw:
        sizes = raw["sizes"]
        if (
            not isinstance(sizes, list)
            or len(sizes) < 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes)
        ):
            raise where.err(
                "sizes", "expected a list of at least 2 positive integers, e.g. [2, 2, 2]"
            )
        if "seed" not in raw:
            raise where.err(
                "seed", "missing key; sizes = [...] needs seed = <int> to draw the weights"
            )
        seed = _int(raw["seed"], "seed", where, minimum=0)
        acts = _sizes_activations(raw, len(sizes) - 1, where)
        inputs = _parse_inputs(data["inputs"], "linear", where)
        if inputs.shape[1] != sizes[0]:
            raise where.err(
                "data.inputs",
                f"expected {sizes[0]} values per sample (sizes[0] = {sizes[0]}), "
                f"got {inputs.shape[1]}",
            )
        rng = np.random.default_rng(seed)
        layers = []
        for fan_in, fan_out, act in zip(sizes[:-1], sizes[1:], acts):
            bound = 1.0 / math.sqrt(fan_in)
            w = rng.uniform(-bound, bound, size=(fan_out, fan_in))
            b = rng.uniform(-bound, bound, size=(fan_out,))
            layers.append(LinearSpec(w, b, act))
        out_shape = (sizes[-1],)
    else:
        raise where.err("layers", "missing [[layers]] tables (or sizes = [...] with seed)")

    m = inputs.shape[0]
    if batch_size is not None and batch_size > m:
        raise where.err(
            "batch_size", f"expected at most the number of samples ({m}), got {batch_size}"
        )
    last_act = layers[-1].activation
    if loss == "ce" and last_act != "softmax":
        raise where.err(
            "loss",
            "'ce' is softmax + cross entropy: expected activation = \"softmax\" on the last "
            f"layer, "
            f"got {last_act!r}",
        )
    if loss == "bce" and last_act != "sigmoid":
        raise where.err(
            "loss",
            f"'bce' needs outputs in (0, 1): expected activation = \"sigmoid\" on the last layer, "
            f"got {last_act!r}",
        )
    targets, as_indices = _parse_targets(data["targets"], m, out_shape, loss, where)
    return NetworkSpec(
        title=title,
        loss=loss,
        lr=lr,
        layers=layers,
        inputs=inputs,
        targets=targets,
        steps=steps,
        train_biases=train_biases,
        reduction=reduction,
        batch_size=batch_size,
        dtype=dtype,
        description=description,
        target_indices=as_indices,
    )


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


class _Where:
    """Builds error messages of the form ``SOURCE: KEY: what was expected``."""

    def __init__(self, source: str) -> None:
        self.source = source

    def err(self, key: str, msg: str) -> SpecError:
        return SpecError(f"{self.source}: {key}: {msg}")


def _string(v: Any, key: str, where: _Where) -> str:
    if not isinstance(v, str):
        raise where.err(key, f"expected a string, got {v!r}")
    return v


def _number(v: Any, key: str, where: _Where) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise where.err(key, f"expected a finite number, got {v!r}")
    return float(v)


def _int(v: Any, key: str, where: _Where, minimum: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise where.err(key, f"expected an integer >= {minimum}, got {v!r}")
    return v


def _bool(v: Any, key: str, where: _Where) -> bool:
    if not isinstance(v, bool):
        raise where.err(key, f"expected true or false, got {v!r}")
    return v


def _choice(v: Any, key: str, choices: tuple[str, ...], where: _Where) -> str:
    if v not in choices:
        raise where.err(key, f"unknown value {v!r}; expected one of {', '.join(choices)}")
    return v


def _array(v: Any, key: str, where: _Where, ndims: tuple[int, ...], what: str) -> np.ndarray:
    """A rectangular float64 array of one of the allowed ranks, or a SpecError."""

    def check(x: Any, depth: int) -> None:
        if isinstance(x, list):
            if not x:
                raise where.err(key, f"expected {what}, found an empty list")
            lens = {len(e) if isinstance(e, list) else -1 for e in x}
            if len(lens) > 1:
                if -1 in lens:
                    raise where.err(key, f"expected {what}; it mixes numbers and lists")
                raise where.err(key, f"expected {what}; rows have different lengths {sorted(lens)}")
            for e in x:
                check(e, depth + 1)
        elif isinstance(x, bool) or not isinstance(x, (int, float)):
            raise where.err(key, f"expected {what} of numbers, found {x!r}")
        elif not math.isfinite(x):
            raise where.err(key, f"expected finite numbers, found {x!r}")

    if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 in ndims:
        return np.asarray(float(v))
    if not isinstance(v, list):
        raise where.err(key, f"expected {what}, got {v!r}")
    check(v, 0)
    arr = np.asarray(v, dtype=np.float64)
    if arr.ndim not in ndims:
        raise where.err(key, f"expected {what}, got an array with {arr.ndim} dimension(s)")
    return arr


def _shape_str(shape: tuple[int, ...]) -> str:
    return " x ".join(str(s) for s in shape)


def _sizes_activations(raw: dict[str, Any], n_layers: int, where: _Where) -> list[str]:
    if "activations" in raw and "activation" in raw:
        raise where.err("activations", "give either activation or activations, not both")
    if "activations" in raw:
        acts = raw["activations"]
        if not isinstance(acts, list) or len(acts) != n_layers:
            raise where.err(
                "activations", f"expected a list of {n_layers} activations (one per layer)"
            )
        return [_choice(a, f"activations[{i}]", ACTIVATIONS, where) for i, a in enumerate(acts)]
    act = _choice(raw.get("activation", "sigmoid"), "activation", ACTIVATIONS, where)
    return [act] * n_layers


def _parse_inputs(v: Any, first_type: str | None, where: _Where) -> np.ndarray:
    if first_type in ("conv2d", "maxpool2d"):
        arr = _array(
            v, "data.inputs", where, (2, 3, 4), "an H x W image, a list of them or N x C x H x W"
        )
        if arr.ndim == 2:
            arr = arr[None, None]
        elif arr.ndim == 3:
            arr = arr[:, None]
        return arr
    arr = _array(v, "data.inputs", where, (1, 2), "a matrix with one row per sample")
    return arr[None] if arr.ndim == 1 else arr


def _parse_layers(
    tables: list[Any], in_shape: tuple[int, ...], where: _Where
) -> tuple[list[LayerSpec], tuple[int, ...]]:
    """Check each layer against the shape it receives; return the layers and the output shape."""
    layers: list[LayerSpec] = []
    shape = in_shape  # per-sample shape: (n,) or (C, H, W)
    for i, t in enumerate(tables):
        key = f"layers[{i}]"
        if not isinstance(t, dict):
            raise where.err(key, "expected a table ([[layers]])")
        kind = _choice(t.get("type", "linear"), f"{key}.type", LAYER_TYPES, where)
        unknown = sorted(set(t) - _LAYER_KEYS[kind])
        if unknown:
            raise where.err(
                f"{key}.{unknown[0]}",
                f"unknown key for a {kind} layer; expected {', '.join(sorted(_LAYER_KEYS[kind]))}",
            )
        prev = "the inputs" if i == 0 else f"layers[{i - 1}]"
        if kind == "linear":
            n_in = int(np.prod(shape))
            for req in ("weights", "biases"):
                if req not in t:
                    raise where.err(f"{key}.{req}", _missing_param(req, kind))
            w = _array(
                t["weights"],
                f"{key}.weights",
                where,
                (2,),
                "a matrix (rows = neurons, columns = inputs)",
            )
            if w.shape[1] != n_in:
                raise where.err(
                    f"{key}.weights",
                    f"expected {n_in} columns (one per output of {prev}), got a "
                    f"{_shape_str(w.shape)} matrix",
                )
            b = _vector(
                t["biases"], f"{key}.biases", w.shape[0], "one per neuron = row of weights", where
            )
            act = _choice(t.get("activation", "linear"), f"{key}.activation", ACTIVATIONS, where)
            layers.append(LinearSpec(w, b, act))
            shape = (w.shape[0],)
        elif kind == "conv2d":
            if len(shape) != 3:
                raise where.err(
                    key, f"a conv2d layer needs an image input (C x H x W); {prev} gives {shape}"
                )
            for req in ("weights",):
                if req not in t:
                    raise where.err(f"{key}.{req}", _missing_param(req, kind))
            w = _array(
                t["weights"],
                f"{key}.weights",
                where,
                (2, 4),
                "a kh x kw kernel or a K x C x kh x kw array",
            )
            as_matrix = w.ndim == 2
            if as_matrix:
                if shape[0] != 1:
                    raise where.err(
                        f"{key}.weights",
                        f"a kh x kw kernel needs 1 input channel, {prev} has {shape[0]}; "
                        "give a K x C x kh x kw array",
                    )
                w = w[None, None]
            if w.shape[1] != shape[0]:
                raise where.err(
                    f"{key}.weights",
                    f"expected {shape[0]} input channels (dim 2 of K x C x kh x kw), "
                    f"got {w.shape[1]}",
                )
            b = _vector(
                t.get("biases", [0.0] * w.shape[0]),
                f"{key}.biases",
                w.shape[0],
                "one per output channel",
                where,
            )
            stride = _int(t.get("stride", 1), f"{key}.stride", where, minimum=1)
            padding = _int(t.get("padding", 0), f"{key}.padding", where, minimum=0)
            act = _choice(t.get("activation", "linear"), f"{key}.activation", ACTIVATIONS, where)
            if act == "softmax":
                raise where.err(
                    f"{key}.activation",
                    "softmax is for linear layers; expected sigmoid, tanh, relu or linear",
                )
            h, wd = _conv_out(shape[1:], w.shape[2:], (stride, stride), padding, key, where)
            layers.append(Conv2dSpec(w, b, act, stride, padding, as_matrix))
            shape = (w.shape[0], h, wd)
        else:  # maxpool2d
            if len(shape) != 3:
                raise where.err(
                    key, f"a maxpool2d layer needs an image input (C x H x W); {prev} gives {shape}"
                )
            if "kernel_size" not in t:
                raise where.err(
                    f"{key}.kernel_size", "missing key; expected the window size, e.g. 2"
                )
            k = _pair(t["kernel_size"], f"{key}.kernel_size", where)
            s = _pair(t["stride"], f"{key}.stride", where) if "stride" in t else k
            padding = _int(t.get("padding", 0), f"{key}.padding", where, minimum=0)
            if 2 * padding > min(k):
                raise where.err(
                    f"{key}.padding", f"expected at most half the kernel size {k}, got {padding}"
                )
            h, wd = _conv_out(shape[1:], k, s, padding, key, where)
            layers.append(MaxPool2dSpec(k, s, padding))
            shape = (shape[0], h, wd)
    if layers[-1].type != "linear" and any(x.activation == "softmax" for x in layers):
        raise where.err("layers", "softmax is supported on linear layers only")
    return layers, shape


def _missing_param(req: str, kind: str) -> str:
    if req == "weights":
        return f"missing key; expected the {kind} weights (rows = neurons, columns = inputs)"
    return "missing key; expected one bias per neuron"


def _vector(v: Any, key: str, n: int, what: str, where: _Where) -> np.ndarray:
    arr = _array(v, key, where, (0, 1), f"a list of {n} numbers ({what})")
    if arr.ndim == 0:
        arr = arr[None]
    if arr.shape[0] != n:
        raise where.err(key, f"expected {n} values ({what}), got {arr.shape[0]}")
    return arr


def _pair(v: Any, key: str, where: _Where) -> tuple[int, int]:
    if isinstance(v, int) and not isinstance(v, bool) and v >= 1:
        return (v, v)
    if (
        isinstance(v, list)
        and len(v) == 2
        and all(isinstance(e, int) and not isinstance(e, bool) and e >= 1 for e in v)
    ):
        return (v[0], v[1])
    raise where.err(key, f"expected a positive integer or a pair of them, got {v!r}")


def _conv_out(
    hw: tuple[int, ...], k: tuple[int, ...], s: tuple[int, int], p: int, key: str, where: _Where
) -> tuple[int, int]:
    h = (hw[0] + 2 * p - k[0]) // s[0] + 1
    w = (hw[1] + 2 * p - k[1]) // s[1] + 1
    if h < 1 or w < 1:
        raise where.err(
            key,
            f"the {k[0]} x {k[1]} window does not fit the {hw[0]} x {hw[1]} input (padding {p})",
        )
    return h, w


def _parse_targets(
    v: Any, m: int, out_shape: tuple[int, ...], loss: str, where: _Where
) -> tuple[np.ndarray, bool]:
    """Targets shaped (m, *out_shape); ce class indices become one-hot rows."""
    key = "data.targets"
    k = int(np.prod(out_shape))
    arr = _array(v, key, where, (1, 2, 3, 4), "one row per sample")
    if loss == "ce":
        flat_ints = arr.ndim == 1 or (arr.ndim == 2 and arr.shape[1] == 1 and k > 1)
        if flat_ints and arr.size == m and np.all(arr == np.round(arr)):
            idx = arr.reshape(-1).astype(np.int64)
            if idx.min() < 0 or idx.max() >= k:
                raise where.err(key, f"class indices must lie in 0..{k - 1}, got {idx.tolist()}")
            return np.eye(k)[idx], True
    if arr.ndim == 1 and m == 1 and arr.size == k:
        arr = arr[None]
    elif arr.ndim == 1 and k == 1 and arr.size == m:
        arr = arr[:, None]
    if arr.shape[0] != m:
        raise where.err(
            key, f"expected one row per sample ({m} rows, like data.inputs), got {arr.shape[0]}"
        )
    if arr[0].size != k:
        raise where.err(
            key,
            f"expected {k} values per sample (the network outputs {_shape_str(out_shape)}), "
            f"got {arr[0].size}",
        )
    arr = arr.reshape((m,) + out_shape)
    if loss == "bce" and (arr.min() < 0 or arr.max() > 1):
        raise where.err(key, "binary cross entropy needs targets in [0, 1]")
    if loss == "ce":
        if arr.min() < 0 or not np.allclose(arr.sum(axis=-1), 1.0):
            raise where.err(
                key,
                "'ce' expects one-hot rows (or class probabilities summing to 1) or class indices",
            )
    return arr, False


def _parse_circuit(
    raw: dict[str, Any], title: str, description: str, dtype: str, where: _Where
) -> CircuitSpec:
    for key in ("layers", "sizes", "data", "loss"):
        if key in raw:
            raise where.err(key, "a [circuit] spec has no layers, data or loss; remove this key")
    c = raw["circuit"]
    if not isinstance(c, dict):
        raise where.err("circuit", "expected a table with expression and values")
    for key in c:
        if key not in ("expression", "values"):
            raise where.err(f"circuit.{key}", "unknown key; expected expression and values")
    if "expression" not in c:
        raise where.err("circuit.expression", 'missing key; expected e.g. "q = x + y; f = q * z"')
    expr = _string(c["expression"], "circuit.expression", where)
    values = c.get("values", {})
    if not isinstance(values, dict):
        raise where.err("circuit.values", "expected a table of numbers, e.g. {x = -2, y = 5}")
    vals = {name: _number(v, f"circuit.values.{name}", where) for name, v in values.items()}
    return CircuitSpec(
        title=title, expression=expr, values=vals, description=description, dtype=dtype
    )
