"""Readiness benchmark: standard vs ready vs retrained (and learning-time baselines), DESIGN §5–§6.

Launch: ``r2u ready-bench fashion-ready --out runs/ready-fashion`` (presets in ``configs/ready_bench``).

Per seed it trains the standard model, one ready model per *group* (a readiness configuration: request
kind plus revocable set, or the whole-data pool), and for groups with baselines the down-weighting,
negative-training, DP-SGD (and, with ``flood``, pool-flooding) models. Per group and request it retrains the
gold model, then every unlearning method serves the request on every variant under the stop rule of the
request's kind (class: forget accuracy ≤ the retrained model's + tolerance; random / sample / group: forget
loss ≥ the retrained model's) and the same budget; each run records steps, whether it reached the target (a
run that did not is censored), metrics after unlearning with membership inference and the gaps to the retrained
model, and the relearning attack (seeded per bench seed, and run on the retrained model as the floor).

Caching (:mod:`ready2unlearn.recipes.cache`): models under ``models/seed<S>/<name>-<hash>``, unlearning runs
under ``shared/`` (runs of models every group shares — standard, DP — are computed once per request) and
cells under ``cells/``, every name ending in a hash of everything that made it and checked on load. An
interrupted run resumes where it stopped; a changed, inserted or reordered row never reuses a stale result.

The runner composes the harness (:mod:`ready2unlearn.recipes.harness`: cell cache, report hook, resumable
runs) and the classifier environment it shares with ``r2u bench`` (:mod:`ready2unlearn.recipes.classifier_env`:
seeds, data, the cached standard and retrained models, evaluation with membership inference).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ready2unlearn.artifacts import now_iso, versions, write_json
from ready2unlearn.attacks.relearn import RelearnConfig, relearn_attack
from ready2unlearn.config import to_dict
from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.data.request import DeletionRequest, RequestViews
from ready2unlearn.engine.fit import fit
from ready2unlearn.engine.method import MethodConfig, build_method, method_config
from ready2unlearn.engine.stop import StopConfig
from ready2unlearn.engine.unlearn import unlearn_model
from ready2unlearn.engine.unlearn_config import UnlearnConfig
from ready2unlearn.errors import ConfigError
from ready2unlearn.evaluate.metrics import EvalOutputs, compute, gaps
from ready2unlearn.models.dp import dp_twin
from ready2unlearn.progress import progress_bar
from ready2unlearn.readiness.baselines import NegativeTrainingObjective, fit_downweighted, fit_dp_sgd
from ready2unlearn.readiness.calibrate import Calibration, calibrate_alpha
from ready2unlearn.readiness.config import ReadyConfig
from ready2unlearn.readiness.cost import state_bytes, step_memory
from ready2unlearn.readiness.flooding import PoolFlooding
from ready2unlearn.readiness.objective import ReadinessObjective, constraint_health
from ready2unlearn.readiness.sampler import RevocableSet
from ready2unlearn.readiness.timing import measure_training_cost
from ready2unlearn.recipes.cache import cache_key, load_json, store_json
from ready2unlearn.recipes.classifier_env import ClassifierEnv, SeedEnv, retrain_config, rows_digest, seeded_relearn
from ready2unlearn.recipes.harness import CellCache, Report, Trained, publish, run_resumable, slug
from ready2unlearn.recipes.ready_bench_config import (
    ReadyBenchConfig,
    ReadyGroup,
    SequentialConfig,
    check_request_size,
    load_ready_bench_config,
    resolve_request,
)
from ready2unlearn.report.readiness import summarise_readiness
from ready2unlearn.report.readiness_report import write_readiness_report
from ready2unlearn.runtime import resolve_device

#: Interleaved blocks and steps per block of the training-cost probe (part of its cache key).
COST_PROBE = {"blocks": 5, "steps": 8}

__all__ = [
    "VARIANTS",
    "ReadyBenchConfig",
    "ReadyBenchRunner",
    "ReadyGroup",
    "SequentialConfig",
    "load_ready_bench_config",
    "resolve_request",
    "run_ready_bench",
]

VARIANTS = ("standard", "ready", "downweight", "negtrain", "flood", "dp")


def flood_start(env: SeedEnv) -> int:
    """The epoch pool flooding starts at: a quarter of the run (at least 1), as readiness with ``alpha=auto``."""
    return max(1, env.train_cfg.epochs // 4)


def reference_value(stop: StopConfig, ref_metrics: dict[str, float]) -> float | None:
    """The retrained model's value a ``reference`` stop target compares with: its forget loss or accuracy."""
    if stop.rule == "steps":
        return None
    return ref_metrics["forget_loss" if stop.rule == "forget_loss" else "forget_acc"]


