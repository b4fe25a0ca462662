"""What the explain tests share: the example specs and the command line run as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "explain"
MAZUR = EXAMPLES / "mattmazur-2-2-2.toml"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``deltaprop ARGS`` in a fresh process, in folder ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "deltaprop.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
