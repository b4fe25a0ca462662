"""The ``deltaprop`` command line: ``train``, ``evaluate``, ``predict``, ``explain``, ``graph``.

Each feature package registers its own subcommands (``deltaprop.training.commands``,
``deltaprop.onnx.commands`` and ``deltaprop.explain.commands``, with the pieces they share in
``deltaprop.cliutils``); this module only dispatches. A user error (bad argument, missing
file, a model that does not fit the data) raises a :class:`~deltaprop.errors.InputError` (such
as :class:`CommandError`), printed as one sentence with exit status 2 and no traceback. Any other
exception is a bug: it keeps its traceback (exit status 1).

Exit statuses: 0 success; 1 an unexpected error (a bug, with its traceback); 2 bad input (a
usage error from argparse, or an ``InputError``); 3 training stopped because the loss or a
gradient became NaN or infinite (the last good checkpoint is kept); 130 interrupted by Ctrl-C
(``train`` saves a checkpoint first).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from deltaprop.cliutils import Parser, sentence
from deltaprop.errors import CommandError, InputError

__all__ = ["CommandError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from deltaprop import __version__
    from deltaprop.explain.commands import add_commands as add_explain
    from deltaprop.onnx.commands import add_commands as add_export
    from deltaprop.training.commands import add_commands as add_training

    parser = Parser(
        prog="deltaprop",
        description="Train, evaluate and explain neural networks with deltaprop.",
    )
    parser.add_argument("--version", action="version", version=f"deltaprop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    add_training(sub)
    add_explain(sub)
    add_export(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]  # (train --nproc reruns it)
    try:
        return int(args.func(args) or 0)
    except InputError as e:  # CommandError and every other user-input error: one sentence
        print(f"deltaprop {args.command}: error: {sentence(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"deltaprop {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
