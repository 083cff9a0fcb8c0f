"""A sequence of deletion requests resolved against the data each one leaves.

Requests arrive one after another over a model's life; request *i* names rows of the training data left
after requests ``1..i-1`` (and after whatever the model's lineage already forgot). Resolving the whole
sequence up front validates every request before any unlearning runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ready2unlearn.data.base import ArrayDataset, Split
from ready2unlearn.data.request import DeletionRequest, RequestViews
from ready2unlearn.errors import RequestError


def remaining(train: ArrayDataset, forgotten: Sequence[int]) -> ArrayDataset:
    """Training rows whose ids have not been forgotten by an earlier request."""
    if not forgotten:
        return train
    keep = np.flatnonzero(~np.isin(train.ids.numpy(), np.asarray(forgotten, dtype=np.int64)))
    return train.subset(keep)


def plan_requests(
    split: Split, requests: Sequence[DeletionRequest], already_forgotten: Sequence[int]
) -> list[RequestViews]:
    """Resolves each request against the data left after the previous ones (validates the whole sequence).

    Raises:
        RequestError: If any request does not fit; nothing has been run yet.
    """
    forgotten = list(already_forgotten)
    plans = []
    for i, req in enumerate(requests):
        train = remaining(split.train, forgotten)
        try:
            views = req.resolve(train, split.test, split.spec.num_classes)
        except RequestError as e:
            where = f"request {i + 1} ({req.describe()})" if len(requests) > 1 else f"request {req.describe()}"
            already = " (some may have been forgotten by an earlier request)" if forgotten else ""
            raise RequestError(f"{where}: {e}{already}") from None
        plans.append(views)
        forgotten += views.forget.ids.tolist()
    return plans
