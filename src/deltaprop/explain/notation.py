"""The notation of a worked example: one formula in two spellings, symbols and numbers.

A formula is an :class:`M`: the same piece of math as plain text (``delta_o1 = (o1 - t1) * ...``)
and as LaTeX (``\\delta_{o_1} = (o_1 - t_1) \\cdot ...``). The HTML page draws the LaTeX
spelling as MathML (:mod:`.mathml`). The symbols are those of the backprop notes: ``net_j``,
``o_j``, ``w_ij``, ``delta_j``, ``eta``.

>>> (val("h1") + TIMES + weight("h1", "o1")).text
'h1 * w_h1,o1'
>>> Fmt(4).s(0.123456), Fmt(4, scale=1.0).s(3e-17)
('0.1235', '0')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

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


def _m(x: M | str) -> M:
    return x if isinstance(x, M) else M(x, x)


def sq(x: M) -> M:
    """``x^2`` (braced in LaTeX, so that ``x`` may carry its own superscript)."""
    return M(x.text + "^2", "{" + x.tex + "}^2")


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


def paren(x: M) -> M:
    return cat("(", x, ")")


def frac(a: M, b: M) -> M:
    """``a / b`` in text, ``\\frac{a}{b}`` in LaTeX."""
    return M(f"{a.text} / {b.text}", r"\frac{" + a.tex + "}{" + b.tex + "}")


TIMES = M(" * ", r" \cdot ")
PLUS = M(" + ", " + ")
MINUS = M(" - ", " - ")
ARROW = M(" <- ", r" \leftarrow ")
ETA = M("eta", r"\eta")


def tex_name(name: str) -> str:
    """``o1`` -> ``o_{1}``, ``h2_3`` -> ``h_{2,3}``, ``x`` -> ``x``."""
    m = re.fullmatch(r"([A-Za-z]+)(\d+)(?:_(\d+))?", name)
    if not m:
        return r"\mathit{" + name.replace("_", r"\_") + "}" if len(name) > 1 else name
    base, a, b = m.groups()
    base_tex = base if len(base) == 1 else r"\mathit{" + base + "}"
    return f"{base_tex}_{{{a},{b}}}" if b else f"{base_tex}_{{{a}}}"


def sample_suffixes(s: int | None) -> tuple[str, str]:
    """The (plain, TeX) suffixes that mark a value of sample ``s``: ``[s]`` and ``^{(s)}``
    (none for None)."""
    return ("", "") if s is None else (f"[{s}]", f"^{{({s})}}")


def val(name: str, s: int | None = None) -> M:
    """The output ``o_j`` of neuron ``name`` (``i1``, ``h1``, ``o1``), of sample ``s``."""
    a, b = sample_suffixes(s)
    return M(name + a, tex_name(name) + b)


def net(name: str, s: int | None = None) -> M:
    a, b = sample_suffixes(s)
    return M(f"net_{name}{a}", r"\mathrm{net}_{" + tex_name(name) + "}" + b)


def delta(name: str, s: int | None = None) -> M:
    a, b = sample_suffixes(s)
    return M(f"delta_{name}{a}", r"\delta_{" + tex_name(name) + "}" + b)


def target(j: int, s: int | None = None) -> M:
    a, b = sample_suffixes(s)
    return M(f"t{j}{a}", f"t_{{{j}}}{b}")


def weight(i: str, j: str) -> M:
    return M(f"w_{i},{j}", "w_{" + tex_name(i) + "," + tex_name(j) + "}")


def bias(j: str) -> M:
    return M(f"b_{j}", "b_{" + tex_name(j) + "}")


def sub(base: str, base_tex: str, name: str, s: int | None = None) -> M:
    """A symbol indexed by a neuron name: ``sub("xhat", r"\\hat{x}", "h1")`` is ``xhat_h1``."""
    a, b = sample_suffixes(s)
    return M(f"{base}_{name}{a}", base_tex + "_{" + tex_name(name) + "}" + b)


def dE(x: M, top: str = "E") -> M:
    """``dE/dx``."""
    return M(f"d{top}/d{x.text}", r"\frac{\partial " + top + r"}{\partial " + x.tex + "}")


_FN_TEX = {
    "sigmoid": r"\sigma",
    "tanh": r"\tanh",
    "exp": r"\exp",
    "log": r"\log",
    "relu": r"\mathrm{relu}",
    "abs": r"\mathrm{abs}",
    "max": r"\max",
    "min": r"\min",
    "sign": r"\mathrm{sign}",
    "softmax": r"\mathrm{softmax}",
}


def fn(name: str, arg: M) -> M:
    if name == "sqrt":
        return M(f"sqrt({arg.text})", r"\sqrt{" + arg.tex + "}")
    return M(f"{name}({arg.text})", _FN_TEX.get(name, name) + r"\left(" + arg.tex + r"\right)")


# ----------------------------------------------------------------------------------------------
# numbers
# ----------------------------------------------------------------------------------------------

#: a value below this fraction of the scale of its line is rounding noise and prints as 0
ZERO_RELATIVE = 1e-12


class Fmt:
    """Number formatting: ``digits`` significant digits in formulas, ``digits + 4`` in tables.

    ``scale`` is the magnitude of the numbers of the line being written: a value within
    rounding of zero (``|v| < 1e-12 * scale``) prints as ``0``. :meth:`at` gives the formatter
    for a line from the numbers it shows.
    """

    def __init__(self, digits: int = 4, scale: float = 0.0) -> None:
        self.digits = digits
        self.scale = scale

    def at(self, *values: object) -> Fmt:
        """The formatter of a line showing ``values`` (numbers or arrays)."""
        scale = 0.0
        for v in values:
            a = np.abs(np.asarray(v, dtype=np.float64))
            a = a[np.isfinite(a)]
            if a.size:
                scale = max(scale, float(a.max()))
        return Fmt(self.digits, scale)

    def s(self, x: float, extra: int = 0) -> str:
        x = float(x)
        if x == 0 or abs(x) < ZERO_RELATIVE * self.scale:
            return "0"
        if not np.isfinite(x):
            return str(x)
        return f"{x:.{self.digits + extra}g}"

    def n(self, x: float, paren: bool = False) -> M:
        """A number inside a formula (negative numbers in parentheses when ``paren``)."""
        s = self.s(x)
        tex = tex_number(s)
        if paren and s.startswith("-"):
            return M(f"({s})", f"({tex})")
        return M(s, tex)

    def full(self, x: float) -> str:
        """A number in a table: 4 more significant digits than in formulas."""
        return self.s(x, extra=4)


def tex_number(s: str) -> str:
    """A formatted number in LaTeX: ``1e-05`` -> ``1 \\times 10^{-5}``."""
    if s in ("inf", "-inf", "nan"):
        return r"\infty" if s == "inf" else (r"-\infty" if s == "-inf" else r"\mathrm{NaN}")
    if "e" in s:
        mant, ex = s.split("e")
        return f"{mant} \\times 10^{{{int(ex)}}}"
    return s


def is_number(s: str) -> bool:
    """Whether a string is a number as Python reads it (``"0.5"``, ``"-2"``, ``"1e-05"``)."""
    try:
        float(s)
    except ValueError:
        return False
    return True
