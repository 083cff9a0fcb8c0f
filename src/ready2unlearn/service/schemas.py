"""Request and response bodies of the service's API (pydantic), validated before the ledger is touched.

What a field may hold is stricter than the command line, because the body comes from another machine:

- ``kind`` is one of the ledger's kinds;
- ``target`` has the grammar of its kind and is never a file name (``r2u request add --target ids.txt``
  reads a file on the operator's machine; over HTTP that would read the *server's* files): class ids
  ``3`` or ``3,5``; sample ids ``12,40,975``; a group ``COLUMN=VALUE`` with an identifier column;
- ``submitter`` (who asked: a person or a ticket) is 1–200 letters, digits, spaces and ``.@+-_'#:``;
- ``reason`` is free text (people write apostrophes, quotes and semicolons), 1–2000 characters with no
  control characters but newline and tab. It is stored verbatim through bound SQL parameters and escaped
  wherever it is shown, which is what makes it safe; refusing prose that *looks* like SQL would only
  refuse honest reasons.

Unknown fields are refused (``extra="forbid"``), so a typo in a field name is an error, not a silent default.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ready2unlearn.ledger.records import RequestRow

_CLASS = re.compile(r"\d{1,9}(\s*,\s*\d{1,9})*")
_SAMPLES = re.compile(r"\d{1,18}(\s*,\s*\d{1,18})*")
_GROUP = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}=[^\x00-\x1f\x7f=]{1,256}")
_SUBMITTER = re.compile(r"[\w .@+\-'#:]{1,200}")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class SubmitRequest(BaseModel):
    """``POST /api/v1/requests``: a deletion request."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    kind: Literal["class", "samples", "group"] = Field(description="What is to be forgotten.")
    target: str = Field(min_length=1, max_length=60000,
                        description="class: `3` or `3,5`; samples: `12,40,975`; group: `COLUMN=VALUE`.")  # fmt: skip
    reason: str = Field(min_length=1, max_length=2000, description="Why it was asked for (kept in the record).")
    submitter: str | None = Field(default=None, description="Who asked (default: the token's name).")

    @field_validator("reason")
    @classmethod
    def _reason(cls, v: str) -> str:
        if _CONTROL.search(v):
            raise ValueError("reason may not contain control characters (newline and tab are fine)")
        return v

    @field_validator("submitter")
    @classmethod
    def _submitter(cls, v: str | None) -> str | None:
        if v is not None and not _SUBMITTER.fullmatch(v):
            raise ValueError("submitter must be 1-200 letters, digits, spaces or . @ + - _ ' # :")
        return v

    @model_validator(mode="after")
    def _target(self) -> SubmitRequest:
        grammar = {"class": _CLASS, "samples": _SAMPLES, "group": _GROUP}[self.kind]
        if not grammar.fullmatch(self.target):
            shape = {"class": "class ids like 3 or 3,5", "samples": "sample ids like 12,40,975 (inline, no files)",
                     "group": "COLUMN=VALUE with an identifier column"}[self.kind]  # fmt: skip
            raise ValueError(f"target of a {self.kind} request must be {shape}")
        return self


class Event(BaseModel):
    """One entry of the append-only event log."""

    id: int
    ts: str
    request_id: int | None
    event: str
    detail: dict[str, Any]


class RequestOut(BaseModel):
    """A request as the API shows it."""

    id: int
    kind: str
    target: str
    submitter: str
    reason: str
    created: str
    status: str
    note: str | None = None
    phase: str | None = None
    attempts: int = 0
    parent_hash: str | None = None
    child_hash: str | None = None
    finished_at: str | None = None
    token: str | None = None
    worker: dict[str, Any] | None = Field(None, description="Host and pid of the worker serving it (while running).")
    certificate: bool = Field(False, description="Whether a certificate was issued (download it from .../certificate).")

    @classmethod
    def of(cls, row: RequestRow) -> RequestOut:
        """The view of a ledger row."""
        d = row.to_dict()
        d["certificate"] = bool(row.certificate)
        return cls(**{k: d[k] for k in cls.model_fields})


class RequestDetail(RequestOut):
    """A request with its events."""

    events: list[Event]


class Check(BaseModel):
    """One check of a certificate verification."""

    name: str
    ok: bool
    detail: str


class Verification(BaseModel):
    """``GET /api/v1/requests/{id}/certificate/verify``."""

    request_id: int
    ok: bool
    checks: list[Check]


class Version(BaseModel):
    """One model version of the lineage."""

    hash: str
    parent_hash: str | None
    created_by: int | None
    created: str
    served: bool


class ProcessState(BaseModel):
    """The queue and the workers serving it."""

    counts: dict[str, int]
    running: list[RequestOut]
    workers: list[dict[str, Any]]
    served_model: str | None


class TriggerOut(BaseModel):
    """``POST /api/v1/process``."""

    started: bool
    detail: str
    workers: list[dict[str, Any]]


class WhoAmI(BaseModel):
    """The token a call was made with."""

    name: str
    role: str
