"""Image layers: the inputs as matrices, convolution (im2col, GEMM, col2im) and pooling (the
argmax routing of max pooling, the even spread of average pooling), forward and backward.
Every matrix shown is one the engine computed or one :mod:`.conv` checked against it."""

from __future__ import annotations

import numpy as np

from deltaprop.explain.blocks import (
    Block,
    Equation,
    Equations,
    Matrix,
    Para,
    Table,
    layer_ref,
)
from deltaprop.explain.context import Ctx
from deltaprop.explain.notation import PLUS, M, dE, join, target, tex_number, val
from deltaprop.explain.records import LayerRecord, StepRecord


def inputs_blocks(c: Ctx) -> list[Block]:
    step, F = c.step, c.F
    x = step.inputs
    if x.ndim == 2:
        names = step.layers[0].in_names or [f"i{j + 1}" for j in range(x.shape[1])]
        rows = [[str(s + 1)] + [F.full(v) for v in x[k]] for k, s in enumerate(step.samples)]
        tgt = c.rows(step.targets)
        cols: list[M | str] = [c.w("col_sample")] + [val(n) for n in names]
        cols += [target(j + 1) for j in range(tgt.shape[1])]
        rows = [r + [F.full(v) for v in tgt[k]] for k, r in enumerate(rows)]
        return [Table(cols, rows, caption=c.w("inputs_targets"))]
    blocks: list[Block] = []
    for k, s in enumerate(step.samples):
        for ch in range(x.shape[1]):
            lab = f"X (sample {s + 1}" + (f", channel {ch + 1})" if x.shape[1] > 1 else ")")
            sup = f"^{{({s + 1})}}" if len(step.samples) > 1 else ""
            blocks.append(Matrix(M(lab, "X" + sup), x[k, ch]))
    t = c.rows(step.targets)
    blocks.append(
        Table(
            [c.w("col_sample")] + [target(j + 1) for j in range(t.shape[1])],
            [[str(s + 1)] + [F.full(v) for v in t[k]] for k, s in enumerate(step.samples)],
            caption=c.w("targets"),
        )
    )
    return blocks


def forward(c: Ctx, rec: LayerRecord) -> list[Block]:
    if rec.type == "conv2d":
        return _conv_forward(c, rec)
    return _pool_forward(c, rec)


def backward(c: Ctx, rec: LayerRecord) -> list[Block]:
    if rec.type == "conv2d":
        return _conv_backward(c, rec)
    return _pool_backward(c, rec)


def feature_maps(
    label: str, tex: str, arr: np.ndarray, step: StepRecord, kind: str = ""
) -> list[Block]:
    out: list[Block] = []
    for k, s in enumerate(step.samples):
        for c in range(arr.shape[1]):
            parts = []
            if len(step.samples) > 1:
                parts.append(f"sample {s + 1}")
            if arr.shape[1] > 1:
                parts.append(f"channel {c + 1}")
            suffix = f" ({', '.join(parts)})" if parts else ""
            sup = "".join(
                [
                    f"^{{({s + 1})}}" if len(step.samples) > 1 else "",
                    f"_{{{c + 1}}}" if arr.shape[1] > 1 else "",
                ]
            )
            out.append(Matrix(M(label + suffix, tex + sup), arr[k, c], kind=kind))
    return out


def _conv_forward(c: Ctx, rec: LayerRecord) -> list[Block]:
    step, F, w = c.step, c.F, c.w
    d = rec.conv
    kk, nc, kh, kw = rec.weights.shape
    blocks: list[Block] = []
    for q in range(kk):
        for ch in range(nc):
            lab = "K" + (f" (kernel {q + 1}, channel {ch + 1})" if kk * nc > 1 else "")
            blocks.append(
                Matrix(
                    M(lab, "K" + (f"_{{{q + 1},{ch + 1}}}" if kk * nc > 1 else "")),
                    rec.weights[q, ch],
                )
            )
    blocks.append(
        Para(
            w(
                "im2col",
                kh=kh,
                kw=kw,
                r=d.cols.shape[0],
                c=d.cols.shape[1],
                wr=d.wmat.shape[0],
                wc=d.wmat.shape[1],
                s=rec.stride[0],
                p=rec.padding,
            )
        )
    )
    blocks.append(Matrix(M("cols", r"\mathrm{cols}"), d.cols, d.row_labels, d.col_labels))
    blocks.append(
        Matrix(
            M("Wmat", r"W_{\mathrm{mat}}"), d.wmat, d.col_labels, [f"k{q + 1}" for q in range(kk)]
        )
    )
    if rec.biases is not None:
        blist = ", ".join(F.s(v) for v in rec.biases)
        blocks.append(Equations([Equation([M("b", "b"), M(blist, blist)])]))
    blocks.append(
        Matrix(
            M("net = cols @ Wmat + b", r"\mathrm{net} = \mathrm{cols} \, W_{\mathrm{mat}} + b"),
            d.gemm,
            d.row_labels,
            [f"k{q + 1}" for q in range(kk)],
        )
    )
    blocks += feature_maps("net", r"\mathrm{net}", rec.net, step, "forward")
    if rec.activation != "linear":
        blocks.append(Para(w("conv_elementwise", act=rec.activation)))
        blocks += feature_maps("o", "o", rec.out, step, "forward")
    return blocks


