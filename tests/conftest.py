import importlib.abc
import os
import sys
from pathlib import Path

# DELTAPROP_TEST_WITHOUT_TORCH=1 runs the suite as if PyTorch were not installed (what a user
# without it gets): `import torch` fails before any test module imports it.
if os.environ.get("DELTAPROP_TEST_WITHOUT_TORCH") == "1":

    class _HideTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ModuleNotFoundError(f"No module named {name!r} (hidden)", name=name)
            return None

    sys.meta_path.insert(0, _HideTorch())

# tests import the shared oracle helper as `from oracle import ...`
sys.path.insert(0, str(Path(__file__).parent))


def pytest_terminal_summary(terminalreporter):
    oracle = sys.modules.get("oracle")
    if oracle is None or oracle.torch is not None:
        return
    n = oracle.NOT_RUN
    if n["compare"] or n["raises_both"]:
        terminalreporter.write_line(
            f"PyTorch not installed: {n['compare']} value/gradient comparisons and "
            f"{n['raises_both']} error comparisons with PyTorch did not run; those cases were "
            "checked with dp.gradcheck, the composed twins and deltaprop's own errors instead"
        )
