"""Draw a worked example (the blocks of :mod:`.document`) as text, Markdown, LaTeX, HTML or JSON.

* ``text``: tables drawn by ``rich`` (colours only on a terminal);
* ``markdown``: GitHub-flavoured Markdown, formulas in ``text`` code blocks;
* ``latex``: a standalone ``article`` with ``align*`` environments (needs only amsmath);
* ``html``: one self-contained page (inline CSS, no scripts); ``fragment=True`` gives the
  ``<div>`` that Jupyter shows (``_repr_html_``);
* ``json``: every number, for programs (see :func:`to_dict` for the layout).
"""

from __future__ import annotations

import html as _html
import io
import json
import math
from typing import Any

import numpy as np

from deltaprop.explain.circuit import CircuitTrace, expression_of
from deltaprop.explain.document import (
    Block,
    Equation,
    Equations,
    Fmt,
    Heading,
    M,
    Matrix,
    Para,
    Table,
    _check_label,
    document,
    verification_summary,
)
from deltaprop.explain.trace import NetworkTrace

FORMATS = ("text", "markdown", "latex", "html", "json")


def render(
    tr: Any,
    fmt: str = "text",
    *,
    digits: int = 4,
    width: int = 100,
    color: bool = False,
    fragment: bool = False,
    indent: int | None = 2,
) -> str:
    """The trace in one of :data:`FORMATS`.

    >>> from deltaprop.explain.circuit import trace_circuit
    >>> tr = trace_circuit("f = (x + y) * z", {"x": -2, "y": 5, "z": -4})
    >>> "df/dx" in render(tr, "markdown")
    True
    """
    if fmt == "json":
        return json.dumps(to_dict(tr), indent=indent)
    if fmt not in FORMATS:
        raise ValueError(f"render: unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    blocks = document(tr, digits)
    summary = verification_summary(tr)
    if summary and len(tr.steps) > 1:
        blocks = blocks + [Heading(2, "Gradient check (--verify)"), Para(summary)]
    if fmt == "text":
        return render_text(blocks, width=width, color=color)
    if fmt == "markdown":
        return render_markdown(blocks)
    if fmt == "latex":
        return render_latex(blocks)
    return render_html(blocks, fragment=fragment)


def _eq_text(e: Equation) -> str:
    parts = [s.text for s in e.sides]
    out = parts[0] + (e.rel.text if len(parts) > 1 else "") + " = ".join(parts[1:])
    return out + (f"   ({e.note})" if e.note else "")


def _cell_text(c: M | str) -> str:
    return c.text if isinstance(c, M) else c


# ----------------------------------------------------------------------------------------------
# text (rich)
# ----------------------------------------------------------------------------------------------


def _rich_blocks(blocks: list[Block]) -> list[Any]:
    from rich import box
    from rich.rule import Rule
    from rich.table import Table as RTable
    from rich.text import Text

    out: list[Any] = []
    for b in blocks:
        if isinstance(b, Heading):
            if b.level == 1:
                out.append(Rule(Text(b.text, style="bold"), characters="="))
            elif b.level == 2:
                out += [Text(""), Rule(Text(b.text, style="bold magenta"), align="left")]
            elif b.level == 3:
                out += [Text(""), Text(b.text, style="bold cyan")]
            else:
                out += [Text(""), Text(b.text, style="bold")]
        elif isinstance(b, Para):
            out.append(Text(b.text, style="dim"))
        elif isinstance(b, Equations):
            t = Text()
            for k, e in enumerate(b.lines):
                if k:
                    t.append("\n")
                t.append("  " + _eq_text(e))
            t.no_wrap = True
            t.overflow = "ignore"
            out.append(t)
        elif isinstance(b, Table):
            rt = RTable(
                box=box.SIMPLE_HEAD, caption=b.caption or None, show_edge=False, pad_edge=False
            )
            for k, c in enumerate(b.columns):
                rt.add_column(
                    _cell_text(c), justify="right" if (b.numeric and k) else "left", no_wrap=True
                )
            for r in b.rows:
                rt.add_row(*[_cell_text(c) for c in r])
            out.append(rt)
        elif isinstance(b, Matrix):
            out += [Text(b.label.text, style="bold"), _rich_matrix(b, RTable, box, Text)]
    return out


def _rich_matrix(b: Matrix, RTable: Any, box: Any, Text: Any) -> Any:
    vals = np.asarray(b.values)
    if vals.ndim == 1:
        vals = vals[None]
    F = Fmt(4)
    show_header = b.cols is not None
    rt = RTable(box=box.SQUARE, show_header=show_header, pad_edge=True)
    if b.rows is not None:
        rt.add_column("", style="dim", no_wrap=True)
    for j in range(vals.shape[1]):
        rt.add_column(b.cols[j] if b.cols is not None else "", justify="right", no_wrap=True)
    for i in range(vals.shape[0]):
        cells = [F.s(v) for v in vals[i]]
        rt.add_row(*(([b.rows[i]] if b.rows is not None else []) + cells))
    return rt


def render_text(blocks: list[Block], width: int = 100, color: bool = False) -> str:
    """Plain text drawn by rich (ANSI colours only when ``color``)."""
    from rich.console import Console

    buf = io.StringIO()
    console = Console(
        file=buf,
        width=width,
        force_terminal=color,
        no_color=not color,
        color_system="standard" if color else None,
        highlight=False,
        emoji=False,
    )
    for r in _rich_blocks(blocks):
        console.print(r, soft_wrap=getattr(r, "no_wrap", False) is True)
    text = buf.getvalue()
    if color:
        return text
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def print_text(blocks: list[Block], console: Any = None) -> None:
    """Print to the terminal (rich picks colours and width)."""
    from rich.console import Console

    console = console or Console(highlight=False, emoji=False)
    for r in _rich_blocks(blocks):
        console.print(r, soft_wrap=getattr(r, "no_wrap", False) is True)


# ----------------------------------------------------------------------------------------------
# Markdown
# ----------------------------------------------------------------------------------------------


def _md_escape(s: str) -> str:
    for ch in ("\\", "*", "_", "`", "|", "<", ">", "[", "]"):
        s = s.replace(ch, "\\" + ch)
    return s


def _md_cell(c: M | str) -> str:
    if isinstance(c, M):
        return "`" + c.text + "`"
    return c.replace("|", "\\|")


def _md_table(header: list[str], rows: list[list[str]], right: bool = True) -> list[str]:
    aligns = ["---"] + [("---:" if right else "---") for _ in header[1:]]
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(aligns) + " |"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def render_markdown(blocks: list[Block]) -> str:
    lines: list[str] = []
    F = Fmt(4)
    for b in blocks:
        if isinstance(b, Heading):
            lines += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, Para):
            lines += [_md_escape(b.text), ""]
        elif isinstance(b, Equations):
            lines += ["```text"] + [_eq_text(e) for e in b.lines] + ["```", ""]
        elif isinstance(b, Table):
            if b.caption:
                lines += [f"*{_md_escape(b.caption)}*", ""]
            lines += _md_table(
                [_md_cell(c) for c in b.columns],
                [[_md_cell(c) for c in r] for r in b.rows],
                right=b.numeric,
            )
            lines.append("")
        elif isinstance(b, Matrix):
            vals = np.asarray(b.values)
            vals = vals[None] if vals.ndim == 1 else vals
            lines += [f"`{b.label.text}`", ""]
            header = ([""] if b.rows is not None else []) + (
                [_md_cell(c) for c in b.cols]
                if b.cols is not None
                else [str(j + 1) for j in range(vals.shape[1])]
            )
            rows = [
                ([b.rows[i]] if b.rows is not None else []) + [F.s(v) for v in vals[i]]
                for i in range(vals.shape[0])
            ]
            lines += _md_table(header, rows) + [""]
    return "\n".join(lines).rstrip() + "\n"


