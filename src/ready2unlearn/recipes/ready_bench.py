"""Readiness benchmark: standard vs ready vs retrained (and learning-time baselines), DESIGN §5–§6.

Launch: ``r2u ready-bench fashion-ready --out runs/ready-fashion`` (presets in ``configs/ready_bench``).

Per seed it trains the standard model, one ready model per *group* (a readiness configuration: request
kind plus revocable set, or the whole-data pool), and optionally the down-weighting and DP-SGD baselines.
Per group and request it retrains the gold model, then every unlearning method serves the request on every
variant under the same stop rule ("forget accuracy ≤ the retrained model's") and budget; each cell records
steps, metrics after unlearning, and the relearning attack. Training-time ratios (ready / standard) are
measured side by side in the same run. Models and cells are cached under ``out/`` (atomically), so an
interrupted run resumes where it stopped.

Request specs are those of ``r2u unlearn`` plus ``random:F@S in pool`` / ``random:F@S in stable``: a
fraction F of the *whole* training set, drawn only from the group's revocable pool / its stable rest.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ready2unlearn.artifacts import now_iso, save_checkpoint, versions, write_json
from ready2unlearn.attacks.relearn import RelearnConfig, relearn_attack
from ready2unlearn.checkpoint import load_checkpoint
from ready2unlearn.config import apply_overrides, check, from_dict, load_yaml, resolve_preset, to_dict
from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.data.request import DeletionRequest, RequestViews
from ready2unlearn.evaluate.metrics import EvalOutputs, compute
from ready2unlearn.progress import progress_bar
from ready2unlearn.readiness.baselines import DPConfig, fit_downweighted, fit_dp_sgd
from ready2unlearn.readiness.config import ReadyConfig
from ready2unlearn.readiness.cost import saved_tensor_bytes, state_bytes
from ready2unlearn.readiness.objective import ReadinessObjective
from ready2unlearn.readiness.sampler import RevocableSet
from ready2unlearn.recipes.bench import BenchRunner, _Env, _slug, run_resumable
from ready2unlearn.recipes.train import fit
from ready2unlearn.recipes.train import load_config as load_train_config
from ready2unlearn.recipes.unlearn import unlearn_model
from ready2unlearn.runtime import seed_everything
from ready2unlearn.unlearn.base import MethodConfig, build_method, method_config
from ready2unlearn.unlearn.config import UnlearnConfig
from ready2unlearn.unlearn.stop import StopConfig

VARIANTS = ("standard", "ready", "downweight", "dp")


@dataclass
class ReadyGroup:
    """One readiness configuration and the requests it is tested on.

    Attributes:
        name: Group name (``class``, ``random-all``...).
        ready: ``key=value`` overrides of the bench's base ``ready`` config (``kind=random``...).
        requests: Setting name → request spec (``in: class:3``, ``out: random:0.01@1 in stable``).
        targeted: Settings the DESIGN targets apply to (the others are reported only).
        baselines: Also train the down-weighting baseline on this group's revocable set, and unlearn the
            DP-SGD model, on this group's requests.
    """

    name: str
    ready: list[str] = field(default_factory=list)
    requests: dict[str, str] = field(default_factory=dict)
    targeted: list[str] = field(default_factory=list)
    baselines: bool = False

    def __post_init__(self) -> None:
        check(bool(self.requests), f"group {self.name!r} needs at least one request")
        for spec in self.requests.values():
            DeletionRequest.parse(spec.partition(" in ")[0])
            check(spec.partition(" in ")[2] in ("", "pool", "stable"), f"'in' must be pool or stable: {spec!r}")
        check(set(self.targeted) <= set(self.requests), f"group {self.name!r}: targeted settings must be requests")


@dataclass
class SequentialConfig:
    """Sequential requests: ``count`` requests one after another on the first seed (0 = off).

    Attributes:
        count: Number of requests.
        group: Group whose ready model serves them.
        request: Spec of each request (its ``@seed`` is advanced per request; ids already forgotten are
            excluded from later draws).
        method: Unlearning method.
    """

    count: int = 0
    group: str = "random"
    request: str = "random:0.01@100 in pool"
    method: str = "ga"

    def __post_init__(self) -> None:
        check(self.count >= 0, "sequential.count must be ≥ 0")


@dataclass
class ReadyBenchConfig:
    """A readiness benchmark.

    Attributes:
        train: Training preset of every model (standard, ready, retrained, baselines).
        train_overrides: ``key=value`` overrides of that preset.
        seeds: Seeds (≥ 3 for the DESIGN protocol).
        ready: Base readiness config; each group overrides parts of it.
        groups: Readiness configurations and their requests.
        methods: Methods run on every variant (the targets use these).
        extra_methods: Methods run on standard and ready models only, for targeted settings (NPO/SimNPO on a
            model prepared for GA).
        stop: Stop rule and budget shared by every run.
        relearn: Relearning attack after unlearning (and on the retrained model, the floor).
        downweight: Loss weight of the revocable set for the down-weighting baseline (``null`` = skip).
        dp: DP-SGD baseline settings (``null`` = skip).
        sequential: Sequential-request setting.
        memory: Measure per-step autograd memory of standard and ready training.
        mia: Run the membership-inference attacks after unlearning.
        mia_max_test: Test samples MIA-efficacy's SVM uses.
        device: ``auto``, ``cpu``, ``cuda``...
        data_dir: Dataset folder.
    """

    train: str = "digits-mlp"
    train_overrides: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    ready: ReadyConfig = field(default_factory=ReadyConfig)
    groups: list[ReadyGroup] = field(default_factory=list)
    methods: list[MethodConfig] = field(default_factory=lambda: [method_config({"name": "ga"}),
                                                                 method_config({"name": "grad_diff"})])  # fmt: skip
    extra_methods: list[MethodConfig] = field(default_factory=list)
    stop: StopConfig = field(
        default_factory=lambda: StopConfig(rule="forget_acc", target="reference", max_steps=300, eval_every=1)
    )
    relearn: RelearnConfig = field(default_factory=lambda: RelearnConfig(sets=["forget-10"], steps=10, eval_every=2))
    downweight: float | None = 0.1
    dp: DPConfig | None = field(default_factory=DPConfig)
    sequential: SequentialConfig = field(default_factory=SequentialConfig)
    memory: bool = True
    mia: bool = False
    mia_max_test: int | None = 2000
    device: str = "auto"
    data_dir: str | None = None

    def __post_init__(self) -> None:
        check(len(self.groups) > 0 and len(self.seeds) > 0, "ready-bench needs at least one group and one seed")
        check(len({g.name for g in self.groups}) == len(self.groups), "group names must be distinct")
        check(len(set(self.seeds)) == len(self.seeds), "seeds must be distinct")
        check(self.downweight is None or 0 <= self.downweight <= 1, "downweight must be in [0, 1]")
        for g in self.groups:
            self.group_ready(g)  # each group's merged ready config must validate
        names = [m.name for m in [*self.methods, *self.extra_methods]]
        check(len(set(names)) == len(names), "a method may appear once across methods and extra_methods")
        check(self.sequential.count == 0 or self.sequential.group in {g.name for g in self.groups},
              f"sequential.group {self.sequential.group!r} is not a group")  # fmt: skip

    def group_ready(self, group: ReadyGroup) -> ReadyConfig:
        """The base ``ready`` config with the group's overrides applied."""
        return from_dict(ReadyConfig, apply_overrides(to_dict(self.ready), group.ready), f"groups.{group.name}.ready.")


