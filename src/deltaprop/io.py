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
another tool (no deltaprop header, e.g. PyTorch's ``safetensors.torch.save_file``) loads as a
flat ``{name: Tensor}`` dict, float16 and bfloat16 tensors upcast to float32. Training
checkpoints of format 1, which kept their structure as JSON in a ``__meta__`` array, load as the
structure they hold.

Writes are atomic: the file is written to a temporary file in the same directory, flushed to
disk (fsync) and renamed over the destination, so a crash or error never leaves a partial
checkpoint. Reading checks every field of the file itself (framing, header, dtypes, shapes,
offsets, structure): a truncated, corrupt or foreign file raises :class:`CheckpointError`
naming the file and what is wrong, and nothing else (a missing or unreadable file raises the
``OSError`` that ``open`` raises).

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

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from deltaprop.errors import CheckpointError
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

#: safetensors dtype names and the NumPy dtype each is read as (BF16 is converted by hand).
_ST_DTYPES = {
    "BOOL": np.dtype(np.bool_), "U8": np.dtype(np.uint8), "I8": np.dtype(np.int8),
    "U16": np.dtype("<u2"), "I16": np.dtype("<i2"), "U32": np.dtype("<u4"),
    "I32": np.dtype("<i4"), "U64": np.dtype("<u8"), "I64": np.dtype("<i8"),
    "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"), "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
}  # fmt: skip