# ----------------------------------------------------------------------------------------------
# LaTeX
# ----------------------------------------------------------------------------------------------

_TEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "#": r"\#",
    "^": r"\^{}",
    "_": r"\_",
    "%": r"\%",
    "~": r"\~{}",
    "<": r"$<$",
    ">": r"$>$",
}


def tex_escape(s: str) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in s)


def _tex_cell(c: M | str, numeric: bool) -> str:
    if isinstance(c, M):
        return f"${c.tex}$"
    if numeric and _is_number(c):
        return "$" + _tex_num(c) + "$"
    return tex_escape(c)


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _tex_num(s: str) -> str:
    from deltaprop.explain.document import _tex_number

    return _tex_number(s)


def _tex_equations(b: Equations) -> list[str]:
    out = [r"\begin{align*}"]
    for k, e in enumerate(b.lines):
        sides = [s.tex for s in e.sides]
        rel = e.rel.tex.strip()
        length = sum(len(s.text) for s in e.sides)
        if len(sides) == 1:
            body = sides[0].replace(" = ", " &= ", 1) if " = " in sides[0] else "&" + sides[0]
        elif length < 75:
            body = sides[0] + f" &{rel} " + " = ".join(sides[1:])
        else:
            body = sides[0] + f" &{rel} " + sides[1]
            for s in sides[2:]:
                body += r" \\" + "\n  &= " + s
        if e.note:
            body += r" \quad \text{(" + tex_escape(e.note) + ")}"
        end = r" \\[2pt]" if k < len(b.lines) - 1 else ""
        out.append("  " + body + end)
    out.append(r"\end{align*}")
    return out


