"""deltaprop explain / graph on the command line: every example in every format.

Formats are checked for structure: LaTeX compiles when a TeX engine is installed, HTML is one
self-contained page with balanced tags, JSON follows the contract, DOT parses.
"""

from __future__ import annotations

import json
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from explain_helpers import EXAMPLES, TEX

from deltaprop.cli import main

NAMES = sorted(p.name for p in EXAMPLES.glob("*.toml"))
NETWORKS = [n for n in NAMES if "circuit" not in n]


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run one explain/graph command through ``deltaprop.cli.main``: (exit status, stdout,
    stderr)."""
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_the_examples_exist():
    stems = {Path(n).stem for n in NAMES}
    assert {
        "mattmazur-2-2-2",
        "circuit-xy-z",
        "sigmoid-neuron",
        "softmax-ce",
        "minibatch-2-layer",
        "conv-pool",
    } <= stems


@pytest.mark.parametrize("name", NAMES)
def test_text_to_stdout(name, capsys):
    rc, out, _ = run(["explain", str(EXAMPLES / name)], capsys)
    assert rc == 0
    assert "Forward pass" in out and "Backward pass" in out
    assert "\x1b[" not in out  # no ANSI colours when not writing to a terminal


@pytest.mark.parametrize("name", NETWORKS)
def test_markdown(name, tmp_path, capsys):
    out = tmp_path / "x.md"
    rc, _, err = run(["explain", str(EXAMPLES / name), "--out", str(out)], capsys)
    assert rc == 0 and "wrote" in err
    md = out.read_text()
    assert md.startswith("# ")
    for h in ("## Step 1", "### Forward pass", "### Loss", "### Backward pass", "### Update"):
        assert h in md
    assert md.count("```") % 2 == 0
    table_rows = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert table_rows and all(ln.endswith("|") for ln in table_rows)


class _Structure(HTMLParser):
    VOID = {"meta", "br", "img", "hr", "link", "input"}

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.seen: list[str] = []
        self.errors: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        self.seen.append(tag)
        self.attrs += attrs
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
        else:
            self.stack.pop()


@pytest.mark.parametrize("name", NAMES)
def test_html_is_one_self_contained_page(name, tmp_path, capsys):
    out = tmp_path / "x.html"
    rc, _, _ = run(["explain", str(EXAMPLES / name), "--out", str(out)], capsys)
    assert rc == 0
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>")
    p = _Structure()
    p.feed(page)
    assert not p.errors and not p.stack, (p.errors, p.stack)
    for tag in ("html", "head", "title", "style", "body", "h1", "table", "thead", "tbody"):
        assert tag in p.seen, tag
    assert p.seen.count("html") == 1
    assert "link" not in p.seen and p.seen.count("script") <= 1  # one inline script at most
    assert not any(k in ("src", "href") for k, _ in p.attrs)  # nothing to fetch
    assert "math" in p.seen  # the equations are MathML


@pytest.mark.parametrize("name", NAMES)
def test_latex_structure_and_compiles(name, tmp_path, capsys):
    out = tmp_path / "x.tex"
    rc, _, _ = run(["explain", str(EXAMPLES / name), "--out", str(out)], capsys)
    assert rc == 0
    tex = out.read_text()
    assert tex.startswith("\\documentclass") and tex.rstrip().endswith("\\end{document}")
    assert tex.count("\\begin{align*}") == tex.count("\\end{align*}") > 0
    if TEX is None:
        pytest.skip("no TeX engine (pdflatex/lualatex/xelatex) installed: compile check skipped")
    proc = subprocess.run(
        [TEX, "-interaction=nonstopmode", "-halt-on-error", "x.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (tmp_path / "x.pdf").stat().st_size > 1000


@pytest.mark.parametrize("name", NETWORKS)
def test_json_contract(name, capsys):
    rc, out, _ = run(["explain", str(EXAMPLES / name), "--format", "json"], capsys)
    assert rc == 0
    d = json.loads(out)
    assert isinstance(d["steps"], list) and d["steps"]
    for step in d["steps"]:
        assert isinstance(step["loss"], float)
        m = len(step["samples"])
        for L in step["layers"]:
            for key in (
                "net",
                "out",
                "delta",
                "weight_grad",
                "bias_grad",
                "weights_after",
                "biases_after",
            ):
                assert key in L, key
            for key in ("net", "out", "delta"):
                assert len(L[key]) == m  # one row per sample
            if L["type"] == "linear":
                n_out, n_in = len(L["weights_before"]), len(L["weights_before"][0])
                assert [len(r) for r in L["weight_grad"]] == [n_in] * n_out  # shaped as the spec
                assert len(L["bias_grad"]) == n_out == len(L["biases_after"])
                assert all(len(r) == n_out for r in L["delta"])


def test_json_conv_kernel_keeps_the_spec_shape(capsys):
    _, out, _ = run(["explain", str(EXAMPLES / "conv-pool.toml"), "--format", "json"], capsys)
    conv, pool = json.loads(out)["steps"][0]["layers"]
    assert len(conv["weight_grad"]) == 2 and len(conv["weight_grad"][0]) == 2  # a 2 x 2 kernel
    assert [len(conv["net"]), len(conv["net"][0]), len(conv["net"][0][0])] == [1, 2, 2]
    assert pool["weight_grad"] is None and "argmax_mask" in pool


def test_verify_prints_the_largest_discrepancy(capsys):
    rc, out, _ = run(["explain", str(EXAMPLES / "mattmazur-2-2-2.toml"), "--verify"], capsys)
    assert rc == 0
    line = out.strip().splitlines()[-1]
    assert line.startswith("gradient check: 16 gradients") and line.endswith("OK")
    rc, out, err = run(
        ["explain", str(EXAMPLES / "circuit-xy-z.toml"), "--verify", "-f", "json"], capsys
    )
    assert rc == 0 and "largest discrepancy" in err
    json.loads(out)  # the summary stays out of the JSON


def test_explain_an_expression_with_values(capsys):
    rc, out, _ = run(["explain", "(x + y) * z", "--values", "x=-2, y=5, z=-4"], capsys)
    assert rc == 0 and "df/dz = df/df * n1 = 1 * 3 = 3" in out


@pytest.mark.parametrize(
    "argv, match",
    [
        (["explain", "missing.toml"], "spec file 'missing.toml' does not exist"),
        (["explain", "(x + y) * z"], "variable 'x' has no value"),
        (["explain", "x * y", "--values", "x=1, y=two"], "--values: y must be a number"),
        (["graph", "x +", "--values", "x=1"], "cannot parse"),
    ],
)
def test_user_errors_exit_2_with_one_sentence(argv, match, capsys):
    rc, _, err = run(argv, capsys)
    assert rc == 2
    assert match in err and "Traceback" not in err


def test_malformed_spec_file_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'loss = "mse_half"\nlr = 0.1\n[[layers]]\nweights = [[1.0, 2.0]]\n'
        'biases = [0.0]\nactivation = "sigmod"\n[data]\ninputs = [[1.0, 2.0]]\n'
        "targets = [[1.0]]\n"
    )
    rc, _, err = run(["explain", str(bad)], capsys)
    assert rc == 2
    assert "layers[0].activation" in err and "expected one of sigmoid" in err


def test_cli_dispatcher_knows_the_commands(capsys):
    pytest.importorskip("deltaprop.training.commands", reason="training commands not there yet")
    from deltaprop.cli import main

    assert main(["explain", str(EXAMPLES / "circuit-xy-z.toml"), "-f", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "circuit"
    assert main(["graph", "x * y", "--values", "x=2,y=3", "--format", "dot"]) == 0
    assert capsys.readouterr().out.startswith("digraph")
