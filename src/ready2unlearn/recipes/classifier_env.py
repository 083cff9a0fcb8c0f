"""What the classifier benchmarks share (``r2u bench``, ``r2u ready-bench``); each runner holds one.

Per seed: the training config (the preset, its overrides and the seed) over a split loaded once per data
config (:class:`SeedEnv`); the standard and retrained models, cached under ``models/`` by a
:class:`~ready2unlearn.recipes.harness.ModelCache` whose folder names hash the model's name, its training
config and whatever else it depends on (:meth:`ClassifierEnv.model_config`); the unlearning context; and the
evaluation of a model after a request, with membership inference.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from ready2unlearn.attacks.mia import forget_set_attacks
from ready2unlearn.attacks.relearn import RelearnConfig
from ready2unlearn.card import ModelCard, data_section
from ready2unlearn.config import to_dict
from ready2unlearn.data.base import Split
from ready2unlearn.data.registry import load_split
from ready2unlearn.data.request import RequestViews
from ready2unlearn.engine.fit import fit
from ready2unlearn.engine.method import Context, build_method, method_config
from ready2unlearn.engine.stop import StopConfig
from ready2unlearn.engine.unlearn import unlearn_model
from ready2unlearn.engine.unlearn_config import UnlearnConfig
from ready2unlearn.evaluate.metrics import EvalOutputs, compute
from ready2unlearn.models.registry import build_model
from ready2unlearn.recipes.cache import cache_key
from ready2unlearn.recipes.harness import ModelCache, Trained
from ready2unlearn.recipes.train import TrainConfig
from ready2unlearn.recipes.train import load_config as load_train_config
from ready2unlearn.runtime import seed_everything
from ready2unlearn.task import ClassificationTask


class ClassifierSettings(Protocol):
    """The keys of a bench config that :class:`ClassifierEnv` reads (``BenchConfig``, ``ReadyBenchConfig``)."""

    train: str
    train_overrides: list[str]
    device: str
    data_dir: str | None
    mia: bool
    mia_max_test: int | None


def train_overrides(cfg: ClassifierSettings) -> list[str]:
    """The training preset's overrides: the bench's own, then its device and data folder."""
    extra = [f"device={cfg.device}"] + ([f"data.data_dir={cfg.data_dir}"] if cfg.data_dir else [])
    return [*cfg.train_overrides, *extra]


def rows_digest(views: RequestViews) -> str:
    """A hash of the training rows a request forgets: what a retrained model depends on."""
    return hashlib.sha256(np.asarray(views.forget_positions, dtype=np.int64).tobytes()).hexdigest()[:16]


def retrain_config(views: RequestViews) -> dict[str, Any]:
    """What a retrained model depends on beyond its training config: the rows it forgot."""
    return {"forget_rows": rows_digest(views), "forget_size": len(views.forget)}


def seeded_relearn(rc: RelearnConfig | None, seed: int) -> RelearnConfig | None:
    """The relearning attack of bench seed ``seed``: its sampling is seeded per seed, so seeds are replicates."""
    return None if rc is None else dataclasses.replace(rc, seed=rc.seed + seed)


@dataclass
class SeedEnv:
    """What every cell of one seed shares.

    Attributes:
        split: Training and test data (one object per data config, shared by the seeds that use it).
        train_cfg: The training config of this seed's models (``seed`` set).
        task: How the models are scored.
        device: Where models live.
        factory: Builds a freshly initialised model on ``device``.
    """

    split: Split
    train_cfg: TrainConfig
    task: ClassificationTask
    device: torch.device
    factory: Callable[[], nn.Module]


class ClassifierEnv:
    """Seeds, data, cached standard and retrained models, and evaluation of a classifier benchmark.

    Args:
        cfg: The bench config (its training preset, overrides, device, data folder and MIA settings).
        out: The run's folder (models are cached in ``out/models``).
        device: Where models live.
    """

    def __init__(self, cfg: ClassifierSettings, out: Path, device: torch.device) -> None:
        self.cfg, self.device = cfg, device
        self.models = ModelCache(Path(out) / "models", device, self._card, seed=seed_everything)
        self._splits: dict[str, Split] = {}
        self._envs: dict[int, SeedEnv] = {}

    # -- seeds and data -----------------------------------------------------------------------------------
    def env(self, seed: int) -> SeedEnv:
        """The environment of ``seed`` (the split is loaded once per data config)."""
        if seed not in self._envs:
            train_cfg, _ = load_train_config(self.cfg.train, [*train_overrides(self.cfg), f"seed={seed}"])
            key = json.dumps(to_dict(train_cfg.data), sort_keys=True)
            if key not in self._splits:
                self._splits[key] = load_split(train_cfg.data)
            split = self._splits[key]

            def factory() -> nn.Module:
                return build_model(train_cfg.model, split.spec).to(self.device)

            task = ClassificationTask(split.spec.num_classes)
            self._envs[seed] = SeedEnv(split, train_cfg, task, self.device, factory)
        return self._envs[seed]

    def fingerprints(self, seeds: list[int]) -> dict[str, Any]:
        """The data fingerprints of every seed (``results["data_fingerprints"]``)."""
        return {f"seed{seed}": self.env(seed).split.fingerprints() for seed in seeds}

    # -- models -------------------------------------------------------------------------------------------
    @staticmethod
    def model_config(env: SeedEnv, name: str, config: dict[str, Any]) -> dict[str, Any]:
        """The full cache config of a model: its name, the training config (seed included) and ``config``."""
        return {"model": name, "train": to_dict(env.train_cfg), **config}

    def model_key(self, env: SeedEnv, name: str, config: dict[str, Any]) -> str:
        """The cache key of model ``name`` (what cells computed from it record)."""
        return cache_key(self.model_config(env, name, config))

    def model(self, env: SeedEnv, seed: int, name: str, config: dict[str, Any],
              train: Callable[[nn.Module], dict[str, Any]], keep: bool = False,
              build: Callable[[], nn.Module] | None = None) -> Trained:  # fmt: skip
        """A model cached in ``models/seed<seed>/<name>-<hash>``, trained by ``train(model) -> info``.

        Args:
            env: The seed's environment (its training config is part of the hash).
            seed: The seed.
            name: The model's name (part of the hash too).
            config: Everything else the model depends on.
            train: Trains a freshly built model in place and returns its info.
            keep: Keep it in memory until ``self.models.clear()`` (else it is loaded anew on each call).
            build: Builds the untrained model; default the seed's factory (DP-SGD's twin of a BatchNorm model differs).
        """
        full = self.model_config(env, name, config)
        return self.models.get(seed, name, full, build or env.factory, train, keep=keep)

    @staticmethod
    def train_plain(env: SeedEnv, model: nn.Module) -> dict[str, Any]:
        """Standard training of ``model`` on the seed's training data; returns its seconds and metrics."""
        r = fit(model, env.split.train, env.split.test, env.train_cfg, show_progress=False)
        return {"seconds": r.seconds, "metrics": r.metrics}

    def standard(self, env: SeedEnv, seed: int) -> Trained:
        """The standard model of ``seed`` and its training info: loaded from ``models/`` or trained there."""
        return self.model(env, seed, "standard", {}, lambda m: self.train_plain(env, m))

    def retrained(self, env: SeedEnv, original: nn.Module, views: RequestViews, setting: str,
                  seed: int) -> Trained:  # fmt: skip
        """The gold model of (setting, seed) and its retraining info (cached in ``models/``).

        Keyed by the forgotten rows themselves, so settings (or groups) naming the same rows share it.
        """

        def train(model: nn.Module) -> dict[str, Any]:
            model.load_state_dict(original.state_dict())  # retrain rebuilds from the factory; start alike
            ucfg = UnlearnConfig(method=method_config({"name": "retrain"}), stop=StopConfig(), seed=seed)
            res = unlearn_model(model, views, build_method(ucfg.method, env.task), ucfg, self.ctx(env, seed))
            return {"seconds": res.seconds, "steps": res.steps, "grad_evals": res.grad_evals, "setting": setting}

        return self.model(env, seed, "retrain", retrain_config(views), train)

    def _card(self, seed: int, name: str, info: dict[str, Any]) -> dict[str, Any]:
        """A checkpoint card for a bench model (loadable with ``load_checkpoint``)."""
        env = self.env(seed)
        return ModelCard(producer="r2u bench", config=to_dict(env.train_cfg), seed=seed,
                         model={"name": env.train_cfg.model.name}, data=data_section(env.split, meta=False),
                         extra={"variant": name}).to_dict()  # fmt: skip

    # -- unlearning and evaluation ------------------------------------------------------------------------
    @staticmethod
    def ctx(env: SeedEnv, seed: int) -> Context:
        """The unlearning context of a run seeded ``seed``."""
        return Context(env.task, torch.Generator().manual_seed(seed), env.device, to_dict(env.train_cfg), env.factory)

    def evaluate(self, model: nn.Module, views: RequestViews, test: Any, reference: nn.Module | None,
                 seed: int) -> dict[str, Any]:  # fmt: skip
        """Metrics of ``model`` after the request (gaps need ``reference``), with membership inference if on."""
        metrics = compute(EvalOutputs.for_request(model, views, test, reference))
        if self.cfg.mia:
            metrics.update(forget_set_attacks(model, views, test, seed, self.cfg.mia_max_test))
        return metrics
