"""Exercises: a worksheet with chosen quantities blanked, its answer key, an answer file to
fill in, and the grading of a filled-in answer file.

The quantities are the results of the derivation's lines (each :class:`~.blocks.Equation`
with an :class:`~.blocks.Answer`), of four kinds (``--blanks``): ``forward`` (net, o, the
loss, normalization statistics), ``deltas`` (delta and dE/d of the layer inputs), ``gradients``
(dE/dw, dE/db) and ``updates`` (the new weights). The answer file is TOML, one table per step,
keyed by the quantity's name as the derivation writes it::

    variant = 0
    blanks = ["deltas", "gradients"]

    [step1]
    "delta_o1" = 0.1385
    "dE/dw_h1,o1" = 0.0822

``nan`` stands for a blank not yet filled in. :func:`grade` compares each answer with the
engine's value to ``tolerance`` significant digits (relative error at most ``5 * 10^-digits``).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from deltaprop.errors import InputError
from deltaprop.explain.blocks import (
    BLANK_KINDS,
    Blank,
    Block,
    Equations,
    Figure,
    Heading,
    Matrix,
    Table,
)
from deltaprop.explain.notation import Fmt, M
from deltaprop.explain.spec import CircuitSpec, NetworkSpec
from deltaprop.userfiles import read_toml


class ExerciseError(InputError):
    """A malformed answer file or exercise option: one sentence naming the file or option."""


def parse_blanks(text: str) -> frozenset[str]:
    """``"forward,deltas"`` -> the kinds; ``ExerciseError`` for an unknown one."""
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in kinds if k not in BLANK_KINDS]
    if bad or not kinds:
        raise ExerciseError(
            f"--blanks: unknown kind {bad[0]!r}; expected a comma-separated list of "
            f"{', '.join(BLANK_KINDS)}"
            if bad
            else f"--blanks: expected one or more of {', '.join(BLANK_KINDS)}"
        )
    return frozenset(kinds)


def blanks_of(blocks: list[Block], kinds: frozenset[str]) -> list[Blank]:
    """The quantities of ``kinds`` in document order, numbered from 1 (a name that appears
    twice in one step is asked for once)."""
    out: list[Blank] = []
    seen: set[tuple[int, str]] = set()
    for b in blocks:
        if not isinstance(b, Equations):
            continue
        for e in b.lines:
            a = e.answer
            if a is None or a.kind not in kinds or (a.step, a.name) in seen:
                continue
            seen.add((a.step, a.name))
            out.append(Blank(len(out) + 1, a, e))
    return out


def _blank_side(n: int, value: str | None) -> M:
    if value is None:
        return M(f"({n}) ______", r"\text{(" + str(n) + r") \_\_\_\_\_\_}")
    return M(f"({n}) {value}", r"\text{(" + str(n) + ") " + value + "}")


def sheet(
    blocks: list[Block],
    kinds: frozenset[str],
    key: bool = False,
    digits: int = 4,
    given: list[Block] | None = None,
) -> list[Block]:
    """The worksheet (``key=False``) or its answer key: each line keeps its rule; a line
    whose result is asked for ends in a numbered blank (or, in the key, the answer); numbers
    substituted into rules, and tables and matrices that would give answers away, are left
    out. ``given`` (the starting weights) goes after the description of the network."""
    F = Fmt(digits + 2)
    numbers = {id(bl.line): bl.number for bl in blanks_of(blocks, kinds)}
    out: list[Block] = []
    pending = list(given or [])
    level2 = 0
    for b in blocks:
        if isinstance(b, Heading) and b.level == 2:
            level2 += 1
            if level2 == 2 and pending:  # before the first step: the given values
                out += pending
                pending = []
        if isinstance(b, Equations):
            lines = []
            for e in b.lines:
                keep = e.sides[: e.symbolic + 1]
                if id(e) in numbers:
                    value = F.s(e.answer.value) if key else None
                    keep = keep + [_blank_side(numbers[id(e)], value)]
                elif e.answer is not None and e.answer.kind in kinds:
                    continue  # asked for earlier in the same step
                elif len(e.sides) > len(keep):
                    keep = keep + [e.sides[-1]]
                lines.append(replace(e, sides=keep))
            out.append(Equations(lines))
        elif isinstance(b, (Table, Matrix)) and set(b.kind.split()) & kinds:
            continue
        elif isinstance(b, Figure):
            out.append(replace(b, hide=frozenset() if key else frozenset(kinds)))
        else:
            out.append(b)
    return out + pending


def given_blocks(tr: Any, heading: str) -> list[Block]:
    """The starting parameters of a network trace (what a student computes from)."""
    if getattr(tr, "kind", "") != "network":
        return []
    out: list[Block] = [Heading(2, heading)]
    for rec in tr.steps[0].layers:
        if rec.weights is None:
            continue
        L = rec.index + 1
        w = rec.weights
        if rec.type == "linear":
            out.append(
                Matrix(
                    M(f"W{L} (rows = neurons, columns = inputs)", f"W_{{{L}}}"),
                    w,
                    rec.names,
                    rec.in_names,
                )
            )
        else:
            out.append(
                Matrix(
                    M(f"parameters of layer {L}", f"P_{{{L}}}"),
                    w.reshape(-1, w.shape[-1]) if w.ndim > 1 else w,
                )
            )
        if rec.biases is not None:
            out.append(Matrix(M(f"b{L}", f"b_{{{L}}}"), rec.biases, None, rec.names or None))
        if rec.mask is not None:
            out.append(
                Matrix(
                    M(f"dropout mask of layer {L}", f"m_{{{L}}}"),
                    rec.mask.reshape(rec.mask.shape[0], -1),
                )
            )
    return out


def answer_file(
    blanks: list[Blank],
    title: str,
    spec: str,
    variant: int,
    kinds: frozenset[str],
    values: bool = False,
) -> str:
    """The TOML answer file: ``nan`` in every blank (``values``: the correct answers)."""
    lines = [
        f"# Answers to {title!r} (deltaprop explain --exercise).",
        "# Replace each nan by your answer, then grade it with:",
        f"#   deltaprop explain {spec} --check THIS_FILE",
        f"variant = {variant}",
        "blanks = [" + ", ".join(f'"{k}"' for k in BLANK_KINDS if k in kinds) + "]",
    ]
    step = None
    for bl in blanks:
        if bl.answer.step != step:
            step = bl.answer.step
            lines += ["", f"[step{step}]"]
        v = repr(float(bl.answer.value)) if values else "nan"
        lines.append(f'"{_toml_key(bl.answer.name)}" = {v}  # ({bl.number})')
    return "\n".join(lines) + "\n"


def _toml_key(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"')


@dataclass
class AnswerFile:
    """A filled-in answer file: the variant, the kinds asked for and the answers by
    ``(step, name)``."""

    variant: int
    kinds: frozenset[str]
    answers: dict[tuple[int, str], float] = field(default_factory=dict)
    source: str = "answer file"


def read_answers(path: str | Path) -> AnswerFile:
    """Read and check an answer file (:class:`ExerciseError` naming the file and the key)."""
    raw = read_toml(path, "answer file", ExerciseError)
    where = f"answer file {str(path)!r}"
    variant = raw.get("variant", 0)
    if isinstance(variant, bool) or not isinstance(variant, int) or variant < 0:
        raise ExerciseError(f"{where}: variant must be an integer >= 0, got {variant!r}")
    kinds_raw = raw.get("blanks", list(BLANK_KINDS))
    if not isinstance(kinds_raw, list) or not all(isinstance(k, str) for k in kinds_raw):
        raise ExerciseError(f'{where}: blanks must be a list of names such as ["deltas"]')
    kinds = parse_blanks(",".join(kinds_raw)) if kinds_raw else frozenset(BLANK_KINDS)
    out = AnswerFile(variant, kinds, source=where)
    for key, table in raw.items():
        if key in ("variant", "blanks"):
            continue
        if not key.startswith("step") or not key[4:].isdigit() or not isinstance(table, dict):
            raise ExerciseError(
                f"{where}: unknown key {key!r}; expected variant, blanks and [step1], [step2]... "
                "tables of answers"
            )
        for name, value in table.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ExerciseError(
                    f"{where}: [{key}] {name!r} must be a number (or nan for no answer), "
                    f"got {value!r}"
                )
            out.answers[(int(key[4:]), name)] = float(value)
    return out


@dataclass
class Grade:
    """The result of grading: the blanks, which are right, and what was written for each."""

    blanks: list[Blank]
    given: dict[tuple[int, str], float]
    correct: list[Blank]
    wrong: list[Blank]

    @property
    def score(self) -> float:
        return 100.0 * len(self.correct) / max(len(self.blanks), 1)


def grade(blanks: list[Blank], answers: AnswerFile, digits: int = 3) -> Grade:
    """Compare the answers with the engine's values to ``digits`` significant digits.

    An answer that names no quantity of the exercise raises :class:`ExerciseError` (listing a
    few valid names), so a typo is not silently ignored.
    """
    valid = {bl.key for bl in blanks}
    for key in answers.answers:
        if key not in valid:
            names = ", ".join(repr(n) for s, n in sorted(valid)[:6] if s == key[0])
            raise ExerciseError(
                f"{answers.source}: [step{key[0]}] {key[1]!r} is not a quantity of this exercise"
                + (f"; expected names such as {names}" if names else "")
            )
    rel = 5.0 * 10.0 ** (-digits)
    correct, wrong = [], []
    for bl in blanks:
        a = answers.answers.get(bl.key, math.nan)
        c = bl.answer.value
        ok = math.isfinite(a) and abs(a - c) <= rel * max(abs(c), 1e-12)
        (correct if ok else wrong).append(bl)
    return Grade(blanks, answers.answers, correct, wrong)


def vary(spec: NetworkSpec | CircuitSpec, variant: int) -> NetworkSpec | CircuitSpec:
    """Variant ``variant`` of a spec: other weights, biases and inputs of the same shapes and
    ranges (two decimals, for hand computation); variant 0 is the spec itself."""
    if variant == 0:
        return spec
    seed = [variant, zlib.crc32(spec.title.encode("utf-8"))]
    rng = np.random.default_rng(seed)
    if isinstance(spec, CircuitSpec):
        values = {k: _draw(rng, np.asarray(v), 1).item() for k, v in spec.values.items()}
        return replace(spec, values=values)
    params = {}
    for i, p in spec.net.params.items():
        kind = spec.net.layers[i]["type"]
        if kind in ("LayerNorm", "BatchNorm1d", "BatchNorm2d"):
            params[i] = dict(p)
        else:
            params[i] = {k: _draw(rng, v, 2) for k, v in p.items()}
    return replace(
        spec,
        net=replace(spec.net, params=params),
        inputs=_draw(rng, spec.inputs, 2),
        seed=spec.seed + variant,
    )


def _draw(rng: np.random.Generator, v: np.ndarray, decimals: int) -> np.ndarray:
    """Values in the range of ``v`` (non-negative when ``v`` is), rounded, never all zero."""
    scale = float(np.max(np.abs(v))) if v.size else 1.0
    scale = scale if scale > 0 else 0.5
    low = 0.0 if np.all(v >= 0) else -scale
    out = np.round(rng.uniform(low, scale, size=v.shape), decimals)
    return out
