"""Registered models. Importing this package registers ``mlp``, ``cnn``, ``resnet18`` and ``text_bag``."""

from ready2unlearn.models import text, vision  # noqa: F401  (registers the models)
from ready2unlearn.models.registry import MODELS, ModelConfig, build_model, count_parameters, model_config

__all__ = ["MODELS", "ModelConfig", "build_model", "count_parameters", "model_config"]
