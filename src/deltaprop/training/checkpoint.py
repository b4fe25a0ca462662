"""Training checkpoints: a whole training state in one file, through :func:`deltaprop.save`.

A checkpoint holds the model's ``state_dict``, the optimizer's and the scheduler's
``state_dict``, the position in training (epoch and batch), the random number generator states
and the metrics history. It is written with :func:`deltaprop.save` (safetensors, every array
under its dotted path, the rest of the structure as JSON in the header; written to a temporary
file and renamed, so a run killed while saving keeps the previous checkpoint intact) and read
with :func:`deltaprop.load`, which also reads the training checkpoints of format 1.

>>> import os, tempfile
>>> import numpy as np
>>> path = os.path.join(tempfile.mkdtemp(), "ckpt.safetensors")
>>> save_checkpoint(path, {"epoch": 2, "state": {0: {"m": np.ones(2, np.float32)}}})
>>> back = load_checkpoint(path)
>>> back["epoch"], list(back["state"]), back["state"][0]["m"].tolist()
(2, [0], [1.0, 1.0])
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from deltaprop.errors import CheckpointError

__all__ = ["CheckpointError", "load_checkpoint", "save_checkpoint"]


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Write ``state`` (nested state dicts, arrays and plain values) to ``path``, atomically.

    Creates the parent directory if needed.
    """
    import deltaprop

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    deltaprop.save(state, path)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` back into the same structure.

    Raises:
        CheckpointError: the file is missing, unreadable, corrupt, or holds no training state
            (a dict); the message names the file.
    """
    import deltaprop

    if not Path(path).is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = deltaprop.load(path)
    except CheckpointError as e:
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be read: {e}") from None
    except OSError as e:
        raise CheckpointError(
            f"checkpoint {str(path)!r} cannot be read: {e.strerror or e}"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds a {type(state).__name__}, not a training state"
        )
    return state
