"""``create_app``: the FastAPI application of ``r2u serve`` (API, dashboard, workers, limits)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ready2unlearn import __version__
from ready2unlearn.ledger.errors import LedgerError
from ready2unlearn.ledger.store import Ledger
from ready2unlearn.service import api, dashboard
from ready2unlearn.service.config import ServiceConfig
from ready2unlearn.service.limits import BodyLimit
from ready2unlearn.service.state import ServiceState
from ready2unlearn.service.workers import WorkerPool

DESCRIPTION = """Deletion requests as a service: submit, observe, verify. Every call needs
`Authorization: Bearer <token>` (create tokens with `r2u token add`). Roles: **submitter** adds requests and
reads its own; **operator** triggers processing, retries failed requests and reads all; **auditor** reads all
and verifies certificates. Every write is in the ledger's append-only event log with the token's name."""


def _one_line(exc: RequestValidationError) -> str:
    """A validation error as one line: ``body.target: Value error, target of a class request must be ...``."""
    parts = []
    for e in exc.errors():
        where = ".".join(str(x) for x in e.get("loc", ()))
        parts.append(f"{where}: {e.get('msg', 'invalid')}" if where else str(e.get("msg", "invalid")))
    return "; ".join(parts) or "invalid request"


def create_app(cfg: ServiceConfig) -> FastAPI:
    """The service for one ledger.

    The ledger is opened for writing once here, so an older ledger is migrated (to the schema with
    tokens) before the first call rather than by whichever call comes first.

    Raises:
        LedgerError: If the ledger does not exist or is not bound to a model yet.
    """
    with Ledger(cfg.ledger, create=False) as ledger:
        if not ledger.bound:
            raise LedgerError(f"{cfg.ledger} is not bound to a model yet: run `r2u request add --checkpoint DIR ...` "
                              "once to bind it")  # fmt: skip
        log_dir = Path(cfg.log_dir) if cfg.log_dir else ledger.store / "service"
    pool = WorkerPool(cfg.ledger, cfg.workers, cfg.worker_args, cfg.poll, log_dir)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool.start()
        try:
            yield
        finally:
            pool.stop()

    # No Swagger / ReDoc pages: they load their scripts from a CDN, which a locked-down host cannot reach.
    # The schema itself is served at /openapi.json for any client generator or viewer.
    app = FastAPI(title="ready2unlearn deletion service", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan, docs_url=None, redoc_url=None)  # fmt: skip
    app.state.r2u = ServiceState(cfg, pool)
    app.add_middleware(BodyLimit, max_bytes=cfg.max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _one_line(exc)}, status_code=422)

    @app.exception_handler(LedgerError)
    async def ledger_error(request: Request, exc: LedgerError) -> JSONResponse:
        # The ledger is busy (another process holds the write lock past the timeout) or unreadable: the
        # caller may try again; nothing was written (every write is one transaction).
        return JSONResponse({"detail": " ".join(str(exc).split())}, status_code=503)

    @app.get("/api/v1/health", tags=["service"])
    def health() -> dict[str, str]:
        """Liveness (no token needed): the server answers and the ledger opens."""
        with app.state.r2u.reader() as ledger:
            return {"status": "ok", "served_model": ledger.served_hash() or ""}

    app.add_exception_handler(dashboard.LoginRequired, dashboard.login_redirect)
    app.include_router(api.router)
    app.include_router(dashboard.router)
    return app
