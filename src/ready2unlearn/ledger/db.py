"""Opening the ledger's SQLite file safely, transactions, the event log and the row readers.

Only the write verbs (``request add``, ``process``, ``retry``) open the file for writing, and only a file
that already is a ledger, or an empty one, is ever given the schema: a foreign SQLite file is refused
untouched. Readers (``request list`` / ``show``, ``lineage``, ``certificate verify --ledger``) open it with
``mode=ro`` and never migrate, so looking at a ledger never changes it.

Every state change happens in a ``BEGIN IMMEDIATE`` transaction (:meth:`Database.transaction`): the write
lock is taken *before* the rows are read, so two workers can never both see request 7 as pending.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ready2unlearn.artifacts import now_iso
from ready2unlearn.ledger import schema
from ready2unlearn.ledger.errors import LedgerError
from ready2unlearn.ledger.records import RequestRow

_SQLITE_MAGIC = b"SQLite format 3\x00"
#: Tables every ledger has had since schema version 1 (how a ledger is told from a foreign database).
LEDGER_TABLES = frozenset({"meta", "requests", "models", "events"})


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


def db_error(path: Path, e: sqlite3.Error) -> LedgerError:
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


def _connect_readonly(path: Path, timeout: float) -> sqlite3.Connection:
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


class Database:
    """The ledger's SQLite connection: opened safely, migrated (writers only), with transactions and the log.

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
            raise db_error(self.path, e) from None
        except BaseException:
            self.conn.close()
            raise

    def _open_readonly(self) -> sqlite3.Connection:
        _check_header(self.path, allow_empty=False)
        conn = _connect_readonly(self.path, self.timeout)
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
                probe = _connect_readonly(self.path, self.timeout)
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
            raise db_error(self.path, e) from None
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def event(self, event: str, request_id: int | None = None, **detail: Any) -> None:
        """Appends to the event log (call inside :meth:`transaction`, with the change it records)."""
        self.conn.execute("INSERT INTO events (ts, request_id, event, detail) VALUES (?, ?, ?, ?)",
                          (now_iso(), request_id, event, json.dumps(detail, sort_keys=True, default=str)))  # fmt: skip

    def meta(self, key: str, default: str | None = None) -> str | None:
        """A metadata value."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

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

    def events_after(self, after: int, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` events with an id above ``after``, oldest first (paging through the whole log)."""
        rows = self.conn.execute("SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?", (after, limit))
        return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]

    def status_counts(self) -> dict[str, int]:
        """How many requests have each status (every status listed, zeros included)."""
        counts = dict(self.conn.execute("SELECT status, count(*) FROM requests GROUP BY status").fetchall())
        return {s: int(counts.get(s, 0)) for s in schema.STATUSES}
