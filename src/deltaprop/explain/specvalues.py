"""Checked values of a spec file: each helper returns the value or raises :class:`SpecError`
with a message of the form ``SOURCE: KEY: what was expected``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from deltaprop.errors import InputError


class SpecError(InputError):
    """A malformed spec: the message names the file, the key and what was expected."""


class Where:
    """Builds error messages of the form ``SOURCE: KEY: what was expected``."""

    def __init__(self, source: str) -> None:
        self.source = source

    def err(self, key: str, msg: str) -> SpecError:
        return SpecError(f"{self.source}: {key}: {msg}")


def string(v: Any, key: str, where: Where) -> str:
    if not isinstance(v, str):
        raise where.err(key, f"expected a string, got {_show(v)}")
    return v


def _finite(v: Any) -> bool:
    """A finite int or float that a float64 can hold."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return abs(v) <= 1e300 if isinstance(v, int) else math.isfinite(v) and abs(v) <= 1e300


def number(v: Any, key: str, where: Where) -> float:
    if not _finite(v):
        raise where.err(key, f"expected a finite number, got {_show(v)}")
    return float(v)


def integer(v: Any, key: str, where: Where, minimum: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise where.err(key, f"expected an integer >= {minimum}, got {_show(v)}")
    return v


def boolean(v: Any, key: str, where: Where) -> bool:
    if not isinstance(v, bool):
        raise where.err(key, f"expected true or false, got {_show(v)}")
    return v


def choice(v: Any, key: str, choices: tuple[str, ...], where: Where) -> str:
    if not isinstance(v, str) or v not in choices:
        raise where.err(key, f"unknown value {_show(v)}; expected one of {', '.join(choices)}")
    return v


def table(v: Any, key: str, keys: tuple[str, ...], where: Where) -> dict[str, Any]:
    """A table of the spec that may hold only ``keys``."""
    what = " and ".join(keys)
    if not isinstance(v, dict):
        raise where.err(key, f"expected a table with {what}")
    for k in v:
        if k not in keys:
            raise where.err(f"{key}.{k}", f"unknown key; expected {what}")
    return v


def probability(v: Any, key: str, where: Where) -> float:
    p = number(v, key, where)
    if not 0.0 <= p < 1.0:
        raise where.err(key, f"expected a probability in [0, 1), got {_show(v)}")
    return p


def positive(v: Any, key: str, where: Where) -> float:
    x = number(v, key, where)
    if x <= 0:
        raise where.err(key, f"expected a positive number, got {_show(v)}")
    return x


def pair(v: Any, key: str, where: Where, minimum: int = 1) -> tuple[int, int]:
    """A positive integer or a pair of them (``kernel_size``, ``stride``)."""
    ok = lambda e: isinstance(e, int) and not isinstance(e, bool) and e >= minimum  # noqa: E731
    if ok(v):
        return (v, v)
    if isinstance(v, list) and len(v) == 2 and all(ok(e) for e in v):
        return (v[0], v[1])
    what = "a positive integer" if minimum >= 1 else f"an integer >= {minimum}"
    raise where.err(key, f"expected {what} or a pair of them, got {_show(v)}")


def array(v: Any, key: str, where: Where, ndims: tuple[int, ...], what: str) -> np.ndarray:
    """A rectangular float64 array of one of the allowed ranks."""

    def check(x: Any, depth: int) -> tuple[int, ...]:
        """The shape of ``x``: every row the same shape, numbers at the leaves."""
        if depth > 4:
            raise where.err(key, f"expected {what}; it is nested too deeply")
        if isinstance(x, list):
            if not x:
                raise where.err(key, f"expected {what}, found an empty list")
            shapes = {check(e, depth + 1) for e in x}
            if len(shapes) > 1:
                if () in shapes:
                    raise where.err(key, f"expected {what}; it mixes numbers and lists")
                lens = sorted({s[0] for s in shapes})
                if len(lens) > 1:
                    raise where.err(key, f"expected {what}; rows have different lengths {lens}")
                raise where.err(key, f"expected {what}; its rows have different shapes")
            return (len(x),) + shapes.pop()
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise where.err(key, f"expected {what} of numbers, found {_show(x)}")
        if not _finite(x):
            raise where.err(key, f"expected finite numbers, found {_show(x)}")
        return ()

    if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 in ndims:
        check(v, 0)
        return np.asarray(float(v))
    if not isinstance(v, list):
        raise where.err(key, f"expected {what}, got {_show(v)}")
    check(v, 0)
    arr = np.asarray(v, dtype=np.float64)
    if arr.ndim not in ndims:
        raise where.err(key, f"expected {what}, got an array with {arr.ndim} dimension(s)")
    return arr


def vector(v: Any, key: str, n: int, what: str, where: Where) -> np.ndarray:
    arr = array(v, key, where, (0, 1), f"a list of {n} numbers ({what})")
    if arr.ndim == 0:
        arr = arr[None]
    if arr.shape[0] != n:
        raise where.err(key, f"expected {n} values ({what}), got {arr.shape[0]}")
    return arr


def shape_str(shape: tuple[int, ...]) -> str:
    return " x ".join(str(s) for s in shape)


def _show(v: Any) -> str:
    """A value in a message, cut short when long."""
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."
