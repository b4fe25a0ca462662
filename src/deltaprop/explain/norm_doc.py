"""Normalization and dropout layers, forward and backward, in the notation of the notes.

Layer norm (each sample over its features) and batch norm (training mode: each feature over
the mini-batch): the mean, the variance, ``xhat`` and ``y = gamma * xhat + beta``; backward,
``g = dE/dy * gamma``, the three paths of ``dE/dx`` (through ``xhat``, the mean and the
variance) with their numbers, then the closed form and ``dE/dgamma``, ``dE/dbeta``. Dropout:
the mask, the scaling ``1/(1 - p)`` and the gradient through the mask. The statistics are those
:mod:`.norm` rebuilt and checked against the engine.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from deltaprop.explain import dense_doc
from deltaprop.explain.blocks import Block, Equation, Equations, Para, edge_ref, layer_ref
from deltaprop.explain.blocks import unit_ref as u
from deltaprop.explain.context import Ctx
from deltaprop.explain.layer_doc import feature_maps, param_label
from deltaprop.explain.notation import (
    MINUS,
    PLUS,
    TIMES,
    M,
    cat,
    dE,
    fn,
    frac,
    join,
    net,
    paren,
    sample_suffixes,
    sq,
    sub,
    val,
)
from deltaprop.explain.records import LayerRecord

SIGMA = M("sigma", r"\sigma")


def _stat(base: str, tex: str, name: str | None, s: int | None) -> M:
    """``mu``, ``mu[2]`` (layer norm, sample 2) or ``mu_y1`` (batch norm, feature y1)."""
    if name is not None:
        return sub(base, tex, name)
    a, b = sample_suffixes(s)
    return M(base + a, tex + b)


def _mean_of(n: int, body: M) -> M:
    """``1/n (body)``."""
    return cat(M(f"1/{n} (", r"\frac{1}{" + str(n) + r"}\left("), body, M(")", r"\right)"))


def _groups(c: Ctx, rec: LayerRecord) -> list[tuple[int, str | None, int | None, list[tuple]]]:
    """The groups written out: (group index, feature name for batch norm, sample label for
    layer norm, [(k, j) of each element, ...])."""
    m, n_units = c.m, len(rec.names)
    if rec.type == "layernorm":
        return [(k, None, c.sample(k), [(k, j) for j in range(n_units)]) for k in c.shown]
    return [(j, rec.names[j], None, [(k, j) for k in range(m)]) for j in range(n_units)]


def forward(c: Ctx, rec: LayerRecord) -> list[Block]:
    if rec.type == "dropout":
        return _dropout_forward(c, rec)
    d = rec.norm
    over = (
        c.w("over_sample", n=d.n)
        if d.over == "sample"
        else c.w("over_batch", n=d.n, unit="feature" if rec.names else "channel")
    )
    blocks: list[Block] = [Para(c.w("norm_fwd", over=over, eps=f"{rec.eps:g}"))]
    if not rec.names:  # images: per-channel statistics and feature maps
        return blocks + _image_forward(c, rec)
    x = c.rows(rec.input)
    xh, y = c.rows(d.xhat), c.rows(rec.net)
    gamma = rec.weights.reshape(-1) if rec.weights is not None else np.ones(len(rec.names))
    beta = rec.biases.reshape(-1) if rec.biases is not None else np.zeros(len(rec.names))
    li = rec.index
    lines = []
    for gi, fname, s, cells in _groups(c, rec):
        mu, var = _stat("mu", r"\mu", fname, s), _stat("var", r"\sigma^2", fname, s)
        xs = [val(rec.in_names[j], c.sample(k)) for k, j in cells]
        vals = [x[k, j] for k, j in cells]
        refs = tuple(u(li, j) for _, j in cells[:1]) if fname else tuple(u(li, j) for _, j in cells)
        F = c.F.at(vals, d.mean[gi], d.var[gi])
        n = len(cells)
        lines.append(
            Equation(
                [
                    mu,
                    _mean_of(n, join(xs, PLUS)),
                    _mean_of(n, join([F.n(v, True) for v in vals], PLUS)),
                    F.n(d.mean[gi]),
                ],
                refs=refs,
                answer=c.answer(mu.text, "forward", d.mean[gi]),
            )
        )
        sq_terms = [sq(paren(cat(xv, MINUS, mu))) for xv in xs]
        sq_nums = [sq(paren(cat(F.n(v, True), MINUS, F.n(d.mean[gi], True)))) for v in vals]
        lines.append(
            Equation(
                [
                    var,
                    _mean_of(n, join(sq_terms, PLUS)),
                    _mean_of(n, join(sq_nums, PLUS)),
                    F.n(d.var[gi]),
                ],
                refs=refs,
                answer=c.answer(var.text, "forward", d.var[gi]),
            )
        )
        for (k, j), xv, v in zip(cells, xs, vals):
            name, ss = rec.names[j], c.sample(k)
            xhat = sub("xhat", r"\hat{x}", name, ss)
            G = c.F.at(v, d.mean[gi], d.var[gi], xh[k, j])
            root = fn("sqrt", cat(var, PLUS, M("eps", r"\varepsilon")))
            lines.append(
                Equation(
                    [
                        xhat,
                        frac(paren(cat(xv, MINUS, mu)), root),
                        frac(
                            paren(cat(G.n(v, True), MINUS, G.n(d.mean[gi], True))),
                            fn(
                                "sqrt", cat(G.n(d.var[gi]), PLUS, M(f"{rec.eps:g}", f"{rec.eps:g}"))
                            ),
                        ),
                        G.n(xh[k, j]),
                    ],
                    refs=(u(li, j), edge_ref(li, j, j), u(li + 1, j)),
                    answer=c.answer(xhat.text, "forward", xh[k, j]),
                )
            )
            lhs = val(name, ss) if rec.activation == "linear" else net(name, ss)
            ga, be = param_label(rec, (j,), False), param_label(rec, (j,), True)
            G = c.F.at(gamma[j], xh[k, j], beta[j], y[k, j])
            lines.append(
                Equation(
                    [
                        lhs,
                        cat(ga, TIMES, xhat, PLUS, be),
                        cat(
                            G.n(gamma[j], True),
                            TIMES,
                            G.n(xh[k, j], True),
                            PLUS,
                            G.n(beta[j], True),
                        ),
                        G.n(y[k, j]),
                    ],
                    refs=(u(li + 1, j),),
                    answer=c.answer(lhs.text, "forward", y[k, j]),
                )
            )
            if rec.activation != "linear":
                o = val(name, ss)
                lines.append(
                    Equation(
                        [
                            o,
                            fn(rec.activation, net(name, ss)),
                            fn(rec.activation, G.n(y[k, j])),
                            G.n(rec.out[k, j]),
                        ],
                        refs=(u(li + 1, j),),
                        answer=c.answer(o.text, "forward", rec.out[k, j]),
                    )
                )
    return blocks + [Equations(lines)]


def _image_forward(c: Ctx, rec: LayerRecord) -> list[Block]:
    d = rec.norm
    lines = []
    for gi in range(len(d.mean)):
        per = max(len(d.mean) // c.m, 1)  # groups per sample (layer norm over the last dims)
        lab = (
            f"channel {gi + 1}"
            if d.over == "batch"
            else f"sample {c.step.samples[gi // per] + 1}"
            + (f", group {gi % per + 1}" if per > 1 else "")
        )
        F = c.F.at(d.mean[gi], d.var[gi])
        lines.append(
            Equation(
                [M(f"mu ({lab})", r"\mu_{" + str(gi + 1) + "}"), F.n(d.mean[gi])],
                refs=(layer_ref(rec.index),),
            )
        )
        lines.append(
            Equation(
                [M(f"var ({lab})", r"\sigma^2_{" + str(gi + 1) + "}"), F.n(d.var[gi])],
                refs=(layer_ref(rec.index),),
            )
        )
    return [
        Equations(lines),
        *feature_maps("xhat", r"\hat{x}", d.xhat, c.step, "forward"),
        *feature_maps("y = gamma * xhat + beta", "y", rec.net, c.step, "forward"),
    ]


def backward(c: Ctx, rec: LayerRecord) -> list[Block]:
    blocks: list[Block] = []
    if rec.names:  # delta of the layer's own outputs first, as for a dense layer
        if c.last(rec):
            blocks += dense_doc.output_deltas(c, rec)
        else:
            nxt = c.step.layers[rec.index + 1]
            blocks += dense_doc.hidden_deltas(c, rec, nxt if nxt.type == "linear" else None)
    if rec.type == "dropout":
        return blocks + _dropout_backward(c, rec)
    return blocks + _norm_backward(c, rec)


def _norm_backward(c: Ctx, rec: LayerRecord) -> list[Block]:
    d = rec.norm
    blocks: list[Block] = [Para(c.w("norm_bwd"))]
    if not rec.names:
        return blocks + [
            *feature_maps("g = dE/dy * gamma", "g", d.g, c.step, "deltas"),
            *feature_maps("through xhat: g / sigma", "a", d.part_xhat, c.step, "deltas"),
            *feature_maps("through the mean: dE/dmu / N", "b", d.part_mean, c.step, "deltas"),
            *feature_maps(
                "through the variance: dE/dvar 2 (x - mu) / N", "c", d.part_var, c.step, "deltas"
            ),
            *feature_maps("dE/dx", "dx", d.dx, c.step, "deltas"),
        ]
    li = rec.index
    x, dy = c.rows(rec.input), c.rows(rec.delta)
    g, xh = c.rows(d.g), c.rows(d.xhat)
    parts = [c.rows(d.part_xhat), c.rows(d.part_mean), c.rows(d.part_var)]
    dx = c.rows(d.dx)
    gamma = rec.weights.reshape(-1) if rec.weights is not None else np.ones(len(rec.names))
    lines = []
    for gi, fname, s, cells in _groups(c, rec):
        mu, var = _stat("mu", r"\mu", fname, s), _stat("var", r"\sigma^2", fname, s)
        sigma = _stat("sigma", r"\sigma", fname, s)
        n = len(cells)
        gs = [sub("g", "g", rec.names[j], c.sample(k)) for k, j in cells]
        for (k, j), gsym in zip(cells, gs):
            ga = param_label(rec, (j,), False)
            F = c.F.at(dy[k, j], gamma[j], g[k, j])
            lines.append(
                Equation(
                    [
                        gsym,
                        cat(
                            dE(
                                val(rec.names[j], c.sample(k))
                                if rec.activation == "linear"
                                else net(rec.names[j], c.sample(k))
                            ),
                            TIMES,
                            ga,
                        ),
                        cat(F.n(dy[k, j], True), TIMES, F.n(gamma[j], True)),
                        F.n(g[k, j]),
                    ],
                    refs=(u(li + 1, j),),
                )
            )
        F = c.F.at(g[tuple(zip(*cells))], x[tuple(zip(*cells))], d.dvar[gi], d.dmean[gi], d.std[gi])
        xs = [val(rec.in_names[j], c.sample(k)) for k, j in cells]
        lines.append(
            Equation(
                [
                    dE(var),
                    cat(
                        M(
                            "-1/2 (var + eps)^(-3/2) * (",
                            r"-\frac{1}{2} (\sigma^2 + \varepsilon)"
                            r"^{-3/2} \left(",
                        ),
                        join(
                            [
                                cat(gsym, TIMES, paren(cat(xv, MINUS, mu)))
                                for gsym, xv in zip(gs, xs)
                            ],
                            PLUS,
                        ),
                        M(")", r"\right)"),
                    ),
                    F.n(d.dvar[gi]),
                ],
                answer=c.answer(dE(var).text, "deltas", d.dvar[gi]),
            )
        )
        lines.append(
            Equation(
                [
                    dE(mu),
                    cat(M("-(", r"-\left("), join(gs, PLUS), M(") / ", r"\right) / "), sigma),
                    F.n(d.dmean[gi]),
                ],
                answer=c.answer(dE(mu).text, "deltas", d.dmean[gi]),
            )
        )
        for (k, j), gsym, xv in zip(cells, gs, xs):
            a, b, cc = (p[k, j] for p in parts)
            G = c.F.at(a, b, cc, dx[k, j])
            lhs = dE(xv)
            lines.append(
                Equation(
                    [
                        lhs,
                        cat(
                            gsym,
                            M(" / ", " / "),
                            sigma,
                            PLUS,
                            dE(mu),
                            M(f" / {n}", f" / {n}"),
                            PLUS,
                            dE(var),
                            TIMES,
                            M("2 (", "2 ("),
                            xv,
                            MINUS,
                            mu,
                            M(f") / {n}", f") / {n}"),
                        ),
                        cat(G.n(a, True), PLUS, G.n(b, True), PLUS, G.n(cc, True)),
                        G.n(dx[k, j]),
                    ],
                    refs=(u(li, j), edge_ref(li, j, j), u(li + 1, j)),
                    answer=c.answer(lhs.text, "deltas", dx[k, j]),
                )
            )
        for (k, j), gsym, xv in zip(cells, gs, xs):
            xhat = sub("xhat", r"\hat{x}", rec.names[j], c.sample(k))
            G = c.F.at(g[k, j], d.mean_g[gi], xh[k, j], d.mean_gx[gi], dx[k, j])
            lines.append(
                Equation(
                    [
                        dE(xv),
                        cat(
                            M("(1 / ", r"\frac{1}{"),
                            sigma,
                            M(") (", r"} \left("),
                            gsym,
                            MINUS,
                            M("mean(g)", r"\overline{g}"),
                            MINUS,
                            xhat,
                            TIMES,
                            M("mean(g * xhat)", r"\overline{g \hat{x}}"),
                            M(")", r"\right)"),
                        ),
                        cat(
                            M("(1 / ", r"\frac{1}{"),
                            G.n(d.std[gi]),
                            M(") (", r"} \left("),
                            G.n(g[k, j], True),
                            MINUS,
                            G.n(d.mean_g[gi], True),
                            MINUS,
                            G.n(xh[k, j], True),
                            TIMES,
                            G.n(d.mean_gx[gi], True),
                            M(")", r"\right)"),
                        ),
                        G.n(dx[k, j]),
                    ],
                    note=c.w("closed_form"),
                    refs=(u(li, j),),
                )
            )
    blocks.append(Equations(lines))
    if rec.weight_grad is not None:
        over = c.w("over_samples" if rec.type == "layernorm" else "over_batch_sum")
        blocks += [Para(c.w("norm_params", over=over)), Equations(_param_grads(c, rec))]
    return blocks


def _param_grads(c: Ctx, rec: LayerRecord) -> list[Equation]:
    dy, xh = c.rows(rec.delta), c.rows(rec.norm.xhat)
    lines = []
    sup = M("[s]", "^{(s)}") if c.m > 1 else M("", "")
    for j, name in enumerate(rec.names):
        ga, be = param_label(rec, (j,), False), param_label(rec, (j,), True)
        dyj = dE(val(name) if rec.activation == "linear" else net(name))
        F = c.F.at(dy[:, j], xh[:, j], rec.weight_grad.reshape(-1)[j])
        sums = M("sum_s ", r"\sum_s ") if c.m > 1 else M("", "")
        lines.append(
            Equation(
                [
                    dE(ga),
                    cat(sums, dyj, sup, TIMES, sub("xhat", r"\hat{x}", name), sup),
                    join(
                        [cat(F.n(dy[k, j], True), TIMES, F.n(xh[k, j], True)) for k in range(c.m)],
                        PLUS,
                    ),
                    F.n(rec.weight_grad.reshape(-1)[j]),
                ],
                refs=(u(rec.index + 1, j),),
                answer=c.answer(dE(ga).text, "gradients", rec.weight_grad.reshape(-1)[j]),
            )
        )
        if rec.bias_grad is not None:
            G = c.F.at(dy[:, j], rec.bias_grad.reshape(-1)[j])
            lines.append(
                Equation(
                    [dE(be), cat(sums, dyj, sup)]
                    + ([join([G.n(dy[k, j], True) for k in range(c.m)], PLUS)] if c.m > 1 else [])
                    + [G.n(rec.bias_grad.reshape(-1)[j])],
                    refs=(u(rec.index + 1, j),),
                    answer=c.answer(dE(be).text, "gradients", rec.bias_grad.reshape(-1)[j]),
                )
            )
    return lines


def _dropout_forward(c: Ctx, rec: LayerRecord) -> list[Block]:
    scale = 1.0 / (1.0 - rec.p)
    seed = c.tr.extra.get("seed")
    seed_text = f" (seed {seed})" if seed is not None else ""
    blocks: list[Block] = [
        Para(c.w("dropout_fwd", p=f"{rec.p:g}", scale=f"{scale:.6g}", seed=seed_text))
    ]
    if not rec.names:
        return blocks + [
            *feature_maps("mask", "m", rec.mask, c.step, ""),
            *feature_maps("out = x * mask", "y", rec.out, c.step, "forward"),
        ]
    return blocks + [
        _mask_lines(
            c,
            rec,
            rec.input,
            rec.out,
            "forward",
            lambda j, s: (val(rec.names[j], s), val(rec.in_names[j], s)),
            dropped=c.w("dropped"),
        )
    ]


def _dropout_backward(c: Ctx, rec: LayerRecord) -> list[Block]:
    blocks: list[Block] = [Para(c.w("dropout_bwd"))]
    if not rec.names or rec.input_grad is None:
        grads = rec.input_grad if rec.input_grad is not None else rec.delta * rec.mask
        return blocks + [*feature_maps("dE/dx = dE/dy * mask", "dx", grads, c.step, "deltas")]
    return blocks + [
        _mask_lines(
            c,
            rec,
            rec.delta,
            rec.input_grad,
            "deltas",
            lambda j, s: (dE(val(rec.in_names[j], s)), dE(val(rec.names[j], s))),
        )
    ]


def _mask_lines(
    c: Ctx,
    rec: LayerRecord,
    given: np.ndarray,
    result: np.ndarray,
    kind: str,
    symbols: Callable[[int, str], tuple[M, M]],
    dropped: str = "",
) -> Equations:
    """``result = given * m`` for each shown sample and unit of a dropout layer: its forward
    pass (``y = x * m``) and its backward pass (``dE/dx = dE/dy * m``) alike. ``symbols(j, s)``
    gives the line's left side and the symbol of ``given``; ``dropped`` notes a unit the mask
    drops."""
    a, mask, r = c.rows(given), c.rows(rec.mask), c.rows(result)
    lines = []
    for k in c.shown:
        s = c.sample(k)
        for j, name in enumerate(rec.names):
            F = c.F.at(a[k, j], mask[k, j], r[k, j])
            lhs, factor = symbols(j, s)
            lines.append(
                Equation(
                    [
                        lhs,
                        cat(factor, TIMES, sub("m", "m", name, s)),
                        cat(F.n(a[k, j], True), TIMES, F.n(mask[k, j], True)),
                        F.n(r[k, j]),
                    ],
                    refs=(u(rec.index, j), edge_ref(rec.index, j, j), u(rec.index + 1, j)),
                    answer=c.answer(lhs.text, kind, r[k, j]),
                    note=dropped if mask[k, j] == 0 else "",
                )
            )
    return Equations(lines)
