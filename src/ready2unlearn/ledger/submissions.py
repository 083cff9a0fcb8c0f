"""Submitting requests: parse, check for duplicates, validate against the data left, record.

A request is validated when it is submitted, against the bound dataset minus what the accepted requests
(pending, running, done) already cover, so an accepted request can be served later in queue order. It is
recorded either way: ``pending`` when it fits, ``rejected`` with the reason when it does not.

What earlier requests cover comes from the incremental ``covered`` table
(:mod:`~ready2unlearn.ledger.covered`): one resolution per submission, not one per accepted request.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from ready2unlearn.artifacts import now_iso
from ready2unlearn.data.base import Split
from ready2unlearn.data.request import DeletionRequest
from ready2unlearn.errors import RequestError
from ready2unlearn.ledger import covered as covered_table
from ready2unlearn.ledger.db import Database
from ready2unlearn.ledger.errors import RequestRefused
from ready2unlearn.ledger.records import ACTIVE_STATUSES, RequestRow, short
from ready2unlearn.ledger.requests import (
    LEDGER_KINDS,
    covered_ids,
    dedup_key,
    parse_request,
    target_text,
    validate_request,
)

_ACTIVE_SQL = ", ".join(f"'{s}'" for s in ACTIVE_STATUSES)


class Submissions:
    """Adds requests to one ledger and answers what the accepted ones cover.

    Args:
        db: The ledger's open database.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def add_request(
        self,
        kind: str,
        target: str,
        reason: str,
        submitter: str,
        split: Split,
        already_forgotten: Sequence[int],
        *,
        replay: bool = False,
        token: str | None = None,
        record_rejected: bool = True,
    ) -> RequestRow:
        """Records a request: ``pending`` when it fits, ``rejected`` (with the reason) when it does not.

        Args:
            kind: ``class``, ``samples`` or ``group``.
            target: Classes, sample ids (or a file of them) or ``COLUMN=VALUE``.
            reason: Why it was asked for (free text, kept in the record).
            submitter: Who asked.
            split: The bound dataset (``Ledger.load_split``).
            already_forgotten: Ids the base model had forgotten before the ledger began.
            replay: The path before schema version 3: scan every accepted request for a duplicate and
                replay them all for the covered ids (O(accepted) resolutions). Same result; the covered
                table is left alone (a later submission folds this request in). For verification and
                the ``ledger_scale`` benchmark.
            token: The name of the API token submitting it (stored on the row and in the event log).
            record_rejected: Keep a request that does not fit as a ``rejected`` row (the command line's
                record). ``False`` (the service): raise :class:`RequestRefused` and record nothing, so a
                client's bad input never grows the ledger.

        Returns:
            The stored row (check ``status``).

        Raises:
            RequestError: If the reason is blank or the kind unknown (nothing is recorded then).
            RequestRefused: With ``record_rejected=False``, for any reason the request would be rejected.
        """
        if not reason.strip():
            raise RequestError("a request needs a --reason (kept in the ledger as part of the record)")
        if kind not in LEDGER_KINDS:  # a kind is a column with a CHECK constraint: refuse, do not record
            raise RequestError(f"unknown request kind {kind!r}; the ledger takes {', '.join(LEDGER_KINDS)}")
        try:
            req: DeletionRequest | None = parse_request(kind, target)
            problem = None
        except RequestError as e:
            req, problem = None, str(e)
        if problem and not record_rejected:
            raise RequestRefused(problem)
        forgets: list[int] | None = None  # what the request adds to the covered ids, once accepted
        dup: int | None = None
        with self.db.transaction() as c:
            if req is not None:
                problem, forgets, dup = (self._check_replayed if replay else self._check)(req, split,
                                                                                         already_forgotten)  # fmt: skip
            if problem and not record_rejected:
                raise RequestRefused(problem, dup)  # raised inside the transaction: rolled back, nothing written
            stored_target = target_text(req) if req is not None else str(target)
            cur = c.execute(
                "INSERT INTO requests (kind, target, submitter, reason, created, status, note, spec, dedup_key, token) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (kind, stored_target, submitter, reason, now_iso(), "rejected" if problem else "pending", problem,
                 json.dumps(req.to_dict()) if req is not None else None,
                 dedup_key(req) if req is not None else None, token),
            )  # fmt: skip
            rid = int(cur.lastrowid)  # type: ignore[arg-type]
            if not problem and not replay and forgets is not None:
                covered_table.record(c, rid, forgets)
            who = {"token": token} if token is not None else {}
            self.db.event("submitted", rid, kind=kind, target=short(stored_target, 200), submitter=submitter, **who)
            if problem:
                self.db.event("rejected", rid, reason=problem)
        return self.db.request(rid)

    def _check(
        self, req: DeletionRequest, split: Split, already_forgotten: Sequence[int]
    ) -> tuple[str | None, list[int] | None, int | None]:
        """``(problem, ids it forgets, the request it duplicates)`` from the duplicate index and covered table."""
        dup = self.db.conn.execute(
            f"SELECT id, status FROM requests WHERE dedup_key = ? AND status IN ({_ACTIVE_SQL}) ORDER BY id LIMIT 1",
            (dedup_key(req),),
        ).fetchone()
        if dup is not None:
            return f"duplicate of #{dup['id']} ({dup['status']})", None, int(dup["id"])
        try:
            covered = covered_table.catch_up(self.db.conn, split, already_forgotten)
            return None, validate_request(split, req, covered, already_forgotten), None
        except RequestError as e:
            return str(e), None, None

    def _check_replayed(
        self, req: DeletionRequest, split: Split, already_forgotten: Sequence[int]
    ) -> tuple[str | None, list[int] | None, int | None]:
        """As :meth:`_check`, by scanning and replaying every accepted request (the old path)."""
        accepted = [RequestRow.from_sql(r) for r in self.db.conn.execute(
            f"SELECT * FROM requests WHERE status IN ({_ACTIVE_SQL}) ORDER BY id")]  # fmt: skip
        key = dedup_key(req)
        dup = next((r for r in accepted if r.spec and dedup_key(r.request) == key), None)
        if dup is not None:
            return f"duplicate of #{dup.id} ({dup.status})", None, dup.id
        try:
            covered = covered_ids(split, [(r.id, r.request) for r in accepted], already_forgotten)
            return None, validate_request(split, req, covered, already_forgotten), None
        except RequestError as e:
            return str(e), None, None

    def covered(self, split: Split, already_forgotten: Sequence[int], *, replay: bool = False) -> dict[int, int]:
        """Sample id → the accepted request that forgets it; changes nothing (works on a read-only ledger).

        Args:
            split: The bound dataset.
            already_forgotten: Ids the base model had forgotten before the ledger began.
            replay: Resolve the whole queue again instead of reading the table (for verification).

        Raises:
            RequestError: If an accepted request no longer resolves after those before it.
        """
        if replay:
            rows = self.db.conn.execute(f"SELECT * FROM requests WHERE status IN ({_ACTIVE_SQL}) ORDER BY id")
            accepted = [RequestRow.from_sql(r) for r in rows]
            return covered_ids(split, [(r.id, r.request) for r in accepted], already_forgotten)
        return covered_table.catch_up(self.db.conn, split, already_forgotten, write=False)
