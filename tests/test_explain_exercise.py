"""Exercises: worksheets with blanks, answer keys, variants and grading (``--check``)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from explain_helpers import EXAMPLES, cli
from explain_helpers import MAZUR as MAZUR_PATH

from deltaprop.explain import explain_file, load_spec
from deltaprop.explain.exercise import (
    ExerciseError,
    blanks_of,
    grade,
    parse_blanks,
    read_answers,
    vary,
)
from deltaprop.explain.render import blocks_of
from deltaprop.explain.words import Options

MAZUR = str(MAZUR_PATH)


def fill(answers: Path, key: Path, out: Path, change: dict[str, str] | None = None) -> None:
    """Fill the answer file from the numbers of the key sheet (as a student would copy them)."""
    values = dict(re.findall(r"\((\d+)\) ([-0-9.e+]+)", key.read_text()))
    lines = []
    for line in answers.read_text().splitlines():
        m = re.match(r'(".*") = nan  # \((\d+)\)', line)
        if m:
            name = m.group(1).strip('"')
            value = (change or {}).get(name, values[m.group(2)])
            line = f"{m.group(1)} = {value}"
        lines.append(line)
    out.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("suffix", [".html", ".md", ".tex"])
def test_worksheet_key_and_answer_file(tmp_path, suffix):
    r = cli(
        "explain",
        MAZUR,
        "--exercise",
        "--out",
        f"sheet{suffix}",
        "--blanks",
        "deltas,gradients",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    sheet = (tmp_path / f"sheet{suffix}").read_text()
    key = (tmp_path / f"sheet-key{suffix}").read_text()
    answers = (tmp_path / "sheet-answers.toml").read_text()
    assert answers.count("= nan") == 16  # 4 deltas, 8 weight and 4 bias gradients
    assert "0.13849856" not in sheet and "0.1385" not in sheet  # delta_o1 is asked for
    assert "(1) 0.138499" in key  # ... and given in the key (6 significant digits)
    assert "0.3775" in sheet  # net_h1: forward values are not blanked here
    if suffix == ".tex":
        assert sheet.rstrip().endswith("\\end{document}")
        assert sheet.count("\\begin{align*}") == sheet.count("\\end{align*}")
    if suffix == ".html":
        assert "<math" in sheet and "(1) ______" in sheet


def test_key_grades_full_marks_and_a_wrong_number_shows_its_line(tmp_path):
    assert cli("explain", MAZUR, "--exercise", "--out", "s.md", cwd=tmp_path).returncode == 0
    fill(tmp_path / "s-answers.toml", tmp_path / "s-key.md", tmp_path / "right.toml")
    r = cli("explain", MAZUR, "--check", "right.toml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("16 of 16 answers correct (100%)")
    fill(
        tmp_path / "s-answers.toml",
        tmp_path / "s-key.md",
        tmp_path / "wrong.toml",
        {"delta_h1": "0.0095"},
    )
    r = cli("explain", MAZUR, "--check", "wrong.toml", cwd=tmp_path)
    assert r.returncode == 1
    assert "15 of 16 answers correct" in r.stdout
    assert "delta_h1: you wrote 0.0095, correct 0.0087713547" in r.stdout
    # the correct line of the derivation, with the numbers
    assert "delta_h1 = (delta_o1 * w_h1,o1 + delta_o2 * w_h1,o2) * h1 * (1 - h1) =" in r.stdout
    assert "= 0.008771" in r.stdout


def test_tolerance_in_significant_digits():
    tr = explain_file(MAZUR)
    blanks = blanks_of(blocks_of(tr, Options()), frozenset({"deltas"}))
    from deltaprop.explain.exercise import AnswerFile

    exact = {bl.key: bl.answer.value for bl in blanks}
    rounded = {k: float(f"{v:.3g}") for k, v in exact.items()}
    assert not grade(blanks, AnswerFile(0, frozenset({"deltas"}), rounded), 3).wrong
    two = {k: float(f"{v:.2g}") for k, v in exact.items()}
    assert grade(blanks, AnswerFile(0, frozenset({"deltas"}), two), 5).wrong
    missing = dict(exact)
    missing.pop(blanks[0].key)
    assert grade(blanks, AnswerFile(0, frozenset({"deltas"}), missing), 3).wrong == blanks[:1]


@pytest.mark.parametrize(
    "content, match",
    [
        (b"\xff\xfe not text", "not UTF-8"),
        (b"variant = \n", "not valid TOML"),
        (b"variant = -1\n", "variant must be an integer >= 0"),
        (b'blanks = ["everything"]\n', "unknown kind 'everything'"),
        (b'[step1]\n"delta_o1" = "0.1"\n', "must be a number"),
        (b'[answers]\n"delta_o1" = 0.1\n', "unknown key 'answers'"),
        (b'[step1]\n"delta_q7" = 0.1\n', "'delta_q7' is not a quantity of this exercise"),
    ],
)
def test_malformed_answer_file_is_one_sentence_exit_2(tmp_path, content, match):
    (tmp_path / "a.toml").write_bytes(content)
    r = cli("explain", MAZUR, "--check", "a.toml", cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert match in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_missing_answer_file_and_bad_options(tmp_path):
    r = cli("explain", MAZUR, "--check", "nope.toml", cwd=tmp_path)
    assert r.returncode == 2 and "does not exist" in r.stderr
    r = cli("explain", MAZUR, "--exercise", "--out", "s.txt", cwd=tmp_path)
    assert r.returncode == 2 and "must end in .html, .md or .tex" in r.stderr
    r = cli(
        "explain", MAZUR, "--exercise", "--out", "s.md", "--blanks", "deltas,nope", cwd=tmp_path
    )
    assert r.returncode == 2 and "unknown kind 'nope'" in r.stderr
    with pytest.raises(ExerciseError):
        parse_blanks("")


def test_variants_draw_other_weights_and_inputs_and_grade_against_them(tmp_path):
    spec = load_spec(MAZUR)
    v1, v1b, v2 = vary(spec, 1), vary(spec, 1), vary(spec, 2)
    w = lambda s: s.net.params[0]["weight"]  # noqa: E731
    assert np.array_equal(w(v1), w(v1b))  # reproducible
    assert not np.array_equal(w(v1), w(spec)) and not np.array_equal(w(v1), w(v2))
    assert np.array_equal(v1.targets, spec.targets)  # the targets keep their meaning
    assert np.all(np.round(w(v1), 2) == w(v1)) and np.all(v1.inputs >= 0)
    assert vary(spec, 0) is spec
    r = cli("explain", MAZUR, "--exercise", "--variant", "3", "--out", "v.md", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "variant = 3" in (tmp_path / "v-answers.toml").read_text()
    fill(tmp_path / "v-answers.toml", tmp_path / "v-key.md", tmp_path / "v.toml")
    r = cli("explain", MAZUR, "--check", "v.toml", cwd=tmp_path)
    assert r.returncode == 0 and "(100%)" in r.stdout
    r = cli("explain", MAZUR, "--check", "v.toml", "--variant", "2", cwd=tmp_path)
    assert r.returncode == 2 and "differs from the answer file's variant = 3" in r.stderr


def test_every_kind_of_blank_on_every_network_example():
    for path in sorted(EXAMPLES.glob("*.toml")):
        tr = explain_file(path)
        blanks = blanks_of(
            blocks_of(tr, Options()), frozenset({"forward", "deltas", "gradients", "updates"})
        )
        assert blanks, path.name
        assert len({bl.key for bl in blanks}) == len(blanks)
        if "circuit" not in path.name:
            kinds = {bl.answer.kind for bl in blanks}
            assert kinds == {"forward", "deltas", "gradients", "updates"}, (path.name, kinds)


def test_read_answers_accepts_nan_as_no_answer(tmp_path):
    (tmp_path / "a.toml").write_text('variant = 0\nblanks = ["deltas"]\n[step1]\n"x" = nan\n')
    a = read_answers(tmp_path / "a.toml")
    assert a.kinds == frozenset({"deltas"}) and np.isnan(a.answers[(1, "x")])


def test_circuit_worksheet_gives_no_answer_away(tmp_path):
    path = str(EXAMPLES / "circuit-xy-z.toml")
    assert cli("explain", path, "--exercise", "--out", "c.md", cwd=tmp_path).returncode == 0
    sheet = (tmp_path / "c.md").read_text()
    assert "df/dx = df/dq * 1 = (3) ______" in sheet
    assert "-4" not in sheet.split("## Backward pass")[1]  # no gradient value after the blanks
