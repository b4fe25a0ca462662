"""The network being explained, on the engine: its layers, forward pass and loss.

A ``Sequential`` of supported modules is read as a list of :class:`Layer`: each layer is one
module (``Linear``, ``Conv2d``, ``MaxPool2d``, ``AvgPool2d``, ``LayerNorm``, ``BatchNorm1d/2d``,
``Dropout``) with the elementwise activation module that follows it (``Sigmoid``, ``Tanh``,
``ReLU``, ``Softmax``), so that each layer has a ``net`` (the module's output) and an
``o = f(net)``. ``Flatten`` is implied (a linear layer flattens what it receives).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import deltaprop as dp
from deltaprop.nn import functional as F
from deltaprop.ops.common import int_pair
from deltaprop.tensor import Tensor

LOSSES = ("mse_half", "mse", "bce", "ce")
ACTIVATIONS = ("sigmoid", "tanh", "relu", "linear", "softmax")
_MODULE_ACTIVATIONS = {
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "ReLU": "relu",
    "Softmax": "softmax",
    "Identity": "linear",
}
_MAIN = {
    "Linear": "linear",
    "Conv2d": "conv2d",
    "MaxPool2d": "maxpool2d",
    "AvgPool2d": "avgpool2d",
    "LayerNorm": "layernorm",
    "BatchNorm1d": "batchnorm",
    "BatchNorm2d": "batchnorm",
    "Dropout": "dropout",
}
SUPPORTED = ", ".join([*_MAIN, "Flatten", "Sigmoid", "Tanh", "ReLU", "Softmax", "Identity"])

Params = Sequence[tuple[Tensor | None, Tensor | None]]


@dataclass
class Layer:
    """One layer: a module of the model and the activation that follows it."""

    type: str
    module: Any
    activation: str = "linear"
    stride: tuple[int, int] = (1, 1)
    padding: int = 0
    kernel_size: tuple[int, int] | None = None

    @property
    def weight(self) -> Tensor | None:
        return getattr(self.module, "weight", None)

    @property
    def bias(self) -> Tensor | None:
        return getattr(self.module, "bias", None)


def _square_padding(kind: str, k: int, padding: Any) -> int:
    if isinstance(padding, str) or len(set(int_pair("explain.trace", "padding", padding))) != 1:
        raise TypeError(
            f"explain.trace: module {k} ({kind}) must use the same padding on every side, "
            f"got {padding!r}"
        )
    return int_pair("explain.trace", "padding", padding)[0]


def layers_from_model(model: Any) -> list[Layer]:
    """The layers of a ``Sequential`` (or of one module); ``TypeError`` naming an unsupported
    module."""
    modules = list(model) if hasattr(model, "__iter__") else [model]
    layers: list[Layer] = []
    for k, mod in enumerate(modules):
        kind = type(mod).__name__
        if kind in _MAIN:
            layers.append(_layer(k, kind, mod))
        elif kind in _MODULE_ACTIVATIONS:
            if (
                not layers
                or layers[-1].activation != "linear"
                or layers[-1].type
                in (
                    "maxpool2d",
                    "avgpool2d",
                    "dropout",
                )
            ):
                raise TypeError(
                    f"explain.trace: module {k} ({kind}) must follow a Linear, Conv2d, LayerNorm "
                    "or BatchNorm module"
                )
            if kind == "Softmax" and getattr(mod, "dim", -1) not in (-1, 1, None):
                raise TypeError(f"explain.trace: module {k} (Softmax) must use dim=-1")
            layers[-1].activation = _MODULE_ACTIVATIONS[kind]
        elif kind == "Flatten":
            continue  # linear layers flatten their input
        else:
            raise TypeError(
                f"explain.trace: module {k} ({kind}) is not supported; expected {SUPPORTED}"
            )
    if not layers:
        raise TypeError("explain.trace: the model has no layer to explain")
    return layers


def _layer(k: int, kind: str, mod: Any) -> Layer:
    t = _MAIN[kind]
    if t == "conv2d":
        dilation = int_pair("explain.trace", "dilation", mod.dilation)
        if dilation != (1, 1) or getattr(mod, "groups", 1) != 1:
            raise TypeError(f"explain.trace: module {k} (Conv2d) must use no dilation or groups")
        st = int_pair("explain.trace", "stride", mod.stride)
        if st[0] != st[1]:
            raise TypeError(f"explain.trace: module {k} (Conv2d) must use equal strides")
        pd = _square_padding(kind, k, mod.padding)
        return Layer(t, mod, stride=st, padding=pd, kernel_size=tuple(mod.weight.shape[2:]))
    if t in ("maxpool2d", "avgpool2d"):
        ks = int_pair("explain.trace", "kernel_size", mod.kernel_size)
        stride = mod.stride if mod.stride is not None else mod.kernel_size
        st = int_pair("explain.trace", "stride", stride)
        dilation = int_pair("explain.trace", "dilation", getattr(mod, "dilation", 1))
        if getattr(mod, "ceil_mode", False) or dilation != (1, 1):
            raise TypeError(f"explain.trace: module {k} ({kind}) must use no ceil_mode or dilation")
        if t == "avgpool2d" and (
            not mod.count_include_pad or getattr(mod, "divisor_override", None) is not None
        ):
            raise TypeError(
                f"explain.trace: module {k} (AvgPool2d) must divide by the window size "
                "(count_include_pad=True, no divisor_override)"
            )
        return Layer(
            t, mod, stride=st, padding=_square_padding(kind, k, mod.padding), kernel_size=ks
        )
    return Layer(t, mod)


def activate(name: str, net: Tensor) -> Tensor:
    if name == "sigmoid":
        return net.sigmoid()
    if name == "tanh":
        return net.tanh()
    if name == "relu":
        return net.relu()
    if name == "softmax":
        return net.softmax(dim=-1)
    return net  # linear: o = net


def layer_net(
    lay: Layer,
    x: Tensor,
    w: Tensor | None,
    b: Tensor | None,
    replay: bool = False,
    mask: Tensor | None = None,
) -> Tensor:
    """``net`` of one layer from the engine's ops, on the parameters given.

    The recorded step runs batch norm and dropout as their modules do in training mode (the
    mini-batch's statistics, moving the running statistics; a freshly drawn mask). A
    ``replay`` of the step (the finite differences of ``--verify``) uses the same statistics
    of the mini-batch without touching the running ones, and the step's dropout ``mask``.
    """
    mod = lay.module
    if lay.type == "linear":
        if x.ndim > 2:
            x = x.reshape(x.shape[0], -1)
        return F.linear(x, w, b)
    if lay.type == "conv2d":
        return F.conv2d(x, w, b, stride=lay.stride, padding=lay.padding)
    if lay.type == "maxpool2d":
        return F.max_pool2d(x, lay.kernel_size, stride=lay.stride, padding=lay.padding)
    if lay.type == "avgpool2d":
        return F.avg_pool2d(x, lay.kernel_size, stride=lay.stride, padding=lay.padding)
    if lay.type == "layernorm":
        return F.layer_norm(x, mod.normalized_shape, w, b, eps=mod.eps)
    if not replay:  # batch norm and dropout, as in a training step
        return mod(x)
    if lay.type == "batchnorm":
        return F.batch_norm(x, None, None, w, b, training=True, eps=mod.eps)
    return x * mask


def loss_of(loss: str, reduction: str, out: Tensor, net: Tensor, t: Tensor) -> Tensor:
    """The loss E as engine ops (reduction over the m samples of the batch).

    mse_half  E = 1/2 sum (o - t)^2            (mean: divided by m)
    mse       E = sum (o - t)^2                (mean: divided by m*k, as F.mse_loss)
    bce       E = -sum [t log o + (1-t) log(1-o)]  (mean: divided by m*k, as F.binary_cross_entropy)
    ce        E = -sum t log softmax(net)       (mean: divided by m, as F.cross_entropy)
    """
    m = out.shape[0]
    if loss == "ce":
        e = -(t * net.log_softmax(dim=-1)).sum()
        return e / m if reduction == "mean" else e
    if loss == "bce":
        e = -(t * out.log().clamp(min=-100.0) + (1.0 - t) * (1.0 - out).log().clamp(min=-100.0))
        return e.mean() if reduction == "mean" else e.sum()
    d = out - t
    if loss == "mse_half":
        e = (d * d).sum() * 0.5
        return e / m if reduction == "mean" else e
    return (d * d).mean() if reduction == "mean" else (d * d).sum()


class Network:
    """Forward and loss of the layers, on whatever parameter tensors are passed in."""

    def __init__(self, layers: list[Layer], loss: str, reduction: str) -> None:
        self.layers = layers
        self.loss_name = loss
        self.reduction = reduction

    def params(self) -> list[tuple[Tensor | None, Tensor | None]]:
        return [(lay.weight, lay.bias) for lay in self.layers]

    def forward(
        self,
        x: Tensor,
        params: Params | None = None,
        masks: Sequence[Tensor | None] | None = None,
        perturb: tuple[int, np.ndarray] | None = None,
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """``(inputs, nets, outs)`` of every layer; ``masks`` re-runs recorded dropout masks
        (and batch norm without touching its running statistics)."""
        params = params if params is not None else self.params()
        ins, nets, outs = [], [], []
        o = x
        for i, (lay, (w, b)) in enumerate(zip(self.layers, params)):
            replay = masks is not None
            net = layer_net(lay, o, w, b, replay, masks[i] if replay else None)
            if perturb is not None and perturb[0] == i:
                net = net + dp.tensor(perturb[1], dtype=net.dtype)
            ins.append(o)
            o = activate(lay.activation, net)
            nets.append(net)
            outs.append(o)
        return ins, nets, outs

    def loss(self, nets: list[Tensor], outs: list[Tensor], t: Tensor) -> Tensor:
        return loss_of(self.loss_name, self.reduction, outs[-1], nets[-1], t)


# ----------------------------------------------------------------------------------------------
# names
# ----------------------------------------------------------------------------------------------

_LETTER = {"layernorm": "y", "batchnorm": "y", "dropout": "r", "avgpool2d": "a", "maxpool2d": "p"}


def unit_names(layers: list[Layer], in_shape: tuple[int, ...]) -> list[list[str]]:
    """Names in the notation of the backprop notes: ``i1..`` inputs, ``h1..`` hidden linear
    neurons, ``o1..`` the outputs, ``y1..`` normalized values, ``r1..`` dropout outputs.

    Entry 0 names the inputs, entry ``l + 1`` the outputs of layer ``l``; image-shaped values
    have no names (``[]``). With several layers of one letter, unit j of the l-th is ``h{l}_{j}``.
    """
    shapes = [in_shape]
    shape = in_shape
    for lay in layers:
        if lay.type == "linear":
            shape = (lay.weight.shape[0],)
        elif lay.type == "conv2d":
            shape = (lay.weight.shape[0], -1, -1)
        elif lay.type in ("maxpool2d", "avgpool2d"):
            shape = (shape[0], -1, -1)
        shapes.append(shape)
    letters = []
    for i, lay in enumerate(layers):
        if len(shapes[i + 1]) != 1:
            letters.append("")
        elif i == len(layers) - 1:
            letters.append("o")
        else:
            letters.append("h" if lay.type == "linear" else _LETTER[lay.type])
    names: list[list[str]] = [
        [f"i{j + 1}" for j in range(in_shape[0])] if len(in_shape) == 1 else []
    ]
    for i, letter in enumerate(letters):
        n = shapes[i + 1][0] if letter else 0
        same = [k for k, x in enumerate(letters) if x == letter]
        if not letter:
            names.append([])
        elif len(same) == 1 or letter == "o":
            names.append([f"{letter}{j + 1}" for j in range(n)])
        else:
            names.append([f"{letter}{same.index(i) + 1}_{j + 1}" for j in range(n)])
    return names
