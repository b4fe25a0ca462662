"""The worked example of a network trace, step by step: the network, then for each step the
forward pass, the loss, the backward pass and the update (and, with ``--verify``, the gradient
check). Each layer type is written by its own module: :mod:`.dense_doc` (or :mod:`.matrix_doc`
in the matrix notation), :mod:`.layer_doc` (convolution, pooling) and :mod:`.norm_doc`
(normalization, dropout). Only numbers of the trace are printed."""

from __future__ import annotations

import numpy as np

from deltaprop.explain import dense_doc, layer_doc, matrix_doc, norm_doc
from deltaprop.explain.blocks import (
    ARROW_REL,
    Block,
    Equation,
    Equations,
    Figure,
    Heading,
    Para,
    Table,
    edge_ref,
)
from deltaprop.explain.context import MAX_TERMS, Ctx
from deltaprop.explain.neurons import Picture
from deltaprop.explain.notation import ETA, MINUS, PLUS, TIMES, M, bias, cat, dE, join, weight
from deltaprop.explain.records import Check, LayerRecord, NetworkRecord, StepRecord
from deltaprop.explain.words import Options, Words


def network_document(tr: NetworkRecord, opts: Options) -> list[Block]:
    """The blocks of a network trace."""
    w = Words(opts.lang)
    blocks: list[Block] = [Heading(1, tr.title)]
    if tr.description:
        blocks.append(Para(tr.description))
    blocks += _setup(tr, w)
    for step in tr.steps:
        blocks += _step_blocks(Ctx(tr, step, opts))
    if len(tr.steps) > 1:
        F = Ctx(tr, tr.steps[0], opts).F
        rows = [
            [str(st.index), ", ".join(str(s + 1) for s in st.samples), F.full(st.loss)]
            for st in tr.steps
        ]
        cols = [w("col_step"), w("col_samples"), w("col_loss")]
        blocks += [Heading(2, w("summary")), Table(cols, rows, kind="forward")]
    return blocks


def loss_formula(tr: NetworkRecord) -> M:
    mean = tr.reduction == "mean"
    if tr.loss == "mse_half":
        if mean:
            return M(
                "E = 1/(2m) sum_s sum_k (t_k - o_k)^2",
                r"E = \frac{1}{2m} \sum_s \sum_k (t_k - o_k)^2",
            )
        return M(
            "E = sum_s sum_k 1/2 (t_k - o_k)^2", r"E = \sum_s \sum_k \frac{1}{2} (t_k - o_k)^2"
        )
    if tr.loss == "mse":
        if mean:
            return M(
                "E = 1/(m K) sum_s sum_k (o_k - t_k)^2",
                r"E = \frac{1}{mK} \sum_s \sum_k (o_k - t_k)^2",
            )
        return M("E = sum_s sum_k (o_k - t_k)^2", r"E = \sum_s \sum_k (o_k - t_k)^2")
    if tr.loss == "bce":
        body_t = "[t_k log o_k + (1 - t_k) log(1 - o_k)]"
        body = r"\left[t_k \log o_k + (1 - t_k) \log (1 - o_k)\right]"
        if mean:
            return M(
                f"E = -1/(m K) sum_s sum_k {body_t}", r"E = -\frac{1}{mK} \sum_s \sum_k " + body
            )
        return M(f"E = -sum_s sum_k {body_t}", r"E = -\sum_s \sum_k " + body)
    if mean:
        return M("E = -1/m sum_s sum_k t_k log o_k", r"E = -\frac{1}{m} \sum_s \sum_k t_k \log o_k")
    return M("E = -sum_s sum_k t_k log o_k", r"E = -\sum_s \sum_k t_k \log o_k")


def _shape(rec: LayerRecord) -> str:
    if rec.names:
        return (
            f"{len(rec.names)} ({', '.join(rec.names)})"
            if len(rec.names) <= 8
            else str(len(rec.names))
        )
    return " x ".join(map(str, rec.net.shape[1:]))


