"""``r2u lineage``: the chain of model versions in a ledger and the requests between them."""

from __future__ import annotations

import argparse
import json

from rich.table import Table

from ready2unlearn.cli.common import console, esc
from ready2unlearn.ledger.store import Ledger


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers the ``lineage`` verb."""
    p = sub.add_parser(
        "lineage",
        help="the chain of model versions in a ledger and the requests that produced each",
        description="Print the chain of model versions from the base model to HASH (default: the served model), "
        "with the requests served between consecutive versions.",
    )
    p.add_argument("ledger", metavar="DB", help="ledger database file")
    p.add_argument("hash", nargs="?", metavar="HASH", help="a version's sha256 or a unique prefix (hex digits)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def lineage_rows(ledger: Ledger, digest: str | None = None) -> list[dict]:
    """One dict per version of the chain: hash, parent, the requests it served, UA/TA, created."""
    served = ledger.served_hash()
    done = ledger.requests("done")
    out = []
    for v in ledger.lineage(digest):
        reqs = [r for r in done if r.child_hash == v.hash]
        ver = v.metrics.get("verification") or {}
        out.append({
            "hash": v.hash, "parent": v.parent_hash, "created": v.created, "served": v.hash == served,
            "requests": [{"id": r.id, "kind": r.kind, "target": r.target} for r in reqs],
            "method": ((v.config.get("unlearn") or {}).get("method") or {}).get("name"),
            "forget_acc": ver.get("forget_acc"), "test_acc": ver.get("test_acc", v.metrics.get("test_accuracy")),
        })  # fmt: skip
    return out


def run(args: argparse.Namespace) -> int:
    """Runs ``r2u lineage``."""
    with Ledger(args.ledger, readonly=True) as ledger:
        rows = lineage_rows(ledger, args.hash)
    if args.json:
        console.print_json(json.dumps(rows))
        return 0
    end = "served" if rows[-1]["served"] else "head"
    table = Table(title=esc(f"{args.ledger}: {len(rows)} version(s), base → {end}"))
    for col in ("#", "model", "parent", "requests served", "method", "UA", "TA", "created"):
        table.add_column(col, overflow="fold")
    for i, r in enumerate(rows):
        reqs = esc(", ".join(f"#{q['id']} {q['kind']}:{q['target'][:20]}" for q in r["requests"]) or "(base)")
        mark = " [green](served)[/green]" if r["served"] else ""
        table.add_row(str(i), esc(r["hash"][:12]) + mark, esc((r["parent"] or "-")[:12]), reqs, esc(r["method"] or "-"),
                      _f(r["forget_acc"]), _f(r["test_acc"]), r["created"][:16].replace("T", " "))  # fmt: skip
    console.print(table)
    return 0


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"
