"""``r2u serve``: the deletion ledger as an HTTP service (API + dashboard), with workers beside it."""

from __future__ import annotations

import argparse

from ready2unlearn.cli.common import add_data_dir, add_ledger, console, esc
from ready2unlearn.errors import R2UError

# The service needs the `serve` extra; without it every other verb must still work, and this one says why not.
try:
    import uvicorn

    from ready2unlearn.service.app import create_app
    from ready2unlearn.service.config import ServiceConfig
except ImportError as e:  # pragma: no cover - exercised only where the extra is not installed
    _MISSING: ImportError | None = e
else:
    _MISSING = None

EPILOG = """needs the `serve` extra (pip install 'ready2unlearn[serve]'). Create tokens first (r2u token add).
examples:
  r2u serve --ledger ledger.db                                   # API + dashboard on http://127.0.0.1:8000
  r2u serve --ledger ledger.db --workers 2 -- --method ga --stop forget_acc:chance
  curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8000/api/v1/requests"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers the ``serve`` verb."""
    p = sub.add_parser("serve", help="serve the ledger over HTTP: API with tokens, dashboard, workers",
                       description="An HTTP API (OpenAPI at /openapi.json) and a dashboard for one ledger.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    add_ledger(p)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: loopback only; put a TLS proxy in front before exposing it)",
    )
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        metavar="N",
        help="resident `request process --watch` workers (default 0: process on POST /api/v1/process)",
    )
    p.add_argument("--poll", type=float, default=1.0, metavar="S", help="seconds between a worker's looks")
    p.add_argument("--max-body", type=int, default=65536, metavar="BYTES", help="largest request body accepted")
    add_data_dir(p)
    p.add_argument(
        "worker_args",
        nargs=argparse.REMAINDER,
        metavar="-- PROCESS_ARGS",
        help="after --: arguments for every worker's `r2u request process` (method, stop, overrides)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Runs ``r2u serve``."""
    if _MISSING is not None:
        raise R2UError(f"r2u serve needs the serve extra: pip install 'ready2unlearn[serve]' ({_MISSING})")
    worker_args = [a for a in args.worker_args if a != "--"]
    if args.data_dir and "--data-dir" not in worker_args:
        worker_args += ["--data-dir", args.data_dir]
    cfg = ServiceConfig(
        ledger=args.ledger,
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        workers=args.workers,
        worker_args=worker_args,
        poll=args.poll,
        max_body_bytes=args.max_body,
    )
    app = create_app(cfg)
    console.print(f"serving {esc(args.ledger)} on http://{esc(args.host)}:{args.port}  (dashboard: /, API: /api/v1, "
                  f"schema: /openapi.json); {args.workers} worker(s)", soft_wrap=True)  # fmt: skip
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