def _params(rec: LayerRecord) -> str:
    b = f"b {rec.biases.shape[0]}" if rec.biases is not None else "no bias"
    if rec.type == "linear":
        return f"W {rec.weights.shape[0]} x {rec.weights.shape[1]}, {b}"
    if rec.type == "conv2d":
        return (
            f"kernels {' x '.join(map(str, rec.weights.shape))}, {b}, stride {rec.stride[0]},"
            f" padding {rec.padding}"
        )
    if rec.type in ("maxpool2d", "avgpool2d"):
        kh, kw = rec.kernel_size
        return f"window {kh} x {kw}, stride {rec.stride[0]}, padding {rec.padding}"
    if rec.type in ("layernorm", "batchnorm"):
        affine = "gamma, beta" if rec.weights is not None else "no gamma, beta"
        return f"{affine}, eps {rec.eps:g}"
    return f"p = {rec.p:g}"


def _setup(tr: NetworkRecord, w: Words) -> list[Block]:
    first = tr.steps[0]
    x = first.inputs
    size = str(x[0].size) if x.ndim == 2 else " x ".join(map(str, x.shape[1:]))
    rows = [[w("input"), "", size, "", ""]]
    for rec in first.layers:
        act = rec.activation if rec.type not in ("maxpool2d", "avgpool2d", "dropout") else ""
        rows.append([str(rec.index + 1), rec.type, _shape(rec), act, _params(rec)])
    m = len(first.samples)
    if m == 1 and tr.n_samples > 1:
        mode = w("online")
    elif m > 1:
        mode = w("minibatch", m=m)
    else:
        mode = w("one_sample")
    facts = [
        w("loss_line", name=w("loss_" + tr.loss), r=tr.reduction),
        w(
            "facts_lr",
            lr=f"{tr.lr:g}",
            n=len(tr.steps),
            mode=mode,
            b=w("are") if tr.train_biases else w("are_not"),
            dtype=tr.dtype,
        ),
        w("facts_engine", opt=tr.optimizer),
    ]
    cols = [w("col_layer"), w("col_type"), w("col_shape"), w("col_act"), w("col_params")]
    return [
        Heading(2, w("network")),
        Table(cols, rows, numeric=False),
        Equations([Equation([loss_formula(tr)])]),
        Para(" ".join(facts)),
    ]


def layer_title(c: Ctx, rec: LayerRecord) -> str:
    title = c.w("layer", i=rec.index + 1)
    if rec.type == "linear":
        role = c.w("output") if c.last(rec) else c.w("hidden")
        return f"{title} ({role}, {rec.activation})"
    kind = c.w(rec.type)
    if rec.type in ("maxpool2d", "avgpool2d"):
        kind += f" {rec.kernel_size[0]} x {rec.kernel_size[1]}"
    if rec.activation != "linear":
        kind += f", {rec.activation}"
    return f"{title} ({kind})"


def _step_blocks(c: Ctx) -> list[Block]:
    step, w = c.step, c.w
    title = w("step", k=step.index)
    if c.tr.n_samples > 1:
        key = "samples" if c.m > 1 else "sample1"
        title += w(key, s=", ".join(str(s + 1) for s in step.samples))
    out: list[Block] = [Heading(2, title), Heading(3, w("forward"))]
    picture = Picture(c.tr, step, c.opts.digits)
    if picture.drawable:
        s1 = step.samples[0] + 1
        out.append(Figure(picture, "forward", caption=w("picture_fwd", s=s1)))
    out += layer_doc.inputs_blocks(c)
    matrix = c.opts.notation == "matrix"
    for rec in step.layers:
        out.append(Heading(4, layer_title(c, rec)))
        if rec.type == "linear":
            out += matrix_doc.forward(c, rec) if matrix else dense_doc.forward_linear(c, rec)
        elif rec.type in ("layernorm", "batchnorm", "dropout"):
            out += norm_doc.forward(c, rec)
        else:
            out += layer_doc.forward(c, rec)
    out += [Heading(3, w("loss")), *_loss_blocks(c)]
    out.append(Heading(3, w("backward")))
    if picture.drawable:
        out.append(Figure(picture, "backward", caption=w("picture_bwd", s=step.samples[0] + 1)))
    for li in range(len(step.layers) - 1, -1, -1):
        rec = step.layers[li]
        out.append(Heading(4, layer_title(c, rec)))
        out += _backward_layer(c, rec, matrix)
    updates = update_blocks(c)
    if matrix:  # the matrices first, then the same update weight by weight
        updates = matrix_doc.update(c) + updates
    out += [Heading(3, w("update", lr=f"{c.tr.lr:g}")), *updates]
    if step.verification is not None:
        out += [Heading(3, w("check")), verify_para(c)]
    return out


