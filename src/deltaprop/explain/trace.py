"""Run training steps of a small network on the engine and record every number it produces.

The explainer computes nothing on its own. Each step does what a training loop does, on
deltaprop tensors:

1. forward, layer by layer: ``net = module(o_prev)`` (``Linear``, ``Conv2d``, pooling,
   ``LayerNorm``, ``BatchNorm`` in training mode, ``Dropout``) with ``net.retain_grad()``,
   then ``o = f(net)`` with ``o.retain_grad()``;
2. the loss ``E`` (engine ops), the activation's local derivative ``do/dnet`` from
   ``deltaprop.autograd.grad(o, net, ones)`` (the engine's own backward formula), and a dropout
   layer's mask as the local derivative of its output with respect to its input;
3. ``E.backward()``: ``delta = net.grad`` (dE/dnet), ``o.grad`` (dE/do), ``W.grad``, ``b.grad``
   and each layer input's ``.grad``;
4. the SGD update ``w <- w - eta * dE/dw`` by ``deltaprop.optim.SGD``, and the new weights are
   read back.

What is recorded are copies of the engine tensors' arrays. The displays of convolution,
pooling and normalization (im2col, argmax mask, mean and variance, the three parts of the
normalization's backward) are rebuilt from the engine's inputs, and :mod:`.conv` and
:mod:`.norm` check that they equal the engine's values and gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

import deltaprop as dp
from deltaprop.explain.conv import conv_display, pool_display
from deltaprop.explain.explained import Explained
from deltaprop.explain.network import LOSSES, Layer, Network, layers_from_model, unit_names
from deltaprop.explain.norm import norm_display
from deltaprop.explain.records import LayerRecord, NetworkRecord, StepRecord
from deltaprop.explain.spec import NetworkSpec
from deltaprop.explain.specvalues import SpecError
from deltaprop.explain.verify import verify_step
from deltaprop.models import build_sequential
from deltaprop.optim import SGD
from deltaprop.random import get_rng_state, manual_seed, set_rng_state
from deltaprop.tensor import Tensor


@dataclass(repr=False)
class NetworkTrace(NetworkRecord, Explained):
    """A recorded worked example of backpropagation: render it with ``to_text()``,
    ``to_markdown()``, ``to_latex()``, ``to_html()``, ``to_json()``; in Jupyter it shows itself
    as HTML.
    """

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.title!r}: {len(self.steps)} step(s), loss {self.loss}, "
            f"final E = {self.steps[-1].loss:.6g}>"
        )


def _copy(t: Tensor | None) -> np.ndarray | None:
    return None if t is None else np.array(t.data, copy=True)


def _grad(t: Tensor) -> np.ndarray | None:
    return _copy(t.grad) if t.requires_grad else None


def _run_step(
    net: Network,
    x_np: np.ndarray,
    t_np: np.ndarray,
    lr: float,
    train_biases: bool,
    names: list[list[str]],
    verify: bool,
    dtype: np.dtype,
    source: str,
) -> tuple[float, list[LayerRecord], Any]:
    layers = net.layers
    for lay in layers:
        for p in (lay.weight, lay.bias):
            if p is not None:
                p.grad = None
    x = dp.tensor(x_np, dtype=dtype, requires_grad=layers[0].type != "linear")
    t = dp.tensor(t_np, dtype=dtype)
    ins, nets, outs = net.forward(x)
    for n_, o_ in zip(nets, outs):
        if n_.requires_grad:
            n_.retain_grad()
        if o_ is not n_ and o_.requires_grad:
            o_.retain_grad()
    loss = net.loss(nets, outs, t)
    locals_: list[np.ndarray | None] = []
    masks: list[np.ndarray | None] = []
    for lay, i_, n_, o_ in zip(layers, ins, nets, outs):
        local = mask = None
        if lay.activation != "softmax" and lay.type not in ("maxpool2d", "avgpool2d", "dropout"):
            (g,) = dp.autograd.grad(o_, n_, grad_outputs=dp.ones_like(o_), retain_graph=True)
            local = _copy(g)
        if lay.type == "dropout":  # the mask is the local derivative d out / d in
            (g,) = dp.autograd.grad(n_, i_, grad_outputs=dp.ones_like(n_), retain_graph=True)
            mask = _copy(g)
        locals_.append(local)
        masks.append(mask)
    loss.backward()
    _check_finite(loss, nets, layers, source)

    records = []
    for i, (lay, i_, n_, o_) in enumerate(zip(layers, ins, nets, outs)):
        in_names = names[i]
        if lay.type == "linear" and not in_names:
            in_names = [f"x{j + 1}" for j in range(lay.weight.shape[1])]
        rec = LayerRecord(
            index=i,
            type=lay.type,
            activation=lay.activation,
            names=names[i + 1],
            in_names=in_names,
            net=_copy(n_),
            out=_copy(o_),
            delta=_copy(n_.grad) if n_.requires_grad else np.zeros_like(n_.data),
            out_grad=_copy(o_.grad if o_ is not n_ else n_.grad),
            local=locals_[i],
            input=_copy(i_),
            input_grad=_grad(i_),
            weights=_copy(lay.weight),
            biases=_copy(lay.bias),
            weight_grad=_copy(lay.weight.grad) if lay.weight is not None else None,
            bias_grad=_copy(lay.bias.grad) if lay.bias is not None else None,
            stride=lay.stride,
            padding=lay.padding,
            kernel_size=lay.kernel_size,
            eps=float(getattr(lay.module, "eps", 0.0)),
            norm_size=int(np.prod(getattr(lay.module, "normalized_shape", ()), dtype=np.int64)),
            p=float(getattr(lay.module, "p", 0.0)) if lay.type == "dropout" else 0.0,
            mask=masks[i],
        )
        if rec.type == "conv2d":
            rec.conv = conv_display(rec)
        elif rec.type in ("maxpool2d", "avgpool2d"):
            rec.pool = pool_display(rec)
        elif rec.type in ("layernorm", "batchnorm"):
            rec.norm = norm_display(rec)
        records.append(rec)
    loss_value = float(loss.item())

    verification = verify_step(net, x_np, t_np, records, dtype) if verify else None

    trained = [lay.weight for lay in layers if lay.weight is not None]
    if train_biases:
        trained += [lay.bias for lay in layers if lay.bias is not None]
    if trained:
        SGD(trained, lr=lr).step()
    for rec, lay in zip(records, layers):
        rec.weights_after = _copy(lay.weight)
        rec.biases_after = _copy(lay.bias)
        for after in (rec.weights_after, rec.biases_after):
            if after is not None and not np.all(np.isfinite(after)):
                raise SpecError(
                    f"{source}: the update of layer {rec.index + 1} overflows (lr = {lr:g} times "
                    "the gradient is not a finite number); use a smaller lr"
                )
    return loss_value, records, verification


def _check_finite(loss: Tensor, nets: list[Tensor], layers: list[Layer], source: str) -> None:
    """:class:`SpecError` when a value or gradient of the step is not a finite number: the
    explanation would be a page of nan."""
    values = [("the loss", loss.data)]
    for i, (n_, lay) in enumerate(zip(nets, layers)):
        values.append((f"net of layer {i + 1}", n_.data))
        if n_.grad is not None:
            values.append((f"delta of layer {i + 1}", n_.grad.data))
        for p in (lay.weight, lay.bias):
            if p is not None and p.grad is not None:
                values.append((f"a gradient of layer {i + 1}", p.grad.data))
    for what, arr in values:
        if not np.all(np.isfinite(arr)):
            raise SpecError(
                f"{source}: {what} is not a finite number (the values overflow the "
                f"{arr.dtype} range); use smaller weights, inputs or lr"
            )


def batches(m: int, batch_size: int, steps: int) -> list[list[int]]:
    """Sample indices of each step: consecutive mini-batches, cycling through the data."""
    out = []
    start = 0
    for _ in range(steps):
        out.append([(start + k) % m for k in range(batch_size)])
        start = (start + batch_size) % m
    return out


def run(
    layers: list[Layer],
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
    source: str = "explain.trace",
) -> NetworkTrace:
    """Run ``steps`` SGD steps of ``layers`` and record them (``source`` names the spec or the
    function in error messages)."""
    net = Network(layers, loss, reduction)
    m = inputs.shape[0]
    bs = batch_size or m
    names = unit_names(layers, tuple(inputs.shape[1:]))
    step_records = []
    for k, idx in enumerate(batches(m, bs, steps)):
        x_np, t_np = inputs[idx], targets[idx]
        with np.errstate(all="ignore"):  # an overflow is reported by _check_finite instead
            e, recs, ver = _run_step(
                net, x_np, t_np, lr, train_biases, names, verify, dtype, f"{source}: step {k + 1}"
            )
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
        optimizer="deltaprop.optim.SGD",
    )


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
    """Explain ``steps`` SGD steps of ``model`` on inputs ``x`` and targets ``t``.

    ``model`` is a ``Sequential`` of ``Linear``, ``Conv2d``, ``MaxPool2d``, ``AvgPool2d``,
    ``LayerNorm``, ``BatchNorm1d/2d`` (training mode: statistics of the mini-batch) and
    ``Dropout`` modules, each optionally followed by ``Sigmoid``, ``Tanh``, ``ReLU`` or
    ``Softmax(dim=-1)`` (``Flatten`` is allowed). The model's own parameters are used and trained
    in place, exactly as a training loop with ``SGD(model.parameters(), lr)`` would (dropout
    masks come from deltaprop's global generator: seed it with ``dp.manual_seed``); pass a copy
    to keep the original. ``t`` holds one row per sample (class indices for ``loss="ce"``).

    >>> import deltaprop as dp
    >>> from deltaprop import nn
    >>> model = nn.Sequential(nn.Linear(2, 2), nn.Sigmoid(), nn.Linear(2, 2), nn.Sigmoid())
    >>> tr = trace(model.double(), [[0.05, 0.10]], [[0.01, 0.99]], loss="mse_half", lr=0.5)
    >>> tr.steps[0].layers[1].delta.shape
    (1, 2)
    """
    if loss not in LOSSES:
        raise ValueError(f"explain.trace: loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    if reduction is None:
        reduction = "sum" if loss == "mse_half" else "mean"
    if reduction not in ("sum", "mean"):
        raise ValueError(f"explain.trace: reduction must be 'sum' or 'mean', got {reduction!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"explain.trace: steps must be a positive int, got {steps!r}")
    layers = layers_from_model(model)
    if not all(getattr(lay.module, "training", True) for lay in layers):
        raise ValueError(
            "explain.trace explains training steps: call model.train() first (batch norm uses "
            "the mini-batch statistics and dropout draws masks in training mode)"
        )
    params = [p for lay in layers for p in (lay.weight, lay.bias) if p is not None]
    dtype = params[0].dtype if params else np.dtype(np.float32)
    xs = np.asarray(x.data if isinstance(x, Tensor) else x, dtype=np.float64)
    ts = np.asarray(t.data if isinstance(t, Tensor) else t, dtype=np.float64)
    if layers[0].type == "linear" and xs.ndim == 1:
        xs = xs[None]
    if xs.ndim < 2:
        raise ValueError(f"explain.trace: x must have one row per sample, got shape {xs.shape}")
    m = xs.shape[0]
    out_shape = _output_shape(layers, tuple(xs.shape[1:]))
    if len(out_shape) != 1:
        raise ValueError("explain.trace: the model must end with a vector per sample (add Linear)")
    k = out_shape[0]
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
    for p in params:
        if not p.requires_grad:
            p.requires_grad_(True)
    return run(
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


def _output_shape(layers: list[Layer], shape: tuple[int, ...]) -> tuple[int, ...]:
    """The per-sample output shape (only its rank and the last linear layer's size matter)."""
    for lay in layers:
        if lay.type == "linear":
            shape = (lay.weight.shape[0],)
        elif lay.type in ("conv2d", "maxpool2d", "avgpool2d") and len(shape) != 3:
            raise ValueError(f"explain.trace: a {lay.type} layer needs image samples (C, H, W)")
    return shape


# ----------------------------------------------------------------------------------------------
# specs: built by deltaprop.models, like a training run's model
# ----------------------------------------------------------------------------------------------


def model_of_spec(spec: NetworkSpec) -> Any:
    """The spec's ``nn.Sequential`` (:func:`deltaprop.models.build_sequential`), in the spec's
    dtype, with the spec's parameter values (the global generator is left as it was)."""
    state = get_rng_state()
    try:
        model = build_sequential(spec.layers)
    finally:
        set_rng_state(state)
    model = model.double() if spec.dtype == "float64" else model.float()
    modules = list(model)
    with dp.no_grad():
        for i, values in spec.net.params.items():
            for name, v in values.items():
                getattr(modules[i], name).copy_(dp.tensor(v, dtype=spec.dtype))
    return model


def trace_spec(spec: NetworkSpec, verify: bool = False) -> NetworkTrace:
    """Run the steps of a network spec on the engine and record them (dropout masks drawn with
    the spec's ``seed``; the global generator is restored afterwards).

    >>> from deltaprop.explain.spec import parse_spec
    >>> spec = parse_spec({"loss": "mse_half", "lr": 0.5, "sizes": [2, 1], "seed": 0,
    ...                    "data": {"inputs": [[1.0, 0.0]], "targets": [[1.0]]}})
    >>> tr = trace_spec(spec)
    >>> len(tr.steps), tr.steps[0].layers[0].delta.shape
    (1, (1, 1))
    """
    model = model_of_spec(spec)
    state = get_rng_state()
    manual_seed(spec.seed)
    try:
        tr = run(
            layers_from_model(model),
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
            dtype=np.dtype(spec.dtype),
            description=spec.description,
            target_indices=spec.target_indices,
            source=spec.source,
        )
    finally:
        set_rng_state(state)
    for st in tr.steps:
        for rec in st.layers:
            rec.kernel_as_matrix = rec.type == "conv2d" and spec.net.kernel_as_matrix
    tr.extra["squeeze_channels"] = spec.inputs.shape[1:2] == (1,) and spec.net.kernel_as_matrix
    tr.extra["seed"] = spec.seed
    return tr


def spec_graph(spec: NetworkSpec) -> tuple[Tensor, dict[str, Tensor]]:
    """The loss of the spec's first step, after ``backward(retain_graph=True)`` with every
    intermediate gradient kept, and names for its tensors (for :func:`deltaprop.viz.graph`)."""
    from deltaprop.viz import retain_grads

    model = model_of_spec(spec)
    layers = layers_from_model(model)
    net = Network(layers, spec.loss, spec.reduction)
    idx = batches(spec.inputs.shape[0], spec.batch_size or spec.inputs.shape[0], 1)[0]
    x = dp.tensor(spec.inputs[idx], dtype=spec.dtype)
    t = dp.tensor(spec.targets[idx], dtype=spec.dtype)
    state = get_rng_state()
    manual_seed(spec.seed)
    try:
        _, nets, outs = net.forward(x)
    finally:
        set_rng_state(state)
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
