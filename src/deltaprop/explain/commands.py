"""The ``deltaprop explain`` and ``deltaprop graph`` subcommands.

``deltaprop explain SPEC.toml [--format text|markdown|latex|html|json] [--out FILE] [--verify]``
prints the worked example of a spec (or of a circuit expression with ``--values``).

``deltaprop graph EXPR_OR_SPEC [--format svg|png|dot] [--out FILE] [--values x=1,y=2]`` draws
the computational graph: a circuit expression such as ``"(x + y) * z"``, or the loss of a
network spec's first step. Rendering needs Graphviz's ``dot``; without it the DOT text is
still written and a message says how to install Graphviz (exit status 1).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from deltaprop.explain.render import FORMATS

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
    p = subparsers.add_parser(
        "explain",
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
    p.set_defaults(func=run_explain)

    g = subparsers.add_parser(
        "graph",
        help="draw the computational graph of an expression or a spec",
        description=(
            "Draw the computational graph of EXPR_OR_SPEC: one node per op with its output "
            "shape, value, gradient and local gradient rule. Needs Graphviz's dot for svg/png."
        ),
    )
    g.add_argument(
        "source",
        metavar="EXPR_OR_SPEC",
        help="a circuit expression such as '(x + y) * z' or a spec file (.toml)",
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
    g.set_defaults(func=run_graph)


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def _error(msg: str) -> Exception:
    from deltaprop.cli import CommandError

    return CommandError(msg)


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
            raise _error(f"--values: expected NAME=VALUE pairs separated by commas, got {part!r}")
        try:
            out[name] = float(value)
        except ValueError:
            raise _error(f"--values: {name} must be a number, got {value.strip()!r}") from None
    return out


def _looks_like_file(source: str) -> bool:
    return source.endswith(".toml") or Path(source).is_file()


def _load(source: str, values: str | None) -> Any:
    """The spec of a file, or a circuit spec of an expression."""
    from deltaprop.explain.spec import CircuitSpec, SpecError, load_spec

    if _looks_like_file(source):
        if values:
            raise _error("--values is for circuit expressions; a spec file sets its own values")
        try:
            return load_spec(source)
        except SpecError as e:
            raise _error(str(e)) from None
    return CircuitSpec(title=source, expression=source, values=parse_values(values))


def _run_spec(spec: Any, verify: bool) -> Any:
    from deltaprop.explain import explain_spec
    from deltaprop.explain.spec import SpecError

    try:
        return explain_spec(spec, verify=verify)
    except SpecError as e:
        raise _error(str(e)) from None


def _write(path: str, data: str | bytes) -> None:
    p = Path(path)
    if p.parent and not p.parent.exists():
        raise _error(f"--out: the folder {str(p.parent)!r} does not exist")
    try:
        if isinstance(data, bytes):
            p.write_bytes(data)
        else:
            p.write_text(data, encoding="utf-8")
    except OSError as e:
        raise _error(f"--out: cannot write {path!r} ({e.strerror})") from None


# ----------------------------------------------------------------------------------------------
# explain
# ----------------------------------------------------------------------------------------------


def run_explain(args: argparse.Namespace) -> int:
    """``deltaprop explain``: 0 on success, 1 when ``--verify`` finds a mismatch."""
    from deltaprop.explain.document import document, verification_summary
    from deltaprop.explain.render import print_text, render

    fmt = args.format
    if fmt is None:
        fmt = _EXPLAIN_SUFFIXES.get(Path(args.out).suffix.lower(), "text") if args.out else "text"
    if args.digits < 1 or args.digits > 17:
        raise _error(f"--digits: expected 1 to 17 significant digits, got {args.digits}")
    spec = _load(args.spec, args.values)
    tr = _run_spec(spec, args.verify)
    summary = verification_summary(tr) if args.verify else None
    if args.verify and summary is None:
        summary = _circuit_check(tr)
    if args.out:
        _write(args.out, render(tr, fmt, digits=args.digits))
        print(f"wrote {args.out} ({fmt})", file=sys.stderr)
        if summary:
            print(summary)
    else:
        if fmt == "text" and sys.stdout.isatty():
            print_text(document(tr, args.digits))
        else:
            sys.stdout.write(render(tr, fmt, digits=args.digits))
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


# ----------------------------------------------------------------------------------------------
# graph
# ----------------------------------------------------------------------------------------------


def graph_dot(
    source: str, values: str | None = None, gate_view: bool = True, rankdir: str = "LR"
) -> str:
    """DOT text of an expression's circuit or of a spec's loss (first step)."""
    from deltaprop import viz
    from deltaprop.explain.circuit import trace_circuit_spec
    from deltaprop.explain.spec import CircuitSpec, SpecError
    from deltaprop.explain.trace import spec_graph

    spec = _load(source, values)
    try:
        if isinstance(spec, CircuitSpec):
            tr = trace_circuit_spec(spec)
            names = {n.name: n.tensor for n in tr.nodes if n.op != "const"}
            return viz.graph(
                tr.output_tensor, names, gate_view=gate_view, rankdir=rankdir, title=spec.title
            )
        loss, names = spec_graph(spec)
    except SpecError as e:
        raise _error(str(e)) from None
    return viz.graph(loss, names, gate_view=gate_view, rankdir=rankdir, title=spec.title)


def run_graph(args: argparse.Namespace) -> int:
    """``deltaprop graph``: 0 on success, 1 when Graphviz is missing (the DOT text is written)."""
    from deltaprop import viz

    fmt = args.format
    if fmt is None:
        fmt = _GRAPH_SUFFIXES.get(Path(args.out).suffix.lower(), "svg") if args.out else "svg"
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
            print(
                f"deltaprop graph: {viz.INSTALL_HINT}\nwrote the DOT text to {dot_path}",
                file=sys.stderr,
            )
        else:
            sys.stdout.write(dot)
            print(
                f"deltaprop graph: {viz.INSTALL_HINT}\nwrote the DOT text to standard output",
                file=sys.stderr,
            )
        return 1
    try:
        data = viz.render_dot(dot, fmt)
    except RuntimeError as e:
        raise _error(str(e)) from None
    if out:
        _write(out, data)
        print(f"wrote {out} ({fmt})", file=sys.stderr)
    else:
        sys.stdout.write(data.decode("utf-8"))
    return 0