def _pool_forward(c: Ctx, rec: LayerRecord) -> list[Block]:
    d, step, F = rec.pool, c.step, c.F
    kh, kw = rec.kernel_size
    rows = []
    xin = rec.input
    for (a, ch, r, q), cells, _g in d.routes:
        r0, c0 = r * rec.stride[0] - rec.padding, q * rec.stride[1] - rec.padding
        win = xin[a, ch, max(r0, 0) : r0 + kh, max(c0, 0) : c0 + kw]
        row = [
            _pos(step, a, ch, xin.shape[1], (r, q)),
            "[" + "; ".join(", ".join(F.s(v) for v in line) for line in win) + "]",
            F.full(rec.net[a, ch, r, q]),
        ]
        if d.kind == "max":
            row.append(f"({cells[0][0] + 1}, {cells[0][1] + 1})")
        rows.append(row)
    n = kh * kw
    if d.kind == "max":
        rule = c.w("maxpool_fwd", kh=kh, kw=kw, s=rec.stride[0])
        cols = [c.w("col_output"), c.w("col_window"), "max", c.w("col_argmax")]
    else:
        rule = c.w("avgpool_fwd", kh=kh, kw=kw, s=rec.stride[0], n=n)
        cols = [c.w("col_output"), c.w("col_window"), c.w("col_mean", n=n)]
    blocks: list[Block] = [Para(rule), Table(cols, rows, numeric=False, kind="forward")]
    blocks += feature_maps("pooled", r"\mathrm{pool}", rec.out, step, "forward")
    if d.mask is not None:
        blocks += feature_maps("argmax mask", r"\mathrm{mask}", d.mask, step, "forward")
    return blocks


def _pos(step: StepRecord, a: int, ch: int, n_ch: int, rc: tuple[int, int]) -> str:
    parts = []
    if len(step.samples) > 1:
        parts.append(f"sample {step.samples[a] + 1}")
    if n_ch > 1:
        parts.append(f"channel {ch + 1}")
    parts.append(f"({rc[0] + 1}, {rc[1] + 1})")
    return ", ".join(parts)


def _pool_backward(c: Ctx, rec: LayerRecord) -> list[Block]:
    d, step, F = rec.pool, c.step, c.F
    rows = []
    for (a, ch, r, q), cells, g in d.routes:
        to = ", ".join(f"({yy + 1}, {xx + 1})" for yy, xx in cells)
        share = (
            F.full(g) if d.kind == "max" else f"{F.full(g)} / {len(cells) and round(1 / d.share)}"
        )
        rows.append([_pos(step, a, ch, rec.net.shape[1], (r, q)), share, to])
    n = rec.kernel_size[0] * rec.kernel_size[1]
    rule = c.w("maxpool_bwd") if d.kind == "max" else c.w("avgpool_bwd", n=n)
    share = c.w("col_upstream") if d.kind == "max" else c.w("col_each_gets")
    cols = [c.w("col_window"), share, c.w("col_inputs")]
    return [
        Para(rule),
        *feature_maps("delta = dE/d(pooled)", r"\delta", rec.delta, step, "deltas"),
        Table(cols, rows, numeric=False, kind="deltas"),
        *feature_maps(
            "dE/d(pool input)", r"\frac{\partial E}{\partial \mathrm{in}}", d.dx, step, "deltas"
        ),
    ]


