"""One converter per recorded op: the ONNX nodes that compute what the op's ``forward`` computed.

Each converter takes the graph builder, the recorded Function (its saved attributes: stride,
padding, axes, ...), the :class:`~deltaprop.onnx.builder.Value` of each input and the output
array of the traced run, and returns the output's Value. Besides the ONNX names, a converter
works out which output axes stay dynamic, so that shapes written into the graph (``Reshape``
targets, ``Expand`` sizes) leave the batch axis free.

:data:`CONVERTERS` maps each op class to its converter; an op that is not in it cannot be
exported (:func:`deltaprop.onnx.export` names it and the module where it ran).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from deltaprop.errors import ExportError
from deltaprop.onnx.builder import OPAQUE, Dim, GraphBuilder, Value, broadcast_dyn
from deltaprop.onnx.convert_loss import LOSS_CONVERTERS
from deltaprop.ops import activation as act
from deltaprop.ops import conv, dropout, elementwise, linear, matmul, norm, pool, reduce, shape
from deltaprop.ops.common import conv_output_size

_SQRT1_2 = 1.0 / math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_K = 0.044715
_INT64_MAX = np.iinfo(np.int64).max


def _out(b: GraphBuilder, name: str, y: np.ndarray, dyn: dict[int, Dim]) -> Value:
    return Value(name, tuple(y.shape), y.dtype, dyn)


def _same(b: GraphBuilder, name: str, y: np.ndarray, x: Value) -> Value:
    """An output with the input's shape and dynamic axes."""
    return Value(name, tuple(y.shape), y.dtype, dict(x.dyn))


def _scalar(b: GraphBuilder, value: float, like: Value) -> str:
    return b.const(np.asarray(value, dtype=like.dtype), hint="scalar")


# ----------------------------------------------------------------------------------------------
# elementwise
# ----------------------------------------------------------------------------------------------

_BINARY = {
    elementwise.AddFunction: "Add",
    elementwise.SubFunction: "Sub",
    elementwise.MulFunction: "Mul",
    elementwise.DivFunction: "Div",
    elementwise.PowFunction: "Pow",
    elementwise.MaximumFunction: "Max",
    elementwise.MinimumFunction: "Min",
}

_UNARY = {
    elementwise.NegFunction: "Neg",
    elementwise.ExpFunction: "Exp",
    elementwise.LogFunction: "Log",
    elementwise.SqrtFunction: "Sqrt",
    elementwise.AbsFunction: "Abs",
    elementwise.CloneFunction: "Identity",
    act.ReluFunction: "Relu",
    act.SigmoidFunction: "Sigmoid",
    act.TanhFunction: "Tanh",
    dropout.DropoutFunction: "Identity",  # inference: dropout is the identity
}


def _binary(b: GraphBuilder, fn: Any, ins: list[Value], y: np.ndarray) -> Value:
    name = b.node(_BINARY[type(fn)], [ins[0].name, ins[1].name])
    return _out(b, name, y, broadcast_dyn(ins, y.ndim))


def _unary(b: GraphBuilder, fn: Any, ins: list[Value], y: np.ndarray) -> Value:
    return _same(b, b.node(_UNARY[type(fn)], [ins[0].name]), y, ins[0])


def _pow_const(b: GraphBuilder, fn: Any, ins: list[Value], y: np.ndarray) -> Value:
    x = ins[0]
    if fn.p == 2:  # x * x: what NumPy computes for x ** 2
        name = b.node("Mul", [x.name, x.name])
    elif fn.p == 0.5:
        name = b.node("Sqrt", [x.name])
    else:
        name = b.node("Pow", [x.name, _scalar(b, fn.p, x)])
    return _same(b, name, y, x)


def _clamp(b: GraphBuilder, fn: Any, ins: list[Value], y: np.ndarray) -> Value:
    x = ins[0]
    lo = _scalar(b, fn.lo, x) if fn.lo is not None else ""
    hi = _scalar(b, fn.hi, x) if fn.hi is not None else ""
    return _same(b, b.node("Clip", [x.name, lo, hi]), y, x)


