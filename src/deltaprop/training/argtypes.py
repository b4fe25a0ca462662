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


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def seed(text: str) -> int:
    from deltaprop.training.settings import MAX_SEED

    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to {MAX_SEED}, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    value = non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def probability(text: str) -> float:
    value = non_negative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1), got {text!r}")
    return value
