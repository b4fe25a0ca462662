"""The worked example of a circuit: each gate's forward value, then backward, each gate's
local derivative times the upstream gradient, and the sums where a value feeds several gates."""

from __future__ import annotations

from deltaprop.explain.blocks import Answer, Block, Equation, Equations, Heading, Para, Table
from deltaprop.explain.notation import (
    MINUS,
    PLUS,
    TIMES,
    Fmt,
    M,
    cat,
    dE,
    fn,
    is_number,
    join,
    sq,
    val,
)
from deltaprop.explain.records import CircuitNode, CircuitRecord
from deltaprop.explain.words import Options, Words


def _local_symbol(node: CircuitNode, k: int) -> M:
    """The symbolic local derivative d node / d input k."""
    ins = node.inputs
    me = val(node.name)
    x = val(ins[k])
    other = val(ins[1 - k]) if len(ins) == 2 else x
    op = node.op
    if op == "add":
        return M("1", "1")
    if op == "sub":
        return M("1", "1") if k == 0 else M("(-1)", "(-1)")
    if op == "mul":
        return cat("2 ", x) if len(ins) == 1 else other
    if op == "div":
        if len(ins) == 1:
            return M("0", "0")
        return cat("1 / ", other) if k == 0 else cat("-", other, " / ", sq(x))
    if op == "pow":
        if k == 0:
            p = val(ins[1])
            return cat(p, TIMES, M("", "{"), x, M("^(", "}^{"), p, M(" - 1)", " - 1}"))
        return cat(me, M(" * log ", r" \cdot \log "), val(ins[0]))
    if op == "neg":
        return M("(-1)", "(-1)")
    if op == "exp":
        return me  # e^x is the gate's own output
    if op == "log":
        return cat("1 / ", x)
    if op == "sqrt":
        return cat("1 / (2 ", me, ")")
    if op == "sigmoid":
        return cat(me, TIMES, "(1 - ", me, ")")
    if op == "tanh":
        return cat("(1 - ", sq(me), ")")
    if op == "relu":
        return cat("[", x, " > 0]")
    if op == "abs":
        return fn("sign", x)
    if op in ("max", "min"):
        if len(ins) == 1:  # max(x, x): a tie, each half of the gradient comes back to x
            return M("(1/2 + 1/2)", r"(\tfrac{1}{2} + \tfrac{1}{2})")
        rel = " > " if op == "max" else " < "
        return cat("[", x, rel, other, "]")
    return M("?", "?")


def circuit_document(tr: CircuitRecord, opts: Options) -> list[Block]:
    """The blocks of a circuit trace: forward values, then each gate's backward rule."""
    F = Fmt(opts.digits)
    w = Words(opts.lang)
    out = val(tr.output)
    blocks: list[Block] = [Heading(1, tr.title)]
    if tr.description:
        blocks.append(Para(tr.description))
    blocks.append(Para(w("circuit_intro", expr=tr.expression)))
    inputs = [n for n in tr.nodes if n.op == "input"]
    gates = [n for n in tr.nodes if n.op not in ("input", "const")]
    blocks += [
        Heading(2, w("forward")),
        Table([w("input"), w("col_value")], [[val(n.name), F.full(n.value)] for n in inputs]),
    ]
    by = {n.name: n for n in tr.nodes}
    lines = []
    for g in gates:
        e_sym = _expr_m(g)
        nums = _expr_m(
            g,
            {i: F.n(by[i].value, True) for i in g.inputs},
            {i: F.n(by[i].value) for i in g.inputs},
        )
        lines.append(
            Equation(
                [val(g.name), e_sym, nums, F.n(g.value)], answer=Answer(g.name, "forward", g.value)
            )
        )
    blocks.append(Equations(lines))

    blocks.append(Heading(2, w("backward")))
    blocks.append(
        Equations(
            [
                Equation(
                    [dE(out, tr.output), M("1", "1")],
                    note="the gradient of the output with respect to itself",
                )
            ]
        )
    )
    for g in reversed(gates):
        lines = []
        for k, inp in enumerate(g.inputs):
            if g.contribs[k] is None:
                continue
            x = val(inp)
            upstream = g.grad
            lhs = dE(x, tr.output)
            if len(tr.consumers(inp)) > 1:
                lhs = lhs + M(f" (via {g.name})", r"\ (\text{via } " + val(g.name).tex + ")")
            sides = [
                lhs,
                cat(dE(val(g.name), tr.output), TIMES, _local_symbol(g, k)),
                cat(F.n(upstream, True), TIMES, F.n(g.locals[k], True)),
                F.n(g.contribs[k]),
            ]
            ans = None
            if len(tr.consumers(inp)) == 1:
                ans = Answer(lhs.text, "gradients", g.contribs[k])
            lines.append(Equation(sides, answer=ans))
        if lines:
            blocks += [
                Para(f"{g.name} = {g.expression}: {w('gate_' + g.op)}."),
                Equations(lines),
            ]
    # accumulation
    acc = []
    for n in tr.nodes:
        if n.op == "const" or n.grad is None:
            continue
        cons = tr.consumers(n.name)
        if len(cons) > 1:
            parts = [c.contribs[c.inputs.index(n.name)] for c in cons]
            acc.append(
                Equation(
                    [
                        dE(val(n.name), tr.output),
                        join([F.n(p, True) for p in parts], PLUS),
                        F.n(n.grad),
                    ],
                    answer=Answer(dE(val(n.name), tr.output).text, "gradients", n.grad),
                )
            )
    if acc:
        blocks += [
            Para(w("circuit_accumulate")),
            Equations(acc),
        ]
    rows = [
        [
            val(n.name),
            n.op,
            n.expression if n.op != "input" else "",
            F.full(n.value),
            F.full(n.grad) if n.grad is not None else "",
        ]
        for n in tr.nodes
        if n.op != "const"
    ]
    blocks += [
        Heading(2, w("summary")),
        Table(
            [
                w("col_node"),
                w("col_gate"),
                w("col_expression"),
                w("col_value"),
                M(f"d{tr.output}/d(node)", r"\partial " + out.tex + r" / \partial\,\mathrm{node}"),
            ],
            rows,
            kind="forward gradients",
        ),
    ]
    return blocks


def _expr_m(
    g: CircuitNode, sub: dict[str, M] | None = None, plain: dict[str, M] | None = None
) -> M:
    """The gate's expression with its inputs' names, or with the substitutions: ``sub`` inside
    operators (negative numbers in parentheses), ``plain`` as function arguments."""

    def v(name: str, table: dict[str, M] | None) -> M:
        return (
            table[name]
            if table and name in table
            else (M(name, name) if is_number(name) else val(name))
        )

    ins = g.inputs
    op = g.op
    table = plain if (plain is not None and op not in _SYMBOL_OPS) else sub
    a = v(ins[0], table)
    b = v(ins[1], table) if len(ins) > 1 else a
    if op == "add":
        return cat(a, PLUS, b)
    if op == "sub":
        return cat(a, MINUS, b)
    if op == "mul":
        return cat(a, TIMES, b)
    if op == "div":
        return cat(a, " / ", b)
    if op == "pow":
        return cat(a, M("^", "^{"), b, M("", "}"))
    if op == "neg":
        return cat("-", a) if sub is None else cat("-(", v(ins[0], plain or sub), ")")
    if op in ("max", "min"):
        return fn(op, cat(a, ", ", b))
    return fn(op, a)


_SYMBOL_OPS = ("add", "sub", "mul", "div", "pow")