def _conv_backward(c: Ctx, rec: LayerRecord) -> list[Block]:
    step, F = c.step, c.F
    d = rec.conv
    kk = rec.weights.shape[0]
    ks = [f"k{q + 1}" for q in range(kk)]
    blocks: list[Block] = []
    if rec.activation != "linear":
        blocks.append(Para(c.w("conv_act", act=rec.activation)))
        blocks += feature_maps(
            "dE/do", r"\frac{\partial E}{\partial o}", rec.out_grad, step, "deltas"
        )
        blocks += feature_maps(
            "do/dnet", r"\frac{\partial o}{\partial \mathrm{net}}", rec.local, step, "deltas"
        )
    else:
        blocks.append(Para(c.w("linear_act")))
    blocks += feature_maps("delta", r"\delta", rec.delta, step, "deltas")
    blocks += [
        Para(c.w("conv_dw")),
        Matrix(M("dY", "dY"), d.dy, d.row_labels, ks, kind="deltas"),
        Matrix(
            M("dW = cols^T @ dY", r"dW = \mathrm{cols}^T dY"),
            d.dw,
            d.col_labels,
            ks,
            kind="gradients",
        ),
        Equations(
            [
                Equation(
                    [dE(param_label(rec, idx, False)), c.F.n(rec.weight_grad[idx])],
                    refs=(layer_ref(rec.index),),
                    answer=c.answer(
                        dE(param_label(rec, idx, False)).text, "gradients", rec.weight_grad[idx]
                    ),
                )
                for idx in np.ndindex(rec.weights.shape)
            ]
        ),
    ]
    if rec.biases is not None:
        blocks.append(
            Equations(
                [
                    Equation(
                        [
                            M("db", "db"),
                            M("column sums of dY", r"\textstyle\sum_{\mathrm{rows}} dY"),
                            M(
                                ", ".join(F.s(v) for v in d.db),
                                ", ".join(tex_number(F.s(v)) for v in d.db),
                            ),
                        ],
                        answer=c.answer("dE/db", "gradients", d.db[0]) if len(d.db) == 1 else None,
                    )
                ]
            )
        )
    if d.dx is not None:
        blocks += [
            Para(c.w("conv_dx")),
            Matrix(
                M("dcols = dY @ Wmat^T", r"d\mathrm{cols} = dY \, W_{\mathrm{mat}}^T"),
                d.dcols,
                d.row_labels,
                d.col_labels,
                kind="deltas",
            ),
        ]
        lines = []
        n_ch = rec.input.shape[1]
        for (a, ch, yy, xx), contribs in sorted(d.scatter.items()):
            where = (
                (f"s{step.samples[a] + 1} " if len(step.samples) > 1 else "")
                + (f"c{ch + 1} " if n_ch > 1 else "")
                + f"{yy + 1},{xx + 1}"
            )
            lhs = M(f"dX[{where}]", r"dX_{" + where.replace(" ", r"\,") + "}")
            terms = [
                M(
                    f"dcols[{d.row_labels[r]}; {d.col_labels[col]}]",
                    r"d\mathrm{cols}_{"
                    + d.row_labels[r].replace(" ", r"\,")
                    + ";"
                    + d.col_labels[col].replace(" ", r"\,")
                    + "}",
                )
                for r, col in contribs
            ]
            nums = [F.n(d.dcols[r, col], True) for r, col in contribs]
            sides = [lhs, join(terms, PLUS)]
            if len(nums) > 1:
                sides.append(join(nums, PLUS))
            sides.append(F.n(d.dx[a, ch, yy, xx]))
            ans = c.answer(lhs.text, "deltas", d.dx[a, ch, yy, xx])
            lines.append(Equation(sides, refs=(layer_ref(rec.index),), answer=ans))
        blocks.append(Equations(lines))
        blocks += feature_maps("dX = col2im(dcols)", r"dX", d.dx, step, "deltas")
    return blocks


def param_label(rec: LayerRecord, idx: tuple[int, ...], is_bias: bool) -> M:
    """The name of a parameter of a conv or normalization layer (counted from 1): ``K[i,j]``
    for a single kernel, ``K2[c,i,j]`` for kernel 2 of several, ``b``/``b2``; ``gamma1``,
    ``beta1``."""
    if rec.type in ("layernorm", "batchnorm"):
        j = ",".join(str(i + 1) for i in idx)
        name, tex = ("beta", r"\beta") if is_bias else ("gamma", r"\gamma")
        return M(f"{name}{j}", f"{tex}_{{{j}}}")
    if is_bias:
        q = idx[0]
        return M("b", "b") if rec.weights.shape[0] == 1 else M(f"b{q + 1}", f"b_{{{q + 1}}}")
    kk, c = rec.weights.shape[:2]
    q, ch, i, j = idx
    if kk * c == 1:
        return M(f"K[{i + 1},{j + 1}]", f"K_{{{i + 1},{j + 1}}}")
    return M(f"K{q + 1}[{ch + 1},{i + 1},{j + 1}]", f"K^{{({q + 1})}}_{{{ch + 1},{i + 1},{j + 1}}}")