def render_latex(blocks: list[Block]) -> str:
    """A standalone LaTeX document (article + amsmath) that compiles with pdflatex."""
    title = next(
        (b.text for b in blocks if isinstance(b, Heading) and b.level == 1), "deltaprop explain"
    )
    lines = [
        r"\documentclass[10pt]{article}",
        r"\usepackage{amsmath}",
        r"\usepackage[T1]{fontenc}",
        r"\setcounter{MaxMatrixCols}{64}",
        r"\allowdisplaybreaks",
        r"\setlength{\textwidth}{16cm}\setlength{\oddsidemargin}{0cm}\setlength{\evensidemargin}{0cm}",
        r"\setlength{\parindent}{0pt}\setlength{\parskip}{4pt}",
        r"\title{" + tex_escape(title) + "}",
        r"\author{generated by \texttt{deltaprop explain}}",
        r"\date{}",
        r"\begin{document}",
        r"\maketitle",
        "",
    ]
    F = Fmt(4)
    seen_title = False
    for b in blocks:
        if isinstance(b, Heading):
            if b.level == 1 and not seen_title:
                seen_title = True
                continue
            cmd = {1: "section", 2: "section", 3: "subsection"}.get(b.level, "subsubsection")
            lines += [f"\\{cmd}*{{{tex_escape(b.text)}}}", ""]
        elif isinstance(b, Para):
            lines += [tex_escape(b.text), ""]
        elif isinstance(b, Equations):
            if b.lines:
                lines += _tex_equations(b) + [""]
        elif isinstance(b, Table):
            spec = "l" + ("r" if b.numeric else "l") * (len(b.columns) - 1)
            lines += [r"\begin{center}\small", r"\begin{tabular}{" + spec + "}", r"\hline"]
            lines.append(" & ".join(_tex_cell(c, False) for c in b.columns) + r" \\ \hline")
            for r in b.rows:
                lines.append(" & ".join(_tex_cell(c, True) for c in r) + r" \\")
            lines += [r"\hline", r"\end{tabular}"]
            if b.caption:
                lines.append(r"\\[2pt] \textit{" + tex_escape(b.caption) + "}")
            lines += [r"\end{center}", ""]
        elif isinstance(b, Matrix):
            vals = np.asarray(b.values)
            vals = vals[None] if vals.ndim == 1 else vals
            body = r" \\ ".join(" & ".join(_tex_num(F.s(v)) for v in row) for row in vals)
            lines += [
                r"\[",
                b.label.tex + r" = \begin{bmatrix} " + body + r" \end{bmatrix}",
                r"\]",
                "",
            ]
    lines.append(r"\end{document}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------
# HTML
# ----------------------------------------------------------------------------------------------

_CSS = """
.deltaprop-explain { font-family: system-ui, -apple-system, "Segoe UI", sans-serif;
  line-height: 1.45;
  max-width: 60rem; color: #1b1b1b; }
.deltaprop-explain h1 { font-size: 1.6em; border-bottom: 2px solid #444; padding-bottom: .2em; }
.deltaprop-explain h2 { font-size: 1.3em; border-bottom: 1px solid #bbb; margin-top: 1.6em; }
.deltaprop-explain h3 { font-size: 1.1em; color: #1f5f8b; margin-top: 1.2em; }
.deltaprop-explain h4 { font-size: 1em; margin: .8em 0 .3em; }
.deltaprop-explain p { color: #444; margin: .4em 0; }
.deltaprop-explain .equations { font-family: ui-monospace, Menlo, Consolas, monospace;
  background: #f6f8fa; border-left: 3px solid #1f5f8b; padding: .4em .8em; margin: .5em 0;
  overflow-x: auto; white-space: pre; font-size: .9em; }
.deltaprop-explain .eq .result { font-weight: bold; color: #8b1f1f; }
.deltaprop-explain table { border-collapse: collapse; margin: .5em 0; font-size: .9em; }
.deltaprop-explain th, .deltaprop-explain td { border: 1px solid #ccc; padding: .15em .5em; }
.deltaprop-explain th { background: #eef2f5; font-family: ui-monospace, Menlo, monospace; }
.deltaprop-explain td.num { text-align: right; font-family: ui-monospace, Menlo, monospace; }
.deltaprop-explain figure.matrix { margin: .5em 0; display: inline-block; vertical-align: top;
  margin-right: 1.5em; }
.deltaprop-explain figure.matrix figcaption { font-family: ui-monospace, Menlo, Consolas, monospace;
  font-weight: bold; }
.deltaprop-explain caption { caption-side: bottom; font-style: italic; color: #666; }
"""


def _h(s: str) -> str:
    return _html.escape(s, quote=True)


def render_html(blocks: list[Block], fragment: bool = False) -> str:
    """One self-contained HTML page (or, with ``fragment``, the ``<div>`` for Jupyter)."""
    F = Fmt(4)
    body: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            lvl = min(b.level, 6)
            body.append(f"<h{lvl}>{_h(b.text)}</h{lvl}>")
        elif isinstance(b, Para):
            body.append(f"<p>{_h(b.text)}</p>")
        elif isinstance(b, Equations):
            rows = []
            for e in b.lines:
                text = _eq_text(e)
                res = e.sides[-1].text if len(e.sides) > 1 else ""
                if res and text.endswith(res) and not e.note:
                    rows.append(
                        f'<div class="eq">{_h(text[: -len(res)])}<span class="result">'
                        f"{_h(res)}</span></div>"
                    )
                else:
                    rows.append(f'<div class="eq">{_h(text)}</div>')
            body.append('<div class="equations">' + "".join(rows) + "</div>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{_h(_cell_text(c))}</th>" for c in b.columns)
            trs = []
            for r in b.rows:
                cells = []
                for k, c in enumerate(r):
                    cls = ' class="num"' if b.numeric and k else ""
                    cells.append(f"<td{cls}>{_h(_cell_text(c))}</td>")
                trs.append("<tr>" + "".join(cells) + "</tr>")
            cap = f"<caption>{_h(b.caption)}</caption>" if b.caption else ""
            body.append(
                f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(trs)}</tbody></table>"
            )
        elif isinstance(b, Matrix):
            vals = np.asarray(b.values)
            vals = vals[None] if vals.ndim == 1 else vals
            head = ""
            if b.cols is not None:
                head = "<thead><tr>" + ("<th></th>" if b.rows is not None else "")
                head += "".join(f"<th>{_h(c)}</th>" for c in b.cols) + "</tr></thead>"
            trs = []
            for i in range(vals.shape[0]):
                lab = f"<th>{_h(b.rows[i])}</th>" if b.rows is not None else ""
                trs.append(
                    "<tr>"
                    + lab
                    + "".join(f'<td class="num">{_h(F.s(v))}</td>' for v in vals[i])
                    + "</tr>"
                )
            body.append(
                f'<figure class="matrix"><figcaption>{_h(b.label.text)}</figcaption>'
                f"<table>{head}<tbody>{''.join(trs)}</tbody></table></figure>"
            )
    inner = "\n".join(body)
    if fragment:
        return f'<div class="deltaprop-explain"><style>{_CSS}</style>\n{inner}\n</div>'
    title = next((b.text for b in blocks if isinstance(b, Heading)), "deltaprop explain")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="generator" content="deltaprop explain">\n<title>{_h(title)}</title>\n'
        f'<style>{_CSS}</style>\n</head>\n<body>\n<main class="deltaprop-explain">\n{inner}\n'
        "</main>\n</body>\n</html>\n"
    )


