"""Pieces shared by the subcommand modules of the ``deltaprop`` command line.

``deltaprop.training.commands``, ``deltaprop.onnx.commands`` and ``deltaprop.explain.commands``
each register their subcommands; what they have in common lives here, so that an option means
the same in every command:

* :func:`add_command` -- a subcommand with its one-line help, its description and the function
  that runs it;
* :func:`add_run_arguments` -- ``--run DIR`` and ``--checkpoint`` of the commands that read a
  trained run (``evaluate``, ``predict``, ``export``);
* :func:`sentence` -- an error's message as the one sentence printed after
  ``deltaprop COMMAND: error:``;
* :class:`Parser` -- argparse's parser, but a usage error is one line (the sentence and where
  the help is), not the whole usage text.

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="deltaprop")
>>> sub = parser.add_subparsers(dest="command")
>>> p = add_command(sub, "show", lambda args: 0, "show a run", "Show a trained run.")
>>> add_run_arguments(p)
>>> args = parser.parse_args(["show", "--run", "runs/xor"])
>>> args.run, args.checkpoint, args.func(args)
('runs/xor', 'last', 0)
>>> sentence(ValueError("the file is empty.\\n"))
'the file is empty'
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

__all__ = ["Parser", "add_command", "add_run_arguments", "sentence"]


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line on stderr, exit status 2:
    ``deltaprop train: error: argument --seed: ... (see deltaprop train --help)``.
    Subcommand parsers made by ``add_subparsers`` are of this class too.

    >>> import contextlib, io
    >>> p = Parser(prog="deltaprop demo")
    >>> _ = p.add_argument("--n", type=int)
    >>> err = io.StringIO()
    >>> with contextlib.redirect_stderr(err):
    ...     try:
    ...         p.parse_args(["--n", "x"])
    ...     except SystemExit as e:
    ...         print(e.code)
    2
    >>> print(err.getvalue(), end="")
    deltaprop demo: error: argument --n: invalid int value: 'x' (see deltaprop demo --help)
    """

    def error(self, message: str) -> Any:  # argparse's hook for usage errors
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_command(
    subparsers: Any,
    name: str,
    func: Callable[[argparse.Namespace], int],
    help: str,
    description: str,
    **options: Any,
) -> argparse.ArgumentParser:
    """Register subcommand ``name`` (``func(args)`` runs it and returns the exit status) and
    return its parser, to which the caller adds the options. ``options`` go to
    ``add_parser`` (``epilog``, ``formatter_class``)."""
    parser = subparsers.add_parser(name, help=help, description=description, **options)
    parser.set_defaults(func=func)
    return parser


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """``--run DIR`` (required: a directory written by ``deltaprop train --out``) and
    ``--checkpoint`` (``last``, the default; ``previous``; ``best``; or a checkpoint file)."""
    parser.add_argument("--run", required=True, help="the run directory (deltaprop train --out)")
    parser.add_argument(
        "--checkpoint",
        default="last",
        help="last (default), previous (the one before last), best, or a checkpoint file",
    )


def sentence(error: BaseException) -> str:
    """The error's message without surrounding white space and final period (a dataset error
    may list missing files on further lines)."""
    return str(error).strip().rstrip(".")
