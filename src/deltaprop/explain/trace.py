"""Run training steps of a small network on the engine and record every number it produces.

The explainer computes nothing on its own. Each step does what a training loop does, on
deltaprop tensors:

1. forward, layer by layer: ``net = o_prev @ W.T + b`` (or ``conv2d``/``max_pool2d``), with
   ``net.retain_grad()``, then ``o = f(net)`` with ``o.retain_grad()``;
2. the loss ``E`` (engine ops), and the activation's local derivative ``do/dnet`` from
   ``deltaprop.autograd.grad(o, net, ones)`` (the engine's own backward formula);
3. ``E.backward()``: ``delta = net.grad`` (dE/dnet), ``o.grad`` (dE/do), ``W.grad``, ``b.grad``;
4. the SGD update ``w <- w - eta * dE/dw`` by ``deltaprop.optim.SGD`` (engine arithmetic under
   ``no_grad`` where optim is not available), and the new weights are read back.

What is recorded are copies of the engine tensors' arrays. The convolution displays (im2col
matrix, GEMM, argmax mask, col2im) are recomputed from the engine's inputs for display, and
:mod:`.conv` checks they equal the engine's values and gradients.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import deltaprop as dp
from deltaprop.explain import conv as _conv
from deltaprop.explain.base import Explained
from deltaprop.explain.spec import (
    ACTIVATIONS,
    LOSSES,
    Conv2dSpec,
    LinearSpec,
    MaxPool2dSpec,
    NetworkSpec,
)
from deltaprop.tensor import Tensor

# ----------------------------------------------------------------------------------------------
# records
# ----------------------------------------------------------------------------------------------


@dataclass
class LayerRecord:
    """Everything one layer did in one step (arrays are copies of engine tensors).

    Per-sample arrays have the batch as their first axis: ``net``, ``out``, ``out_grad``
    (dE/do), ``local`` (do/dnet, for elementwise activations), ``delta`` (dE/dnet), ``input``
    (the o_prev the layer received) and ``input_grad`` (dE/d o_prev, conv and pool layers).
    """

    index: int
    type: str
    activation: str
    names: list[str]  # neuron names (linear layers)
    in_names: list[str]
    net: np.ndarray
    out: np.ndarray
    delta: np.ndarray
    out_grad: np.ndarray | None = None
    local: np.ndarray | None = None
    input: np.ndarray | None = None
    input_grad: np.ndarray | None = None
    weights: np.ndarray | None = None  # before the update, shaped as the engine's tensor
    biases: np.ndarray | None = None
    weight_grad: np.ndarray | None = None
    bias_grad: np.ndarray | None = None
    weights_after: np.ndarray | None = None
    biases_after: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: int = 0
    kernel_size: tuple[int, int] | None = None
    kernel_as_matrix: bool = False
    conv: _conv.ConvDisplay | None = None
    pool: _conv.PoolDisplay | None = None


@dataclass
class Check:
    """One gradient compared with central finite differences.

    ``kind`` is ``weight``, ``bias`` or ``delta``; ``layer`` the layer index; ``index`` the
    element (``(row, col)`` of the weight matrix, ``(sample, neuron)`` of delta, ...).
    """

    layer: int
    kind: str
    index: tuple[int, ...]
    analytic: float
    numeric: float

    @property
    def name(self) -> str:
        return f"{self.kind}[layer {self.layer}]{list(self.index)}"

    @property
    def error(self) -> float:
        return abs(self.analytic - self.numeric)


@dataclass
class Verification:
    """The result of ``--verify``: every gradient compared with central finite differences."""

    eps: float
    count: int
    worst: Check
    tolerance: float
    ok: bool


@dataclass
class StepRecord:
    """One training step: the samples it used, the loss and each layer's record."""

    index: int
    samples: list[int]
    inputs: np.ndarray
    targets: np.ndarray
    loss: float
    layers: list[LayerRecord]
    verification: Verification | None = None


