"""``r2u``: the ready2unlearn command line.

Errors caused by input (bad config, missing data, invalid request) print one line and exit with 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ready2unlearn import __version__
from ready2unlearn.cli import (
    bench,
    certificate,
    demo,
    evaluate,
    lineage,
    ls,
    ready_bench,
    request,
    train,
    unlearn,
    validate,
)
from ready2unlearn.cli.common import err_console
from ready2unlearn.errors import R2UError

VERBS = (train, unlearn, evaluate, bench, ready_bench, request, lineage, certificate, ls, validate, demo)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subcommand per verb."""
    parser = argparse.ArgumentParser(
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
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except R2UError as e:
        err_console.print(f"[red]error:[/red] {e}", soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