def _where(b: GraphBuilder, fn: Any, ins: list[Value], y: np.ndarray) -> Value:
    cond = np.asarray(fn.cond, dtype=np.bool_)
    lead = y.ndim - cond.ndim
    for axis in broadcast_dyn(ins, y.ndim):
        if axis >= lead and cond.shape[axis - lead] != 1:
            raise ExportError(
                f"where() has a condition of shape {cond.shape} that spans the dynamic axis "
                f"{axis}: it was computed from the traced input (comparisons are not recorded), "
                "so it would be a constant of the export; use ops such as relu, clamp, maximum"
            )
    cond = b.const(cond, hint="condition")
    name = b.node("Where", [cond, ins[0].name, ins[1].name])
    return _out(b, name, y, broadcast_dyn(ins, y.ndim))


def _cast(b: GraphBuilder, fn: Any, ins: list[Value], y: np.ndarray) -> Value:
    to = b.helper.np_dtype_to_tensor_dtype(np.dtype(fn.dtype))
    return _same(b, b.node("Cast", [ins[0].name], to=to), y, ins[0])


# ----------------------------------------------------------------------------------------------
# activations
# ----------------------------------------------------------------------------------------------


def _leaky_relu(b: GraphBuilder, fn: Any, ins: list[Value], y: np.ndarray) -> Value:
    x = ins[0]
    if x.dtype != np.float64:
        return _same(b, b.node("LeakyRelu", [x.name], alpha=float(fn.slope)), y, x)
    # alpha is a float32 attribute: keep the float64 slope exact with where(x > 0, x, s x)
    positive = b.node("Greater", [x.name, _scalar(b, 0.0, x)])
    scaled = b.node("Mul", [x.name, _scalar(b, fn.slope, x)])
    return _same(b, b.node("Where", [positive, x.name, scaled]), y, x)


def _softmax(b: GraphBuilder, fn: Any, ins: list[Value], y: np.ndarray) -> Value:
    op = "Softmax" if isinstance(fn, act.SoftmaxFunction) else "LogSoftmax"
    return _same(b, b.node(op, [ins[0].name], axis=int(fn.dim)), y, ins[0])


def _normal_cdf(b: GraphBuilder, x: Value) -> str:
    """Phi(x) = (1 + erf(x / sqrt 2)) / 2."""
    e = b.node("Erf", [b.node("Mul", [x.name, _scalar(b, _SQRT1_2, x)])])
    return b.node("Mul", [b.node("Add", [e, _scalar(b, 1.0, x)]), _scalar(b, 0.5, x)])


def _gelu(b: GraphBuilder, fn: Any, ins: list[Value], y: np.ndarray) -> Value:
    x = ins[0]
    if b.opset >= 20:
        name = b.node("Gelu", [x.name], approximate="none")
    else:
        name = b.node("Mul", [x.name, _normal_cdf(b, x)])
    return _same(b, name, y, x)


def _normal_cdf_op(b: GraphBuilder, fn: Any, ins: list[Value], y: np.ndarray) -> Value:
    return _same(b, _normal_cdf(b, ins[0]), y, ins[0])


def _gelu_tanh(b: GraphBuilder, fn: Any, ins: list[Value], y: np.ndarray) -> Value:
    x = ins[0]
    if b.opset >= 20:
        return _same(b, b.node("Gelu", [x.name], approximate="tanh"), y, x)
    # x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2
    cube = b.node("Mul", [b.node("Mul", [x.name, x.name]), x.name])
    inner = b.node("Add", [x.name, b.node("Mul", [cube, _scalar(b, _GELU_K, x)])])
    th = b.node("Tanh", [b.node("Mul", [inner, _scalar(b, _SQRT_2_OVER_PI, x)])])
    half = b.node("Mul", [b.node("Add", [th, _scalar(b, 1.0, x)]), _scalar(b, 0.5, x)])
    return _same(b, b.node("Mul", [x.name, half]), y, x)


# ----------------------------------------------------------------------------------------------
# linear algebra, convolution, pooling, normalisation
# ----------------------------------------------------------------------------------------------


def _linear(b: GraphBuilder, fn: Any, ins: list[Value], y: np.ndarray) -> Value:
    x, w = ins[0], ins[1]
    dyn = {a: s for a, s in x.dyn.items() if a != x.ndim - 1}
    if x.ndim == 2:
        name = b.node("Gemm", [v.name for v in ins], transB=1)
        return _out(b, name, y, dyn)
    name = b.node("MatMul", [x.name, b.node("Transpose", [w.name], perm=[1, 0])])
    if len(ins) == 3:
        name = b.node("Add", [name, ins[2].name])
    return _out(b, name, y, dyn)


