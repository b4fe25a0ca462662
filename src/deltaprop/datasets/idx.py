"""Reading IDX files, the format of MNIST and Fashion-MNIST, gzipped or raw.

An IDX file is a big-endian header followed by the array's bytes:

* 4-byte magic number: two zero bytes, a type code (0x08 = uint8, ...), the number of
  dimensions; MNIST images have magic 2051 (0x00000803: uint8, 3 dimensions) and labels
  2049 (0x00000801: uint8, 1 dimension);
* one 4-byte size per dimension;
* the data, ``prod(sizes) * itemsize`` bytes, nothing after it.

Every check failing raises ``DatasetError`` naming the file and what is wrong.

>>> import gzip, tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "labels-idx1-ubyte.gz"
>>> _ = path.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1])))
>>> read_idx_labels(path).tolist()
[7, 2, 1]
"""

from __future__ import annotations

import gzip
import io
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from deltaprop.datasets.base import DatasetError
from deltaprop.userfiles import read_at_most

__all__ = ["IMAGES_MAGIC", "LABELS_MAGIC", "read_idx", "read_idx_images", "read_idx_labels"]

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049

_GZIP_SIGNATURE = b"\x1f\x8b"

#: The most a gzipped IDX file may decompress to (a guard against decompression bombs).
MAX_DECOMPRESSED_BYTES = 4 * 2**30

# IDX type code -> big-endian NumPy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_KIND_OF_MAGIC = {IMAGES_MAGIC: "an IDX image file", LABELS_MAGIC: "an IDX label file"}


def read_file_bytes(path: str | os.PathLike[str]) -> bytes:
    """The bytes of ``path``, decompressed when the file is gzipped (found by its content)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the file ({exc})") from exc
    if raw[:2] != _GZIP_SIGNATURE:
        return raw
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            data = read_at_most(stream, MAX_DECOMPRESSED_BYTES)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: corrupt or truncated gzip data ({exc})") from exc
    if data is None:
        raise DatasetError(
            f"{path}: decompresses to more than {MAX_DECOMPRESSED_BYTES // 2**30} GiB; refused "
            "(MNIST-style files are well under 1 GiB)"
        )
    return data


def read_idx(path: str | os.PathLike[str], expected_magic: int | None = None) -> np.ndarray:
    """Read an IDX file (gzipped or raw) into a native-endian NumPy array.

    Args:
        path: the file.
        expected_magic: when given, the magic number the file must have (2051 for MNIST
            images, 2049 for labels).

    Raises:
        DatasetError: the file is missing, not IDX, has the wrong magic number, is truncated or
            has bytes after the data.
    """
    path = Path(path)
    raw = read_file_bytes(path)
    if len(raw) < 4:
        raise DatasetError(
            f"{path}: file too short ({len(raw)} bytes) for an IDX header (at least 4 bytes)"
        )
    magic = int.from_bytes(raw[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        found = _KIND_OF_MAGIC.get(magic, "not an IDX image or label file")
        raise DatasetError(
            f"{path}: wrong magic number {magic} (0x{magic:08X}); expected {expected_magic} "
            f"({_KIND_OF_MAGIC.get(expected_magic, 'IDX')}); {magic} is {found}"
        )
    type_code, ndim = raw[2], raw[3]
    if raw[0] != 0 or raw[1] != 0 or type_code not in _IDX_DTYPES or ndim == 0:
        raise DatasetError(
            f"{path}: not an IDX file (magic number 0x{magic:08X} must be 0x0000TTDD with a "
            "known type code TT and DD >= 1 dimensions)"
        )
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DatasetError(
            f"{path}: truncated header: {ndim} dimensions need a {header_size}-byte header, "
            f"the file has {len(raw)} bytes"
        )
    shape = struct.unpack(f">{ndim}I", raw[4:header_size])
    dtype = _IDX_DTYPES[type_code]
    expected_size = math.prod(shape) * dtype.itemsize
    data_size = len(raw) - header_size
    if data_size != expected_size:
        problem = "truncated" if data_size < expected_size else "has extra bytes after the data"
        raise DatasetError(
            f"{path}: file {problem}: the header says shape {shape} of {dtype.name} "
            f"({expected_size} data bytes after the {header_size}-byte header), "
            f"but there are {data_size} data bytes"
        )
    array = np.frombuffer(raw, dtype=dtype, count=math.prod(shape), offset=header_size)
    return array.reshape(shape).astype(dtype.newbyteorder("="))


def read_idx_images(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX image file (magic 2051): a uint8 array of shape ``(N, rows, cols)``."""
    images = read_idx(path, expected_magic=IMAGES_MAGIC)
    if images.ndim != 3:  # the magic fixes ndim = 3; kept as a guard for readers of the code
        raise DatasetError(f"{Path(path)}: image file has shape {images.shape}, expected 3-D")
    if images.shape[1] == 0 or images.shape[2] == 0:
        raise DatasetError(f"{Path(path)}: images have an empty size {images.shape[1:]}")
    return images


def read_idx_labels(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX label file (magic 2049): a uint8 array of shape ``(N,)``."""
    return read_idx(path, expected_magic=LABELS_MAGIC)
