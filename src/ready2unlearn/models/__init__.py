"""Registered models. Importing this package registers the vision, text and Hugging Face models."""

from ready2unlearn.models import hf, text, vision  # noqa: F401  (registers the models)
from ready2unlearn.models.registry import MODELS, ModelConfig, build_model, count_parameters, model_config

__all__ = ["MODELS", "ModelConfig", "build_model", "count_parameters", "model_config"]
