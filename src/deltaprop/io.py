"""Checkpoints: ``save(obj, path)`` / ``load(path)`` in the safetensors format.

A checkpoint is a nested structure of dicts, lists and tuples whose leaves are tensors, NumPy
arrays or plain values: a model's ``state_dict()``, an optimizer's, or a training checkpoint
such as ``{"model": ..., "optimizer": ..., "epoch": 3, "rng": dp.get_rng_state()}``.

The file is a standard safetensors file, so loading never executes code from it (unlike
pickle): every tensor is stored as an array under its dotted path (``model.fc1.weight``,
``optimizer.state.0.exp_avg``), and the safetensors metadata header holds

* ``format`` (``"deltaprop"``), ``format_version`` and ``deltaprop_version``;
* ``structure``: JSON of the nested structure, with each tensor replaced by a reference to its
  array and every other leaf (int, float, str, bool, None, lists, the optimizer's
  ``param_groups``, RNG states with their big integers) stored as JSON. Tuples and dicts with
  non-string keys (the optimizer's ``{0: {...}}``) are marked so that they come back as they were.

``load`` rebuilds the structure, with deltaprop Tensors for the tensors, so
``model.load_state_dict(dp.load(path))`` round-trips exactly. A plain safetensors file from
another tool (no deltaprop header) loads as a flat ``{name: Tensor}`` dict.

Writes are atomic: the file is written to a temporary file in the same directory, flushed to
disk (fsync) and renamed over the destination, so a crash or error never leaves a partial
checkpoint. A truncated, corrupt or foreign file raises :class:`CheckpointError` naming the file.

>>> import os, tempfile
>>> import deltaprop as dp
>>> from deltaprop import nn
>>> model = nn.Linear(3, 2)
>>> path = os.path.join(tempfile.mkdtemp(), "ckpt.safetensors")
>>> dp.save({"model": model.state_dict(), "epoch": 3}, path)
>>> ckpt = dp.load(path)
>>> ckpt["epoch"], sorted(ckpt["model"])
(3, ['bias', 'weight'])
>>> model.load_state_dict(ckpt["model"])
<All keys matched successfully>
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from deltaprop.tensor import Tensor, _make

__all__ = ["save", "load", "CheckpointError", "FORMAT_VERSION"]

FORMAT_NAME = "deltaprop"
FORMAT_VERSION = 1

# markers of the JSON structure (a JSON object holding one of these keys is a marked node)
_TENSOR = "__tensor__"
_NDARRAY = "__ndarray__"
_TUPLE = "__tuple__"
_DICT = "__dict__"
_SCALAR = "__scalar__"
_FLOAT = "__float__"
_MARKERS = (_TENSOR, _NDARRAY, _TUPLE, _DICT, _SCALAR, _FLOAT)

_SAFE_DTYPES = {
    np.dtype(t)
    for t in (np.bool_, np.uint8, np.int8, np.int16, np.uint16, np.int32, np.uint32, np.int64,
              np.uint64, np.float16, np.float32, np.float64)
}  # fmt: skip


class CheckpointError(ValueError):
    """A checkpoint file is truncated, corrupt, or not in deltaprop's format."""


# ----------------------------------------------------------------------------------------------
# save
# ----------------------------------------------------------------------------------------------


