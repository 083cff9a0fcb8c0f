"""``r2u plan``: for my model, my data and the requests I expect, which strategy costs least and still passes?

Launch: ``r2u plan digits-plan --out runs/plan-digits``.

For every seed the same stream of deletion requests (``plan.serve`` requests of ``plan.request_size`` rows,
drawn once) is served, one request after another, by every strategy:

1. *retrain*: train from scratch after each request (exact; its models are every other strategy's reference);
2. *standard + a fast method* for each of ``plan.methods``;
3. *ready + a fast method*: a Ready2Unlearn model (``plan.ready``) served by each of ``plan.ready_methods``;
4. *SISA* for each layout of ``plan.sisa`` (exact; Bourtoule et al. 2021).

Each strategy's one-off training and each request are timed in this process and reported in units of the
standard model's training time. Test accuracy, Avg. Gap and MIA are measured after each served ``K`` of
``plan.requests`` against the model retrained without those requests, and the relearning attack after the
last one. ``report/plan_report.py`` turns ``results.json`` into the cost-vs-K and Pareto plots and the
recommendation.

Resumable: models are cached in ``models/`` and each (strategy, seed) stream in ``cells/``, both under a hash
of everything that made them (:mod:`ready2unlearn.recipes.cache`), by the harness's model and cell caches
(:mod:`ready2unlearn.recipes.harness`).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ready2unlearn.artifacts import now_iso, versions, write_json
from ready2unlearn.card import ModelCard, data_section
from ready2unlearn.config import to_dict
from ready2unlearn.data.base import Split
from ready2unlearn.data.registry import load_split
from ready2unlearn.data.sisa import SisaConfig
from ready2unlearn.engine.fit import fit
from ready2unlearn.models.registry import build_model, count_parameters
from ready2unlearn.progress import progress_bar
from ready2unlearn.readiness.config import ReadyConfig
from ready2unlearn.readiness.objective import ReadinessObjective
from ready2unlearn.recipes.harness import CellCache, ModelCache, Report, Trained, publish, run_resumable
from ready2unlearn.recipes.plan_config import PlanConfig, load_plan_config
from ready2unlearn.recipes.plan_stream import (
    Judge,
    ServeFn,
    Stream,
    approximate_serve,
    draw_stream,
    inference_ratio,
    retrain_serve,
    serve_stream,
    sisa_serve,
)
from ready2unlearn.recipes.train import TrainConfig
from ready2unlearn.recipes.train import load_config as load_train_config
from ready2unlearn.report.plan_report import summarise_plan, write_plan_report
from ready2unlearn.runtime import resolve_device
from ready2unlearn.task import ClassificationTask
from ready2unlearn.unlearn.sisa import train_sisa


@dataclass
class PlanData:
    """What a plan runs on for one seed: the data, the training config (seeded) and a builder of fresh models.

    Attributes:
        split: Training and test data.
        train_cfg: Optimiser, epochs, batch size and the seed of every model trained.
        factory: Builds a freshly initialised model (called after the seed is set).
        model_name: Recorded in the cached models' cards.
    """

    split: Split
    train_cfg: TrainConfig
    factory: Callable[[], nn.Module]
    model_name: str


@dataclass
class _Seed:
    """What every strategy of one seed shares."""

    seed: int
    split: Split
    train_cfg: TrainConfig
    task: ClassificationTask
    stream: Stream
    factory: Callable[[], nn.Module]
    data_key: str  # the training data's fingerprint (hashing it once per seed, not per cache lookup)


def _digest(rows: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(rows, dtype=np.int64).tobytes()).hexdigest()[:16]


def sisa_name(s: SisaConfig) -> str:
    """The strategy name of a SISA layout."""
    return f"sisa {s.shards}x{s.slices}" + (f" by {s.shard_by}" if s.shard_by else "")


class PlanRunner:
    """Runs a :class:`PlanConfig` into ``out_dir`` (resumable)."""

    def __init__(
        self,
        cfg: PlanConfig,
        out_dir: str | Path,
        preset: str = "custom",
        show_progress: bool = True,
        data: Callable[[int], PlanData] | None = None,
        report: Report = write_plan_report,
    ) -> None:
        """Sets the plan up; nothing is loaded or trained before :meth:`run`.

        Args:
            cfg: The plan.
            out_dir: Where models, streams, results and the report go (resumable).
            preset: Name recorded in the results.
            show_progress: Progress bars.
            data: ``data(seed) -> PlanData`` for your own model and data; default: ``cfg.train``'s preset.
            report: Renders the report from the results (default: the plan report, its plots and recommendation).
        """
        self.cfg, self.out, self.preset, self.show_progress = cfg, Path(out_dir), preset, show_progress
        self.device = resolve_device(cfg.device)
        self.data = data or self._preset_data
        self.report = report
        self.models = ModelCache(self.out / "models", self.device, self._card)
        # One file per (seed, strategy): ``seed0-standard-+-ga-<hash>.json`` (spaces become dashes, nothing else).
        self.cells = CellCache(self.out, name=lambda key: key.replace(" ", "-"))
        self._seeds: dict[int, _Seed] = {}
        self._names: dict[int, str] = {}

    # -- shared pieces ------------------------------------------------------------------------------------
    def _train_overrides(self) -> list[str]:
        extra = [f"device={self.cfg.device}"] + ([f"data.data_dir={self.cfg.data_dir}"] if self.cfg.data_dir else [])
        return [*self.cfg.train_overrides, *extra]

    def _preset_data(self, seed: int) -> PlanData:
        train_cfg, _ = load_train_config(self.cfg.train, [*self._train_overrides(), f"seed={seed}"])
        split = load_split(train_cfg.data)

        def factory() -> nn.Module:
            return build_model(train_cfg.model, split.spec).to(self.device)

        return PlanData(split, train_cfg, factory, train_cfg.model.name)

    def _env(self, seed: int) -> _Seed:
        if seed not in self._seeds:
            d = self.data(seed)
            stream = draw_stream(d.split, self.cfg.horizon, self.cfg.request_size, seed, self.cfg.group_column)
            task = ClassificationTask(d.split.spec.num_classes)
            self._seeds[seed] = _Seed(seed, d.split, d.train_cfg, task, stream, d.factory,
                                      d.split.fingerprints()["train"])  # fmt: skip
            self._names[seed] = d.model_name
        return self._seeds[seed]

    def _card(self, seed: int, name: str, info: dict[str, Any]) -> dict[str, Any]:
        env = self._env(seed)
        card = ModelCard(producer="r2u plan", config=to_dict(env.train_cfg), seed=seed,
                         model={"name": self._names[seed]}, data=data_section(env.split, meta=False))  # fmt: skip
        return card.to_dict()

    def _trained_by(self, env: _Seed) -> dict[str, Any]:
        """What every model of a seed depends on: the training config, the data and the architecture's name."""
        return {"train": to_dict(env.train_cfg), "data": env.data_key,
                "architecture": self._names[env.seed]}  # fmt: skip

    def _base_config(self, env: _Seed) -> dict[str, Any]:
        """What every stream of a seed depends on: how its models are trained and the request stream."""
        return {**self._trained_by(env), "stream": [_digest(r) for r in env.stream.requests]}

    def _fit(self, env: _Seed, model: nn.Module, data: Any = None, **kwargs: Any) -> dict[str, Any]:
        result = fit(
            model,
            env.split.train if data is None else data,
            env.split.test,
            env.train_cfg,
            show_progress=False,
            task=env.task,
            **kwargs,
        )
        return {"seconds": result.seconds, "metrics": result.metrics}

    def _standard(self, env: _Seed) -> Trained:
        conf = {"model": "standard", **self._trained_by(env)}
        return self.models.get(env.seed, "standard", conf, env.factory, lambda m: self._fit(env, m))

    def ready_config(self, env: _Seed) -> ReadyConfig:
        """The ready model's readiness config (``plan.ready`` overrides on the defaults)."""
        return self.cfg.ready_config(env.train_cfg.epochs)

    def _ready(self, env: _Seed) -> Trained:
        rcfg = self.ready_config(env)
        conf = {"model": "ready", **self._trained_by(env), "ready": to_dict(rcfg)}

        def train(model: nn.Module) -> dict[str, Any]:
            obj = ReadinessObjective(rcfg, env.split.train.to(self.device), env.split.spec.num_classes, env.seed)
            return {**self._fit(env, model, regularizer=obj), "readiness": obj.summary(env.split.train)}

        return self.models.get(env.seed, "ready", conf, env.factory, train)

    def _retrained(self, env: _Seed, k: int) -> Trained:
        """The model retrained without the first ``k`` requests (cached)."""
        conf = {"model": "retrain", **self._trained_by(env), "gone": _digest(env.stream.gone(k))}
        return self.models.get(
            env.seed, f"retrain-{k}", conf, env.factory, lambda m: self._fit(env, m, env.stream.remaining(k))
        )

    def _train_at(self, env: _Seed) -> Callable[[int], tuple[nn.Module, float]]:
        """Retraining for the retrain strategy: cached at the scored points (the references), fresh elsewhere."""

        def train_at(k: int) -> tuple[nn.Module, float]:
            if k in self.points:
                model, info = self._retrained(env, k)
                return model, float(info["seconds"])
            torch.manual_seed(env.seed)
            model = env.factory()
            return model, self._fit(env, model, env.stream.remaining(k))["seconds"]

        return train_at

    # -- strategies -----------------------------------------------------------------------------------------
    def _cell(self, env: _Seed, name: str, conf: dict[str, Any], make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        conf = {"strategy": name, **self._base_config(env), "plan": self._stream_config(), **conf}
        return self.cells.get(f"seed{env.seed}-{name}", conf, lambda: {"strategy": name, "seed": env.seed, **make()})

    def _stream_config(self) -> dict[str, Any]:
        c = self.cfg
        return {
            "points": self.points,
            "stop": to_dict(c.stop),
            "mia": c.mia,
            "mia_max_test": c.mia_max_test,
            "relearn": to_dict(c.relearn) if c.relearn else None,
        }

    def _serve(self, env: _Seed, judge: Judge, model: nn.Module, serve: ServeFn, bar: Any) -> dict[str, Any]:
        task = bar.add_task("requests", total=self.cfg.horizon)
        rc = (
            None
            if self.cfg.relearn is None
            else dataclasses.replace(self.cfg.relearn, seed=self.cfg.relearn.seed + env.seed)
        )
        out = serve_stream(model, serve, self.cfg.horizon, self.points, judge, rc, lambda: bar.advance(task))
        bar.update(task, visible=False)
        return out

    def _run_seed(self, seed: int, bar: Any) -> None:
        env = self._env(seed)
        cfg = self.cfg
        standard, std_info = self._standard(env)
        refs = {k: self._retrained(env, k)[0] for k in self.points}
        judge = Judge(env.stream, refs, cfg.mia, cfg.mia_max_test, seed)
        one_off = {"standard": std_info["seconds"]}

        def retrain_cell() -> dict[str, Any]:
            targets: dict[int, dict[str, float]] = {}
            serve = retrain_serve(env.stream, self._train_at(env), env.task, targets)
            out = self._serve(env, judge, standard, serve, bar)
            return {
                **out,
                "family": "exact",
                "train_seconds": std_info["seconds"],
                "targets": {str(k): v for k, v in targets.items()},
            }

        retrain = self._cell(env, "retrain", {}, retrain_cell)
        targets = {int(k): v for k, v in retrain["targets"].items()}
        variants = [("standard", standard, std_info, cfg.methods)]
        if cfg.ready_methods:
            ready, ready_info = self._ready(env)
            variants.append(("ready", ready, ready_info, cfg.ready_methods))
        for variant, model, info, methods in variants:
            for mcfg in methods:
                name = f"{variant} + {mcfg.name}"

                def approx(model: nn.Module = model, mcfg: Any = mcfg, info: dict[str, Any] = info) -> dict[str, Any]:
                    serve = approximate_serve(env.stream, mcfg, cfg.stop, env.task, self.device, targets, seed)
                    out = self._serve(env, judge, copy.deepcopy(model), serve, bar)
                    return {**out, "family": "approximate", "train_seconds": info["seconds"]}

                self._cell(
                    env,
                    name,
                    {
                        "model": variant,
                        "method": to_dict(mcfg),
                        "ready": to_dict(self.ready_config(env)) if variant == "ready" else None,
                    },
                    approx,
                )
        for scfg in cfg.sisa:

            def sisa(scfg: SisaConfig = scfg) -> dict[str, Any]:
                t0 = time.perf_counter()
                torch.manual_seed(seed)
                sisa_model = train_sisa(
                    env.factory, env.split.train, env.train_cfg, scfg, task=env.task, show_progress=False
                )
                seconds = time.perf_counter() - t0
                ensemble = sisa_model.ensemble
                ratio = inference_ratio(ensemble, standard, env.split.test)
                out = self._serve(
                    env, judge, ensemble, sisa_serve(env.stream, sisa_model, env.train_cfg, env.task), bar
                )
                return {
                    **out,
                    "family": "exact",
                    "train_seconds": seconds,
                    "inference_ratio": ratio,
                    "parameters_ratio": count_parameters(ensemble) / count_parameters(standard),
                }

            self._cell(env, sisa_name(scfg), {"sisa": to_dict(scfg)}, sisa)
        self._one_off[seed] = one_off

    def _warm_up(self) -> None:
        """One untimed one-epoch fit on a few rows, so no timed run pays the one-off first-use costs.

        The first optimiser construction imports ``torch._dynamo`` (seconds on a small CPU) and the first
        kernels allocate; charged to whichever strategy ran first, they would distort its cost ratio.
        """
        env = self._env(self.cfg.seeds[0])
        rows = env.split.train.subset(np.arange(min(64, len(env.split.train))))
        fit(env.factory(), rows, None, dataclasses.replace(env.train_cfg, epochs=1), show_progress=False, task=env.task)

    # -- the run ------------------------------------------------------------------------------------------
    @property
    def points(self) -> list[int]:
        """The served ``K`` at which models are scored (the last served request always is)."""
        return sorted({*self.cfg.served_points, self.cfg.horizon})

    def run(self) -> dict[str, Any]:
        """Serves every strategy's stream on every seed (resuming cached ones), then writes the results and report."""
        self.out.mkdir(parents=True, exist_ok=True)
        write_json(self.out / "plan_config.json", {"preset": self.preset, "config": to_dict(self.cfg)})
        self.cells.files.clear()
        self._one_off: dict[int, dict[str, float]] = {}
        self._warm_up()
        with progress_bar(self.show_progress) as bar:
            seeds = bar.add_task("plan", total=len(self.cfg.seeds))
            for seed in self.cfg.seeds:
                bar.update(seeds, description=f"plan: seed {seed}")
                self._run_seed(seed, bar)
                bar.advance(seeds)
        cells = self.cells.read(keep_key=False)
        env = self._env(self.cfg.seeds[0])
        results = {
            "preset": self.preset,
            "created": now_iso(),
            "versions": versions(),
            "config": to_dict(self.cfg),
            "data": {
                "name": env.split.name,
                "fingerprints": env.split.fingerprints(),
                "train_rows": len(env.split.train),
            },
            "standard_seconds": {str(s): v["standard"] for s, v in self._one_off.items()},
            "cells": cells,
        }
        results["summary"] = summarise_plan(results)
        return publish(results, self.out, self.report)


def run_plan(
    preset: str, out_dir: str | Path, overrides: list[str] | tuple[str, ...] = (), show_progress: bool = True
) -> dict[str, Any]:
    """Loads a plan preset and runs it into ``out_dir`` (resuming its cached models and streams).

    Raises:
        ConfigError: If ``out_dir`` holds a plan made with another config.
    """
    cfg, path = load_plan_config(preset, overrides)
    return run_resumable(PlanRunner, cfg, path, out_dir, show_progress, config_file="plan_config.json", what="a plan")
