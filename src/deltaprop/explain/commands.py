"""The ``deltaprop explain`` and ``deltaprop graph`` subcommands.

``deltaprop explain SPEC.toml [--format text|markdown|latex|html|json] [--out FILE] [--verify]
[--notation textbook|matrix] [--lang en|zh]`` prints the worked example of a spec (or of a
circuit expression with ``--values``); ``--exercise`` writes a worksheet, its answer key and an
answer file, ``--check ANSWERS.toml`` grades a filled-in answer file.

``deltaprop graph EXPR_OR_SPEC [--view ops|neurons] [--format svg|png|dot] [--out FILE]`` draws
the computational graph (``ops``: one node per op; rendering needs Graphviz's ``dot``, without
it the DOT text is still written, exit status 1) or the network as neurons (``neurons``: SVG,
no Graphviz needed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from deltaprop.cliutils import add_command
from deltaprop.errors import CommandError
from deltaprop.explain.blocks import BLANK_KINDS
from deltaprop.explain.render import FORMATS
from deltaprop.explain.words import LANGS, NOTATIONS

_EXPLAIN_SUFFIXES = {
    ".txt": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".tex": "latex",
    ".html": "html",
    ".htm": "html",
    ".json": "json",
}
_GRAPH_FORMATS = ("svg", "png", "dot")
_GRAPH_SUFFIXES = {".svg": "svg", ".png": "png", ".dot": "dot", ".gv": "dot"}


def add_commands(subparsers: Any) -> None:
    """Register ``explain`` and ``graph`` on the ``deltaprop`` parser's subparsers."""
    p = add_command(
        subparsers,
        "explain",
        run_explain,
        help="print a step-by-step backpropagation worked example of a spec file",
        description=(
            "Run training steps of the small network of SPEC (a TOML file, see "
            "examples/explain/) on the deltaprop engine and print every number of the forward "
            "pass, the loss, the backward pass (each delta with its rule) and the update. SPEC may "
            "also be a circuit expression such as '(x + y) * z' with --values."
        ),
    )
    p.add_argument("spec", metavar="SPEC", help="spec file (.toml) or a circuit expression")
    p.add_argument(
        "--format",
        "-f",
        choices=FORMATS,
        default=None,
        help="output format (default: from the --out suffix, else text)",
    )
    p.add_argument("--out", "-o", metavar="FILE", help="write to FILE instead of the terminal")
    p.add_argument(
        "--verify",
        action="store_true",
        help="also check every gradient by central finite differences",
    )
    p.add_argument(
        "--values",
        metavar="NAME=VALUE,...",
        help="values of a circuit expression's variables, e.g. 'x=-2,y=5,z=-4'",
    )
    p.add_argument(
        "--digits",
        type=int,
        default=4,
        metavar="N",
        help="significant digits in formulas (tables show N + 4; default 4)",
    )
    p.add_argument(
        "--notation",
        choices=NOTATIONS,
        default="textbook",
        help="textbook: net_j, o_j, w_ij, delta_j (default); matrix: I = XW + b, ...",
    )
    p.add_argument(
        "--lang",
        choices=LANGS,
        default="en",
        help="language of the headings and rules (default en)",
    )
    p.add_argument(
        "--exercise",
        action="store_true",
        help="write a worksheet (--out sheet.html|.md|.tex), its answer key "
        "(sheet-key.*) and an answer file to fill in (sheet-answers.toml)",
    )
    p.add_argument(
        "--blanks",
        default="deltas,gradients",
        metavar="KINDS",
        help=f"what the worksheet asks for: comma-separated {', '.join(BLANK_KINDS)} "
        "(default deltas,gradients)",
    )
    p.add_argument(
        "--variant",
        type=int,
        default=None,
        metavar="N",
        help="variant N of the spec: other weights and inputs (0: the spec's own)",
    )
    p.add_argument(
        "--check",
        metavar="ANSWERS.toml",
        help="grade a filled-in answer file and show the correct line of each wrong one",
    )
    p.add_argument(
        "--tolerance",
        type=int,
        default=3,
        metavar="DIGITS",
        help="--check: significant digits an answer must match (default 3)",
    )

    g = add_command(
        subparsers,
        "graph",
        run_graph,
        help="draw the computational graph of an expression or a spec",
        description=(
            "Draw EXPR_OR_SPEC: --view ops (default) is the computational graph, one node per op "
            "with its output shape, value, gradient and local gradient rule (needs Graphviz's dot "
            "for svg/png); --view neurons draws a network spec as neurons and weighted "
            "connections, forward and backward (SVG, no Graphviz needed)."
        ),
    )
    g.add_argument(
        "source",
        metavar="EXPR_OR_SPEC",
        help="a circuit expression such as '(x + y) * z' or a spec file (.toml)",
    )
    g.add_argument(
        "--view",
        choices=("ops", "neurons"),
        default="ops",
        help="ops: the tensor-level graph (default); neurons: the network's neurons",
    )
    g.add_argument(
        "--format",
        "-f",
        choices=_GRAPH_FORMATS,
        default=None,
        help="svg, png or dot (default: from the --out suffix, else svg)",
    )
    g.add_argument(
        "--out",
        "-o",
        metavar="FILE",
        help="output file (default: standard output for svg and dot, graph.png for png)",
    )
    g.add_argument(
        "--values",
        metavar="NAME=VALUE,...",
        help="values of the expression's variables, e.g. 'x=-2,y=5,z=-4'",
    )
    g.add_argument("--no-gates", action="store_true", help="leave out the local gradient rules")
    g.add_argument(
        "--rankdir",
        choices=("LR", "TB", "RL", "BT"),
        default="LR",
        help="graph direction (default LR: inputs on the left)",
    )


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def parse_values(text: str | None) -> dict[str, float]:
    """``"x=-2, y=5"`` -> ``{"x": -2.0, "y": 5.0}``."""
    out: dict[str, float] = {}
    if not text:
        return out
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise CommandError(
                f"--values: expected NAME=VALUE pairs separated by commas, got {part!r}"
            )
        try:
            out[name] = float(value)
        except ValueError:
            raise CommandError(
                f"--values: {name} must be a number, got {value.strip()!r}"
            ) from None
        if out[name] != out[name] or abs(out[name]) == float("inf"):
            raise CommandError(f"--values: {name} must be a finite number, got {value.strip()!r}")
    return out


