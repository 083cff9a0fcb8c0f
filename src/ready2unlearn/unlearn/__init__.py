"""Unlearning methods (one module each, registered in :data:`METHODS`), stop rules and the run config.

Importing this package registers every method module in it.
"""

import importlib
import pkgutil

from ready2unlearn.task import ClassificationTask
from ready2unlearn.unlearn.base import (
    METHODS,
    Batch,
    Context,
    MethodConfig,
    UnlearningMethod,
    build_method,
    method_config,
    register_method,
)
from ready2unlearn.unlearn.stop import StopConfig

# Modules that register no method (SISA is a training mode with its own exact deletion, not a gradient method).
_INFRA = {"base", "stop", "config", "sisa", "sisa_checkpoint"}
for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _mod not in _INFRA:
        importlib.import_module(f"{__name__}.{_mod}")

__all__ = [
    "METHODS",
    "Batch",
    "ClassificationTask",
    "Context",
    "MethodConfig",
    "StopConfig",
    "UnlearningMethod",
    "build_method",
    "method_config",
    "register_method",
]
