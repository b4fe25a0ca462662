"""Computational graphs as Graphviz DOT text: one node per op, edges from inputs to outputs.

``graph(t)`` walks the ops recorded for tensor ``t`` (``t.grad_fn`` and its ``inputs``) and
draws, for each op, its name, output shape, value (when small), gradient (after backward) and,
in the gate view, its local gradient rule (taken from the op's own docstring, where every
deltaprop op states its derivative): add distributes, mul swaps, max routes.

The graph must still exist: ``backward()`` frees it unless called with ``retain_graph=True``.
``graph(t, backward=True)`` takes care of it: it keeps every intermediate gradient
(:func:`retain_grads`) and runs ``t.backward(retain_graph=True)`` first.

>>> import deltaprop as dp
>>> x = dp.tensor(-2.0, requires_grad=True); y = dp.tensor(5.0, requires_grad=True)
>>> z = dp.tensor(-4.0, requires_grad=True)
>>> f = (x + y) * z
>>> dot = graph(f, names={"x": x, "y": y, "z": z, "f": f}, backward=True)
>>> dot.startswith("digraph")
True
"""

from __future__ import annotations

import html
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from deltaprop.autograd import graph_functions
from deltaprop.tensor import Function, Tensor

INSTALL_HINT = (
    "Graphviz's `dot` program is not installed, so only the DOT text could be written. "
    "Install Graphviz to render pictures: `sudo apt-get install graphviz` (Debian/Ubuntu), "
    "`brew install graphviz` (macOS), `conda install -c conda-forge graphviz`, or see "
    "https://graphviz.org/download/ ; or paste the DOT text into https://dreampuf.github.io/GraphvizOnline/"
)

_GATES = {
    "Add": "add gate: distributes",
    "Sub": "sub gate: distributes (negated to b)",
    "Mul": "mul gate: swaps",
    "Maximum": "max gate: routes",
    "Minimum": "min gate: routes",
    "MaxMin": "max gate: routes",
    "MaxPool2D": "max gate: routes",
    "Sigmoid": "sigmoid gate",
    "MatMul": "matmul: mul gates + add gates",
}


class Graph(str):
    """DOT text (a ``str``) that displays itself inline in Jupyter.

    ``_repr_svg_`` renders it with Graphviz's ``dot`` when installed (None otherwise, so that
    Jupyter falls back to ``_repr_html_``); ``_repr_html_`` shows the SVG, or, without Graphviz,
    the DOT text and how to install Graphviz.

    >>> g = Graph("digraph { a -> b }")
    >>> g.startswith("digraph"), "&gt;" in g._repr_html_() or "<svg" in g._repr_html_()
    (True, True)
    """

    def _repr_svg_(self) -> str | None:
        if not dot_available():
            return None
        return render_dot(self, "svg").decode("utf-8")

    def _repr_html_(self) -> str:
        svg = self._repr_svg_()
        if svg is not None:
            return f'<div class="deltaprop-graph">{svg}</div>'
        return (
            f'<div class="deltaprop-graph"><p>{html.escape(INSTALL_HINT)}</p>'
            f"<pre>{html.escape(str(self))}</pre></div>"
        )


class GraphFreedError(RuntimeError):
    """The graph was freed by ``backward()`` before it could be drawn."""


class GraphvizNotFound(RuntimeError):
    """Graphviz's ``dot`` is not installed (the message says how to install it)."""


def local_rule(fn: Function) -> str:
    """The op's local gradient rule, from its docstring (``y = a * b.  dy/da = b, dy/db = a``)."""
    doc = (type(fn).__doc__ or "").strip().split("\n")[0]
    if ".  " in doc:
        rule = doc.split(".  ", 1)[1].rstrip(".")
        return rule.split(":")[0].strip() if ": the" in rule else rule
    return doc.rstrip(".")