@dataclass(repr=False)
class NetworkTrace(Explained):
    """A recorded worked example of backpropagation: render it with ``to_text()``,
    ``to_markdown()``, ``to_latex()``, ``to_html()``, ``to_json()``; in Jupyter it shows itself
    as HTML.
    """

    title: str
    loss: str
    reduction: str
    lr: float
    train_biases: bool
    dtype: str
    steps: list[StepRecord]
    n_samples: int
    batch_size: int
    target_indices: bool = False
    description: str = ""
    optimizer: str = "deltaprop.optim.SGD"
    kind: str = "network"
    extra: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.title!r}: {len(self.steps)} step(s), loss {self.loss}, "
            f"final E = {self.steps[-1].loss:.6g}>"
        )


# ----------------------------------------------------------------------------------------------
# the network on the engine
# ----------------------------------------------------------------------------------------------


@dataclass
class _Layer:
    """One layer of the network being explained: its configuration and its engine tensors."""

    type: str
    activation: str
    weight: Tensor | None = None
    bias: Tensor | None = None
    stride: tuple[int, int] = (1, 1)
    padding: int = 0
    kernel_size: tuple[int, int] | None = None
    kernel_as_matrix: bool = False


def _activation(name: str, net: Tensor) -> Tensor:
    if name == "sigmoid":
        return net.sigmoid()
    if name == "tanh":
        return net.tanh()
    if name == "relu":
        return net.relu()
    if name == "softmax":
        return net.softmax(dim=-1)
    return net  # linear: o = net


def _layer_forward(layer: _Layer, o_prev: Tensor, w: Tensor | None, b: Tensor | None) -> Tensor:
    """``net`` of one layer from engine ops (conv and pool through :mod:`.conv`)."""
    if layer.type == "linear":
        if o_prev.ndim > 2:
            o_prev = o_prev.reshape(o_prev.shape[0], -1)
        y = o_prev @ w.T
        return y + b if b is not None else y
    if layer.type == "conv2d":
        return _conv.conv2d(o_prev, w, b, layer.stride[0], layer.padding)
    return _conv.max_pool2d(o_prev, layer.kernel_size, layer.stride, layer.padding)


def _loss(loss: str, reduction: str, out: Tensor, net: Tensor, t: Tensor) -> Tensor:
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


class _Network:
    """Forward and loss of the layers, on whatever parameter tensors are passed in."""

    def __init__(self, layers: list[_Layer], loss: str, reduction: str) -> None:
        self.layers = layers
        self.loss_name = loss
        self.reduction = reduction

    def params(self) -> list[tuple[Tensor | None, Tensor | None]]:
        return [(lay.weight, lay.bias) for lay in self.layers]

    def forward(
        self,
        x: Tensor,
        params: Sequence[tuple[Tensor | None, Tensor | None]] | None = None,
        perturb: tuple[int, np.ndarray] | None = None,
    ) -> tuple[list[Tensor], list[Tensor]]:
        params = params if params is not None else self.params()
        nets, outs = [], []
        o = x
        for i, (lay, (w, b)) in enumerate(zip(self.layers, params)):
            net = _layer_forward(lay, o, w, b)
            if perturb is not None and perturb[0] == i:
                net = net + dp.tensor(perturb[1], dtype=net.dtype)
            o = _activation(lay.activation, net)
            nets.append(net)
            outs.append(o)
        return nets, outs

    def loss(self, nets: list[Tensor], outs: list[Tensor], t: Tensor) -> Tensor:
        return _loss(self.loss_name, self.reduction, outs[-1], nets[-1], t)


# ----------------------------------------------------------------------------------------------
# names
# ----------------------------------------------------------------------------------------------


