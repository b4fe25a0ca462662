"""The global random number generator of deltaprop.

Every random draw of the framework (``dp.rand``, ``dp.randn``, weight initialisation, dropout,
DataLoader shuffling when no generator is given) comes from one ``numpy.random.Generator``,
so ``dp.manual_seed(n)`` makes a whole run reproducible.

>>> import deltaprop as dp
>>> _ = dp.manual_seed(0); a = dp.rand(2)
>>> _ = dp.manual_seed(0); b = dp.rand(2)
>>> bool((a == b).all())
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

_generator: np.random.Generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Seed the global generator (as ``torch.manual_seed``) and return it."""
    global _generator
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"manual_seed: seed must be an int, got {type(seed).__name__}")
    _generator = np.random.default_rng(int(seed))
    return _generator


def default_generator() -> np.random.Generator:
    """The global ``numpy.random.Generator`` all framework randomness draws from."""
    return _generator


def get_rng_state() -> dict[str, Any]:
    """The global generator's state (a JSON-serialisable dict), for checkpoints."""
    return _generator.bit_generator.state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a state returned by :func:`get_rng_state`."""
    _generator.bit_generator.state = state
