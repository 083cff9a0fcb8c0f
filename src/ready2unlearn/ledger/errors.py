"""What the ledger raises: one base class, so the CLI can turn any of them into a one-line message."""

from __future__ import annotations

from ready2unlearn.errors import R2UError, RequestError


class LedgerError(R2UError):
    """The ledger cannot do what was asked (not bound yet, unknown request or model, corrupt store)."""


class RequestRejected(RequestError):
    """A submitted request was recorded as ``rejected``; the message says why."""

    def __init__(self, request_id: int, reason: str) -> None:
        super().__init__(f"request #{request_id} rejected: {reason}")
        self.request_id = request_id
        self.reason = reason


class RequestRefused(RequestError):
    """A request was refused before anything was recorded (the service's answer; the CLI records rejections).

    Attributes:
        reason: Why, in one line (the same text ``r2u request add`` records as the rejection note).
        duplicate_of: The accepted request asking for the same deletion, when that is the reason.
    """

    def __init__(self, reason: str, duplicate_of: int | None = None) -> None:
        super().__init__(f"request refused: {reason}")
        self.reason = reason
        self.duplicate_of = duplicate_of


class CorruptModel(LedgerError):
    """A registered model version's file no longer matches its content hash."""


class LostClaim(LedgerError):
    """Another worker took over a request this worker was serving (``process --resume --force``)."""