def load_ready_bench_config(preset: str, overrides: list[str] | tuple[str, ...] = ()) -> tuple[ReadyBenchConfig, str]:
    """Resolves a :class:`ReadyBenchConfig` from a shipped preset (``configs/ready_bench``) or YAML file."""
    path = resolve_preset("ready_bench", preset)
    cfg = from_dict(ReadyBenchConfig, apply_overrides(load_yaml(path), list(overrides)))
    load_train_config(cfg.train, cfg.train_overrides)  # validate the training preset up front
    return cfg, str(path)


def resolve_request(spec: str, train: ArrayDataset, num_classes: int, revocable: RevocableSet,
                    exclude: np.ndarray | None = None) -> DeletionRequest:  # fmt: skip
    """A request from a bench spec; ``random:F@S in pool|stable`` becomes a samples request drawn there."""
    base, _, where = spec.partition(" in ")
    request = DeletionRequest.parse(base)
    if not where:
        return request
    check(request.kind == "random", f"'in {where}' only applies to random requests: {spec!r}")
    # With the whole-data pool, "in pool" is the whole training set; "in stable" has nothing to draw from.
    check(not (revocable.whole and where == "stable"), f"{spec!r}: a whole-data pool has no stable set")
    rows = revocable.pool if where == "pool" else revocable.stable
    if exclude is not None:
        rows = np.setdiff1d(rows, exclude)
    k = round(request.fraction * len(train))  # type: ignore[operator]
    check(0 < k <= len(rows), f"{spec!r}: needs {k} rows, the {where} set has {len(rows)}")
    pos = np.sort(np.random.default_rng(request.seed).choice(rows, size=k, replace=False))
    return DeletionRequest.for_samples(np.asarray(train.ids)[pos])


