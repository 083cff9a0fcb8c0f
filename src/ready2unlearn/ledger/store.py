"""The ledger: one SQLite file (WAL mode) plus a folder of content-addressed model versions.

:class:`Ledger` is a facade over the parts, each its own module:

- :mod:`~ready2unlearn.ledger.db` — opening the file safely (foreign databases refused untouched, readers
  never migrate), transactions, the event log, reading request rows;
- :mod:`~ready2unlearn.ledger.submissions` — ``request add``: duplicates, validation, the covered ids
  (kept incrementally by :mod:`~ready2unlearn.ledger.covered`);
- :mod:`~ready2unlearn.ledger.queue` — exactly-once claims, worker liveness, heartbeats, fail / retry /
  complete;
- :mod:`~ready2unlearn.ledger.versions` — binding, model versions and lineage, the served pointer, the
  store folder;
- :mod:`~ready2unlearn.ledger.tokens` — the service's API tokens (stored hashed) and their roles.

Everything that used to be importable from here still is.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ready2unlearn.data.base import Split
from ready2unlearn.ledger.db import LEDGER_TABLES, Database
from ready2unlearn.ledger.errors import CorruptModel, LedgerError, LostClaim, RequestRefused, RequestRejected
from ready2unlearn.ledger.queue import PROCESS_SERVING, Heartbeat, Queue, ServingSet
from ready2unlearn.ledger.records import ACTIVE_STATUSES, Claim, ModelVersion, RequestRow, Worker
from ready2unlearn.ledger.submissions import Submissions
from ready2unlearn.ledger.tokens import Tokens
from ready2unlearn.ledger.versions import Versions, default_store

__all__ = [
    "ACTIVE_STATUSES",
    "LEDGER_TABLES",
    "PROCESS_SERVING",
    "Claim",
    "CorruptModel",
    "Heartbeat",
    "Ledger",
    "LedgerError",
    "LostClaim",
    "ModelVersion",
    "RequestRefused",
    "RequestRejected",
    "RequestRow",
    "ServingSet",
    "Worker",
    "default_store",
]


class Ledger:
    """A deletion-request ledger: requests, model versions, the served pointer and the event log.

    Args:
        path: The SQLite file (created with the latest schema if missing or empty; older schemas are migrated).
        timeout: Seconds to wait for another process's write lock before giving up.
        create: Create the file when it does not exist.
        readonly: Open for reading only (``mode=ro``): never creates, migrates or writes anything. An older
            ledger is migrated in an in-memory copy, so readers see the current schema.
        serving: Which requests this process serves (default: the process-wide registry).

    Attributes:
        db: The connection, transactions, event log and row readers.
        versions: Model versions, lineage and the store folder.
        queue: Claims and request state changes.
        submissions: Adding and validating requests.
        tokens: The service's API tokens.

    Raises:
        LedgerError: If the file is missing (and not to be created), is not a ledger (an SQLite file with
            other tables is refused untouched), or a writer finds the file or its folder read-only.
    """

    def __init__(self, path: str | Path, *, timeout: float = 60.0, create: bool = True, readonly: bool = False,
                 serving: ServingSet | None = None) -> None:  # fmt: skip
        self.db = Database(path, timeout=timeout, create=create, readonly=readonly)
        self.versions = Versions(self.db)
        self.queue = Queue(self.db, self.versions, serving)
        self.submissions = Submissions(self.db)
        self.tokens = Tokens(self.db)

    # -- the connection ---------------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        """The SQLite file."""
        return self.db.path

    @property
    def conn(self) -> sqlite3.Connection:
        """The SQLite connection."""
        return self.db.conn

    @property
    def timeout(self) -> float:
        """Seconds to wait for another process's write lock."""
        return self.db.timeout

    @property
    def readonly(self) -> bool:
        """Whether the ledger was opened read-only."""
        return self.db.readonly

    def close(self) -> None:
        """Closes the connection."""
        self.db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (see :meth:`Database.transaction`)."""
        return self.db.transaction()

    def meta(self, key: str, default: str | None = None) -> str | None:
        """A metadata value."""
        return self.db.meta(key, default)

    def record(self, event: str, request_id: int | None = None, **detail: Any) -> None:
        """Appends one event in its own transaction: an action that changes nothing else (a trigger)."""
        with self.db.transaction():
            self.db.event(event, request_id, **detail)

    # -- versions and the store folder ------------------------------------------------------------------
    @property
    def bound(self) -> bool:
        """Whether a base checkpoint has been registered."""
        return self.versions.bound

    @property
    def store(self) -> Path:
        """The folder holding model versions, certificates and work in progress."""
        return self.versions.store

    def model_dir(self, version: ModelVersion | str) -> Path:
        """Folder of a registered version."""
        return self.versions.model_dir(version)

    def tmp_dir(self, prefix: str) -> Path:
        """A fresh private folder under ``store/tmp``."""
        return self.versions.tmp_dir(prefix)

    def certificate_dir(self, request_id: int) -> Path:
        """Where the certificate of a request goes."""
        return self.versions.certificate_dir(request_id)

    def bind(self, checkpoint: str | Path) -> ModelVersion:
        """Registers ``checkpoint`` as the root version and the served model (see :meth:`Versions.bind`)."""
        return self.versions.bind(checkpoint)

    def base_card(self) -> dict[str, Any]:
        """The card of the root version."""
        return self.versions.base_card()

    def load_split(self, data_dir: str | None = None) -> tuple[Split, list[int]]:
        """The bound dataset (fingerprint-checked) and the ids the base model had already forgotten."""
        return self.versions.load_split(data_dir)

    def model(self, digest: str) -> ModelVersion:
        """A registered version by full hash or unique prefix (see :meth:`Versions.model`)."""
        return self.versions.model(digest)

    def models(self) -> list[ModelVersion]:
        """Every registered version, oldest first."""
        return self.versions.models()

    def served_hash(self) -> str | None:
        """The hash of the model currently served (``None`` before binding)."""
        return self.versions.served_hash()

    def lineage(self, digest: str | None = None) -> list[ModelVersion]:
        """The chain of versions from the root to ``digest`` (default: the served model)."""
        return self.versions.lineage(digest)

    def check_model_file(self, version: ModelVersion) -> Path:
        """The version's folder, after checking its weights (see :meth:`Versions.check_model_file`)."""
        return self.versions.check_model_file(version)

    def clean_orphans(self) -> list[Path]:
        """Removes work folders and unregistered model folders (see :meth:`Versions.clean_orphans`)."""
        return self.versions.clean_orphans()

    # -- requests ---------------------------------------------------------------------------------------
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
        """Records a request, ``pending`` or ``rejected`` (see :meth:`Submissions.add_request`)."""
        return self.submissions.add_request(kind, target, reason, submitter, split, already_forgotten, replay=replay,
                                            token=token, record_rejected=record_rejected)  # fmt: skip

    def covered(self, split: Split, already_forgotten: Sequence[int], *, replay: bool = False) -> dict[int, int]:
        """Sample id → the accepted request that forgets it (see :meth:`Submissions.covered`)."""
        return self.submissions.covered(split, already_forgotten, replay=replay)

    def request(self, request_id: int) -> RequestRow:
        """One request (raises :class:`LedgerError` if there is none)."""
        return self.db.request(request_id)

    def requests(self, status: str | None = None) -> list[RequestRow]:
        """Every request (optionally of one status), in submission order."""
        return self.db.requests(status)

    def events(self, request_id: int | None = None) -> list[dict[str, Any]]:
        """The event log (optionally of one request), oldest first."""
        return self.db.events(request_id)

    # -- serving ----------------------------------------------------------------------------------------
    def claim(self, worker: Worker, *, batch: int = 1, resume: bool = False, force: bool = False,
              stale_after: float = 300.0) -> Claim:  # fmt: skip
        """Atomically takes the next request(s) to serve, or says why there is none (see :meth:`Queue.claim`)."""
        return self.queue.claim(worker, batch=batch, resume=resume, force=force, stale_after=stale_after)

    def serving(self, ids: Sequence[int]) -> contextlib.AbstractContextManager[None]:
        """Context: this process is serving the claimed ``ids`` (its own claims on them count as alive)."""
        return self.queue.serving(ids)

    def set_phase(self, ids: Sequence[int], worker: Worker, phase: str) -> None:
        """Records what the worker is doing (``unlearning``, ``verifying``, ``certifying``) for operators."""
        self.queue.set_phase(ids, worker, phase)

    def release(self, ids: Sequence[int], worker: Worker, why: str) -> None:
        """Puts claimed requests back to ``pending`` (the worker could not serve them; not their fault)."""
        self.queue.release(ids, worker, why)

    def fail(self, ids: Sequence[int], worker: Worker, error: str) -> None:
        """Marks claimed requests ``failed`` with the error."""
        self.queue.fail(ids, worker, error)

    def retry(self, ids: Sequence[int], *, token: str | None = None) -> list[RequestRow]:
        """Puts ``failed`` requests back to ``pending``, all or none (see :meth:`Queue.retry`)."""
        return self.queue.retry(ids, token=token)

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
        """Registers the child, marks the requests done, moves the served pointer (see :meth:`Queue.complete`)."""
        self.queue.complete(ids, worker, child_hash, child_path, config, metrics, certificates)
