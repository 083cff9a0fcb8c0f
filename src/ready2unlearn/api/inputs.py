"""What the Python API accepts, turned into what the recipes take: datasets, requests, views.

The recipes work on :class:`~ready2unlearn.data.ArrayDataset` and :class:`~ready2unlearn.data.DeletionRequest`;
a user arrives with a Hugging Face ``datasets.Dataset``, a request typed as on the command line, or a plain
list of sample ids. Everything is converted here, once, so each API function stays a few readable lines.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from ready2unlearn.api.hf_datasets import from_hf_dataset, looks_like_hf_dataset
from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.data.request import DeletionRequest, RequestViews
from ready2unlearn.errors import ConfigError, DataError, RequestError

#: A deletion request as the API takes it: a request, its command-line form, or the sample ids to forget.
RequestLike = DeletionRequest | str | Iterable[int]


def as_array_dataset(data: Any, name: str = "train") -> ArrayDataset:
    """``data`` as an :class:`ArrayDataset` (a Hugging Face ``datasets.Dataset`` is converted with its defaults).

    Args:
        data: An ``ArrayDataset`` (returned as it is) or a ``datasets.Dataset``; for other column names call
            :func:`~ready2unlearn.api.from_hf_dataset` yourself.
        name: What the argument is called, for the error message.

    Raises:
        DataError: If ``data`` is neither.
    """
    if isinstance(data, ArrayDataset):
        return data
    if looks_like_hf_dataset(data):
        return from_hf_dataset(data)
    raise DataError(f"{name} must be an ArrayDataset or a Hugging Face datasets.Dataset, got {type(data).__name__}")


def as_request(request: RequestLike) -> DeletionRequest:
    """A :class:`DeletionRequest` from a request, a spec string (``class:3``, ``samples:1,2``) or sample ids.

    Raises:
        RequestError: If the spec is malformed or the ids are not integers.
    """
    if isinstance(request, DeletionRequest):
        return request
    if isinstance(request, str):
        return DeletionRequest.parse(request)
    if isinstance(request, torch.Tensor):
        request = request.tolist()
    if isinstance(request, Iterable):
        return DeletionRequest.for_samples(list(request))
    raise RequestError(f"a request must be a DeletionRequest, a spec like 'class:3' or sample ids, "
                       f"got {type(request).__name__}")  # fmt: skip


def count_classes(*datasets: ArrayDataset) -> int:
    """Number of classes: the largest label in any of ``datasets`` plus one.

    Raises:
        DataError: If there are no labels or a label is negative.
    """
    labels = [d.y for d in datasets if len(d)]
    if not labels:
        raise DataError("the training data is empty")
    lowest = min(int(y.min()) for y in labels)
    if lowest < 0:
        raise DataError(f"labels must be class indices 0..C-1, found {lowest}")
    return max(int(y.max()) for y in labels) + 1


def empty_like(data: ArrayDataset) -> ArrayDataset:
    """A dataset with ``data``'s columns and no rows (the test set of a caller that gives none)."""
    return data.subset(np.zeros(0, dtype=np.int64))


def resolve_views(train: Any, test: Any, request: RequestLike) -> tuple[RequestViews[ArrayDataset], ArrayDataset, int]:
    """Converts the inputs and resolves the request: ``(views, test, number of classes)``.

    Raises:
        DataError: On unusable data.
        RequestError: If the request does not fit the training data (unknown class, ids not in it...).
    """
    train_data = as_array_dataset(train, "train")
    test_data = empty_like(train_data) if test is None else as_array_dataset(test, "test")
    num_classes = count_classes(train_data, test_data)
    views = as_request(request).resolve(train_data, test_data, num_classes)
    return views, test_data, num_classes


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s parameters (the API runs where the model is).

    Raises:
        ConfigError: If ``model`` is not a module with parameters.
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    try:
        return next(model.parameters()).device
    except StopIteration:
        raise ConfigError(f"{type(model).__name__} has no parameters: there is nothing to train or unlearn") from None