def _backward_layer(c: Ctx, rec: LayerRecord, matrix: bool) -> list[Block]:
    if rec.type in ("layernorm", "batchnorm", "dropout"):
        return norm_doc.backward(c, rec)
    if rec.type != "linear":
        return layer_doc.backward(c, rec)
    if matrix:
        return matrix_doc.backward(c, rec)
    layers = c.step.layers
    if c.last(rec):
        blocks = dense_doc.output_deltas(c, rec)
    else:
        nxt = layers[rec.index + 1]
        blocks = dense_doc.hidden_deltas(c, rec, nxt if nxt.type == "linear" else None)
    return blocks + [dense_doc.delta_table(c, rec), *dense_doc.linear_grads(c, rec)]


def _loss_blocks(c: Ctx) -> list[Block]:
    tr, step = c.tr, c.step
    o = c.rows(step.layers[-1].out)
    t = c.rows(step.targets)
    m, k = o.shape
    matrix = c.opts.notation == "matrix"
    formula = matrix_doc.loss_formula(c) if matrix else loss_formula(tr)
    lhs, rhs = formula.text.split(" = ", 1), formula.tex.split(" = ", 1)
    sides = [M(lhs[0], rhs[0]), M(lhs[1], rhs[1])]
    F = c.F.at(o, t, step.loss)
    if m * k <= MAX_TERMS and not matrix:
        terms = []
        for a in range(m):
            for j in range(k):
                oo, tt = F.n(o[a, j], True), F.n(t[a, j], True)
                if tr.loss == "mse_half":
                    terms.append(cat(M("1/2 (", r"\frac{1}{2}("), tt, MINUS, oo, M(")^2", ")^2")))
                elif tr.loss == "mse":
                    terms.append(cat("(", oo, MINUS, tt, ")^2"))
                elif tr.loss == "bce":
                    terms.append(
                        cat(
                            "[",
                            tt,
                            M(" log ", r" \log "),
                            oo,
                            " + (1 - ",
                            tt,
                            M(") log(1 - ", r") \log(1 - "),
                            oo,
                            ")]",
                        )
                    )
                elif t[a, j] == 1:
                    terms.append(cat(M("log ", r"\log "), oo))
                elif t[a, j] != 0:
                    terms.append(cat(tt, M(" log ", r" \log "), oo))
        body = join(terms, PLUS)
        scale = {"mse_half": m, "mse": m * k, "bce": m * k, "ce": m}[tr.loss]
        if tr.reduction == "mean" and scale > 1:
            body = cat(
                M(f"1/{scale} (", r"\frac{1}{" + str(scale) + r"}\left("), body, M(")", r"\right)")
            )
        if tr.loss in ("bce", "ce"):
            body = cat(M("-(", r"-\left("), body, M(")", r"\right)"))
        sides.append(body)
    sides.append(F.n(step.loss))
    ans = c.answer("E", "forward", step.loss)
    return [Equations([Equation(sides, answer=ans, symbolic=1)])]


def param_rows(rec: LayerRecord) -> list[tuple[M, float, float, float, bool, str]]:
    """(name, before, gradient, after, is_bias, picture ref) of each parameter of a layer."""
    if rec.weights is None:
        return []
    if rec.type == "linear":
        out = [
            (
                weight(iname, name),
                rec.weights[j, i],
                rec.weight_grad[j, i],
                rec.weights_after[j, i],
                False,
                edge_ref(rec.index, i, j),
            )
            for j, name in enumerate(rec.names)
            for i, iname in enumerate(rec.in_names)
        ]
        if rec.biases is not None:
            out += [
                (bias(name), rec.biases[j], rec.bias_grad[j], rec.biases_after[j], True, "")
                for j, name in enumerate(rec.names)
            ]
        return out
    out = _entry_rows(rec, rec.weights, rec.weight_grad, rec.weights_after, False)
    if rec.biases is not None:
        out += _entry_rows(rec, rec.biases, rec.bias_grad, rec.biases_after, True)
    return out


