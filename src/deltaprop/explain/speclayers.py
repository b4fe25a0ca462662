"""The ``[[layers]]`` tables of a spec file, parsed into the layer list of :mod:`deltaprop.models`.

A spec layer is one ``deltaprop.nn`` module with its parameter values, and an activation: the
table ``{type = "linear", weights = W, biases = b, activation = "sigmoid"}`` becomes the model
layers ``{"type": "Linear", "in_features": 2, "out_features": 2}, {"type": "Sigmoid"}`` with the
values ``{"weight": W, "bias": b}``. The network is then built by
:func:`deltaprop.models.build_sequential`, the same code that builds a training run's model.

Layer types (``type``, default ``linear``) and their keys:

* ``linear``: ``weights`` (rows = neurons, columns = inputs), ``biases``, ``activation``;
* ``conv2d``: ``weights`` (one kh x kw kernel or K x C x kh x kw), ``biases`` (default 0),
  ``stride``, ``padding``, ``activation``;
* ``maxpool2d``, ``avgpool2d``: ``kernel_size``, ``stride`` (default: the kernel size),
  ``padding``;
* ``layernorm`` (over each sample's features), ``batchnorm`` (training mode, over the
  mini-batch): ``gamma`` (default 1), ``beta`` (default 0), ``eps`` (default 1e-5),
  ``activation``;
* ``dropout``: ``p``; the masks are drawn from the spec's ``seed`` (or a ``seed`` in the table).

``weights`` and ``biases`` are accepted for ``gamma`` and ``beta`` (the names of the parameters
of ``nn.LayerNorm`` and of a linear layer's table).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deltaprop.errors import ModelError
from deltaprop.explain.specvalues import (
    Where,
    array,
    choice,
    integer,
    number,
    pair,
    positive,
    probability,
    shape_str,
    vector,
)
from deltaprop.models import resolve_layers
from deltaprop.ops.common import conv_output_size

ACTIVATIONS = ("sigmoid", "tanh", "relu", "linear", "softmax")
LAYER_TYPES = ("linear", "conv2d", "maxpool2d", "avgpool2d", "layernorm", "batchnorm", "dropout")
_MODULE = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "ReLU", "softmax": "Softmax"}
_KEYS = {
    "linear": {"type", "weights", "biases", "activation", "name"},
    "conv2d": {"type", "weights", "biases", "activation", "stride", "padding", "name"},
    "maxpool2d": {"type", "kernel_size", "stride", "padding", "name"},
    "avgpool2d": {"type", "kernel_size", "stride", "padding", "name"},
    "layernorm": {"type", "gamma", "beta", "weights", "biases", "eps", "activation", "name"},
    "batchnorm": {
        "type",
        "gamma",
        "beta",
        "weights",
        "biases",
        "eps",
        "momentum",
        "activation",
        "name",
    },
    "dropout": {"type", "p", "seed", "name"},
}


@dataclass
class SpecLayers:
    """A spec's network: the model layer list, the parameter values of its modules (keyed by
    the module's index in ``layers``) and the per-sample output shape."""

    layers: list[dict[str, Any]]
    params: dict[int, dict[str, np.ndarray]]
    out_shape: tuple[int, ...]
    activations: list[str] = field(default_factory=list)  # one per spec layer
    kernel_as_matrix: bool = False  # a conv kernel given as one kh x kw matrix
    dropout_seed: int | None = None  # a seed given in a dropout table

    @property
    def last_activation(self) -> str:
        return self.activations[-1]


