"""Checkpoints: a whole training state in one safetensors file, written atomically.

A checkpoint holds the model's ``state_dict``, the optimizer's and the scheduler's
``state_dict``, the position in training (epoch and batch), the random number generator states
and the metrics history. safetensors stores only named arrays, so:

* every array (a Tensor or an ndarray, anywhere in those nested structures) becomes one entry,
  named by its path (``model/fc1.weight``, ``optimizer/state/0/exp_avg``);
* everything else (learning rates, step counters, RNG states with their 128-bit integers, the
  structure itself) is encoded as JSON, and the JSON text is stored as one ``uint8`` array under
  the key ``__meta__``.

The file is written with :func:`deltaprop.save`, which writes a temporary file and renames it,
so a run killed while saving keeps the previous checkpoint intact.

>>> import numpy as np
>>> tree = {"state": {0: {"step": 3, "m": np.ones(2, np.float32)}}, "betas": (0.9, 0.999)}
>>> arrays = {}
>>> meta = encode_tree(tree, "opt", arrays)
>>> list(arrays)
['opt/state/0/m']
>>> back = decode_tree(meta, arrays)
>>> back["betas"], list(back["state"]), back["state"][0]["m"].tolist()
((0.9, 0.999), [0], [1.0, 1.0])
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CheckpointError",
    "decode_tree",
    "encode_tree",
    "load_checkpoint",
    "read_checkpoint_arrays",
    "save_checkpoint",
]

META_KEY = "__meta__"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing or is not one this module wrote."""


def _tensor_type() -> type:
    from deltaprop import Tensor

    return Tensor


def encode_tree(value: Any, path: str, arrays: dict[str, np.ndarray]) -> Any:
    """A JSON-able copy of ``value`` whose arrays are moved into ``arrays`` (keyed by path).

    Dicts (with any keys), lists, tuples, None, bools, ints, floats, strings, NumPy scalars,
    ndarrays and deltaprop Tensors are supported; containers are tagged so that
    :func:`decode_tree` rebuilds exactly the same types (int dict keys stay ints, tuples stay
    tuples, Tensors come back as Tensors).
    """
    Tensor = _tensor_type()
    if isinstance(value, Tensor):
        arrays[path] = np.array(value.data, order="C")  # keeps 0-d shapes
        return {"__tensor__": path}
    if isinstance(value, np.ndarray):
        arrays[path] = np.array(value, order="C")
        return {"__ndarray__": path}
    if isinstance(value, dict):
        return {
            "__dict__": [
                [_encode_key(k), encode_tree(v, f"{path}/{k}", arrays)] for k, v in value.items()
            ]
        }
    if isinstance(value, tuple):
        return {"__tuple__": [encode_tree(v, f"{path}/{i}", arrays) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [encode_tree(v, f"{path}/{i}", arrays) for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"checkpoint: cannot store a {type(value).__name__} at {path!r}")


def _encode_key(key: Any) -> Any:
    if isinstance(key, np.integer):
        return int(key)
    if isinstance(key, (str, int)) and not isinstance(key, bool):
        return key
    raise TypeError(f"checkpoint: dict keys must be str or int, got {key!r}")


def decode_tree(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """Inverse of :func:`encode_tree`."""
    if isinstance(value, dict):
        if "__tensor__" in value:
            import deltaprop

            return deltaprop.tensor(arrays[value["__tensor__"]])
        if "__ndarray__" in value:
            return np.array(arrays[value["__ndarray__"]])
        if "__tuple__" in value:
            return tuple(decode_tree(v, arrays) for v in value["__tuple__"])
        if "__dict__" in value:
            return {k: decode_tree(v, arrays) for k, v in value["__dict__"]}
        raise CheckpointError(f"checkpoint: unexpected entry {value!r}")
    if isinstance(value, list):
        return [decode_tree(v, arrays) for v in value]
    return value


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Write ``state`` (a dict of nested state dicts, arrays and JSON values) to ``path``.

    Uses :func:`deltaprop.save` (safetensors, atomic). The JSON part travels as a ``uint8``
    array under ``__meta__``.
    """
    import deltaprop

    arrays: dict[str, np.ndarray] = {}
    meta = {"format": FORMAT_VERSION, "state": encode_tree(state, "", arrays)}
    text = json.dumps(meta, separators=(",", ":"))
    arrays[META_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).copy()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    deltaprop.save({k: deltaprop.from_numpy(v) for k, v in arrays.items()}, path)


def read_checkpoint_arrays(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """All arrays of a checkpoint file, as NumPy arrays (``__meta__`` included)."""
    import deltaprop

    if not Path(path).is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        loaded = deltaprop.load(path)
    except Exception as e:  # a truncated or foreign file: one clear sentence
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be read: {e}") from None
    return {k: np.asarray(v.data if hasattr(v, "data") else v) for k, v in loaded.items()}


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` back into the same structure."""
    arrays = read_checkpoint_arrays(path)
    if META_KEY not in arrays:
        raise CheckpointError(f"{str(path)!r} is not a deltaprop training checkpoint")
    meta = json.loads(arrays.pop(META_KEY).tobytes().decode("utf-8"))
    if meta.get("format") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format {meta.get('format')}, expected {FORMAT_VERSION}"
        )
    return decode_tree(meta["state"], arrays)