def _neuron_names(layers: list[_Layer], n_inputs: int) -> tuple[list[list[str]], list[list[str]]]:
    """Names in the notation of the backprop notes: i1.. inputs, h1.. hidden, o1.. outputs.

    With several hidden linear layers, neuron j of hidden layer l is ``h{l}_{j}``; a linear
    layer after a conv/pool layer reads the flattened feature map ``x1..xn``.
    """
    lin = [i for i, lay in enumerate(layers) if lay.type == "linear"]
    hidden = [i for i in lin if i != len(layers) - 1]
    names: list[list[str]] = []
    in_names: list[list[str]] = []
    prev = [f"i{j + 1}" for j in range(n_inputs)]
    for i, lay in enumerate(layers):
        if lay.type != "linear":
            names.append([])
            in_names.append([])
            prev = []
            continue
        n_out, n_in = lay.weight.shape
        if not prev or len(prev) != n_in:
            prev = [f"x{j + 1}" for j in range(n_in)]
        if i == len(layers) - 1:
            own = [f"o{j + 1}" for j in range(n_out)]
        elif len(hidden) == 1:
            own = [f"h{j + 1}" for j in range(n_out)]
        else:
            own = [f"h{hidden.index(i) + 1}_{j + 1}" for j in range(n_out)]
        names.append(own)
        in_names.append(prev)
        prev = own
    return names, in_names


# ----------------------------------------------------------------------------------------------
# one step
# ----------------------------------------------------------------------------------------------


def _copy(t: Tensor | None) -> np.ndarray | None:
    if t is None:
        return None
    return np.array(t.data, copy=True)


def _sgd_step(tensors: list[Tensor], lr: float) -> str:
    """``w <- w - lr * w.grad`` by deltaprop.optim.SGD (or the same rule in engine ops)."""
    try:
        from deltaprop.optim import SGD
    except ImportError:
        SGD = None
    if SGD is not None:
        opt = SGD(tensors, lr=lr)
        opt.step()
        return "deltaprop.optim.SGD"
    with dp.no_grad():
        for t in tensors:
            t.copy_(t - lr * t.grad)
    return "engine ops: w - lr * w.grad"


def _run_step(
    net: _Network,
    x_np: np.ndarray,
    t_np: np.ndarray,
    lr: float,
    train_biases: bool,
    names: tuple[list[list[str]], list[list[str]]],
    verify: bool,
    dtype: np.dtype,
) -> tuple[float, list[LayerRecord], Verification | None, str]:
    layers = net.layers
    for lay in layers:
        for p in (lay.weight, lay.bias):
            if p is not None:
                p.grad = None
    needs_input_grad = layers[0].type != "linear"
    x = dp.tensor(x_np, dtype=dtype, requires_grad=needs_input_grad)
    t = dp.tensor(t_np, dtype=dtype)
    nets, outs = net.forward(x)
    for n_, o_ in zip(nets, outs):
        n_.retain_grad()
        if o_ is not n_ and o_.requires_grad:
            o_.retain_grad()
    loss = net.loss(nets, outs, t)
    locals_: list[np.ndarray | None] = []
    for lay, n_, o_ in zip(layers, nets, outs):
        if lay.activation == "softmax" or lay.type == "maxpool2d":
            locals_.append(None)
            continue
        (g,) = dp.autograd.grad(o_, n_, grad_outputs=dp.ones_like(o_), retain_graph=True)
        locals_.append(_copy(g))
    loss.backward()

    records = []
    o_prev = x
    for i, (lay, n_, o_) in enumerate(zip(layers, nets, outs)):
        out_grad = o_.grad if o_ is not n_ else n_.grad
        rec = LayerRecord(
            index=i,
            type=lay.type,
            activation=lay.activation,
            names=names[0][i],
            in_names=names[1][i],
            net=_copy(n_),
            out=_copy(o_),
            delta=_copy(n_.grad),
            out_grad=_copy(out_grad),
            local=locals_[i],
            input=_copy(o_prev),
            input_grad=_copy(o_prev.grad) if o_prev.requires_grad else None,
            weights=_copy(lay.weight),
            biases=_copy(lay.bias),
            weight_grad=_copy(lay.weight.grad) if lay.weight is not None else None,
            bias_grad=_copy(lay.bias.grad) if lay.bias is not None else None,
            stride=lay.stride,
            padding=lay.padding,
            kernel_size=lay.kernel_size,
            kernel_as_matrix=lay.kernel_as_matrix,
        )
        records.append(rec)
        o_prev = o_
    loss_value = float(loss.item())

    # displays of conv/pool layers, checked against the engine's values and gradients
    for rec in records:
        if rec.type == "conv2d":
            rec.conv = _conv.conv_display(rec)
        elif rec.type == "maxpool2d":
            rec.pool = _conv.pool_display(rec)

    verification = _verify(net, x_np, t_np, records, dtype) if verify else None

    trained = [lay.weight for lay in layers if lay.weight is not None]
    if train_biases:
        trained += [lay.bias for lay in layers if lay.bias is not None]
    how = _sgd_step(trained, lr) if trained else "no parameters"
    for rec, lay in zip(records, layers):
        rec.weights_after = _copy(lay.weight)
        rec.biases_after = _copy(lay.bias)
    return loss_value, records, verification, how