def _load(source: str, values: str | None, variant: int | None = None) -> Any:
    """The spec of a file, or a circuit spec of an expression (a variant of it with
    ``variant``)."""
    from deltaprop.explain.exercise import vary
    from deltaprop.explain.spec import CircuitSpec, load_spec

    path = Path(source)
    if path.is_dir():
        raise CommandError(f"SPEC {source!r} is a directory; give a spec file (.toml)")
    if source.endswith(".toml") or path.exists():
        if values:
            raise CommandError(
                "--values is for circuit expressions; a spec file sets its own values"
            )
        spec = load_spec(source)
    else:
        spec = CircuitSpec(title=source, expression=source, values=parse_values(values))
    if variant is not None:
        if variant < 0:
            raise CommandError(f"--variant: expected an integer >= 0, got {variant}")
        spec = vary(spec, variant)
    return spec


def _write(path: str, data: str | bytes) -> None:
    p = Path(path)
    if p.is_dir():
        raise CommandError(f"--out {path!r} is a directory; give a file name")
    if p.parent and not p.parent.exists():
        raise CommandError(f"--out: the folder {str(p.parent)!r} does not exist")
    try:
        if isinstance(data, bytes):
            p.write_bytes(data)
        else:
            p.write_text(data, encoding="utf-8")
    except OSError as e:
        raise CommandError(f"--out: cannot write {path!r} ({e.strerror})") from None


# ----------------------------------------------------------------------------------------------
# explain
# ----------------------------------------------------------------------------------------------


def run_explain(args: argparse.Namespace) -> int:
    """``deltaprop explain``: 0 on success, 1 when ``--verify`` finds a mismatch or
    ``--check`` finds a wrong answer."""
    from deltaprop.explain import explain_spec
    from deltaprop.explain.network_doc import verification_summary
    from deltaprop.explain.render import render

    fmt = args.format
    if fmt is None:
        fmt = _EXPLAIN_SUFFIXES.get(Path(args.out).suffix.lower(), "text") if args.out else "text"
    if args.digits < 1 or args.digits > 17:
        raise CommandError(f"--digits: expected 1 to 17 significant digits, got {args.digits}")
    if args.exercise and args.check:
        raise CommandError("--exercise writes a worksheet, --check grades one: give one of them")
    if args.check:
        return _run_check(args)
    spec = _load(args.spec, args.values, args.variant)
    if args.exercise:
        return _run_exercise(args, spec)
    tr = explain_spec(spec, verify=args.verify)
    options = {"digits": args.digits, "notation": args.notation, "lang": args.lang}
    summary = verification_summary(tr) if args.verify else None
    if args.verify and summary is None:
        summary = _circuit_check(tr)
    if args.out:
        _write(args.out, render(tr, fmt, **options))
        print(f"wrote {args.out} ({fmt})", file=sys.stderr)
        if summary:
            print(summary)
    else:
        if fmt == "text" and sys.stdout.isatty():
            from deltaprop.explain.render import blocks_of, print_text
            from deltaprop.explain.words import Options

            print_text(blocks_of(tr, Options(**options)))
        else:
            sys.stdout.write(render(tr, fmt, **options))
        if summary:  # keep machine-readable output clean: the summary goes to stderr there
            print(summary, file=sys.stdout if fmt == "text" else sys.stderr)
    if summary and "MISMATCH" in summary:
        return 1
    return 0


