"""A worked example as a list of blocks: headings, paragraphs, equations, tables, matrices and
pictures. The document builders produce them once; each renderer draws the same blocks.

Blocks also carry what the HTML step mode and the exercises need: an :class:`Equation` names
the picture elements it uses (``refs``) and, when its result is a quantity a student can be
asked for, that :class:`Answer`; tables and matrices say which kind of quantity they show
(``kind``), so that a worksheet can leave out those that would give answers away.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deltaprop.explain.notation import Fmt, M

#: the kinds of quantities an exercise can blank (``--blanks``), in the order of a step
BLANK_KINDS = ("forward", "deltas", "gradients", "updates")


@dataclass(frozen=True)
class Answer:
    """A quantity of the derivation: its name (the answer file's key), kind and value."""

    name: str
    kind: str  # one of BLANK_KINDS
    value: float
    step: int = 1


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Para:
    text: str


@dataclass
class Equation:
    """``sides[0] REL sides[1] = sides[2] = ...`` (REL is ``=`` unless ``rel`` says otherwise).

    ``sides[: symbolic + 1]`` are symbols only (the rule); the later sides substitute numbers.
    """

    sides: list[M]
    note: str = ""
    rel: M = field(default_factory=lambda: M(" = ", " = "))
    refs: tuple[str, ...] = ()
    answer: Answer | None = None
    symbolic: int = 1

    def as_text(self) -> str:
        """The line as plain text, its note in brackets at the end."""
        parts = [s.text for s in self.sides]
        out = parts[0] + (self.rel.text if len(parts) > 1 else "") + " = ".join(parts[1:])
        return out + (f"   ({self.note})" if self.note else "")


@dataclass
class Blank:
    """One quantity a worksheet asks for: its number on the sheet, the answer and the full line."""

    number: int
    answer: Answer
    line: Equation

    @property
    def key(self) -> tuple[int, str]:
        return (self.answer.step, self.answer.name)


@dataclass
class Equations:
    lines: list[Equation]


@dataclass
class Table:
    columns: list[M | str]
    rows: list[list[M | str]]
    caption: str = ""
    numeric: bool = True
    kind: str = ""  # the kinds of quantity it shows (BLANK_KINDS, space-separated); "": given


@dataclass
class Matrix:
    """A named matrix; ``rows``/``cols`` optional labels."""

    label: M
    values: np.ndarray
    rows: list[str] | None = None
    cols: list[str] | None = None
    caption: str = ""
    kind: str = ""

    def cells(self, digits: int = 4) -> list[list[str]]:
        """The values as text, row by row; a value within rounding of zero for its row prints
        as ``0``."""
        vals = np.asarray(self.values)
        vals = vals[None] if vals.ndim == 1 else vals.reshape(vals.shape[0], -1)
        out = []
        for row in vals:
            F = Fmt(digits).at(row)
            out.append([F.s(v) for v in row])
        return out


@dataclass
class Figure:
    """The network drawn as neurons and connections (:mod:`.neurons`); ``hide`` lists the
    kinds of values left out of the picture (a worksheet's blanks)."""

    picture: Any  # neurons.Picture
    view: str  # "forward" or "backward"
    caption: str = ""
    hide: frozenset[str] = frozenset()

    def svg(self) -> str:
        return self.picture.svg(self.view, hide=self.hide)


Block = Heading | Para | Equations | Table | Matrix | Figure


def unit_ref(column: int, j: int) -> str:
    """The picture's name of unit ``j`` of column ``column`` (0: the inputs, ``l + 1``: the
    outputs of layer ``l``)."""
    return f"u{column}_{j}"


def edge_ref(layer: int, i: int, j: int) -> str:
    """The picture's name of the connection of layer ``layer`` from input ``i`` to neuron ``j``
    (for an elementwise layer, normalization or dropout, from unit ``j`` to unit ``j``)."""
    return f"w{layer}_{i}_{j}"


def layer_ref(layer: int) -> str:
    """The picture's name of a layer drawn as a box (convolution, pooling, normalization)."""
    return f"L{layer}"


#: the relation of an update line: ``w <- w - eta dE/dw``
ARROW_REL = M(" <- ", r" \leftarrow ")