# ----------------------------------------------------------------------------------------------
# JSON
# ----------------------------------------------------------------------------------------------


def _clean(x: Any) -> Any:
    """Arrays to nested lists; NaN/inf to None (JSON has no NaN)."""
    if x is None:
        return None
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def _squeeze_channels(arr: np.ndarray | None, squeeze: bool) -> np.ndarray | None:
    if arr is None or not squeeze or arr.ndim != 4 or arr.shape[1] != 1:
        return arr
    return arr[:, 0]


def to_dict(tr: Any) -> dict[str, Any]:
    """Every number of the trace as plain Python data (the JSON contract).

    Networks: ``{"steps": [{"loss": float, "layers": [{"net": [[..]], "out": [[..]],
    "delta": [[..]], "weight_grad": [[..]], "bias_grad": [..], "weights_after": [[..]],
    "biases_after": [..], ...}, ...], ...}, ...], ...}`` with one row per sample in
    net/out/delta and the matrices shaped as in the spec (rows = neurons, columns = inputs; a
    conv kernel given as one kh x kw matrix stays a matrix). Extra keys add detail (inputs,
    targets, weights_before, out_grad, the im2col matrices, the argmax mask, verification).
    Circuits: ``{"kind": "circuit", "steps": [{"loss": f, "nodes": [...]}], ...}``.
    """
    if isinstance(tr, CircuitTrace):
        nodes = []
        for n in tr.nodes:
            nodes.append(
                {
                    "name": n.name,
                    "op": n.op,
                    "inputs": list(n.inputs),
                    "expression": expression_of(n) if n.op not in ("input", "const") else None,
                    "value": _clean(n.value),
                    "grad": _clean(n.grad),
                    "local_grads": _clean(n.locals),
                    "edge_grads": _clean(n.contribs),
                }
            )
        out_node = tr.node(tr.output)
        return {
            "kind": "circuit",
            "title": tr.title,
            "expression": tr.expression,
            "output": tr.output,
            "dtype": tr.dtype,
            "steps": [{"loss": _clean(out_node.value), "nodes": nodes}],
        }
    assert isinstance(tr, NetworkTrace)
    squeeze = bool(tr.extra.get("squeeze_channels", False))
    steps = []
    for st in tr.steps:
        layers = []
        for rec in st.layers:
            as_matrix = rec.type == "conv2d" and rec.kernel_as_matrix

            def w_shape(a: np.ndarray | None, as_matrix: bool = as_matrix) -> Any:
                """Weights shaped as in the spec (a single conv kernel stays a matrix)."""
                if a is None:
                    return None
                return _clean(a[0, 0] if as_matrix else a)

            m = st.inputs.shape[0]
            flat = rec.type == "linear"
            d: dict[str, Any] = {
                "type": rec.type,
                "activation": rec.activation,
                "names": list(rec.names) if rec.names else None,
                "net": _clean(
                    rec.net.reshape(m, -1) if flat else _squeeze_channels(rec.net, squeeze)
                ),
                "out": _clean(
                    rec.out.reshape(m, -1) if flat else _squeeze_channels(rec.out, squeeze)
                ),
                "delta": _clean(
                    rec.delta.reshape(m, -1) if flat else _squeeze_channels(rec.delta, squeeze)
                ),
                "out_grad": _clean(
                    rec.out_grad
                    if flat or rec.out_grad is None
                    else _squeeze_channels(rec.out_grad, squeeze)
                ),
                "local_grad": _clean(
                    rec.local
                    if flat or rec.local is None
                    else _squeeze_channels(rec.local, squeeze)
                ),
                "weight_grad": w_shape(rec.weight_grad),
                "bias_grad": _clean(rec.bias_grad),
                "weights_before": w_shape(rec.weights),
                "biases_before": _clean(rec.biases),
                "weights_after": w_shape(rec.weights_after),
                "biases_after": _clean(rec.biases_after),
            }
            if rec.conv is not None:
                c = rec.conv
                d["im2col"] = {
                    "cols": _clean(c.cols),
                    "rows": c.row_labels,
                    "columns": c.col_labels,
                    "wmat": _clean(c.wmat),
                    "gemm": _clean(c.gemm),
                    "dy": _clean(c.dy),
                    "dw": _clean(c.dw),
                    "dcols": _clean(c.dcols),
                    "col2im": _clean(_squeeze_channels(c.dx, squeeze)),
                }
            if rec.pool is not None:
                p = rec.pool
                d["kernel_size"] = list(rec.kernel_size)
                d["argmax_mask"] = _clean(_squeeze_channels(p.mask, squeeze))
                d["routes"] = [
                    {"output": list(o), "input": list(i), "grad": _clean(g)} for o, i, g in p.routes
                ]
                d["input_grad"] = _clean(_squeeze_channels(p.dx, squeeze))
            layers.append(d)
        step: dict[str, Any] = {
            "step": st.index,
            "samples": list(st.samples),
            "inputs": _clean(_squeeze_channels(st.inputs, squeeze)),
            "targets": _clean(st.targets.reshape(st.targets.shape[0], -1)),
            "loss": float(st.loss),
            "layers": layers,
        }
        if st.verification is not None:
            v = st.verification
            step["verify"] = {
                "eps": v.eps,
                "count": v.count,
                "ok": v.ok,
                "max_abs_error": v.worst.error,
                "where": _check_label(st, v.worst),
                "analytic": v.worst.analytic,
                "numeric": v.worst.numeric,
            }
        steps.append(step)
    return {
        "kind": "network",
        "title": tr.title,
        "loss_function": tr.loss,
        "reduction": tr.reduction,
        "lr": tr.lr,
        "train_biases": tr.train_biases,
        "dtype": tr.dtype,
        "batch_size": tr.batch_size,
        "n_samples": tr.n_samples,
        "optimizer": tr.optimizer,
        "steps": steps,
    }