# ----------------------------------------------------------------------------------------------
# --verify: central finite differences, on the engine's forward
# ----------------------------------------------------------------------------------------------


def _verify(
    net: _Network,
    x_np: np.ndarray,
    t_np: np.ndarray,
    records: list[LayerRecord],
    dtype: np.dtype,
) -> Verification:
    """Compare every weight, bias and delta gradient with ``(E(p+eps) - E(p-eps)) / (2 eps)``.

    The finite differences run the same forward and loss in float64 (with ``no_grad``), so the
    check does not depend on the trace's dtype.
    """
    eps = 1e-6
    f64 = np.float64
    x = dp.tensor(x_np, dtype=f64)
    t = dp.tensor(t_np, dtype=f64)
    base = [
        (
            None if w is None else np.array(w.data, dtype=f64),
            None if b is None else np.array(b.data, dtype=f64),
        )
        for w, b in net.params()
    ]

    def energy(params: list[tuple[np.ndarray | None, np.ndarray | None]], perturb=None) -> float:
        ps = [
            (
                None if w is None else dp.tensor(w, dtype=f64),
                None if b is None else dp.tensor(b, dtype=f64),
            )
            for w, b in params
        ]
        with dp.no_grad():
            nets, outs = net.forward(x, ps, perturb)
            return float(net.loss(nets, outs, t).item())

    checks: list[Check] = []

    def central(arr: np.ndarray, j: int, fn) -> float:
        flat = arr.reshape(-1)
        orig = flat[j]
        flat[j] = orig + eps
        fp = fn()
        flat[j] = orig - eps
        fm = fn()
        flat[j] = orig
        return (fp - fm) / (2 * eps)

    for li, rec in enumerate(records):
        w, b = base[li]
        for arr, grad, label in ((w, rec.weight_grad, "weight"), (b, rec.bias_grad, "bias")):
            if arr is None or grad is None:
                continue
            g = grad.reshape(-1)
            for j in range(arr.size):
                num = central(arr, j, lambda: energy(base))
                idx = np.unravel_index(j, arr.shape)
                checks.append(Check(li, label, tuple(map(int, idx)), float(g[j]), num))
        # deltas: perturb net of this layer
        delta = rec.delta.reshape(-1)
        bump = np.zeros(rec.net.shape, dtype=f64)
        for j in range(bump.size):
            num = central(bump, j, lambda li=li, bump=bump: energy(base, (li, bump)))
            idx = np.unravel_index(j, bump.shape)
            checks.append(Check(li, "delta", tuple(map(int, idx)), float(delta[j]), num))

    worst = max(checks, key=lambda c: c.error)
    tol_abs, tol_rel = (1e-6, 1e-5) if dtype == np.float64 else (1e-4, 1e-3)
    ok = all(c.error <= tol_abs + tol_rel * abs(c.numeric) for c in checks)
    return Verification(eps=eps, count=len(checks), worst=worst, tolerance=tol_abs, ok=ok)


# ----------------------------------------------------------------------------------------------
# public entry points
# ----------------------------------------------------------------------------------------------


def _batches(m: int, batch_size: int, steps: int) -> list[list[int]]:
    """Sample indices of each step: consecutive mini-batches, cycling through the data."""
    out = []
    start = 0
    for _ in range(steps):
        idx = [(start + k) % m for k in range(batch_size)]
        out.append(idx)
        start = (start + batch_size) % m
    return out


