"""A worked example as a list of blocks (headings, equations, tables, matrices).

The trace records numbers; this module decides what to say about them, once, in the notation of
``backprop-notes.md``. Each renderer of :mod:`.render` then draws the same blocks as rich text,
Markdown, LaTeX or HTML. A formula is an :class:`M`: the same piece of math as plain text
(``delta_o1 = (o1 - t1) * o1 * (1 - o1)``) and as LaTeX
(``\\delta_{o_1} = (o_1 - t_1) \\cdot ...``).

Only numbers of the trace are printed: symbolic factors are followed by the engine's values of
them (``dE/do``, the local derivative ``do/dnet``, ``delta = net.grad``, ``W.grad``...), never by
values this module computes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deltaprop.explain.circuit import CircuitNode, CircuitTrace, expression_of
from deltaprop.explain.trace import Check, LayerRecord, NetworkTrace, StepRecord

# ----------------------------------------------------------------------------------------------
# math: one formula, two spellings
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class M:
    """A piece of math as plain text and as LaTeX; ``+`` concatenates."""

    text: str
    tex: str

    def __add__(self, other: M | str) -> M:
        o = _m(other)
        return M(self.text + o.text, self.tex + o.tex)

    def __radd__(self, other: M | str) -> M:
        o = _m(other)
        return M(o.text + self.text, o.tex + self.tex)


def sq(x: M) -> M:
    """``x^2`` (braced in LaTeX, so that ``x`` may carry its own superscript)."""
    return M(x.text + "^2", "{" + x.tex + "}^2")


def _m(x: M | str) -> M:
    return x if isinstance(x, M) else M(x, x)


def cat(*parts: M | str) -> M:
    out = M("", "")
    for p in parts:
        out = out + p
    return out


def join(parts: list[M], sep: M | str) -> M:
    out = M("", "")
    for k, p in enumerate(parts):
        out = out + (sep if k else "") + p
    return out


TIMES = M(" * ", r" \cdot ")
PLUS = M(" + ", " + ")
MINUS = M(" - ", " - ")
ARROW = M(" <- ", r" \leftarrow ")
ETA = M("eta", r"\eta")


def _tex_name(name: str) -> str:
    """``o1`` -> ``o_{1}``, ``h2_3`` -> ``h_{2,3}``, ``x`` -> ``x``."""
    m = re.fullmatch(r"([A-Za-z]+)(\d+)(?:_(\d+))?", name)
    if not m:
        return r"\mathit{" + name.replace("_", r"\_") + "}" if len(name) > 1 else name
    base, a, b = m.groups()
    base_tex = base if len(base) == 1 else r"\mathit{" + base + "}"
    return f"{base_tex}_{{{a},{b}}}" if b else f"{base_tex}_{{{a}}}"


def _sfx(s: int | None) -> tuple[str, str]:
    return ("", "") if s is None else (f"[{s}]", f"^{{({s})}}")


def val(name: str, s: int | None = None) -> M:
    """The output ``o_j`` of neuron ``name`` (``i1``, ``h1``, ``o1``), of sample ``s``."""
    a, b = _sfx(s)
    return M(name + a, _tex_name(name) + b)


def net(name: str, s: int | None = None) -> M:
    a, b = _sfx(s)
    return M(f"net_{name}{a}", r"\mathrm{net}_{" + _tex_name(name) + "}" + b)


def delta(name: str, s: int | None = None) -> M:
    a, b = _sfx(s)
    return M(f"delta_{name}{a}", r"\delta_{" + _tex_name(name) + "}" + b)


def target(j: int, s: int | None = None) -> M:
    a, b = _sfx(s)
    return M(f"t{j}{a}", f"t_{{{j}}}{b}")


def weight(i: str, j: str) -> M:
    return M(f"w_{i},{j}", "w_{" + _tex_name(i) + "," + _tex_name(j) + "}")


def bias(j: str) -> M:
    return M(f"b_{j}", "b_{" + _tex_name(j) + "}")


def dE(x: M, top: str = "E") -> M:
    """``dE/dx``."""
    return M(f"d{top}/d{x.text}", r"\frac{\partial " + top + r"}{\partial " + x.tex + "}")


def fn(name: str, arg: M) -> M:
    tex = {
        "sigmoid": r"\sigma",
        "tanh": r"\tanh",
        "exp": r"\exp",
        "log": r"\log",
        "relu": r"\mathrm{relu}",
        "sqrt": r"\sqrt",
        "abs": r"\mathrm{abs}",
        "max": r"\max",
        "min": r"\min",
        "softmax": r"\mathrm{softmax}",
    }.get(name, name)
    if name == "sqrt":
        return M(f"sqrt({arg.text})", r"\sqrt{" + arg.tex + "}")
    return M(f"{name}({arg.text})", tex + r"\left(" + arg.tex + r"\right)")


class Fmt:
    """Number formatting: ``digits`` significant digits in formulas, ``digits + 4`` in tables."""

    def __init__(self, digits: int = 4) -> None:
        self.digits = digits

    def s(self, x: float, extra: int = 0) -> str:
        x = float(x)
        if x == 0:
            return "0"
        if not np.isfinite(x):
            return str(x)
        return f"{x:.{self.digits + extra}g}"

    def n(self, x: float, paren: bool = False) -> M:
        """A number inside a formula (negative numbers in parentheses when ``paren``)."""
        s = self.s(x)
        tex = _tex_number(s)
        if paren and s.startswith("-"):
            return M(f"({s})", f"({tex})")
        return M(s, tex)

    def full(self, x: float) -> str:
        """A number in a table: 4 more significant digits than in formulas."""
        return self.s(x, extra=4)


def _tex_number(s: str) -> str:
    if "e" in s:
        mant, ex = s.split("e")
        return f"{mant} \\times 10^{{{int(ex)}}}"
    if s in ("inf", "-inf", "nan"):
        return r"\infty" if s == "inf" else (r"-\infty" if s == "-inf" else r"\mathrm{NaN}")
    return s


# ----------------------------------------------------------------------------------------------
# blocks
# ----------------------------------------------------------------------------------------------


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Para:
    text: str


@dataclass
class Equation:
    """``sides[0] REL sides[1] = sides[2] = ...`` (REL is ``=`` unless ``rel`` says otherwise)."""

    sides: list[M]
    note: str = ""
    rel: M = field(default_factory=lambda: M(" = ", " = "))


@dataclass
class Equations:
    lines: list[Equation]


@dataclass
class Table:
    columns: list[M | str]
    rows: list[list[M | str]]
    caption: str = ""
    numeric: bool = True


@dataclass
class Matrix:
    """A named matrix; ``rows``/``cols`` optional labels."""

    label: M
    values: np.ndarray
    rows: list[str] | None = None
    cols: list[str] | None = None
    caption: str = ""


Block = Heading | Para | Equations | Table | Matrix


# ----------------------------------------------------------------------------------------------
# network traces
# ----------------------------------------------------------------------------------------------

_ACT_FORMULA = {
    "sigmoid": "sigmoid(net) = 1 / (1 + e^-net)",
    "tanh": "tanh(net)",
    "relu": "max(0, net)",
    "linear": "net (identity)",
    "softmax": "e^net_j / sum_k e^net_k",
}


def _loss_formula(tr: NetworkTrace) -> M:
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


def _loss_name(tr: NetworkTrace) -> str:
    return {
        "mse_half": "squared error with the 1/2 convention",
        "mse": "mean squared error (as torch.nn.functional.mse_loss)",
        "bce": "binary cross entropy",
        "ce": "softmax + categorical cross entropy",
    }[tr.loss] + f", reduction {tr.reduction!r} over the mini-batch"


def _sample(step: StepRecord, s: int) -> int | None:
    """The sample label shown in formulas: None for a single-sample step."""
    return None if len(step.samples) == 1 else step.samples[s] + 1


_MAX_TERMS = 6  # expand sums with at most this many terms
_MAX_SAMPLE_EQS = 4  # per-sample equations for at most this many samples


def network_document(tr: NetworkTrace, digits: int = 4) -> list[Block]:
    """The blocks of a network trace (see the module docstring)."""
    F = Fmt(digits)
    blocks: list[Block] = [Heading(1, tr.title)]
    if tr.description:
        blocks.append(Para(tr.description))
    blocks += _setup(tr)
    for step in tr.steps:
        blocks += _step_blocks(tr, step, F)
    if len(tr.steps) > 1:
        rows = [
            [str(st.index), ", ".join(str(s + 1) for s in st.samples), F.full(st.loss)]
            for st in tr.steps
        ]
        blocks += [Heading(2, "Summary"), Table(["step", "samples", "E (before the update)"], rows)]
    return blocks


def _setup(tr: NetworkTrace) -> list[Block]:
    first = tr.steps[0]
    rows = []
    n_in = first.inputs[0].size
    rows.append(
        [
            "input",
            "",
            str(n_in) if first.inputs.ndim == 2 else " x ".join(map(str, first.inputs.shape[1:])),
            "",
            "",
        ]
    )
    for rec in first.layers:
        if rec.type == "linear":
            size = (
                f"{len(rec.names)} ({', '.join(rec.names)})"
                if len(rec.names) <= 8
                else str(len(rec.names))
            )
            params = f"W {rec.weights.shape[0]} x {rec.weights.shape[1]}, " + (
                f"b {rec.biases.shape[0]}" if rec.biases is not None else "no bias"
            )
        elif rec.type == "conv2d":
            size = " x ".join(map(str, rec.net.shape[1:]))
            params = (
                f"kernels {' x '.join(map(str, rec.weights.shape))}, "
                + (f"b {rec.biases.shape[0]}" if rec.biases is not None else "no bias")
                + f", stride {rec.stride[0]}, padding {rec.padding}"
            )
        else:
            size = " x ".join(map(str, rec.net.shape[1:]))
            kh, kw = rec.kernel_size
            params = f"window {kh} x {kw}, stride {rec.stride[0]}, padding {rec.padding}"
        act = rec.activation if rec.type != "maxpool2d" else ""
        rows.append([str(rec.index + 1), rec.type, size, act, params])
    m = len(first.samples)
    mode = (
        "online learning: one sample per update"
        if m == 1 and tr.n_samples > 1
        else f"mini-batch of m = {m} samples per update"
        if m > 1
        else "one sample"
    )
    facts = [
        f"Loss: {_loss_name(tr)}"
        + (" (computed from net by log_softmax, o = softmax(net))." if tr.loss == "ce" else "."),
        f"Learning rate eta = {tr.lr:g}; {len(tr.steps)} step(s) of gradient descent ({mode}); "
        f"biases {'are' if tr.train_biases else 'are not'} trained; dtype {tr.dtype}.",
        "Every number below is a value the deltaprop engine produced: forward values, "
        ".grad after backward(), the local derivatives of its ops, and the weights after "
        f"the update by {tr.optimizer}.",
    ]
    return [
        Heading(2, "Network"),
        Table(
            ["layer", "type", "neurons / shape", "activation", "parameters"], rows, numeric=False
        ),
        Equations([Equation([_loss_formula(tr)])]),
        Para(" ".join(facts)),
    ]


def _step_blocks(tr: NetworkTrace, step: StepRecord, F: Fmt) -> list[Block]:
    m = len(step.samples)
    title = f"Step {step.index}"
    if tr.n_samples > 1:
        title += f" (sample{'s' if m > 1 else ''} {', '.join(str(s + 1) for s in step.samples)})"
    out: list[Block] = [Heading(2, title), Heading(3, "Forward pass")]
    out += _inputs_blocks(step, F)
    for rec in step.layers:
        out += _forward_layer(tr, step, rec, F)
    out += [Heading(3, "Loss")] + _loss_blocks(tr, step, F)
    out.append(Heading(3, "Backward pass"))
    for li in range(len(step.layers) - 1, -1, -1):
        out += _backward_layer(tr, step, li, F)
    out += [Heading(3, f"Update (eta = {tr.lr:g})")] + _update_blocks(tr, step, F)
    if step.verification is not None:
        out += [Heading(3, "Gradient check")] + _verify_blocks(step, F)
    return out


def _layer_title(rec: LayerRecord, n_layers: int) -> str:
    if rec.type == "linear":
        role = "output layer" if rec.index == n_layers - 1 else "hidden layer"
        return f"Layer {rec.index + 1} ({role}, {rec.activation})"
    if rec.type == "conv2d":
        return f"Layer {rec.index + 1} (conv2d, {rec.activation})"
    return f"Layer {rec.index + 1} (max pool {rec.kernel_size[0]} x {rec.kernel_size[1]})"


def _inputs_blocks(step: StepRecord, F: Fmt) -> list[Block]:
    x = step.inputs
    if x.ndim == 2:
        names = step.layers[0].in_names or [f"i{j + 1}" for j in range(x.shape[1])]
        rows = [[str(s + 1)] + [F.full(v) for v in x[k]] for k, s in enumerate(step.samples)]
        tgt = step.targets.reshape(len(step.samples), -1)
        cols: list[M | str] = ["sample"] + [val(n) for n in names]
        cols += [target(j + 1) for j in range(tgt.shape[1])]
        rows = [r + [F.full(v) for v in tgt[k]] for k, r in enumerate(rows)]
        return [Table(cols, rows, caption="inputs and targets")]
    blocks: list[Block] = []
    for k, s in enumerate(step.samples):
        for c in range(x.shape[1]):
            lab = f"X (sample {s + 1}" + (f", channel {c + 1})" if x.shape[1] > 1 else ")")
            blocks.append(
                Matrix(M(lab, r"X" + (f"^{{({s + 1})}}" if len(step.samples) > 1 else "")), x[k, c])
            )
    t = step.targets.reshape(len(step.samples), -1)
    blocks.append(
        Table(
            ["sample"] + [target(j + 1) for j in range(t.shape[1])],
            [[str(s + 1)] + [F.full(v) for v in t[k]] for k, s in enumerate(step.samples)],
            caption="targets",
        )
    )
    return blocks


def _forward_layer(tr: NetworkTrace, step: StepRecord, rec: LayerRecord, F: Fmt) -> list[Block]:
    blocks: list[Block] = [Heading(4, _layer_title(rec, len(step.layers)))]
    if rec.type == "conv2d":
        return blocks + _conv_forward(step, rec, F)
    if rec.type == "maxpool2d":
        return blocks + _pool_forward(step, rec, F)
    lines = []
    x = rec.input.reshape(rec.input.shape[0], -1)
    n_samples = len(step.samples)
    for k in range(min(n_samples, _MAX_SAMPLE_EQS)):
        s = _sample(step, k)
        for j, name in enumerate(rec.names):
            lhs = net(name, s)
            if len(rec.in_names) <= 4:
                sym = join([weight(i, name) + TIMES + val(i, s) for i in rec.in_names], PLUS)
                if rec.biases is not None:
                    sym = sym + PLUS + bias(name)
                nums = join(
                    [
                        F.n(rec.weights[j, i], True) + TIMES + F.n(x[k, i], True)
                        for i in range(len(rec.in_names))
                    ],
                    PLUS,
                )
                if rec.biases is not None:
                    nums = nums + PLUS + F.n(rec.biases[j], True)
                lines.append(Equation([lhs, sym, nums, F.n(rec.net[k, j])]))
            else:
                sym = cat(
                    M("sum_i w_i,", r"\sum_i w_{i,"),
                    M(name, _tex_name(name)),
                    M(" * o_i", r"} \cdot o_i"),
                )
                if rec.biases is not None:
                    sym = cat(sym, PLUS, bias(name))
                lines.append(Equation([lhs, sym, F.n(rec.net[k, j])]))
            o = val(name, s)
            if rec.activation == "softmax":
                den = M("sum_k e^net_k", r"\sum_k e^{\mathrm{net}_k}")
                lines.append(
                    Equation(
                        [
                            o,
                            cat(M("e^", "e^{"), net(name, s), M(" / ", "} / "), den),
                            F.n(rec.out[k, j]),
                        ]
                    )
                )
            elif rec.activation == "linear":
                lines.append(Equation([o, net(name, s), F.n(rec.out[k, j])]))
            else:
                lines.append(
                    Equation(
                        [
                            o,
                            fn(rec.activation, net(name, s)),
                            fn(rec.activation, F.n(rec.net[k, j])),
                            F.n(rec.out[k, j]),
                        ]
                    )
                )
    blocks.append(Equations(lines))
    if n_samples > _MAX_SAMPLE_EQS:
        blocks.append(Para(f"(samples {_MAX_SAMPLE_EQS + 1} to {n_samples}: see the table)"))
    cols: list[M | str] = ["sample"]
    for name in rec.names:
        cols += [net(name), val(name)]
    rows = []
    for k, s in enumerate(step.samples):
        row: list[M | str] = [str(s + 1)]
        for j in range(len(rec.names)):
            row += [F.full(rec.net[k, j]), F.full(rec.out[k, j])]
        rows.append(row)
    blocks.append(Table(cols, rows))
    return blocks


def _feature_maps(label: str, tex: str, arr: np.ndarray, step: StepRecord) -> list[Block]:
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
            out.append(Matrix(M(label + suffix, tex + sup), arr[k, c]))
    return out


def _conv_forward(step: StepRecord, rec: LayerRecord, F: Fmt) -> list[Block]:
    d = rec.conv
    kk, c, kh, kw = rec.weights.shape
    blocks: list[Block] = []
    for q in range(kk):
        for ch in range(c):
            lab = "K" + (f" (kernel {q + 1}, channel {ch + 1})" if kk * c > 1 else "")
            blocks.append(
                Matrix(
                    M(lab, "K" + (f"_{{{q + 1},{ch + 1}}}" if kk * c > 1 else "")),
                    rec.weights[q, ch],
                )
            )
    blocks.append(
        Para(
            f"im2col: each {kh} x {kw} receptive field of the input becomes one row of cols "
            f"({d.cols.shape[0]} x {d.cols.shape[1]}); the kernels are the columns of Wmat "
            f"({d.wmat.shape[0]} x {d.wmat.shape[1]}). The convolution is one matrix product, "
            "net = cols @ Wmat + b (stride "
            f"{rec.stride[0]}, padding {rec.padding}; rows are labelled by output position "
            "(row,col), "
            "columns by kernel entry (row,col), counted from 1)."
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
    blocks += _feature_maps("net", r"\mathrm{net}", rec.net, step)
    if rec.activation != "linear":
        blocks.append(Para(f"o = {rec.activation}(net), elementwise:"))
        blocks += _feature_maps("o", "o", rec.out, step)
    return blocks


def _pool_forward(step: StepRecord, rec: LayerRecord, F: Fmt) -> list[Block]:
    d = rec.pool
    kh, kw = rec.kernel_size
    rows = []
    xin = rec.input
    for (a, ch, r, q), (yy, xx), _g in d.routes:
        r0, c0 = r * rec.stride[0] - rec.padding, q * rec.stride[1] - rec.padding
        win = xin[a, ch, max(r0, 0) : r0 + kh, max(c0, 0) : c0 + kw]
        rows.append(
            [
                _pos(step, a, ch, xin.shape[1], (r, q)),
                "[" + "; ".join(", ".join(F.s(v) for v in row) for row in win) + "]",
                F.full(rec.net[a, ch, r, q]),
                f"({yy + 1}, {xx + 1})",
            ]
        )
    return [
        Para(
            f"Each {kh} x {kw} window (stride {rec.stride[0]}) keeps its largest value; the "
            "position of the maximum (row, col, counted from 1) is remembered for the backward "
            "pass."
        ),
        Table(["output", "window", "max", "argmax at"], rows, numeric=False),
        *(_feature_maps("pooled", r"\mathrm{pool}", rec.out, step)),
        *(_feature_maps("argmax mask", r"\mathrm{mask}", d.mask, step)),
    ]


def _pos(step: StepRecord, a: int, ch: int, n_ch: int, rc: tuple[int, int]) -> str:
    parts = []
    if len(step.samples) > 1:
        parts.append(f"sample {step.samples[a] + 1}")
    if n_ch > 1:
        parts.append(f"channel {ch + 1}")
    parts.append(f"({rc[0] + 1}, {rc[1] + 1})")
    return ", ".join(parts)


def _loss_blocks(tr: NetworkTrace, step: StepRecord, F: Fmt) -> list[Block]:
    last = step.layers[-1]
    o = last.out.reshape(len(step.samples), -1)
    t = step.targets.reshape(len(step.samples), -1)
    m, k = o.shape
    formula = _loss_formula(tr)
    lhs, rhs = formula.text.split(" = ", 1), formula.tex.split(" = ", 1)
    sides = [M(lhs[0], rhs[0]), M(lhs[1], rhs[1])]
    if m * k <= _MAX_TERMS:
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
        scale = {"mse_half": (m, "2"), "mse": (m * k, ""), "bce": (m * k, ""), "ce": (m, "")}[
            tr.loss
        ]
        neg = "-" if tr.loss in ("bce", "ce") else ""
        if tr.reduction == "mean" and scale[0] > 1:
            if tr.loss == "mse_half":
                body = cat(
                    M(f"1/{m} (", r"\frac{1}{" + str(m) + r"}\left("), body, M(")", r"\right)")
                )
            else:
                body = cat(
                    M(f"1/{scale[0]} (", r"\frac{1}{" + str(scale[0]) + r"}\left("),
                    body,
                    M(")", r"\right)"),
                )
        if neg:
            body = cat(M("-(", r"-\left("), body, M(")", r"\right)"))
        sides.append(body)
    sides.append(F.n(step.loss))
    return [Equations([Equation(sides)])]


# -- backward ------------------------------------------------------------------------------


def _act_local(act: str, name: str, s: int | None) -> M | None:
    """The symbolic local derivative do/dnet of an elementwise activation."""
    o = val(name, s)
    if act == "sigmoid":
        return cat(o, TIMES, "(1 - ", o, ")")
    if act == "tanh":
        return cat("(1 - ", sq(o), ")")
    if act == "relu":
        return cat("[", net(name, s), " > 0]")
    return None  # linear: 1


def _dE_do(tr: NetworkTrace, j: int, name: str, s: int | None) -> M:
    """The symbolic dE/do_j of an output neuron for the loss."""
    o, t = val(name, s), target(j + 1, s)
    mean = tr.reduction == "mean"
    if tr.loss == "mse_half":
        body = cat("(", o, MINUS, t, ")")
        return cat(body, M(" / m", r" / m")) if mean else body
    if tr.loss == "mse":
        body = cat("2 (", o, MINUS, t, ")")
        return cat(body, M(" / (m K)", r" / (mK)")) if mean else body
    body = cat("(", o, MINUS, t, ") / (", o, " (1 - ", o, "))")
    return cat(body, M(" / (m K)", r" / (mK)")) if mean else body


def _output_deltas(tr: NetworkTrace, step: StepRecord, rec: LayerRecord, F: Fmt) -> list[Block]:
    lines = []
    notes = []
    m = len(step.samples)
    t = step.targets.reshape(m, -1)
    for k in range(min(m, _MAX_SAMPLE_EQS)):
        s = _sample(step, k)
        for j, name in enumerate(rec.names):
            d = delta(name, s)
            result = F.n(rec.delta[k, j])
            if tr.loss == "ce":  # softmax + cross entropy: delta = o - t
                o, tt = val(name, s), target(j + 1, s)
                sym = cat(o, MINUS, tt)
                nums = cat(F.n(rec.out[k, j], True), MINUS, F.n(t[k, j], True))
                if tr.reduction == "mean" and m > 1:
                    sym = cat("(", sym, ") / m")
                    nums = cat("(", nums, f") / {m}")
                lines.append(Equation([d, sym, nums, result]))
                continue
            if rec.activation == "softmax":  # the general softmax Jacobian
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
                if len(rec.names) <= 3:
                    lines.append(Equation([d, join(terms_s, PLUS), join(terms_n, PLUS), result]))
                else:
                    gen = cat(
                        M(
                            "sum_k dE/do_k * o_k * ([k=j] - ",
                            r"\sum_k \frac{\partial E}{\partial o_k} o_k ([k=j] - ",
                        ),
                        val(name, s),
                        ")",
                    )
                    lines.append(Equation([d, gen, result]))
                continue
            local = _act_local(rec.activation, name, s)
            g = F.n(rec.out_grad[k, j], True)
            de = _dE_do(tr, j, name, s)
            if local is None:  # linear output: delta = dE/do
                lines.append(Equation([d, de, result]))
            else:
                sides = [
                    d,
                    cat(de, TIMES, local),
                    cat(g, TIMES, F.n(rec.local[k, j], True)),
                    result,
                ]
                lines.append(Equation(sides))
    if tr.loss == "bce":
        notes.append(
            "For the sigmoid with binary cross entropy the o (1 - o) cancels: "
            "delta = o - t (scaled by the reduction)."
        )
    if tr.loss == "ce":
        notes.append(
            "Softmax with cross entropy: the Jacobian of the softmax and the derivative "
            "of the log cancel to delta = o - t."
        )
    if tr.loss == "ce":
        intro = (
            "Output neurons: delta_j = dE/dnet_j; E is computed from net by log_softmax, and "
            "the engine's net.grad is o_j - t_j"
            + (" divided by m." if tr.reduction == "mean" else ".")
        )
    elif rec.activation == "softmax":
        intro = (
            "Output neurons: delta_j = dE/dnet_j = sum_k dE/do_k * do_k/dnet_j, with the softmax "
            "Jacobian do_k/dnet_j = o_k ([k=j] - o_j); dE/do_k is the engine's o.grad."
        )
    else:
        intro = (
            "Output neurons: delta_j = dE/dnet_j = dE/do_j * do_j/dnet_j; the first factor comes "
            "from the loss, the second from the activation (both are the engine's values: o.grad "
            "and the local derivative of its op)."
        )
    blocks: list[Block] = [Para(intro), Equations(lines)]
    blocks += [Para(n) for n in notes]
    if m > _MAX_SAMPLE_EQS:
        blocks.append(Para(f"(samples {_MAX_SAMPLE_EQS + 1} to {m}: see the table)"))
    return blocks


def _hidden_deltas(step: StepRecord, rec: LayerRecord, nxt: LayerRecord, F: Fmt) -> list[Block]:
    lines = []
    m = len(step.samples)
    for k in range(min(m, _MAX_SAMPLE_EQS)):
        s = _sample(step, k)
        for j, name in enumerate(rec.names):
            d = delta(name, s)
            result = F.n(rec.delta[k, j])
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
                    M(name, _tex_name(name)),
                    M(",l", ",l}"),
                )
                nums = None
            g = F.n(rec.out_grad[k, j], True)
            if rec.activation == "softmax":
                lines.append(
                    Equation(
                        [
                            d,
                            cat(
                                M("sum_k dE/d", r"\sum_k \frac{\partial E}{\partial "),
                                M("h_k * h_k * ([k=j] - ", r"h_k} h_k ([k=j] - "),
                                val(name, s),
                                ")",
                            ),
                            result,
                        ]
                    )
                )
                continue
            local = _act_local(rec.activation, name, s)
            if local is None:
                sides = [d, sym] + ([nums] if nums is not None else []) + [result]
            else:
                sides = [d, cat("(", sym, ")", TIMES, local)]
                if nums is not None:
                    sides.append(cat("(", nums, ")", TIMES, F.n(rec.local[k, j], True)))
                sides += [cat(g, TIMES, F.n(rec.local[k, j], True)), result]
            lines.append(Equation(sides))
    blocks: list[Block] = [
        Para(
            "Hidden neurons: delta_j = (sum_l delta_l * w_jl) * f'(net_j): the deltas of the next "
            "layer flow back through the same weights that carried the activations forward "
            "(before the update). The sum is dE/do_j, the engine's o.grad."
        ),
        Equations(lines),
    ]
    if m > _MAX_SAMPLE_EQS:
        blocks.append(Para(f"(samples {_MAX_SAMPLE_EQS + 1} to {m}: see the table)"))
    return blocks


def _linear_grads(step: StepRecord, rec: LayerRecord, F: Fmt) -> list[Block]:
    m = len(step.samples)
    x = rec.input.reshape(m, -1)
    lines = []
    for j, name in enumerate(rec.names):
        for i, iname in enumerate(rec.in_names):
            lhs = dE(weight(iname, name))
            res = F.n(rec.weight_grad[j, i])
            if m == 1:
                lines.append(
                    Equation(
                        [
                            lhs,
                            cat(delta(name), TIMES, val(iname)),
                            cat(F.n(rec.delta[0, j], True), TIMES, F.n(x[0, i], True)),
                            res,
                        ]
                    )
                )
            else:
                sym = cat(
                    M("sum_s ", r"\sum_s "),
                    delta(name, None),
                    M("[s]", "^{(s)}"),
                    TIMES,
                    val(iname),
                    M("[s]", "^{(s)}"),
                )
                if m <= 4:
                    nums = join(
                        [F.n(rec.delta[k, j], True) + TIMES + F.n(x[k, i], True) for k in range(m)],
                        PLUS,
                    )
                    lines.append(Equation([lhs, sym, nums, res]))
                else:
                    lines.append(Equation([lhs, sym, res]))
        if rec.bias_grad is None:
            continue
        lhs = dE(bias(name))
        res = F.n(rec.bias_grad[j])
        if m == 1:
            lines.append(Equation([lhs, delta(name), res]))
        else:
            sym = cat(M("sum_s ", r"\sum_s "), delta(name), M("[s]", "^{(s)}"))
            if m <= 4:
                lines.append(
                    Equation(
                        [lhs, sym, join([F.n(rec.delta[k, j], True) for k in range(m)], PLUS), res]
                    )
                )
            else:
                lines.append(Equation([lhs, sym, res]))
    blocks: list[Block] = [
        Para(
            "Weight gradients: dE/dw_ij = delta_j * o_i (summed over the samples of the "
            "mini-batch), and dE/db_j = delta_j."
        ),
        Equations(lines),
    ]
    if m > 1:
        L = rec.index + 1
        prev = "X" if rec.index == 0 else f"O{L - 1}"
        prev_tex = "X" if rec.index == 0 else f"O_{{{L - 1}}}"
        blocks += [
            Para(
                f"The same in matrix form for the mini-batch (rows = samples): D{L} = dE/dNET{L}, "
                f"dE/dW{L} = D{L}^T {prev} (shaped as W: neurons x inputs), "
                f"dE/db{L} = column sums of D{L}."
            ),
            Matrix(
                M(f"D{L}", f"D_{{{L}}}"), rec.delta, [str(s + 1) for s in step.samples], rec.names
            ),
            Matrix(M(prev, prev_tex), x, [str(s + 1) for s in step.samples], rec.in_names),
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
            ),
        ]
    return blocks


def _backward_layer(tr: NetworkTrace, step: StepRecord, li: int, F: Fmt) -> list[Block]:
    rec = step.layers[li]
    blocks: list[Block] = [Heading(4, _layer_title(rec, len(step.layers)))]
    if rec.type == "linear":
        if li == len(step.layers) - 1:
            blocks += _output_deltas(tr, step, rec, F)
        elif step.layers[li + 1].type == "linear":
            blocks += _hidden_deltas(step, rec, step.layers[li + 1], F)
        if rec.out_grad is not None:
            cols: list[M | str] = ["sample"] + [
                c for name in rec.names for c in (dE(val(name)), delta(name))
            ]
            rows = [
                [str(s + 1)]
                + [
                    F.full(v)
                    for j in range(len(rec.names))
                    for v in (rec.out_grad[k, j], rec.delta[k, j])
                ]
                for k, s in enumerate(step.samples)
            ]
        else:  # softmax + cross entropy: E is computed from net directly (log_softmax)
            cols = ["sample"] + [delta(name) for name in rec.names]
            rows = [
                [str(s + 1)] + [F.full(rec.delta[k, j]) for j in range(len(rec.names))]
                for k, s in enumerate(step.samples)
            ]
        blocks.append(Table(cols, rows))
        blocks += _linear_grads(step, rec, F)
        return blocks
    if rec.type == "maxpool2d":
        return blocks + _pool_backward(step, rec, F)
    return blocks + _conv_backward(step, rec, F)


def _pool_backward(step: StepRecord, rec: LayerRecord, F: Fmt) -> list[Block]:
    d = rec.pool
    rows = []
    for (a, ch, r, q), (yy, xx), g in d.routes:
        rows.append(
            [_pos(step, a, ch, rec.net.shape[1], (r, q)), F.full(g), f"({yy + 1}, {xx + 1})"]
        )
    return [
        Para(
            "delta = dE/d(pooled) arrives from the next layer. The max gate routes each upstream "
            "gradient to the position of its window's maximum; every other input gets 0."
        ),
        *(_feature_maps("delta = dE/d(pooled)", r"\delta", rec.delta, step)),
        Table(["window", "upstream gradient", "goes to input position"], rows, numeric=False),
        *(
            _feature_maps(
                "dE/d(pool input)", r"\frac{\partial E}{\partial \mathrm{in}}", d.dx, step
            )
        ),
    ]


def _conv_backward(step: StepRecord, rec: LayerRecord, F: Fmt) -> list[Block]:
    d = rec.conv
    kk = rec.weights.shape[0]
    ks = [f"k{q + 1}" for q in range(kk)]
    blocks: list[Block] = []
    if rec.activation != "linear":
        blocks.append(
            Para(
                f"delta = dE/do * f'(net), elementwise ({rec.activation}); dE/do comes "
                "from the next layer:"
            )
        )
        blocks += _feature_maps("dE/do", r"\frac{\partial E}{\partial o}", rec.out_grad, step)
        blocks += _feature_maps(
            "do/dnet", r"\frac{\partial o}{\partial \mathrm{net}}", rec.local, step
        )
    else:
        blocks.append(Para("Linear activation: delta = dE/dnet = dE/do, from the next layer."))
    blocks += _feature_maps("delta", r"\delta", rec.delta, step)
    blocks += [
        Para(
            "Unrolled like the output positions, delta is the matrix dY (one row per position, "
            "one column per kernel). The kernel gradient is the GEMM dW = cols^T @ dY; the bias "
            "gradient sums dY over the positions."
        ),
        Matrix(M("dY", "dY"), d.dy, d.row_labels, ks),
        Matrix(M("dW = cols^T @ dY", r"dW = \mathrm{cols}^T dY"), d.dw, d.col_labels, ks),
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
                                ", ".join(_tex_number(F.s(v)) for v in d.db),
                            ),
                        ]
                    )
                ]
            )
        )
    if d.dx is not None:
        blocks += [
            Para(
                "dX = col2im(dY @ Wmat^T): each row of dcols = dY @ Wmat^T belongs to one "
                "receptive "
                "field; col2im scatters it back onto the input, and where windows overlap the "
                "contributions add up (dcols[output position; kernel entry]):"
            ),
            Matrix(
                M("dcols = dY @ Wmat^T", r"d\mathrm{cols} = dY \, W_{\mathrm{mat}}^T"),
                d.dcols,
                d.row_labels,
                d.col_labels,
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
                    f"dcols[{d.row_labels[r]}; {d.col_labels[c]}]",
                    r"d\mathrm{cols}_{"
                    + d.row_labels[r].replace(" ", r"\,")
                    + ";"
                    + d.col_labels[c].replace(" ", r"\,")
                    + "}",
                )
                for r, c in contribs
            ]
            nums = [F.n(d.dcols[r, c], True) for r, c in contribs]
            sides = [lhs, join(terms, PLUS)]
            if len(nums) > 1:
                sides.append(join(nums, PLUS))
            sides.append(F.n(d.dx[a, ch, yy, xx]))
            lines.append(Equation(sides))
        blocks.append(Equations(lines))
        blocks += _feature_maps("dX = col2im(dcols)", r"dX", d.dx, step)
    return blocks


def _param_rows(rec: LayerRecord) -> list[tuple[M, float, float, float, bool]]:
    """(name, before, gradient, after, is_bias) of each parameter of a layer."""
    out = []
    if rec.weights is None:
        return out
    if rec.type == "linear":
        for j, name in enumerate(rec.names):
            for i, iname in enumerate(rec.in_names):
                out.append(
                    (
                        weight(iname, name),
                        rec.weights[j, i],
                        rec.weight_grad[j, i],
                        rec.weights_after[j, i],
                        False,
                    )
                )
        for j, name in enumerate(rec.names):
            if rec.biases is not None:
                out.append((bias(name), rec.biases[j], rec.bias_grad[j], rec.biases_after[j], True))
    else:
        for idx in np.ndindex(rec.weights.shape):
            out.append(
                (
                    _kernel_label(rec, idx),
                    rec.weights[idx],
                    rec.weight_grad[idx],
                    rec.weights_after[idx],
                    False,
                )
            )
        for q in range(rec.weights.shape[0] if rec.biases is not None else 0):
            out.append(
                (
                    _conv_bias_label(rec, q),
                    rec.biases[q],
                    rec.bias_grad[q],
                    rec.biases_after[q],
                    True,
                )
            )
    return out


def _kernel_label(rec: LayerRecord, idx: tuple[int, ...]) -> M:
    """``K[i,j]`` for a single kernel, ``K2[c,i,j]`` for kernel 2 of several (from 1)."""
    kk, c = rec.weights.shape[:2]
    q, ch, i, j = idx
    if kk * c == 1:
        return M(f"K[{i + 1},{j + 1}]", f"K_{{{i + 1},{j + 1}}}")
    return M(f"K{q + 1}[{ch + 1},{i + 1},{j + 1}]", f"K^{{({q + 1})}}_{{{ch + 1},{i + 1},{j + 1}}}")


def _conv_bias_label(rec: LayerRecord, q: int) -> M:
    return M("b", "b") if rec.weights.shape[0] == 1 else M(f"b{q + 1}", f"b_{{{q + 1}}}")


def _update_blocks(tr: NetworkTrace, step: StepRecord, F: Fmt) -> list[Block]:
    lines = []
    rows = []
    for rec in step.layers:
        for name, before, g, after, is_bias in _param_rows(rec):
            trained = tr.train_biases or not is_bias
            rows.append(
                [
                    name,
                    F.full(before),
                    F.full(g),
                    F.full(after) if trained else F.full(after) + " (not trained)",
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
                        rel=ARROW,
                    )
                )
    blocks: list[Block] = [
        Para(
            "Gradient descent: w <- w - eta * dE/dw for every weight and bias "
            f"(done by {tr.optimizer}; the new values are read back from the engine)."
        )
    ]
    if not tr.train_biases:
        blocks.append(Para("train_biases = false: the biases keep their values."))
    blocks += [Equations(lines), Table(["parameter", "before", "dE/dparameter", "after"], rows)]
    return blocks


def _check_label(step: StepRecord, c: Check) -> str:
    rec = step.layers[c.layer]
    if c.kind == "weight" and rec.type == "linear":
        return "dE/d" + weight(rec.in_names[c.index[1]], rec.names[c.index[0]]).text
    if c.kind == "bias" and rec.type == "linear":
        return "dE/d" + bias(rec.names[c.index[0]]).text
    if c.kind == "delta" and rec.type == "linear":
        return delta(rec.names[c.index[1]], _sample(step, c.index[0])).text
    if c.kind == "weight" and rec.type == "conv2d":
        return "dE/d" + _kernel_label(rec, c.index).text
    if c.kind == "bias" and rec.type == "conv2d":
        return "dE/d" + _conv_bias_label(rec, c.index[0]).text
    return f"{c.kind} of layer {c.layer + 1} at {tuple(i + 1 for i in c.index)}"


def _verify_blocks(step: StepRecord, F: Fmt) -> list[Block]:
    v = step.verification
    w = v.worst
    status = "OK" if v.ok else "MISMATCH"
    return [
        Para(
            f"Central finite differences (E(p + eps) - E(p - eps)) / (2 eps), eps = {v.eps:g}, in "
            f"float64, for all {v.count} gradients (weights, biases and deltas): "
            "largest discrepancy "
            f"{w.error:.3g} at {_check_label(step, w)} (backprop {F.full(w.analytic)}, finite "
            f"differences {F.full(w.numeric)}): {status}."
        )
    ]


def verification_summary(tr: Any) -> str | None:
    """One line: the largest finite-difference discrepancy of all steps (None without verify)."""
    if not isinstance(tr, NetworkTrace) or tr.steps[0].verification is None:
        return None
    worst_step = max(tr.steps, key=lambda st: st.verification.worst.error)
    v = worst_step.verification
    ok = all(st.verification.ok for st in tr.steps)
    n = sum(st.verification.count for st in tr.steps)
    return (
        f"gradient check: {n} gradients vs central finite differences, largest discrepancy "
        f"{v.worst.error:.3g} ({_check_label(worst_step, v.worst)}, step {worst_step.index}): "
        f"{'OK' if ok else 'MISMATCH'}"
    )


# ----------------------------------------------------------------------------------------------
# circuits
# ----------------------------------------------------------------------------------------------

_GATE_NAMES = {
    "add": "add gate: distributes the upstream gradient to both inputs",
    "sub": "sub gate: passes the gradient to a, and its negative to b",
    "mul": "mul gate: each input gets the upstream gradient times the other input (swaps)",
    "div": "div gate: d(a/b)/da = 1/b, d(a/b)/db = -a/b^2",
    "pow": "pow gate: d(x^p)/dx = p x^(p-1)",
    "neg": "neg gate: flips the sign",
    "exp": "exp gate: local derivative e^x, the gate's own output",
    "log": "log gate: local derivative 1/x",
    "sqrt": "sqrt gate: local derivative 1/(2 sqrt(x))",
    "sigmoid": "sigmoid gate: local derivative s (1 - s), one gate instead of four",
    "tanh": "tanh gate: local derivative 1 - t^2",
    "relu": "relu gate: passes the gradient where x > 0",
    "abs": "abs gate: local derivative sign(x)",
    "max": "max gate: routes the whole gradient to the larger input (ties split it)",
    "min": "min gate: routes the whole gradient to the smaller input (ties split it)",
}


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


def circuit_document(tr: CircuitTrace, digits: int = 4) -> list[Block]:
    """The blocks of a circuit trace: forward values, then each gate's backward rule."""
    F = Fmt(digits)
    out = val(tr.output)
    blocks: list[Block] = [Heading(1, tr.title)]
    if tr.description:
        blocks.append(Para(tr.description))
    blocks.append(
        Para(
            f"The circuit {tr.expression!r} as a graph of gates, run forward and backward by the "
            "deltaprop engine. Each gate multiplies the gradient arriving from above (upstream) "
            "by its local derivative; where a value feeds several gates, the gradients add up."
        )
    )
    inputs = [n for n in tr.nodes if n.op == "input"]
    gates = [n for n in tr.nodes if n.op not in ("input", "const")]
    blocks += [
        Heading(2, "Forward pass"),
        Table(["input", "value"], [[val(n.name), F.full(n.value)] for n in inputs]),
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
        lines.append(Equation([val(g.name), e_sym, nums, F.n(g.value)]))
    blocks.append(Equations(lines))

    blocks.append(Heading(2, "Backward pass"))
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
            lines.append(Equation(sides))
        if lines:
            blocks += [
                Para(f"{g.name} = {expression_of(g)}: {_GATE_NAMES.get(g.op, g.op)}."),
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
                    ]
                )
            )
    if acc:
        blocks += [
            Para(
                "Values that feed several gates: their gradients add up (the engine "
                "accumulates them into .grad)."
            ),
            Equations(acc),
        ]
    rows = [
        [
            val(n.name),
            n.op,
            expression_of(n) if n.op != "input" else "",
            F.full(n.value),
            F.full(n.grad) if n.grad is not None else "",
        ]
        for n in tr.nodes
        if n.op != "const"
    ]
    blocks += [
        Heading(2, "Summary"),
        Table(
            [
                "node",
                "gate",
                "expression",
                "value",
                M(f"d{tr.output}/d(node)", r"\partial " + out.tex + r" / \partial\,\mathrm{node}"),
            ],
            rows,
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
            else (M(name, name) if _is_num(name) else val(name))
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


def _is_num(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def document(tr: Any, digits: int = 4) -> list[Block]:
    """The blocks of any trace."""
    if isinstance(tr, CircuitTrace):
        return circuit_document(tr, digits)
    return network_document(tr, digits)
