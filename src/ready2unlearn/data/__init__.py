"""Datasets, deterministic splits, deletion requests and their views."""

from ready2unlearn.data.base import ArrayDataset, DataSpec, Split
from ready2unlearn.data.files import data_root
from ready2unlearn.data.registry import DATASETS, DataConfig, DatasetInfo, load_qa, load_split
from ready2unlearn.data.request import DeletionRequest, RequestViews

__all__ = [
    "DATASETS",
    "ArrayDataset",
    "DataConfig",
    "DataSpec",
    "DatasetInfo",
    "DeletionRequest",
    "RequestViews",
    "Split",
    "data_root",
    "load_qa",
    "load_split",
]
