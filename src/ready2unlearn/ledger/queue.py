"""The serving queue: exactly-once claims, worker liveness, heartbeats, and finishing a claim.

A request's life is ``pending → running → done | failed`` (or ``rejected`` on submission, see
:mod:`~ready2unlearn.ledger.submissions`). Every change happens in a ``BEGIN IMMEDIATE`` transaction, so
two workers can never both claim request 7. A running request records its worker (host, pid, process
start time) and a heartbeat, so a worker that died can be told apart from one that is merely slow.
Serving is sequential (request N+1 starts from request N's model): at most one claim runs at a time.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from ready2unlearn.artifacts import now_iso
from ready2unlearn.ledger import covered
from ready2unlearn.ledger.db import Database
from ready2unlearn.ledger.errors import LedgerError, LostClaim
from ready2unlearn.ledger.records import ACTIVE_STATUSES, Claim, RequestRow, Worker
from ready2unlearn.ledger.requests import dedup_key
from ready2unlearn.ledger.versions import Versions


class ServingSet:
    """Request ids this process is serving right now (thread-safe).

    A running row that names our own pid but is not in here was left behind by an earlier, failed attempt
    in this same process (in-process callers and tests), so it is dead: ``/proc`` cannot tell, since the
    pid is alive. Every :class:`Queue` of a process shares :data:`PROCESS_SERVING` unless given its own.
    """

    def __init__(self) -> None:
        self._ids: set[int] = set()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def holding(self, ids: Iterable[int]) -> Iterator[None]:
        """Marks ``ids`` as served by this process for the duration of the block."""
        ids = list(ids)
        with self._lock:
            self._ids.update(ids)
        try:
            yield
        finally:
            with self._lock:
                self._ids.difference_update(ids)

    def __contains__(self, request_id: object) -> bool:
        with self._lock:
            return request_id in self._ids


#: The one registry of a process: liveness is a property of the process, not of a connection.
PROCESS_SERVING = ServingSet()


class Queue:
    """Claims and state changes of requests (everything a worker does with the queue).

    Args:
        db: The ledger's open database.
        versions: Its model versions (claims record the served parent; completing registers the child).
        serving: Which requests this process serves (default: the process-wide :data:`PROCESS_SERVING`).
    """

    def __init__(self, db: Database, versions: Versions, serving: ServingSet | None = None) -> None:
        self.db = db
        self.versions = versions
        self._serving = PROCESS_SERVING if serving is None else serving

    def serving(self, ids: Sequence[int]) -> contextlib.AbstractContextManager[None]:
        """Context: this process is serving ``ids`` (so its own claims on them count as alive)."""
        return self._serving.holding(ids)

    def claim(self, worker: Worker, *, batch: int = 1, resume: bool = False, force: bool = False,
              stale_after: float = 300.0) -> Claim:  # fmt: skip
        """Atomically takes the next request(s) to serve, or says why there is none.

        Serving is sequential (request N+1 starts from request N's model), so at most one claim is running
        at a time: while a live worker serves, everyone else waits.

        Args:
            worker: The caller.
            batch: Pending requests to take together (served by one unlearning run).
            resume: Take over requests left running by a dead worker (restarted from their parent).
            force: With ``resume``: take over running requests even when their worker looks alive.
            stale_after: A worker on another host counts as dead after this many seconds without heartbeat.
        """
        with self.db.transaction() as c:
            running = [RequestRow.from_sql(r) for r in c.execute(
                "SELECT * FROM requests WHERE status = 'running' ORDER BY id")]  # fmt: skip
            if running:
                dead = [r for r in running if force or not self._worker_alive(r, stale_after)]
                live = [r for r in running if r not in dead]
                if live:
                    return Claim("wait", live)
                if not resume:
                    return Claim("blocked", dead)
                served = self.versions.served_hash()
                ids = [r.id for r in dead]
                c.executemany(
                    "UPDATE requests SET worker_pid = ?, worker_host = ?, worker_start = ?, claimed_at = ?, "
                    "heartbeat = ?, phase = 'claimed', attempts = attempts + 1, parent_hash = ? WHERE id = ?",
                    [(worker.pid, worker.host, worker.start, now_iso(), now_iso(), served, i) for i in ids],
                )  # fmt: skip
                for r in dead:
                    prev = r.worker.describe() if r.worker else "unknown worker"
                    self.db.event("resumed", r.id, worker=worker.describe(), previous_worker=prev, parent=served,
                                  forced=force)  # fmt: skip
                return Claim("claimed", [self.db.request(i) for i in ids], resumed=True)
            pending = [RequestRow.from_sql(r) for r in c.execute(
                "SELECT * FROM requests WHERE status = 'pending' ORDER BY id LIMIT ?", (max(1, batch),))]  # fmt: skip
            if not pending:
                return Claim("idle")
            served = self.versions.served_hash()
            if served is None:
                raise LedgerError(f"{self.db.path} is not bound to a model yet: pass --checkpoint DIR")
            batch_id = pending[0].id if len(pending) > 1 else None
            for r in pending:
                c.execute(
                    "UPDATE requests SET status = 'running', worker_pid = ?, worker_host = ?, worker_start = ?, "
                    "claimed_at = ?, heartbeat = ?, phase = 'claimed', attempts = attempts + 1, parent_hash = ?, "
                    "batch_id = ? WHERE id = ? AND status = 'pending'",
                    (worker.pid, worker.host, worker.start, now_iso(), now_iso(), served, batch_id, r.id),
                )  # fmt: skip
                self.db.event("claimed", r.id, worker=worker.describe(), parent=served, batch=batch_id)
            return Claim("claimed", [self.db.request(r.id) for r in pending])

    def _worker_alive(self, row: RequestRow, stale_after: float) -> bool:
        w = row.worker
        if w is None:
            return False
        if w.pid == os.getpid() and w.host == socket.gethostname():
            return row.id in self._serving
        alive = w.is_alive()
        if alive is not None:
            return alive
        beat = datetime.fromisoformat(row.heartbeat) if row.heartbeat else None
        return beat is not None and (datetime.now(timezone.utc) - beat).total_seconds() < stale_after

    def _owned(self, ids: Sequence[int], worker: Worker) -> list[RequestRow]:
        rows = [self.db.request(i) for i in ids]
        lost = [r for r in rows if r.status != "running" or r.worker != worker]
        if lost:
            who = lost[0].worker.describe() if lost[0].worker else "-"
            raise LostClaim(f"request #{lost[0].id} is no longer ours (status {lost[0].status}, worker {who}): "
                            "another worker took it over")  # fmt: skip
        return rows

    def set_phase(self, ids: Sequence[int], worker: Worker, phase: str) -> None:
        """Records what the worker is doing (``unlearning``, ``verifying``, ``certifying``) for operators."""
        with self.db.transaction() as c:
            self._owned(ids, worker)
            c.executemany("UPDATE requests SET phase = ?, heartbeat = ? WHERE id = ?",
                          [(phase, now_iso(), i) for i in ids])  # fmt: skip

    def release(self, ids: Sequence[int], worker: Worker, why: str) -> None:
        """Puts claimed requests back to ``pending`` (the worker could not serve them; not their fault)."""
        with self.db.transaction() as c:
            for r in self._owned(ids, worker):
                c.execute("UPDATE requests SET status = 'pending', phase = NULL, worker_pid = NULL, "
                          "worker_host = NULL, worker_start = NULL, batch_id = NULL WHERE id = ?", (r.id,))  # fmt: skip
                self.db.event("released", r.id, reason=why)

    def fail(self, ids: Sequence[int], worker: Worker, error: str) -> None:
        """Marks claimed requests ``failed`` with the error."""
        with self.db.transaction() as c:
            rows = self._owned(ids, worker)
            for r in rows:
                c.execute("UPDATE requests SET status = 'failed', phase = NULL, note = ?, finished_at = ? "
                          "WHERE id = ?", (error, now_iso(), r.id))  # fmt: skip
                self.db.event("failed", r.id, error=error)
            if rows:  # they no longer cover anything: every later request resolves differently
                covered.invalidate_from(c, min(r.id for r in rows))

    def retry(self, ids: Sequence[int], *, token: str | None = None) -> list[RequestRow]:
        """Puts ``failed`` requests back to ``pending``, so the next ``process`` serves them (all or none).

        Args:
            ids: Request ids; each must exist and be ``failed``.
            token: The API token asking (recorded in the event log; ``None`` from the command line).

        Returns:
            The requests, now pending.

        Raises:
            LedgerError: If an id is unknown or not failed, or the same deletion is pending, running or done
                under another request (retrying it would serve it twice); nothing is changed then.
        """
        if not ids:
            raise LedgerError("give the id of at least one failed request")
        with self.db.transaction() as c:
            rows = [self.db.request(i) for i in dict.fromkeys(ids)]
            for r in rows:
                if r.status != "failed":
                    raise LedgerError(f"request #{r.id} is {r.status}, not failed: only failed requests can be retried")
            statuses = ", ".join(f"'{s}'" for s in ACTIVE_STATUSES)
            active = [RequestRow.from_sql(x) for x in c.execute(
                f"SELECT * FROM requests WHERE status IN ({statuses}) ORDER BY id")]  # fmt: skip
            for r in rows:
                key = dedup_key(r.request)
                dup = next((a for a in active if a.spec and dedup_key(a.request) == key), None)
                if dup is not None:
                    raise LedgerError(f"request #{r.id} cannot be retried: #{dup.id} ({dup.status}) asks for the "
                                      "same deletion")  # fmt: skip
                active.append(r)  # two failed copies of one deletion: only the first may come back
            for r in rows:
                c.execute(
                    "UPDATE requests SET status = 'pending', phase = NULL, note = NULL, worker_pid = NULL, "
                    "worker_host = NULL, worker_start = NULL, claimed_at = NULL, heartbeat = NULL, batch_id = NULL, "
                    "parent_hash = NULL, child_hash = NULL, finished_at = NULL, certificate = NULL "
                    "WHERE id = ? AND status = 'failed'",
                    (r.id,),
                )  # fmt: skip
                # The failure stays in the log (append-only); the new event says why the request is back.
                who = {"token": token} if token is not None else {}
                self.db.event("retried", r.id, reason="retry", previous_error=r.note, **who)
            # Back in the queue at its old position: every later request resolves differently again.
            covered.invalidate_from(c, min(r.id for r in rows))
        return [self.db.request(r.id) for r in rows]

    def complete(
        self,
        ids: Sequence[int],
        worker: Worker,
        child_hash: str,
        child_path: str,
        config: dict[str, Any],
        metrics: dict[str, Any],
        certificates: dict[int, str],
    ) -> None:
        """Registers the child version, marks the requests done and moves the served pointer — one transaction.

        The child's folder must already be in place under ``models/`` (renamed there before this call), so
        a crash at any point leaves either the old state or the new one, never a registered half-model.

        Raises:
            LostClaim: If the requests are no longer this worker's.
            LedgerError: If the served model moved since the claim (cannot happen while claims serialise).
        """
        with self.db.transaction() as c:
            rows = self._owned(ids, worker)
            parent = rows[0].parent_hash
            served = self.versions.served_hash()
            if served != parent:
                raise LedgerError(f"the served model moved from {str(parent)[:12]} to {str(served)[:12]} while "
                                  f"request #{rows[0].id} was being served")  # fmt: skip
            if child_hash != parent:  # an unlearning run that changed nothing registers no new version
                self.versions.register_child(parent, child_hash, child_path, rows[0].id, config, metrics)
            for r in rows:
                c.execute(
                    "UPDATE requests SET status = 'done', phase = NULL, child_hash = ?, finished_at = ?, "
                    "certificate = ? WHERE id = ?",
                    (child_hash, now_iso(), certificates.get(r.id), r.id),
                )
                self.db.event("done", r.id, child=child_hash, certificate=certificates.get(r.id))


class _HasPath(Protocol):
    path: Path


class Heartbeat:
    """A background thread that refreshes the heartbeat of the requests a worker holds.

    It uses its own connection (SQLite connections are not shared across threads here) and only touches
    rows that are still running under this worker.

    Args:
        ledger: The ledger (anything with its ``path``).
        ids: The requests held.
        worker: The holder.
        every: Seconds between beats.
    """

    def __init__(self, ledger: _HasPath, ids: Sequence[int], worker: Worker, every: float = 2.0) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ledger.path, list(ids), worker, every), daemon=True)

    def _run(self, path: Path, ids: list[int], worker: Worker, every: float) -> None:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            while not self._stop.wait(every):
                with contextlib.suppress(sqlite3.OperationalError):  # busy: the next beat will do
                    conn.executemany(
                        "UPDATE requests SET heartbeat = ? WHERE id = ? AND status = 'running' AND worker_pid = ? "
                        "AND worker_host = ?", [(now_iso(), i, worker.pid, worker.host) for i in ids])  # fmt: skip
        finally:
            conn.close()

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
