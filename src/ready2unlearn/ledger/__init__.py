"""Deletion-request ledger: a durable queue of requests, model lineage, and a certificate per request.

- :mod:`~ready2unlearn.ledger.schema` — the SQLite schema and its migrations (``PRAGMA user_version``);
- :mod:`~ready2unlearn.ledger.requests` — request targets, duplicate keys, validation against the dataset;
- :mod:`~ready2unlearn.ledger.store` — :class:`Ledger`, the facade over the parts below;
- :mod:`~ready2unlearn.ledger.db` — opening the file safely, transactions, the event log, row readers;
- :mod:`~ready2unlearn.ledger.submissions` — adding requests (duplicates, validation, covered ids);
- :mod:`~ready2unlearn.ledger.covered` — the covered-ids table, kept incrementally;
- :mod:`~ready2unlearn.ledger.queue` — exactly-once claims, worker liveness, heartbeats, fail / retry / done;
- :mod:`~ready2unlearn.ledger.versions` — binding, model versions and lineage, the served pointer;
- :mod:`~ready2unlearn.ledger.records` / :mod:`~ready2unlearn.ledger.errors` — row records and exceptions;
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
