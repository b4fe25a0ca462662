"""A worked example as one self-contained HTML page.

Every formula is MathML (the browser typesets it: no JavaScript, no fonts or scripts fetched,
works offline), cut into pieces at its top-level signs so that long lines wrap inside the
column; tables and matrices scroll sideways when wider than the page instead of being clipped.
The network is drawn as inline SVG. A small inline script adds the step mode: the buttons or
the arrow keys reveal the derivation one line at a time and highlight, in the picture, the
neurons and connections that the line uses. Without the script the page shows everything.
"""

from __future__ import annotations

import html as _html

from deltaprop.explain.blocks import (
    Block,
    Equation,
    Equations,
    Figure,
    Heading,
    Matrix,
    Para,
    Table,
)
from deltaprop.explain.mathml import chunks, to_mathml
from deltaprop.explain.notation import M
from deltaprop.explain.words import LANGS, Words

_CSS = """
.deltaprop-explain { font-family: system-ui, -apple-system, "Segoe UI", sans-serif;
  line-height: 1.5; color: #1b1b1b; max-width: 76rem; margin: 0 auto; padding: 0 1rem 4rem;
  box-sizing: border-box; }
.deltaprop-explain * { box-sizing: border-box; }
.deltaprop-explain h1 { font-size: 1.6em; border-bottom: 2px solid #444; padding-bottom: .2em; }
.deltaprop-explain h2 { font-size: 1.3em; border-bottom: 1px solid #bbb; margin-top: 1.6em; }
.deltaprop-explain h3 { font-size: 1.1em; color: #1f5f8b; margin-top: 1.2em; }
.deltaprop-explain h4 { font-size: 1em; margin: .8em 0 .3em; }
.deltaprop-explain p { color: #444; margin: .4em 0; max-width: 60rem; }
.deltaprop-explain .equations { background: #f6f8fa; border-left: 3px solid #1f5f8b;
  padding: .4em .8em; margin: .5em 0; }
.deltaprop-explain .eq { padding: .15em 0 .15em 2.5em; text-indent: -2.5em; font-size: 1.08em;
  white-space: normal; overflow-wrap: normal; }
.deltaprop-explain .eq math { text-indent: 0; }
.deltaprop-explain .eq .result math { color: #8b1f1f; font-weight: bold; }
.deltaprop-explain .eq .note { color: #666; font-size: .85em; margin-left: .6em; }
.deltaprop-explain .scroll { overflow-x: auto; max-width: 100%; }
.deltaprop-explain table { border-collapse: collapse; margin: .5em 0; font-size: .9em; }
.deltaprop-explain th, .deltaprop-explain td { border: 1px solid #ccc; padding: .15em .5em; }
.deltaprop-explain th { background: #eef2f5; }
.deltaprop-explain td.num { text-align: right; font-variant-numeric: tabular-nums; }
.deltaprop-explain figure.matrix { margin: .5em 1.5em .5em 0; display: inline-block;
  vertical-align: top; max-width: 100%; overflow-x: auto; }
.deltaprop-explain figure.net { margin: .8em 0; background: #fff; }
.deltaprop-explain figcaption { color: #555; font-size: .9em; }
.deltaprop-explain caption { caption-side: bottom; font-style: italic; color: #666; }
.deltaprop-explain nav.dp-steps { position: sticky; top: 0; z-index: 3; background: #fffbe6;
  border: 1px solid #e0c97f; padding: .3em .6em; margin: .5em 0; }
.deltaprop-explain nav.dp-steps button { font: inherit; margin-right: .4em; }
.deltaprop-explain.dp-stepping .dp-s.dp-later { display: none; }
.deltaprop-explain.dp-stepping .dp-current { background: #fff4e6; outline: 2px solid #d9480f; }
.deltaprop-explain.dp-stepping figure.net.dp-pinned { position: sticky; top: 2.6em; z-index: 2;
  margin: 0; border-bottom: 1px solid #ccc; }
.deltaprop-explain.dp-stepping figure.net.dp-pinned svg { max-height: 40vh; width: auto; }
.deltaprop-explain.dp-stepping figure.net.dp-pinned figcaption { display: none; }
"""

_SCRIPT = """
(function () {
  var root = document.querySelector(".deltaprop-explain");
  var nav = root && root.querySelector("nav.dp-steps");
  if (!nav) { return; }
  var units = Array.prototype.slice.call(root.querySelectorAll(".dp-s"));
  var count = nav.querySelector(".dp-count");
  var pos = -1;
  nav.hidden = false;
  function clear() {
    root.querySelectorAll(".hl").forEach(function (e) { e.classList.remove("hl"); });
    root.querySelectorAll(".dp-current").forEach(function (e) {
      e.classList.remove("dp-current"); });
    root.querySelectorAll(".dp-pinned").forEach(function (e) { e.classList.remove("dp-pinned"); });
  }
  function show(k) {
    pos = Math.max(0, Math.min(units.length - 1, k));
    root.classList.add("dp-stepping");
    clear();
    var pinned = null;
    units.forEach(function (u, i) {
      u.classList.toggle("dp-later", i > pos);
      if (i <= pos && u.tagName === "FIGURE" && u.classList.contains("net")) { pinned = u; }
    });
    var cur = units[pos];
    cur.classList.add("dp-current");
    if (pinned) { pinned.classList.add("dp-pinned"); }
    (cur.getAttribute("data-refs") || "").split(" ").forEach(function (r) {
      if (!r) { return; }
      root.querySelectorAll('[data-ref="' + r + '"]').forEach(function (e) {
        e.classList.add("hl"); });
    });
    count.textContent = (pos + 1) + " / " + units.length;
    cur.scrollIntoView({block: "nearest"});
  }
  function stop() {
    root.classList.remove("dp-stepping");
    clear();
    units.forEach(function (u) { u.classList.remove("dp-later"); });
    pos = -1;
    count.textContent = "";
  }
  nav.addEventListener("click", function (ev) {
    var act = ev.target.getAttribute("data-act");
    if (act === "start") { show(0); }
    else if (act === "next") { show(pos + 1); }
    else if (act === "prev") { show(pos - 1); }
    else if (act === "all") { stop(); }
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "ArrowRight" || (pos >= 0 && ev.key === "ArrowDown")) {
      show(pos + 1); ev.preventDefault();
    } else if (pos >= 0 && (ev.key === "ArrowLeft" || ev.key === "ArrowUp")) {
      show(pos - 1); ev.preventDefault();
    } else if (pos >= 0 && ev.key === "Escape") { stop(); }
  });
})();
"""


