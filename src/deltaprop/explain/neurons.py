"""The network as the textbook draws it: an SVG of neurons and connections.

Each vector-valued layer is a column of circles (the inputs on the left); a neuron shows its
``net`` and ``o`` (forward view) or its ``delta`` (backward view); each connection of a linear
layer is labelled with its weight (forward) or ``dE/dw`` (backward). Image-shaped values
(convolution, pooling) are drawn as one box. Every element carries a ``data-ref`` that the
derivation lines name (:func:`~.blocks.unit_ref`, :func:`~.blocks.edge_ref`,
:func:`~.blocks.layer_ref`), so that the HTML step mode can highlight what a line uses.

>>> from deltaprop.explain import explain_spec, parse_spec
>>> tr = explain_spec(parse_spec({"loss": "mse_half", "lr": 0.5, "sizes": [2, 1], "seed": 0,
...                               "data": {"inputs": [[1.0, 0.0]], "targets": [[1.0]]}}))
>>> svg = Picture(tr, tr.steps[0]).svg("forward")
>>> svg.startswith("<svg"), svg.count("<circle"), 'data-ref="w0_0_0"' in svg
(True, 3, True)
"""

from __future__ import annotations

import html

from deltaprop.explain.blocks import edge_ref, layer_ref, unit_ref
from deltaprop.explain.notation import Fmt
from deltaprop.explain.records import NetworkRecord, StepRecord

MAX_UNITS = 12  # columns with more neurons are not drawn
_DX, _DY, _R, _TOP, _SIDE = 230, 96, 30, 56, 90

_CSS = (
    ".dp-net text{font-family:system-ui,sans-serif;font-size:13px;fill:#1b1b1b}"
    ".dp-net .v{font-size:12px;fill:#444}.dp-net .g{fill:#8b1f1f}"
    ".dp-net .w{font-size:11.5px;fill:#1f4f8b}"
    ".dp-net circle{fill:#fff;stroke:#333;stroke-width:1.6}"
    ".dp-net .in circle{fill:#fff8dc}.dp-net line{stroke:#8a8a8a;stroke-width:1.2}"
    ".dp-net rect.box{fill:#eef2f5;stroke:#333;stroke-width:1.4}"
    ".dp-net rect.lab{fill:#fff;opacity:.85}"
    ".dp-net .dropped circle{stroke-dasharray:4 3;fill:#eee}.dp-net .dropped text{fill:#888}"
    ".dp-net .hl circle,.dp-net .hl rect.box{stroke:#d9480f;stroke-width:4;fill:#fff4e6}"
    ".dp-net .hl line{stroke:#d9480f;stroke-width:3.5}.dp-net .hl text{font-weight:bold}"
)


def _e(s: str) -> str:
    return html.escape(s, quote=True)


