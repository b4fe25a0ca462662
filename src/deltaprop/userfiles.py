"""Reading and writing the files a user names: one checked entry point for each kind.

Every function here turns the ways a path can be wrong (missing, a directory, unreadable, not
UTF-8, not valid TOML/JSON, a parent that is a file, a directory that cannot be written) into
one :class:`~deltaprop.errors.InputError` sentence that names the file and what is allowed.
``error`` picks the subclass (``ModelError`` for a model file, ``TrainingError`` for a run
directory, ...); ``what`` says which argument or role the file has (``"--model"``,
``"model file"``, ``"config.json of run r1"``).

>>> import os, tempfile
>>> from deltaprop.errors import ModelError
>>> path = os.path.join(tempfile.mkdtemp(), "m.toml")
>>> with open(path, "wb") as f:
...     _ = f.write(b"\\xff\\xfe not text")
>>> try:
...     read_toml(path, "model file", ModelError)
... except ModelError as e:
...     print(str(e).split("' ", 1)[1])
is not UTF-8 text (byte 0xff at offset 0); save it as UTF-8
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from deltaprop.errors import InputError

__all__ = [
    "MAX_TEXT_BYTES",
    "available_memory",
    "check_output_dir",
    "check_readable_dir",
    "describe_bytes",
    "parses_as_float",
    "read_at_most",
    "read_json",
    "read_text",
    "read_toml",
]

#: The largest TOML/JSON file read (a model or spec file is a few kilobytes).
MAX_TEXT_BYTES = 16 * 2**20


def _os_reason(e: OSError) -> str:
    return (e.strerror or str(e)).lower()


def read_at_most(stream: BinaryIO, limit: int) -> bytes | None:
    """The rest of ``stream`` when it holds at most ``limit`` bytes, else None (reads no more
    than ``limit + 1`` bytes: a guard against huge files and decompression bombs).

    >>> import io
    >>> read_at_most(io.BytesIO(b"abc"), 3), read_at_most(io.BytesIO(b"abcd"), 3)
    (b'abc', None)
    """
    data = stream.read(limit + 1)
    return data if len(data) <= limit else None


def read_bytes(path: str | os.PathLike[str], what: str, error: type[InputError]) -> bytes:
    """The content of a regular file, or ``error`` naming it (missing, directory, unreadable)."""
    file = Path(path)
    if not file.exists():
        raise error(f"{what} {str(file)!r} does not exist")
    if file.is_dir():
        raise error(f"{what} {str(file)!r} is a directory, not a file")
    try:
        with open(file, "rb") as f:
            data = read_at_most(f, MAX_TEXT_BYTES)
    except OSError as e:
        raise error(f"{what} {str(file)!r} cannot be read: {_os_reason(e)}") from None
    if data is None:
        raise error(
            f"{what} {str(file)!r} is larger than {describe_bytes(MAX_TEXT_BYTES)}; "
            "expected a small text file"
        )
    return data


def read_text(path: str | os.PathLike[str], what: str, error: type[InputError]) -> str:
    """A UTF-8 text file (see :func:`read_bytes`); ``error`` if it is not UTF-8."""
    data = read_bytes(path, what, error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(
            f"{what} {str(path)!r} is not UTF-8 text (byte 0x{data[e.start]:02x} at offset "
            f"{e.start}); save it as UTF-8"
        ) from None


def read_toml(path: str | os.PathLike[str], what: str, error: type[InputError]) -> dict[str, Any]:
    """A TOML document as a dict, or ``error`` naming the file and the line of a syntax error."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    text = read_text(path, what, error)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise error(f"{what} {str(path)!r} is not valid TOML: {e}") from None
    except RecursionError:
        raise error(f"{what} {str(path)!r} is not valid TOML: nested too deeply") from None


def read_json(path: str | os.PathLike[str], what: str, error: type[InputError]) -> Any:
    """A JSON document, or ``error`` naming the file (empty, not UTF-8, not JSON)."""
    text = read_text(path, what, error)
    if not text.strip():
        raise error(f"{what} {str(path)!r} is empty; expected a JSON object")
    try:
        return json.loads(text)
    except ValueError as e:
        raise error(f"{what} {str(path)!r} is not valid JSON: {e}") from None
    except RecursionError:
        raise error(f"{what} {str(path)!r} is not valid JSON: nested too deeply") from None


def check_readable_dir(path: str | os.PathLike[str], what: str, error: type[InputError]) -> None:
    """``error`` unless the existing directory ``path`` can be listed and entered (without
    this, its files would look missing)."""
    if not os.access(path, os.R_OK | os.X_OK):
        raise error(f"{what} {str(path)!r} cannot be read: permission denied")


def check_output_dir(path: str | os.PathLike[str], what: str, error: type[InputError]) -> Path:
    """Create directory ``path`` if needed and check that files can be written in it.

    Refuses an existing file, a path under a file, a place where directories cannot be made
    (``/proc/x``) and a directory the user cannot write, with one sentence naming ``what``.
    """
    directory = Path(path)
    if directory.exists() and not directory.is_dir():
        raise error(f"{what} {str(directory)!r} is a file; give a directory (new or existing)")
    for parent in directory.parents:
        if parent.exists():
            if not parent.is_dir():
                raise error(
                    f"{what} {str(directory)!r} cannot be created: {str(parent)!r} is a file, "
                    "not a directory"
                )
            break
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise error(f"{what} {str(directory)!r} cannot be created: {_os_reason(e)}") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=directory)
    except OSError as e:
        raise error(f"{what} {str(directory)!r} is not writable: {_os_reason(e)}") from None
    os.close(fd)
    os.unlink(probe)
    return directory


def parses_as_float(text: str) -> bool:
    """Whether ``float(text)`` succeeds (``"1e-3"``, ``" 2 "``, ``"nan"``; not ``"x"``): how
    CSV readers tell a header row from data.

    >>> parses_as_float("1e-3"), parses_as_float("label")
    (True, False)
    """
    try:
        float(text)
    except ValueError:
        return False
    return True


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def describe_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KiB'``: a byte count for a message.

    >>> describe_bytes(238 * 2**30), describe_bytes(100)
    ('238.0 GiB', '100 bytes')
    """
    if n < 1024:
        return f"{int(n)} bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        n /= 1024
        if n < 1024 or unit == "PiB":
            return f"{n:,.1f} {unit}"
    return f"{n:,.1f} PiB"  # pragma: no cover
