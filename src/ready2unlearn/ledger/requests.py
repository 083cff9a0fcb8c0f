"""Ledger requests: parsing ``--kind/--target``, duplicate keys, and validation against the bound dataset.

A ledger request is a :class:`~ready2unlearn.data.request.DeletionRequest` of kind ``class``, ``samples`` or
``group`` (``random`` is a benchmark device, not something a person asks for). Validation runs when the
request is submitted, against the data the ledger's model was trained on *minus* what earlier accepted
requests (pending, running or done) already cover, so a request that is accepted can be served later in
queue order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from ready2unlearn.data.base import Split
from ready2unlearn.data.request import DeletionRequest
from ready2unlearn.data.sequence import plan_requests
from ready2unlearn.errors import RequestError

LEDGER_KINDS: tuple[str, ...] = ("class", "samples", "group")


def parse_request(kind: str, target: str) -> DeletionRequest:
    """Builds the request for ``--kind KIND --target TARGET``.

    Args:
        kind: ``class``, ``samples`` or ``group``.
        target: ``3`` or ``3,5`` (classes); ``12,40`` or a file of ids (samples); ``COLUMN=VALUE`` (group).

    Raises:
        RequestError: On an unknown kind or a malformed target.
    """
    if kind not in LEDGER_KINDS:
        raise RequestError(f"unknown request kind {kind!r}; the ledger takes {', '.join(LEDGER_KINDS)}")
    if not str(target).strip():
        raise RequestError(f"a {kind} request needs a --target")
    return DeletionRequest.parse(f"{kind}:{target}")


def target_text(req: DeletionRequest) -> str:
    """The canonical target string stored in the ledger (ids spelled out and sorted)."""
    if req.kind == "class":
        return ",".join(map(str, sorted(req.classes)))
    if req.kind == "samples":
        return ",".join(map(str, sorted(req.sample_ids)))
    return f"{req.column}={req.value}"


def dedup_key(req: DeletionRequest) -> str:
    """A key equal for two requests that ask for the same thing (order of classes / ids ignored)."""
    return json.dumps({"kind": req.kind, "target": target_text(req)}, sort_keys=True)


def covered_ids(
    split: Split, accepted: Sequence[tuple[int, DeletionRequest]], already_forgotten: Sequence[int]
) -> dict[int, int]:
    """Sample id → id of the accepted request that forgets it, resolving the queue in order.

    Args:
        split: The ledger's dataset.
        accepted: ``(request id, request)`` of every pending, running and done request, in id order.
        already_forgotten: Ids the base checkpoint had already forgotten before the ledger began.
    """
    forgotten = list(already_forgotten)
    owner: dict[int, int] = {}
    for rid, req in accepted:
        (views,) = plan_requests(split, [req], forgotten)
        ids = views.forget.ids.tolist()
        forgotten += ids
        owner.update(dict.fromkeys(ids, rid))
    return owner


def validate_request(
    split: Split, req: DeletionRequest, covered: dict[int, int], already_forgotten: Sequence[int]
) -> list[int]:
    """Checks that ``req`` fits the dataset and can still be served after the requests already accepted.

    Returns:
        The ids ``req`` forgets once the accepted requests are served: what it adds to ``covered``.

    Raises:
        RequestError: With a one-line reason (unknown class or ids, missing group column, everything
            already covered by earlier requests, nothing left to retain).
    """
    # First against the whole training split: "unknown id" / "unknown class" reads better than "not in
    # what remains".
    views = req.resolve(split.train, split.test, split.spec.num_classes)
    base = set(int(i) for i in already_forgotten)
    ids = views.forget.ids.tolist()
    gone = [i for i in ids if i in base]
    if req.kind == "samples" and gone:
        raise RequestError(f"sample ids {gone[:5]} were already forgotten before this ledger began")
    taken = sorted({covered[i] for i in ids if i in covered})
    if req.kind == "samples" and taken:
        dup = [i for i in ids if i in covered][:5]
        raise RequestError(f"sample ids {dup} are already covered by request #{taken[0]}")
    left = [i for i in ids if i not in covered and i not in base]
    if not left:
        where = f"request #{taken[0]}" if taken else "the base model's earlier requests"
        raise RequestError(f"every sample it names is already covered by {where}")
    remaining = len(split.train) - len(base | set(covered) | set(left))
    if remaining <= 0:
        raise RequestError("serving it would forget every remaining training sample")
    # The exact resolution process will use (against what remains after the queue), as a last check; it is
    # also what a replay of the queue would resolve for this request.
    (final,) = plan_requests(split, [req], [*base, *covered])
    return final.forget.ids.tolist()


def forget_positions_after(split: Split, req: DeletionRequest, forgotten: Sequence[int]) -> np.ndarray:
    """Positions in ``split.train`` of the samples ``req`` forgets once ``forgotten`` is gone."""
    (views,) = plan_requests(split, [req], forgotten)
    return np.flatnonzero(np.isin(split.train.ids.numpy(), views.forget.ids.numpy()))
