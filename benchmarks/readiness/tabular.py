"""Readiness on a tabular task with a user-defined BatchNorm + dropout module, through the Python API only.

Run: ``python benchmarks/readiness/tabular.py [--seeds 0 1 2 3 4] [--work runs/readiness/tabular]``.

What a user with their own model does: no registered dataset, no registered model, no preset. The data is
scikit-learn's ``make_classification`` (6 classes, 30 features, overlapping clusters, 2% label noise; 4,800
train / 1,200 test), the model a plain ``nn.Module`` (two Linear-BatchNorm-ReLU-Dropout blocks). Per seed:
standard, ready (shipped class / random defaults, revocable classes 1 and 3 / 30% of the rows),
negative-training and down-weighting baselines, and the retrained model per request; GA and grad_diff serve
a class request inside the revocable set (class 1), one outside (class 0), and a random request of 240 rows
(5%) inside the pool. Class requests stop on forget accuracy ≤ retrained + 0.01, random ones on forget loss
≥ retrained. Writes ``results.json`` (every run) and ``report.md`` (targets on paired 95% intervals) next to
this file; runs are cached per seed in ``--work``, under a hash of this script's settings, so an interrupted run
resumes and a changed setting never reuses a stale seed.

``--random-cap heldout`` runs the random requests with ``ready.cap=heldout`` instead of the shipped 0.3 nats: 400
class-balanced validation rows are carved out of the training rows for every model (4,400 left to train on), and
readiness and negative training measure the cap on them each epoch. Results go to ``random_cap/tabular/``.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.datasets import make_classification
from sklearn.preprocessing import StandardScaler
from torch import nn

from ready2unlearn.artifacts import write_json
from ready2unlearn.attacks.relearn import RelearnConfig, relearn_attack
from ready2unlearn.config import from_dict, to_dict
from ready2unlearn.data.base import ArrayDataset, stratified_subset
from ready2unlearn.data.request import DeletionRequest
from ready2unlearn.engine.fit import fit
from ready2unlearn.engine.method import Context, build_method, method_config
from ready2unlearn.engine.stop import StopConfig
from ready2unlearn.engine.unlearn import unlearn_model
from ready2unlearn.engine.unlearn_config import UnlearnConfig
from ready2unlearn.readiness import ReadinessObjective, ReadyConfig
from ready2unlearn.readiness.baselines import NegativeTrainingObjective, fit_downweighted
from ready2unlearn.readiness.sampler import RevocableSet
from ready2unlearn.recipes.cache import cache_key, load_json, store_json
from ready2unlearn.recipes.train import TrainConfig
from ready2unlearn.report.readiness_report import ci_text
from ready2unlearn.report.stats import censored_ratio, paired_difference, paired_ratio
from ready2unlearn.task import ClassificationTask, accuracy_and_loss

HERE = Path(__file__).resolve().parent / "tabular"
VALIDATION = 400  # rows carved out of training with --random-cap heldout
CLASSES, FEATURES = 6, 30
TASK = ClassificationTask(CLASSES)
METHOD_LR = {"class": 3e-4, "random": 3e-3}  # the deployment unlearner's lr per request kind
REQUESTS = {"class-in": ("class", "class:1"), "class-out": ("class", "class:0"), "random-in": ("random", None)}
READY = {
    "class": {"kind": "class", "revocable": "class:1,3"},
    "random": {"kind": "random", "revocable": "random:0.3@7"},
}


class TabularNet(nn.Module):
    """A user's own model: two Linear → BatchNorm → ReLU → Dropout blocks and a linear head."""

    def __init__(self, width: int = 128, dropout: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = FEATURES
        for _ in range(2):
            layers += [nn.Linear(d, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(dropout)]
            d = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def tabular_data() -> tuple[ArrayDataset, ArrayDataset]:
    """The fixed task (data seed 0): standardised features, ids = row numbers."""
    x, y = make_classification(n_samples=6000, n_features=FEATURES, n_informative=15, n_redundant=5,
                               n_classes=CLASSES, n_clusters_per_class=2, flip_y=0.02, random_state=0)  # fmt: skip
    x = StandardScaler().fit_transform(x).astype(np.float32)
    perm = np.random.default_rng(0).permutation(len(y))
    tr, te = perm[:4800], perm[4800:]

    def part(idx: np.ndarray) -> ArrayDataset:
        return ArrayDataset(torch.from_numpy(x[idx]), torch.from_numpy(y[idx]).long(), torch.from_numpy(idx).long())

    return part(tr), part(te)


def train_cfg(seed: int) -> TrainConfig:
    return from_dict(TrainConfig, {"epochs": 20, "batch_size": 64, "optim": {"lr": 1e-3}, "seed": seed})


def ready_knobs(random_cap: str) -> dict[str, dict[str, Any]]:
    """The readiness knobs per request kind: the shipped defaults, the random cap as asked."""
    random = {**READY["random"], **({"cap": "heldout"} if random_cap == "heldout" else {})}
    return {"class": READY["class"], "random": random}


def ready_config(knobs: dict[str, dict[str, Any]], kind: str, variant: str = "ready") -> ReadyConfig:
    """The readiness config of a ``ready`` model (the deployment GA at the kind's lr) or a ``negtrain`` one."""
    extra = {"method": {"name": "ga", "lr": METHOD_LR[kind]}} if variant == "ready" else {"alpha": 0.01}
    return from_dict(ReadyConfig, {**knobs[kind], **extra})


def carve_validation(train: ArrayDataset, rows: int) -> tuple[ArrayDataset, ArrayDataset]:
    """``(training rows, validation rows)``: a class-balanced split seeded like the data (seed 0)."""
    held = stratified_subset(train.labels, rows, 0)
    return train.subset(np.setdiff1d(np.arange(len(train)), held)), train.subset(held)


def trained(kind: str, seed: int, train: ArrayDataset, test: ArrayDataset, retain: ArrayDataset | None = None,
            ready: dict[str, dict[str, Any]] = READY, heldout: ArrayDataset | None = None):  # fmt: skip
    """``(model, seconds, info)`` of one training variant."""
    torch.manual_seed(seed)
    model = TabularNet()
    cfg = train_cfg(seed)
    info: dict[str, Any] = {}
    t0 = time.perf_counter()
    if kind == "standard":
        fit(model, train, None, cfg, show_progress=False)
    elif kind == "retrained":
        fit(model, retain, None, cfg, show_progress=False)  # type: ignore[arg-type]
    elif kind.startswith("ready-"):
        rcfg = ready_config(ready, kind[6:])
        obj = ReadinessObjective(rcfg.for_epochs(cfg.epochs), train, CLASSES, seed, heldout=heldout)
        fit(model, train, None, cfg, show_progress=False, regularizer=obj)
        info = obj.summary(train)
    elif kind.startswith("negtrain-"):
        rcfg = ready_config(ready, kind[9:], "negtrain")
        obj = NegativeTrainingObjective(rcfg, train, CLASSES, seed, heldout=heldout)
        fit(model, train, None, cfg, show_progress=False, regularizer=obj)
        info = obj.summary(train)
    elif kind.startswith("downweight-"):
        pool = RevocableSet.resolve(train, READY[kind[11:]]["revocable"], CLASSES).pool
        fit_downweighted(model, train, None, cfg, pool, 0.1)
    seconds = time.perf_counter() - t0
    key = "negtrain" if kind.startswith("negtrain-") else "readiness"
    return model, seconds, {"test_acc": accuracy_and_loss(model, test)[0], **({key: info} if info else {})}


def serve(model: nn.Module, views, method: str, kind: str, target: float, seed: int) -> dict[str, Any]:
    """One unlearning run on a copy; steps, whether it reached the target, accuracy after, relearning."""
    m = copy.deepcopy(model)
    mcfg = method_config({"name": method, "lr": METHOD_LR[kind]})
    rule = "forget_acc" if kind == "class" else "forget_loss"
    stop = StopConfig(rule=rule, target=target, max_steps=600, eval_every=2, retain_eval_size=500)
    res = unlearn_model(m, views, build_method(mcfg, TASK), UnlearnConfig(method=mcfg, stop=stop, seed=seed),
                        Context(TASK, torch.Generator().manual_seed(seed), torch.device("cpu")))  # fmt: skip
    # Test-retain accuracy: for a random request that is the whole test set (nothing of it is forgotten).
    return {"steps": res.steps, "reached": bool(res.reached), "after_acc": accuracy_and_loss(m, views.test_retain)[0],
            "relearn": relearn(m, views, seed)}  # fmt: skip


def relearn(model: nn.Module, views, seed: int) -> float:
    """Mean forget accuracy over the 10-sample relearning attack (held-out forget samples)."""
    out = relearn_attack(model, views, RelearnConfig(sets=["forget-10"], steps=10, eval_every=2, seed=seed), TASK)
    return float(np.mean([p["forget_acc"] for p in out["forget-10"]["curve"]]))


def run_seed(seed: int, train: ArrayDataset, test: ArrayDataset, random_cap: str = "shipped") -> dict[str, Any]:
    ready = ready_knobs(random_cap)
    heldout = None
    if random_cap == "heldout":
        train, heldout = carve_validation(train, VALIDATION)
    pool = RevocableSet.resolve(train, READY["random"]["revocable"], CLASSES).pool
    rows = np.sort(np.random.default_rng(100 + seed).choice(pool, size=240, replace=False))
    variants = ("standard", "ready-class", "ready-random", "negtrain-class", "negtrain-random", "downweight-class",
                "downweight-random")  # fmt: skip
    models = {k: trained(k, seed, train, test, ready=ready, heldout=heldout) for k in variants}
    cells = {}
    for name, (kind, spec) in REQUESTS.items():
        request = DeletionRequest.parse(spec) if spec else DeletionRequest.for_samples(train.ids[rows].tolist())
        views = request.resolve(train, test, CLASSES)
        retrained, _, _ = trained("retrained", seed, train, test, views.retain)
        fa, fl = accuracy_and_loss(retrained, views.forget)
        target = fa + 0.01 if kind == "class" else fl
        cell: dict[str, Any] = {
            "kind": kind, "target": target, "floor_relearn": relearn(retrained, views, seed),
            "retrained_after_acc": accuracy_and_loss(retrained, views.test_retain)[0], "runs": {},
        }  # fmt: skip
        for variant in ("standard", f"ready-{kind}", f"negtrain-{kind}", f"downweight-{kind}"):
            model, seconds, info = models[variant]
            bf_acc, bf_loss = accuracy_and_loss(model, views.forget)
            for method in ("ga", "grad_diff"):
                cell["runs"][f"{variant.split('-')[0]}/{method}"] = {
                    **serve(model, views, method, kind, target, seed), "train_seconds": seconds,
                    "before_test_acc": info["test_acc"], "before_forget_acc": bf_acc, "before_forget_loss": bf_loss,
                }  # fmt: skip
        cells[name] = cell
    readiness = {k: models[k][2].get("readiness") for k in ("ready-class", "ready-random")}
    negtrain = {k: models[k][2].get("negtrain") for k in ("negtrain-class", "negtrain-random")}
    return {"seed": seed, "cells": cells, "readiness": readiness, "negtrain": negtrain}


def _diff(a: list[dict[str, Any]], b: list[dict[str, Any]], key: str) -> list[float]:
    return [x[key] - y[key] for x, y in zip(a, b, strict=True)]


def _ratios(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[Any]:
    return [censored_ratio(x["steps"], x["reached"], y["steps"], y["reached"]) for x, y in zip(a, b, strict=True)]


def summarise(per_seed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets per request and method, on paired 95% intervals over seeds."""
    rows = []
    for name, (kind, _) in REQUESTS.items():
        for method in ("ga", "grad_diff"):
            cells = [s["cells"][name] for s in per_seed]
            std = [c["runs"][f"standard/{method}"] for c in cells]
            rdy = [c["runs"][f"ready/{method}"] for c in cells]
            neg = [c["runs"][f"negtrain/{method}"] for c in cells]
            closed = []
            for s, r, c in zip(std, rdy, cells, strict=True):
                gap = s["relearn"] - c["floor_relearn"]
                closed.append((s["relearn"] - r["relearn"]) / gap if abs(gap) > 1e-9 else float("nan"))
            time_ratio = [r["train_seconds"] / s["train_seconds"] for r, s in zip(rdy, std, strict=True)]
            rows.append({
                "request": name, "method": method,
                "steps_standard": [s["steps"] for s in std], "steps_ready": [r["steps"] for r in rdy],
                "steps_ratio": paired_ratio(_ratios(rdy, std), "<=", 1 / 3 if kind == "class" else 1 / 2),
                "before": paired_difference(_diff(rdy, std, "before_test_acc"), ">=", -0.005),
                "after": paired_difference(_diff(rdy, std, "after_acc"), ">=", 0.0),
                "relearn_gap_closed": paired_difference(closed, ">=", 0.5),
                "ready_vs_negtrain_steps": paired_ratio(_ratios(rdy, neg), "<=", 1.0),
                "negtrain_before": paired_difference(_diff(neg, std, "before_test_acc")),
                "train_time": paired_difference(time_ratio, "<=", 1.5),
            })  # fmt: skip
    return rows


def _fmt(d: dict[str, Any], pct: bool = False) -> str:
    return f"{ci_text(d, pct, 2, signed=True, lone='no CI')} ({d.get('verdict', '-')})"


def report(rows: list[dict[str, Any]], seeds: list[int]) -> str:
    lines = ["# Readiness on a tabular task with a user-defined BatchNorm + dropout net (Python API only)", "",
             f"Generated by `python benchmarks/readiness/tabular.py`; seeds {seeds}; mean [95% CI] (verdict). "
             "Accuracy differences in points; step ratios are geometric means, censored runs as bounds.", "",
             "| request | method | steps std → ready | ready/standard steps | before (pts) | after (pts) | "
             "relearn gap closed | ready/negtrain steps | negtrain before (pts) | train time |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['request']} | {r['method']} | {r['steps_standard']} → {r['steps_ready']} | "
                     f"{_fmt(r['steps_ratio'])} | {_fmt(r['before'], True)} | {_fmt(r['after'], True)} | "
                     f"{_fmt(r['relearn_gap_closed'])} | {_fmt(r['ready_vs_negtrain_steps'])} | "
                     f"{_fmt(r['negtrain_before'], True)} | {_fmt(r['train_time'])} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--work", type=Path, default=Path("runs/readiness/tabular"))
    p.add_argument(
        "--random-cap",
        choices=("shipped", "heldout"),
        default="shipped",
        help="random requests' ready.cap: the shipped 0.3 nats, or heldout (measured on 400 validation rows)",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    train, test = tabular_data()
    out = HERE if args.random_cap == "shipped" else HERE.parent / "random_cap" / "tabular"
    knobs = ready_knobs(args.random_cap)
    # The resolved configs, so a changed shipped default (readiness/config.py KIND_DEFAULTS) is a new cache key.
    resolved = {f"{v}-{k}": to_dict(ready_config(knobs, k, v).resolved()) for k in knobs for v in ("ready", "negtrain")}
    settings = {
        "ready": knobs,
        "resolved": resolved,
        "method_lr": METHOD_LR,
        "requests": REQUESTS,
        "validation": VALIDATION if args.random_cap == "heldout" else 0,
        "train": to_dict(train_cfg(0)),
    }
    per_seed = []
    for seed in args.seeds:
        conf = {**settings, "seed": seed}
        path = args.work / f"seed{seed}-{cache_key(conf)}.json"
        cached = load_json(path, conf)  # resumable: each finished seed is kept, under its settings' hash
        if cached is None:
            cached = store_json(path, conf, run_seed(seed, train, test, args.random_cap))
        per_seed.append({k: v for k, v in cached.items() if k != "cache"})
        print(f"seed {seed} done", flush=True)
    rows = summarise(per_seed)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", {"seeds": args.seeds, "settings": settings, "per_seed": per_seed,
                                      "summary": rows})  # fmt: skip
    (out / "report.md").write_text(report(rows, args.seeds), encoding="utf-8")
    print(report(rows, args.seeds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