def _run(
    layers: list[_Layer],
    inputs: np.ndarray,
    targets: np.ndarray,
    *,
    title: str,
    loss: str,
    reduction: str,
    lr: float,
    steps: int,
    batch_size: int | None,
    train_biases: bool,
    verify: bool,
    dtype: np.dtype,
    description: str = "",
    target_indices: bool = False,
) -> NetworkTrace:
    net = _Network(layers, loss, reduction)
    m = inputs.shape[0]
    bs = batch_size or m
    n_in = int(np.prod(inputs.shape[1:]))
    names = _neuron_names(layers, n_in)
    step_records = []
    how = ""
    for k, idx in enumerate(_batches(m, bs, steps)):
        x_np = inputs[idx]
        t_np = targets[idx]
        e, recs, ver, how = _run_step(net, x_np, t_np, lr, train_biases, names, verify, dtype)
        step_records.append(StepRecord(k + 1, idx, x_np, t_np, e, recs, ver))
    return NetworkTrace(
        title=title,
        loss=loss,
        reduction=reduction,
        lr=lr,
        train_biases=train_biases,
        dtype=str(np.dtype(dtype)),
        steps=step_records,
        n_samples=m,
        batch_size=bs,
        target_indices=target_indices,
        description=description,
        optimizer=how,
    )


def trace_spec(spec: NetworkSpec, verify: bool = False) -> NetworkTrace:
    """Run the steps of a network spec on the engine and record them.

    >>> from deltaprop.explain.spec import parse_spec
    >>> spec = parse_spec({"loss": "mse_half", "lr": 0.5, "sizes": [2, 1], "seed": 0,
    ...                    "data": {"inputs": [[1.0, 0.0]], "targets": [[1.0]]}})
    >>> tr = trace_spec(spec)
    >>> len(tr.steps), tr.steps[0].layers[0].delta.shape
    (1, (1, 1))
    """
    dtype = np.dtype(spec.dtype)
    layers = _layers_from_spec(spec, dtype)
    tr = _run(
        layers,
        spec.inputs,
        spec.targets,
        title=spec.title,
        loss=spec.loss,
        reduction=spec.reduction,
        lr=spec.lr,
        steps=spec.steps,
        batch_size=spec.batch_size,
        train_biases=spec.train_biases,
        verify=verify,
        dtype=dtype,
        description=spec.description,
        target_indices=spec.target_indices,
    )
    convs = [ls for ls in spec.layers if isinstance(ls, Conv2dSpec)]
    tr.extra["squeeze_channels"] = (
        spec.inputs.ndim == 4
        and spec.inputs.shape[1] == 1
        and all(c.kernel_as_matrix for c in convs)
    )
    return tr


def _layers_from_spec(spec: NetworkSpec, dtype: np.dtype) -> list[_Layer]:
    """Fresh leaf tensors (requires_grad) for the parameters of a spec's layers."""
    layers = []
    for ls in spec.layers:
        if isinstance(ls, LinearSpec):
            layers.append(
                _Layer(
                    "linear",
                    ls.activation,
                    dp.tensor(ls.weights, dtype=dtype, requires_grad=True),
                    dp.tensor(ls.biases, dtype=dtype, requires_grad=True),
                )
            )
        elif isinstance(ls, Conv2dSpec):
            layers.append(
                _Layer(
                    "conv2d",
                    ls.activation,
                    dp.tensor(ls.weights, dtype=dtype, requires_grad=True),
                    dp.tensor(ls.biases, dtype=dtype, requires_grad=True),
                    stride=(ls.stride, ls.stride),
                    padding=ls.padding,
                    kernel_size=tuple(ls.weights.shape[2:]),
                    kernel_as_matrix=ls.kernel_as_matrix,
                )
            )
        elif isinstance(ls, MaxPool2dSpec):
            layers.append(
                _Layer(
                    "maxpool2d",
                    "linear",
                    stride=ls.stride,
                    padding=ls.padding,
                    kernel_size=ls.kernel_size,
                )
            )
    return layers


