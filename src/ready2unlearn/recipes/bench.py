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
never reuses a stale result.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ready2unlearn.artifacts import now_iso, save_checkpoint, versions, write_json
from ready2unlearn.attacks.mia import forget_set_attacks
from ready2unlearn.attacks.proof import run_proof
from ready2unlearn.attacks.relearn import RelearnConfig, relearn_attack
from ready2unlearn.card import ModelCard, data_section
from ready2unlearn.checkpoint import load_checkpoint
from ready2unlearn.config import check, load_preset, to_dict
from ready2unlearn.data.base import Split
from ready2unlearn.data.registry import load_split
from ready2unlearn.data.request import DeletionRequest, RequestViews
from ready2unlearn.engine.fit import fit
from ready2unlearn.engine.method import Context, MethodConfig, build_method, method_config
from ready2unlearn.engine.stop import StopConfig
from ready2unlearn.engine.unlearn import unlearn_model
from ready2unlearn.engine.unlearn_config import UnlearnConfig
from ready2unlearn.errors import ConfigError
from ready2unlearn.evaluate.metrics import EvalOutputs, compute, gaps
from ready2unlearn.models.registry import build_model
from ready2unlearn.progress import progress_bar
from ready2unlearn.recipes.cache import cache_key, cache_record, load_json, matches, store_json
from ready2unlearn.recipes.train import TrainConfig
from ready2unlearn.recipes.train import load_config as load_train_config
from ready2unlearn.report import summarise, write_report
from ready2unlearn.runtime import resolve_device, seed_everything
from ready2unlearn.task import ClassificationTask


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
    load_train_config(cfg.train, _train_overrides(cfg))  # validate the training preset up front
    return cfg, path


def _train_overrides(cfg: BenchConfig) -> list[str]:
    extra = [f"device={cfg.device}"] + ([f"data.data_dir={cfg.data_dir}"] if cfg.data_dir else [])
    return [*cfg.train_overrides, *extra]


def _slug(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9._-]+", "-", text).strip("-")


def rows_digest(views: RequestViews) -> str:
    """A hash of the training rows a request forgets: what a retrained model depends on."""
    return hashlib.sha256(np.asarray(views.forget_positions, dtype=np.int64).tobytes()).hexdigest()[:16]


@dataclass
class _Env:
    """What every cell of one seed shares."""

    split: Split
    train_cfg: TrainConfig
    task: ClassificationTask
    device: torch.device
    factory: Callable[[], nn.Module]


@dataclass
class _PlannedCell:
    """A cell of the matrix: what it runs, where it is cached and the cache config it is keyed by."""

    variant: str
    method: MethodConfig
    path: Path
    config: dict[str, Any]


