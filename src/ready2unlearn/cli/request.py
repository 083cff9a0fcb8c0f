"""``r2u request``: submit, list, show, serve and retry deletion requests recorded in a ledger."""

from __future__ import annotations

import argparse
import json
import signal
from collections.abc import Callable
from pathlib import Path

from rich.table import Table
from rich.text import Text

from ready2unlearn.cli.common import add_data_dir, add_ledger, add_quiet, console, current_user, esc
from ready2unlearn.cli.unlearn import add_unlearn_flags, overrides_from_flags
from ready2unlearn.engine.unlearn_config import UnlearnConfig, load_unlearn_config
from ready2unlearn.errors import R2UError
from ready2unlearn.ledger.process import ProcessConfig, process
from ready2unlearn.ledger.store import Ledger, LedgerError, RequestRejected
from ready2unlearn.ledger.watch import watch

EPILOG = """the ledger is bound to the first checkpoint it is given (request add/process --checkpoint DIR): that
model's dataset validates every request, and the model is the root of the lineage.
examples:
  r2u request add --ledger ledger.db --checkpoint runs/digits --kind class --target 3 --reason "GDPR art. 17"
  r2u request add --ledger ledger.db --kind samples --target 12,40,975 --reason "user 88 left"
  r2u request list --ledger ledger.db
  r2u request process --ledger ledger.db --checkpoint runs/digits --method ga --stop forget_acc:chance
  r2u request process --ledger ledger.db --resume          # restart requests whose worker died
  r2u request process --ledger ledger.db --watch           # a worker that keeps serving new requests
  r2u request retry --ledger ledger.db 4 5                  # failed requests back to pending
  r2u lineage ledger.db
  r2u certificate verify ledger-store/certificates/req-00001/certificate.json"""

