"""Every docstring example in the package runs and gives the output it shows (doctest), so the
documentation cannot drift from the code."""

import doctest
import importlib
import importlib.util
import pkgutil

import pytest

import deltaprop

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(deltaprop.__path__, prefix="deltaprop.")
    if not m.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    if name.startswith("deltaprop.onnx") and importlib.util.find_spec("onnx") is None:
        pytest.skip("deltaprop.onnx's examples need onnx: pip install '.[onnx]'")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctest examples failed"


def test_doctests_exist():
    total = sum(
        doctest.testmod(importlib.import_module(n), report=False).attempted for n in MODULES
    )
    assert total >= 100, f"only {total} docstring examples found"
