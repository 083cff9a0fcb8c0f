"""Plain records read from the ledger's tables: requests, model versions, workers and claims.

They carry no connection: every component of the ledger (:mod:`~ready2unlearn.ledger.queue`,
:mod:`~ready2unlearn.ledger.versions`, :mod:`~ready2unlearn.ledger.submissions`) hands them out, and
callers may keep them after the ledger is closed.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ready2unlearn.data.request import DeletionRequest
from ready2unlearn.ledger.errors import LedgerError

#: Statuses of an accepted request: it counts for duplicates and covered ids until it fails.
ACTIVE_STATUSES = ("pending", "running", "done")


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """``(state, start time)`` of a process from ``/proc`` (Linux), or ``None`` when it is not there."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may contain spaces and parentheses
    return fields[0], fields[19]


@dataclass(frozen=True)
class Worker:
    """Who is serving a request: host, pid and the process's start time (guards against pid reuse)."""

    host: str
    pid: int
    start: str

    @classmethod
    def current(cls) -> Worker:
        """The calling process."""
        stat = _proc_stat(os.getpid())
        return cls(socket.gethostname(), os.getpid(), stat[1] if stat else "")

    def is_alive(self) -> bool | None:
        """Whether the worker process still runs; ``None`` when it is on another host (unknowable here)."""
        if self.host != socket.gethostname():
            return None
        stat = _proc_stat(self.pid)
        if stat is not None:
            state, start = stat
            # A zombie (killed, not yet reaped) is dead; a different start time means the pid was reused.
            return state not in ("Z", "X") and (not self.start or start == self.start)
        try:  # no /proc (macOS): signal 0 only asks whether the pid exists
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def describe(self) -> str:
        """``pid N on HOST``."""
        return f"pid {self.pid} on {self.host}"


def short(text: str, limit: int = 40) -> str:
    """``text`` cut to ``limit`` characters (with ``...``) for one-line messages."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class RequestRow:
    """One row of the ``requests`` table."""

    id: int
    kind: str
    target: str
    submitter: str
    reason: str
    created: str
    status: str
    note: str | None = None
    spec: dict[str, Any] | None = None
    worker: Worker | None = None
    claimed_at: str | None = None
    heartbeat: str | None = None
    phase: str | None = None
    attempts: int = 0
    batch_id: int | None = None
    parent_hash: str | None = None
    child_hash: str | None = None
    finished_at: str | None = None
    certificate: str | None = None
    token: str | None = None  # the API token that submitted it (None: the command line)

    @classmethod
    def from_sql(cls, row: sqlite3.Row) -> RequestRow:
        """Builds a row object from a ``SELECT * FROM requests`` row."""
        worker = None
        if row["worker_pid"] is not None:
            worker = Worker(row["worker_host"], int(row["worker_pid"]), row["worker_start"] or "")
        return cls(
            id=row["id"], kind=row["kind"], target=row["target"], submitter=row["submitter"], reason=row["reason"],
            created=row["created"], status=row["status"], note=row["note"],
            spec=json.loads(row["spec"]) if row["spec"] else None, worker=worker, claimed_at=row["claimed_at"],
            heartbeat=row["heartbeat"], phase=row["phase"], attempts=row["attempts"], batch_id=row["batch_id"],
            parent_hash=row["parent_hash"], child_hash=row["child_hash"], finished_at=row["finished_at"],
            certificate=row["certificate"], token=row["token"],
        )  # fmt: skip

    @property
    def request(self) -> DeletionRequest:
        """The deletion request this row asks for.

        Raises:
            LedgerError: For a rejected row whose target never parsed.
        """
        if self.spec is None:
            raise LedgerError(f"request #{self.id} has no valid specification (it was rejected)")
        return DeletionRequest.from_dict(self.spec)

    def describe(self) -> str:
        """``#7 class:3``."""
        return f"#{self.id} {self.kind}:{short(self.target)}"

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output and certificates."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "worker"}
        d["worker"] = None if self.worker is None else {"host": self.worker.host, "pid": self.worker.pid}
        return d


@dataclass
class ModelVersion:
    """One registered model version (a row of ``models``)."""

    hash: str
    parent_hash: str | None
    created_by: int | None
    path: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    created: str

    @classmethod
    def from_sql(cls, row: sqlite3.Row) -> ModelVersion:
        """Builds a version object from a ``SELECT * FROM models`` row."""
        return cls(row["hash"], row["parent_hash"], row["created_by"], row["path"], json.loads(row["config"]),
                   json.loads(row["metrics"]), row["created"])  # fmt: skip


@dataclass
class Claim:
    """What :meth:`~ready2unlearn.ledger.queue.Queue.claim` found.

    Attributes:
        state: ``claimed`` (``rows`` are now ours), ``wait`` (a live worker is serving ``rows``),
            ``blocked`` (``rows`` are running under a dead worker: ``--resume`` needed) or ``idle``.
        rows: The requests concerned.
        resumed: The claimed rows were taken over from a dead worker.
    """

    state: str
    rows: list[RequestRow] = field(default_factory=list)
    resumed: bool = False