def spec_graph(spec: NetworkSpec) -> tuple[Tensor, dict[str, Tensor]]:
    """The loss of the spec's first step, after ``backward(retain_graph=True)`` with every
    intermediate gradient kept, and names for its tensors (for :func:`deltaprop.viz.graph`)."""
    from deltaprop.viz import retain_grads

    dtype = np.dtype(spec.dtype)
    layers = _layers_from_spec(spec, dtype)
    net = _Network(layers, spec.loss, spec.reduction)
    idx = _batches(spec.inputs.shape[0], spec.batch_size or spec.inputs.shape[0], 1)[0]
    x = dp.tensor(spec.inputs[idx], dtype=dtype)
    t = dp.tensor(spec.targets[idx], dtype=dtype)
    nets, outs = net.forward(x)
    loss = net.loss(nets, outs, t)
    names: dict[str, Tensor] = {"X": x, "T": t}
    for i, (lay, n_, o_) in enumerate(zip(layers, nets, outs)):
        if lay.weight is not None:
            names[f"W{i + 1}"] = lay.weight
            if lay.bias is not None:
                names[f"b{i + 1}"] = lay.bias
        names[f"net{i + 1}"] = n_
        if o_ is not n_:
            names[f"out{i + 1}"] = o_
    names["E"] = loss
    retain_grads(loss)
    loss.backward(retain_graph=True)
    return loss, names


_MODULE_ACTIVATIONS = {
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "ReLU": "relu",
    "Softmax": "softmax",
    "Identity": "linear",
}


def _layers_from_model(model: Any) -> list[_Layer]:
    """The layers of a Sequential of Linear/Conv2d/MaxPool2d (+ activation, Flatten) modules."""
    modules = list(model) if hasattr(model, "__iter__") else [model]
    layers: list[_Layer] = []
    for k, mod in enumerate(modules):
        kind = type(mod).__name__
        if kind == "Linear":
            layers.append(_Layer("linear", "linear", mod.weight, mod.bias))
        elif kind == "Conv2d":
            st, pd, dl = mod.stride, mod.padding, getattr(mod, "dilation", 1)
            st = tuple(st) if isinstance(st, (tuple, list)) else (st, st)
            pd = tuple(pd) if isinstance(pd, (tuple, list)) else pd
            dl = tuple(dl) if isinstance(dl, (tuple, list)) else (dl, dl)
            if (
                isinstance(pd, str)
                or (isinstance(pd, tuple) and pd[0] != pd[1])
                or st[0] != st[1]
                or dl != (1, 1)
            ):
                raise TypeError(
                    f"explain.trace: module {k} (Conv2d) must use an int padding, equal strides "
                    f"and no dilation; got stride={mod.stride}, padding={mod.padding!r}"
                )
            pd = pd[0] if isinstance(pd, tuple) else pd
            ks = mod.weight.shape[2:]
            layers.append(
                _Layer(
                    "conv2d",
                    "linear",
                    mod.weight,
                    mod.bias,
                    stride=st,
                    padding=pd,
                    kernel_size=tuple(ks),
                )
            )
        elif kind == "MaxPool2d":
            ks = mod.kernel_size
            ks = (ks, ks) if isinstance(ks, int) else tuple(ks)
            st = mod.stride if mod.stride is not None else ks
            st = (st, st) if isinstance(st, int) else tuple(st)
            pd = mod.padding if isinstance(mod.padding, int) else mod.padding[0]
            layers.append(_Layer("maxpool2d", "linear", stride=st, padding=pd, kernel_size=ks))
        elif kind in _MODULE_ACTIVATIONS:
            if not layers or layers[-1].activation != "linear" or layers[-1].type == "maxpool2d":
                raise TypeError(
                    f"explain.trace: module {k} ({kind}) must follow a Linear or Conv2d layer"
                )
            if kind == "Softmax" and getattr(mod, "dim", -1) not in (-1, 1, None):
                raise TypeError(f"explain.trace: module {k} (Softmax) must use dim=-1")
            layers[-1].activation = _MODULE_ACTIVATIONS[kind]
        elif kind == "Flatten":
            continue  # linear layers flatten their input anyway
        else:
            raise TypeError(
                f"explain.trace: module {k} ({kind}) is not supported; expected Linear, Conv2d, "
                "MaxPool2d, Flatten, Sigmoid, Tanh, ReLU or Softmax"
            )
    if not layers:
        raise TypeError("explain.trace: the model has no Linear or Conv2d layer")
    return layers


