"""Fully connected layers in the notation of the notes: ``net_j = sum_i w_ij o_i + b_j``,
``o_j = f(net_j)``, ``delta_j``, ``dE/dw_ij = delta_j o_i`` and the update, neuron by neuron,
each rule with the engine's numbers substituted."""

from __future__ import annotations

from deltaprop.explain.blocks import Block, Equation, Equations, Matrix, Para, Table, edge_ref
from deltaprop.explain.blocks import unit_ref as u
from deltaprop.explain.context import Ctx
from deltaprop.explain.notation import (
    MINUS,
    PLUS,
    TIMES,
    M,
    bias,
    cat,
    dE,
    delta,
    fn,
    join,
    net,
    sq,
    target,
    tex_name,
    val,
    weight,
)
from deltaprop.explain.records import LayerRecord


def _see_table(c: Ctx) -> list[Block]:
    if c.m > len(c.shown):
        return [Para(c.w("see_table", a=len(c.shown) + 1, b=c.m))]
    return []


def forward_linear(c: Ctx, rec: LayerRecord) -> list[Block]:
    li = rec.index
    x = c.rows(rec.input)
    lines = []
    for k in c.shown:
        s = c.sample(k)
        for j, name in enumerate(rec.names):
            F = c.F.at(x[k], rec.weights[j], rec.net[k, j])
            refs = (
                *(u(li, a) for a in range(len(rec.in_names))),
                *(edge_ref(li, a, j) for a in range(len(rec.in_names))),
                u(li + 1, j),
            )
            lhs = net(name, s)
            ans = c.answer(lhs.text, "forward", rec.net[k, j])
            if len(rec.in_names) <= 4:
                sym = join([weight(i, name) + TIMES + val(i, s) for i in rec.in_names], PLUS)
                nums = join(
                    [
                        F.n(rec.weights[j, a], True) + TIMES + F.n(x[k, a], True)
                        for a in range(len(rec.in_names))
                    ],
                    PLUS,
                )
                if rec.biases is not None:
                    sym, nums = sym + PLUS + bias(name), nums + PLUS + F.n(rec.biases[j], True)
                lines.append(Equation([lhs, sym, nums, F.n(rec.net[k, j])], refs=refs, answer=ans))
            else:
                sym = cat(
                    M("sum_i w_i,", r"\sum_i w_{i,"),
                    M(name, tex_name(name)),
                    M(" * o_i", r"} \cdot o_i"),
                )
                if rec.biases is not None:
                    sym = cat(sym, PLUS, bias(name))
                lines.append(Equation([lhs, sym, F.n(rec.net[k, j])], refs=refs, answer=ans))
            lines.append(_activation_line(c, rec, k, j, name, s))
    blocks: list[Block] = [Equations(lines), *_see_table(c)]
    cols: list[M | str] = [c.w("col_sample")]
    for name in rec.names:
        cols += [net(name), val(name)]
    rows = []
    for k, s in enumerate(c.step.samples):
        row: list[M | str] = [str(s + 1)]
        F = c.F.at(rec.net[k], rec.out[k])  # a row of the table is a line
        for j in range(len(rec.names)):
            row += [F.full(rec.net[k, j]), F.full(rec.out[k, j])]
        rows.append(row)
    blocks.append(Table(cols, rows, kind="forward"))
    return blocks


def _activation_line(c: Ctx, rec: LayerRecord, k: int, j: int, name: str, s: int | None):
    o, F = val(name, s), c.F.at(rec.net[k, j], rec.out[k, j])
    refs = (u(rec.index + 1, j),)
    ans = c.answer(o.text, "forward", rec.out[k, j])
    if rec.activation == "softmax":
        den = M("sum_k e^net_k", r"\sum_k e^{\mathrm{net}_k}")
        sym = cat(M("e^", "e^{"), net(name, s), M(" / ", "} / "), den)
        return Equation([o, sym, F.n(rec.out[k, j])], refs=refs, answer=ans)
    if rec.activation == "linear":
        return Equation([o, net(name, s), F.n(rec.out[k, j])], refs=refs, answer=ans)
    return Equation(
        [
            o,
            fn(rec.activation, net(name, s)),
            fn(rec.activation, F.n(rec.net[k, j])),
            F.n(rec.out[k, j]),
        ],
        refs=refs,
        answer=ans,
    )