def _matmul(b: GraphBuilder, fn: Any, ins: list[Value], y: np.ndarray) -> Value:
    a, c = ins
    name = b.node("MatMul", [a.name, c.name])
    # batch axes broadcast; the rows of a and the columns of c keep their axes
    batch = [Value(v.name, v.shape[:-2], v.dtype, {k: s for k, s in v.dyn.items()
                                                    if k < v.ndim - 2}) for v in ins]  # fmt: skip
    nb = max(len(v.shape) for v in batch)
    dyn = broadcast_dyn(batch, nb)
    if a.ndim >= 2 and a.ndim - 2 in a.dyn:
        dyn[nb] = a.dyn[a.ndim - 2]
    if c.ndim >= 2 and c.ndim - 1 in c.dyn:
        dyn[y.ndim - 1] = c.dyn[c.ndim - 1]
    return _out(b, name, y, dyn)


def _conv(b: GraphBuilder, fn: Any, ins: list[Value], y: np.ndarray) -> Value:
    x, w = ins[0], ins[1]
    top, bottom, left, right = fn.padding
    name = b.node(
        "Conv",
        [v.name for v in ins],
        kernel_shape=list(w.shape[2:]),
        strides=list(fn.stride),
        pads=[top, left, bottom, right],
        dilations=list(fn.dilation),
        group=int(fn.groups),
    )
    return _out(b, name, y, {a: (s if a == 0 else OPAQUE) for a, s in x.dyn.items() if a != 1})


def _pool_attrs(fn: Any, x: Value) -> dict[str, Any]:
    """The window attributes shared by MaxPool and AveragePool. The op keeps the output size,
    not ceil_mode: ceil mode is on when the traced size is not the floor-mode one."""
    ceil = any(
        conv_output_size(size, k, s, p, d, False) != o
        for size, k, s, p, d, o in zip(
            x.shape[2:], fn.kernel, fn.stride, fn.padding, fn.dilation, fn.out_hw
        )
    )
    (ph, pw) = fn.padding
    return {
        "kernel_shape": list(fn.kernel),
        "strides": list(fn.stride),
        "pads": [ph, pw, ph, pw],
        "ceil_mode": int(ceil),
    }


def _pool_dyn(x: Value) -> dict[int, Dim]:
    return {a: (s if a < 2 else OPAQUE) for a, s in x.dyn.items()}


def _max_pool(b: GraphBuilder, fn: Any, ins: list[Value], y: np.ndarray) -> Value:
    x = ins[0]
    name = b.node("MaxPool", [x.name], dilations=list(fn.dilation), **_pool_attrs(fn, x))
    return _out(b, name, y, _pool_dyn(x))


def _avg_pool(b: GraphBuilder, fn: Any, ins: list[Value], y: np.ndarray) -> Value:
    x = ins[0]
    attrs = _pool_attrs(fn, x)
    override = fn.divisor_override
    if override is not None and attrs["ceil_mode"]:
        raise ExportError(
            "avg_pool2d with divisor_override and ceil_mode has no ONNX equivalent "
            "(AveragePool has no divisor override)"
        )
    include_pad = int(bool(fn.count_include_pad) or override is not None)
    name = b.node("AveragePool", [x.name], count_include_pad=include_pad, **attrs)
    if override is not None:  # window sum / divisor = average over the padded window * k / d
        area = fn.kernel[0] * fn.kernel[1]
        name = b.node("Mul", [name, _scalar(b, area / override, x)])
    return _out(b, name, y, _pool_dyn(x))


def _ones_or(b: GraphBuilder, v: Value | None, shape: tuple[int, ...], fill: float, x: Value):
    if v is not None:
        return v.name
    return b.const(np.full(shape, fill, dtype=x.dtype), hint="ones" if fill else "zeros")


def _layer_norm(b: GraphBuilder, fn: Any, ins: list[Value], y: np.ndarray) -> Value:
    x, params = ins[0], ins[1:]
    w = params[0] if fn.has_weight else None
    bias = params[-1] if fn.has_bias else None
    k = fn.n_axes
    norm_shape = x.shape[x.ndim - k :]
    if b.opset >= 17:
        scale = _ones_or(b, w, norm_shape, 1.0, x)
        inputs = [x.name, scale] + ([bias.name] if bias is not None else [])
        name = b.node("LayerNormalization", inputs, axis=-k, epsilon=float(fn.eps))
        return _same(b, name, y, x)
    axes = list(range(x.ndim - k, x.ndim))
    xc = b.node("Sub", [x.name, b.reduce("ReduceMean", x.name, axes, True)])
    var = b.reduce("ReduceMean", b.node("Mul", [xc, xc]), axes, True)
    std = b.node("Sqrt", [b.node("Add", [var, _scalar(b, fn.eps, x)])])
    name = b.node("Div", [xc, std])
    if w is not None:
        name = b.node("Mul", [name, w.name])
    if bias is not None:
        name = b.node("Add", [name, bias.name])
    return _same(b, name, y, x)


