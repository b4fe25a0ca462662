"""The LaTeX spelling of a formula as MathML, which browsers render natively (no JavaScript,
no network).

Only the small subset of LaTeX that the document builders write is understood: groups
``{...}``, sub- and superscripts, ``\\frac``, ``\\sqrt``, ``\\hat``, ``\\overline``,
``\\mathrm``, ``\\mathit``, ``\\text``, Greek letters, ``\\sum``, ``\\partial``, ``\\cdot``,
``\\odot``, ``\\times``, ``\\leftarrow``, ``\\left``/``\\right`` and the spacing commands.

:func:`chunks` cuts a long formula at its top-level ``+``, ``-`` and ``=`` signs into pieces,
each its own ``<math>`` element, so that a long line wraps inside its column like the lines of
a textbook derivation.

>>> to_mathml(r"\\delta_{o_{1}} = \\frac{1}{2}")
'<math><msub><mi>δ</mi><msub><mi>o</mi><mn>1</mn></msub></msub><mo>=</mo><mfrac><mn>1</mn><mn>2</mn></mfrac></math>'
"""

from __future__ import annotations

import html
import re

_GREEK = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "varepsilon": "ε", "epsilon": "ϵ",
    "eta": "η", "mu": "μ", "sigma": "σ", "Delta": "Δ", "partial": "∂", "infty": "∞",
}  # fmt: skip
_OPS = {
    "cdot": "·", "odot": "⊙", "times": "×", "leftarrow": "←", "to": "→", "pm": "±",
}  # fmt: skip
_FUNCS = {"log", "exp", "tanh", "max", "min", "sin", "cos"}
_SPACE = {",": "0.17em", " ": "0.25em", "quad": "1em", ";": "0.28em"}
_TOKEN = re.compile(r"\\([A-Za-z]+|.)|(\d+(?:\.\d+)?)|([A-Za-z])|(\s+)|(.)", re.S)


def _e(s: str) -> str:
    return html.escape(s, quote=False)