def gate_name(fn: Function) -> str:
    """A short name of the gate's behaviour in backward (``mul gate: swaps``), or ''."""
    name = fn.name
    if name == "MaxMin" and not getattr(fn, "is_max", True):
        return "min gate: routes"
    return _GATES.get(name, "")


def retain_grads(t: Tensor) -> None:
    """Ask every intermediate tensor of ``t``'s graph to keep its ``.grad`` after backward."""
    for fn in _functions(t):
        out = fn._out()
        if out is not None and out.requires_grad:
            out.retain_grad()


def _functions(t: Tensor) -> list[Function]:
    """The recorded ops of ``t``'s graph, outputs first."""
    order = graph_functions([t])
    if any(fn.inputs is None for fn in order):
        raise GraphFreedError(
            "viz.graph: the graph of this tensor was freed by backward(); call "
            "backward(retain_graph=True) before drawing it, or let viz do it: "
            "viz.graph(t, backward=True)"
        )
    return order


def _fmt_array(a: np.ndarray, digits: int) -> str:
    """A small array as text, each number with ``digits`` significant digits."""
    if a.ndim == 0:
        return f"{float(a):.{digits}g}" if a.dtype.kind == "f" else str(a.item())
    text = np.array2string(
        a,
        separator=", ",
        max_line_width=60,
        formatter={"float_kind": lambda v: f"{v:.{digits}g}"},
    )
    return text.replace("\n", "")


def _shape(a: np.ndarray) -> str:
    return "scalar" if a.ndim == 0 else "(" + ", ".join(map(str, a.shape)) + ")"


def _names_by_id(names: Any) -> dict[int, str]:
    if names is None:
        return {}
    if isinstance(names, Mapping):
        items: Iterable[tuple[Any, Any]] = names.items()
    else:
        items = names
    out: dict[int, str] = {}
    for k, v in items:
        if isinstance(k, Tensor) and isinstance(v, str):
            k, v = v, k
        if not isinstance(v, Tensor):
            raise TypeError(
                f"viz.graph: names must map names to tensors, got {type(v).__name__} for {k!r}"
            )
        out[id(v)] = str(k)
    return out


def _label(lines: list[tuple[str, str]]) -> str:
    """An HTML-like Graphviz label: (text, style) lines; style in bold/value/grad/rule/''."""
    rows = []
    for text, style in lines:
        t = html.escape(text, quote=False)
        if style == "bold":
            t = f"<B>{t}</B>"
        elif style == "grad":
            t = f'<FONT COLOR="#b22222">{t}</FONT>'
        elif style == "rule":
            t = f'<FONT COLOR="#555555" POINT-SIZE="10"><I>{t}</I></FONT>'
        elif style == "dim":
            t = f'<FONT COLOR="#666666" POINT-SIZE="10">{t}</FONT>'
        rows.append(t)
    return "<" + "<BR/>".join(rows) + ">"


