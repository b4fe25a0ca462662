"""What the checkpoint tests share: a safetensors file's bytes with its JSON header edited."""

from __future__ import annotations

import json
from collections.abc import Callable


def edit_header(raw: bytes, edit: Callable[[dict], None]) -> bytes:
    """``raw`` (a safetensors file) with its JSON header changed in place by ``edit``, padded
    with spaces to a multiple of 8 bytes as safetensors writes it; the data after it unchanged."""
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    edit(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + bytes(raw[8 + n :])
