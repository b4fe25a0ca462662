"""Every Python block of docs/export.md runs (in a temporary directory), so the guide to ONNX
export and weight transfer cannot drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("onnx", reason="docs/export.md needs onnx: pip install '.[onnx]'")
pytest.importorskip("onnxruntime", reason="docs/export.md needs onnxruntime: pip install '.[onnx]'")

DOC = Path(__file__).parent.parent / "docs" / "export.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_guide_has_python_examples():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_doc_block_runs(code, tmp_path, monkeypatch, capsys):
    if "import torch" in code:
        pytest.importorskip("torch", reason="this example of docs/export.md needs torch")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"{DOC.name} block", "exec"), {"__name__": "__doc_example__"})
