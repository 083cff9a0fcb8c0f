"""The unlearning-method contract (DESIGN §4) and the method registry.

A method is a ``@dataclass`` config plus a class whose :meth:`UnlearningMethod.loss` maps
``(model, batch, params=None)`` to ``(loss, metrics)``. The engine (:mod:`ready2unlearn.engine.unlearn`) owns
the loop: it draws forget/retain batches, calls ``loss``, steps the optimiser and checks the stop rule.
Methods that are not a loss — retraining, synaptic dampening — set ``iterative = False`` and implement
:meth:`UnlearningMethod.apply` instead.

The contract sits in the engine layer, below the methods (:mod:`ready2unlearn.unlearn`) that implement it
and the readiness objective that simulates them: the loop, the methods and readiness all import it from
here, and nothing here imports a method.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from ready2unlearn.config import check, dispatch_by_name, from_dict
from ready2unlearn.data.request import RequestViews
from ready2unlearn.errors import ConfigError
from ready2unlearn.registry import Registry
from ready2unlearn.task import Params, Task


@dataclass
class MethodConfig:
    """Settings every method has; subclasses add their own and override the defaults.

    Attributes:
        name: Registered method name (``r2u ls methods``).
        lr: Learning rate of the unlearning optimiser.
        optimizer: ``sgd`` or ``adam``.
        momentum: SGD momentum.
        weight_decay: Weight decay of the unlearning optimiser.
        batch_size: Forget-batch size (and retain-batch size, unless ``retain_batch_size`` is set).
        retain_batch_size: Retain-batch size; ``null`` = ``batch_size``.
        norm_stats: ``frozen`` keeps batch-norm layers in eval mode while unlearning (the running statistics
            stay those of training and every batch is normalised by them); ``update`` runs them in train
            mode. Frozen is the default: in train mode a forget batch of one class is normalised by its own
            statistics and the running statistics drift toward it, which alone cost a tabular BatchNorm net
            5-7 points of test accuracy after GA (0.79 vs 0.86 with frozen statistics, 2 seeds).
    """

    name: str = "ga"
    lr: float = 1e-3
    optimizer: Literal["sgd", "adam"] = "sgd"
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 64
    retain_batch_size: int | None = None
    norm_stats: Literal["frozen", "update"] = "frozen"

    def __post_init__(self) -> None:
        info = METHODS.get(self.name)
        check(isinstance(self, info.config_cls), f"config class {type(self).__name__} does not match {self.name!r}")
        check(self.lr > 0, f"method.lr must be positive, got {self.lr}")
        check(0 <= self.momentum < 1, f"method.momentum must be in [0, 1), got {self.momentum}")
        check(self.weight_decay >= 0, "method.weight_decay must be ≥ 0")
        check(self.batch_size > 0, "method.batch_size must be positive")
        check(self.retain_batch_size is None or self.retain_batch_size > 0, "method.retain_batch_size must be > 0")
        check(self.norm_stats in ("frozen", "update"), f"method.norm_stats must be frozen or update, got "
              f"{self.norm_stats!r}")  # fmt: skip

    @classmethod
    def dispatch(cls, data: Mapping[str, Any]) -> type[MethodConfig]:
        """The config class registered for ``data["name"]``."""
        return dispatch_by_name(data, METHODS, "method", getattr(cls, "name", "ga"))


@dataclass
class Batch:
    """One step's data: a forget batch and/or a retain batch (``None`` when the method does not use it)."""

    forget_x: torch.Tensor | None = None
    forget_y: torch.Tensor | None = None
    retain_x: torch.Tensor | None = None
    retain_y: torch.Tensor | None = None

    def size(self) -> int:
        """Number of samples in the batch (what "gradient evaluations" counts)."""
        return sum(len(t) for t in (self.forget_y, self.retain_y) if t is not None)


@dataclass
class Context:
    """What ``prepare``/``apply`` may need beyond the model and the views."""

    task: Task
    generator: torch.Generator
    device: torch.device
    train_config: Mapping[str, Any] | None = None  # the original training config (retrain needs it)
    model_factory: Callable[[], nn.Module] | None = None  # builds a freshly initialised copy of the architecture


