"""``deltaprop.explain``: worked examples of backpropagation, produced and verified by the engine.

>>> from deltaprop.explain import trace_circuit
>>> tr = trace_circuit("q = x + y; f = q * z", {"x": -2, "y": 5, "z": -4})
>>> tr.node("f").value, tr.node("x").grad, tr.node("z").grad
(-12.0, -4.0, 3.0)

* :func:`trace` explains SGD steps of a ``Sequential`` of ``Linear``, ``Conv2d``, pooling,
  ``LayerNorm``, ``BatchNorm`` and ``Dropout`` modules with their activations;
* :func:`load_spec` / :func:`explain_file` read a TOML spec (``examples/explain/*.toml``);
* every trace renders itself: ``to_text()``, ``to_markdown()``, ``to_latex()``, ``to_html()``,
  ``to_json()``, and as HTML in Jupyter;
* :mod:`.exercise` turns a trace into a worksheet, an answer key and a grader.
"""

from __future__ import annotations

from pathlib import Path

from deltaprop.explain.circuit import CircuitTrace, trace_circuit
from deltaprop.explain.jsondata import to_dict
from deltaprop.explain.neurons import Picture
from deltaprop.explain.render import FORMATS, render
from deltaprop.explain.spec import CircuitSpec, NetworkSpec, load_spec, parse_spec
from deltaprop.explain.specvalues import SpecError
from deltaprop.explain.trace import NetworkTrace, trace, trace_spec


def explain_spec(
    spec: NetworkSpec | CircuitSpec, verify: bool = False
) -> NetworkTrace | CircuitTrace:
    """Run a parsed spec on the engine (``verify``: also check gradients by finite differences)."""
    if isinstance(spec, CircuitSpec):
        return trace_circuit(
            spec.expression,
            spec.values,
            title=spec.title,
            dtype=spec.dtype,
            description=spec.description,
        )
    return trace_spec(spec, verify=verify)


def explain_file(path: str | Path, verify: bool = False) -> NetworkTrace | CircuitTrace:
    """Load a spec file and run it: ``explain_file("examples/explain/sigmoid-neuron.toml")``."""
    return explain_spec(load_spec(path), verify=verify)


__all__ = [
    "trace",
    "trace_spec",
    "trace_circuit",
    "explain_spec",
    "explain_file",
    "load_spec",
    "parse_spec",
    "render",
    "to_dict",
    "FORMATS",
    "NetworkTrace",
    "CircuitTrace",
    "NetworkSpec",
    "CircuitSpec",
    "SpecError",
    "Picture",
]