def act_local(act: str, name: str, s: int | None) -> M | None:
    """The symbolic local derivative do/dnet of an elementwise activation."""
    o = val(name, s)
    if act == "sigmoid":
        return cat(o, TIMES, "(1 - ", o, ")")
    if act == "tanh":
        return cat("(1 - ", sq(o), ")")
    if act == "relu":
        return cat("[", net(name, s), " > 0]")
    return None  # linear: 1


def _dE_do(c: Ctx, j: int, name: str, s: int | None) -> M:
    """The symbolic dE/do_j of an output neuron for the loss."""
    o, t = val(name, s), target(j + 1, s)
    mean = c.tr.reduction == "mean"
    if c.tr.loss == "mse_half":
        body = cat("(", o, MINUS, t, ")")
        return cat(body, M(" / m", " / m")) if mean else body
    if c.tr.loss == "mse":
        body = cat("2 (", o, MINUS, t, ")")
        return cat(body, M(" / (m K)", " / (mK)")) if mean else body
    body = cat("(", o, MINUS, t, ") / (", o, " (1 - ", o, "))")
    return cat(body, M(" / (m K)", " / (mK)")) if mean else body


def _scale_suffix(c: Ctx) -> tuple[M, str, str]:
    """The reduction's divisor of a cancelled delta: (symbol, number, words)."""
    if c.tr.reduction != "mean":
        return M("", ""), "", ""
    if c.tr.loss == "ce":
        return M(" / m", " / m"), f" / {c.m}", c.w("over_m")
    k = c.step.targets.reshape(c.m, -1).shape[1]
    return M(" / (m K)", " / (mK)"), f" / {c.m * k}", c.w("over_mk")


def output_deltas(c: Ctx, rec: LayerRecord) -> list[Block]:
    lines = []
    t = c.step.targets.reshape(c.m, -1)
    loss = c.tr.loss
    for k in c.shown:
        s = c.sample(k)
        for j, name in enumerate(rec.names):
            d = delta(name, s)
            F = c.F.at(rec.delta[k, j], rec.out[k, j], t[k, j])
            result = F.n(rec.delta[k, j])
            refs = (u(rec.index + 1, j),)
            ans = c.answer(d.text, "deltas", rec.delta[k, j])
            o, tt = val(name, s), target(j + 1, s)
            if loss in ("ce", "bce"):  # the cancellations: delta = o - t
                div_s, div_n, _ = _scale_suffix(c)
                sym = cat(o, MINUS, tt, div_s) if not div_n else cat("(", o, MINUS, tt, ")", div_s)
                nums = cat(F.n(rec.out[k, j], True), MINUS, F.n(t[k, j], True))
                if div_n:
                    nums = cat("(", nums, ")", div_n)
                sides = [d]
                if loss == "bce":
                    sides.append(cat(_dE_do(c, j, name, s), TIMES, act_local("sigmoid", name, s)))
                sides += [sym, nums, result]
                lines.append(Equation(sides, refs=refs, answer=ans, symbolic=len(sides) - 3))
                continue
            if rec.activation == "softmax":  # the general softmax Jacobian
                lines.append(_softmax_delta(c, rec, k, j, name, s, F, refs, ans))
                continue
            local = act_local(rec.activation, name, s)
            de = _dE_do(c, j, name, s)
            if local is None:  # linear output: delta = dE/do
                lines.append(Equation([d, de, result], refs=refs, answer=ans))
            else:
                g = F.n(rec.out_grad[k, j], True)
                sides = [
                    d,
                    cat(de, TIMES, local),
                    cat(g, TIMES, F.n(rec.local[k, j], True)),
                    result,
                ]
                lines.append(Equation(sides, refs=refs, answer=ans))
    _, _, over = _scale_suffix(c)
    if loss == "ce":
        intro = c.w("ce_rule", mean=over)
    elif rec.activation == "softmax":
        intro = c.w("softmax_rule")
    else:
        intro = c.w("out_delta_rule")
    blocks: list[Block] = [Para(intro), Equations(lines)]
    if loss == "bce":
        blocks.append(Para(c.w("cancel_bce", mean=over)))
    if loss == "ce":
        blocks.append(Para(c.w("cancel_ce", mean=over)))
    return blocks + _see_table(c)


