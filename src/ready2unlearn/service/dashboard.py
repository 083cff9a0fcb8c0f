"""The dashboard: server-rendered pages for a privacy officer (Jinja2, autoescaped, no JavaScript).

Pages: the queue with statuses (``/``), a request's timeline with its certificate's verification, metrics
and plots (``/requests/{id}``), and the lineage as a chain (``/lineage``). They read only; changing the
ledger is the API's job (bearer tokens), so the session cookie cannot be used to write anything.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from ready2unlearn.ledger.certificate import CERT_HTML, verify_certificate
from ready2unlearn.ledger.errors import LedgerError
from ready2unlearn.ledger.tokens import Token
from ready2unlearn.service import auth, plots
from ready2unlearn.service.api import Reader, readable_certificate, readable_row
from ready2unlearn.service.state import state_of

router = APIRouter(include_in_schema=False)
RequestId = Annotated[int, PathParam(ge=1, le=2**63 - 1)]
_env = Environment(loader=PackageLoader("ready2unlearn.service", "templates"), autoescape=select_autoescape(),
                   trim_blocks=True, lstrip_blocks=True)  # fmt: skip
#: Verification metrics shown in the request page's table, in this order.
SHOWN = ("forget_acc", "forget_loss", "retain_acc", "test_acc", "test_retain_acc", "mia_auc", "mia_efficacy")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "–" if not math.isfinite(v) else f"{v:.4f}"
    return "–" if v is None else str(v)


_env.filters["fmt"] = _fmt


def _page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(
        _env.get_template(name).render(**context),
        status_code=status,
        headers={
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": "default-src 'self'; style-src 'unsafe-inline'",
        },
    )


class LoginRequired(Exception):
    """A page was asked for without a valid session: the app answers with a redirect to the login form."""


def session_token(request: Request, ledger: Reader) -> Token:
    """The token of the session cookie (dependency of every page); raises :class:`LoginRequired` otherwise."""
    secret = request.cookies.get(auth.COOKIE)
    token = ledger.tokens.authenticate(secret) if secret else None
    if token is None:
        raise LoginRequired
    return token


def login_redirect(request: Request, exc: Exception) -> RedirectResponse:
    """The answer to :class:`LoginRequired` (registered on the app)."""
    return RedirectResponse("/login", status_code=303)


Session = Annotated[Token, Depends(session_token)]


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> HTMLResponse:
    """The login form."""
    return _page("login.html", token=None, error=None)


@router.post("/login")
async def login(request: Request) -> Response:
    """Checks the token from the form and keeps it in an HttpOnly, SameSite=Strict session cookie."""
    form = parse_qs((await request.body()).decode("utf-8", errors="replace"))
    secret = (form.get("token") or [""])[0].strip()
    with state_of(request).reader() as ledger:
        token = ledger.tokens.authenticate(secret)
    if token is None:
        return _page("login.html", status=401, token=None, error="Invalid or revoked token.")
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(auth.COOKIE, secret, httponly=True, samesite="strict", path="/")
    return response


@router.post("/logout")
def logout() -> Response:
    """Forgets the session cookie."""
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(auth.COOKIE, path="/")
    return response


@router.get("/", response_class=HTMLResponse)
def queue(request: Request, token: Session, ledger: Reader) -> Response:
    """The queue: counts by status and every request (a submitter's own only)."""
    rows = [r for r in ledger.requests() if auth.can_read(token, r.token)]
    counts = ledger.db.status_counts()
    served = ledger.served_hash()
    if token.role == "submitter":
        counts = {s: sum(r.status == s for r in rows) for s in counts}
    workers = state_of(request).pool.status()
    return _page("index.html", token=token, rows=rows, counts=counts, served=served, workers=workers)


@router.get("/requests/{request_id}", response_class=HTMLResponse)
def request_page(request_id: RequestId, request: Request, token: Session, ledger: Reader) -> Response:
    """A request's record, timeline and certificate (verified now, with its metrics and plots)."""
    state = state_of(request)
    row = readable_row(ledger, token, request_id)
    events = ledger.events(request_id)
    cert_path = state.certificate_path(ledger, row) if row.certificate else None
    context: dict[str, Any] = {"token": token, "row": row, "events": events, "cert": None}
    if cert_path is not None:
        cert = json.loads(cert_path.read_text(encoding="utf-8"))
        ver = cert.get("verification") if isinstance(cert.get("verification"), dict) else {}
        metrics = ver.get("metrics") if isinstance(ver.get("metrics"), dict) else {}
        reference = (ver.get("reference") or {}).get("metrics") if isinstance(ver.get("reference"), dict) else None
        verification, note = None, "only auditors and operators verify certificates"
        if token.role in auth.VERIFY:
            try:
                verification = verify_certificate(cert_path, state.cfg.ledger)
            except LedgerError as e:
                note = f"could not verify: {e}"
        context.update(cert=cert, metrics={k: metrics[k] for k in SHOWN if k in metrics}, reference=reference,
                       verification=verification, verify_note=note,
                       plots=[s for s in (plots.metrics_svg(cert), plots.relearn_svg(cert)) if s])  # fmt: skip
    return _page("request.html", **context)


@router.get("/requests/{request_id}/certificate.json")
def certificate_json(request_id: RequestId, request: Request, token: Session, ledger: Reader) -> Response:
    """The certificate file, for a logged-in reader."""
    path = readable_certificate(state_of(request), ledger, token, request_id)
    return JSONResponse(json.loads(path.read_text(encoding="utf-8")))


@router.get("/requests/{request_id}/certificate.html", response_class=HTMLResponse)
def certificate_page(request_id: RequestId, request: Request, token: Session, ledger: Reader) -> Response:
    """The certificate's own HTML page."""
    path = readable_certificate(state_of(request), ledger, token, request_id)
    return HTMLResponse(path.with_name(CERT_HTML).read_text(encoding="utf-8"))


@router.get("/lineage", response_class=HTMLResponse)
def lineage_page(token: Session, ledger: Reader) -> Response:
    """The chain of model versions."""
    if token.role not in auth.READ_ALL:
        return _page(
            "lineage.html",
            status=403,
            token=token,
            chain=[],
            served=None,
            error=f"a {token.role} token may not read the lineage",
        )
    chain = ledger.lineage()
    served = ledger.served_hash()
    return _page("lineage.html", token=token, chain=chain, served=served)
