"""``r2u certificate verify``: re-check a deletion certificate against the files it names and its ledger."""

from __future__ import annotations

import argparse

from rich.table import Table

from ready2unlearn.cli.common import console, esc
from ready2unlearn.ledger.certificate import verify_certificate


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers the ``certificate`` verb."""
    p = sub.add_parser(
        "certificate",
        help="verify a deletion certificate (its own sha256 and the model files it names)",
        description="Certificates are written by `r2u request process`, one per served request.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    v = actions.add_parser(
        "verify",
        help="re-compute the certificate's sha256 and re-hash the parent and child model files",
        description="Exit status 0 when every check passes, 1 when one fails, 2 when the file is not a certificate "
        "(or --ledger is not a ledger). The self-hash only catches edits that did not recompute it; set "
        "R2U_CERT_KEY (the key the certificates were issued with) to check their HMAC, and give --ledger to "
        "cross-check the request, the event log and the lineage in the ledger that issued it.",
    )
    v.add_argument("file", metavar="FILE", help="certificate.json (or its folder, or certificate.html)")
    v.add_argument("--ledger", "-l", metavar="DB", help="the issuing ledger: cross-check request, events and lineage")
    v.set_defaults(func=run_verify)


def run_verify(args: argparse.Namespace) -> int:
    """Runs ``r2u certificate verify``."""
    result = verify_certificate(args.file, args.ledger)
    table = Table(title=esc(result.path))
    for col in ("check", "result", "detail"):
        table.add_column(col, overflow="fold")
    for c in result.checks:
        table.add_row(esc(c.name), "[green]ok[/green]" if c.ok else "[red]FAILED[/red]", esc(c.detail))
    console.print(table)
    console.print("[green]certificate verified[/green]" if result.ok else "[red]certificate verification FAILED[/red]")
    return 0 if result.ok else 1
