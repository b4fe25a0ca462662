"""Converters of the loss functions of ``nn.functional``, composed of elementwise ONNX ops.

Each writes the formula its op's ``forward`` computes (see :mod:`deltaprop.ops.loss`), with the
same reduction: ``'none'`` keeps the per-element losses, ``'sum'`` adds them, ``'mean'`` divides
by the op's denominator (the number of elements, or the total weight of the non-ignored
targets for class-index targets). Class-index targets are an int64 input of the graph.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deltaprop.errors import ExportError
from deltaprop.onnx.builder import GraphBuilder, Value, broadcast_dyn
from deltaprop.ops import loss

__all__ = ["LOSS_CONVERTERS"]


def _s(b: GraphBuilder, value: float, x: Value) -> str:
    return b.const(np.asarray(value, dtype=x.dtype), hint="scalar")


def _reduce(b: GraphBuilder, l: str, reduction: str, denom: str | None = None) -> str:
    """The reduction of the per-element losses ``l`` (``denom``: the 'mean' divisor)."""
    if reduction == "none":
        return l
    if reduction == "mean" and denom is None:
        return b.reduce("ReduceMean", l, None, False)
    total = b.reduce("ReduceSum", l, None, False)
    return total if reduction == "sum" else b.node("Div", [total, denom])


def _result(y: np.ndarray, name: str, reduction: str, dyn: dict) -> Value:
    return Value(name, tuple(y.shape), y.dtype, dyn if reduction == "none" else {})


def _weighted(b: GraphBuilder, l: str, weight: np.ndarray | None, x: Value) -> str:
    if weight is None:
        return l
    return b.node("Mul", [l, b.const(np.asarray(weight, dtype=x.dtype), hint="weight")])


def _mse(b: GraphBuilder, fn: Any, ins: list[Value], y: np.ndarray) -> Value:
    """l = (x - t)^2."""
    x, t = ins
    d = b.node("Sub", [x.name, t.name])
    l = b.node("Mul", [d, d])
    return _result(y, _reduce(b, l, fn.reduction), fn.reduction, broadcast_dyn(ins, y.ndim))


def _bce(b: GraphBuilder, fn: Any, ins: list[Value], y: np.ndarray) -> Value:
    """l = -w [t max(log x, -100) + (1 - t) max(log(1 - x), -100)]."""
    x, t = ins
    floor = _s(b, -100.0, x)
    log_x = b.node("Max", [b.node("Log", [x.name]), floor])
    log_1mx = b.node("Max", [b.node("Log", [b.node("Sub", [_s(b, 1.0, x), x.name])]), floor])
    l = b.node("Sub", [b.node("Mul", [b.node("Sub", [t.name, _s(b, 1.0, x)]), log_1mx]),
                       b.node("Mul", [t.name, log_x])])  # fmt: skip
    l = _weighted(b, l, fn.weight, x)
    return _result(y, _reduce(b, l, fn.reduction), fn.reduction, broadcast_dyn(ins, y.ndim))


def _bce_logits(b: GraphBuilder, fn: Any, ins: list[Value], y: np.ndarray) -> Value:
    """l = w [(1 - t) x + q softplus(-x)],  softplus(-x) = max(-x, 0) + log(1 + exp(-|x|)),
    q = (pos_weight - 1) t + 1."""
    x, t = ins
    e = b.node("Exp", [b.node("Neg", [b.node("Abs", [x.name])])])
    sp = b.node("Add", [b.node("Relu", [b.node("Neg", [x.name])]),
                        b.node("Log", [b.node("Add", [e, _s(b, 1.0, x)])])])  # fmt: skip
    if fn.pos_weight is not None:
        pw = b.const(np.asarray(fn.pos_weight, dtype=x.dtype) - 1, hint="pos_weight_minus_1")
        q = b.node("Add", [b.node("Mul", [pw, t.name]), _s(b, 1.0, x)])
        sp = b.node("Mul", [q, sp])
    l = b.node("Add", [b.node("Mul", [b.node("Sub", [_s(b, 1.0, x), t.name]), x.name]), sp])
    l = _weighted(b, l, fn.weight, x)
    return _result(y, _reduce(b, l, fn.reduction), fn.reduction, broadcast_dyn(ins, y.ndim))


def _class_axis_weight(b: GraphBuilder, weight: np.ndarray, x: Value) -> str:
    """The (C,) class weights shaped to multiply ``x`` along its class axis."""
    shape = (-1,) + (1,) * max(x.ndim - 2, 0)
    return b.const(np.asarray(weight, dtype=x.dtype).reshape(shape), hint="class_weight")


def _cross_entropy(b: GraphBuilder, fn: Any, ins: list[Value], y: np.ndarray) -> Value:
    """Class-index targets: l = (1-eps) w_y (-logp_y) + (eps/C) sum_c w_c (-logp_c), ignored
    rows 0; 'mean' divides by the total weight of the non-ignored rows."""
    x, t = ins
    if x.ndim == 1:  # one sample (C,) with a 0-d target: as a batch of one
        x = Value(b.unsqueeze(x.name, [0]), (1, *x.shape), x.dtype)
        t = Value(b.unsqueeze(t.name, [0]), (1,), t.dtype)
    c = x.shape[1]
    target = t.name if t.dtype == np.int64 else b.node("Cast", [t.name], to=7)  # INT64
    logp = b.node("LogSoftmax", [x.name], axis=1)
    weight = (
        b.const(np.asarray(fn.weight, x.dtype), hint="weight") if fn.weight is not None else None
    )
    nll_inputs = [logp, target] + ([weight] if weight is not None else [])
    l = b.node("NegativeLogLikelihoodLoss", nll_inputs, reduction="none",
               ignore_index=int(fn.ignore_index))  # fmt: skip
    ignore = b.const(np.asarray(fn.ignore_index, dtype=np.int64), hint="ignore_index")
    kept = b.node("Not", [b.node("Equal", [target, ignore])])
    valid = b.node("Cast", [kept], to=b.helper.np_dtype_to_tensor_dtype(np.dtype(x.dtype)))
    if fn.eps:
        wl = logp if weight is None else b.node("Mul", [logp, _class_axis_weight(b, fn.weight, x)])
        smooth = b.node("Neg", [b.reduce("ReduceSum", wl, [1], False)])
        smooth = b.node("Mul", [b.node("Mul", [smooth, valid]), _s(b, fn.eps / c, x)])
        l = b.node("Add", [b.node("Mul", [l, _s(b, 1.0 - fn.eps, x)]), smooth])
    denom = None
    if fn.reduction == "mean":
        if weight is None:
            denom = b.reduce("ReduceSum", valid, None, False)
        else:
            safe = b.node("Where", [kept, target, b.const(np.asarray(0, np.int64), hint="zero")])
            wy = b.node("Mul", [b.node("Gather", [weight, safe], axis=0), valid])
            denom = b.reduce("ReduceSum", wy, None, False)
    if ins[0].ndim == 1 and fn.reduction == "none":
        l = b.squeeze(l, [0])
    return _result(y, _reduce(b, l, fn.reduction, denom), fn.reduction, dict(ins[1].dyn))


def _cross_entropy_prob(b: GraphBuilder, fn: Any, ins: list[Value], y: np.ndarray) -> Value:
    """Class-probability targets: l = -sum_c a_c logp_c,  a = w ((1-eps) t + eps/C)."""
    x, t = ins
    axis = 1 if x.ndim >= 2 else 0
    c = x.shape[axis]
    logp = b.node("LogSoftmax", [x.name], axis=axis)
    a = t.name
    if fn.eps:
        a = b.node("Add", [b.node("Mul", [a, _s(b, 1.0 - fn.eps, x)]), _s(b, fn.eps / c, x)])
    if fn.weight is not None:
        a = b.node("Mul", [a, _class_axis_weight(b, fn.weight, x)])
    l = b.node("Neg", [b.reduce("ReduceSum", b.node("Mul", [logp, a]), [axis], False)])
    dyn = {(a_ if a_ < axis else a_ - 1): s for a_, s in broadcast_dyn(ins, x.ndim).items()
           if a_ != axis}  # fmt: skip
    return _result(y, _reduce(b, l, fn.reduction), fn.reduction, dyn)


def _nll(b: GraphBuilder, fn: Any, ins: list[Value], y: np.ndarray) -> Value:
    """l_i = -w_y x_{i,y}: the op holds its targets (a constant of the traced run)."""
    x = ins[0]
    if x.dyn:
        raise ExportError(
            "nll_loss keeps its targets inside the op, so they are constants of the traced "
            "run and cannot follow a dynamic axis; export it without dynamic_axes, or use "
            "cross_entropy, whose targets are an input"
        )
    tg = fn.tg
    rows_shape = (x.shape[0],) + x.shape[2:] if x.ndim >= 2 else ()
    x2 = x.name if x.ndim >= 2 else b.unsqueeze(x.name, [0])
    index = tg.y.reshape((rows_shape or (1,))[:1] + (1,) + tuple(rows_shape[1:]))
    picked = b.node("GatherElements", [x2, b.const(index.astype(np.int64), hint="targets")],
                    axis=1)  # fmt: skip
    l = b.node("Neg", [b.squeeze(picked, [1])])
    if x.ndim == 1:
        l = b.squeeze(l, [0])
    rw = tg.row_weight()
    if rw is not None:
        l = b.node("Mul", [l, b.const(np.asarray(rw, x.dtype).reshape(rows_shape), hint="rw")])
    denom = _s(b, tg.denom, x) if fn.reduction == "mean" else None
    return _result(y, _reduce(b, l, fn.reduction, denom), fn.reduction, {})


LOSS_CONVERTERS = {
    loss.MSELossFunction: _mse,
    loss.BinaryCrossEntropyFunction: _bce,
    loss.BCEWithLogitsFunction: _bce_logits,
    loss.CrossEntropyFunction: _cross_entropy,
    loss.CrossEntropyProbFunction: _cross_entropy_prob,
    loss.NLLLossFunction: _nll,
}