def _request_key(views: RequestViews) -> str:
    """Cache key of a retrained model: the forgotten rows themselves, so groups sharing a request share it."""
    digest = hashlib.sha256(np.asarray(views.forget_positions, dtype=np.int64).tobytes()).hexdigest()[:12]
    return f"{views.request.kind}-{digest}"


class ReadyBenchRunner(BenchRunner):
    """Runs a :class:`ReadyBenchConfig` into ``out_dir`` (resumable)."""

    cfg: ReadyBenchConfig  # type: ignore[assignment]

    # -- models -------------------------------------------------------------------------------------------
    def _trained(self, env: _Env, seed: int, name: str, train_fn) -> tuple[nn.Module, dict[str, Any]]:
        """A model of ``seed`` cached in ``models/seed<seed>/<name>``; ``train_fn(model) -> info``."""
        d = self.out / "models" / f"seed{seed}" / _slug(name)
        if (d / "card.json").exists():
            ck = load_checkpoint(d, str(self.device))
            return ck.model, ck.card["bench"]
        seed_everything(seed)
        model = env.factory()
        info = train_fn(model)
        save_checkpoint(model, d, self._card(env, seed, bench=info, variant=name))
        return model, info

    def _standard(self, env: _Env, seed: int) -> tuple[nn.Module, dict[str, Any]]:
        def train(model: nn.Module) -> dict[str, Any]:
            r = fit(model, env.split.train, env.split.test, env.train_cfg, show_progress=False)
            return {"seconds": r.seconds, "metrics": r.metrics}

        return self._trained(env, seed, "standard", train)

    def _ready(self, env: _Env, seed: int, group: ReadyGroup) -> tuple[nn.Module, dict[str, Any]]:
        rcfg = self.cfg.group_ready(group)

        def train(model: nn.Module) -> dict[str, Any]:
            train_dev = env.split.train.to(self.device)
            obj = ReadinessObjective(rcfg, train_dev, env.split.spec.num_classes, seed)
            r = fit(model, env.split.train, env.split.test, env.train_cfg, show_progress=False, regularizer=obj)
            return {"seconds": r.seconds, "metrics": r.metrics, "ready": to_dict(rcfg),
                    "readiness": obj.summary(env.split.train)}  # fmt: skip

        return self._trained(env, seed, f"ready-{group.name}", train)

    def _downweight(self, env: _Env, seed: int, group: ReadyGroup) -> tuple[nn.Module, dict[str, Any]]:
        rev = self._revocable(env, group)

        def train(model: nn.Module) -> dict[str, Any]:
            r = fit_downweighted(model, env.split.train, env.split.test, env.train_cfg, rev.pool,
                                 self.cfg.downweight)  # type: ignore[arg-type]  # fmt: skip
            return {"seconds": r.seconds, "metrics": r.metrics, "weight": self.cfg.downweight}

        return self._trained(env, seed, f"downweight-{group.name}", train)

    def _dp(self, env: _Env, seed: int) -> tuple[nn.Module, dict[str, Any]]:
        def train(model: nn.Module) -> dict[str, Any]:
            r, eps = fit_dp_sgd(model, env.split.train, env.split.test, env.train_cfg, self.cfg.dp)  # type: ignore[arg-type]
            return {"seconds": r.seconds, "metrics": r.metrics, "epsilon": eps, "dp": to_dict(self.cfg.dp)}

        return self._trained(env, seed, "dp", train)

    def _revocable(self, env: _Env, group: ReadyGroup) -> RevocableSet:
        return RevocableSet.resolve(env.split.train, self.cfg.group_ready(group).revocable, env.split.spec.num_classes)

    # -- the matrix ---------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Runs every missing cell, then writes ``results.json`` and the report; returns the results."""
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        write_json(self.out / "bench_config.json", {"preset": self.preset, "config": to_dict(cfg)})
        total = sum(len(g.requests) for g in cfg.groups) * len(cfg.seeds)
        with progress_bar(self.show_progress) as bar:
            task = bar.add_task("ready-bench", total=total)
            for seed in cfg.seeds:
                env = self._env(seed)
                standard, std_info = self._standard(env, seed)
                models: dict[str, tuple[nn.Module, dict[str, Any]]] = {"standard": (standard, std_info)}
                if cfg.dp is not None and any(g.baselines for g in cfg.groups):
                    models["dp"] = self._dp(env, seed)
                for group in cfg.groups:
                    ready = self._ready(env, seed, group)
                    variants = {"standard": models["standard"], "ready": ready}
                    if group.baselines:
                        if cfg.downweight is not None:
                            variants["downweight"] = self._downweight(env, seed, group)
                        if "dp" in models:
                            variants["dp"] = models["dp"]
                    rev = self._revocable(env, group)
                    for setting, spec in group.requests.items():
                        bar.update(task, description=f"seed {seed} {group.name}/{setting}")
                        path = self._cell_path(f"{group.name}/{setting}/seed{seed}")
                        if not path.exists():
                            cell = self._run_setting(env, seed, group, setting, spec, rev, variants)
                            write_json(path, cell)
                        bar.update(task, advance=1)
                if seed == cfg.seeds[0]:
                    if cfg.memory and not (self.out / "memory.json").exists():
                        write_json(self.out / "memory.json", self._memory(env, seed))
                    if cfg.sequential.count and not (self.out / "sequential.json").exists():
                        write_json(self.out / "sequential.json", self._sequential(env, seed, standard))
        return self.finish()

    def _views(self, env: _Env, request: DeletionRequest) -> RequestViews:
        return request.resolve(env.split.train, env.split.test, env.split.spec.num_classes)

    def _run_setting(self, env, seed, group, setting, spec, rev, variants) -> dict[str, Any]:
        cfg = self.cfg
        request = resolve_request(spec, env.split.train, env.split.spec.num_classes, rev)
        views = self._views(env, request)
        reference, ref_info = self._retrained(env, variants["standard"][0], views, _request_key(views), seed)
        ref_metrics = compute(EvalOutputs.for_request(reference, views, env.split.test))
        ref_relearn = relearn_attack(reference, views, cfg.relearn)
        runs = []
        targeted = setting in group.targeted
        for variant, (model, info) in variants.items():
            methods = list(cfg.methods)
            if targeted and variant in ("standard", "ready"):
                methods += cfg.extra_methods
            before = compute(EvalOutputs.for_request(model, views, env.split.test))
            for mcfg in methods:
                result = self._shared_run(variant, env, seed, model, views, mcfg, reference, ref_metrics)
                runs.append({"variant": variant, "method": mcfg.name, "train_seconds": info["seconds"],
                             "before": before, **result})  # fmt: skip
        return {
            "group": group.name, "setting": setting, "seed": seed, "spec": spec, "targeted": targeted,
            "request": request.describe(), "kind": request.kind if request.kind != "samples" else "random",
            "views": views.sizes(), "reference": {"metrics": ref_metrics, "relearn": ref_relearn, **ref_info},
            "ready": to_dict(cfg.group_ready(group)), "runs": runs,
        }  # fmt: skip

    def _shared_run(self, variant, env, seed, model, views, mcfg, reference, ref_metrics) -> dict[str, Any]:
        """Unlearning runs of models every group shares (standard, DP) are computed once per request."""
        if variant not in ("standard", "dp"):
            return self._unlearn(env, seed, model, views, mcfg, reference, ref_metrics)
        key = json.dumps(to_dict(mcfg), sort_keys=True) + json.dumps(to_dict(self.cfg.stop), sort_keys=True)
        digest = hashlib.sha256(key.encode()).hexdigest()[:8]
        path = self.out / "shared" / f"seed{seed}-{variant}-{_request_key(views)}-{mcfg.name}-{digest}.json"
        if path.exists():
            return json.loads(path.read_text(encoding="utf-8"))
        result = self._unlearn(env, seed, model, views, mcfg, reference, ref_metrics)
        write_json(path, result)
        return result

    def _unlearn(self, env, seed, original, views, mcfg, reference, ref_metrics) -> dict[str, Any]:
        model = copy.deepcopy(original)
        ucfg = UnlearnConfig(method=mcfg, stop=self.cfg.stop, seed=seed)
        res = unlearn_model(model, views, build_method(mcfg, env.task), ucfg, self._ctx(env, seed),
                            reference_value=ref_metrics["forget_acc"])  # fmt: skip
        metrics = self._evaluate(model, views, env.split.test, reference, seed)
        return {
            "steps": res.steps, "grad_evals": res.grad_evals, "seconds": res.seconds, "stop_reason": res.stop_reason,
            "reached": res.reached, "metrics": metrics, "curve": res.curve,
            "relearn": relearn_attack(model, views, self.cfg.relearn),
        }  # fmt: skip

    # -- reported extras ----------------------------------------------------------------------------------
    def _memory(self, env: _Env, seed: int) -> dict[str, Any]:
        """Autograd bytes of one standard step and one ready step per group (same batch size)."""
        torch.manual_seed(seed)
        model = env.factory().train()
        train = env.split.train.to(self.device)
        bs = env.train_cfg.batch_size
        x, y = train.x[:bs], train.y[:bs]
        out = {"batch_size": bs, "state_bytes": state_bytes(model),
               "standard": saved_tensor_bytes(lambda: env.task.loss(model, x, y))}  # fmt: skip
        for group in self.cfg.groups:
            obj = ReadinessObjective(self.cfg.group_ready(group), train, env.split.spec.num_classes, seed)

            def step(obj: ReadinessObjective = obj) -> torch.Tensor:
                extra, _ = obj(model, 0, obj.cfg.start_epoch)
                return env.task.loss(model, x, y) + extra

            out[f"ready-{group.name}"] = saved_tensor_bytes(step)
        return out

    def _sequential(self, env: _Env, seed: int, standard: nn.Module) -> dict[str, Any]:
        """``count`` requests one after another on the standard and the ready model of ``sequential.group``."""
        sc = self.cfg.sequential
        group = next(g for g in self.cfg.groups if g.name == sc.group)
        ready, _ = self._ready(env, seed, group)
        rev = self._revocable(env, group)
        base, _, where = sc.request.partition(" in ")
        req0 = DeletionRequest.parse(base)
        mcfg = next((m for m in [*self.cfg.methods, *self.cfg.extra_methods] if m.name == sc.method),
                    method_config({"name": sc.method}))  # fmt: skip
        train, n = env.split.train, len(env.split.train)
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
            reference, _ = self._retrained(env, standard, all_gone, _request_key(all_gone), seed)
            ref = compute(EvalOutputs.collect(reference, {"forget": views.forget, "test": env.split.test}))
            row: dict[str, Any] = {"request": i + 1, "size": len(pos), "reference_forget_acc": ref["forget_acc"],
                                   "reference_test_acc": ref["test_acc"]}  # fmt: skip
            for variant, model in current.items():
                ucfg = UnlearnConfig(method=mcfg, stop=self.cfg.stop, seed=seed + i)
                res = unlearn_model(model, views, build_method(mcfg, env.task), ucfg, self._ctx(env, seed),
                                    reference_value=ref["forget_acc"])  # fmt: skip
                m = compute(EvalOutputs.collect(model, {"test": env.split.test, "forget": all_gone.forget}))
                row[variant] = {"steps": res.steps, "reached": res.reached, "test_acc": m["test_acc"],
                                "forget_acc_all": m["forget_acc"]}  # fmt: skip
            steps.append(row)
        return {"seed": seed, "group": sc.group, "method": sc.method, "request": sc.request, "rows": steps}

    def finish(self) -> dict[str, Any]:
        """Collects cells into ``results.json`` (with the target summary) and renders the report."""
        from ready2unlearn.report.readiness import summarise_readiness, write_readiness_report

        cells = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((self.out / "cells").glob("*.json"))]
        extras = {name: json.loads((self.out / f"{name}.json").read_text(encoding="utf-8"))
                  for name in ("memory", "sequential") if (self.out / f"{name}.json").exists()}  # fmt: skip
        results = {
            "preset": self.preset, "created": now_iso(), "versions": versions(), "config": to_dict(self.cfg),
            "seeds": self.cfg.seeds, "data_fingerprints": self._fingerprints(), "cells": cells, **extras,
        }  # fmt: skip
        results["summary"] = summarise_readiness(results)
        write_json(self.out / "results.json", results)
        write_readiness_report(results, self.out)
        return results


def run_ready_bench(preset: str, out_dir: str | Path, overrides: list[str] | tuple[str, ...] = (),
                    show_progress: bool = True) -> dict[str, Any]:  # fmt: skip
    """Loads a readiness-bench preset and runs it into ``out_dir`` (resuming finished cells and models)."""
    cfg, path = load_ready_bench_config(preset, overrides)
    return run_resumable(ReadyBenchRunner, cfg, path, out_dir, show_progress)