def graph(
    t: Tensor,
    names: Any = None,
    *,
    backward: bool = False,
    gate_view: bool = True,
    max_values: int = 6,
    digits: int = 4,
    title: str | None = None,
    rankdir: str = "LR",
) -> Graph:
    """DOT text of the graph that produced ``t`` (a :class:`Graph`: a ``str`` that Jupyter
    displays as a picture).

    ``names`` maps names to tensors (a dict, or ``model.named_parameters()``) to label inputs
    and intermediate values. Values and gradients are printed for tensors with at most
    ``max_values`` elements. ``backward=True`` runs ``t.backward(retain_graph=True)`` first
    (after :func:`retain_grads`), so that every node shows its gradient; otherwise gradients
    appear where ``.grad`` is already set (leaves, and tensors that called ``retain_grad()``).
    """
    if not isinstance(t, Tensor):
        raise TypeError(f"viz.graph: expected a Tensor, got {type(t).__name__}")
    if rankdir not in ("LR", "RL", "TB", "BT"):
        raise ValueError(f"viz.graph: rankdir must be LR, RL, TB or BT, got {rankdir!r}")
    fns = _functions(t)
    if backward:
        if not t.requires_grad:
            raise ValueError("viz.graph: backward=True needs a tensor that requires grad")
        retain_grads(t)
        grad = None if t.data.size == 1 else np.ones_like(t.data)
        t.backward(grad, retain_graph=True)
    by_id = _names_by_id(names)

    def value_lines(x: Tensor) -> list[tuple[str, str]]:
        lines = [(_shape(x.data) + (f" {x.dtype}" if x.dtype != np.float32 else ""), "dim")]
        if x.data.size <= max_values:
            lines.append(("value " + _fmt_array(x.data, digits), ""))
        if x.grad is not None and x.grad.data.size <= max_values:
            lines.append(("grad " + _fmt_array(x.grad.data, digits), "grad"))
        elif x.grad is not None:
            lines.append((f"grad {_shape(x.grad.data)}", "grad"))
        return lines

    out = ["digraph deltaprop {"]
    out.append(
        f'  graph [rankdir={rankdir}, fontname="Helvetica", nodesep=0.35, ranksep=0.45'
        + (f', label="{_dot_escape(title)}", labelloc=t' if title else "")
        + "];"
    )
    out.append('  node [fontname="Helvetica", fontsize=11];')
    out.append('  edge [color="#555555", arrowsize=0.7];')
    node_ids: dict[int, str] = {}
    leaves: list[Tensor] = []
    for k, fn in enumerate(reversed(fns)):
        node_ids[id(fn)] = f"op{k}"
        for x in fn.inputs:
            if x._ctx is None and id(x) not in node_ids:
                node_ids[id(x)] = f"t{len(leaves)}"
                leaves.append(x)
    if not fns:  # a leaf on its own
        node_ids[id(t)] = "t0"
        leaves.append(t)

    for x in leaves:
        nm = by_id.get(id(x))
        kind = "input" if x.requires_grad else "constant"
        head = nm if nm is not None else kind
        lines = [(head, "bold")] + value_lines(x)
        style = (
            'style="filled", fillcolor="#fff3cd"'
            if x.requires_grad
            else 'style="filled,dashed", fillcolor="#f2f2f2"'
        )
        out.append(f"  {node_ids[id(x)]} [shape=ellipse, {style}, label={_label(lines)}];")
    for fn in reversed(fns):
        y = fn._out()
        op = fn.name
        nm = by_id.get(id(y)) if y is not None else None
        lines = [((f"{nm} = " if nm else "") + op, "bold")]
        if y is not None:
            lines += value_lines(y)
        if gate_view:
            g = gate_name(fn)
            if g:
                lines.append((g, "rule"))
            rule = local_rule(fn)
            if rule:
                lines.append((rule if len(rule) <= 60 else rule[:57] + "...", "rule"))
        root = y is t
        fill = "#d4edda" if root else "#e8f0fe"
        pen = ", penwidth=2" if root else ""
        out.append(
            f'  {node_ids[id(fn)]} [shape=box, style="rounded,filled", fillcolor="{fill}"{pen}, '
            f"label={_label(lines)}];"
        )
    for fn in reversed(fns):
        for x in fn.inputs:
            src = node_ids[id(x._ctx)] if x._ctx is not None else node_ids[id(x)]
            out.append(f"  {src} -> {node_ids[id(fn)]};")
    out.append("}")
    return Graph("\n".join(out) + "\n")


def _dot_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def dot_available() -> bool:
    """Whether Graphviz's ``dot`` program is on PATH."""
    return shutil.which("dot") is not None


def render_dot(dot: str, fmt: str = "svg") -> bytes:
    """Render DOT text with Graphviz's ``dot`` (``fmt``: svg, png, pdf...)."""
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizNotFound(INSTALL_HINT)
    proc = subprocess.run([exe, f"-T{fmt}"], input=dot.encode(), capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"dot -T{fmt} failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout
