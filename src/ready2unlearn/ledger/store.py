"""The ledger store: one SQLite file (WAL mode) plus a folder of content-addressed model versions.

Layout beside ``ledger.db``::

    ledger-store/models/<sha256>/      model.safetensors + card.json, one folder per registered version
    ledger-store/certificates/<id>/    certificate.json + certificate.html per served request
    ledger-store/tmp/                  work in progress; never read, cleaned by ``process --resume``

Every state change happens in a ``BEGIN IMMEDIATE`` transaction: the write lock is taken *before* the
rows are read, so two workers can never both see request 7 as pending and both claim it. A request's
life is ``pending → running → done | failed`` (or ``rejected`` on submission); a running request records
its worker (host, pid, process start time) and a heartbeat, so a worker that died can be told apart from
one that is merely slow. The served-model pointer is a single row, moved in the same transaction that
registers the child version and marks the request done.

Only the write verbs (``request add``, ``process``, ``retry``) open the file for writing, and only a file
that already is a ledger, or an empty one, is ever given the schema: a foreign SQLite file is refused
untouched. Readers (``request list`` / ``show``, ``lineage``, ``certificate verify --ledger``) open it with
``mode=ro`` and never migrate, so looking at a ledger never changes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import sqlite3
import stat
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ready2unlearn.artifacts import CARD, WEIGHTS, now_iso, read_card, sha256_file
from ready2unlearn.data.base import Split
from ready2unlearn.data.request import DeletionRequest
from ready2unlearn.errors import R2UError, RequestError
from ready2unlearn.ledger import schema
from ready2unlearn.ledger.requests import (
    LEDGER_KINDS,
    covered_ids,
    dedup_key,
    parse_request,
    target_text,
    validate_request,
)
from ready2unlearn.unlearn.sisa_checkpoint import SISA_DIR

ACTIVE_STATUSES = ("pending", "running", "done")

# Requests this process is serving right now: a row that names our own pid but is not in here was left
# behind by an earlier, failed attempt in this same process (in-process callers and tests), so it is dead.
_SERVING: set[int] = set()


class LedgerError(R2UError):
    """The ledger cannot do what was asked (not bound yet, unknown request or model, corrupt store)."""


class RequestRejected(RequestError):
    """A submitted request was recorded as ``rejected``; the message says why."""

    def __init__(self, request_id: int, reason: str) -> None:
        super().__init__(f"request #{request_id} rejected: {reason}")
        self.request_id = request_id
        self.reason = reason


class CorruptModel(LedgerError):
    """A registered model version's file no longer matches its content hash."""


class LostClaim(LedgerError):
    """Another worker took over a request this worker was serving (``process --resume --force``)."""


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
            certificate=row["certificate"],
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
        return f"#{self.id} {self.kind}:{_short(self.target)}"

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output and certificates."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "worker"}
        d["worker"] = None if self.worker is None else {"host": self.worker.host, "pid": self.worker.pid}
        return d


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
    """What :meth:`Ledger.claim` found.

    Attributes:
        state: ``claimed`` (``rows`` are now ours), ``wait`` (a live worker is serving ``rows``),
            ``blocked`` (``rows`` are running under a dead worker: ``--resume`` needed) or ``idle``.
        rows: The requests concerned.
        resumed: The claimed rows were taken over from a dead worker.
    """

    state: str
    rows: list[RequestRow] = field(default_factory=list)
    resumed: bool = False


def default_store(db: Path) -> Path:
    """``ledger.db`` → ``ledger-store`` beside it."""
    return db.parent / f"{db.stem}-store"


_SQLITE_MAGIC = b"SQLite format 3\x00"
LEDGER_TABLES = frozenset({"meta", "requests", "models", "events"})
_HEX = re.compile(r"[0-9a-f]+")


def _writable(path: Path) -> bool:
    """Whether ``path`` may be written: the OS allows it *and* it has a write permission bit.

    ``os.access`` says yes to root for any file; a ledger (or folder) whose write bits were all removed
    was made read-only on purpose, so we honour that even then.
    """
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return os.access(path, os.W_OK) and bool(stat.S_IMODE(mode) & 0o222)


def _wal(path: Path) -> Path:
    return path.with_name(path.name + "-wal")


def _db_error(path: Path, e: sqlite3.Error) -> LedgerError:
    """A one-line error for an SQLite failure while opening or writing ``path``."""
    msg = str(e)
    if "readonly" in msg or "read-only" in msg:
        return LedgerError(f"{path} is read-only: the ledger cannot record anything ({msg})")
    if "locked" in msg or "busy" in msg:
        return LedgerError(f"{path} is locked by another process ({msg}); try again")
    if "unable to open" in msg:
        return LedgerError(f"cannot open {path} ({msg})")
    return LedgerError(f"{path} is not a ready2unlearn ledger ({msg})")


def _check_header(path: Path, *, allow_empty: bool) -> None:
    """Refuses a file that is not an SQLite database at all, before SQLite touches it."""
    try:
        with path.open("rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
    except OSError as e:
        raise LedgerError(f"cannot read {path} ({e.strerror or e})") from None
    if not head and allow_empty:
        return
    if not head:
        raise LedgerError(f"{path} is not a ready2unlearn ledger (an empty file)")
    if head != _SQLITE_MAGIC:
        raise LedgerError(f"{path} is not a ready2unlearn ledger (not an SQLite database)")


def _open_readonly(path: Path, timeout: float) -> sqlite3.Connection:
    """A read-only connection (``mode=ro``) that also works in a folder we may not write.

    A WAL database is read through its ``-shm`` index, which SQLite must be able to create beside the file;
    in a read-only folder it cannot (SQLite 3.40 then fails with "attempt to write a readonly database").
    When there is no ``-wal`` file either, nothing committed is waiting outside the main file and no writer
    can start in that folder, so opening it ``immutable`` reads exactly what is there. With a ``-wal`` file
    present ``immutable`` would skip its commits, so then the error stands.
    """
    uri = path.resolve().as_uri()

    def connect(query: str) -> sqlite3.Connection:
        conn = sqlite3.connect(f"{uri}?{query}", uri=True, timeout=timeout, isolation_level=None,
                               check_same_thread=False)  # fmt: skip
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except BaseException:
            conn.close()
            raise
        return conn

    try:
        return connect("mode=ro")
    except sqlite3.OperationalError:
        if _wal(path).exists() or _writable(path.parent):
            raise
        return connect("mode=ro&immutable=1")


def _classify(path: Path, conn: sqlite3.Connection) -> str:
    """``ledger``, or ``empty`` (no tables at all: it may become a ledger); raises for anything else.

    Raises:
        LedgerError: If the database holds other tables, or is a ledger written by a newer release.
    """
    version = schema.user_version(conn)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
              if not r[0].startswith("sqlite_")}  # fmt: skip
    if version == 0 and not tables:
        return "empty"
    if version >= 1 and LEDGER_TABLES.issubset(tables):
        if version > schema.LATEST:
            raise LedgerError(f"the ledger has schema version {version}, newer than this release knows "
                              f"({schema.LATEST}); upgrade ready2unlearn")  # fmt: skip
        return "ledger"
    shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
    raise LedgerError(f"{path} is not a ready2unlearn ledger (an SQLite database with tables {shown or 'none'}, "
                      f"user_version {version}); it was left untouched")  # fmt: skip