class _Parser:
    def __init__(self, tex: str) -> None:
        self.tex = tex
        self.toks = [m for m in _TOKEN.finditer(tex) if not m.group(4)]
        self.i = 0

    def peek(self) -> re.Match | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> re.Match:
        t = self.toks[self.i]
        self.i += 1
        return t

    def seq(self, closing: str | None = None) -> list[tuple[str, str]]:
        """Nodes up to ``closing`` (``}``) or the end: ``(xml, kind)``, kind ``op`` for the
        operators a line may break before."""
        out: list[tuple[str, str]] = []
        while (t := self.peek()) is not None:
            if t.group(5) == "}" and closing == "}":
                self.take()
                return out
            if t.group(5) == "-" and self._signed(out):
                self.take()
                out.append(self.scripts((f"<mn>−{self.take().group(2)}</mn>", "atom")))
                continue
            node = self.atom()
            if node is None:
                continue
            out.append(self.scripts(node))
        return out

    def _signed(self, out: list[tuple[str, str]]) -> bool:
        """A minus sign that belongs to the number after it (a negative number, not an
        operation): at the start, after an opening bracket, a comma or an operator."""
        nxt = self.toks[self.i + 1] if self.i + 1 < len(self.toks) else None
        if nxt is None or nxt.group(2) is None:
            return False
        return (
            not out
            or out[-1][1] == "op"
            or out[-1][0] in ("<mo>(</mo>", "<mo>[</mo>", "<mo>,</mo>")
        )

    def group(self) -> str:
        """The next argument: a braced group or one token."""
        t = self.peek()
        if t is None:
            return "<mrow></mrow>"
        if t.group(5) == "{":
            self.take()
            return _row(self.seq("}"))
        node = self.atom()
        return node[0] if node else "<mrow></mrow>"

    def raw(self) -> str:
        """The text of a braced argument (for ``\\mathrm`` and ``\\text``), spaces kept."""
        t = self.peek()
        if t is None or t.group(5) != "{":
            return self.take().group(0) if t is not None else ""
        start = self.take().end()
        depth, end = 1, len(self.tex)
        while (t := self.peek()) is not None:
            self.take()
            if t.group(5) == "{":
                depth += 1
            elif t.group(5) == "}":
                depth -= 1
                if depth == 0:
                    end = t.start()
                    break
        return re.sub(r"\\([_{}$&#%, ])", r"\1", self.tex[start:end])

    def scripts(self, node: tuple[str, str]) -> tuple[str, str]:
        base, kind = node
        sub = sup = None
        while (t := self.peek()) is not None and t.group(5) in ("_", "^"):
            self.take()
            if t.group(5) == "_":
                sub = self.group()
            else:
                sup = self.group()
        if sub is not None and sup is not None:
            return f"<msubsup>{base}{sub}{sup}</msubsup>", kind
        if sub is not None:
            return f"<msub>{base}{sub}</msub>", kind
        if sup is not None:
            return f"<msup>{base}{sup}</msup>", kind
        return base, kind

    def atom(self) -> tuple[str, str] | None:
        t = self.take()
        cmd, num, letter, _, ch = t.groups()
        if num is not None:
            return f"<mn>{num}</mn>", "atom"
        if letter is not None:
            return f"<mi>{letter}</mi>", "atom"
        if cmd is not None:
            return self.command(cmd)
        if ch == "{":
            return _row(self.seq("}")), "atom"
        if ch in "+=<>":
            return f"<mo>{_e(ch)}</mo>", "op"
        if ch == "-":
            return "<mo>−</mo>", "op"
        if ch in "()[],;/!|.:'*":
            return f"<mo>{_e(ch)}</mo>", "atom"
        if ch == "}":
            return None
        return f"<mi>{_e(ch)}</mi>", "atom"

    def command(self, cmd: str) -> tuple[str, str] | None:
        if cmd in ("frac", "tfrac"):
            a, b = self.group(), self.group()
            return f"<mfrac>{a}{b}</mfrac>", "atom"
        if cmd == "sqrt":
            return f"<msqrt>{self.group()}</msqrt>", "atom"
        if cmd == "hat":
            return f'<mover accent="true">{self.group()}<mo>^</mo></mover>', "atom"
        if cmd == "overline":
            return f'<mover accent="true">{self.group()}<mo>‾</mo></mover>', "atom"
        if cmd == "mathrm":
            text = self.raw()
            return f'<mi mathvariant="normal">{_e(text)}</mi>', "atom"
        if cmd == "mathit":
            return f"<mi>{_e(self.raw())}</mi>", "atom"
        if cmd == "text":
            return f"<mtext>{_e(self.raw())}</mtext>", "atom"
        if cmd in ("left", "right", "textstyle", "displaystyle"):
            return None
        if cmd in _GREEK:
            return f"<mi>{_GREEK[cmd]}</mi>", "atom"
        if cmd in _OPS:
            return f"<mo>{_OPS[cmd]}</mo>", "op" if cmd == "leftarrow" else "atom"
        if cmd == "sum":
            return "<mo>∑</mo>", "atom"
        if cmd in _FUNCS:
            return f'<mi mathvariant="normal">{cmd}</mi>', "atom"
        if cmd in _SPACE:
            return f'<mspace width="{_SPACE[cmd]}"></mspace>', "atom"
        if cmd in ("_", "{", "}", "$", "&", "#", "%"):
            return f"<mi>{_e(cmd)}</mi>", "atom"
        return f"<mi>{_e(cmd)}</mi>", "atom"


def _row(nodes: list[tuple[str, str]]) -> str:
    inner = "".join(x for x, _ in nodes)
    return inner if len(nodes) == 1 else f"<mrow>{inner}</mrow>"


def to_mathml(tex: str, display: bool = False) -> str:
    """One ``<math>`` element."""
    attr = ' display="block"' if display else ""
    return f"<math{attr}>" + "".join(x for x, _ in _Parser(tex).seq()) + "</math>"


def chunks(tex: str, width: int = 48) -> list[str]:
    """``<math>`` elements of at most about ``width`` characters of source each, cut before a
    top-level ``+``, ``-``, ``=`` or arrow."""
    nodes = _Parser(tex).seq()
    out, cur, size = [], [], 0
    for xml, kind in nodes:
        n = len(re.sub(r"<[^>]+>", "", xml))
        if kind == "op" and cur and size + n > width:
            out.append(cur)
            cur, size = [], 0
        cur.append(xml)
        size += n
    if cur:
        out.append(cur)
    return ["<math>" + "".join(c) + "</math>" for c in out]
