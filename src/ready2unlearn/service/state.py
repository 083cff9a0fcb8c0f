"""What the app keeps between calls: its config, the bound dataset (loaded once) and the worker pool."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import HTTPException, Request

from ready2unlearn.data.base import Split
from ready2unlearn.ledger.records import RequestRow
from ready2unlearn.ledger.store import Ledger
from ready2unlearn.service.config import ServiceConfig
from ready2unlearn.service.workers import WorkerPool


@dataclass
class ServiceState:
    """Shared by every call of one app.

    Attributes:
        cfg: The service config.
        pool: The workers beside the server.
    """

    cfg: ServiceConfig
    pool: WorkerPool
    _split: tuple[Split, list[int]] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reader(self) -> Ledger:
        """A read-only connection (never creates, migrates or writes)."""
        return Ledger(self.cfg.ledger, readonly=True)

    def writer(self) -> Ledger:
        """A connection that may write (the file must exist)."""
        return Ledger(self.cfg.ledger, create=False)

    def split(self, ledger: Ledger) -> tuple[Split, list[int]]:
        """The bound dataset and the ids its base model had forgotten, loaded on first use.

        The binding never changes once made (the base version is the root of the lineage), so one load
        serves every later submission; a lock keeps concurrent first submissions from loading it twice.
        """
        with self._lock:
            if self._split is None:
                self._split = ledger.load_split(self.cfg.data_dir)
            return self._split

    def certificate_path(self, ledger: Ledger, row: RequestRow) -> Path:
        """The certificate file of a done request, checked to lie inside the ledger's store.

        Raises:
            HTTPException: 404 when the request has no certificate, or its recorded path would leave the
                store (a hand-edited row must not turn a download into a read of any file on the server).
        """
        if not row.certificate:
            raise HTTPException(404, f"request #{row.id} has no certificate (status {row.status})")
        store = ledger.store.resolve()
        path = (store / row.certificate).resolve()
        if not path.is_relative_to(store) or not path.is_file():
            raise HTTPException(404, f"the certificate of request #{row.id} is not in the ledger's store")
        return path


def state_of(request: Request) -> ServiceState:
    """The app's :class:`ServiceState`."""
    return request.app.state.r2u  # type: ignore[no-any-return]
