"""The ledger's SQLite schema and its versioned migrations (``PRAGMA user_version``).

Each entry of :data:`MIGRATIONS` (SQL, then an optional Python step that fills new columns from old ones)
moves the database from version ``i`` to ``i + 1``; :func:`migrate`
applies the missing ones in one transaction, so an upgrade either completes or leaves the old schema
untouched. Never edit a shipped migration: append a new one, and a ledger written by any older release
still opens.

Version 1 (the first release): requests, model versions, the event log, key/value metadata.
Version 2: worker identity and heartbeat on requests (exactly-once claims and crash recovery), the
request's parent/child model hashes, batches and certificates; the served-model pointer as a single row;
the event log made append-only by triggers.
Version 3: the covered-ids table (sample id → the accepted request that forgets it) and its watermark, so
``request add`` reads what earlier requests cover instead of replaying all of them. Resolving ids needs the
dataset, which a migration does not have: the watermark starts at 0 and the first ``request add`` after the
upgrade folds in every accepted request once (see :mod:`~ready2unlearn.ledger.covered`).
Version 4: API tokens for ``r2u serve`` (name, role, the SHA-256 of the secret, never the secret; revocation
time) and the name of the token that submitted each request (a submitter reads only its own requests).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

from ready2unlearn.errors import R2UError, RequestError
from ready2unlearn.ledger.requests import dedup_key, parse_request

STATUSES = ("pending", "running", "done", "failed", "rejected")

_V1 = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE requests (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind      TEXT NOT NULL CHECK (kind IN ('class', 'samples', 'group')),
    target    TEXT NOT NULL,
    submitter TEXT NOT NULL,
    reason    TEXT NOT NULL,
    created   TEXT NOT NULL,
    status    TEXT NOT NULL DEFAULT 'pending'
              CHECK (status IN ('pending', 'running', 'done', 'failed', 'rejected')),
    note      TEXT
);
CREATE INDEX requests_status ON requests (status, id);
CREATE TABLE models (
    hash        TEXT PRIMARY KEY,
    parent_hash TEXT REFERENCES models (hash),
    created_by  INTEGER REFERENCES requests (id),
    path        TEXT NOT NULL,
    config      TEXT NOT NULL,
    metrics     TEXT NOT NULL,
    created     TEXT NOT NULL
);
CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    ts         TEXT NOT NULL,
    request_id INTEGER REFERENCES requests (id),
    event      TEXT NOT NULL,
    detail     TEXT NOT NULL DEFAULT '{}'
);
"""

_V2 = """
ALTER TABLE requests ADD COLUMN spec TEXT;
ALTER TABLE requests ADD COLUMN dedup_key TEXT;
ALTER TABLE requests ADD COLUMN worker_pid INTEGER;
ALTER TABLE requests ADD COLUMN worker_host TEXT;
ALTER TABLE requests ADD COLUMN worker_start TEXT;
ALTER TABLE requests ADD COLUMN claimed_at TEXT;
ALTER TABLE requests ADD COLUMN heartbeat TEXT;
ALTER TABLE requests ADD COLUMN phase TEXT;
ALTER TABLE requests ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN batch_id INTEGER;
ALTER TABLE requests ADD COLUMN parent_hash TEXT;
ALTER TABLE requests ADD COLUMN child_hash TEXT;
ALTER TABLE requests ADD COLUMN finished_at TEXT;
ALTER TABLE requests ADD COLUMN certificate TEXT;
CREATE INDEX requests_dedup ON requests (dedup_key, status);
CREATE TABLE served (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    hash    TEXT NOT NULL REFERENCES models (hash),
    updated TEXT NOT NULL
);
-- The event log is evidence: rows are appended, never changed or removed.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'the ledger event log is append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'the ledger event log is append-only'); END;
"""

_V3 = """
CREATE TABLE covered (
    sample_id  INTEGER PRIMARY KEY,
    request_id INTEGER NOT NULL REFERENCES requests (id)
);
CREATE INDEX covered_request ON covered (request_id);
-- Every accepted request with id <= request_id is folded into covered, and no other (0: none yet).
CREATE TABLE covered_through (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    request_id INTEGER NOT NULL
);
INSERT INTO covered_through (id, request_id) VALUES (1, 0);
"""

_V4 = """
CREATE TABLE tokens (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    name    TEXT NOT NULL UNIQUE,
    role    TEXT NOT NULL CHECK (role IN ('submitter', 'operator', 'auditor')),
    sha256  TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL,
    revoked TEXT
);
ALTER TABLE requests ADD COLUMN token TEXT;
CREATE INDEX requests_token ON requests (token, id);
"""


def _v2_backfill(conn: sqlite3.Connection) -> None:
    """Version 1 stored only kind and target text: derive the structured spec and duplicate key."""
    for rid, kind, target in conn.execute("SELECT id, kind, target FROM requests WHERE spec IS NULL").fetchall():
        try:
            req = parse_request(kind, target)
        except RequestError as e:
            # Unparseable old rows cannot be served; keep them on record as rejected, with the reason.
            conn.execute("UPDATE requests SET status = 'rejected', note = ? WHERE id = ? AND status = 'pending'",
                         (f"migration: {e}", rid))  # fmt: skip
            continue
        conn.execute("UPDATE requests SET spec = ?, dedup_key = ? WHERE id = ?",
                     (json.dumps(req.to_dict()), dedup_key(req), rid))  # fmt: skip


Migration = tuple[str, Callable[[sqlite3.Connection], None] | None]
MIGRATIONS: tuple[Migration, ...] = ((_V1, None), (_V2, _v2_backfill), (_V3, None), (_V4, None))
LATEST = len(MIGRATIONS)


def user_version(conn: sqlite3.Connection) -> int:
    """The schema version stored in the database (0 for a new, empty file)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, target: int = LATEST) -> int:
    """Brings the schema up to ``target``, applying the missing migrations in one transaction.

    Args:
        conn: A connection in autocommit mode (``isolation_level=None``).
        target: Version to reach (tests build older ledgers with a smaller one).

    Returns:
        The version before migrating.

    Raises:
        R2UError: If the database was written by a newer release.
    """
    # BEGIN IMMEDIATE takes the write lock first, so two processes opening an old ledger at once cannot
    # both apply the same migration: the second one waits, then sees the new version and does nothing.
    conn.execute("BEGIN IMMEDIATE")
    try:
        before = user_version(conn)
        if before > LATEST:
            raise R2UError(f"the ledger has schema version {before}, newer than this release knows ({LATEST}); "
                           "upgrade ready2unlearn")  # fmt: skip
        for version in range(before, target):
            script, backfill = MIGRATIONS[version]
            for statement in _statements(script):
                conn.execute(statement)
            if backfill is not None:
                backfill(conn)
            conn.execute(f"PRAGMA user_version = {version + 1}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return before


def _statements(script: str) -> list[str]:
    """Splits a migration script into statements (``executescript`` would commit our transaction)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