class Ledger:
    """A deletion-request ledger: requests, model versions, the served pointer and the event log.

    Args:
        path: The SQLite file (created with the latest schema if missing or empty; older schemas are migrated).
        timeout: Seconds to wait for another process's write lock before giving up.
        create: Create the file when it does not exist.
        readonly: Open for reading only (``mode=ro``): never creates, migrates or writes anything. An older
            ledger is migrated in an in-memory copy, so readers see the current schema.

    Raises:
        LedgerError: If the file is missing (and not to be created), is not a ledger (an SQLite file with
            other tables is refused untouched), or a writer finds the file or its folder read-only.
    """

    def __init__(self, path: str | Path, *, timeout: float = 60.0, create: bool = True, readonly: bool = False) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.readonly = readonly
        if (readonly or not create) and not self.path.is_file():
            raise LedgerError(f"{self.path} does not exist; submit a request with --checkpoint to create it")
        self.conn = sqlite3.connect(":memory:")  # replaced below; keeps close() safe if connecting fails
        try:
            self.conn = self._open_readonly() if readonly else self._open_for_writing()
        except sqlite3.DatabaseError as e:
            self.conn.close()
            raise _db_error(self.path, e) from None
        except BaseException:
            self.conn.close()
            raise

    def _open_readonly(self) -> sqlite3.Connection:
        _check_header(self.path, allow_empty=False)
        conn = _open_readonly(self.path, self.timeout)
        try:
            if _classify(self.path, conn) != "ledger":
                raise LedgerError(f"{self.path} is not a ready2unlearn ledger (an empty database)")
            if schema.user_version(conn) < schema.LATEST:
                # An older ledger: read a migrated copy in memory; the file itself changes only when a
                # write verb opens it.
                mem = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
                conn.backup(mem)
                conn.close()
                conn = mem
                schema.migrate(conn)
        except BaseException:
            conn.close()
            raise
        conn.row_factory = sqlite3.Row
        return conn

    def _open_for_writing(self) -> sqlite3.Connection:
        folder = self.path.parent
        if self.path.exists():
            if not self.path.is_file():
                raise LedgerError(f"{self.path} is not a file")
            _check_header(self.path, allow_empty=True)
            if not _writable(self.path):
                raise LedgerError(f"{self.path} is read-only: the ledger cannot record anything")
            if not _writable(folder):
                raise LedgerError(f"{folder} is read-only: SQLite must write its journal beside {self.path.name}")
            if self.path.stat().st_size:
                # Look before writing: only a ledger or an empty database may be given the schema.
                probe = _open_readonly(self.path, self.timeout)
                try:
                    _classify(self.path, probe)
                finally:
                    probe.close()
        else:
            folder.mkdir(parents=True, exist_ok=True)
            if not _writable(folder):
                raise LedgerError(f"{folder} is read-only: cannot create the ledger {self.path.name} there")
        conn = self._connect()
        try:
            schema.migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves (the module's implicit
        # transactions would start with a plain BEGIN and could deadlock two writers).
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")  # readers never block the writer, and vice versa
        conn.execute("PRAGMA synchronous=FULL")  # a committed "done" survives a power cut
        conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def close(self) -> None:
        """Closes the connection."""
        self.conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back on any exception).

        Raises:
            LedgerError: If the ledger was opened read-only, or SQLite cannot take the write lock (a read-only
                file system, or another process holding the lock past ``timeout``).
        """
        if self.readonly:
            raise LedgerError(f"{self.path} was opened read-only; this command cannot change it")
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise _db_error(self.path, e) from None
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- metadata and the store folder ------------------------------------------------------------------
    def meta(self, key: str, default: str | None = None) -> str | None:
        """A metadata value."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    @property
    def bound(self) -> bool:
        """Whether a base checkpoint has been registered."""
        return self.meta("base_hash") is not None

    @property
    def store(self) -> Path:
        """The folder holding model versions, certificates and work in progress."""
        rel = self.meta("store")
        return (self.path.parent / rel) if rel else default_store(self.path)

    def model_dir(self, version: ModelVersion | str) -> Path:
        """Folder of a registered version."""
        if isinstance(version, str):
            version = self.model(version)
        return self.store / version.path

    def tmp_dir(self, prefix: str) -> Path:
        """A fresh private folder under ``store/tmp`` (same filesystem as ``models/``, so rename is atomic)."""
        root = self.store / "tmp"
        root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=root))

    def certificate_dir(self, request_id: int) -> Path:
        """Where the certificate of a request goes."""
        return self.store / "certificates" / f"req-{request_id:05d}"

    def _event(self, event: str, request_id: int | None = None, **detail: Any) -> None:
        self.conn.execute("INSERT INTO events (ts, request_id, event, detail) VALUES (?, ?, ?, ?)",
                          (now_iso(), request_id, event, json.dumps(detail, sort_keys=True, default=str)))  # fmt: skip

    # -- binding to a base checkpoint -------------------------------------------------------------------
    def bind(self, checkpoint: str | Path) -> ModelVersion:
        """Registers ``checkpoint`` as the root version and the served model (once per ledger).

        The checkpoint is copied into the store, so the ledger does not depend on the original folder. A
        second call with a checkpoint that is already a registered version is a no-op.

        Raises:
            LedgerError: If the ledger is bound to another model, or the checkpoint is invalid.
        """
        card = read_card(checkpoint)  # checks the weights against the hash in the card
        digest = sha256_file(Path(checkpoint) / WEIGHTS)
        if self.bound:
            if self._model_row(digest) is None:
                raise LedgerError(f"{self.path} is bound to base model {self.meta('base_hash', '')[:12]}; "
                                  f"{checkpoint} (sha256 {digest[:12]}) is not one of its versions")  # fmt: skip
            return self.model(digest)
        if "config" not in card or "data" not in card:
            raise LedgerError(f"{checkpoint} was not written by a ready2unlearn recipe (no config/data in its card)")
        final = self.store / "models" / digest
        if not final.is_dir():
            tmp = self.tmp_dir("bind-")
            shutil.copy2(Path(checkpoint) / WEIGHTS, tmp / WEIGHTS)
            shutil.copy2(Path(checkpoint) / CARD, tmp / CARD)
            if (Path(checkpoint) / SISA_DIR).is_dir():  # a SISA model's slice checkpoints: exact unlearning needs them
                shutil.copytree(Path(checkpoint) / SISA_DIR, tmp / SISA_DIR)
            if sha256_file(tmp / WEIGHTS) != digest:
                raise LedgerError(f"{checkpoint} changed while it was being copied into the ledger")
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
        with self.transaction() as c:
            if self.meta("base_hash") is not None:  # another process bound it while we copied
                return self.model(digest)
            c.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [
                ("store", os.path.relpath(self.store, self.path.parent)),
                ("base_hash", digest),
                ("base_source", str(Path(checkpoint).resolve())),
                ("created", now_iso()),
            ])  # fmt: skip
            c.execute("INSERT INTO models (hash, parent_hash, created_by, path, config, metrics, created) "
                      "VALUES (?, NULL, NULL, ?, ?, ?, ?)",
                      (digest, f"models/{digest}", json.dumps(card.get("config", {})),
                       json.dumps(card.get("metrics", {})), now_iso()))  # fmt: skip
            c.execute("INSERT INTO served (id, hash, updated) VALUES (1, ?, ?)", (digest, now_iso()))
            self._event("bound", None, base=digest, source=str(checkpoint))
        return self.model(digest)

    def base_card(self) -> dict[str, Any]:
        """The card of the root version (data config and fingerprints the ledger validates against).

        Raises:
            LedgerError: If the ledger is not bound yet.
        """
        base = self.meta("base_hash")
        if base is None:
            raise LedgerError(f"{self.path} is not bound to a model yet: pass --checkpoint DIR (a trained model)")
        return read_card(self.model_dir(base))

    def load_split(self, data_dir: str | None = None) -> tuple[Split, list[int]]:
        """The bound dataset (fingerprint-checked) and the ids the base model had already forgotten."""
        from ready2unlearn.recipes.unlearn import load_matching_split

        card = self.base_card()
        split, _ = load_matching_split(card, data_dir)
        return split, list((card.get("lineage") or {}).get("forgotten_ids", []))

    # -- requests ---------------------------------------------------------------------------------------
    def add_request(
        self, kind: str, target: str, reason: str, submitter: str, split: Split, already_forgotten: Sequence[int]
    ) -> RequestRow:
        """Records a request: ``pending`` when it fits, ``rejected`` (with the reason) when it does not.

        Args:
            kind: ``class``, ``samples`` or ``group``.
            target: Classes, sample ids (or a file of them) or ``COLUMN=VALUE``.
            reason: Why it was asked for (free text, kept in the record).
            submitter: Who asked.
            split: The bound dataset (:meth:`load_split`).
            already_forgotten: Ids the base model had forgotten before the ledger began.

        Returns:
            The stored row (check ``status``).
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
        with self.transaction() as c:
            if req is not None:
                accepted = [RequestRow.from_sql(r) for r in c.execute(
                    "SELECT * FROM requests WHERE status IN ('pending', 'running', 'done') ORDER BY id")]  # fmt: skip
                key = dedup_key(req)
                dup = next((r for r in accepted if r.spec and dedup_key(r.request) == key), None)
                if dup is not None:
                    problem = f"duplicate of #{dup.id} ({dup.status})"
                else:
                    try:
                        covered = covered_ids(split, [(r.id, r.request) for r in accepted], already_forgotten)
                        validate_request(split, req, covered, already_forgotten)
                    except RequestError as e:
                        problem = str(e)
            stored_target = target_text(req) if req is not None else str(target)
            cur = c.execute(
                "INSERT INTO requests (kind, target, submitter, reason, created, status, note, spec, dedup_key) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (kind, stored_target, submitter, reason, now_iso(), "rejected" if problem else "pending", problem,
                 json.dumps(req.to_dict()) if req is not None else None,
                 dedup_key(req) if req is not None else None),
            )  # fmt: skip
            rid = int(cur.lastrowid)  # type: ignore[arg-type]
            self._event("submitted", rid, kind=kind, target=_short(stored_target, 200), submitter=submitter)
            if problem:
                self._event("rejected", rid, reason=problem)
        return self.request(rid)

    def request(self, request_id: int) -> RequestRow:
        """One request.

        Raises:
            LedgerError: If there is no such request.
        """
        # SQLite integers are 64-bit: a larger id (typed by a user) cannot exist, and would not even bind.
        fits = -(2**63) <= request_id < 2**63
        row = self.conn.execute("SELECT * FROM requests WHERE id = ?", (request_id,)).fetchone() if fits else None
        if row is None:
            raise LedgerError(f"no request #{request_id} in {self.path}")
        return RequestRow.from_sql(row)

    def requests(self, status: str | None = None) -> list[RequestRow]:
        """Every request (optionally of one status), in submission order."""
        if status is None:
            rows = self.conn.execute("SELECT * FROM requests ORDER BY id")
        else:
            rows = self.conn.execute("SELECT * FROM requests WHERE status = ? ORDER BY id", (status,))
        return [RequestRow.from_sql(r) for r in rows]

    def events(self, request_id: int | None = None) -> list[dict[str, Any]]:
        """The event log (optionally of one request), oldest first."""
        if request_id is None:
            rows = self.conn.execute("SELECT * FROM events ORDER BY id")
        else:
            rows = self.conn.execute("SELECT * FROM events WHERE request_id = ? ORDER BY id", (request_id,))
        return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]

    # -- model versions ---------------------------------------------------------------------------------
    def _model_row(self, digest: str) -> sqlite3.Row | None:
        return self.conn.execute("SELECT * FROM models WHERE hash = ?", (digest,)).fetchone()

    def model(self, digest: str) -> ModelVersion:
        """A registered version by full hash or unique prefix.

        Raises:
            LedgerError: If no (or more than one) version matches.
        """
        prefix = digest.strip().lower()
        if not prefix:
            raise LedgerError("no model hash given")
        if len(prefix) > 64 or not _HEX.fullmatch(prefix):
            raise LedgerError(f"{digest!r} is not a sha256 hash or prefix: use hexadecimal digits (0-9, a-f) only")
        # Compare the prefix literally: with LIKE, '_' and '%' in user input would act as wildcards.
        rows = self.conn.execute("SELECT * FROM models WHERE substr(hash, 1, ?) = ? ORDER BY created, rowid",
                                 (len(prefix), prefix)).fetchall()  # fmt: skip
        if len(rows) != 1:
            what = "no model version" if not rows else f"{len(rows)} model versions"
            raise LedgerError(f"{what} in {self.path} match hash {digest!r}")
        return ModelVersion.from_sql(rows[0])

    def models(self) -> list[ModelVersion]:
        """Every registered version, oldest first."""
        return [ModelVersion.from_sql(r) for r in self.conn.execute("SELECT * FROM models ORDER BY created, rowid")]

    def served_hash(self) -> str | None:
        """The hash of the model currently served (``None`` before binding)."""
        row = self.conn.execute("SELECT hash FROM served WHERE id = 1").fetchone()
        return row[0] if row else None

    def lineage(self, digest: str | None = None) -> list[ModelVersion]:
        """The chain of versions from the root to ``digest`` (default: the served model)."""
        if digest is None:
            served = self.served_hash()
            if served is None:
                raise LedgerError(f"{self.path} is not bound to a model yet: it has no lineage")
            digest = served
        head = self.model(digest)
        chain = [head]
        while chain[-1].parent_hash is not None:
            chain.append(self.model(chain[-1].parent_hash))
        return chain[::-1]

    def check_model_file(self, version: ModelVersion) -> Path:
        """The version's folder, after checking its weights still hash to the registered value.

        Raises:
            CorruptModel: If the file is missing or its sha256 differs.
        """
        d = self.model_dir(version)
        weights = d / WEIGHTS
        if not weights.is_file():
            raise CorruptModel(f"model version {version.hash[:12]} is missing its weights ({weights})")
        if sha256_file(weights) != version.hash:
            raise CorruptModel(f"model version {version.hash[:12]} is corrupt: {weights} no longer matches its "
                               "registered sha256")  # fmt: skip
        return d

    # -- serving: claim, heartbeat, finish --------------------------------------------------------------
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
        with self.transaction() as c:
            running = [RequestRow.from_sql(r) for r in c.execute(
                "SELECT * FROM requests WHERE status = 'running' ORDER BY id")]  # fmt: skip
            if running:
                dead = [r for r in running if force or not self._worker_alive(r, stale_after)]
                live = [r for r in running if r not in dead]
                if live:
                    return Claim("wait", live)
                if not resume:
                    return Claim("blocked", dead)
                served = self.served_hash()
                ids = [r.id for r in dead]
                c.executemany(
                    "UPDATE requests SET worker_pid = ?, worker_host = ?, worker_start = ?, claimed_at = ?, "
                    "heartbeat = ?, phase = 'claimed', attempts = attempts + 1, parent_hash = ? WHERE id = ?",
                    [(worker.pid, worker.host, worker.start, now_iso(), now_iso(), served, i) for i in ids],
                )  # fmt: skip
                for r in dead:
                    prev = r.worker.describe() if r.worker else "unknown worker"
                    self._event("resumed", r.id, worker=worker.describe(), previous_worker=prev, parent=served,
                                forced=force)  # fmt: skip
                return Claim("claimed", [self.request(i) for i in ids], resumed=True)
            pending = [RequestRow.from_sql(r) for r in c.execute(
                "SELECT * FROM requests WHERE status = 'pending' ORDER BY id LIMIT ?", (max(1, batch),))]  # fmt: skip
            if not pending:
                return Claim("idle")
            served = self.served_hash()
            if served is None:
                raise LedgerError(f"{self.path} is not bound to a model yet: pass --checkpoint DIR")
            batch_id = pending[0].id if len(pending) > 1 else None
            for r in pending:
                c.execute(
                    "UPDATE requests SET status = 'running', worker_pid = ?, worker_host = ?, worker_start = ?, "
                    "claimed_at = ?, heartbeat = ?, phase = 'claimed', attempts = attempts + 1, parent_hash = ?, "
                    "batch_id = ? WHERE id = ? AND status = 'pending'",
                    (worker.pid, worker.host, worker.start, now_iso(), now_iso(), served, batch_id, r.id),
                )  # fmt: skip
                self._event("claimed", r.id, worker=worker.describe(), parent=served, batch=batch_id)
            return Claim("claimed", [self.request(r.id) for r in pending])

    def _worker_alive(self, row: RequestRow, stale_after: float) -> bool:
        w = row.worker
        if w is None:
            return False
        if w.pid == os.getpid() and w.host == socket.gethostname():
            return row.id in _SERVING
        alive = w.is_alive()
        if alive is not None:
            return alive
        beat = datetime.fromisoformat(row.heartbeat) if row.heartbeat else None
        return beat is not None and (datetime.now(timezone.utc) - beat).total_seconds() < stale_after

    def _owned(self, ids: Sequence[int], worker: Worker) -> list[RequestRow]:
        rows = [self.request(i) for i in ids]
        lost = [r for r in rows if r.status != "running" or r.worker != worker]
        if lost:
            who = lost[0].worker.describe() if lost[0].worker else "-"
            raise LostClaim(f"request #{lost[0].id} is no longer ours (status {lost[0].status}, worker {who}): "
                            "another worker took it over")  # fmt: skip
        return rows

    def set_phase(self, ids: Sequence[int], worker: Worker, phase: str) -> None:
        """Records what the worker is doing (``unlearning``, ``verifying``, ``certifying``) for operators."""
        with self.transaction() as c:
            self._owned(ids, worker)
            c.executemany("UPDATE requests SET phase = ?, heartbeat = ? WHERE id = ?",
                          [(phase, now_iso(), i) for i in ids])  # fmt: skip

    def release(self, ids: Sequence[int], worker: Worker, why: str) -> None:
        """Puts claimed requests back to ``pending`` (the worker could not serve them; not their fault)."""
        with self.transaction() as c:
            for r in self._owned(ids, worker):
                c.execute("UPDATE requests SET status = 'pending', phase = NULL, worker_pid = NULL, "
                          "worker_host = NULL, worker_start = NULL, batch_id = NULL WHERE id = ?", (r.id,))  # fmt: skip
                self._event("released", r.id, reason=why)

    def fail(self, ids: Sequence[int], worker: Worker, error: str) -> None:
        """Marks claimed requests ``failed`` with the error."""
        with self.transaction() as c:
            for r in self._owned(ids, worker):
                c.execute("UPDATE requests SET status = 'failed', phase = NULL, note = ?, finished_at = ? "
                          "WHERE id = ?", (error, now_iso(), r.id))  # fmt: skip
                self._event("failed", r.id, error=error)

    def retry(self, ids: Sequence[int]) -> list[RequestRow]:
        """Puts ``failed`` requests back to ``pending``, so the next ``process`` serves them (all or none).

        Args:
            ids: Request ids; each must exist and be ``failed``.

        Returns:
            The requests, now pending.

        Raises:
            LedgerError: If an id is unknown or not failed, or the same deletion is pending, running or done
                under another request (retrying it would serve it twice); nothing is changed then.
        """
        if not ids:
            raise LedgerError("give the id of at least one failed request")
        with self.transaction() as c:
            rows = [self.request(i) for i in dict.fromkeys(ids)]
            for r in rows:
                if r.status != "failed":
                    raise LedgerError(f"request #{r.id} is {r.status}, not failed: only failed requests can be retried")
            active = [RequestRow.from_sql(x) for x in c.execute(
                "SELECT * FROM requests WHERE status IN ('pending', 'running', 'done') ORDER BY id")]  # fmt: skip
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
                self._event("retried", r.id, reason="retry", previous_error=r.note)
        return [self.request(r.id) for r in rows]

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
        with self.transaction() as c:
            rows = self._owned(ids, worker)
            parent = rows[0].parent_hash
            served = self.served_hash()
            if served != parent:
                raise LedgerError(f"the served model moved from {str(parent)[:12]} to {str(served)[:12]} while "
                                  f"request #{rows[0].id} was being served")  # fmt: skip
            if child_hash != parent:  # an unlearning run that changed nothing registers no new version
                if self._model_row(child_hash) is not None:
                    raise LedgerError(f"model {child_hash[:12]} is already registered: a version cannot "
                                      "appear twice in the chain")  # fmt: skip
                c.execute("INSERT INTO models (hash, parent_hash, created_by, path, config, metrics, created) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?)",
                          (child_hash, parent, rows[0].id, child_path, json.dumps(config, default=str),
                           json.dumps(metrics, default=str), now_iso()))  # fmt: skip
                self._event("model_registered", rows[0].id, hash=child_hash, parent=parent)
                c.execute("UPDATE served SET hash = ?, updated = ? WHERE id = 1", (child_hash, now_iso()))
                self._event("served_moved", rows[0].id, old=parent, new=child_hash)
            for r in rows:
                c.execute(
                    "UPDATE requests SET status = 'done', phase = NULL, child_hash = ?, finished_at = ?, "
                    "certificate = ? WHERE id = ?",
                    (child_hash, now_iso(), certificates.get(r.id), r.id),
                )
                self._event("done", r.id, child=child_hash, certificate=certificates.get(r.id))

    def clean_orphans(self) -> list[Path]:
        """Removes work folders and unregistered model folders (left by a worker that died mid-run).

        Only call it while holding a claim: claims serialise, so no other worker is writing files then.
        """
        removed: list[Path] = []
        tmp = self.store / "tmp"
        if tmp.is_dir():
            for p in tmp.iterdir():
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                removed.append(p)
        models = self.store / "models"
        known = {m.path for m in self.models()}
        if models.is_dir():
            for p in models.iterdir():
                if f"models/{p.name}" not in known:
                    shutil.rmtree(p, ignore_errors=True)
                    removed.append(p)
        if removed:
            with self.transaction():
                self._event("orphans_removed", None, paths=[str(p.relative_to(self.store)) for p in removed])
        return removed


class Heartbeat:
    """A background thread that refreshes the heartbeat of the requests a worker holds.

    It uses its own connection (SQLite connections are not shared across threads here) and only touches
    rows that are still running under this worker.
    """

    def __init__(self, ledger: Ledger, ids: Sequence[int], worker: Worker, every: float = 2.0) -> None:
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
