"""Unlearning methods, one module each, registered in :data:`METHODS`.

Importing this package registers every method module in it. The contract they implement (config, method
class, registry), the stop rules and the run config live with the loop that drives them, in
:mod:`ready2unlearn.engine`; they are re-exported here so ``from ready2unlearn.unlearn import ...`` keeps
naming everything a method author needs.
"""

import importlib
import pkgutil

from ready2unlearn.engine.method import (
    METHODS,
    Batch,
    Context,
    MethodConfig,
    UnlearningMethod,
    build_method,
    method_config,
    register_method,
)
from ready2unlearn.engine.stop import StopConfig
from ready2unlearn.task import ClassificationTask

# Modules that register no method (SISA is a training mode with its own exact deletion, not a gradient method).
_INFRA = {"sisa", "sisa_checkpoint"}
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