def parse_layers(
    tables: list[Any], in_shape: tuple[int, ...], batch: int, where: Where
) -> SpecLayers:
    """Check each table against the shape it receives (``batch``: samples per step)."""
    out = SpecLayers([], {}, in_shape)
    shape = in_shape  # per-sample shape: (n,) or (C, H, W)
    for i, t in enumerate(tables):
        key = f"layers[{i}]"
        if not isinstance(t, dict):
            raise where.err(key, "expected a table ([[layers]])")
        kind = choice(t.get("type", "linear"), f"{key}.type", LAYER_TYPES, where)
        unknown = sorted(set(t) - _KEYS[kind])
        if unknown:
            raise where.err(
                f"{key}.{unknown[0]}",
                f"unknown key for a {kind} layer; expected {', '.join(sorted(_KEYS[kind]))}",
            )
        prev = "the inputs" if i == 0 else f"layers[{i - 1}]"
        act = "linear"
        if "activation" in _KEYS[kind]:
            act = choice(t.get("activation", "linear"), f"{key}.activation", ACTIVATIONS, where)
            if act == "softmax" and kind != "linear":
                raise where.err(
                    f"{key}.activation",
                    "softmax is for linear layers; expected sigmoid, tanh, relu or linear",
                )
        if kind != "linear" and kind != "dropout" and kind != "layernorm" and kind != "batchnorm":
            if len(shape) != 3:
                raise where.err(
                    key,
                    f"a {kind} layer needs an image input (C x H x W); {prev} gives "
                    f"{shape_str(shape)} values",
                )
        shape = _PARSERS[kind](out, t, shape, key, prev, batch, where)
        if act != "linear":
            out.layers.append({"type": _MODULE[act]} | ({"dim": -1} if act == "softmax" else {}))
        out.activations.append(act)
    if any(a == "softmax" for a in out.activations) and out.activations[-1] != "softmax":
        raise where.err("layers", "softmax is supported on the last linear layer only")
    try:
        resolve_layers(out.layers, in_shape)
    except ModelError as e:  # the checks above should have caught it: name the spec anyway
        raise where.err("layers", str(e)) from None
    out.out_shape = shape
    return out


def _add(out: SpecLayers, layer: dict[str, Any], **params: np.ndarray | None) -> None:
    out.params[len(out.layers)] = {k: v for k, v in params.items() if v is not None}
    out.layers.append(layer)


def _linear(out, t, shape, key, prev, batch, where) -> tuple[int, ...]:
    n_in = int(np.prod(shape))
    for req in ("weights", "biases"):
        if req not in t:
            what = (
                "the linear weights (rows = neurons, columns = inputs)"
                if req == "weights"
                else "one bias per neuron"
            )
            raise where.err(f"{key}.{req}", f"missing key; expected {what}")
    w = array(
        t["weights"], f"{key}.weights", where, (2,), "a matrix (rows = neurons, columns = inputs)"
    )
    if w.shape[1] != n_in:
        raise where.err(
            f"{key}.weights",
            f"expected {n_in} columns (one per output of {prev}), "
            f"got a {shape_str(w.shape)} matrix",
        )
    b = vector(t["biases"], f"{key}.biases", w.shape[0], "one per neuron = row of weights", where)
    if len(shape) > 1:
        out.layers.append({"type": "Flatten"})
    _add(out, {"type": "Linear", "in_features": n_in, "out_features": w.shape[0]}, weight=w, bias=b)
    return (w.shape[0],)


def _conv2d(out, t, shape, key, prev, batch, where) -> tuple[int, ...]:
    if "weights" not in t:
        raise where.err(f"{key}.weights", "missing key; expected a kh x kw kernel")
    w = array(
        t["weights"], f"{key}.weights", where, (2, 4), "a kh x kw kernel or a K x C x kh x kw array"
    )
    if w.ndim == 2:
        if shape[0] != 1:
            raise where.err(
                f"{key}.weights",
                f"a kh x kw kernel needs 1 input channel, {prev} has {shape[0]}; "
                "give a K x C x kh x kw array",
            )
        w = w[None, None]
        out.kernel_as_matrix = True
    if w.shape[1] != shape[0]:
        raise where.err(
            f"{key}.weights",
            f"expected {shape[0]} input channels (dim 2 of K x C x kh x kw), got {w.shape[1]}",
        )
    b = vector(
        t.get("biases", [0.0] * w.shape[0]),
        f"{key}.biases",
        w.shape[0],
        "one per output channel",
        where,
    )
    stride = integer(t.get("stride", 1), f"{key}.stride", where, minimum=1)
    padding = integer(t.get("padding", 0), f"{key}.padding", where, minimum=0)
    k = tuple(int(s) for s in w.shape[2:])
    h, wd = _fit(shape, k, (stride, stride), padding, key, where)
    layer = {
        "type": "Conv2d",
        "in_channels": shape[0],
        "out_channels": w.shape[0],
        "kernel_size": list(k),
        "stride": stride,
        "padding": padding,
    }
    _add(out, layer, weight=w, bias=b)
    return (w.shape[0], h, wd)