def _h(s: str) -> str:
    return _html.escape(s, quote=True)


def math_inline(m: M | str) -> str:
    """A table cell or caption: MathML for a formula, escaped text otherwise."""
    return to_mathml(m.tex) if isinstance(m, M) else _h(m)


def equation_html(e: Equation) -> str:
    """One line of a derivation: its sides as MathML pieces that wrap at their signs."""
    parts: list[str] = []
    last = len(e.sides) - 1
    for k, side in enumerate(e.sides):
        if k == 0:
            pieces = chunks(side.tex)
        else:
            rel = e.rel.tex if k == 1 else " = "
            pieces = chunks(rel + " " + side.tex)
        text = " ".join(pieces)
        if k == last and k > 0:
            text = f'<span class="result">{text}</span>'
        parts.append(text)
    if e.note:
        parts.append(f'<span class="note">({_h(e.note)})</span>')
    refs = f' data-refs="{" ".join(e.refs)}"' if e.refs else ""
    return f'<div class="eq dp-s"{refs}>' + " ".join(parts) + "</div>"


def _table(b: Table) -> str:
    head = "".join(f"<th>{math_inline(c)}</th>" for c in b.columns)
    trs = []
    for r in b.rows:
        cells = []
        for k, c in enumerate(r):
            cls = ' class="num"' if b.numeric and k else ""
            cells.append(f"<td{cls}>{math_inline(c)}</td>")
        trs.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{_h(b.caption)}</caption>" if b.caption else ""
    return (
        f'<div class="scroll dp-s"><table>{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(trs)}</tbody></table></div>"
    )


def _matrix(b: Matrix) -> str:
    head = ""
    if b.cols is not None:
        head = "<thead><tr>" + ("<th></th>" if b.rows is not None else "")
        head += "".join(f"<th>{_h(c)}</th>" for c in b.cols) + "</tr></thead>"
    trs = []
    for i, row in enumerate(b.cells()):
        lab = f"<th>{_h(b.rows[i])}</th>" if b.rows is not None else ""
        cells = "".join(f'<td class="num">{_h(v)}</td>' for v in row)
        trs.append(f"<tr>{lab}{cells}</tr>")
    return (
        f'<figure class="matrix dp-s"><figcaption>{to_mathml(b.label.tex)}</figcaption>'
        f"<table>{head}<tbody>{''.join(trs)}</tbody></table></figure>"
    )


def render_html(blocks: list[Block], fragment: bool = False, lang: str = "en") -> str:
    """One self-contained HTML page (or, with ``fragment``, the ``<div>`` for Jupyter)."""
    body: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            lvl = min(b.level, 6)
            body.append(f'<h{lvl} class="dp-s">{_h(b.text)}</h{lvl}>')
        elif isinstance(b, Para):
            body.append(f'<p class="dp-s">{_h(b.text)}</p>')
        elif isinstance(b, Equations):
            if b.lines:
                body.append(
                    '<div class="equations">' + "".join(map(equation_html, b.lines)) + "</div>"
                )
        elif isinstance(b, Table):
            body.append(_table(b))
        elif isinstance(b, Matrix):
            body.append(_matrix(b))
        elif isinstance(b, Figure):
            body.append(
                f'<figure class="net dp-s">{b.svg()}<figcaption>{_h(b.caption)}</figcaption>'
                "</figure>"
            )
    inner = "\n".join(body)
    if fragment:
        return f'<div class="deltaprop-explain"><style>{_CSS}</style>\n{inner}\n</div>'
    w = Words(lang if lang in LANGS else "en")
    nav = (
        '<nav class="dp-steps" hidden>'
        f'<button type="button" data-act="start">{w("nav_start")}</button>'
        f'<button type="button" data-act="prev" aria-label="{w("nav_prev")}">&#9664;</button>'
        f'<button type="button" data-act="next" aria-label="{w("nav_next")}">&#9654;</button>'
        f'<button type="button" data-act="all">{w("nav_all")}</button>'
        f' <span class="dp-count"></span> <small>{_h(w("nav_hint"))}</small></nav>'
    )
    title = next((b.text for b in blocks if isinstance(b, Heading)), "deltaprop explain")
    return (
        f'<!DOCTYPE html>\n<html lang="{_h(lang)}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="generator" content="deltaprop explain">\n<title>{_h(title)}</title>\n'
        f"<style>{_CSS}</style>\n</head>\n<body>\n"
        f'<main class="deltaprop-explain">\n{nav}\n{inner}\n</main>\n'
        f"<script>{_SCRIPT}</script>\n</body>\n</html>\n"
    )