def _entry_rows(
    rec: LayerRecord, before: np.ndarray, grad: np.ndarray, after: np.ndarray, is_bias: bool
) -> list[tuple[M, float, float, float, bool, str]]:
    """The rows of :func:`param_rows` for each entry of one parameter tensor of a layer."""
    return [
        (layer_doc.param_label(rec, idx, is_bias), before[idx], grad[idx], after[idx], is_bias, "")
        for idx in np.ndindex(before.shape)
    ]


def update_blocks(c: Ctx) -> list[Block]:
    tr, w = c.tr, c.w
    lines, rows = [], []
    for rec in c.step.layers:
        for name, before, g, after, is_bias, ref in param_rows(rec):
            trained = tr.train_biases or not is_bias
            F = c.F.at(before, g, after)
            rows.append(
                [
                    name,
                    F.full(before),
                    F.full(g),
                    F.full(after) + ("" if trained else w("not_trained")),
                ]
            )
            if trained:
                lines.append(
                    Equation(
                        [
                            name,
                            cat(name, MINUS, ETA, TIMES, dE(name)),
                            cat(F.n(before, True), MINUS, F.n(tr.lr, True), TIMES, F.n(g, True)),
                            F.n(after),
                        ],
                        rel=ARROW_REL,
                        refs=(ref,) if ref else (),
                        answer=c.answer(name.text, "updates", after),
                    )
                )
    blocks: list[Block] = [Para(w("update_rule", opt=tr.optimizer))]
    if not tr.train_biases:
        blocks.append(Para(w("no_bias_training")))
    cols = [w("col_param"), w("col_before"), w("col_grad"), w("col_after")]
    return blocks + [Equations(lines), Table(cols, rows, kind="gradients updates")]


def check_label(step: StepRecord, ch: Check) -> str:
    rec = step.layers[ch.layer]
    if rec.type == "linear" and ch.kind == "weight":
        return "dE/d" + weight(rec.in_names[ch.index[1]], rec.names[ch.index[0]]).text
    if rec.type == "linear" and ch.kind == "bias":
        return "dE/d" + bias(rec.names[ch.index[0]]).text
    if rec.names and ch.kind == "delta" and len(ch.index) == 2:
        s = None if len(step.samples) == 1 else step.samples[ch.index[0]] + 1
        return "delta_" + rec.names[ch.index[1]] + ("" if s is None else f"[{s}]")
    if ch.kind in ("weight", "bias") and rec.weights is not None:
        return "dE/d" + layer_doc.param_label(rec, ch.index, ch.kind == "bias").text
    return f"{ch.kind} of layer {ch.layer + 1} at {tuple(i + 1 for i in ch.index)}"


def verify_para(c: Ctx) -> Para:
    v = c.step.verification
    return Para(
        c.w(
            "check_text",
            eps=f"{v.eps:g}",
            n=v.count,
            err=f"{v.worst.error:.3g}",
            where=check_label(c.step, v.worst),
            a=c.F.full(v.worst.analytic),
            b=c.F.full(v.worst.numeric),
            status="OK" if v.ok else "MISMATCH",
        )
    )


def verification_summary(tr: object) -> str | None:
    """One line: the largest finite-difference discrepancy of all steps (None without verify)."""
    if not isinstance(tr, NetworkRecord) or tr.steps[0].verification is None:
        return None
    worst_step = max(tr.steps, key=lambda st: st.verification.worst.error)
    v = worst_step.verification
    ok = all(st.verification.ok for st in tr.steps)
    n = sum(st.verification.count for st in tr.steps)
    return (
        f"gradient check: {n} gradients vs central finite differences, largest discrepancy "
        f"{v.worst.error:.3g} ({check_label(worst_step, v.worst)}, step {worst_step.index}): "
        f"{'OK' if ok else 'MISMATCH'}"
    )
