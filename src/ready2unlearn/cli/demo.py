"""``r2u demo``: the whole story on the embedded digits data, with no files needed.

Train a standard model, and a *ready* one (Ready2Unlearn readiness training on the classes users may ask
to delete) → a user asks to delete every sample of class 3 → retrain the gold model → unlearn both models
with gradient ascent until the forget accuracy matches the retrained model's → verify (metrics, gaps,
membership inference, relearning against the retrained floor) → write a report. Each step is the recipe
behind one CLI verb, so the demo doubles as a tour of ``r2u train``, ``r2u unlearn`` and ``r2u eval``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rich.table import Table

from ready2unlearn.artifacts import check_writable, now_iso, versions, write_json
from ready2unlearn.attacks.relearn import RelearnConfig
from ready2unlearn.cli.common import add_quiet, console, esc
from ready2unlearn.data.request import DeletionRequest
from ready2unlearn.engine.unlearn_config import load_unlearn_config
from ready2unlearn.errors import ConfigError
from ready2unlearn.recipes import train as train_recipe
from ready2unlearn.recipes import unlearn as unlearn_recipe
from ready2unlearn.recipes.evaluate import evaluate_checkpoint
from ready2unlearn.report import write_report

REQUEST = "class:3"
REVOCABLE = "3,5,7"
SHOWN = {"forget_acc": "UA: forget-set accuracy", "retain_acc": "RA: retain-set accuracy",
         "test_retain_acc": "TA: test accuracy (other classes)", "mia_auc": "MIA AUC (0.5 = unseen)",
         "mia_efficacy": "MIA-efficacy"}  # fmt: skip


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers the ``demo`` verb."""
    p = sub.add_parser(
        "demo",
        help="the whole story on embedded digits data: train standard and ready, delete a class, unlearn, verify",
        description="Train a standard and a ready MLP on scikit-learn's embedded 8x8 digits, serve a deletion "
        "request for class 3 on both with gradient ascent, verify them against a model retrained without class 3 "
        "(metrics, membership inference, relearning attack) and write report.md / report.html. Under a minute "
        "on 2 CPU cores.",
    )
    p.add_argument("--out", "-o", default="r2u-demo", metavar="DIR", help="output folder (default: r2u-demo)")
    add_quiet(p)
    p.set_defaults(func=run)


def _step(n: int, text: str) -> None:
    console.print(f"\n[bold cyan]{n}.[/bold cyan] {text}")