#: Deepest nesting of a stored structure that :func:`load` accepts.
MAX_DEPTH = 200


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
        "sha256": _digest(enc.arrays),
    }
    if hasattr(path, "write"):
        path.write(st_save(enc.arrays, metadata=metadata))
        return
    atomic_write(path, lambda tmp: st_save_file(enc.arrays, tmp, metadata=metadata))


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], Any]) -> None:
    """Write a file so that ``path`` always holds either its old content or the whole new one.

    ``write(tmp)`` fills a temporary file in the same directory; it is then given a normal
    file's permissions (``mkstemp`` makes 0600), flushed to disk and renamed over ``path``, and
    the rename is made durable. On any error the temporary file is removed and ``path`` is left
    as it was.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=directory)  # fmt: skip
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
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


def _digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 of the arrays' names, dtypes, shapes and bytes (in name order): written with a
    checkpoint so that :func:`load` notices data damaged on disk after it was written."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        arr = arrays[name]
        h.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(np.ascontiguousarray(arr).view(np.uint8).reshape(-1).data if arr.size else b"")
    return h.hexdigest()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _read_safetensors(data: bytes, where: str) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """``(metadata, {name: array})`` of safetensors bytes, every field checked.

    Raises CheckpointError naming ``where`` for anything that is not a well-formed file.
    """
    if len(data) < 8:
        raise CheckpointError(
            f"load: {where} is not a deltaprop checkpoint: file too short ({len(data)} bytes) to "
            "hold a safetensors header (empty or truncated file)"
        )
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        if data[:2] == b"PK" or data[:1] == b"\x80":  # zip (torch.save) or plain pickle
            raise CheckpointError(
                f"load: {where} is not a valid safetensors checkpoint but a zip/pickle file "
                "(PyTorch's torch.save output, .pt/.bin), which deltaprop does not read because "
                "unpickling can run code: convert it once in "
                "PyTorch with safetensors.torch.save_file({k: v.contiguous() for k, v in "
                "torch.load(path).items()}, 'model.safetensors') and load that file"
            )
        raise CheckpointError(
            f"load: {where} is not a valid safetensors checkpoint: the header claims {n} bytes but "
            f"the file has only {len(data) - 8} after the length field (truncated or not a "
            "safetensors file)"
        )
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(
            f"load: {where} is not a valid safetensors checkpoint: unreadable JSON header ({e})"
        ) from None
    if not isinstance(header, dict):
        raise CheckpointError(f"load: {where}: the safetensors header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(
            f"load: {where}: the safetensors __metadata__ must map names to strings"
        )
    body = memoryview(data)[8 + n :]
    entries = []
    for key, info in header.items():
        entries.append((key, *_check_entry(key, info, where)))
    end = max((stop for *_, stop in entries), default=0)
    if end > len(body):
        raise CheckpointError(
            f"load: {where} is truncated: its tensors need {end} bytes of data, the file has "
            f"{len(body)}"
        )
    arrays = {}
    for key, dtype_name, shape, begin, stop in entries:
        dtype = _ST_DTYPES[dtype_name]
        count = math.prod(shape)
        if stop - begin != count * dtype.itemsize:
            raise CheckpointError(
                f"load: {where} is corrupt: tensor {key!r} of dtype {dtype_name} and shape "
                f"{list(shape)} needs {count * dtype.itemsize} bytes, its data_offsets span "
                f"{stop - begin}"
            )
        flat = np.frombuffer(body, dtype=dtype, count=count, offset=begin)
        if dtype_name == "BOOL":
            flat = flat != 0
        elif dtype_name == "BF16":  # the upper half of a float32
            flat = (flat.astype(np.uint32) << 16).view(np.float32)
        arrays[key] = flat.astype(flat.dtype.newbyteorder("="), copy=True).reshape(shape)
    return metadata, arrays


def _check_entry(key: str, info: Any, where: str) -> tuple[str, tuple[int, ...], int, int]:
    """``(dtype, shape, begin, end)`` of one header entry, or CheckpointError."""
    bad = f"load: {where} is corrupt: malformed entry for tensor {key!r}"
    if not isinstance(info, dict):
        raise CheckpointError(f"{bad} (not a JSON object)")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in _ST_DTYPES:
        raise CheckpointError(
            f"{bad}: dtype {dtype!r} is not one deltaprop reads ({', '.join(_ST_DTYPES)})"
        )
    if (
        not isinstance(shape, list)
        or len(shape) > 32
        or not all(_is_int(s) and 0 <= s < 2**62 for s in shape)
    ):
        raise CheckpointError(f"{bad}: shape {shape!r} is not a list of non-negative ints")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_int(o) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1]
    ):
        raise CheckpointError(
            f"{bad}: data_offsets {offsets!r} is not a pair of ints [begin, end] with "
            "0 <= begin <= end"
        )
    return dtype, tuple(shape), offsets[0], offsets[1]


def _decode_float(s: Any, where: str) -> float:
    try:
        if not isinstance(s, str):
            raise TypeError
        return float(s)
    except (TypeError, ValueError):
        raise CheckpointError(f"load: {where}: bad float value {s!r} in the structure") from None


class _Decoder:
    """Rebuilds the stored structure, checking every node (CheckpointError otherwise)."""

    def __init__(self, arrays: dict[str, np.ndarray], where: str) -> None:
        self.arrays = arrays
        self.where = where

    def corrupt(self, what: str) -> CheckpointError:
        return CheckpointError(f"load: {self.where} is corrupt: {what}")

    def array(self, name: Any) -> np.ndarray:
        if not isinstance(name, str) or name not in self.arrays:
            raise self.corrupt(
                f"the structure refers to a tensor {name!r} that the file does not contain"
            )
        return self.arrays[name]

    def decode(self, node: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise self.corrupt(f"the structure is nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, list):
            return [self.decode(v, depth + 1) for v in node]
        if not isinstance(node, dict):
            return node
        if _TENSOR in node:
            t = _make(self.array(node[_TENSOR]))
            if node.get("requires_grad") and t.data.dtype.kind == "f":
                t.requires_grad_(True)
            return t
        if _NDARRAY in node:
            return self.array(node[_NDARRAY])
        if _TUPLE in node:
            items = node[_TUPLE]
            if not isinstance(items, list):
                raise self.corrupt(f"a tuple entry holds {type(items).__name__}, not a list")
            return tuple(self.decode(v, depth + 1) for v in items)
        if _FLOAT in node:
            return _decode_float(node[_FLOAT], self.where)
        if _SCALAR in node:
            return self.scalar(node)
        if _DICT in node:
            return self.dict_pairs(node[_DICT], depth)
        return {k: self.decode(v, depth + 1) for k, v in node.items()}

    def scalar(self, node: dict[str, Any]) -> Any:
        value, dtype = node[_SCALAR], node.get("dtype")
        if isinstance(value, str):
            value = _decode_float(value, self.where)
        names = {str(d) for d in _SAFE_DTYPES}
        if not isinstance(dtype, str) or dtype not in names:
            raise CheckpointError(f"load: {self.where}: bad scalar entry {node!r}")
        if not isinstance(value, (bool, int, float)):
            raise CheckpointError(f"load: {self.where}: bad scalar entry {node!r}")
        try:
            return np.dtype(dtype).type(value)
        except (TypeError, ValueError, OverflowError):
            raise CheckpointError(f"load: {self.where}: bad scalar entry {node!r}") from None

    def dict_pairs(self, pairs: Any, depth: int) -> dict[Any, Any]:
        if not isinstance(pairs, list) or not all(
            isinstance(p, list) and len(p) == 2 and isinstance(p[0], (str, int))
            and not isinstance(p[0], bool)
            for p in pairs
        ):  # fmt: skip
            raise CheckpointError(
                f"load: {self.where}: malformed dict entry in the structure (expected "
                "[key, value] pairs with str or int keys)"
            )
        return {k: self.decode(v, depth + 1) for k, v in pairs}


def _decode_structure(text: str, arrays: dict[str, np.ndarray], where: str) -> Any:
    try:
        structure = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise CheckpointError(f"load: {where} is corrupt: unreadable structure ({e})") from None
    return _Decoder(arrays, where).decode(structure)


#: The array that held a format-1 training checkpoint's JSON structure.
_LEGACY_META = "__meta__"


def _is_legacy_training(tree: Any) -> bool:
    """A training checkpoint of format 1: ``{"__meta__": uint8 JSON, "/path": array, ...}``."""
    return (
        isinstance(tree, dict)
        and isinstance(tree.get(_LEGACY_META), Tensor)
        and tree[_LEGACY_META].data.dtype == np.uint8
        and all(k == _LEGACY_META or k.startswith("/") for k in tree)
    )


def _decode_legacy_training(tree: dict[str, Tensor], where: str) -> Any:
    """The state of a format-1 training checkpoint (same markers as the structure here)."""
    try:
        meta = json.loads(tree[_LEGACY_META].data.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(f"load: {where} is corrupt: unreadable __meta__ ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != 1 or "state" not in meta:
        raise CheckpointError(
            f"load: {where} is corrupt: its __meta__ is not a format-1 training checkpoint"
        )
    arrays = {k: v.data for k, v in tree.items() if k != _LEGACY_META}
    return _Decoder(arrays, where).decode(meta["state"])


def load(path: str | os.PathLike) -> Any:
    """Load what :func:`save` wrote: the same nested structure, tensors as deltaprop Tensors.

    Never executes code from the file. ``path`` may also be a readable binary file object.
    A safetensors file written by another tool loads as a flat ``{name: Tensor}`` dict
    (float16 and bfloat16 upcast to float32).

    Raises:
        CheckpointError: the file is truncated, corrupt, not a safetensors file, or written in
            a newer format; the message names the file and what is wrong.
        OSError: the file cannot be opened (FileNotFoundError, PermissionError, ...).
    """
    if hasattr(path, "read"):
        data = path.read()
        where = repr(getattr(path, "name", "<file object>"))
    else:
        path = os.fspath(path)
        where = repr(path)
        with open(path, "rb") as f:
            data = f.read()
    meta, arrays = _read_safetensors(data, where)
    if meta.get("format") != FORMAT_NAME:
        # a plain safetensors file (e.g. exported weights): a flat dict of float32/... tensors
        return {
            k: _make(v.astype(np.float32) if v.dtype == np.float16 else v)
            for k, v in arrays.items()
        }
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
    if "sha256" in meta and meta["sha256"] != _digest(arrays):
        raise CheckpointError(
            f"load: {where} is damaged: its tensor data does not match the checksum written "
            "with it (changed on disk after it was saved)"
        )
    tree = _decode_structure(meta["structure"], arrays, where)
    if _is_legacy_training(tree):
        return _decode_legacy_training(tree, where)
    return tree