STATUS_STYLE = {"pending": "yellow", "running": "cyan", "done": "green", "failed": "red", "rejected": "magenta"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers the ``request`` verb and its actions."""
    p = sub.add_parser(
        "request",
        help="deletion-request ledger: add / list / show / process / retry requests",
        description="A durable queue of deletion requests (SQLite) with model lineage and a certificate per "
        "served request.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    a = actions.add_parser("add", help="submit a request (validated against the model's dataset)")
    add_ledger(a)
    a.add_argument("--kind", required=True, choices=("class", "samples", "group"))
    a.add_argument("--target", required=True, help="class: 3 or 3,5 | samples: 12,40 or ids.txt | group: COL=VALUE")
    a.add_argument("--reason", required=True, help="why the deletion was asked for (kept in the record)")
    a.add_argument("--submitter", default=None, help="who asked (default: the current user)")
    a.add_argument("--checkpoint", metavar="DIR", help="base checkpoint: binds a new ledger to this model")
    add_data_dir(a)
    a.set_defaults(func=run_add)

    ls = actions.add_parser("list", help="list requests")
    add_ledger(ls)
    ls.add_argument("--status", choices=tuple(STATUS_STYLE), help="only requests with this status")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.set_defaults(func=run_list)

    sh = actions.add_parser("show", help="show one request with its events and certificate")
    add_ledger(sh)
    sh.add_argument("id", type=int)
    sh.add_argument("--json", action="store_true", help="print JSON instead of tables")
    sh.set_defaults(func=run_show)

    pr = actions.add_parser(
        "process",
        help="serve every pending request in order; each produces a model version and a certificate",
        description="Serve pending requests one after another, each from the model the previous one produced. "
        "Several workers may run at once: each request is claimed by exactly one of them (the others wait).",
    )
    add_ledger(pr)
    pr.add_argument("overrides", nargs="*", metavar="key.sub=value", help="unlearn config overrides")
    pr.add_argument("--checkpoint", metavar="DIR", help="base checkpoint (binds a new ledger; else must be a version)")
    add_unlearn_flags(pr)
    pr.add_argument("--batch", type=int, default=1, metavar="N",
                    help="serve up to N pending requests together in one unlearning run (default 1)")  # fmt: skip
    pr.add_argument("--resume", action="store_true", help="restart requests left running by a worker that died")
    pr.add_argument("--force", action="store_true", help="with --resume: also take requests whose worker looks alive")
    pr.add_argument("--no-wait", action="store_true", help="return at once when another worker is serving")
    pr.add_argument("--max", type=int, dest="max_claims", metavar="N", help="serve at most N claims, then stop")
    pr.add_argument("--reference", metavar="DIR", help="retrained model for the gap in the certificate")
    pr.add_argument("--retrain-reference", action="store_true",
                    help="retrain a gold model per request for the certificate (slow)")  # fmt: skip
    pr.add_argument("--no-relearn", action="store_true", help="skip the relearning attack in the certificate")
    pr.add_argument("--watch", action="store_true",
                    help="keep serving: wait for new requests and take over those of workers that died "
                    "(stop with Ctrl-C or SIGTERM)")  # fmt: skip
    pr.add_argument("--poll", type=float, default=1.0, metavar="S", help="with --watch: seconds between looks")
    add_data_dir(pr)
    add_quiet(pr)
    pr.set_defaults(func=run_process)

    rt = actions.add_parser(
        "retry",
        help="put failed requests back to pending (serve them with a working configuration)",
        description="A request fails when its unlearning run did not forget it (stop target not reached, "
        "divergence). Retry moves it back to pending; the next `process` serves it. The failure stays in the "
        "event log.",
    )
    add_ledger(rt)
    rt.add_argument("ids", nargs="+", type=int, metavar="ID", help="ids of failed requests")
    rt.set_defaults(func=run_retry)


def run_add(args: argparse.Namespace) -> int:
    """Runs ``r2u request add``."""
    if not args.checkpoint and not Path(args.ledger).exists():
        # Creating an empty ledger that no request can be validated against helps nobody.
        raise LedgerError(f"{args.ledger} does not exist; give --checkpoint DIR to create a ledger bound to that model")
    with Ledger(args.ledger) as ledger:
        if args.checkpoint:
            ledger.bind(args.checkpoint)
        split, forgotten = ledger.load_split(args.data_dir)
        submitter = args.submitter or current_user()
        row = ledger.add_request(args.kind, args.target, args.reason, submitter, split, forgotten)
    if row.status == "rejected":
        raise RequestRejected(row.id, row.note or "invalid")
    console.print(f"request #{row.id} pending: {esc(row.kind)}:{esc(row.target)}", soft_wrap=True)
    return 0


def run_list(args: argparse.Namespace) -> int:
    """Runs ``r2u request list``."""
    with Ledger(args.ledger, readonly=True) as ledger:
        rows = ledger.requests(args.status)
        served = ledger.served_hash()
    if args.json:
        console.print_json(json.dumps([r.to_dict() for r in rows]))
        return 0
    table = Table(title=esc(f"{args.ledger}: {len(rows)} request(s); served model {(served or '-')[:12]}"))
    for col in ("id", "status", "kind", "target", "submitter", "created", "model", "note"):
        table.add_column(col, overflow="fold")
    for r in rows:
        style = STATUS_STYLE.get(r.status, "")
        model = (r.child_hash or "")[:12] if r.status == "done" else (r.phase or "")
        # Stored rows hold user text (target, submitter, reason in the note): Text cells are never markup.
        cells = (r.kind, _clip(r.target), r.submitter, r.created[:16].replace("T", " "), model, _clip(r.note or "", 60))
        table.add_row(str(r.id), Text(r.status, style=style), *(Text(str(c)) for c in cells))
    console.print(table)
    return 0


def _clip(text: str, n: int = 30) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def run_show(args: argparse.Namespace) -> int:
    """Runs ``r2u request show``."""
    with Ledger(args.ledger, readonly=True) as ledger:
        row = ledger.request(args.id)
        events = ledger.events(args.id)
        cert = str(ledger.store / row.certificate) if row.certificate else None
    if args.json:
        console.print_json(json.dumps({"request": row.to_dict(), "certificate_path": cert, "events": events}))
        return 0
    table = Table(title=f"request #{row.id}", show_header=False)
    table.add_column("field")
    table.add_column("value", overflow="fold")
    for k, v in row.to_dict().items():
        if v not in (None, "", []) and k != "spec":
            table.add_row(k, Text(str(v)))
    if cert:
        table.add_row("certificate path", Text(cert))
    console.print(table)
    ev = Table(title="events")
    for col in ("time", "event", "detail"):
        ev.add_column(col, overflow="fold")
    for e in events:
        ev.add_row(Text(str(e["ts"])), Text(str(e["event"])), Text(json.dumps(e["detail"])))
    console.print(ev)
    return 0


def run_process(args: argparse.Namespace) -> int:
    """Runs ``r2u request process``."""
    cfg, preset = load_unlearn_config(args.config, overrides_from_flags(args) + list(args.overrides), args.method)
    pcfg = ProcessConfig(
        batch=args.batch, resume=args.resume, force=args.force, wait=not args.no_wait, max_claims=args.max_claims,
        relearn=not args.no_relearn, reference=args.reference, retrain_reference=args.retrain_reference,
        data_dir=args.data_dir, show_progress=not args.quiet,
    )  # fmt: skip
    console.print(f"[bold]process[/bold] {esc(args.ledger)}  method={esc(cfg.method.name)}  "
                  f"preset={esc(preset or 'none')}", soft_wrap=True)  # fmt: skip

    def say(message: str) -> None:
        console.print(f"  {esc(message)}", soft_wrap=True)

    if args.watch:
        return _watch(args, cfg, pcfg, say)
    summary = process(args.ledger, cfg, pcfg, checkpoint=args.checkpoint, log=say)
    console.print(
        f"served {len(summary.done)} request(s) into {len(summary.versions)} new version(s); "
        f"{len(summary.failed)} failed; {len(summary.resumed)} resumed"
        + (f"; removed {summary.orphans_removed} orphan folder(s)" if summary.orphans_removed else "")
    )
    if summary.failed:
        # Exit non-zero so scripts notice: these requests were not forgotten and have no certificate.
        which = "; ".join(f"#{i}: {why}" for i, why in summary.failed.items())
        ids = " ".join(str(i) for i in summary.failed)
        raise R2UError(f"{len(summary.failed)} request(s) failed, not certified ({which}); fix the configuration, "
                       f"then `r2u request retry --ledger {args.ledger} {ids}`")  # fmt: skip
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _watch(args: argparse.Namespace, cfg: UnlearnConfig, pcfg: ProcessConfig, say: Callable[[str], None]) -> int:
    """``process --watch``: serve until SIGTERM / SIGINT; a claim in progress is released, not lost."""
    if args.poll <= 0:
        raise R2UError(f"--poll must be positive, got {args.poll}")
    # SIGTERM (what a supervisor sends) becomes KeyboardInterrupt, so ``process`` puts the claim back to
    # pending before the worker exits; the default action would leave it running until someone resumes it.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        summary = watch(args.ledger, cfg, pcfg, checkpoint=args.checkpoint, poll=args.poll, log=say)
    except KeyboardInterrupt:
        console.print("stopped")
        return 0
    console.print(f"served {len(summary.done)} request(s); {len(summary.failed)} failed")
    return 0


def run_retry(args: argparse.Namespace) -> int:
    """Runs ``r2u request retry``."""
    with Ledger(args.ledger, create=False) as ledger:
        rows = ledger.retry(args.ids)
    console.print(f"back to pending: {esc(', '.join(r.describe() for r in rows))}", soft_wrap=True)
    return 0
