"""ready2unlearn: keep machine-learning models ready to forget.

Public API (stable names; see the README for a tour):

- data: :class:`DataConfig`, :func:`load_split`, :class:`DeletionRequest`
- models: :func:`build_model`, :data:`MODELS`
- training: :class:`TrainConfig`, :func:`fit`, :func:`train`
- artifacts: :func:`save_checkpoint`, :func:`load_checkpoint`
"""

from importlib import metadata

from ready2unlearn.artifacts import save_checkpoint
from ready2unlearn.checkpoint import Checkpoint, load_checkpoint
from ready2unlearn.data import (
    DATASETS,
    ArrayDataset,
    DataConfig,
    DataSpec,
    DeletionRequest,
    Split,
    load_split,
)
from ready2unlearn.errors import ConfigError, DataError, R2UError, RequestError
from ready2unlearn.models import MODELS, ModelConfig, build_model
from ready2unlearn.optim import OptimConfig
from ready2unlearn.recipes.train import TrainConfig, fit
from ready2unlearn.recipes.train import run as train

try:
    __version__ = metadata.version("ready2unlearn")
except metadata.PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = [
    "DATASETS",
    "MODELS",
    "ArrayDataset",
    "Checkpoint",
    "ConfigError",
    "DataConfig",
    "DataError",
    "DataSpec",
    "DeletionRequest",
    "ModelConfig",
    "OptimConfig",
    "R2UError",
    "RequestError",
    "Split",
    "TrainConfig",
    "__version__",
    "build_model",
    "fit",
    "load_checkpoint",
    "load_split",
    "save_checkpoint",
    "train",
]
