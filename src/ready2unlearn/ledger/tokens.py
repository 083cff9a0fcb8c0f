"""API tokens of the deletion service (``r2u serve``): who may do what, stored hashed in the ledger.

A token is a random secret (``r2u_`` + 43 URL-safe characters, 256 bits) shown once when it is created
(``r2u token add``); the ledger keeps only its SHA-256. A slow password hash (bcrypt, scrypt) guards
guessable *passwords*; a 256-bit random secret cannot be guessed, so one SHA-256 is enough and lets a
request be authenticated by an indexed lookup. A token has a unique name (what the event log records for
every write it makes) and one role:

- ``submitter`` — adds deletion requests and reads the requests it submitted;
- ``operator`` — triggers and observes processing, retries failed requests, reads every request;
- ``auditor`` — reads every request, the lineage and the certificates, and verifies certificates.

Revoking a token keeps its row (the event log still names it) and makes it fail authentication at once.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from ready2unlearn.artifacts import now_iso
from ready2unlearn.ledger.db import Database
from ready2unlearn.ledger.errors import LedgerError

ROLES = ("submitter", "operator", "auditor")
PREFIX = "r2u_"
#: Token names appear in the event log and in URLs of the dashboard: a plain identifier.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")
#: The shape of a secret ``new_secret`` makes; anything else is refused before the database is asked.
SECRET_PATTERN = re.compile(r"r2u_[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class Token:
    """One API token (never its secret).

    Attributes:
        name: Unique name, recorded with every write the token makes.
        role: ``submitter``, ``operator`` or ``auditor``.
        created: When it was added (ISO 8601, UTC).
        revoked: When it was revoked, or ``None`` while it is valid.
    """

    name: str
    role: str
    created: str
    revoked: str | None = None

    @property
    def active(self) -> bool:
        """Whether the token still authenticates."""
        return self.revoked is None


def new_secret() -> str:
    """A fresh token secret: ``r2u_`` and 32 random bytes, URL-safe base64 (43 characters)."""
    return PREFIX + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """The SHA-256 (hex) under which a secret is stored."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def check_name(name: str) -> str:
    """``name`` if it is a valid token name.

    Raises:
        LedgerError: If it is not 1–64 characters of letters, digits and ``._@+-`` (starting with a letter
            or digit).
    """
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise LedgerError(f"invalid token name {name!r}: use 1-64 letters, digits and . _ @ + - "
                          "(starting with a letter or digit)")  # fmt: skip
    return name


class Tokens:
    """The ``tokens`` table of one ledger.

    Args:
        db: The ledger's open database.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, name: str, role: str, *, by: str = "cli") -> tuple[Token, str]:
        """Creates a token and returns it with its secret (shown once, never stored).

        Args:
            name: A unique name (see :func:`check_name`).
            role: One of :data:`ROLES`.
            by: Who created it (recorded in the event log).

        Raises:
            LedgerError: If the name is invalid or taken (revoked names stay taken: the log names them), or
                the role is unknown.
        """
        check_name(name)
        if role not in ROLES:
            raise LedgerError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
        secret = new_secret()
        with self.db.transaction() as c:
            if c.execute("SELECT 1 FROM tokens WHERE name = ?", (name,)).fetchone():
                raise LedgerError(f"a token named {name!r} already exists (names are never reused)")
            c.execute("INSERT INTO tokens (name, role, sha256, created) VALUES (?, ?, ?, ?)",
                      (name, role, digest(secret), now_iso()))  # fmt: skip
            self.db.event("token_added", None, token=name, role=role, by=by)
        return self.get(name), secret

    def get(self, name: str) -> Token:
        """A token by name.

        Raises:
            LedgerError: If there is none.
        """
        row = self.db.conn.execute("SELECT * FROM tokens WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise LedgerError(f"no token named {name!r} in {self.db.path}")
        return Token(row["name"], row["role"], row["created"], row["revoked"])

    def list(self) -> list[Token]:
        """Every token, oldest first (revoked ones included)."""
        rows = self.db.conn.execute("SELECT * FROM tokens ORDER BY id")
        return [Token(r["name"], r["role"], r["created"], r["revoked"]) for r in rows]

    def revoke(self, name: str, *, by: str = "cli") -> Token:
        """Revokes a token: it stops authenticating at once; its row and log entries stay.

        Raises:
            LedgerError: If there is no such token or it is already revoked.
        """
        with self.db.transaction() as c:
            token = self.get(name)
            if not token.active:
                raise LedgerError(f"token {name!r} was already revoked at {token.revoked}")
            c.execute("UPDATE tokens SET revoked = ? WHERE name = ?", (now_iso(), name))
            self.db.event("token_revoked", None, token=name, by=by)
        return self.get(name)

    def authenticate(self, secret: str) -> Token | None:
        """The active token whose secret this is, or ``None`` (malformed, unknown or revoked)."""
        if not isinstance(secret, str) or not SECRET_PATTERN.fullmatch(secret):
            return None
        row = self.db.conn.execute("SELECT * FROM tokens WHERE sha256 = ?", (digest(secret),)).fetchone()
        if row is None or row["revoked"] is not None:
            return None
        return Token(row["name"], row["role"], row["created"], row["revoked"])