def _softmax_delta(c, rec, k, j, name, s, F, refs, ans) -> Equation:
    d, result = delta(name, s), F.n(rec.delta[k, j])
    if len(rec.names) > 3:
        gen = cat(
            M(
                "sum_k dE/do_k * o_k * ([k=j] - ",
                r"\sum_k \frac{\partial E}{\partial o_k} o_k ([k=j] - ",
            ),
            val(name, s),
            ")",
        )
        return Equation([d, gen, result], refs=refs, answer=ans)
    terms_s, terms_n = [], []
    for q, other in enumerate(rec.names):
        ind = "1" if q == j else "0"
        terms_s.append(
            cat(
                dE(val(other, s)),
                TIMES,
                val(other, s),
                TIMES,
                f"([{q + 1}={j + 1}] - ",
                val(name, s),
                ")",
            )
        )
        terms_n.append(
            cat(
                F.n(rec.out_grad[k, q], True),
                TIMES,
                F.n(rec.out[k, q], True),
                TIMES,
                f"({ind} - ",
                F.n(rec.out[k, j], True),
                ")",
            )
        )
    return Equation([d, join(terms_s, PLUS), join(terms_n, PLUS), result], refs=refs, answer=ans)


def hidden_deltas(c: Ctx, rec: LayerRecord, nxt: LayerRecord | None) -> list[Block]:
    """delta_j = (sum_l delta_l w_jl) f'(net_j) when the next layer is linear; otherwise
    dE/do_j comes from the next layer's input gradient."""
    lines = []
    li = rec.index
    for k in c.shown:
        s = c.sample(k)
        for j, name in enumerate(rec.names):
            d = delta(name, s)
            F = c.F.at(rec.delta[k, j], rec.out_grad[k, j])
            result = F.n(rec.delta[k, j])
            ans = c.answer(d.text, "deltas", rec.delta[k, j])
            refs: tuple[str, ...] = (u(li + 1, j),)
            g = F.n(rec.out_grad[k, j], True)
            local = act_local(rec.activation, name, s)
            if nxt is None:
                sym = dE(val(name, s))
                sides = [d, sym if local is None else cat(sym, TIMES, local)]
                sides += [g if local is None else cat(g, TIMES, F.n(rec.local[k, j], True)), result]
                lines.append(Equation(sides, refs=refs, answer=ans))
                continue
            refs += tuple(edge_ref(li + 1, j, q) for q in range(len(nxt.names)))
            refs += tuple(u(li + 2, q) for q in range(len(nxt.names)))
            nums = None
            if len(nxt.names) <= 4:
                sym = join([delta(ln, s) + TIMES + weight(name, ln) for ln in nxt.names], PLUS)
                nums = join(
                    [
                        F.n(nxt.delta[k, q], True) + TIMES + F.n(nxt.weights[q, j], True)
                        for q in range(len(nxt.names))
                    ],
                    PLUS,
                )
            else:
                sym = cat(
                    M("sum_l delta_l * w_", r"\sum_l \delta_l \cdot w_{"),
                    M(name, tex_name(name)),
                    M(",l", ",l}"),
                )
            if local is None:
                sides = [d, sym] + ([nums] if nums is not None else []) + [result]
            else:
                sides = [d, cat("(", sym, ")", TIMES, local)]
                if nums is not None:
                    sides.append(cat("(", nums, ")", TIMES, F.n(rec.local[k, j], True)))
                sides += [cat(g, TIMES, F.n(rec.local[k, j], True)), result]
            lines.append(Equation(sides, refs=refs, answer=ans))
    rule = c.w("hidden_rule") if nxt is not None else c.w("from_next_rule", nxt=li + 2)
    return [Para(rule), Equations(lines), *_see_table(c)]