class _Encoder:
    """Turns a nested structure into (JSON-able skeleton, {name: array})."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def name_for(self, path: str) -> str:
        name = path or "_"
        if name in self.arrays:  # two paths flattening to the same dotted name
            k = 1
            while f"{name}#{k}" in self.arrays:
                k += 1
            name = f"{name}#{k}"
        return name

    def add_array(self, arr: np.ndarray, path: str) -> str:
        if arr.dtype.byteorder == ">":  # safetensors is little-endian
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        if arr.dtype not in _SAFE_DTYPES:
            raise TypeError(
                f"save: cannot store an array of dtype {arr.dtype} at {path or '<root>'!r} "
                "(supported: bool, integers, float16/32/64)"
            )
        name = self.name_for(path)
        # (np.ascontiguousarray would turn a 0-d array into a 1-d one)
        self.arrays[name] = arr if arr.flags.c_contiguous else arr.copy(order="C")
        return name

    def encode(self, obj: Any, path: str) -> Any:
        join = (lambda k: f"{path}.{k}") if path else str
        if isinstance(obj, Tensor):
            node: dict[str, Any] = {_TENSOR: self.add_array(obj.data, path)}
            if obj.requires_grad:
                node["requires_grad"] = True
            return node
        if isinstance(obj, np.ndarray):
            return {_NDARRAY: self.add_array(obj, path)}
        if obj is None or isinstance(obj, (bool, str, int)):
            return obj
        if isinstance(obj, float):
            return obj if math.isfinite(obj) else {_FLOAT: repr(obj)}
        if isinstance(obj, np.generic):
            if obj.dtype not in _SAFE_DTYPES:
                raise TypeError(f"save: cannot store a {obj.dtype} scalar at {path!r}")
            value = obj.item()
            if isinstance(value, float) and not math.isfinite(value):
                value = repr(value)
            return {_SCALAR: value, "dtype": str(obj.dtype)}
        if isinstance(obj, tuple):
            return {_TUPLE: [self.encode(v, join(i)) for i, v in enumerate(obj)]}
        if isinstance(obj, list):
            return [self.encode(v, join(i)) for i, v in enumerate(obj)]
        if isinstance(obj, Mapping):
            plain = all(isinstance(k, str) and k not in _MARKERS for k in obj)
            if plain:
                return {k: self.encode(v, join(k)) for k, v in obj.items()}
            pairs = []
            for k, v in obj.items():
                if isinstance(k, bool) or not isinstance(k, (str, int)):
                    raise TypeError(
                        f"save: dict keys must be str or int, got {type(k).__name__} key {k!r} "
                        f"at {path or '<root>'!r}"
                    )
                pairs.append([k, self.encode(v, join(k))])
            return {_DICT: pairs}
        raise TypeError(
            f"save: cannot store a value of type {type(obj).__name__} at {path or '<root>'!r} "
            "(a checkpoint holds tensors, arrays, numbers, strings, None, and dicts/lists/tuples "
            "of them)"
        )


def save(obj: Any, path: str | os.PathLike) -> None:
    """Save ``obj`` (a state dict or nested dict/list of tensors and plain values) to ``path``
    in the safetensors format, atomically.

    ``path`` may also be a writable binary file object.
    """
    from safetensors.numpy import save as st_save
    from safetensors.numpy import save_file as st_save_file

    import deltaprop

    enc = _Encoder()
    structure = enc.encode(obj, "")
    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "deltaprop_version": deltaprop.__version__,
        "structure": json.dumps(structure, separators=(",", ":"), allow_nan=False),
    }
    if hasattr(path, "write"):
        path.write(st_save(enc.arrays, metadata=metadata))
        return
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=directory)  # fmt: skip
    os.close(fd)
    try:
        st_save_file(enc.arrays, tmp, metadata=metadata)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: str) -> None:
    """Make the rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------------------------
# load
# ----------------------------------------------------------------------------------------------


