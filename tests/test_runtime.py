"""Process-level behaviour of `import deltaprop`: malloc tuning and import cost."""

import os
import platform
import subprocess
import sys

import pytest

CODE = "import deltaprop._malloc as m, deltaprop; print(m.tuned())"


def _run(env_value: str | None) -> str:
    env = dict(os.environ)
    env.pop("DELTAPROP_TUNE_MALLOC", None)
    if env_value is not None:
        env["DELTAPROP_TUNE_MALLOC"] = env_value
    return subprocess.run(
        [sys.executable, "-c", CODE], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_malloc_tuning_can_be_turned_off():
    assert _run("0") == "False"


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt exists only in glibc")
def test_import_tunes_glibc_malloc_by_default():
    assert _run(None) == "True"


def test_import_loads_no_heavy_dependency():
    code = (
        "import sys, deltaprop, deltaprop.nn, deltaprop.optim; "
        "print(sorted(m for m in ('matplotlib', 'tqdm', 'safetensors', 'PIL', 'rich', 'torch', "
        "'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