def delta_table(c: Ctx, rec: LayerRecord) -> Table:
    if rec.out_grad is not None:
        cols: list[M | str] = [c.w("col_sample")]
        cols += [x for name in rec.names for x in (dE(val(name)), delta(name))]
        rows = [
            [str(s + 1)]
            + [
                c.F.at(rec.out_grad[k], rec.delta[k]).full(v)
                for j in range(len(rec.names))
                for v in (rec.out_grad[k, j], rec.delta[k, j])
            ]
            for k, s in enumerate(c.step.samples)
        ]
    else:  # softmax + cross entropy: E is computed from net directly (log_softmax)
        cols = [c.w("col_sample")] + [delta(name) for name in rec.names]
        rows = [
            [str(s + 1)] + [c.F.at(rec.delta[k]).full(v) for v in rec.delta[k]]
            for k, s in enumerate(c.step.samples)
        ]
    return Table(cols, rows, kind="deltas")


def linear_grads(c: Ctx, rec: LayerRecord) -> list[Block]:
    m, li = c.m, rec.index
    x = c.rows(rec.input)
    lines = []
    sup = M("[s]", "^{(s)}")
    for j, name in enumerate(rec.names):
        for a, iname in enumerate(rec.in_names):
            lhs = dE(weight(iname, name))
            F = c.F.at(rec.delta[:, j], x[:, a], rec.weight_grad[j, a])
            res = F.n(rec.weight_grad[j, a])
            refs = (edge_ref(li, a, j), u(li, a), u(li + 1, j))
            ans = c.answer(lhs.text, "gradients", rec.weight_grad[j, a])
            if m == 1:
                nums = cat(F.n(rec.delta[0, j], True), TIMES, F.n(x[0, a], True))
                sides = [lhs, cat(delta(name), TIMES, val(iname)), nums, res]
            else:
                sym = cat(M("sum_s ", r"\sum_s "), delta(name), sup, TIMES, val(iname), sup)
                sides = [lhs, sym]
                if m <= 4:
                    sides.append(
                        join(
                            [
                                F.n(rec.delta[k, j], True) + TIMES + F.n(x[k, a], True)
                                for k in range(m)
                            ],
                            PLUS,
                        )
                    )
                sides.append(res)
            lines.append(Equation(sides, refs=refs, answer=ans))
        if rec.bias_grad is None:
            continue
        lhs = dE(bias(name))
        F = c.F.at(rec.delta[:, j], rec.bias_grad[j])
        res = F.n(rec.bias_grad[j])
        ans = c.answer(lhs.text, "gradients", rec.bias_grad[j])
        refs = (u(li + 1, j),)
        if m == 1:
            lines.append(Equation([lhs, delta(name), res], refs=refs, answer=ans))
        else:
            sides = [lhs, cat(M("sum_s ", r"\sum_s "), delta(name), sup)]
            if m <= 4:
                sides.append(join([F.n(rec.delta[k, j], True) for k in range(m)], PLUS))
            lines.append(Equation(sides + [res], refs=refs, answer=ans))
    blocks: list[Block] = [Para(c.w("grad_rule")), Equations(lines)]
    if m > 1:
        L = li + 1
        prev, prev_tex = ("X", "X") if li == 0 else (f"O{L - 1}", f"O_{{{L - 1}}}")
        labels = [str(s + 1) for s in c.step.samples]
        blocks += [
            Para(c.w("batch_matrices", L=L, prev=prev)),
            Matrix(M(f"D{L}", f"D_{{{L}}}"), rec.delta, labels, rec.names, kind="deltas"),
            Matrix(M(prev, prev_tex), x, labels, rec.in_names, kind="forward"),
            Matrix(
                M(
                    f"dE/dW{L} = D{L}^T {prev}",
                    r"\frac{\partial E}{\partial W_{"
                    + str(L)
                    + "}} = D_{"
                    + str(L)
                    + "}^T "
                    + prev_tex,
                ),
                rec.weight_grad,
                rec.names,
                rec.in_names,
                kind="gradients",
            ),
        ]
    return blocks