def _batch_norm(b: GraphBuilder, fn: Any, ins: list[Value], y: np.ndarray) -> Value:
    if fn.training:
        raise ExportError(
            "batch_norm ran in training mode (batch statistics); export needs the running "
            "statistics: call batch_norm with training=False, or the layer in eval mode"
        )
    x, params = ins[0], ins[1:]
    c = x.shape[1]
    w = params[0] if fn.has_weight else None
    bias = params[-1] if fn.has_bias else None
    tensors = getattr(fn, "running", (None, None))  # the module's buffers, when the op has them
    stats = [
        b.state(np.asarray(fn.running_mean, dtype=x.dtype), "running_mean", tensors[0]),
        b.state(np.asarray(fn.running_var, dtype=x.dtype), "running_var", tensors[1]),
    ]
    inputs = [x.name, _ones_or(b, w, (c,), 1.0, x), _ones_or(b, bias, (c,), 0.0, x), *stats]
    name = b.node("BatchNormalization", inputs, epsilon=float(fn.eps))
    return _same(b, name, y, x)


# ----------------------------------------------------------------------------------------------
# reductions
# ----------------------------------------------------------------------------------------------


def _reduced_dyn(x: Value, axes: tuple[int, ...] | None, keepdims: bool) -> dict:
    if axes is None:
        axes = tuple(range(x.ndim))
    if keepdims:
        return {a: s for a, s in x.dyn.items() if a not in axes}
    kept = [a for a in range(x.ndim) if a not in axes]
    return {kept.index(a): s for a, s in x.dyn.items() if a in kept}


def _reduce(b: GraphBuilder, fn: Any, ins: list[Value], y: np.ndarray) -> Value:
    x = ins[0]
    if isinstance(fn, reduce.SumFunction):
        op = "ReduceSum"
    elif isinstance(fn, reduce.MeanFunction):
        op = "ReduceMean"
    else:
        op = "ReduceMax" if fn.is_max else "ReduceMin"
    axes = None if fn.axes is None else list(fn.axes)
    name = b.reduce(op, x.name, axes, fn.keepdims)
    return _out(b, name, y, _reduced_dyn(x, fn.axes, fn.keepdims))


def _var_std(b: GraphBuilder, fn: Any, ins: list[Value], y: np.ndarray) -> Value:
    """sum((x - mean)^2) / (n - correction), n the number of reduced elements (read from the
    input's shape at run time when a reduced axis is dynamic); std: its square root."""
    x = ins[0]
    axes = list(range(x.ndim)) if fn.axes is None else list(fn.axes)
    xc = b.node("Sub", [x.name, b.reduce("ReduceMean", x.name, axes, True)])
    ss = b.reduce("ReduceSum", b.node("Mul", [xc, xc]), axes, fn.keepdims)
    if any(a in x.dyn for a in axes):
        sizes = b.node("Gather", [b.node("Shape", [x.name]), b.ints(axes)], axis=0)
        n = b.node("Cast", [b.reduce("ReduceProd", sizes, None, False)],
                   to=b.helper.np_dtype_to_tensor_dtype(np.dtype(x.dtype)))  # fmt: skip
        dof = b.node("Sub", [n, _scalar(b, fn.correction, x)])
    else:
        dof = _scalar(b, int(np.prod([x.shape[a] for a in axes])) - fn.correction, x)
    name = b.node("Div", [ss, dof])
    if isinstance(fn, reduce.StdFunction):
        name = b.node("Sqrt", [name])
    return _out(b, name, y, _reduced_dyn(x, fn.axes, fn.keepdims))


# ----------------------------------------------------------------------------------------------
# shapes
# ----------------------------------------------------------------------------------------------


