"""What the explain tests share: the example specs, the command line run as a user runs it, the
TeX engine that compiles the LaTeX output and the logistic sigmoid of the closed forms."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "explain"
MAZUR = EXAMPLES / "mattmazur-2-2-2.toml"
# compiles the English LaTeX output (the Chinese one, --lang zh, needs xelatex)
TEX = shutil.which("pdflatex") or shutil.which("lualatex") or shutil.which("xelatex")


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``deltaprop ARGS`` in a fresh process, in folder ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "deltaprop.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