def run(args: argparse.Namespace) -> int:
    """Runs ``r2u demo``."""
    out = Path(args.out)
    check_writable(out)
    if (out / "standard" / "card.json").exists():
        raise ConfigError(f"{out} already holds a demo run; pass another --out or delete it")
    t_start = time.perf_counter()
    quiet = args.quiet
    request = DeletionRequest.parse(REQUEST)

    _step(1, "Train a standard model on digits (1,437 train / 360 test images, embedded in scikit-learn)")
    cfg, preset = train_recipe.load_config("digits-mlp")
    card = train_recipe.run(cfg, out / "standard", show_progress=not quiet, producer="r2u demo",
                            extra_card={"preset": preset})  # fmt: skip
    console.print(f"   test accuracy {card['metrics']['test_accuracy']:.4f}  →  {esc(out / 'standard')}")

    _step(2, f"Train a ready model: readiness training for requests on the revocable classes {REVOCABLE}")
    ready_cfg, _ = train_recipe.load_config("digits-mlp", [f"ready.revocable=class:{REVOCABLE}"], ready=True)
    ready_card = train_recipe.run(ready_cfg, out / "ready", show_progress=not quiet, producer="r2u demo",
                                  extra_card={"preset": preset})  # fmt: skip
    ratio = ready_card["timing"]["train_seconds"] / max(card["timing"]["train_seconds"], 1e-9)
    console.print(f"   test accuracy {ready_card['metrics']['test_accuracy']:.4f}, {ratio:.1f}× the training time"
                  f"  →  {esc(out / 'ready')}")  # fmt: skip

    _step(3, f"A deletion request arrives: forget every training sample of digit 3 ({REQUEST})")
    _step(4, "Retrain from scratch without them: the gold standard every approximate method is judged against")
    retrain_cfg, _ = load_unlearn_config(None, [], method="retrain")
    (ret_card,) = unlearn_recipe.run(out / "standard", [request], retrain_cfg, out / "retrained",
                                     show_progress=not quiet)  # fmt: skip
    ret_seconds = ret_card["unlearn"]["result"]["seconds"]
    console.print(f"   retrained in {ret_seconds:.2f} s  →  {esc(out / 'retrained')}")

    _step(5, "Unlearn both models with gradient ascent until the forget accuracy is the retrained model's")
    ga_cfg, _ = load_unlearn_config(None, ["stop.rule=forget_acc", "stop.target=reference", "stop.tolerance=0.01",
                                           "stop.max_steps=500"], method="ga")  # fmt: skip
    cards = {}
    for name, src, dst in (("standard", "standard", "unlearned"), ("ready", "ready", "ready-unlearned")):
        (cards[name],) = unlearn_recipe.run(out / src, [request], ga_cfg, out / dst, reference=out / "retrained",
                                            show_progress=not quiet)  # fmt: skip
        res = cards[name]["unlearn"]["result"]
        console.print(f"   {name:8s} {esc(res['stop_reason'])} after {res['steps']} steps, {res['seconds']:.2f} s "
                      f"({res['seconds'] / ret_seconds:.2f}× the retraining time)  →  {esc(out / dst)}")  # fmt: skip
    ga_card = cards["standard"]

    _step(6, "Verify: compare with the retrained model, attack membership, try to relearn the class")
    relearn = RelearnConfig(sets=["forget-10", "retain-only"], steps=30)
    result = evaluate_checkpoint(out / "unlearned", reference=out / "retrained", relearn=relearn)
    write_json(out / "unlearned" / "metrics.json", result)
    ready_result = evaluate_checkpoint(out / "ready-unlearned", reference=out / "retrained", relearn=relearn)
    write_json(out / "ready-unlearned" / "metrics.json", ready_result)
    table = Table(title=f"request {REQUEST}: GA-unlearned vs retrained")
    for col in ("metric", "original", "unlearned (ga)", "retrained", "|gap|"):
        table.add_column(col, justify="right" if col != "metric" else "left")
    before = ga_card["metrics_before"]
    original_key = {"forget_acc": "forget_accuracy", "retain_acc": "retain_accuracy",
                    "test_retain_acc": "test_retain_accuracy"}  # fmt: skip
    m, r = result["metrics"], result["reference"]["metrics"]
    for key, label in SHOWN.items():
        orig = before.get(original_key.get(key, ""), None)
        table.add_row(label, f"{orig:.4f}" if orig is not None else "-", f"{m[key]:.4f}", f"{r[key]:.4f}",
                      f"{abs(m[key] - r[key]):.4f}")  # fmt: skip
    console.print(table)
    console.print(f"   Avg. Gap to the retrained model: {result['gaps']['avg_gap']:.4f}")
    console.print(_story_table(card, ready_card, cards, result, ready_result))

    _step(7, "Report")
    paths = _write_report(out, result, ga_card, ret_card, ready_result, cards["ready"])
    console.print(f"   {esc(paths['markdown'])}\n   {esc(paths['html'])}")
    console.print(f"\ndone in {time.perf_counter() - t_start:.0f} s")
    return 0