@dataclass
class _Variant:
    """A model to unlearn from: how to get it (trained or loaded on first use) and its cache key."""

    key: str
    get: Callable[[], Trained]


class ReadyBenchRunner:
    """Runs a :class:`ReadyBenchConfig` into ``out_dir`` (resumable).

    Args:
        cfg: The readiness matrix.
        out_dir: Where models, runs, cells, results and the report go.
        preset: Name recorded in the results.
        show_progress: Progress bars.
        report: Renders the report from the results (default: the readiness report and its plots).
    """

    def __init__(self, cfg: ReadyBenchConfig, out_dir: str | Path, preset: str = "custom",
                 show_progress: bool = True, report: Report = write_readiness_report) -> None:  # fmt: skip
        self.cfg = cfg
        self.out = Path(out_dir)
        self.preset = preset
        self.show_progress = show_progress
        self.report = report
        self.device = resolve_device(cfg.device)
        self.classifier = ClassifierEnv(cfg, self.out, self.device)
        self.cells = CellCache(self.out)  # this run's cells, in order (the folder may hold other configs')
        self._extra_files: dict[str, Path] = {}
        self._cost_files: list[Path] = []
        self._dp_replaced: list[str] | None = None  # see _dp_swap

    def _relearn_cfg(self, seed: int) -> RelearnConfig | None:
        return seeded_relearn(self.cfg.relearn, seed)

    # -- models -------------------------------------------------------------------------------------------
    def _variants(self, env: SeedEnv, seed: int, group: ReadyGroup) -> dict[str, _Variant]:
        """Every model of ``group``'s cells, by variant; none is trained until its ``get`` is called."""
        cfg = self.cfg
        rcfg = cfg.group_ready(group).resolved()
        standard = _Variant(self.classifier.model_key(env, "standard", {}),
                            self._loader(env, seed, "standard", {}, lambda m: self._train_plain(env, m)))  # fmt: skip
        calibration = None
        if rcfg.alpha == "auto" and cfg.calibrate_on_standard:
            # Measured on this seed's standard model, as a user would with `r2u ready-tune` on theirs: the ready
            # model's cache key then holds the number, so a changed measurement retrains it.
            calibration = self._calibration(env, seed, rcfg, standard)
            rcfg = dataclasses.replace(rcfg, alpha=calibration["alpha"])
        ready = {"ready": to_dict(rcfg)}
        specs: dict[str, tuple[dict[str, Any], Callable[[nn.Module], dict[str, Any]]]] = {
            "standard": ({}, lambda m: self._train_plain(env, m)),
            "ready": (ready, lambda m: self._train_ready(env, seed, m, rcfg, calibration)),
        }
        if group.baselines:
            if cfg.downweight is not None:
                w = {"revocable": rcfg.revocable, "weight": cfg.downweight}
                specs["downweight"] = (w, lambda m: self._train_downweight(env, m, group))
            if cfg.negtrain:
                specs["negtrain"] = (ready, lambda m: self._train_negtrain(env, seed, m, rcfg))
            if cfg.flood:
                flood = {"flood": {"revocable": rcfg.revocable, "level": "heldout", "start_epoch": flood_start(env)}}
                specs["flood"] = (flood, lambda m: self._train_flood(env, seed, m, group))
            if cfg.dp is not None:
                specs["dp"] = ({"dp": to_dict(cfg.dp), **self._dp_swap(env)}, lambda m: self._train_dp(env, m))
        # Folders are named by variant and hash alone: groups (or sweep rows) with the same resolved config share
        # one model, whatever their names or positions.
        return {variant: _Variant(self.classifier.model_key(env, variant, conf),
                                  self._loader(env, seed, variant, conf, train))
                for variant, (conf, train) in specs.items()}  # fmt: skip

    def _loader(self, env, seed, variant, conf, train) -> Callable[[], Trained]:
        """Loads (or trains) the model on first use and keeps it in memory until the next seed."""
        build = (lambda: dp_twin(env.factory())[0]) if variant == "dp" else None
        return lambda: self.classifier.model(env, seed, variant, conf, train, keep=True, build=build)

    def _dp_swap(self, env: SeedEnv) -> dict[str, Any]:
        """The layers DP-SGD's twin replaces (part of its key and card), or nothing for a model DP-SGD can train.

        Found once per run: every seed builds the same architecture, so one throwaway build answers for all.
        """
        if self._dp_replaced is None:
            with torch.random.fork_rng(devices=[]):  # a throwaway build must not shift the seeded runs after it
                self._dp_replaced = dp_twin(env.factory())[1]
        return {"dp_replaced": self._dp_replaced} if self._dp_replaced else {}

    def _train_plain(self, env: SeedEnv, model: nn.Module) -> dict[str, Any]:
        return self.classifier.train_plain(env, model)

    def _train_ready(self, env: SeedEnv, seed: int, model: nn.Module, rcfg: ReadyConfig,
                     calibration: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
        rcfg = rcfg.for_epochs(env.train_cfg.epochs)
        obj = ReadinessObjective(rcfg, env.split.train.to(self.device), env.split.spec.num_classes, seed,
                                 heldout=self._heldout(env))  # fmt: skip
        r = fit(model, env.split.train, env.split.test, env.train_cfg, show_progress=False, regularizer=obj)
        return {"seconds": r.seconds, "metrics": r.metrics, "ready": to_dict(rcfg),
                "readiness": obj.summary(env.split.train), "calibration": calibration}  # fmt: skip

    def _heldout(self, env: SeedEnv) -> ArrayDataset | None:
        """The validation rows (``data.validation``) that ``ready.cap=heldout`` measures on, if carved."""
        return env.split.val.to(self.device) if env.split.val is not None else None

    def _calibration(self, env: SeedEnv, seed: int, rcfg: ReadyConfig, standard: _Variant) -> dict[str, Any]:
        """``calibrate_alpha`` on the standard model of ``seed``, cached by the model's key and the ready config."""
        conf = {"standard": standard.key, "ready": to_dict(rcfg), "seed": seed}
        path = self.out / "calibration" / f"seed{seed}-{cache_key(conf)}.json"
        cached = load_json(path, conf)
        if cached is not None:
            return cached["calibration"]
        model, _ = standard.get()
        cal = calibrate_alpha(model, env.split.train.to(self.device), rcfg, env.split.spec.num_classes, seed=seed,
                              heldout=self._heldout(env))  # fmt: skip
        return store_json(path, conf, {"calibration": cal.to_dict()})["calibration"]

    def _train_negtrain(self, env: SeedEnv, seed: int, model: nn.Module, rcfg: ReadyConfig) -> dict[str, Any]:
        obj = NegativeTrainingObjective(rcfg, env.split.train.to(self.device), env.split.spec.num_classes, seed,
                                        heldout=self._heldout(env))  # fmt: skip
        r = fit(model, env.split.train, env.split.test, env.train_cfg, show_progress=False, regularizer=obj)
        return {"seconds": r.seconds, "metrics": r.metrics, "negtrain": obj.summary(env.split.train)}

    def _train_flood(self, env: SeedEnv, seed: int, model: nn.Module, group: ReadyGroup) -> dict[str, Any]:
        train = env.split.train.to(self.device)
        flood = PoolFlooding(train, self.cfg.group_ready(group).revocable, env.split.spec.num_classes,
                             heldout=self._heldout(env), start_epoch=flood_start(env), task=env.task,
                             seed=seed)  # fmt: skip
        r = fit(model, env.split.train, env.split.test, env.train_cfg, show_progress=False, batch_loss=flood)
        return {"seconds": r.seconds, "metrics": r.metrics, "flood": flood.summary(train)}

    def _train_downweight(self, env: SeedEnv, model: nn.Module, group: ReadyGroup) -> dict[str, Any]:
        rev = self._revocable(env, group)
        r = fit_downweighted(model, env.split.train, env.split.test, env.train_cfg, rev.pool,
                             self.cfg.downweight)  # type: ignore[arg-type]  # fmt: skip
        return {"seconds": r.seconds, "metrics": r.metrics, "weight": self.cfg.downweight}

    def _train_dp(self, env: SeedEnv, model: nn.Module) -> dict[str, Any]:
        r, eps = fit_dp_sgd(model, env.split.train, env.split.test, env.train_cfg, self.cfg.dp)  # type: ignore[arg-type]
        return {"seconds": r.seconds, "metrics": r.metrics, "epsilon": eps, "dp": to_dict(self.cfg.dp),
                **self._dp_swap(env)}  # fmt: skip

    def _revocable(self, env: SeedEnv, group: ReadyGroup) -> RevocableSet:
        return RevocableSet.resolve(env.split.train, self.cfg.group_ready(group).revocable, env.split.spec.num_classes)

    def _views(self, env: SeedEnv, request: DeletionRequest) -> RequestViews:
        return request.resolve(env.split.train, env.split.test, env.split.spec.num_classes)

    # -- the matrix ---------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Runs every missing cell, then writes ``results.json`` and the report; returns the results."""
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        self.classifier.models.clear()
        self._extra_files = {}
        self._cost_files = []
        self.cells.files.clear()
        self._check_requests(self.classifier.env(cfg.seeds[0]))  # a request too small to resolve fails before training
        write_json(self.out / "bench_config.json", {"preset": self.preset, "config": to_dict(cfg)})
        total = sum(len(g.requests) for g in cfg.groups) * len(cfg.seeds)
        with progress_bar(self.show_progress) as bar:
            task = bar.add_task("ready-bench", total=total)
            for seed in cfg.seeds:
                env = self.classifier.env(seed)
                self.classifier.models.clear()  # one seed's models at a time
                for group in cfg.groups:
                    variants = self._variants(env, seed, group)
                    rev = self._revocable(env, group)
                    for setting, spec in group.requests.items():
                        bar.update(task, description=f"seed {seed} {group.name}/{setting}")
                        request = resolve_request(spec, env.split.train, env.split.spec.num_classes, rev)
                        views = self._views(env, request)
                        conf = self._cell_config(env, group, setting, spec, views, variants)
                        path = self.cells.track(self.cells.path(f"{group.name}-{setting}-seed{seed}", conf))
                        if self.cells.load(path, conf) is None:
                            cell = self._run_setting(env, seed, group, setting, spec, request, views, variants)
                            self.cells.store(path, conf, cell)
                        bar.update(task, advance=1)
                    if cfg.cost:
                        self._cost(env, seed, group, variants)
                if seed == cfg.seeds[0]:
                    self._extras(env, seed)
        return self.finish()

    def _check_requests(self, env: SeedEnv) -> None:
        """Every request resolves to enough rows (DESIGN §6), ``flood`` has its validation rows, DP-SGD its layers.

        Raises:
            ConfigError: Otherwise, before anything is trained.
        """
        n = len(env.split.train)
        for group in self.cfg.groups:
            rev = self._revocable(env, group)
            for spec in group.requests.values():
                pos = resolve_request(spec, env.split.train, env.split.spec.num_classes, rev).forget_positions(
                    env.split.train, env.split.spec.num_classes
                )
                check_request_size(spec, len(pos), n, self.cfg.allow_small_requests)
        baselines = any(g.baselines for g in self.cfg.groups)
        if self.cfg.dp is not None and baselines:
            self._dp_swap(env)  # a layer with no DP-trainable replacement fails here, not hours in
        if self.cfg.flood and baselines and env.split.val is None:
            raise ConfigError("flood: true floods the revocable rows at the held-out level: add data.validation=N "
                              "to train_overrides")  # fmt: skip
        sc = self.cfg.sequential
        if sc.count:
            k = round(DeletionRequest.parse(sc.request.partition(" in ")[0]).fraction * n)  # type: ignore[operator]
            check_request_size(sc.request, k, n, self.cfg.allow_small_requests)

    def _cell_config(self, env, group, setting, spec, views, variants) -> dict[str, Any]:
        """Everything one cell depends on: its models (by key), the request's rows, methods, stop, attacks."""
        cfg = self.cfg
        targeted = setting in group.targeted
        return {"cell": f"{group.name}/{setting}", "seed": env.train_cfg.seed, "request": spec,
                "forget_rows": rows_digest(views), "models": {v: var.key for v, var in variants.items()},
                "reference": self.classifier.model_key(env, "retrain", retrain_config(views)),
                "methods": [to_dict(m) for m in cfg.methods],
                "extra_methods": [to_dict(m) for m in cfg.extra_methods] if targeted else [], "targeted": targeted,
                "ready": to_dict(cfg.group_ready(group)), **self._run_context(env.train_cfg.seed, views)}  # fmt: skip

    def _run_context(self, seed: int, views: RequestViews) -> dict[str, Any]:
        """The parts of a run's cache config that are neither models nor the method.

        The request kind is there beside the rows: a class request and a samples request naming the same rows
        are scored on different test views.
        """
        return {"kind": views.request.kind, "stop": to_dict(self._stop(views)),
                "relearn": to_dict(self._relearn_cfg(seed)), "mia": self.cfg.mia,
                "mia_max_test": self.cfg.mia_max_test}  # fmt: skip

    def _stop(self, views: RequestViews) -> StopConfig:
        return self.cfg.kind_stop(views.request.kind)

    def _run_setting(self, env, seed, group, setting, spec, request, views, variants) -> dict[str, Any]:
        cfg = self.cfg
        standard = variants["standard"].get()[0]
        reference, ref_info = self.classifier.retrained(env, standard, views, self._request_name(views), seed)
        ref_metrics = self.classifier.evaluate(reference, views, env.split.test, None, seed)
        ref_relearn = relearn_attack(reference, views, self._relearn_cfg(seed))
        ref_key = self.classifier.model_key(env, "retrain", retrain_config(views))
        stop = self._stop(views)
        kind = request.kind if request.kind != "samples" else "random"
        runs = []
        targeted = setting in group.targeted
        for variant, var in variants.items():
            model, info = var.get()
            methods = list(cfg.methods)
            if targeted and variant in ("standard", "ready"):
                methods += cfg.extra_methods
            methods = [cfg.kind_method(kind, m) for m in methods]
            before = compute(EvalOutputs.for_request(model, views, env.split.test))
            for mcfg in methods:
                result = self._cached_run(env, seed, variant, var.key, model, views, mcfg, reference, ref_key,
                                          ref_metrics, kind)  # fmt: skip
                health = constraint_health(info.get("readiness"))
                runs.append({"variant": variant, "method": mcfg.name, "train_seconds": info["seconds"],
                             "train_metrics": info.get("metrics", {}), "before": before, **result,
                             **{k: info[k] for k in ("dp_replaced",) if k in info},
                             **({"constraint": health} if health else {})})  # fmt: skip
        return {
            "group": group.name, "setting": setting, "seed": seed, "spec": spec, "targeted": targeted,
            "request": request.describe(), "kind": kind, "views": views.sizes(),
            "stop": {**to_dict(stop), "reference_value": reference_value(stop, ref_metrics),
                     "tolerance_samples": stop.tolerance * len(views.forget) if stop.rule == "forget_acc" else None},
            "reference": {"metrics": ref_metrics, "relearn": ref_relearn, "key": ref_key, **ref_info},
            "ready": to_dict(cfg.group_ready(group)), "runs": runs,
        }  # fmt: skip

    @staticmethod
    def _request_name(views: RequestViews) -> str:
        return f"{views.request.kind}-{rows_digest(views)[:12]}"

    def _cached_run(self, env, seed, variant, model_key, model, views, mcfg, reference, ref_key, ref_metrics,
                    kind) -> dict[str, Any]:  # fmt: skip
        """One unlearning run, cached under ``shared/`` by everything it depends on.

        Runs of the models every group shares (standard, DP) are thereby computed once per request.
        """
        conf = {"model": model_key, "reference": ref_key, "forget_rows": rows_digest(views), "method": to_dict(mcfg),
                **self._run_context(seed, views)}  # fmt: skip
        path = self.out / "shared" / f"seed{seed}-{variant}-{slug(mcfg.name)}-{cache_key(conf)}.json"
        cached = load_json(path, conf)
        if cached is not None:
            return {k: v for k, v in cached.items() if k != "cache"}
        result = self._unlearn(env, seed, model, views, mcfg, reference, ref_metrics, kind)
        store_json(path, conf, result)
        return result

    def _unlearn(self, env, seed, original, views, mcfg, reference, ref_metrics, kind) -> dict[str, Any]:
        model = copy.deepcopy(original)
        stop = self._stop(views)
        ucfg = UnlearnConfig(method=mcfg, stop=stop, seed=seed)
        res = unlearn_model(model, views, build_method(mcfg, env.task), ucfg, self.classifier.ctx(env, seed),
                            reference_value=reference_value(stop, ref_metrics))  # fmt: skip
        metrics = self.classifier.evaluate(model, views, env.split.test, reference, seed)
        return {
            "steps": res.steps, "grad_evals": res.grad_evals, "seconds": res.seconds, "stop_reason": res.stop_reason,
            "reached": res.reached, "target": res.target, "metrics": metrics, "gaps": gaps(metrics, ref_metrics, kind),
            "curve": res.curve, "relearn": relearn_attack(model, views, self._relearn_cfg(seed)),
        }  # fmt: skip

    # -- reported extras ----------------------------------------------------------------------------------
    def _cost(self, env: SeedEnv, seed: int, group: ReadyGroup, variants: dict[str, _Variant]) -> None:
        """The training-cost probe of ``group``'s readiness on ``seed`` (:mod:`~ready2unlearn.readiness.timing`).

        Per seed, so the cost ratio gets an interval like every other target; the α measurement's time is the
        ready run's own where its card recorded it. Cached by both models and the ready and training configs.
        """
        rcfg = self.cfg.group_ready(group)
        tc = env.train_cfg
        standard, ready = variants["standard"], variants["ready"]
        conf = {"standard": standard.key, "ready_model": ready.key, "ready": to_dict(rcfg), "train": to_dict(tc),
                "probe": COST_PROBE}  # fmt: skip
        path = self.out / "cost" / f"seed{seed}-{slug(group.name)}-{cache_key(conf)}.json"
        if load_json(path, conf) is None:
            _, info = ready.get()
            cal = info.get("calibration") or (info.get("readiness") or {}).get("calibration")
            model, _ = standard.get()
            cost = measure_training_cost(model, env.split.train.to(self.device), rcfg, env.split.spec.num_classes,
                                         epochs=tc.epochs, batch_size=tc.batch_size, optim=tc.optim, seed=seed,
                                         task=env.task, calibration=Calibration(**cal) if cal else None,
                                         heldout=self._heldout(env), **COST_PROBE)  # fmt: skip
            store_json(path, conf, {"seed": seed, "group": group.name, **cost.to_dict()})
        self._cost_files.append(path)

    def _extras(self, env: SeedEnv, seed: int) -> None:
        """Memory per step and sequential requests on the first seed, each cached by its own config."""
        cfg = self.cfg
        jobs: list[tuple[str, dict[str, Any], Callable[[], dict[str, Any]]]] = []
        if cfg.memory:
            jobs.append(("memory", self.memory_config(env), lambda: self.measure_memory(env, seed)))
        if cfg.sequential.count:
            sc = cfg.sequential
            group = next(g for g in cfg.groups if g.name == sc.group)
            conf = {"standard": self.classifier.model_key(env, "standard", {}),
                    "ready": to_dict(cfg.group_ready(group).resolved()), "train": to_dict(env.train_cfg),
                    "sequential": to_dict(sc),
                    "stop": to_dict(cfg.kind_stop("random")), "methods": [to_dict(m) for m in cfg.methods]}  # fmt: skip
            jobs.append(("sequential", conf, lambda: self._sequential(env, seed)))
        for name, conf, make in jobs:
            path = self.out / f"{name}.json"
            if load_json(path, conf) is None:
                store_json(path, conf, make())
            self._extra_files[name] = path

    def memory_config(self, env: SeedEnv) -> dict[str, Any]:
        """What :meth:`measure_memory`'s result depends on: the cache config of the bench's ``memory.json``."""
        readies = {g.name: to_dict(self.cfg.group_ready(g).resolved()) for g in self.cfg.groups}
        # `probe` 2: batches are copies (probe 1 sliced the training set, so it counted the whole set);
        # 3 adds the peak allocated bytes.
        return {"train": to_dict(env.train_cfg), "ready": readies, "probe": 3}

    def measure_memory(self, env: SeedEnv, seed: int) -> dict[str, Any]:
        """Memory of one standard step and one ready step per group (same batch size).

        Two measures per step: the bytes autograd saves (an upper bound, as earlier reports gave it) and the
        peak bytes the step allocates (``peak``, see :func:`~ready2unlearn.readiness.cost.peak_allocated_bytes`).
        Measured on a freshly initialised model: what a step allocates depends on shapes, not on trained values.
        """
        torch.manual_seed(seed)
        model = env.factory().train()
        train = env.split.train.to(self.device)
        bs = env.train_cfg.batch_size
        # Copies, not slices: a slice shares the whole training set's storage, which autograd would then count.
        x, y = train.x[:bs].clone(), train.y[:bs].clone()
        steps: dict[str, Callable[[], torch.Tensor]] = {"standard": lambda: env.task.loss(model, x, y)}
        for group in self.cfg.groups:
            rcfg = self.cfg.group_ready(group).resolved()
            if rcfg.alpha == "auto":  # memory does not depend on the step size; a measured α needs a trained model
                rcfg = dataclasses.replace(rcfg, alpha=1e-3)
            obj = ReadinessObjective(rcfg, train, env.split.spec.num_classes, seed, heldout=self._heldout(env))

            def step(obj: ReadinessObjective = obj) -> torch.Tensor:
                extra, _ = obj(model, 0, obj.cfg.start_epoch)
                return env.task.loss(model, x, y) + extra

            steps[f"ready-{group.name}"] = step
        memory = step_memory(model, steps, self.device)
        # The saved bytes stay at the top level, where reports before the peak was measured read them.
        return {"batch_size": bs, "state_bytes": state_bytes(model), **memory["saved"], "peak": memory["peak"]}

    def _sequential(self, env: SeedEnv, seed: int) -> dict[str, Any]:
        """``count`` requests one after another on the standard and the ready model of ``sequential.group``."""
        sc = self.cfg.sequential
        group = next(g for g in self.cfg.groups if g.name == sc.group)
        variants = self._variants(env, seed, group)
        standard, ready = variants["standard"].get()[0], variants["ready"].get()[0]
        rev = self._revocable(env, group)
        base, _, where = sc.request.partition(" in ")
        req0 = DeletionRequest.parse(base)
        mcfg: MethodConfig = next((m for m in [*self.cfg.methods, *self.cfg.extra_methods] if m.name == sc.method),
                                  method_config({"name": sc.method}))  # fmt: skip
        mcfg = self.cfg.kind_method(req0.kind, mcfg)
        train, n = env.split.train, len(env.split.train)
        stop = self.cfg.kind_stop("random")
        steps: list[dict[str, Any]] = []
        current = {"standard": copy.deepcopy(standard), "ready": copy.deepcopy(ready)}
        gone = np.empty(0, dtype=np.int64)
        for i in range(sc.count):
            spec = f"{req0.kind}:{req0.fraction}@{req0.seed + i}" + (f" in {where}" if where else "")
            request = resolve_request(spec, train, env.split.spec.num_classes, rev, exclude=gone)
            pos = request.forget_positions(train)
            gone = np.union1d(gone, pos)
            keep = np.setdiff1d(np.arange(n), gone)
            views = RequestViews(request, train.subset(pos), train.subset(keep), env.split.test.subset([]),
                                 env.split.test, pos)  # fmt: skip
            all_gone = RequestViews(request, train.subset(gone), train.subset(keep), env.split.test.subset([]),
                                    env.split.test, gone)  # fmt: skip
            reference, _ = self.classifier.retrained(env, standard, all_gone, self._request_name(all_gone), seed)
            ref = compute(EvalOutputs.collect(reference, {"forget": views.forget, "test": env.split.test}))
            row: dict[str, Any] = {"request": i + 1, "size": len(pos), "reference_forget_acc": ref["forget_acc"],
                                   "reference_forget_loss": ref["forget_loss"],
                                   "reference_test_acc": ref["test_acc"]}  # fmt: skip
            for variant, model in current.items():
                ucfg = UnlearnConfig(method=mcfg, stop=stop, seed=seed + i)
                res = unlearn_model(model, views, build_method(mcfg, env.task), ucfg, self.classifier.ctx(env, seed),
                                    reference_value=reference_value(stop, ref))  # fmt: skip
                m = compute(EvalOutputs.collect(model, {"test": env.split.test, "forget": all_gone.forget}))
                row[variant] = {"steps": res.steps, "reached": res.reached, "test_acc": m["test_acc"],
                                "forget_acc_all": m["forget_acc"], "forget_loss_all": m["forget_loss"]}  # fmt: skip
            steps.append(row)
        return {"seed": seed, "group": sc.group, "method": sc.method, "request": sc.request, "stop": to_dict(stop),
                "rows": steps}  # fmt: skip

    def finish(self) -> dict[str, Any]:
        """Collects this run's cells into ``results.json`` (with the target summary) and renders the report."""
        cells = self.cells.read()
        extras = {}
        for name, path in self._extra_files.items():
            extras[name] = {k: v for k, v in json.loads(path.read_text(encoding="utf-8")).items() if k != "cache"}
        results = {
            "preset": self.preset, "created": now_iso(), "versions": versions(), "config": to_dict(self.cfg),
            "seeds": self.cfg.seeds, "data_fingerprints": self.classifier.fingerprints(self.cfg.seeds), "cells": cells,
            **extras,
        }  # fmt: skip
        if self._cost_files:
            results["cost"] = [{k: v for k, v in json.loads(p.read_text(encoding="utf-8")).items() if k != "cache"}
                               for p in self._cost_files]  # fmt: skip
        results["summary"] = summarise_readiness(results)
        return publish(results, self.out, self.report)


def run_ready_bench(preset: str, out_dir: str | Path, overrides: list[str] | tuple[str, ...] = (),
                    show_progress: bool = True) -> dict[str, Any]:  # fmt: skip
    """Loads a readiness-bench preset and runs it into ``out_dir`` (resuming finished cells and models)."""
    cfg, path = load_ready_bench_config(preset, overrides)
    return run_resumable(ReadyBenchRunner, cfg, path, out_dir, show_progress)
