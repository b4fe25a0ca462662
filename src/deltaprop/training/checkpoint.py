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

import numpy as np

from deltaprop.errors import CheckpointError

__all__ = [
    "CheckpointError",
    "check_model_fits",
    "check_training_state",
    "load_checkpoint",
    "save_checkpoint",
    "write_verified",
]


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


def write_verified(path: Path, state: dict[str, Any], previous: Path | None = None) -> None:
    """Write ``state`` to ``path`` so that a good checkpoint is always on disk.

    The new checkpoint is written (atomically) under a temporary name and read back: reading
    checks every array against the SHA-256 that :func:`deltaprop.save` computed from
    ``state``'s arrays, and the entries, the epoch and the model's keys are compared with
    ``state``. Only then does the current ``path`` become ``previous`` (when given) and the new
    file take its place. A crash at any point leaves ``path`` or ``previous`` intact.

    Raises:
        CheckpointError: the file read back differs from what was written.
    """
    path = Path(path)
    pending = path.with_name(f".{path.name}.pending")
    save_checkpoint(pending, state)
    back = load_checkpoint(pending)  # its arrays checked against the checksum of state's
    same = back.keys() == state.keys() and back.get("epoch") == state.get("epoch")
    if same and isinstance(state.get("model"), dict):
        model = back.get("model")
        same = isinstance(model, dict) and model.keys() == state["model"].keys()
    if not same:
        pending.unlink()
        raise CheckpointError(
            f"checkpoint {str(path)!r}: the file read back after writing differs from what "
            "was written (disk or filesystem error); the previous checkpoint was kept"
        )
    if previous is not None and path.exists():
        os.replace(path, previous)
    os.replace(pending, path)


def check_model_fits(model_state: Any, model: Any, where: str) -> None:
    """Raise CheckpointError naming the first key whose shape differs from ``model``'s.

    ``model_state`` is the ``model`` entry of a checkpoint (a ``state_dict``); ``where`` names
    the checkpoint (and the run) in the message.
    """
    if not isinstance(model_state, dict):
        raise CheckpointError(f"{where} holds no model state (its 'model' entry is missing)")
    expected = model.state_dict()
    for key, target in expected.items():
        if key not in model_state:
            raise CheckpointError(
                f"{where} does not fit the model: it has no {key!r} (shape "
                f"{tuple(target.shape)} in the model)"
            )
        value = model_state[key]
        shape = getattr(value, "shape", None)
        if shape is None or not hasattr(value, "dtype"):
            raise CheckpointError(
                f"{where} does not fit the model: {key!r} is a {type(value).__name__}, not a tensor"
            )
        if tuple(shape) != tuple(target.shape):
            raise CheckpointError(
                f"{where} does not fit the model: {key!r} has shape {tuple(shape)} in the "
                f"checkpoint and {tuple(target.shape)} in the model"
            )
    for key in model_state:
        if key not in expected:
            raise CheckpointError(
                f"{where} does not fit the model: it has a {key!r} the model does not have"
            )


def check_training_state(state: Any, model: Any, batches_per_epoch: int, where: str) -> None:
    """CheckpointError unless ``state`` has every entry of ``TrainingRun.state_dict()`` with
    the right types, a ``model`` entry that fits ``model`` and generator states NumPy accepts."""

    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"{where} is not a usable training checkpoint: {what}")

    if not isinstance(state, dict):
        raise bad(f"it holds a {type(state).__name__}, not a training state")
    check_model_fits(state.get("model"), model, where)
    expected = ("optimizer", "epoch", "partial", "rng", "shuffle_rng", "history", "best_acc")
    missing = [k for k in expected if k not in state]
    if missing:
        raise bad(f"it has no {missing[0]!r} entry")
    epoch = state["epoch"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise bad(f"'epoch' must be a non-negative int, got {epoch!r}")
    partial = state["partial"]
    fields = {"batch": int, "loss_sum": float, "correct": int, "seen": int, "seconds": float}
    if not isinstance(partial, dict) or set(partial) != set(fields):
        raise bad(f"'partial' must be a dict with {', '.join(fields)}, got {partial!r}")
    for key, kind in fields.items():
        value = partial[key]
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or (kind is int and not isinstance(value, int)) or not value >= 0:
            raise bad(f"partial {key} must be a non-negative {kind.__name__}, got {value!r}")
    if partial["batch"] > batches_per_epoch:
        raise bad(f"it stopped at batch {partial['batch']}, but an epoch has {batches_per_epoch}")
    if not isinstance(state["history"], list) or not all(
        isinstance(row, dict) for row in state["history"]
    ):
        raise bad("'history' must be a list of metric rows")
    best = state["best_acc"]
    if isinstance(best, bool) or not isinstance(best, (int, float)):
        raise bad(f"'best_acc' must be a number, got {best!r}")
    if not isinstance(state["optimizer"], dict):
        raise bad("'optimizer' must be an optimizer state dict")
    for key in ("rng", "shuffle_rng"):
        try:  # NumPy checks a bit generator state when it is assigned
            np.random.default_rng().bit_generator.state = state[key]
        except (TypeError, ValueError, KeyError, OverflowError):
            raise bad(f"{key!r} is not a random generator state") from None