def _story_table(std_card, ready_card, cards, result, ready_result) -> Table:
    """Standard vs ready, the same request served the same way: the Ready2Unlearn story in one table."""
    table = Table(title=f"request {REQUEST}: the same GA run on a standard and a ready model")
    for col in ("", "standard", "ready", "retrained"):
        table.add_column(col, justify="right" if col else "left")
    ref = result["reference"]["metrics"]
    rows = [
        ("test accuracy before the request", std_card["metrics"]["test_accuracy"],
         ready_card["metrics"]["test_accuracy"], None),
        ("GA steps to forget class 3", cards["standard"]["unlearn"]["result"]["steps"],
         cards["ready"]["unlearn"]["result"]["steps"], None),
        ("TA after: other classes", result["metrics"]["test_retain_acc"], ready_result["metrics"]["test_retain_acc"],
         ref["test_retain_acc"]),
        ("UA after: forget-set accuracy", result["metrics"]["forget_acc"], ready_result["metrics"]["forget_acc"],
         ref["forget_acc"]),
    ]  # fmt: skip
    for name, rl in result["relearn"].items():
        rows.append((f"UA after relearning ({name}, 30 steps)", rl["final_forget_acc"],
                     ready_result["relearn"][name]["final_forget_acc"],
                     result["relearn_reference"][name]["final_forget_acc"]))  # fmt: skip
    for label, *values in rows:
        table.add_row(label, *(("-" if v is None else str(v) if isinstance(v, int) else f"{v:.4f}") for v in values))
    return table


def _write_report(out: Path, result: dict[str, Any], ga_card: dict[str, Any], ret_card: dict[str, Any],
                  ready_result: dict[str, Any], ready_card: dict[str, Any]):  # fmt: skip
    """Renders the demo's models (standard and ready, each GA-unlearned, and the retrained one) as a report."""
    ga, ret = ga_card["unlearn"]["result"], ret_card["unlearn"]["result"]
    common = {"setting": REQUEST, "seed": 0, "variant": "standard", "request": result["request"],
              "views": result["views"], "reference_metrics": result["reference"]["metrics"]}  # fmt: skip
    cells = [
        {**common, "key": f"{REQUEST}/seed0/standard/retrain", "method": "retrain",
         "metrics": result["reference"]["metrics"], "gaps": {"avg_gap": 0.0},
         "efficiency": {"steps": ret["steps"], "seconds": ret["seconds"], "time_ratio_to_retrain": 1.0,
                        "stop_reason": "applied"},
         "curve": [], "relearn": result["relearn_reference"], "relearn_reference": result["relearn_reference"]},
        {**common, "key": f"{REQUEST}/seed0/standard/ga", "method": "ga", "metrics": result["metrics"],
         "gaps": result["gaps"],
         "efficiency": {"steps": ga["steps"], "seconds": ga["seconds"], "stop_reason": ga["stop_reason"],
                        "time_ratio_to_retrain": ga["seconds"] / ret["seconds"]},
         "curve": ga_card["unlearn"]["curve"], "relearn": result["relearn"],
         "relearn_reference": result["relearn_reference"]},
    ]  # fmt: skip
    rr = ready_card["unlearn"]["result"]
    cells.append({**common, "variant": "ready", "key": f"{REQUEST}/seed0/ready/ga", "method": "ga",
                  "metrics": ready_result["metrics"], "gaps": ready_result["gaps"],
                  "efficiency": {"steps": rr["steps"], "seconds": rr["seconds"], "stop_reason": rr["stop_reason"],
                                 "time_ratio_to_retrain": rr["seconds"] / ret["seconds"]},
                  "curve": ready_card["unlearn"]["curve"], "relearn": ready_result["relearn"],
                  "relearn_reference": result["relearn_reference"]})  # fmt: skip
    config = {"train": "digits-mlp", "request": REQUEST, "method": ga_card["unlearn"]["config"],
              "ready": {"revocable": f"class:{REVOCABLE}"}}  # fmt: skip
    results = {"preset": "r2u demo", "created": now_iso(), "versions": versions(), "seeds": [0], "cells": cells,
               "config": config}  # fmt: skip
    write_json(out / "results.json", results)
    return write_report(results, out)