def _circuit_check(tr: Any) -> str | None:
    """--verify for a circuit: every input's gradient against central finite differences."""
    from deltaprop.explain.circuit import CircuitTrace, finite_differences

    if not isinstance(tr, CircuitTrace):
        return None
    checks = finite_differences(tr)
    if not checks:
        return None
    name, analytic, numeric = max(checks, key=lambda c: abs(c[1] - c[2]))
    err = abs(analytic - numeric)
    ok = all(abs(a - n) <= 1e-6 + 1e-5 * abs(n) for _, a, n in checks)
    return (
        f"gradient check: {len(checks)} gradients vs central finite differences, largest "
        f"discrepancy {err:.3g} (d{tr.output}/d{name}): {'OK' if ok else 'MISMATCH'}"
    )


def _exercise_parts(tr: Any, args: argparse.Namespace, kinds: frozenset[str]):
    from deltaprop.explain.exercise import blanks_of
    from deltaprop.explain.render import blocks_of
    from deltaprop.explain.words import Options

    opts = Options(digits=args.digits, notation="textbook", lang=args.lang)
    blocks = blocks_of(tr, opts)
    return blocks, blanks_of(blocks, kinds)


def _run_exercise(args: argparse.Namespace, spec: Any) -> int:
    from deltaprop.explain import explain_spec
    from deltaprop.explain.exercise import answer_file, given_blocks, parse_blanks, sheet
    from deltaprop.explain.render import render_blocks
    from deltaprop.explain.words import Words

    if not args.out:
        raise CommandError("--exercise needs --out SHEET (.html, .md or .tex)")
    out = Path(args.out)
    fmt = args.format or _EXPLAIN_SUFFIXES.get(out.suffix.lower())
    if fmt not in ("html", "markdown", "latex"):
        raise CommandError(f"--exercise: --out {args.out!r} must end in .html, .md or .tex")
    if args.notation != "textbook":
        raise CommandError("--exercise asks for single quantities: use --notation textbook")
    kinds = parse_blanks(args.blanks)
    tr = explain_spec(spec)
    blocks, blanks = _exercise_parts(tr, args, kinds)
    if not blanks:
        raise CommandError(f"--blanks {args.blanks}: this spec has no such quantities to ask for")
    given = given_blocks(tr, Words(args.lang)("given"))
    variant = args.variant or 0
    key_path = out.with_name(out.stem + "-key" + out.suffix)
    answers_path = out.with_name(out.stem + "-answers.toml")
    _write(str(out), render_blocks(sheet(blocks, kinds, given=given), fmt, lang=args.lang))
    _write(
        str(key_path),
        render_blocks(sheet(blocks, kinds, key=True, given=given), fmt, lang=args.lang),
    )
    _write(str(answers_path), answer_file(blanks, tr.title, args.spec, variant, kinds))
    print(
        f"wrote {out} (worksheet, {len(blanks)} blanks), {key_path} (answer key) and "
        f"{answers_path} (answer file to fill in)",
        file=sys.stderr,
    )
    return 0


