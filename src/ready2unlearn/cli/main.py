"""``r2u``: the ready2unlearn command line.

Errors caused by input (bad config, missing data, invalid request, a malformed command line) print one
line and exit with 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from rich.text import Text

from ready2unlearn import __version__
from ready2unlearn.cli import (
    bench,
    certificate,
    demo,
    evaluate,
    lineage,
    ls,
    plan,
    ready_bench,
    ready_tune,
    request,
    serve,
    token,
    train,
    unlearn,
    validate,
)
from ready2unlearn.cli.common import err_console
from ready2unlearn.errors import ConfigError, R2UError

VERBS = (
    train,
    unlearn,
    evaluate,
    bench,
    ready_bench,
    ready_tune,
    plan,
    request,
    token,
    serve,
    lineage,
    certificate,
    ls,
    validate,
    demo,
)


class UsageError(ConfigError):
    """A malformed command line (unknown flag, missing argument, a value of the wrong type)."""


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one-line :class:`UsageError` s instead of usage + exit.

    argparse would print the whole usage block and a second line; every other input error is one line,
    so the command line's are too (``--help`` still prints the usage). Sub-parsers inherit the class.
    """

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subcommand per verb."""
    parser = _Parser(
        prog="r2u",
        description="ready2unlearn: train models that are ready to forget, serve deletion requests, prove it.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb in VERBS:
        verb.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``r2u`` console script; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args))
    except R2UError as e:
        # The message quotes user text (paths, request specs, ledger rows): a Text is never parsed as rich
        # markup or emoji codes, and folding newlines keeps the promise of one line.
        message = " ".join(str(e).split("\n"))
        err_console.print(Text.assemble(("error:", "red"), " ", message), soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
