"""Who is calling: bearer tokens for the API, a session cookie for the dashboard, and what each role may do.

The API takes ``Authorization: Bearer <secret>`` only. The dashboard's login form puts the same secret in an
``HttpOnly``, ``SameSite=Strict`` cookie; the cookie is accepted by the dashboard's pages, which only read,
and never by the API, so a page on another site cannot make a browser write to the ledger (no CSRF).
Every answer to a missing, malformed, unknown or revoked token is the same 401, so a caller learns nothing
about which tokens exist.
"""

from __future__ import annotations

from fastapi import HTTPException, Request

from ready2unlearn.ledger.store import Ledger
from ready2unlearn.ledger.tokens import Token

COOKIE = "r2u_session"

#: What each action needs (a submitter also reads its own requests: see :func:`can_read`).
SUBMIT = ("submitter",)
READ_ALL = ("operator", "auditor")
PROCESS = ("operator",)
VERIFY = ("auditor", "operator")


def _unauthorized(why: str) -> HTTPException:
    return HTTPException(401, why, headers={"WWW-Authenticate": 'Bearer realm="ready2unlearn"'})


def bearer_secret(request: Request) -> str:
    """The secret of an ``Authorization: Bearer`` header.

    Raises:
        HTTPException: 401 when the header is missing or not a bearer token.
    """
    header = request.headers.get("authorization")
    if not header:
        raise _unauthorized("missing Authorization: Bearer <token> header")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise _unauthorized("Authorization header must be 'Bearer <token>'")
    return secret.strip()


def authenticate(ledger: Ledger, secret: str | None) -> Token:
    """The active token with this secret.

    Raises:
        HTTPException: 401 for a missing, unknown or revoked token (one message for all three).
    """
    token = ledger.tokens.authenticate(secret) if secret else None
    if token is None:
        raise _unauthorized("invalid or revoked token")
    return token


def require(token: Token, roles: tuple[str, ...], action: str) -> None:
    """Refuses ``token`` unless its role is one of ``roles``.

    Raises:
        HTTPException: 403 naming the action and the roles that may do it.
    """
    if token.role not in roles:
        raise HTTPException(403, f"a {token.role} token may not {action} (needs: {', '.join(roles)})")


def can_read(token: Token, owner: str | None) -> bool:
    """Whether ``token`` may read a request submitted by the token named ``owner``."""
    return token.role in READ_ALL or (token.role == "submitter" and owner == token.name)
