"""Fully connected layers in the vectorised mini-batch form of the notes (``--notation
matrix``)::

    I = X W + b,   O = f(I),   D = dE/dI,   Delta W = O_prev^T D,   Delta b = sum_rows D

with one row per sample. ``W`` is stored inputs x neurons here (the transpose of
``nn.Linear.weight``), as the notes write it; every matrix is the engine's, transposed where
the notes' layout asks for it.
"""

from __future__ import annotations

import numpy as np

from deltaprop.explain.blocks import (
    ARROW_REL,
    Block,
    Equation,
    Equations,
    Matrix,
    Para,
    edge_ref,
    unit_ref,
)
from deltaprop.explain.context import Ctx
from deltaprop.explain.notation import M
from deltaprop.explain.records import LayerRecord


def _refs(rec: LayerRecord) -> tuple[str, ...]:
    """A matrix line uses the whole layer: its inputs, its neurons and every connection."""
    i, n = len(rec.in_names), len(rec.names)
    units = [unit_ref(rec.index, a) for a in range(i)] + [
        unit_ref(rec.index + 1, j) for j in range(n)
    ]
    return (*units, *(edge_ref(rec.index, a, j) for a in range(i) for j in range(n)))


def _sym(base: str, layer: int) -> M:
    return M(f"{base}{layer}", f"{base}_{{{layer}}}")


def _prev(rec: LayerRecord) -> M:
    return M("X", "X") if rec.index == 0 else _sym("O", rec.index)


def _delta_sym(base: str, layer: int) -> M:
    return M(f"Delta {base}{layer}", rf"\Delta {base}_{{{layer}}}")


def _new_sym(base: str, layer: int) -> M:
    return M(f"{base}{layer} (new)", rf"{base}_{{{layer}}}^{{\mathrm{{new}}}}")


def _weight_matrix(label: M, weights: np.ndarray, rec: LayerRecord, kind: str = "") -> Matrix:
    """A layer's weights (or their gradient) inputs x neurons: the engine's, transposed."""
    return Matrix(label, weights.T, rec.in_names, rec.names, kind=kind)


def _bias_row(label: M, biases: np.ndarray, rec: LayerRecord, kind: str = "") -> Matrix:
    """A layer's biases (or their gradient) as one row."""
    return Matrix(label, biases[None], None, rec.names, kind=kind)


def _update_line(base: str, rec: LayerRecord) -> Equation:
    """``W <- W - eta Delta W`` (or the same for ``b``)."""
    L = rec.index + 1
    rule = M(f"{base}{L} - eta Delta {base}{L}", rf"{base}_{{{L}}} - \eta \, \Delta {base}_{{{L}}}")
    return Equation([_sym(base, L), rule], rel=ARROW_REL, refs=_refs(rec))


_LOCAL = {
    "sigmoid": (" * O{L} * (1 - O{L})", r" \odot O_{{{L}}} \odot (1 - O_{{{L}}})"),
    "tanh": (" * (1 - O{L}^2)", r" \odot (1 - O_{{{L}}}^2)"),
    "relu": (" * [I{L} > 0]", r" \odot [I_{{{L}}} > 0]"),
    "linear": ("", ""),
}


def _local(rec: LayerRecord) -> M:
    text, tex = _LOCAL.get(rec.activation, ("", ""))
    L = rec.index + 1
    return M(text.format(L=L), tex.format(L=L))


def forward(c: Ctx, rec: LayerRecord) -> list[Block]:
    L = rec.index + 1
    samples = [str(s + 1) for s in c.step.samples]
    refs = _refs(rec)
    eq = [
        Equation(
            [
                _sym("I", L),
                M(f"{_prev(rec).text} W{L} + b{L}", f"{_prev(rec).tex} W_{{{L}}} + b_{{{L}}}"),
            ],
            refs=refs,
        )
    ]
    act = {"softmax": "softmax", "linear": "identity"}.get(rec.activation, rec.activation)
    eq.append(
        Equation([_sym("O", L), M(f"{act}(I{L})", rf"\mathrm{{{act}}}(I_{{{L}}})")], refs=refs)
    )
    blocks: list[Block] = []
    if rec.index == 0 or c.step.layers[rec.index - 1].type != "linear":
        blocks.append(Para(c.w("matrix_intro")))
    blocks += [
        Equations(eq),
        Matrix(
            _prev(rec),
            c.rows(rec.input),
            samples,
            rec.in_names,
            kind="forward" if rec.index else "",
        ),
        _weight_matrix(_sym("W", L), rec.weights, rec),
    ]
    if rec.biases is not None:
        blocks.append(_bias_row(_sym("b", L), rec.biases, rec))
    blocks += [
        Matrix(_sym("I", L), rec.net, samples, rec.names, kind="forward"),
        Matrix(_sym("O", L), rec.out, samples, rec.names, kind="forward"),
    ]
    return blocks


