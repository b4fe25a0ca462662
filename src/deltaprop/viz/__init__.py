"""``deltaprop.viz``: pictures of backpropagation.

:func:`graph` returns the DOT text of the computational graph that produced a tensor (one node
per op with its name, output shape, value, gradient and local gradient rule) as a
:class:`Graph`, a ``str`` that Jupyter displays inline (``_repr_svg_``/``_repr_html_``);
:func:`render_dot` turns it into SVG/PNG with Graphviz's ``dot`` when it is installed. The
network of an explanation is drawn as neurons by :class:`deltaprop.explain.Picture`.

>>> import deltaprop as dp
>>> from deltaprop import viz
>>> a = dp.tensor(3.0, requires_grad=True)
>>> "Mul" in viz.graph(a * a, backward=True)
True
"""

from deltaprop.viz.graph import (
    INSTALL_HINT,
    Graph,
    GraphFreedError,
    GraphvizNotFound,
    dot_available,
    gate_name,
    graph,
    local_rule,
    render_dot,
    retain_grads,
)

__all__ = [
    "graph",
    "Graph",
    "retain_grads",
    "render_dot",
    "dot_available",
    "local_rule",
    "gate_name",
    "GraphFreedError",
    "GraphvizNotFound",
    "INSTALL_HINT",
]
