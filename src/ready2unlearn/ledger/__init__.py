"""Deletion-request ledger: a durable queue of requests, model lineage, and a certificate per request.

- :mod:`~ready2unlearn.ledger.schema` — the SQLite schema and its migrations (``PRAGMA user_version``);
- :mod:`~ready2unlearn.ledger.requests` — request targets, duplicate keys, validation against the dataset;
- :mod:`~ready2unlearn.ledger.store` — :class:`Ledger`: requests, model versions, served pointer, event log;
- :mod:`~ready2unlearn.ledger.process` — the serving loop (calls the unlearning recipe and the evaluator);
- :mod:`~ready2unlearn.ledger.certificate` — ``certificate.json`` / ``.html`` and their verification.
"""

from ready2unlearn.ledger.certificate import verify_certificate, write_certificate
from ready2unlearn.ledger.process import NotHonoured, ProcessConfig, ProcessSummary, process
from ready2unlearn.ledger.store import Claim, Ledger, LedgerError, ModelVersion, RequestRejected, RequestRow, Worker

__all__ = [
    "Claim",
    "Ledger",
    "LedgerError",
    "ModelVersion",
    "NotHonoured",
    "ProcessConfig",
    "ProcessSummary",
    "RequestRejected",
    "RequestRow",
    "Worker",
    "process",
    "verify_certificate",
    "write_certificate",
]
