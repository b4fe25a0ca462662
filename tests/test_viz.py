"""deltaprop.viz.graph: DOT text of computational graphs, the gate view, and `deltaprop graph`."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from explain_helpers import EXAMPLES

import deltaprop as dp
from deltaprop import viz

DOT = shutil.which("dot")

_NODE = re.compile(r"^\s*(\w+) \[(.*)\];$")
_EDGE = re.compile(r"^\s*(\w+) -> (\w+);$")


def parse_dot(text: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """A small parser for the DOT subset viz.graph writes: ``digraph NAME {``, attribute
    statements, one node or edge per line, ``}``. Returns {node: label} and the edges; raises
    AssertionError on anything else."""
    lines = text.strip().splitlines()
    assert re.match(r"^digraph \w+ \{$", lines[0]), lines[0]
    assert lines[-1] == "}"
    nodes: dict[str, str] = {}
    edges: list[tuple[str, str]] = []
    for ln in lines[1:-1]:
        if re.match(r"^\s*(graph|node|edge) \[.*\];$", ln):
            continue
        if m := _EDGE.match(ln):
            edges.append((m.group(1), m.group(2)))
            continue
        m = _NODE.match(ln)
        assert m, f"unparsable DOT line: {ln!r}"
        label = re.search(r"label=<(.*)>$", m.group(2))
        assert label, ln
        body = label.group(1)
        # HTML-like label: tags balanced
        opened = re.findall(r"<(B|I|FONT)(?:\s[^>]*)?>", body)
        closed = re.findall(r"</(B|I|FONT)>", body)
        assert sorted(opened) == sorted(closed), body
        nodes[m.group(1)] = "\n".join(part for part in re.split(r"<[^>]+>", body) if part)
    for a, b in edges:
        assert a in nodes and b in nodes, (a, b)
    return nodes, edges


def circuit():
    x = dp.tensor(-2.0, requires_grad=True)
    y = dp.tensor(5.0, requires_grad=True)
    z = dp.tensor(-4.0, requires_grad=True)
    q = x + y
    f = q * z
    return x, y, z, q, f


def test_graph_of_the_circuit_with_gradients():
    x, y, z, q, f = circuit()
    dot = viz.graph(f, names={"x": x, "y": y, "z": z, "q": q, "f": f}, backward=True)
    nodes, edges = parse_dot(dot)
    assert len(nodes) == 5 and len(edges) == 4  # 3 inputs + add + mul
    labels = {lab.split("\n")[0]: lab for lab in nodes.values()}
    assert "value 3" in labels["q = Add"] and "grad -4" in labels["q = Add"]
    assert "value -12" in labels["f = Mul"] and "grad 1" in labels["f = Mul"]
    assert "grad 3" in labels["z"] and "grad -4" in labels["x"]
    # the gate view: add distributes, mul swaps (and the local rule from the op's docstring)
    assert "add gate: distributes" in labels["q = Add"]
    assert "mul gate: swaps" in labels["f = Mul"] and "dy/da = b, dy/db = a" in labels["f = Mul"]
    assert x.grad.item() == -4.0  # backward=True did run the backward pass


def test_max_gate_routes_and_values_only_when_small():
    a = dp.tensor([1.0, 5.0, 2.0], requires_grad=True)
    b = dp.tensor([4.0, 0.0, 3.0], requires_grad=True)
    big = dp.ones(10, 10, requires_grad=True)
    out = dp.maximum(a, b).sum() + a.max() + big.sum()
    nodes, _ = parse_dot(viz.graph(out, backward=True, max_values=6))
    text = "\n".join(nodes.values())
    assert text.count("max gate: routes") == 2
    assert "value [1, 5, 2]" in text
    assert "(10, 10)" in text and "value [[1" not in text  # 100 elements: shape only
    nodes, _ = parse_dot(viz.graph(out, gate_view=False))
    assert "gate" not in "\n".join(nodes.values())


def test_graph_before_backward_has_no_gradients_and_after_free_raises():
    x, y, z, q, f = circuit()
    nodes, _ = parse_dot(viz.graph(f))
    assert not any("grad" in lab for lab in nodes.values())
    f.backward()  # frees the graph
    with pytest.raises(viz.GraphFreedError, match="retain_graph=True"):
        viz.graph(f)
    x, y, z, q, f = circuit()
    f.backward(retain_graph=True)
    nodes, _ = parse_dot(viz.graph(f))
    assert sum("grad" in lab for lab in nodes.values()) == 3  # leaves only: q, f not retained
    viz.retain_grads(f)
    f.backward(retain_graph=True)
    assert q.grad is not None


def test_names_from_named_parameters_and_leaf_graph():
    from deltaprop import nn

    model = nn.Linear(3, 2)
    out = model(dp.randn(4, 3)).sum()
    nodes, edges = parse_dot(viz.graph(out, model.named_parameters()))
    heads = [lab.split("\n")[0] for lab in nodes.values()]
    assert "weight" in heads and "bias" in heads and "constant" in heads
    leaf = dp.tensor([1.0, 2.0], requires_grad=True)
    nodes, edges = parse_dot(viz.graph(leaf))
    assert len(nodes) == 1 and not edges


def test_float64_dtype_is_shown():
    x = dp.tensor(np.array([1.0, 2.0]), requires_grad=True)
    nodes, _ = parse_dot(viz.graph((x * x).sum()))
    assert "float64" in "\n".join(nodes.values())


@pytest.mark.skipif(DOT is None, reason="Graphviz's dot is not installed: rendering not checked")
def test_dot_renders():
    x, y, z, q, f = circuit()
    dot = viz.graph(f, backward=True)
    proc = subprocess.run([DOT, "-Tsvg"], input=dot.encode(), capture_output=True)
    assert proc.returncode == 0, proc.stderr
    svg = viz.render_dot(dot, "svg").decode()
    assert "<svg" in svg and "Mul" in svg
    assert viz.render_dot(dot, "png")[:8] == b"\x89PNG\r\n\x1a\n"


def test_render_dot_without_graphviz_explains_how_to_install(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert not viz.dot_available()
    with pytest.raises(viz.GraphvizNotFound, match="apt-get install graphviz"):
        viz.render_dot("digraph g {}", "svg")


# ----------------------------------------------------------------------------------------------
# the `deltaprop graph` command
# ----------------------------------------------------------------------------------------------


def run(argv, capsys):
    """Run one command through ``deltaprop.cli.main``: (exit status, stdout, stderr)."""
    from deltaprop.cli import main

    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_graph_command_dot_of_expression(capsys):
    rc, out, _ = run(["graph", "(x + y) * z", "--values", "x=-2,y=5,z=-4", "-f", "dot"], capsys)
    assert rc == 0
    nodes, edges = parse_dot(out)
    assert len(nodes) == 5 and len(edges) == 4
    assert any(lab.startswith("x\n") and "grad -4" in lab for lab in nodes.values())


@pytest.mark.parametrize("name", ["circuit-xy-z.toml", "mattmazur-2-2-2.toml", "conv-pool.toml"])
def test_graph_command_of_specs(name, tmp_path, capsys):
    out = tmp_path / "g.dot"
    rc, _, _ = run(["graph", str(EXAMPLES / name), "--out", str(out)], capsys)
    assert rc == 0
    nodes, edges = parse_dot(out.read_text())
    assert len(edges) >= 2
    if "mattmazur" in name:
        heads = [lab.split("\n")[0] for lab in nodes.values()]
        assert {"W1", "b1", "W2", "b2", "X", "T"} <= set(heads)
        assert any(h.startswith("E = ") for h in heads)


@pytest.mark.skipif(DOT is None, reason="Graphviz's dot is not installed: rendering not checked")
@pytest.mark.parametrize("fmt, magic", [("svg", b"<?xml"), ("png", b"\x89PNG")])
def test_graph_command_renders(fmt, magic, tmp_path, capsys):
    out = tmp_path / f"g.{fmt}"
    rc, _, err = run(["graph", str(EXAMPLES / "circuit-xy-z.toml"), "--out", str(out)], capsys)
    assert rc == 0 and "wrote" in err
    assert out.read_bytes()[: len(magic)] == magic


def test_graph_command_without_graphviz_still_writes_dot(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    out = tmp_path / "g.png"
    rc, _, err = run(["graph", "x * y", "--values", "x=2,y=3", "--out", str(out)], capsys)
    assert rc == 1
    assert "apt-get install graphviz" in err and "brew install graphviz" in err
    assert not out.exists()
    parse_dot((tmp_path / "g.dot").read_text())
    rc, stdout, err = run(["graph", "x * y", "--values", "x=2,y=3", "-f", "svg"], capsys)
    assert rc == 1 and stdout.startswith("digraph") and "Graphviz" in err


def test_graph_displays_inline_in_jupyter(monkeypatch):
    x = dp.tensor(2.0, requires_grad=True)
    g = viz.graph(x * x, {"x": x}, backward=True)
    assert isinstance(g, str) and isinstance(g, viz.Graph) and g.startswith("digraph")
    import sys

    monkeypatch.setattr(sys.modules["deltaprop.viz.graph"], "dot_available", lambda: False)
    assert g._repr_svg_() is None  # Jupyter falls back to the HTML
    page = g._repr_html_()
    assert "Graphviz" in page and "digraph" in page and "<pre>" in page
    if DOT is not None:
        monkeypatch.undo()
        assert g._repr_svg_().lstrip().startswith(("<?xml", "<svg", "<!DOCTYPE"))
        assert "<svg" in g._repr_html_()


def test_neuron_picture_displays_inline_and_graph_view_neurons(tmp_path, capsys):
    from deltaprop.explain import Picture, explain_file

    tr = explain_file(EXAMPLES / "mattmazur-2-2-2.toml")
    pic = Picture(tr, tr.steps[0])
    svg = pic._repr_svg_()
    assert svg.startswith("<svg") and svg.count("<circle") == 6
    assert 'data-ref="w0_0_0"' in svg and ">0.15<" in svg  # w_i1,h1 on its connection
    back = pic.svg("backward")
    assert "δ 0.1385" in back and ">0.08217<" in back  # delta_o1 and dE/dw_h1,o1
    out = tmp_path / "n.svg"
    assert (
        run(
            [
                "graph",
                str(EXAMPLES / "mattmazur-2-2-2.toml"),
                "--view",
                "neurons",
                "--out",
                str(out),
            ],
            capsys,
        )[0]
        == 0
    )
    both = out.read_text()
    assert both.startswith("<svg") and both.count("<circle") == 12  # forward and backward
    rc, _, err = run(["graph", str(EXAMPLES / "circuit-xy-z.toml"), "--view", "neurons"], capsys)
    assert rc == 2 and "--view ops" in err
    rc, _, err = run(
        ["graph", str(EXAMPLES / "mattmazur-2-2-2.toml"), "--view", "neurons", "--format", "png"],
        capsys,
    )
    assert rc == 2 and "writes SVG" in err