class Picture:
    """The neurons of one step (values of its first sample)."""

    def __init__(self, tr: NetworkRecord, step: StepRecord, digits: int = 4) -> None:
        self.tr, self.step = tr, step
        self.F = Fmt(digits)
        recs = step.layers
        first = recs[0]
        n_in = first.in_names if first.in_names and step.inputs.ndim == 2 else []
        self.columns: list[list[str]] = [list(n_in)] + [list(r.names) for r in recs]
        vectors = [c for c in self.columns if c]
        self.drawable = bool(vectors) and all(len(c) <= MAX_UNITS for c in self.columns)

    def _repr_svg_(self) -> str:
        return self.svg("forward")

    # geometry
    def _pos(self, col: int, j: int) -> tuple[float, float]:
        n = max(len(self.columns[col]), 1)
        h = self._height()
        y0 = _TOP + (h - _TOP - 40 - (n - 1) * _DY) / 2
        return _SIDE + col * _DX, y0 + j * _DY

    def _height(self) -> float:
        most = max(max((len(c) for c in self.columns), default=1), 1)
        return _TOP + 40 + (most - 1) * _DY + 60

    def svg(self, view: str = "forward", hide: frozenset[str] = frozenset()) -> str:
        """The picture as one ``<svg>`` element: ``view`` is ``forward``, ``backward`` or
        ``both`` (one above the other); ``hide`` leaves out values of those kinds
        (``forward``, ``deltas``, ``gradients``)."""
        if view == "both":
            a, b = self._body("forward", hide), self._body("backward", hide)
            w, h = self._width(), self._height()
            return self._wrap(a + f'<g transform="translate(0,{h:.0f})">{b}</g>', w, 2 * h)
        return self._wrap(self._body(view, hide), self._width(), self._height())

    def _width(self) -> float:
        return 2 * _SIDE + (len(self.columns) - 1) * _DX

    def _wrap(self, body: str, w: float, h: float) -> str:
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="dp-net" viewBox="0 0 {w:.0f} {h:.0f}"'
            f' width="{w:.0f}" height="{h:.0f}" style="max-width:100%;height:auto" role="img">'
            f"<style>{_CSS}</style>{body}</svg>"
        )

    def _body(self, view: str, hide: frozenset[str]) -> str:
        F, recs = self.F, self.step.layers
        edges, nodes = [], []
        title = "forward: net, o, w" if view == "forward" else "backward: delta, dE/dw"
        nodes.append(f'<text x="12" y="24" class="v">{_e(title)}</text>')
        for li, rec in enumerate(recs):
            a, b = li, li + 1  # columns
            if rec.type == "linear" and self.columns[a]:
                for i in range(len(self.columns[a])):
                    for j in range(len(self.columns[b])):
                        if view == "forward":
                            label = F.s(rec.weights[j, i])
                        else:
                            label = "" if "gradients" in hide else F.s(rec.weight_grad[j, i])
                        edges.append(
                            self._edge(a, i, b, j, label, edge_ref(li, i, j), view == "backward")
                        )
            elif self.columns[a] and self.columns[b]:  # elementwise layers: one to one
                for j in range(len(self.columns[b])):
                    # the connection of unit j to unit j: named like a weight of this layer
                    edges.append(self._edge(a, j, b, j, "", edge_ref(li, j, j), False))
                x, _ = self._pos(b, 0)
                nodes.append(
                    f'<text x="{x - _DX / 2:.1f}" y="{_TOP - 14}" text-anchor="middle" '
                    f'class="v">{_e(rec.type)}</text>'
                )
            else:
                edges.append(self._box_edges(a, b))
        for col, names in enumerate(self.columns):
            if not names:
                nodes.append(self._box(col, hide, view))
                continue
            for j, name in enumerate(names):
                nodes.append(self._unit(col, j, name, view, hide))
        return "".join(edges) + "".join(nodes)

    def _edge(self, a: int, i: int, b: int, j: int, label: str, ref: str, grad: bool) -> str:
        x1, y1 = self._pos(a, i)
        x2, y2 = self._pos(b, j)
        x1, x2 = x1 + _R, x2 - _R
        t = 0.28 if (i + j) % 2 == 0 else 0.62  # staggered, so that crossing labels part
        lx, ly = x1 + (x2 - x1) * t, y1 + (y2 - y1) * t
        out = f'<g data-ref="{ref}"><line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}"/>'
        if label:
            cls = "w g" if grad else "w"
            wdt = 7 * len(label) + 6
            out += (
                f'<rect class="lab" x="{lx - wdt / 2:.1f}" y="{ly - 11:.1f}" width="{wdt}" '
                f'height="15" rx="3"/><text x="{lx:.1f}" y="{ly:.1f}" class="{cls}" '
                f'text-anchor="middle">{_e(label)}</text>'
            )
        return out + "</g>"

    def _box_edges(self, a: int, b: int) -> str:
        ra = range(max(len(self.columns[a]), 1))
        rb = range(max(len(self.columns[b]), 1))
        out = [f'<g data-ref="{layer_ref(b - 1)}">']
        for i in ra:
            for j in rb:
                x1, y1 = self._pos(a, i)
                x2, y2 = self._pos(b, j)
                out.append(
                    f'<line x1="{x1 + _R:.1f}" y1="{y1:.1f}" x2="{x2 - _R:.1f}" '
                    f'y2="{y2:.1f}" stroke-dasharray="4 3"/>'
                )
        return "".join(out) + "</g>"

    def _box(self, col: int, hide: frozenset[str], view: str) -> str:
        x, y = self._pos(col, 0)
        if col == 0:
            shape = self.step.inputs.shape[1:]
            label, ref = "input", "L-1"
        else:
            rec = self.step.layers[col - 1]
            shape = rec.out.shape[1:]
            label, ref = rec.type, layer_ref(col - 1)
        dims = " x ".join(map(str, shape))
        return (
            f'<g data-ref="{ref}"><rect class="box" x="{x - 48:.1f}" y="{y - 30:.1f}" width="96" '
            f'height="60" rx="6"/><text x="{x:.1f}" y="{y - 4:.1f}" text-anchor="middle">'
            f'{_e(label)}</text><text x="{x:.1f}" y="{y + 14:.1f}" text-anchor="middle" '
            f'class="v">{_e(dims)}</text></g>'
        )

    def _unit(self, col: int, j: int, name: str, view: str, hide: frozenset[str]) -> str:
        x, y = self._pos(col, j)
        F = self.F
        lines: list[tuple[str, str]] = []
        if col == 0:
            if view == "forward":
                lines.append((F.s(self.step.inputs[0].reshape(-1)[j]), "v"))
        else:
            rec = self.step.layers[col - 1]
            if view == "forward" and "forward" not in hide:
                net = rec.net.reshape(rec.net.shape[0], -1)[0, j]
                out = rec.out.reshape(rec.out.shape[0], -1)[0, j]
                if rec.activation != "linear" or rec.type == "linear":
                    lines.append((f"net {F.s(net)}", "v"))
                lines.append((f"o {F.s(out)}", "v"))
            elif view == "backward" and "deltas" not in hide:
                d = rec.delta.reshape(rec.delta.shape[0], -1)[0, j]
                lines.append((f"δ {F.s(d)}", "v g"))
        cls = ' class="in"' if col == 0 else ""
        if col > 0:
            rec = self.step.layers[col - 1]
            if rec.mask is not None and rec.mask.reshape(rec.mask.shape[0], -1)[0, j] == 0:
                cls = ' class="dropped"'  # a unit the dropout mask removed (first sample)
        text = "".join(
            f'<text x="{x:.1f}" y="{y + _R + 16 + 15 * k:.1f}" text-anchor="middle" '
            f'class="{c}">{_e(t)}</text>'
            for k, (t, c) in enumerate(lines)
        )
        return (
            f'<g data-ref="{unit_ref(col, j)}"{cls}><circle cx="{x:.1f}" cy="{y:.1f}" r="{_R}"/>'
            f'<text x="{x:.1f}" y="{y + 5:.1f}" text-anchor="middle">{_e(name)}</text>{text}</g>'
        )