def _run_check(args: argparse.Namespace) -> int:
    from deltaprop.explain import explain_spec
    from deltaprop.explain.exercise import grade, read_answers

    if not 1 <= args.tolerance <= 15:
        raise CommandError(
            f"--tolerance: expected 1 to 15 significant digits, got {args.tolerance}"
        )
    answers = read_answers(args.check)
    if args.variant is not None and args.variant != answers.variant:
        raise CommandError(
            f"--variant {args.variant} differs from the answer file's variant = {answers.variant}"
        )
    tr = explain_spec(_load(args.spec, args.values, answers.variant))
    _, blanks = _exercise_parts(tr, args, answers.kinds)
    result = grade(blanks, answers, args.tolerance)
    print(
        f"{len(result.correct)} of {len(result.blanks)} answers correct ({result.score:.0f}%), "
        f"to {args.tolerance} significant digits"
    )
    for bl in result.wrong:
        given = result.given.get(bl.key)
        wrote = "no answer" if given is None or given != given else f"you wrote {given:.8g}"
        step = (
            f"step {bl.answer.step}: " if len(tr.steps if hasattr(tr, "steps") else []) > 1 else ""
        )
        print(f"  ({bl.number}) {step}{bl.answer.name}: {wrote}, correct {bl.answer.value:.8g}")
        print(f"      {bl.line.as_text()}")
    return 0 if not result.wrong else 1


# ----------------------------------------------------------------------------------------------
# graph
# ----------------------------------------------------------------------------------------------


def graph_dot(
    source: str, values: str | None = None, gate_view: bool = True, rankdir: str = "LR"
) -> str:
    """DOT text of an expression's circuit or of a spec's loss (first step)."""
    from deltaprop import viz
    from deltaprop.explain.circuit import trace_circuit
    from deltaprop.explain.spec import CircuitSpec
    from deltaprop.explain.trace import spec_graph

    spec = _load(source, values)
    if isinstance(spec, CircuitSpec):
        tr = trace_circuit(spec.expression, spec.values, title=spec.title, dtype=spec.dtype)
        names = {n.name: n.tensor for n in tr.nodes if n.op != "const"}
        return viz.graph(
            tr.output_tensor, names, gate_view=gate_view, rankdir=rankdir, title=spec.title
        )
    loss, names = spec_graph(spec)
    return viz.graph(loss, names, gate_view=gate_view, rankdir=rankdir, title=spec.title)


def neurons_svg(source: str) -> str:
    """The neuron picture (forward above, backward below) of a network spec's first step."""
    from deltaprop.explain import explain_spec
    from deltaprop.explain.neurons import Picture
    from deltaprop.explain.spec import CircuitSpec

    spec = _load(source, None)
    if isinstance(spec, CircuitSpec):
        raise CommandError("--view neurons draws a network spec; a circuit is drawn by --view ops")
    tr = explain_spec(spec)
    picture = Picture(tr, tr.steps[0])
    if not picture.drawable:
        raise CommandError(
            f"--view neurons: {source!r} has a layer of more than 12 neurons; use --view ops"
        )
    return picture.svg("both")


def run_graph(args: argparse.Namespace) -> int:
    """``deltaprop graph``: 0 on success, 1 when Graphviz is missing (the DOT text is written)."""
    from deltaprop import viz

    fmt = args.format
    if fmt is None:
        fmt = _GRAPH_SUFFIXES.get(Path(args.out).suffix.lower(), "svg") if args.out else "svg"
    if args.view == "neurons":
        if fmt != "svg":
            raise CommandError("--view neurons writes SVG; use --format svg (or --out FILE.svg)")
        if args.values:
            raise CommandError("--values is for circuit expressions; --view neurons draws a spec")
        svg = neurons_svg(args.source)
        if args.out:
            _write(args.out, svg)
            print(f"wrote {args.out} (svg, neurons)", file=sys.stderr)
        else:
            sys.stdout.write(svg + "\n")
        return 0
    dot = graph_dot(args.source, args.values, gate_view=not args.no_gates, rankdir=args.rankdir)
    out = args.out
    if fmt == "png" and out is None:
        out = "graph.png"
    if fmt == "dot":
        if out:
            _write(out, dot)
            print(f"wrote {out} (dot)", file=sys.stderr)
        else:
            sys.stdout.write(dot)
        return 0
    if not viz.dot_available():
        if out:
            dot_path = str(Path(out).with_suffix(".dot"))
            _write(dot_path, dot)
            where = dot_path
        else:
            sys.stdout.write(dot)
            where = "standard output"
        print(
            f"deltaprop graph: {viz.INSTALL_HINT}\nwrote the DOT text to {where}", file=sys.stderr
        )
        return 1
    try:
        data = viz.render_dot(dot, fmt)
    except RuntimeError as e:
        raise CommandError(str(e)) from None
    if out:
        _write(out, data)
        print(f"wrote {out} ({fmt})", file=sys.stderr)
    else:
        sys.stdout.write(data.decode("utf-8"))
    return 0


__all__ = ["add_commands", "parse_values", "graph_dot", "neurons_svg"]
