"""ready2unlearn: keep machine-learning models ready to forget.

Public API (stable names; see the README for a tour):

- data: :class:`DataConfig`, :func:`load_split`, :class:`DeletionRequest`
- models: :func:`build_model`, :data:`MODELS`
- training: :class:`TrainConfig`, :func:`fit`, :func:`train`
- unlearning in one call: :func:`unlearn`, :func:`evaluate`, :func:`retrain` (any ``nn.Module``, an
  ``ArrayDataset`` or a Hugging Face ``datasets.Dataset``: :func:`from_hf_dataset`); :class:`StopConfig`,
  :class:`UnlearnResult`
- artifacts: :func:`save_checkpoint`, :func:`load_checkpoint`

``unlearn`` and ``evaluate`` share their names with the subpackages :mod:`ready2unlearn.unlearn` (methods) and
:mod:`ready2unlearn.evaluate` (metrics): as attributes of the package they are the functions, and the
subpackages are imported by their full names (``from ready2unlearn.unlearn import METHODS``).
"""

from importlib import metadata

from ready2unlearn.api import evaluate, from_hf_dataset, plan, retrain, unlearn
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
from ready2unlearn.engine.fit import fit
from ready2unlearn.engine.stop import StopConfig
from ready2unlearn.engine.unlearn import UnlearnResult
from ready2unlearn.errors import ConfigError, DataError, R2UError, RequestError
from ready2unlearn.models import MODELS, ModelConfig, build_model
from ready2unlearn.optim import OptimConfig
from ready2unlearn.recipes.train import TrainConfig
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
    "StopConfig",
    "TrainConfig",
    "UnlearnResult",
    "__version__",
    "build_model",
    "evaluate",
    "fit",
    "from_hf_dataset",
    "load_checkpoint",
    "load_split",
    "plan",
    "retrain",
    "save_checkpoint",
    "train",
    "unlearn",
]
