"""The JSON API, ``/api/v1``: submit, read, verify and process deletion requests.

Every route authenticates a bearer token first (:mod:`~ready2unlearn.service.auth`), then checks its role.
A submitter sees only the requests it submitted; another submitter's request answers 404, as a request
that does not exist would, so ids cannot be probed. Handlers are plain functions: FastAPI runs them in
its thread pool, each with its own SQLite connection, and the ledger's transactions serialise the writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from ready2unlearn.errors import RequestError
from ready2unlearn.ledger.certificate import CERT_HTML, verify_certificate
from ready2unlearn.ledger.errors import LedgerError, RequestRefused
from ready2unlearn.ledger.records import RequestRow
from ready2unlearn.ledger.schema import STATUSES
from ready2unlearn.ledger.store import Ledger
from ready2unlearn.ledger.tokens import Token
from ready2unlearn.service import auth, schemas
from ready2unlearn.service.state import ServiceState, state_of

router = APIRouter(prefix="/api/v1")

#: Request ids are SQLite integers; a larger number in a path is refused by validation, not by SQLite.
RequestId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The request's id.")]


def reader(request: Request) -> Iterator[Ledger]:
    """One read-only connection per call, shared by the token check and the handler (closed after it)."""
    with state_of(request).reader() as ledger:
        yield ledger


Reader = Annotated[Ledger, Depends(reader)]


def api_token(request: Request, ledger: Reader) -> Token:
    """The caller's token (``Authorization: Bearer``); 401 otherwise."""
    return auth.authenticate(ledger, auth.bearer_secret(request))


Caller = Annotated[Token, Depends(api_token)]
State = Annotated[ServiceState, Depends(state_of)]
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, invalid or revoked token."},
    403: {"description": "The token's role may not do this."},
    404: {"description": "No such request (or not yours)."},
}


def readable_row(ledger: Ledger, token: Token, request_id: int) -> RequestRow:
    """The request, if ``token`` may read it; 404 otherwise (missing and not-yours look the same)."""
    try:
        row = ledger.request(request_id)
    except LedgerError:
        row = None
    if row is None or not auth.can_read(token, row.token):
        raise HTTPException(404, f"no request #{request_id}")
    return row


def readable_certificate(state: ServiceState, ledger: Ledger, token: Token, request_id: int) -> FilePath:
    """The certificate file of a request ``token`` may read (404 when it may not, or there is none)."""
    return state.certificate_path(ledger, readable_row(ledger, token, request_id))


@router.get("/whoami", response_model=schemas.WhoAmI, responses=_ERRORS)
def whoami(token: Caller) -> schemas.WhoAmI:
    """The token this call was made with."""
    return schemas.WhoAmI(name=token.name, role=token.role)


@router.post("/requests", status_code=201, response_model=schemas.RequestOut,
             responses={**_ERRORS, 409: {"description": "The same deletion is already pending, running or done."},
                        422: {"description": "Invalid request; `detail` says why in one line."}})  # fmt: skip
def submit(body: schemas.SubmitRequest, token: Caller, state: State) -> schemas.RequestOut:
    """Submits a deletion request, validated as ``r2u request add`` validates it.

    Nothing is recorded when it is refused: the answer carries the one-line reason (409 for a duplicate).
    """
    auth.require(token, auth.SUBMIT, "submit requests")
    with state.writer() as ledger:
        split, forgotten = state.split(ledger)
        try:
            row = ledger.add_request(body.kind, body.target, body.reason, body.submitter or token.name, split,
                                     forgotten, token=token.name, record_rejected=False)  # fmt: skip
        except RequestRefused as e:
            raise HTTPException(409 if e.duplicate_of is not None else 422, e.reason) from None
        except RequestError as e:
            raise HTTPException(422, str(e)) from None
    return schemas.RequestOut.of(row)


@router.get("/requests", response_model=list[schemas.RequestOut], responses=_ERRORS)
def list_requests(token: Caller, ledger: Reader,
                  status: Annotated[str | None, Query(pattern="^(" + "|".join(STATUSES) + ")$")] = None,
                  ) -> list[schemas.RequestOut]:  # fmt: skip
    """Requests in submission order (a submitter's own only), optionally of one status."""
    rows = ledger.requests(status)
    return [schemas.RequestOut.of(r) for r in rows if auth.can_read(token, r.token)]


@router.get("/requests/{request_id}", response_model=schemas.RequestDetail, responses=_ERRORS)
def show_request(request_id: RequestId, token: Caller, ledger: Reader) -> schemas.RequestDetail:
    """One request with its event log."""
    row = readable_row(ledger, token, request_id)
    events = ledger.events(request_id)
    return schemas.RequestDetail(**schemas.RequestOut.of(row).model_dump(), events=events)