def trace(
    model: Any,
    x: Any,
    t: Any,
    loss: str = "mse_half",
    lr: float = 0.1,
    steps: int = 1,
    *,
    reduction: str | None = None,
    batch_size: int | None = None,
    train_biases: bool = True,
    verify: bool = False,
    title: str = "deltaprop.explain.trace",
) -> NetworkTrace:
    """Explain ``steps`` SGD steps of ``model`` (a Sequential of Linear + activation modules;
    Conv2d, MaxPool2d and Flatten also work) on inputs ``x`` and targets ``t``.

    The model's own parameters are used and trained in place, exactly as a training loop with
    ``SGD(model.parameters(), lr)`` would; pass a copy to keep the original. ``t`` holds one row
    per sample (class indices for ``loss="ce"`` are accepted too).

    >>> import deltaprop as dp
    >>> from deltaprop import nn
    >>> model = nn.Sequential(nn.Linear(2, 2), nn.Sigmoid(), nn.Linear(2, 2), nn.Sigmoid())
    >>> tr = trace(model, [[0.05, 0.10]], [[0.01, 0.99]], loss="mse_half", lr=0.5)
    >>> print(tr.to_markdown())  # doctest: +SKIP
    """
    if loss not in LOSSES:
        raise ValueError(f"explain.trace: loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    if reduction is None:
        reduction = "sum" if loss == "mse_half" else "mean"
    if reduction not in ("sum", "mean"):
        raise ValueError(f"explain.trace: reduction must be 'sum' or 'mean', got {reduction!r}")
    layers = _layers_from_model(model)
    dtype = layers[0].weight.dtype
    xs = np.asarray(x.data if isinstance(x, Tensor) else x, dtype=np.float64)
    ts = np.asarray(t.data if isinstance(t, Tensor) else t, dtype=np.float64)
    if layers[0].type == "linear" and xs.ndim == 1:
        xs = xs[None]
    if xs.ndim < 2:
        raise ValueError(f"explain.trace: x must have one row per sample, got shape {xs.shape}")
    if layers[-1].type != "linear":
        raise ValueError("explain.trace: the last layer must be a Linear layer (+ activation)")
    k = layers[-1].weight.shape[0]
    m = xs.shape[0]
    last = layers[-1].activation
    if loss == "ce" and last != "softmax":
        raise ValueError(
            f"explain.trace: loss 'ce' is softmax + cross entropy; end the model with "
            f"nn.Softmax(dim=-1), got activation {last!r}"
        )
    if loss == "bce" and last != "sigmoid":
        raise ValueError(f"explain.trace: loss 'bce' needs a final nn.Sigmoid(), got {last!r}")
    as_indices = False
    if loss == "ce" and ts.ndim == 1 and ts.size == m and k > 1:
        ts = np.eye(k)[ts.astype(np.int64)]
        as_indices = True
    if ts.ndim == 1:
        ts = ts[None] if (m == 1 and ts.size == k) else ts[:, None]
    if ts.shape != (m, k):
        raise ValueError(
            f"explain.trace: t must have shape ({m}, {k}) (one row per sample, one column per "
            f"output), got {ts.shape}"
        )
    if batch_size is not None and not 1 <= batch_size <= m:
        raise ValueError(f"explain.trace: batch_size must be in 1..{m}, got {batch_size}")
    for lay in layers:
        for p in (lay.weight, lay.bias):
            if p is not None and not p.requires_grad:
                p.requires_grad_(True)
    return _run(
        layers,
        xs,
        ts,
        title=title,
        loss=loss,
        reduction=reduction,
        lr=float(lr),
        steps=steps,
        batch_size=batch_size,
        train_biases=train_biases,
        verify=verify,
        dtype=dtype,
        target_indices=as_indices,
    )


__all__ = [
    "trace",
    "trace_spec",
    "NetworkTrace",
    "StepRecord",
    "LayerRecord",
    "Verification",
    "ACTIVATIONS",
]
