"""Model registry: each model is a config dataclass plus a builder ``(config, DataSpec) -> nn.Module``.

Like PEFT's method registry, a model's config travels with its checkpoint: the card stores the resolved
config and the data spec, and :func:`build_model` rebuilds the exact architecture before loading weights.
Nothing else in the toolkit assumes these classes; any ``nn.Module`` works through the Python API.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from torch import nn

from ready2unlearn.config import check, dispatch_by_name, from_dict
from ready2unlearn.data.base import DataSpec, Kind
from ready2unlearn.registry import Registry


@dataclass
class ModelConfig:
    """Base of every model config; ``name`` picks the registered model (and its config subclass)."""

    name: str = "mlp"

    @classmethod
    def dispatch(cls, data: Mapping[str, Any]) -> type[ModelConfig]:
        """The config class registered for ``data["name"]`` (used by :func:`~ready2unlearn.config.from_dict`)."""
        return dispatch_by_name(data, MODELS, "model", getattr(cls, "name", "mlp"))


M = TypeVar("M", bound=ModelConfig)


@dataclass(frozen=True)
class ModelInfo(Generic[M]):
    """A registered model: its config class, builder, accepted input kinds and a one-line summary."""

    config_cls: type[M]
    build: Callable[[M, DataSpec], nn.Module]
    kinds: tuple[Kind, ...]
    summary: str


MODELS: Registry[ModelInfo[Any]] = Registry("model")


def register_model(
    name: str, config_cls: type[M], kinds: tuple[Kind, ...], summary: str
) -> Callable[[Callable[[M, DataSpec], nn.Module]], Callable[[M, DataSpec], nn.Module]]:
    """Decorator registering a builder under ``name`` with its config class."""

    def deco(build: Callable[[M, DataSpec], nn.Module]) -> Callable[[M, DataSpec], nn.Module]:
        MODELS.register(name, ModelInfo(config_cls, build, kinds, summary))
        return build

    return deco


def model_config(data: Mapping[str, Any] | ModelConfig) -> ModelConfig:
    """Builds the registered config subclass from plain data (``{"name": "cnn", ...}``)."""
    return data if isinstance(data, ModelConfig) else from_dict(ModelConfig, data, "model.")


def build_model(cfg: ModelConfig | Mapping[str, Any], spec: DataSpec) -> nn.Module:
    """Instantiates the registered model for ``cfg`` on data described by ``spec``.

    Raises:
        ConfigError: If the model is unknown or does not accept this kind of data.
    """
    cfg = model_config(cfg)
    info = MODELS.get(cfg.name)
    check(
        spec.kind in info.kinds,
        f"model {cfg.name!r} takes {'/'.join(info.kinds)} data, but the dataset is {spec.kind}",
    )
    return info.build(cfg, spec)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