@router.get("/requests/{request_id}/certificate", responses=_ERRORS)
def certificate(request_id: RequestId, token: Caller, state: State, ledger: Reader) -> JSONResponse:
    """The request's ``certificate.json`` (sealed: verify it with ``.../certificate/verify`` or the CLI)."""
    path = readable_certificate(state, ledger, token, request_id)
    return JSONResponse(
        json.loads(path.read_text(encoding="utf-8")),
        headers={"Content-Disposition": f'attachment; filename="certificate-{request_id}.json"'},
    )


@router.get("/requests/{request_id}/certificate.html", response_class=HTMLResponse, responses=_ERRORS)
def certificate_html(request_id: RequestId, token: Caller, state: State, ledger: Reader) -> HTMLResponse:
    """The certificate as the self-contained HTML page issued with it."""
    path = readable_certificate(state, ledger, token, request_id)
    return HTMLResponse(path.with_name(CERT_HTML).read_text(encoding="utf-8"))


@router.get("/requests/{request_id}/certificate/verify", response_model=schemas.Verification, responses=_ERRORS)
def verify(request_id: RequestId, token: Caller, state: State, ledger: Reader) -> schemas.Verification:
    """Re-verifies the certificate: its seals, both model files, its outcome, and the ledger's records."""
    auth.require(token, auth.VERIFY, "verify certificates")
    path = readable_certificate(state, ledger, token, request_id)
    result = verify_certificate(path, state.cfg.ledger)
    return schemas.Verification(
        request_id=request_id,
        ok=result.ok,
        checks=[schemas.Check(name=c.name, ok=c.ok, detail=c.detail) for c in result.checks],
    )


@router.post("/requests/{request_id}/retry", response_model=schemas.RequestOut, responses=_ERRORS)
def retry(request_id: RequestId, token: Caller, state: State) -> schemas.RequestOut:
    """Puts a failed request back to pending (the next processing run serves it)."""
    auth.require(token, auth.PROCESS, "retry requests")
    with state.writer() as ledger:
        readable_row(ledger, token, request_id)
        try:
            (row,) = ledger.retry([request_id], token=token.name)
        except LedgerError as e:
            raise HTTPException(409, str(e)) from None
    return schemas.RequestOut.of(row)


@router.get("/lineage", response_model=list[schemas.Version], responses=_ERRORS)
def lineage(token: Caller, ledger: Reader) -> list[schemas.Version]:
    """The chain of model versions from the base model to the one served now."""
    auth.require(token, auth.READ_ALL, "read the lineage")
    chain = ledger.lineage()
    served = ledger.served_hash()
    return [schemas.Version(hash=v.hash, parent_hash=v.parent_hash, created_by=v.created_by, created=v.created,
                            served=v.hash == served) for v in chain]  # fmt: skip


@router.get("/events", response_model=list[schemas.Event], responses=_ERRORS)
def events(token: Caller, ledger: Reader,
           after: Annotated[int, Query(ge=0, le=2**63 - 1, description="Only events with a larger id.")] = 0,
           limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[schemas.Event]:  # fmt: skip
    """The append-only event log (every write, with the token that made it), oldest first."""
    auth.require(token, auth.READ_ALL, "read the event log")
    rows = ledger.db.events_after(after, limit)
    return [schemas.Event(**r) for r in rows]


@router.get("/process", response_model=schemas.ProcessState, responses=_ERRORS)
def process_state(token: Caller, state: State, ledger: Reader) -> schemas.ProcessState:
    """The queue by status, what is running (and on which worker), and this server's workers."""
    auth.require(token, auth.READ_ALL, "observe processing")
    counts = ledger.db.status_counts()
    running = ledger.requests("running")
    served = ledger.served_hash()
    return schemas.ProcessState(counts=counts,
                                running=[schemas.RequestOut.of(r) for r in running],
                                workers=state.pool.status(), served_model=served)  # fmt: skip


@router.post("/process", status_code=202, response_model=schemas.TriggerOut, responses=_ERRORS)
def trigger(token: Caller, state: State) -> schemas.TriggerOut:
    """Makes sure pending requests get served (starts a run unless workers already serve continuously)."""
    auth.require(token, auth.PROCESS, "trigger processing")
    started, detail = state.pool.trigger()
    with state.writer() as ledger:
        ledger.record("process_triggered", None, token=token.name, started=started)
    return schemas.TriggerOut(started=started, detail=detail, workers=state.pool.status())