class UnlearningMethod:
    """Base class of every unlearning method.

    Class attributes:
        uses_forget / uses_retain: Which batches the engine must draw for :meth:`loss`.
        iterative: ``False`` for methods that implement :meth:`apply` instead of a loss.
        classifier_only: The method needs class labels and logits (refused on other tasks).
    """

    config_cls: ClassVar[type[MethodConfig]] = MethodConfig
    uses_forget: ClassVar[bool] = True
    uses_retain: ClassVar[bool] = False
    iterative: ClassVar[bool] = True
    classifier_only: ClassVar[bool] = False

    def __init__(self, config: MethodConfig, task: Task) -> None:
        if not isinstance(config, self.config_cls):
            raise ConfigError(f"{type(self).__name__} needs a {self.config_cls.__name__}, got {type(config).__name__}")
        if self.classifier_only and task.kind != "classification":
            raise ConfigError(f"method {config.name!r} only works for classifiers, not {task.kind} models")
        self.config = config
        self.task = task
        self.reference: nn.Module | None = None
        self.budget: int | None = None  # the run's step budget; the engine sets it before prepare()

    def train_mode(self, model: nn.Module) -> None:
        """Puts ``model`` in the mode unlearning runs in: train mode, batch norm frozen unless ``norm_stats=update``."""
        model.train()
        if self.config.norm_stats == "frozen":
            for module in model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()

    # -- hooks -------------------------------------------------------------------------------------------
    def prepare(self, model: nn.Module, views: RequestViews, ctx: Context) -> None:
        """Called once before the loop (take reference snapshots, compute masks...). Default: nothing."""

    def loss(
        self, model: nn.Module, batch: Batch, params: Params | None = None, step: int = 0
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The quantity the engine *minimises* at ``step``; ``params`` switches to a functional forward."""
        if not self.iterative:
            raise NotImplementedError(f"{self.config.name} is not iterative: it has no loss; the engine calls apply()")
        raise NotImplementedError

    def after_backward(self, model: nn.Module) -> None:
        """Called between ``backward`` and ``optimizer.step`` (e.g. to mask gradients). Default: nothing."""

    def after_step(self, model: nn.Module) -> None:
        """Called after ``optimizer.step`` (e.g. to restore frozen entries). Default: nothing."""

    def apply(self, model: nn.Module, views: RequestViews, ctx: Context) -> dict[str, Any]:
        """Non-iterative methods: modify ``model`` in place and return statistics."""
        raise NotImplementedError(f"{type(self).__name__} is iterative; the engine calls loss()")

    def primary_size(self, views: RequestViews) -> int:
        """Size of the set one "epoch" of this method passes over (forget set for ascent methods)."""
        return len(views.forget) if self.uses_forget else len(views.retain)

    # -- helpers ------------------------------------------------------------------------------------------
    def add_retain_ce(
        self, model: nn.Module, batch: Batch, params: Params | None, loss: torch.Tensor, metrics: dict[str, float],
        weight: float,
    ) -> tuple[torch.Tensor, dict[str, float]]:  # fmt: skip
        """Adds the optional ``weight · CE(θ; B_r)`` retain term shared by NPO-style methods (no-op at 0)."""
        if weight <= 0:
            return loss, metrics
        retain = self.task.loss(model, batch.retain_x, batch.retain_y, params)
        metrics["retain_loss"] = retain.item()
        return loss + weight * retain, metrics

    def snapshot_reference(self, model: nn.Module) -> None:
        """Keeps a frozen copy of the model as it was before unlearning (the NPO/KL reference)."""
        ref = copy.deepcopy(model).eval()
        for p in ref.parameters():
            p.requires_grad_(False)
        self.reference = ref

    @torch.no_grad()
    def reference_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the frozen reference model."""
        if self.reference is None:
            raise RuntimeError("prepare() must run before loss(): no reference model")
        return self.task.logits(self.reference, x)

    @torch.no_grad()
    def reference_log_prob(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``log π_ref(y|x)`` per sample under the frozen reference model (summed over tokens for sequences)."""
        if self.reference is None:
            raise RuntimeError("prepare() must run before loss(): no reference model")
        return self.task.log_prob(self.reference, x, y)


@dataclass(frozen=True)
class MethodInfo:
    """A registered method: config class, implementation, one-line summary and the paper it follows."""

    config_cls: type[MethodConfig]
    method_cls: type[UnlearningMethod]
    summary: str
    paper: str


METHODS: Registry[MethodInfo] = Registry("unlearning method")


def register_method(
    name: str, config_cls: type[MethodConfig], summary: str, paper: str
) -> Callable[[type[UnlearningMethod]], type[UnlearningMethod]]:
    """Class decorator registering an :class:`UnlearningMethod` subclass under ``name``."""

    def deco(cls: type[UnlearningMethod]) -> type[UnlearningMethod]:
        cls.config_cls = config_cls
        METHODS.register(name, MethodInfo(config_cls, cls, summary, paper))
        return cls

    return deco


def method_config(data: Mapping[str, Any] | MethodConfig) -> MethodConfig:
    """Builds the registered config subclass from plain data (``{"name": "npo", "beta": 0.1}``)."""
    return data if isinstance(data, MethodConfig) else from_dict(MethodConfig, data, "method.")


def build_method(cfg: MethodConfig | Mapping[str, Any], task: Task) -> UnlearningMethod:
    """Instantiates the registered method for ``cfg``."""
    cfg = method_config(cfg)
    return METHODS.get(cfg.name).method_cls(cfg, task)
