"""``r2u token``: API tokens of the deletion service (``r2u serve``), stored hashed in the ledger."""

from __future__ import annotations

import argparse
import json

from rich.table import Table
from rich.text import Text

from ready2unlearn.cli.common import add_ledger, console, current_user, esc
from ready2unlearn.ledger.store import Ledger
from ready2unlearn.ledger.tokens import ROLES

EPILOG = """roles: submitter (adds requests, reads its own), operator (processes, retries, reads all), auditor (reads
all, verifies certificates). The secret is printed once; the ledger keeps only its SHA-256.
examples:
  r2u token add --ledger ledger.db portal --role submitter
  r2u token add --ledger ledger.db dpo --role auditor
  r2u token list --ledger ledger.db
  r2u token revoke --ledger ledger.db portal"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers the ``token`` verb and its actions."""
    p = sub.add_parser("token", help="API tokens of `r2u serve`: add / list / revoke", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = actions.add_parser("add", help="create a token and print its secret (once)")
    add_ledger(a)
    a.add_argument("name", help="unique name, recorded with every write the token makes")
    a.add_argument("--role", required=True, choices=ROLES)
    a.add_argument("--json", action="store_true", help="print JSON (name, role, secret)")
    a.set_defaults(func=run_add)
    ls = actions.add_parser("list", help="list tokens (never their secrets)")
    add_ledger(ls)
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.set_defaults(func=run_list)
    rv = actions.add_parser("revoke", help="revoke a token: it stops working at once")
    add_ledger(rv)
    rv.add_argument("name")
    rv.set_defaults(func=run_revoke)


def run_add(args: argparse.Namespace) -> int:
    """Runs ``r2u token add``."""
    with Ledger(args.ledger, create=False) as ledger:
        token, secret = ledger.tokens.add(args.name, args.role, by=f"cli:{current_user()}")
    if args.json:
        console.print_json(json.dumps({"name": token.name, "role": token.role, "secret": secret}))
        return 0
    console.print(f"token {esc(token.name)} ({token.role}) created; its secret, shown only now:")
    console.print(secret, soft_wrap=True, markup=False, highlight=False)
    return 0


def run_list(args: argparse.Namespace) -> int:
    """Runs ``r2u token list``."""
    with Ledger(args.ledger, readonly=True) as ledger:
        tokens = ledger.tokens.list()
    if args.json:
        console.print_json(json.dumps([t.__dict__ for t in tokens]))
        return 0
    table = Table(title=esc(f"{args.ledger}: {len(tokens)} token(s)"))
    for col in ("name", "role", "created", "revoked"):
        table.add_column(col)
    for t in tokens:
        table.add_row(Text(t.name), t.role, t.created[:19].replace("T", " "), Text(t.revoked or "-"))
    console.print(table)
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    """Runs ``r2u token revoke``."""
    with Ledger(args.ledger, create=False) as ledger:
        token = ledger.tokens.revoke(args.name, by=f"cli:{current_user()}")
    console.print(f"token {esc(token.name)} revoked at {token.revoked}")
    return 0
