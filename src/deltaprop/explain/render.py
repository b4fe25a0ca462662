"""Draw a worked example (the blocks of :mod:`.document`) as text, Markdown, LaTeX, HTML or JSON.

* ``text``: tables drawn by ``rich`` (colours only on a terminal);
* ``markdown``: GitHub-flavoured Markdown, formulas in ``text`` code blocks, the neuron picture
  as inline SVG;
* ``latex``: a standalone ``article`` with ``align*`` environments (:mod:`.latex`);
* ``html``: one self-contained page with MathML and a step mode (:mod:`.html`);
  ``fragment=True`` gives the ``<div>`` that Jupyter shows (``_repr_html_``);
* ``json``: every number, for programs (:mod:`.jsondata`).
"""

from __future__ import annotations

import io
import json
from typing import Any

from deltaprop.explain.blocks import Block, Equations, Figure, Heading, Matrix, Para, Table
from deltaprop.explain.document import document
from deltaprop.explain.html import render_html
from deltaprop.explain.jsondata import to_dict
from deltaprop.explain.latex import render_latex
from deltaprop.explain.network_doc import verification_summary
from deltaprop.explain.notation import M
from deltaprop.explain.words import Options, Words

FORMATS = ("text", "markdown", "latex", "html", "json")


def render(
    tr: Any,
    fmt: str = "text",
    *,
    digits: int = 4,
    notation: str = "textbook",
    lang: str = "en",
    width: int = 100,
    color: bool = False,
    fragment: bool = False,
    indent: int | None = 2,
) -> str:
    """The trace in one of :data:`FORMATS` (``notation``: ``textbook`` or ``matrix``;
    ``lang``: ``en`` or ``zh``).

    >>> from deltaprop.explain.circuit import trace_circuit
    >>> tr = trace_circuit("f = (x + y) * z", {"x": -2, "y": 5, "z": -4})
    >>> "df/dx" in render(tr, "markdown")
    True
    """
    if fmt == "json":
        return json.dumps(to_dict(tr), indent=indent)
    if fmt not in FORMATS:
        raise ValueError(f"render: unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    opts = Options(digits=digits, notation=notation, lang=lang)
    blocks = blocks_of(tr, opts)
    return render_blocks(blocks, fmt, width=width, color=color, fragment=fragment, lang=lang)


def blocks_of(tr: Any, opts: Options) -> list[Block]:
    """The document of a trace, with the gradient check of all steps at the end."""
    blocks = document(tr, opts)
    summary = verification_summary(tr)
    if summary and len(tr.steps) > 1:
        blocks = blocks + [Heading(2, Words(opts.lang)("check_all")), Para(summary)]
    return blocks


def render_blocks(
    blocks: list[Block],
    fmt: str,
    *,
    width: int = 100,
    color: bool = False,
    fragment: bool = False,
    lang: str = "en",
) -> str:
    """Blocks in ``text``, ``markdown``, ``latex`` or ``html``."""
    if fmt == "text":
        return render_text(blocks, width=width, color=color)
    if fmt == "markdown":
        return render_markdown(blocks)
    if fmt == "latex":
        return render_latex(blocks, lang=lang)
    return render_html(blocks, fragment=fragment, lang=lang)


def cell_text(c: M | str) -> str:
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
                t.append("  " + e.as_text())
            t.no_wrap = True
            t.overflow = "ignore"
            out.append(t)
        elif isinstance(b, Table):
            rt = RTable(
                box=box.SIMPLE_HEAD, caption=b.caption or None, show_edge=False, pad_edge=False
            )
            for k, c in enumerate(b.columns):
                rt.add_column(
                    cell_text(c), justify="right" if (b.numeric and k) else "left", no_wrap=True
                )
            for r in b.rows:
                rt.add_row(*[cell_text(c) for c in r])
            out.append(rt)
        elif isinstance(b, Matrix):
            out += [Text(b.label.text, style="bold"), _rich_matrix(b, RTable, box, Text)]
        elif isinstance(b, Figure):
            continue  # pictures are for HTML and Markdown
    return out


def _rich_matrix(b: Matrix, RTable: Any, box: Any, Text: Any) -> Any:
    cells = b.cells()
    show_header = b.cols is not None
    rt = RTable(box=box.SQUARE, show_header=show_header, pad_edge=True)
    if b.rows is not None:
        rt.add_column("", style="dim", no_wrap=True)
    for j in range(len(cells[0])):
        rt.add_column(b.cols[j] if b.cols is not None else "", justify="right", no_wrap=True)
    for i, row in enumerate(cells):
        rt.add_row(*(([b.rows[i]] if b.rows is not None else []) + row))
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
    for b in blocks:
        if isinstance(b, Heading):
            lines += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, Para):
            lines += [_md_escape(b.text), ""]
        elif isinstance(b, Equations):
            lines += ["```text"] + [e.as_text() for e in b.lines] + ["```", ""]
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
            cells = b.cells()
            lines += [f"`{b.label.text}`", ""]
            header = ([""] if b.rows is not None else []) + (
                [_md_cell(c) for c in b.cols]
                if b.cols is not None
                else [str(j + 1) for j in range(len(cells[0]))]
            )
            rows = [
                ([b.rows[i]] if b.rows is not None else []) + row for i, row in enumerate(cells)
            ]
            lines += _md_table(header, rows) + [""]
        elif isinstance(b, Figure):
            lines += [f"*{_md_escape(b.caption)}*", "", b.svg(), ""]
    return "\n".join(lines).rstrip() + "\n"
