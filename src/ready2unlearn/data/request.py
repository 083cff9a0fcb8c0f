"""Deletion requests and the forget / retain / test-forget / test-retain views they induce.

A request says *what* must be forgotten, in the data's own terms:

- ``class``: every training sample of one or more labels (``class:3``, ``class:3,5``);
- ``samples``: explicit sample ids (``samples:12,40,977`` or ``samples:ids.txt``);
- ``random``: a random fraction of the training set, for benchmarks (``random:0.01``, ``random:0.1@seed``);
- ``group``: every sample whose group column has a value, e.g. one user's data (``group:author=199``).

Validation happens twice: the request's own shape when it is built, and its fit to a dataset when it is
resolved (unknown class, ids outside the training split, empty forget set, nothing left to retain). Each
failure is a one-line :class:`~ready2unlearn.errors.RequestError`.
"""

from __future__ import annotations

import json
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar

import numpy as np

from ready2unlearn.errors import RequestError

RequestKind = Literal["class", "samples", "random", "group"]
KINDS: tuple[str, ...] = ("class", "samples", "random", "group")


class _Rows(Protocol):
    ids: Any
    groups: Any

    def __len__(self) -> int: ...

    @property
    def labels(self) -> np.ndarray | None: ...

    def subset(self, index: Any) -> Any: ...


D = TypeVar("D", bound=_Rows)