def _read_header(data: bytes, where: str) -> tuple[dict[str, Any], int]:
    """Check the safetensors framing ourselves, for precise error messages."""
    if len(data) < 8:
        raise CheckpointError(
            f"load: {where} is not a deltaprop checkpoint: file too short ({len(data)} bytes) to "
            "hold a safetensors header (empty or truncated file)"
        )
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        hint = (
            " (it looks like a zip/pickle file, e.g. torch.save output)"
            if data[:2] == b"PK"
            else ""
        )
        raise CheckpointError(
            f"load: {where} is not a valid safetensors checkpoint: the header claims {n} bytes but "
            f"the file has only {len(data) - 8} after the length field (truncated or not a "
            f"safetensors file){hint}"
        )
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(
            f"load: {where} is not a valid safetensors checkpoint: unreadable JSON header ({e})"
        ) from None
    if not isinstance(header, dict):
        raise CheckpointError(f"load: {where}: the safetensors header is not a JSON object")
    data_len = len(data) - 8 - n
    end = 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        try:
            begin, stop = info["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise CheckpointError(f"load: {where}: malformed entry for tensor {key!r}") from None
        end = max(end, stop)
    if end > data_len:
        raise CheckpointError(
            f"load: {where} is truncated: its tensors need {end} bytes of data, the file has "
            f"{data_len}"
        )
    return header, n


def _decode_float(s: str, where: str) -> float:
    try:
        return float(s)
    except (TypeError, ValueError):
        raise CheckpointError(f"load: {where}: bad float value {s!r} in the structure") from None


class _Decoder:
    def __init__(self, arrays: dict[str, np.ndarray], where: str) -> None:
        self.arrays = arrays
        self.where = where
        self.used: set[str] = set()

    def array(self, name: Any) -> np.ndarray:
        if not isinstance(name, str) or name not in self.arrays:
            raise CheckpointError(
                f"load: {self.where} is corrupt: the structure refers to a tensor {name!r} that "
                "the file does not contain"
            )
        self.used.add(name)
        return self.arrays[name]

    def decode(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.decode(v) for v in node]
        if not isinstance(node, dict):
            return node
        if _TENSOR in node:
            t = _make(self.array(node[_TENSOR]))
            if node.get("requires_grad"):
                t.requires_grad_(True)
            return t
        if _NDARRAY in node:
            return self.array(node[_NDARRAY])
        if _TUPLE in node:
            return tuple(self.decode(v) for v in node[_TUPLE])
        if _FLOAT in node:
            return _decode_float(node[_FLOAT], self.where)
        if _SCALAR in node:
            value = node[_SCALAR]
            if isinstance(value, str):
                value = _decode_float(value, self.where)
            try:
                return np.dtype(node["dtype"]).type(value)
            except (KeyError, TypeError, ValueError):
                raise CheckpointError(f"load: {self.where}: bad scalar entry {node!r}") from None
        if _DICT in node:
            pairs = node[_DICT]
            if not isinstance(pairs, list) or not all(
                isinstance(p, list) and len(p) == 2 for p in pairs
            ):
                raise CheckpointError(f"load: {self.where}: malformed dict entry in the structure")
            return {k: self.decode(v) for k, v in pairs}
        return {k: self.decode(v) for k, v in node.items()}


def load(path: str | os.PathLike) -> Any:
    """Load what :func:`save` wrote: the same nested structure, tensors as deltaprop Tensors.

    Never executes code from the file. ``path`` may also be a readable binary file object.
    Raises :class:`CheckpointError` for a truncated, corrupt or non-safetensors file (and
    FileNotFoundError for a missing one).
    """
    from safetensors.numpy import load as st_load

    if hasattr(path, "read"):
        data = path.read()
        where = repr(getattr(path, "name", "<file object>"))
    else:
        path = os.fspath(path)
        where = repr(path)
        with open(path, "rb") as f:
            data = f.read()
    header, _ = _read_header(data, where)
    meta = header.get("__metadata__") or {}
    try:
        arrays = st_load(data)
    except Exception as e:  # safetensors raises its own SafetensorError
        raise CheckpointError(f"load: {where} is not a valid safetensors checkpoint: {e}") from None
    arrays = {k: (v if v.flags.writeable else v.copy()) for k, v in arrays.items()}
    if meta.get("format") != FORMAT_NAME:
        # a plain safetensors file (e.g. exported weights): a flat dict of tensors
        return {k: _make(v) for k, v in arrays.items()}
    try:
        version = int(meta.get("format_version", ""))
    except ValueError:
        raise CheckpointError(
            f"load: {where}: bad format_version {meta.get('format_version')!r}"
        ) from None
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"load: {where} was written in deltaprop checkpoint format {version} (by deltaprop "
            f"{meta.get('deltaprop_version', '?')}); this version reads format <= {FORMAT_VERSION}"
        )
    if "structure" not in meta:
        raise CheckpointError(f"load: {where} is corrupt: the deltaprop structure entry is missing")
    try:
        structure = json.loads(meta["structure"])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"load: {where} is corrupt: unreadable structure ({e})") from None
    return _Decoder(arrays, where).decode(structure)
