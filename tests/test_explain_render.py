"""The notations, languages and formats of a worked example: matrix form, Chinese words,
MathML, the neuron picture in Markdown, LaTeX structure."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest
from explain_helpers import EXAMPLES, TEX, cli

from deltaprop.explain import Picture, explain_file, render
from deltaprop.explain.blocks import Equations, Matrix
from deltaprop.explain.document import document
from deltaprop.explain.mathml import chunks, to_mathml
from deltaprop.explain.words import Options

NAMES = sorted(p.name for p in EXAMPLES.glob("*.toml"))


def test_matrix_notation_shows_the_vectorised_form_with_the_engines_matrices():
    tr = explain_file(EXAMPLES / "minibatch-2-layer.toml")
    blocks = document(tr, Options(notation="matrix"))
    text = render(tr, "text", notation="matrix", width=200)
    for line in (
        "I1 = X W1 + b1",
        "O1 = sigmoid(I1)",
        "E = 1/(2m) sum (O2 - Y)^2",
        "D2 = (O2 - Y) * O2 * (1 - O2) / m",
        "D1 = (D2 W2^T) * O1 * (1 - O1)",
        "Delta W2 = O1^T D2",
        "W2 <- W2 - eta Delta W2",
    ):
        assert line in text, line
    mats: dict[str, np.ndarray] = {}
    for b in blocks:  # the first of each name: step 1
        if isinstance(b, Matrix):
            mats.setdefault(b.label.text, b.values)
    step = tr.steps[0]
    np.testing.assert_array_equal(mats["W1"], step.layers[0].weights.T)  # inputs x neurons
    np.testing.assert_array_equal(mats["D2"], step.layers[1].delta)
    np.testing.assert_array_equal(mats["Delta W1"], step.layers[0].weight_grad.T)
    o1, d2 = step.layers[0].out, step.layers[1].delta
    np.testing.assert_allclose(mats["Delta W2"], o1.T @ d2, rtol=1e-12)  # O1^T D2


def test_textbook_notation_is_the_default():
    tr = explain_file(EXAMPLES / "mattmazur-2-2-2.toml")
    assert render(tr, "text") == render(tr, "text", notation="textbook")
    assert "delta_o1 = (o1 - t1) * o1 * (1 - o1)" in render(tr, "text")


def test_chinese_headings_and_rules():
    tr = explain_file(EXAMPLES / "layernorm.toml")
    text = render(tr, "text", lang="zh", width=200)
    for words in ("前向传播", "反向传播", "第 1 步", "层归一化", "三部分之和就是闭式"):
        assert words in text, words
    assert "Forward pass" not in text
    html = render(tr, "html", lang="zh")
    assert '<html lang="zh">' in html and "逐步演示" in html
    latex = render(tr, "latex", lang="zh")
    assert "\\usepackage{ctex}" in latex


def test_options_are_checked():
    tr = explain_file(EXAMPLES / "mattmazur-2-2-2.toml")
    with pytest.raises(ValueError, match="notation"):
        render(tr, "text", notation="index")
    with pytest.raises(ValueError, match="lang"):
        render(tr, "text", lang="fr")


def test_mathml_of_the_notes_symbols():
    m = to_mathml(r"\frac{\partial E}{\partial w_{h_{1},o_{1}}} = \delta_{o_{1}} \cdot h_{1}")
    assert m.startswith("<math>") and m.endswith("</math>")
    assert "<mfrac><mrow><mi>∂</mi><mi>E</mi></mrow>" in m and "<mi>δ</mi>" in m
    assert "<mo>·</mo>" in m
    assert to_mathml(r"\eta \leftarrow \sqrt{x}") == (
        "<math><mi>η</mi><mo>←</mo><msqrt><mi>x</mi></msqrt></math>"
    )
    assert "<mn>−0.5</mn>" in to_mathml("(-0.5)")  # a negative number is one token
    assert "<mo>−</mo>" in to_mathml("a - b")  # a subtraction is an operator
    assert '<mi mathvariant="normal">net</mi>' in to_mathml(r"\mathrm{net}_{h_{1}}")


def test_long_formulas_are_cut_at_top_level_signs_only():
    tex = " + ".join(f"w_{{{k}}} \\cdot \\left(x_{{{k}}} + 1\\right)" for k in range(12))
    pieces = chunks("= " + tex, width=40)
    assert len(pieces) > 2 and all(p.startswith("<math>") for p in pieces)
    assert all(p[len("<math>") :].startswith(("<mo>+</mo>", "<mo>=</mo>")) for p in pieces)
    assert chunks(r"\frac{a + b + c + d}{e}", width=2) == [to_mathml(r"\frac{a + b + c + d}{e}")]


@pytest.mark.parametrize("name", NAMES)
def test_markdown_embeds_the_neuron_picture(name):
    tr = explain_file(EXAMPLES / name)
    md = render(tr, "markdown")
    if "circuit" in name or not Picture(tr, tr.steps[0]).drawable:  # no layer of neurons
        assert "<svg" not in md
        return
    assert md.count("<svg") == 2 * len(tr.steps)  # forward and backward view of each step
    svg = md[md.index("<svg") : md.index("</svg>") + 6]
    assert "data-ref=" in svg and "</svg>" in svg


@pytest.mark.parametrize("name", NAMES)
def test_latex_of_every_example_is_balanced(name):
    tex = render(explain_file(EXAMPLES / name), "latex")
    body = tex[tex.index("\\begin{document}") :]
    assert tex.count("\\begin{align*}") == tex.count("\\end{align*}")
    # braces balance once escaped braces are removed
    plain = re.sub(r"\\[{}]", "", body)
    assert plain.count("{") == plain.count("}")
    assert "<svg" not in tex  # the picture is for HTML and Markdown: LaTeX names it
    assert ("\\textit{The network" in tex) == (
        "<svg" in render(explain_file(EXAMPLES / name), "markdown")
    )


def test_every_derivation_line_with_an_answer_names_picture_elements():
    tr = explain_file(EXAMPLES / "dropout.toml")
    for b in document(tr):
        if isinstance(b, Equations):
            for e in b.lines:
                if e.answer is not None and e.answer.kind in ("forward", "deltas"):
                    assert e.refs or e.answer.name == "E", e.sides[0].text


@pytest.mark.parametrize(
    "name, argv",
    [
        ("minibatch-2-layer.toml", ["--notation", "matrix", "--out", "x.tex"]),
        ("batchnorm.toml", ["--notation", "matrix", "--out", "x.tex"]),
        (
            "layernorm.toml",
            ["--exercise", "--blanks", "forward,deltas,gradients,updates", "--out", "x.tex"],
        ),
    ],
)
def test_latex_of_other_notations_and_of_exercises_compiles(tmp_path, name, argv):
    r = cli("explain", str(EXAMPLES / name), *argv, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    files = sorted(tmp_path.glob("*.tex"))
    assert files
    if TEX is None:
        pytest.skip("no TeX engine (pdflatex/lualatex/xelatex) installed: compile check skipped")
    for f in files:
        proc = subprocess.run(
            [TEX, "-interaction=nonstopmode", "-halt-on-error", f.name],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stdout[-3000:]