class BenchRunner:
    """Runs a :class:`BenchConfig` into ``out_dir`` (resumable)."""

    def __init__(self, cfg: BenchConfig, out_dir: str | Path, preset: str = "custom", show_progress: bool = True):
        self.cfg = cfg
        self.out = Path(out_dir)
        self.preset = preset
        self.show_progress = show_progress
        self.device = resolve_device(cfg.device)
        self._split_cache: dict[str, Split] = {}
        self._cell_files: list[Path] = []  # this run's cells, in order (the folder may hold other configs')

    # -- models -------------------------------------------------------------------------------------------
    def _model(self, env: _Env, seed: int, name: str, config: dict[str, Any],
               train_fn: Callable[[nn.Module], dict[str, Any]]) -> tuple[nn.Module, dict[str, Any]]:  # fmt: skip
        """A model cached in ``models/seed<seed>/<name>-<hash>``, trained by ``train_fn(model) -> info``.

        ``config`` must hold everything the model depends on beyond its name, the training config and the
        seed (which are always part of the hash). A cached card made from another config is retrained over,
        never trusted.
        """
        full = self._model_config(env, name, config)
        d = self.out / "models" / f"seed{seed}" / f"{_slug(name)}-{cache_key(full)}"
        if (d / "card.json").exists():
            ck = load_checkpoint(d, str(self.device))
            if matches(ck.card.get("cache"), full):
                return ck.model, ck.card["bench"]
        seed_everything(seed)
        model = env.factory()
        info = train_fn(model)
        save_checkpoint(model, d, self._card(env, seed, bench=info, variant=name, cache=cache_record(full)))
        return model, info

    @staticmethod
    def _model_config(env: _Env, name: str, config: dict[str, Any]) -> dict[str, Any]:
        """The full cache config of a model: its name, the training config (seed included) and ``config``."""
        return {"model": name, "train": to_dict(env.train_cfg), **config}

    def model_key(self, env: _Env, name: str, config: dict[str, Any]) -> str:
        """The cache key of model ``name`` (what cells computed from it record)."""
        return cache_key(self._model_config(env, name, config))

    def _relearn_cfg(self, seed: int) -> RelearnConfig | None:
        """The relearning attack of ``seed``: its sampling is seeded per bench seed, so seeds are replicates."""
        rc = self.cfg.relearn
        return None if rc is None else dataclasses.replace(rc, seed=rc.seed + seed)

    def _env(self, seed: int) -> _Env:
        train_cfg, _ = load_train_config(self.cfg.train, [*_train_overrides(self.cfg), f"seed={seed}"])
        key = json.dumps(to_dict(train_cfg.data), sort_keys=True)
        if key not in self._split_cache:
            self._split_cache[key] = load_split(train_cfg.data)
        split = self._split_cache[key]

        def factory() -> nn.Module:
            return build_model(train_cfg.model, split.spec).to(self.device)

        return _Env(split, train_cfg, ClassificationTask(split.spec.num_classes), self.device, factory)

    def _standard(self, env: _Env, seed: int) -> tuple[nn.Module, dict[str, Any]]:
        """The standard model of ``seed`` and its training info: loaded from ``models/`` or trained there."""

        def train(model: nn.Module) -> dict[str, Any]:
            r = fit(model, env.split.train, env.split.test, env.train_cfg, show_progress=False)
            return {"seconds": r.seconds, "metrics": r.metrics}

        return self._model(env, seed, "standard", {}, train)

    def _original(self, env: _Env, seed: int) -> tuple[nn.Module, float]:
        """The standard model of ``seed`` and its training seconds."""
        model, info = self._standard(env, seed)
        return model, float(info["seconds"])

    @staticmethod
    def _card(env: _Env, seed: int, **extra: Any) -> dict[str, Any]:
        """A checkpoint card for a bench model (loadable with ``load_checkpoint``)."""
        return ModelCard(producer="r2u bench", config=to_dict(env.train_cfg), seed=seed,
                         model={"name": env.train_cfg.model.name}, data=data_section(env.split, meta=False),
                         extra=extra).to_dict()  # fmt: skip

    def _retrained(self, env: _Env, original: nn.Module, views: RequestViews, setting: str, seed: int):
        """The gold model of (setting, seed) and its retraining seconds (cached in ``models/``).

        Keyed by the forgotten rows themselves, so settings (or groups) naming the same rows share it.
        """

        def train(model: nn.Module) -> dict[str, Any]:
            model.load_state_dict(original.state_dict())  # retrain rebuilds from the factory; start alike
            ucfg = UnlearnConfig(method=method_config({"name": "retrain"}), stop=StopConfig(), seed=seed)
            res = unlearn_model(model, views, build_method(ucfg.method, env.task), ucfg, self._ctx(env, seed))
            return {"seconds": res.seconds, "steps": res.steps, "grad_evals": res.grad_evals, "setting": setting}

        return self._model(env, seed, "retrain", self._retrain_config(views), train)

    @staticmethod
    def _retrain_config(views: RequestViews) -> dict[str, Any]:
        return {"forget_rows": rows_digest(views), "forget_size": len(views.forget)}

    def _ctx(self, env: _Env, seed: int) -> Context:
        return Context(env.task, torch.Generator().manual_seed(seed), env.device, to_dict(env.train_cfg), env.factory)

    # -- evaluation ---------------------------------------------------------------------------------------
    def _evaluate(self, model: nn.Module, views: RequestViews, test: Any, reference: nn.Module | None, seed: int):
        metrics = compute(EvalOutputs.for_request(model, views, test, reference))
        if self.cfg.mia:
            metrics.update(forget_set_attacks(model, views, test, seed, self.cfg.mia_max_test))
        return metrics

    def _cell_path(self, key: str, config: dict[str, Any]) -> Path:
        """Where the cell ``key`` made from cache config ``config`` lives (the name carries its hash)."""
        return self.out / "cells" / f"{_slug(key)}-{cache_key(config)}.json"

    def _cell_config(self, env: _Env, views: RequestViews, setting: str, variant: str,
                     mcfg: MethodConfig) -> dict[str, Any]:  # fmt: skip
        """Everything a cell depends on: its models (by cache key), the request's rows, method, stop, attacks."""
        rc = self._relearn_cfg(env.train_cfg.seed)
        return {"cell": self._key(setting, env.train_cfg.seed, variant, mcfg),
                "original": self.model_key(env, "standard", {}),
                "reference": self.model_key(env, "retrain", self._retrain_config(views)),
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
        plan: dict[tuple[int, str], tuple[_Env, RequestViews, list[_PlannedCell]]] = {}
        for seed in cfg.seeds:
            env = self._env(seed)
            for setting in cfg.settings:
                views = DeletionRequest.parse(setting).resolve(env.split.train, env.split.test,
                                                               env.split.spec.num_classes)  # fmt: skip
                cells = []
                for variant in cfg.variants:
                    for m in methods:
                        conf = self._cell_config(env, views, setting, variant, m)
                        path = self._cell_path(self._key(setting, seed, variant, m), conf)
                        cells.append(_PlannedCell(variant, m, path, conf))
                plan[(seed, setting)] = (env, views, cells)
        self._cell_files = [c.path for _, _, cells in plan.values() for c in cells]
        todo = {k: (env, views, [c for c in cells if load_json(c.path, c.config) is None])
                for k, (env, views, cells) in plan.items()}  # fmt: skip
        left = sum(len(c) for *_, c in todo.values())
        with progress_bar(self.show_progress) as bar:
            task = bar.add_task("bench", total=len(self._cell_files), completed=len(self._cell_files) - left)
            for (seed, setting), (env, views, cells) in todo.items():
                if not cells:
                    continue
                original, _ = self._original(env, seed)
                reference, ref_info = self._retrained(env, original, views, setting, seed)
                ref_metrics = self._evaluate(reference, views, env.split.test, None, seed)
                rc = self._relearn_cfg(seed)
                ref_relearn = relearn_attack(reference, views, rc) if rc is not None else None
                for c in cells:
                    bar.update(task, description=f"seed {seed} {setting} {c.method.name}")
                    cell = self._run_cell(env, original, reference, views, setting, seed, c.variant, c.method,
                                          ref_metrics, ref_info, ref_relearn)  # fmt: skip
                    store_json(c.path, c.config, cell)
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
            res = unlearn_model(model, views, build_method(mcfg, env.task), ucfg, self._ctx(env, seed),
                                reference_value=ref_value)  # fmt: skip
            curve = res.curve
            metrics = self._evaluate(model, views, env.split.test, reference, seed)
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
        env = self._env(seed)
        original, _ = self._original(env, seed)
        views = DeletionRequest.parse(setting).resolve(env.split.train, env.split.test, env.split.spec.num_classes)
        reference, _ = self._retrained(env, original, views, setting, seed)
        ref_value = compute(EvalOutputs.collect(reference, {"forget": views.forget}))["forget_acc"]
        retrained_cache: dict[int, dict[str, torch.Tensor]] = {}

        def retrain(train_seed: int) -> nn.Module:
            if train_seed not in retrained_cache:
                model = copy.deepcopy(original)
                ucfg = UnlearnConfig(method=method_config({"name": "retrain", "seed": train_seed}), stop=StopConfig())
                unlearn_model(model, views, build_method(ucfg.method, env.task), ucfg, self._ctx(env, train_seed))
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
                unlearn_model(model, views, build_method(mcfg, env.task), ucfg, self._ctx(env, s),
                              reference_value=ref_value)  # fmt: skip
                return model

            return make

        names = pc.methods or [m.name for m in self.cfg.methods]
        methods = [method_config({"name": "retrain"}), *(m for m in self.cfg.methods if m.name in names)]
        out: dict[str, Any] = {}
        with progress_bar(self.show_progress) as bar:
            task = bar.add_task("proof of forgetting", total=len(methods))
            for mcfg in methods:
                path = self.out / "proof" / f"{_slug(mcfg.name)}.json"
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
        """Collects every cell into ``results.json`` and renders the report."""
        cells = read_cells(self._cell_files)
        order = {s: i for i, s in enumerate(self.cfg.settings)}
        cells.sort(key=lambda c: (order.get(c["setting"], 99), c["seed"], c["variant"], c["method"] != "retrain"))
        results = {
            "preset": self.preset,
            "created": now_iso(),
            "versions": versions(),
            "config": to_dict(self.cfg),
            "seeds": self.cfg.seeds,
            "data_fingerprints": self._fingerprints(),
            "cells": cells,
            "proof": self.run_proof(),
        }
        try:
            results["summary"] = summarise(cells, SUMMARY_METRICS)
            write_json(self.out / "results.json", results)
            write_report(results, self.out)
        except ImportError:  # report renderer not installed in this build
            write_json(self.out / "results.json", results)
        return results

    def _fingerprints(self) -> dict[str, Any]:
        return {f"seed{seed}": self._env(seed).split.fingerprints() for seed in self.cfg.seeds}


def read_cells(paths: list[Path]) -> list[dict[str, Any]]:
    """The cells of *this* run (other configs' cells may share the folder), without their cache configs."""
    cells = []
    for p in paths:
        cell = json.loads(p.read_text(encoding="utf-8"))
        cell["cache"] = {"key": cell["cache"]["key"]}  # the full config is in results["config"] already
        cells.append(cell)
    return cells


SUMMARY_METRICS = [
    "forget_acc", "retain_acc", "test_acc", "test_retain_acc", "mia_auc", "mia_efficacy", "avg_gap",
    "steps", "grad_evals", "seconds", "time_ratio_to_retrain",
]  # fmt: skip


def run_bench(preset: str, out_dir: str | Path, overrides: list[str] | tuple[str, ...] = (),
              show_progress: bool = True) -> dict[str, Any]:  # fmt: skip
    """Loads a bench preset and runs it into ``out_dir`` (resuming finished cells)."""
    cfg, path = load_bench_config(preset, overrides)
    return run_resumable(BenchRunner, cfg, path, out_dir, show_progress)


def run_resumable(runner_cls: type[BenchRunner], cfg: Any, preset_path: str, out_dir: str | Path,
                  show_progress: bool) -> dict[str, Any]:  # fmt: skip
    """Runs ``runner_cls(cfg)`` into ``out_dir``, refusing to resume a run made with another config.

    Raises:
        ConfigError: If ``out_dir`` holds a run of a different config.
    """
    saved = Path(out_dir) / "bench_config.json"
    if saved.exists() and json.loads(saved.read_text(encoding="utf-8"))["config"] != to_dict(cfg):
        raise ConfigError(f"{out_dir} holds a benchmark run with a different config; resume it with the same "
                          "preset and overrides, or choose another --out")  # fmt: skip
    t0 = time.perf_counter()
    results = runner_cls(cfg, out_dir, Path(preset_path).stem, show_progress).run()
    results["wall_seconds"] = time.perf_counter() - t0
    return results