def _pool(out, t, shape, key, prev, batch, where) -> tuple[int, ...]:
    kind = t.get("type")
    if "kernel_size" not in t:
        raise where.err(f"{key}.kernel_size", "missing key; expected the window size, e.g. 2")
    k = pair(t["kernel_size"], f"{key}.kernel_size", where)
    s = pair(t["stride"], f"{key}.stride", where) if "stride" in t else k
    padding = integer(t.get("padding", 0), f"{key}.padding", where, minimum=0)
    if 2 * padding > min(k):
        raise where.err(
            f"{key}.padding", f"expected at most half the kernel size {list(k)}, got {padding}"
        )
    h, wd = _fit(shape, k, s, padding, key, where)
    name = "MaxPool2d" if kind == "maxpool2d" else "AvgPool2d"
    _add(out, {"type": name, "kernel_size": list(k), "stride": list(s), "padding": padding})
    return (shape[0], h, wd)


def _norm(out, t, shape, key, prev, batch, where) -> tuple[int, ...]:
    kind = t.get("type")
    eps = positive(t.get("eps", 1e-5), f"{key}.eps", where)
    if kind == "layernorm":
        pshape = shape
        layer = {"type": "LayerNorm", "normalized_shape": list(shape), "eps": eps}
        what = "one per feature of each sample"
    else:
        per_group = batch * int(np.prod(shape[1:]))
        if per_group < 2:
            raise where.err(
                key,
                "batch normalization in training mode needs more than one value per feature: "
                "use a mini-batch of at least 2 samples (batch_size)",
            )
        pshape = (shape[0],)
        name = "BatchNorm1d" if len(shape) == 1 else "BatchNorm2d"
        momentum = probability(t.get("momentum", 0.1), f"{key}.momentum", where)
        layer = {"type": name, "num_features": shape[0], "eps": eps, "momentum": momentum}
        what = "one per feature" if len(shape) == 1 else "one per channel"
    if len(shape) not in (1, 3):
        raise where.err(key, f"expected a vector or an image input, {prev} gives {shape}")
    gamma = _param(t, _named(t, "gamma", "weights", key, where), 1.0, pshape, key, what, where)
    beta = _param(t, _named(t, "beta", "biases", key, where), 0.0, pshape, key, what, where)
    _add(out, layer, weight=gamma, bias=beta)
    return shape


def _named(t: dict, name: str, alias: str, key: str, where: Where) -> str:
    """The key a normalization parameter is given under: ``gamma`` (the notes' name) or
    ``weights`` (the name of a linear layer's parameter, and of ``nn.LayerNorm.weight``)."""
    if name in t and alias in t:
        raise where.err(f"{key}.{alias}", f"give either {name} or {alias}, not both")
    return alias if alias in t else name


def _param(
    t: dict, name: str, default: float, pshape: tuple[int, ...], key: str, what: str, where: Where
) -> np.ndarray:
    v = t.get(name, default)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return np.full(pshape, number(v, f"{key}.{name}", where))
    arr = array(v, f"{key}.{name}", where, (1, 2, 3), f"{int(np.prod(pshape))} numbers ({what})")
    if arr.size != int(np.prod(pshape)):
        raise where.err(
            f"{key}.{name}", f"expected {int(np.prod(pshape))} values ({what}), got {arr.size}"
        )
    return arr.reshape(pshape)


def _dropout(out, t, shape, key, prev, batch, where) -> tuple[int, ...]:
    p = probability(t.get("p", 0.5), f"{key}.p", where)
    if "seed" in t:  # the masks' seed may also be given here (the first one counts)
        seed = integer(t["seed"], f"{key}.seed", where, minimum=0)
        out.dropout_seed = seed if out.dropout_seed is None else out.dropout_seed
    _add(out, {"type": "Dropout", "p": p})
    return shape


_PARSERS = {
    "linear": _linear,
    "conv2d": _conv2d,
    "maxpool2d": _pool,
    "avgpool2d": _pool,
    "layernorm": _norm,
    "batchnorm": _norm,
    "dropout": _dropout,
}


def _fit(
    shape: tuple[int, ...], k: tuple[int, ...], s: tuple[int, int], p: int, key: str, where: Where
) -> tuple[int, int]:
    h = conv_output_size(shape[1], k[0], s[0], p)
    w = conv_output_size(shape[2], k[1], s[1], p)
    if h < 1 or w < 1:
        raise where.err(
            key,
            f"the {k[0]} x {k[1]} window does not fit the {shape[1]} x {shape[2]} input "
            f"(padding {p})",
        )
    return h, w