def reshape_target(x: Value, out_shape: tuple[int, ...]) -> tuple[list[int], dict[int, Dim]]:
    """The ONNX ``Reshape`` target for ``x -> out_shape`` that keeps dynamic axes free.

    A dynamic axis whose leading dims are unchanged stays where it is (target 0: "copy the
    input's dim"). One other dynamic axis may move, merge with the axes behind it or split off
    again (target -1): the output axis that takes it is the one in which the symbol's step (the
    elements per unit of the symbol) falls.
    """
    target = list(out_shape)
    dyn: dict[int, Dim] = {}
    moved = []
    for axis, d in sorted(x.dyn.items()):
        if axis < len(out_shape) and x.shape[: axis + 1] == tuple(out_shape[: axis + 1]):
            target[axis] = 0
            dyn[axis] = d
        else:
            moved.append((axis, d))
    if len(moved) > 1:
        raise ExportError(
            f"a reshape from {x.shape} to {out_shape} moves several dynamic axes "
            f"({[a for a, _ in moved]}); ONNX can infer only one"
        )
    for axis, d in moved:
        if d.minor is None:
            raise ExportError(
                f"a reshape from {x.shape} to {out_shape} moves dynamic axis {axis}, whose length "
                "was sliced or concatenated: its layout cannot be followed"
            )
        step = d.minor * int(np.prod(x.shape[axis + 1 :]))  # elements per unit of the symbol
        for j in range(len(out_shape) - 1, -1, -1):
            below = int(np.prod(out_shape[j + 1 :]))
            if below <= step < below * out_shape[j] or (j == 0 and below <= step):
                if step % below:
                    break  # the symbol's step straddles two output axes
                target[j] = -1
                n = x.shape[axis] // d.minor  # the symbol's value in the traced run
                whole = out_shape[j] * below == step * n  # nothing static above it in axis j
                dyn[j] = Dim(d.name, step // below) if whole else OPAQUE
                break
        if target.count(-1) != 1:
            raise ExportError(
                f"a reshape from {x.shape} to {out_shape} splits dynamic axis {axis} across "
                "output axes; reshape so that it stays within one axis"
            )
    return target, dyn


def _reshape(b: GraphBuilder, fn: Any, ins: list[Value], y: np.ndarray) -> Value:
    x = ins[0]
    target, dyn = reshape_target(x, tuple(y.shape))
    return _out(b, b.node("Reshape", [x.name, b.ints(target)]), y, dyn)


def _permute(b: GraphBuilder, fn: Any, ins: list[Value], y: np.ndarray) -> Value:
    x = ins[0]
    perm = [int(a) for a in fn.axes]
    dyn = {i: x.dyn[a] for i, a in enumerate(perm) if a in x.dyn}
    return _out(b, b.node("Transpose", [x.name], perm=perm), y, dyn)


def _expand(b: GraphBuilder, fn: Any, ins: list[Value], y: np.ndarray) -> Value:
    x = ins[0]
    lead = y.ndim - x.ndim
    target = [1 if (i - lead) in x.dyn else s for i, s in enumerate(y.shape)]
    name = b.node("Expand", [x.name, b.ints(target)])
    return _out(b, name, y, broadcast_dyn([x], y.ndim))


def _concat_dyn(ins: list[Value], axis: int) -> dict:
    dyn = broadcast_dyn([Value(v.name, v.shape, v.dtype, {a: s for a, s in v.dyn.items()
                                                          if a != axis}) for v in ins],
                        ins[0].ndim)  # fmt: skip
    if any(axis in v.dyn for v in ins):
        dyn[axis] = OPAQUE
    return dyn


def _cat(b: GraphBuilder, fn: Any, ins: list[Value], y: np.ndarray) -> Value:
    name = b.node("Concat", [v.name for v in ins], axis=int(fn.dim))
    return _out(b, name, y, _concat_dyn(ins, int(fn.dim)))


def _stack(b: GraphBuilder, fn: Any, ins: list[Value], y: np.ndarray) -> Value:
    d = int(fn.dim)
    parts = [b.unsqueeze(v.name, [d]) for v in ins]
    lifted = [Value(p, v.shape[:d] + (1,) + v.shape[d:], v.dtype,
                    {(a if a < d else a + 1): s for a, s in v.dyn.items()})
              for p, v in zip(parts, ins)]  # fmt: skip
    name = b.node("Concat", parts, axis=d)
    return _out(b, name, y, _concat_dyn(lifted, d))


def _getitem(b: GraphBuilder, fn: Any, ins: list[Value], y: np.ndarray) -> Value:
    """Basic indexing (ints, slices, None, ...) and one integer array: Slice, Gather, Unsqueeze.

    Output axes follow NumPy: a slice keeps its axis, an int removes it, an index array puts
    its own axes in place, None inserts an axis of length 1.
    """
    x = ins[0]
    index = fn.index if isinstance(fn.index, tuple) else (fn.index,)
    arrays = [i for i in index if isinstance(i, np.ndarray)]
    if any(a.dtype == np.bool_ for a in arrays) or len(arrays) > 1:
        raise ExportError(
            "indexing with a boolean mask or with several index arrays cannot be exported "
            "(use slices, ints or one integer index array)"
        )

    def n_real(ix: tuple) -> int:  # the entries that consume an input axis
        return sum(1 for i in ix if isinstance(i, np.ndarray) or (i is not None and i is not ...))

    dots = [j for j, i in enumerate(index) if not isinstance(i, np.ndarray) and i is Ellipsis]
    if dots:
        k = dots[0]
        index = index[:k] + (slice(None),) * (x.ndim - n_real(index)) + index[k + 1 :]
    index = index + (slice(None),) * (x.ndim - n_real(index))
    starts, ends, axes, steps = [], [], [], []
    gathers: list[tuple[int, np.ndarray]] = []  # (input axis, indices)
    new_axes: list[int] = []  # output positions of None
    kept: dict[int, tuple[int, bool]] = {}  # input axis -> (output axis, whole axis kept)
    axis = pos = 0
    for i in index:
        if i is None:
            new_axes.append(pos)
            pos += 1
            continue
        if isinstance(i, slice):
            whole = i.indices(x.shape[axis]) == (0, x.shape[axis], 1)
            if not whole or (axis in x.dyn and i != slice(None)):
                start, stop, step = i.start, i.stop, i.step or 1
                if axis in x.dyn:  # bounds relative to the runtime length
                    start = start if start is not None else (0 if step > 0 else -1)
                    stop = stop if stop is not None else (_INT64_MAX if step > 0 else -_INT64_MAX)
                    whole = False
                else:
                    start, stop, step = i.indices(x.shape[axis])
                    if step < 0 and stop < 0:
                        stop = -_INT64_MAX  # NumPy's "before the first element"
                starts.append(start)
                ends.append(stop)
                axes.append(axis)
                steps.append(step)
            kept[axis] = (pos, whole)
            pos += 1
        else:
            idx = np.asarray(i, dtype=np.int64)
            gathers.append((axis, idx))
            pos += idx.ndim
        axis += 1
    name = x.name
    if axes:
        name = b.node("Slice", [name, b.ints(starts), b.ints(ends), b.ints(axes), b.ints(steps)])
    shift = 0
    for ax, idx in gathers:  # ascending input axes; an int removes its axis, an array adds its own
        name = b.node("Gather", [name, b.const(idx, hint="indices")], axis=ax + shift)
        shift += idx.ndim - 1
    if new_axes:
        name = b.unsqueeze(name, new_axes)
    if name == x.name:
        name = b.node("Identity", [name])
    dyn = {kept[a][0]: (s if kept[a][1] else OPAQUE) for a, s in x.dyn.items() if a in kept}
    return _out(b, name, y, dyn)


CONVERTERS = {
    **{cls: _binary for cls in _BINARY},
    **{cls: _unary for cls in _UNARY},
    elementwise.PowConstFunction: _pow_const,
    elementwise.ClampFunction: _clamp,
    elementwise.WhereFunction: _where,
    elementwise.CastFunction: _cast,
    act.LeakyReluFunction: _leaky_relu,
    act.SoftmaxFunction: _softmax,
    act.LogSoftmaxFunction: _softmax,
    act.GeluFunction: _gelu,
    act.GeluTanhFunction: _gelu_tanh,
    act.NormalCdfFunction: _normal_cdf_op,
    linear.LinearFunction: _linear,
    matmul.MatMulFunction: _matmul,
    conv.Convolution2DFunction: _conv,
    pool.MaxPool2DFunction: _max_pool,
    pool.AvgPool2DFunction: _avg_pool,
    norm.LayerNormFunction: _layer_norm,
    norm.BatchNormFunction: _batch_norm,
    reduce.SumFunction: _reduce,
    reduce.MeanFunction: _reduce,
    reduce.MaxMinFunction: _reduce,
    reduce.VarFunction: _var_std,
    reduce.StdFunction: _var_std,
    shape.ReshapeFunction: _reshape,
    shape.PermuteFunction: _permute,
    shape.ExpandFunction: _expand,
    shape.GetItemFunction: _getitem,
    shape.CatFunction: _cat,
    shape.StackFunction: _stack,
    **LOSS_CONVERTERS,
}