def _delta_rule(c: Ctx, rec: LayerRecord) -> M:
    L = rec.index + 1
    o, y = f"O{L}", "Y"
    mean = c.tr.reduction == "mean"
    loss = c.tr.loss
    if loss in ("ce", "bce"):  # the cancellations
        div = "" if not mean else (" / m" if loss == "ce" else " / (m K)")
        return M(f"({o} - {y}){div}", f"(O_{{{L}}} - Y)" + div.replace("m K", "mK"))
    local = _local(rec)
    if loss == "mse_half":
        div = " / m" if mean else ""
        return M(f"({o} - {y}){local.text}{div}", f"(O_{{{L}}} - Y){local.tex}{div}")
    div = " / (m K)" if mean else ""
    return M(
        f"2 ({o} - {y}){local.text}{div}",
        f"2 (O_{{{L}}} - Y){local.tex}" + div.replace("m K", "mK"),
    )


def backward(c: Ctx, rec: LayerRecord) -> list[Block]:
    L = rec.index + 1
    samples = [str(s + 1) for s in c.step.samples]
    refs = _refs(rec)
    if c.last(rec):
        rule = _delta_rule(c, rec)
    elif c.step.layers[rec.index + 1].type == "linear":
        rule = M(
            f"(D{L + 1} W{L + 1}^T){_local(rec).text}",
            f"(D_{{{L + 1}}} W_{{{L + 1}}}^T){_local(rec).tex}",
        )
    else:
        rule = M(
            f"dE/dO{L}{_local(rec).text}",
            rf"\frac{{\partial E}}{{\partial O_{{{L}}}}}{_local(rec).tex}",
        )
    eqs = [
        Equation([_sym("D", L), rule], refs=refs),
        Equation(
            [
                _delta_sym("W", L),
                M(f"{_prev(rec).text}^T D{L}", f"{_prev(rec).tex}^T D_{{{L}}}"),
            ],
            refs=refs,
        ),
    ]
    blocks: list[Block] = [
        Para(c.w("matrix_bwd")),
        Equations(eqs),
        Matrix(_sym("D", L), rec.delta, samples, rec.names, kind="deltas"),
        _weight_matrix(_delta_sym("W", L), rec.weight_grad, rec, kind="gradients"),
    ]
    if rec.bias_grad is not None:
        blocks.append(
            Equations(
                [
                    Equation(
                        [
                            _delta_sym("b", L),
                            M(f"sum_rows D{L}", rf"\sum_{{\mathrm{{rows}}}} D_{{{L}}}"),
                        ],
                        refs=refs,
                    )
                ]
            )
        )
        blocks.append(_bias_row(_delta_sym("b", L), rec.bias_grad, rec, kind="gradients"))
    return blocks


def update(c: Ctx) -> list[Block]:
    """``W <- W - eta Delta W`` for each linear layer, with the new matrices."""
    blocks: list[Block] = []
    for rec in c.step.layers:
        if rec.type != "linear":
            continue
        L = rec.index + 1
        lines = [_update_line("W", rec)]
        if rec.biases is not None and c.tr.train_biases:
            lines.append(_update_line("b", rec))
        blocks += [
            Equations(lines),
            _weight_matrix(_new_sym("W", L), rec.weights_after, rec, kind="updates"),
        ]
        if rec.biases_after is not None:
            blocks.append(_bias_row(_new_sym("b", L), rec.biases_after, rec, kind="updates"))
    return blocks


def loss_formula(c: Ctx) -> M:
    """The cost in matrix form: ``E = 1/(2m) sum (O - Y)^2`` and the like."""
    L = len(c.step.layers)
    o, ot = f"O{L}", f"O_{{{L}}}"
    mean = c.tr.reduction == "mean"
    loss = c.tr.loss
    if loss == "mse_half":
        front, tex = ("1/(2m) ", r"\frac{1}{2m}") if mean else ("1/2 ", r"\frac{1}{2}")
        return M(f"E = {front}sum ({o} - Y)^2", f"E = {tex} \\sum ({ot} - Y)^2")
    if loss == "mse":
        front, tex = ("1/(m K) ", r"\frac{1}{mK}") if mean else ("", "")
        return M(f"E = {front}sum ({o} - Y)^2", f"E = {tex} \\sum ({ot} - Y)^2")
    if loss == "bce":
        front, tex = ("-1/(m K) ", r"-\frac{1}{mK}") if mean else ("-", "-")
        return M(
            f"E = {front}sum [Y * log {o} + (1 - Y) * log(1 - {o})]",
            f"E = {tex} \\sum \\left[Y \\odot \\log {ot} + (1 - Y) \\odot \\log(1 - {ot})\\right]",
        )
    front, tex = ("-1/m ", r"-\frac{1}{m}") if mean else ("-", "-")
    return M(f"E = {front}sum Y * log {o}", f"E = {tex} \\sum Y \\odot \\log {ot}")
