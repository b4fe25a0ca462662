"""The argument types of the training commands: each parses one option's text or raises
``argparse.ArgumentTypeError`` with what is allowed (argparse prints it, exit status 2).

>>> hidden_sizes("256,128"), hidden_sizes("")
((256, 128), ())
>>> hidden_sizes("10,,20")
Traceback (most recent call last):
...
argparse.ArgumentTypeError: expected comma-separated positive layer sizes ..., got '10,,20'
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

__all__ = [
    "hidden_sizes",
    "non_negative_float",
    "positive_float",
    "positive_int",
    "probability",
    "seed",
]


def hidden_sizes(text: str) -> tuple[int, ...]:
    """``"256,128"`` -> ``(256, 128)``; ``""`` -> ``()`` (no hidden layer: logistic regression).

    Every part must be a positive int: ``10,,20`` and ``10,`` are refused, not read as 10,20.
    """
    parts = text.replace(" ", "").split(",")
    if parts == [""]:
        return ()
    if not all(part.isdigit() for part in parts):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive layer sizes such as 256,128, got {text!r}"
        )
    sizes = tuple(int(part) for part in parts)
    if any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError(f"hidden layer sizes must be positive, got {text!r}")
    return sizes


def _parsed(text: str, parse: Callable[[str], Any], ok: Callable[[Any], bool], allowed: str) -> Any:
    """``parse(text)`` when it succeeds and passes ``ok``, else the error naming ``allowed``."""
    try:
        value = parse(text)
    except ValueError:
        value = None
    if value is None or not ok(value):
        raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _parsed(text, int, lambda v: v > 0, "a positive integer")


def seed(text: str) -> int:
    from deltaprop.training.settings import MAX_SEED

    return _parsed(text, int, lambda v: 0 <= v <= MAX_SEED, f"an integer from 0 to {MAX_SEED}")


def non_negative_float(text: str) -> float:
    return _parsed(text, float, lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")


def positive_float(text: str) -> float:
    return _parsed(text, float, lambda v: math.isfinite(v) and v > 0, "a finite number > 0")


def probability(text: str) -> float:
    return _parsed(text, float, lambda v: 0 <= v < 1, "a probability in [0, 1)")
