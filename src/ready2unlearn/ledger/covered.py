"""Covered ids, kept incrementally: which accepted request forgets each sample.

A new request is validated against the data minus what the accepted requests (pending, running, done)
already cover, resolved in queue order (:func:`~ready2unlearn.ledger.requests.covered_ids`). Replaying the
whole queue on every ``request add`` makes n submissions cost O(n²) resolutions, so the result lives in the
``covered`` table (schema version 3) with a watermark, ``covered_through``:

    every accepted request with id <= watermark is folded into ``covered``, and no other.

- accepting request r (always the highest id so far) resolves it once and moves the watermark to r;
- a request that *leaves* the accepted set (``fail``) or *re-enters* it (``retry``) changes how every later
  request resolves, so the rows from it on are dropped and the watermark goes back to just before it;
- before reading, :func:`catch_up` folds in the accepted requests above the watermark, in id order, exactly
  as a replay would (after a migration, a failure or a retry that is the whole tail; otherwise nothing).

The table therefore always equals the replay over the same requests; the replay itself stays available
(``Ledger.covered(..., replay=True)``) for verification and for the ``ledger_scale`` benchmark.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ready2unlearn.data.base import Split
from ready2unlearn.ledger.records import ACTIVE_STATUSES, RequestRow
from ready2unlearn.ledger.requests import covered_ids

_ACTIVE_SQL = ", ".join(f"'{s}'" for s in ACTIVE_STATUSES)


def watermark(conn: sqlite3.Connection) -> int:
    """The highest request id folded into the table (0: none)."""
    row = conn.execute("SELECT request_id FROM covered_through WHERE id = 1").fetchone()
    return int(row[0]) if row else 0


def load(conn: sqlite3.Connection) -> dict[int, int]:
    """Sample id → covering request id, as stored (call :func:`catch_up` first for an up-to-date map)."""
    return {int(s): int(r) for s, r in conn.execute("SELECT sample_id, request_id FROM covered")}


def unfolded(conn: sqlite3.Connection) -> list[RequestRow]:
    """Accepted requests above the watermark, in id order: what :func:`catch_up` still has to fold in."""
    rows = conn.execute(f"SELECT * FROM requests WHERE id > ? AND status IN ({_ACTIVE_SQL}) ORDER BY id",
                        (watermark(conn),))  # fmt: skip
    return [RequestRow.from_sql(r) for r in rows]


def catch_up(
    conn: sqlite3.Connection, split: Split, already_forgotten: Sequence[int], *, write: bool = True
) -> dict[int, int]:
    """The covered map, after folding in the accepted requests above the watermark.

    Args:
        conn: The ledger connection; with ``write``, inside a transaction.
        split: The ledger's dataset.
        already_forgotten: Ids the base checkpoint had forgotten before the ledger began.
        write: Store what was folded in (and move the watermark); ``False`` only computes it.

    Raises:
        RequestError: If a request no longer resolves after those before it (the same error the replay
            raises); nothing is stored then.
    """
    covered = load(conn)
    rows = unfolded(conn)
    if not rows:
        return covered
    # The same resolution as the replay, started from what the table already holds.
    new = covered_ids(split, [(r.id, r.request) for r in rows], [*already_forgotten, *covered])
    if write:
        conn.executemany("INSERT INTO covered (sample_id, request_id) VALUES (?, ?)", new.items())
        _set_watermark(conn, rows[-1].id)
    covered.update(new)
    return covered


def record(conn: sqlite3.Connection, request_id: int, ids: Sequence[int]) -> None:
    """Folds in a newly accepted request (the highest id, after :func:`catch_up`) with the ids it forgets."""
    conn.executemany("INSERT INTO covered (sample_id, request_id) VALUES (?, ?)", [(int(i), request_id) for i in ids])
    _set_watermark(conn, request_id)


def invalidate_from(conn: sqlite3.Connection, request_id: int) -> None:
    """Forgets what was folded in from ``request_id`` on: it left or re-entered the accepted set."""
    conn.execute("DELETE FROM covered WHERE request_id >= ?", (request_id,))
    _set_watermark(conn, min(watermark(conn), request_id - 1))


def _set_watermark(conn: sqlite3.Connection, request_id: int) -> None:
    conn.execute("UPDATE covered_through SET request_id = ? WHERE id = 1", (request_id,))