@dataclass(frozen=True)
class DeletionRequest:
    """What must be forgotten. Build with the classmethods or :meth:`parse`.

    Attributes:
        kind: ``class``, ``samples``, ``random`` or ``group``.
        classes: Labels to forget (``class``).
        sample_ids: Sample ids to forget (``samples``).
        fraction: Share of the training set to forget, in (0, 1) (``random``).
        seed: Seed of the random draw (``random``).
        column: Group column name (``group``).
        value: Group value whose rows are forgotten (``group``).
    """

    kind: RequestKind
    classes: tuple[int, ...] = ()
    sample_ids: tuple[int, ...] = ()
    fraction: float | None = None
    seed: int = 0
    column: str | None = None
    value: str | int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise RequestError(f"unknown request kind {self.kind!r}; use one of {', '.join(KINDS)}")
        if self.kind == "class" and not self.classes:
            raise RequestError("a class request needs at least one class")
        if self.kind == "samples" and not self.sample_ids:
            raise RequestError("a samples request needs at least one sample id (the forget set is empty)")
        if self.kind == "random" and (self.fraction is None or not 0.0 < self.fraction < 1.0):
            raise RequestError(f"a random request needs a fraction strictly between 0 and 1, got {self.fraction}")
        if self.kind == "group" and (not self.column or self.value is None):
            raise RequestError("a group request needs a column and a value (group:COLUMN=VALUE)")
        for name, ids in (("class", self.classes), ("sample id", self.sample_ids)):
            for i in ids:
                _check_id(i, name)
            if len(set(ids)) != len(ids):
                raise RequestError(f"duplicate {name}s in the request: {sorted(ids)}")

    @classmethod
    def for_classes(cls, *classes: int) -> DeletionRequest:
        """Forget every training sample of the given labels."""
        return cls("class", classes=tuple(_as_id(c, "class") for c in classes))

    @classmethod
    def for_samples(cls, ids: list[int] | np.ndarray | tuple[int, ...]) -> DeletionRequest:
        """Forget the samples with these ids."""
        return cls("samples", sample_ids=tuple(_as_id(i, "sample id") for i in ids))

    @classmethod
    def for_random(cls, fraction: float, seed: int = 0) -> DeletionRequest:
        """Forget a uniformly random ``fraction`` of the training set."""
        return cls("random", fraction=float(fraction), seed=seed)

    @classmethod
    def for_group(cls, column: str, value: str | int) -> DeletionRequest:
        """Forget every sample whose ``column`` equals ``value``."""
        return cls("group", column=column, value=value)

    @classmethod
    def parse(cls, text: str) -> DeletionRequest:
        """Parses the command-line form ``KIND:SPEC`` (see the module docstring).

        Raises:
            RequestError: On an unknown kind or a malformed spec.
        """
        kind, sep, spec = text.partition(":")
        kind, spec = kind.strip(), spec.strip()
        if not sep or not spec:
            raise RequestError(f"request {text!r} must look like KIND:SPEC, e.g. class:3, random:0.01, "
                               "samples:ids.txt, group:author=7")  # fmt: skip
        try:
            if kind == "class":
                return cls.for_classes(*(int(c) for c in spec.split(",")))
            if kind == "random":
                frac, _, seed = spec.partition("@")
                return cls.for_random(float(frac), int(seed) if seed else 0)
            if kind == "samples":
                return cls.for_samples(_read_ids(spec))
            if kind == "group":
                column, eq, value = spec.partition("=")
                if not eq or not column or not value:
                    raise RequestError(f"group request {text!r} must look like group:COLUMN=VALUE")
                return cls.for_group(column.strip(), int(value) if value.strip().lstrip("-").isdigit() else value)
        except ValueError as e:
            if isinstance(e, RequestError):
                raise
            raise RequestError(f"request {text!r}: {e}") from None
        raise RequestError(f"unknown request kind {kind!r} in {text!r}; use one of {', '.join(KINDS)}")

    def describe(self) -> str:
        """Short human form, the inverse of :meth:`parse` for inline specs."""
        if self.kind == "class":
            return "class:" + ",".join(map(str, self.classes))
        if self.kind == "random":
            return f"random:{self.fraction}@{self.seed}"
        if self.kind == "group":
            return f"group:{self.column}={self.value}"
        return f"samples:{len(self.sample_ids)} ids"

    def to_dict(self) -> dict[str, Any]:
        """Plain data for cards and ledgers (only the fields the kind uses)."""
        d: dict[str, Any] = {"kind": self.kind}
        if self.kind == "class":
            d["classes"] = list(self.classes)
        elif self.kind == "samples":
            d["sample_ids"] = list(self.sample_ids)
        elif self.kind == "random":
            d.update(fraction=self.fraction, seed=self.seed)
        else:
            d.update(column=self.column, value=self.value)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DeletionRequest:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        for key in ("classes", "sample_ids"):
            if key in d:
                d[key] = tuple(d[key])
        try:
            return cls(**d)
        except TypeError as e:
            raise RequestError(f"malformed request record: {e}") from None

    def forget_positions(self, train: _Rows, num_classes: int | None = None) -> np.ndarray:
        """Sorted row positions in ``train`` that this request forgets.

        Raises:
            RequestError: If the request does not fit the data or selects nothing / everything.
        """
        n = len(train)
        if self.kind == "class":
            labels = train.labels
            if labels is None:
                raise RequestError("class requests need labelled data; this dataset has none")
            known = set(range(num_classes)) if num_classes else set(np.unique(labels).tolist())
            bad = [c for c in self.classes if c not in known]
            if bad:
                raise RequestError(f"unknown class {bad[0]}: the dataset has classes {min(known)}..{max(known)}")
            pos = np.flatnonzero(np.isin(labels, self.classes))
        elif self.kind == "samples":
            ids = np.asarray(train.ids)
            wanted = np.asarray(self.sample_ids, dtype=np.int64)
            present = np.isin(wanted, ids)
            if not present.all():
                missing = wanted[~present][:5].tolist()
                raise RequestError(
                    f"sample ids {missing} are not in the training split (it holds {n} samples, "
                    f"ids {int(ids.min())}..{int(ids.max())})"
                )
            pos = np.flatnonzero(np.isin(ids, wanted))
        elif self.kind == "random":
            k = round(self.fraction * n)  # type: ignore[operator]
            if k == 0:
                raise RequestError(f"random:{self.fraction} of {n} training samples selects nothing")
            rng = np.random.default_rng(self.seed)
            pos = np.sort(rng.choice(n, size=k, replace=False))
        else:
            pos = np.flatnonzero(self._group_mask(train))
        if len(pos) == 0:
            raise RequestError(f"request {self.describe()} selects no training sample: the forget set is empty")
        if len(pos) == n:
            raise RequestError(f"request {self.describe()} selects every training sample: nothing would remain")
        return pos

    def _group_mask(self, rows: _Rows, required: bool = True) -> np.ndarray:
        groups = rows.groups
        if self.column not in groups:
            if not required:
                return np.zeros(len(rows), dtype=bool)
            cols = ", ".join(sorted(groups)) or "none"
            raise RequestError(f"the dataset has no group column {self.column!r} (it has: {cols})")
        col = np.asarray(groups[self.column])
        value = self.value
        if col.dtype.kind in "iu" and isinstance(value, str):
            raise RequestError(f"group column {self.column!r} holds integers, got value {value!r}")
        if col.dtype.kind not in "iu":
            col, value = col.astype(str), str(value)
        return col == value

    def resolve(self, train: D, test: D, num_classes: int | None = None) -> RequestViews[D]:
        """Splits the data into the four views unlearning and evaluation work on.

        ``test_forget`` holds the test rows "of the same kind" as the forget set: the forgotten classes for
        class requests, the group's rows for group requests (often none), and nothing for random and
        samples requests, whose natural test reference is the whole test set (``test_retain``).
        """
        forget_pos = self.forget_positions(train, num_classes)
        retain_pos = np.setdiff1d(np.arange(len(train)), forget_pos)
        if self.kind == "class":
            test_mask = np.isin(test.labels, self.classes)  # type: ignore[arg-type]
        elif self.kind == "group":
            test_mask = self._group_mask(test, required=False)
        else:
            test_mask = np.zeros(len(test), dtype=bool)
        return RequestViews(
            request=self,
            forget=train.subset(forget_pos),
            retain=train.subset(retain_pos),
            test_forget=test.subset(np.flatnonzero(test_mask)),
            test_retain=test.subset(np.flatnonzero(~test_mask)),
            forget_positions=forget_pos,
        )


