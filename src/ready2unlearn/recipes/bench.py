"""Benchmark runner: a matrix of settings × seeds × methods, evaluated by the DESIGN §6 protocol.

Launch: ``r2u bench digits-quick --out runs/bench-digits``.

For every seed it trains the original model once; for every (setting, seed) it retrains the gold model on
the retain set; then every method unlearns a copy of the original under the same stop rule and budget,
and the cell is evaluated against the retrained model (metrics, gaps, membership inference, relearning).
Timing ratios are measured side by side in the same run: a method's unlearning seconds over the retrain
seconds of the same setting and seed.

Resumable: every finished cell is written to ``cells/<key>-<hash>.json`` and every trained model to
``models/seed<S>/<name>-<hash>`` (atomically), the hash covering everything that made it
(:mod:`ready2unlearn.recipes.cache`), so an interrupted run picks up where it stopped and a changed config
never reuses a stale result. The runner composes the harness (:mod:`ready2unlearn.recipes.harness`: cell
cache, report hook, resumable runs) and the classifier environment it shares with ``r2u ready-bench``
(:mod:`ready2unlearn.recipes.classifier_env`: seeds, data, cached models, evaluation).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from ready2unlearn.artifacts import now_iso, versions, write_json
from ready2unlearn.attacks.proof import run_proof
from ready2unlearn.attacks.relearn import RelearnConfig, relearn_attack
from ready2unlearn.config import check, load_preset, to_dict
from ready2unlearn.data.request import DeletionRequest, RequestViews
from ready2unlearn.engine.method import MethodConfig, build_method, method_config
from ready2unlearn.engine.stop import StopConfig
from ready2unlearn.engine.unlearn import unlearn_model
from ready2unlearn.engine.unlearn_config import UnlearnConfig
from ready2unlearn.evaluate.metrics import EvalOutputs, compute, gaps
from ready2unlearn.progress import progress_bar
from ready2unlearn.recipes.classifier_env import (
    ClassifierEnv,
    SeedEnv,
    retrain_config,
    seeded_relearn,
    train_overrides,
)
from ready2unlearn.recipes.harness import CellCache, Report, publish, run_resumable, slug
from ready2unlearn.recipes.train import load_config as load_train_config
from ready2unlearn.report import summarise, write_report
from ready2unlearn.runtime import resolve_device


@dataclass
class ProofConfig:
    """Proof-of-forgetting runs (N unlearning vs N retraining seeds per method; costly, off by default).

    Attributes:
        n: Runs per side.
        methods: Methods to score (default: every method of the bench).
        setting: The setting to score (default: the first).
    """

    n: int = 0
    methods: list[str] = field(default_factory=list)
    setting: str | None = None

    def __post_init__(self) -> None:
        check(self.n >= 0, "proof.n must be ≥ 0")
        check(self.n == 0 or self.n >= 2, "proof.n must be 0 (off) or at least 2")


@dataclass
class BenchConfig:
    """A benchmark matrix.

    Attributes:
        train: Training preset (or YAML path) of the original, retrained and unlearned models.
        train_overrides: ``key=value`` overrides of that preset (e.g. ``data.train_subset=10000``).
        settings: Deletion requests, one per setting (``class:3``, ``random:0.01``...).
        methods: Unlearning methods with their hyper-parameters (``retrain`` is always added as the gold row).
        seeds: Seeds; each seed trains its own original model and retrained references.
        stop: Stop rule and budget shared by every method.
        relearn: Relearning attack; ``null`` = skip.
        mia: Run the membership-inference attacks.
        mia_max_test: Test samples used by MIA-efficacy's SVM (``null`` = all, as SalUn does; its fit is
            quadratic in this number, so CPU presets cap it).
        proof: Proof-of-forgetting settings.
        variants: Model variants to unlearn from (``standard``; ready models are benchmarked by ``r2u ready-bench``).
        device: ``auto``, ``cpu``, ``cuda``...
        data_dir: Dataset folder (overrides the training preset's ``data.data_dir``).
    """

    train: str = "digits-mlp"
    train_overrides: list[str] = field(default_factory=list)
    settings: list[str] = field(default_factory=lambda: ["class:3", "random:0.01"])
    methods: list[MethodConfig] = field(default_factory=lambda: [method_config({"name": "ga"})])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    stop: StopConfig = field(
        default_factory=lambda: StopConfig(rule="forget_acc", target="reference", max_steps=300, eval_every=5)
    )
    relearn: RelearnConfig | None = field(default_factory=RelearnConfig)
    mia: bool = True
    mia_max_test: int | None = None
    proof: ProofConfig = field(default_factory=ProofConfig)
    variants: list[Literal["standard"]] = field(default_factory=lambda: ["standard"])
    device: str = "auto"
    data_dir: str | None = None

    def __post_init__(self) -> None:
        check(len(self.settings) > 0 and len(self.seeds) > 0, "bench needs at least one setting and one seed")
        check(len(set(self.seeds)) == len(self.seeds), "bench.seeds must be distinct")
        for s in self.settings:
            DeletionRequest.parse(s)  # a malformed request fails at load time, not after an hour
        names = [m.name for m in self.methods]
        check(len(set(names)) == len(names), "each method may appear once in bench.methods")
        check("retrain" not in names, "retrain is always run as the reference; do not list it in bench.methods")


def load_bench_config(preset: str, overrides: list[str] | tuple[str, ...] = ()) -> tuple[BenchConfig, str]:
    """Resolves a :class:`BenchConfig` from a shipped preset (``configs/bench``) or YAML file plus overrides."""
    cfg, path = load_preset(BenchConfig, "bench", preset, overrides)
    load_train_config(cfg.train, train_overrides(cfg))  # validate the training preset up front
    return cfg, path


@dataclass
class _PlannedCell:
    """A cell of the matrix: what it runs, where it is cached and the cache config it is keyed by."""

    variant: str
    method: MethodConfig
    path: Path
    config: dict[str, Any]


class BenchRunner:
    """Runs a :class:`BenchConfig` into ``out_dir`` (resumable).

    Args:
        cfg: The matrix.
        out_dir: Where models, cells, results and the report go.
        preset: Name recorded in the results.
        show_progress: Progress bars.
        report: Renders the report from the results (default: ``report.md``, ``report.html`` and plots).
    """

    def __init__(self, cfg: BenchConfig, out_dir: str | Path, preset: str = "custom", show_progress: bool = True,
                 report: Report = write_report) -> None:  # fmt: skip
        self.cfg = cfg
        self.out = Path(out_dir)
        self.preset = preset
        self.show_progress = show_progress
        self.report = report
        self.device = resolve_device(cfg.device)
        self.classifier = ClassifierEnv(cfg, self.out, self.device)
        self.cells = CellCache(self.out)  # this run's cells, in order (the folder may hold other configs')

    def _relearn_cfg(self, seed: int) -> RelearnConfig | None:
        return seeded_relearn(self.cfg.relearn, seed)

    def _original(self, env: SeedEnv, seed: int) -> tuple[nn.Module, float]:
        """The standard model of ``seed`` and its training seconds."""
        model, info = self.classifier.standard(env, seed)
        return model, float(info["seconds"])

    def _cell_config(self, env: SeedEnv, views: RequestViews, setting: str, variant: str,
                     mcfg: MethodConfig) -> dict[str, Any]:  # fmt: skip
        """Everything a cell depends on: its models (by cache key), the request's rows, method, stop, attacks."""
        rc = self._relearn_cfg(env.train_cfg.seed)
        return {"cell": self._key(setting, env.train_cfg.seed, variant, mcfg),
                "original": self.classifier.model_key(env, "standard", {}),
                "reference": self.classifier.model_key(env, "retrain", retrain_config(views)),
                "method": to_dict(mcfg), "stop": to_dict(self.cfg.stop) if mcfg.name != "retrain" else None,
                "relearn": to_dict(rc) if rc is not None else None, "mia": self.cfg.mia,
                "mia_max_test": self.cfg.mia_max_test}  # fmt: skip

    # -- the matrix ---------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Runs every missing cell, then writes ``results.json`` and the report; returns the results."""
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        write_json(self.out / "bench_config.json", {"preset": self.preset, "config": to_dict(cfg)})
        methods = [method_config({"name": "retrain"}), *cfg.methods]
        # First pass: every cell's cache config and path (cheap: the data is loaded once, nothing is trained).
        plan: dict[tuple[int, str], tuple[SeedEnv, RequestViews, list[_PlannedCell]]] = {}
        self.cells.files.clear()
        for seed in cfg.seeds:
            env = self.classifier.env(seed)
            for setting in cfg.settings:
                views = DeletionRequest.parse(setting).resolve(env.split.train, env.split.test,
                                                               env.split.spec.num_classes)  # fmt: skip
                cells = []
                for variant in cfg.variants:
                    for m in methods:
                        conf = self._cell_config(env, views, setting, variant, m)
                        path = self.cells.track(self.cells.path(self._key(setting, seed, variant, m), conf))
                        cells.append(_PlannedCell(variant, m, path, conf))
                plan[(seed, setting)] = (env, views, cells)
        todo = {k: (env, views, [c for c in cells if self.cells.load(c.path, c.config) is None])
                for k, (env, views, cells) in plan.items()}  # fmt: skip
        left = sum(len(c) for *_, c in todo.values())
        total = len(self.cells.files)
        with progress_bar(self.show_progress) as bar:
            task = bar.add_task("bench", total=total, completed=total - left)
            for (seed, setting), (env, views, cells) in todo.items():
                if not cells:
                    continue
                original, _ = self._original(env, seed)
                reference, ref_info = self.classifier.retrained(env, original, views, setting, seed)
                ref_metrics = self.classifier.evaluate(reference, views, env.split.test, None, seed)
                rc = self._relearn_cfg(seed)
                ref_relearn = relearn_attack(reference, views, rc) if rc is not None else None
                for c in cells:
                    bar.update(task, description=f"seed {seed} {setting} {c.method.name}")
                    cell = self._run_cell(env, original, reference, views, setting, seed, c.variant, c.method,
                                          ref_metrics, ref_info, ref_relearn)  # fmt: skip
                    self.cells.store(c.path, c.config, cell)
                    bar.update(task, advance=1)
        return self.finish()

    @staticmethod
    def _key(setting: str, seed: int, variant: str, mcfg: MethodConfig) -> str:
        return f"{setting}/seed{seed}/{variant}/{mcfg.name}"

    def _run_cell(self, env, original, reference, views, setting, seed, variant, mcfg, ref_metrics, ref_info,
                  ref_relearn) -> dict[str, Any]:  # fmt: skip
        request = DeletionRequest.parse(setting)
        if mcfg.name == "retrain":
            model, curve = reference, []
            metrics = ref_metrics
            eff = {"steps": ref_info["steps"], "grad_evals": ref_info["grad_evals"], "seconds": ref_info["seconds"],
                   "stop_reason": "applied"}  # fmt: skip
            relearn = ref_relearn
        else:
            model = copy.deepcopy(original)
            ucfg = UnlearnConfig(method=mcfg, stop=self.cfg.stop, seed=seed)
            ref_value = ref_metrics["forget_acc"] if self.cfg.stop.rule != "forget_loss" else ref_metrics["forget_loss"]
            res = unlearn_model(model, views, build_method(mcfg, env.task), ucfg, self.classifier.ctx(env, seed),
                                reference_value=ref_value)  # fmt: skip
            curve = res.curve
            metrics = self.classifier.evaluate(model, views, env.split.test, reference, seed)
            eff = {
                "steps": res.steps, "grad_evals": res.grad_evals, "seconds": res.seconds,
                "eval_seconds": res.eval_seconds, "stop_reason": res.stop_reason, "reached": res.reached,
            }  # fmt: skip
            rc = self._relearn_cfg(seed)
            relearn = relearn_attack(model, views, rc) if rc is not None else None
        eff["time_ratio_to_retrain"] = eff["seconds"] / ref_info["seconds"] if ref_info["seconds"] > 0 else math.nan
        cell = {
            "key": self._key(setting, seed, variant, mcfg), "setting": setting, "seed": seed, "variant": variant,
            "method": mcfg.name, "method_config": to_dict(mcfg), "request": request.to_dict(),
            "views": views.sizes(), "metrics": metrics, "reference_metrics": ref_metrics,
            "gaps": gaps(metrics, ref_metrics, request.kind), "efficiency": eff, "curve": curve,
        }  # fmt: skip
        if relearn is not None:
            cell["relearn"] = relearn
            cell["relearn_reference"] = ref_relearn
        return cell

    def run_proof(self) -> dict[str, Any]:
        """Proof-of-forgetting scores per method (cached in ``proof/<method>.json``); ``{}`` when off.

        The unlearned side runs each method N times from the seed's original model with seeds 0..N−1 (batch
        order and sampling differ); the retrained side retrains N times with training seeds 1000.. . A
        ``retrain`` row scores N more retrained models (seeds 2000..) against the same side: the forgetting
        quality a perfect unlearner reaches at this N, since the statistic is biased below 1.
        """
        pc = self.cfg.proof
        if pc.n == 0:
            return {}
        setting, seed = pc.setting or self.cfg.settings[0], self.cfg.seeds[0]
        env = self.classifier.env(seed)
        original, _ = self._original(env, seed)
        views = DeletionRequest.parse(setting).resolve(env.split.train, env.split.test, env.split.spec.num_classes)
        reference, _ = self.classifier.retrained(env, original, views, setting, seed)
        ref_value = compute(EvalOutputs.collect(reference, {"forget": views.forget}))["forget_acc"]
        retrained_cache: dict[int, dict[str, torch.Tensor]] = {}

        def retrain(train_seed: int) -> nn.Module:
            if train_seed not in retrained_cache:
                model = copy.deepcopy(original)
                ucfg = UnlearnConfig(method=method_config({"name": "retrain", "seed": train_seed}), stop=StopConfig())
                unlearn_model(model, views, build_method(ucfg.method, env.task), ucfg,
                              self.classifier.ctx(env, train_seed))  # fmt: skip
                retrained_cache[train_seed] = copy.deepcopy(model.state_dict())
            model = copy.deepcopy(original)
            model.load_state_dict(retrained_cache[train_seed])
            return model

        def unlearner(mcfg: MethodConfig) -> Callable[[int], nn.Module]:
            if mcfg.name == "retrain":
                return lambda s: retrain(2000 + s)

            def make(s: int) -> nn.Module:
                model = copy.deepcopy(original)
                ucfg = UnlearnConfig(method=mcfg, stop=self.cfg.stop, seed=s)
                unlearn_model(model, views, build_method(mcfg, env.task), ucfg, self.classifier.ctx(env, s),
                              reference_value=ref_value)  # fmt: skip
                return model

            return make

        names = pc.methods or [m.name for m in self.cfg.methods]
        methods = [method_config({"name": "retrain"}), *(m for m in self.cfg.methods if m.name in names)]
        out: dict[str, Any] = {}
        with progress_bar(self.show_progress) as bar:
            task = bar.add_task("proof of forgetting", total=len(methods))
            for mcfg in methods:
                path = self.out / "proof" / f"{slug(mcfg.name)}.json"
                if not path.exists():
                    bar.update(task, description=f"proof: {mcfg.name} (N={pc.n})")
                    res = run_proof(unlearner(mcfg), lambda s: retrain(1000 + s), views.forget, views.retain,
                                    env.split.test, pc.n)  # fmt: skip
                    write_json(path, {"setting": setting, "seed": seed, "method": mcfg.name, **res})
                r = json.loads(path.read_text(encoding="utf-8"))
                out[mcfg.name] = {k: r[k] for k in ("setting", "n", "forgetting_quality", "score", "ra_ratio",
                                                    "ta_ratio")}  # fmt: skip
                bar.update(task, advance=1)
        return out

    def finish(self) -> dict[str, Any]:
        """Collects this run's cells into ``results.json`` and renders the report (``self.report``)."""
        cells = self.cells.read()
        order = {s: i for i, s in enumerate(self.cfg.settings)}
        cells.sort(key=lambda c: (order.get(c["setting"], 99), c["seed"], c["variant"], c["method"] != "retrain"))
        results = {
            "preset": self.preset,
            "created": now_iso(),
            "versions": versions(),
            "config": to_dict(self.cfg),
            "seeds": self.cfg.seeds,
            "data_fingerprints": self.classifier.fingerprints(self.cfg.seeds),
            "cells": cells,
            "proof": self.run_proof(),
        }
        try:
            results["summary"] = summarise(cells, SUMMARY_METRICS)
            publish(results, self.out, self.report)
        except ImportError:  # report renderer not installed in this build
            write_json(self.out / "results.json", results)
        return results


SUMMARY_METRICS = [
    "forget_acc", "retain_acc", "test_acc", "test_retain_acc", "mia_auc", "mia_efficacy", "avg_gap",
    "steps", "grad_evals", "seconds", "time_ratio_to_retrain",
]  # fmt: skip


def run_bench(preset: str, out_dir: str | Path, overrides: list[str] | tuple[str, ...] = (),
              show_progress: bool = True) -> dict[str, Any]:  # fmt: skip
    """Loads a bench preset and runs it into ``out_dir`` (resuming finished cells)."""
    cfg, path = load_bench_config(preset, overrides)
    return run_resumable(BenchRunner, cfg, path, out_dir, show_progress)