@dataclass(frozen=True)
class RequestViews(Generic[D]):
    """The data a request induces: forget / retain parts of train, test-forget / test-retain of test."""

    request: DeletionRequest
    forget: D
    retain: D
    test_forget: D
    test_retain: D
    forget_positions: np.ndarray

    def sizes(self) -> dict[str, int]:
        """Row counts of the four views."""
        return {k: len(getattr(self, k)) for k in ("forget", "retain", "test_forget", "test_retain")}


#: Ids are stored as int64 (numpy, torch, SQLite): anything outside cannot name a sample.
_ID_MIN, _ID_MAX = -(2**63), 2**63 - 1


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_)) or str(getattr(value, "dtype", "")) in ("bool", "torch.bool")


def _id_text(value: Any) -> str:
    """How a rejected id is quoted: JSON spelling for booleans/null (what the user typed), else ``str``."""
    if _is_bool(value) or value is None:
        return json.dumps(None if value is None else bool(value))
    return str(value)


def _as_id(value: Any, name: str) -> int:
    """``value`` as a Python int, refusing what only looks like one.

    ``int(True)`` is 1, so without this a JSON ``[true]`` or a YAML ``yes`` would silently name sample 1;
    ``int(1.5)`` would truncate. Python, numpy and torch integers (anything with ``__index__``) and digit
    strings are fine.
    """
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return _check_id(int(value), name)  # "12" from a text field
    if _is_bool(value):
        raise RequestError(f"{_id_text(value)} is not a {name} (expected an integer)")
    try:
        return _check_id(operator.index(value), name)
    except TypeError:
        raise RequestError(f"{_id_text(value)} is not a {name} (expected an integer)") from None


def _check_id(value: Any, name: str) -> int:
    if _is_bool(value) or not isinstance(value, (int, np.integer)):
        raise RequestError(f"{_id_text(value)} is not a {name} (expected an integer)")
    if not _ID_MIN <= int(value) <= _ID_MAX:
        raise RequestError(f"{name} {value} is out of range (ids are 64-bit integers)")
    return int(value)


def _read_ids(spec: str) -> list[int]:
    """Ids from an inline list ``1,2,3`` or a file (JSON list, or integers separated by commas/whitespace)."""
    # An inline list is recognised before the file system is asked: a long list is no valid path
    # (stat() raises "File name too long"), and a file named "12,40" would be a strange thing to mean.
    if all(part.strip().lstrip("-").isdigit() for part in spec.split(",")):
        return [int(part) for part in spec.split(",")]
    p = Path(spec)
    try:
        is_dir, is_file = p.is_dir(), p.is_file()
    except OSError as e:  # e.g. a name longer than the file system allows
        raise RequestError(f"sample-id file {spec[:60]!r}… cannot be read ({e.strerror or e})") from None
    if is_dir:
        raise RequestError(f"sample-id file {spec!r} is a folder, not a file of ids")
    if not is_file:
        if spec.strip().lower() in ("true", "false", "yes", "no", "null", "none"):
            raise RequestError(f"{spec.strip().lower()} is not a sample id (give ids like 12,40 or a file of ids)")
        raise RequestError(f"sample-id file {spec!r} does not exist (or give the ids inline: samples:12,40)")
    try:
        text = p.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        raise RequestError(f"sample-id file {spec!r} is not UTF-8 text") from None
    except OSError as e:
        raise RequestError(f"cannot read sample-id file {spec!r} ({e.strerror or e})") from None
    try:
        if text.startswith("["):
            ids = json.loads(text)
            if not isinstance(ids, list):
                raise ValueError("the JSON must be a list of integers")
            return [_as_id(i, "sample id") for i in ids]
        return [int(tok) for tok in text.replace(",", " ").split()]
    except RequestError:
        raise
    except (ValueError, json.JSONDecodeError) as e:
        raise RequestError(f"sample-id file {spec!r} must hold integer ids ({e})") from None
