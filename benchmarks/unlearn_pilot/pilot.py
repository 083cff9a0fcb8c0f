"""Pilot sweep that picks the shipped default hyper-parameter of every unlearning method.

GA-type methods are very sensitive to the learning rate, so each method's default is the grid value with
the smallest average gap to the retrained model on a *pilot seed* (seed 0), over three settings:
digits/mlp with a class request (class 3) and a 10% random request, and Fashion-MNIST/cnn (10k-sample
training subset, to fit CPU minutes) with the class request. (A 1% random request on digits is 14 samples
the retrained model already classifies perfectly, so every method "finishes" at step 0: uninformative.)
The gap is the mean of |UA − UA_r|, |RA − RA_r|, |TA − TA_r| (TA = test-retain accuracy for class
requests, test accuracy for random ones); the membership-inference term of the full "Avg. Gap" is added
by the verification harness.

Every run uses the same stop rule: forget accuracy ≤ the retrained model's, checked every 10 steps,
within a 300-step budget. Finished runs are cached in ``runs.jsonl`` beside the results, so an interrupted
sweep resumes. Re-run with:

    python benchmarks/unlearn_pilot/pilot.py --out benchmarks/unlearn_pilot

It writes ``results.json`` (every run), ``README.md`` (best value per method and setting) and
``gap_vs_lr.png``.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from statistics import mean

import torch

from ready2unlearn.artifacts import versions, write_json
from ready2unlearn.config import from_dict, to_dict
from ready2unlearn.data import DeletionRequest, load_split
from ready2unlearn.engine.fit import fit
from ready2unlearn.engine.unlearn import unlearn_model, view_metrics
from ready2unlearn.engine.unlearn_config import UnlearnConfig
from ready2unlearn.models import build_model
from ready2unlearn.recipes.train import load_config
from ready2unlearn.runtime import seed_everything
from ready2unlearn.unlearn import METHODS, ClassificationTask, Context, MethodConfig, StopConfig, build_method

SETTINGS = [
    ("digits-mlp", [], "class:3"),
    ("digits-mlp", [], "random:0.1"),
    ("fashion_mnist-cnn", ["data.train_subset=10000", "epochs=8"], "class:3"),
]
ASCENT_LRS = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
DESCENT_LRS = [1e-3, 3e-3, 1e-2, 3e-2]
GRID: dict[str, tuple[str, list[float]]] = {
    "ga": ("lr", ASCENT_LRS),
    "grad_diff": ("lr", ASCENT_LRS),
    "ga_kl": ("lr", ASCENT_LRS),
    "npo": ("lr", ASCENT_LRS),
    "simnpo": ("lr", ASCENT_LRS),
    "neggrad_plus": ("lr", DESCENT_LRS),
    "finetune": ("lr", DESCENT_LRS),
    "random_label": ("lr", DESCENT_LRS),
    "l1_sparse": ("lr", DESCENT_LRS),
    "salun": ("lr", DESCENT_LRS),
    "scrub": ("lr", DESCENT_LRS),
    "bad_teacher": ("lr", DESCENT_LRS),
    "ssd": ("alpha", [1.0, 3.0, 10.0, 30.0]),
}
STOP = StopConfig(rule="forget_acc", target="reference", max_steps=300, eval_every=10)
SEED = 0


def gap(m: dict[str, float], ref: dict[str, float], kind: str) -> float:
    """Mean absolute difference to the retrained model over UA, RA and TA."""
    ta = "test_retain_accuracy" if kind == "class" else "test_accuracy"
    keys = ("forget_accuracy", "retain_accuracy", ta)
    return mean(abs(m[k] - ref[k]) for k in keys)


def run_setting(preset: str, overrides: list[str], request_text: str, methods: list[str], cache: Path) -> list[dict]:
    """Trains the pilot model and its retrained reference, then sweeps every method's grid (resuming from cache)."""
    done = {}
    if cache.exists():
        for line in cache.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            done[(r["setting"], r["method"], r["value"])] = r
    setting = f"{preset}/{request_text}"
    todo = [(n, v) for n in methods for v in GRID[n][1] if (setting, n, v) not in done]
    if not todo:
        return [done[(setting, n, v)] for n in methods for v in GRID[n][1]]
    cfg, _ = load_config(preset, [*overrides, f"seed={SEED}"])
    split = load_split(cfg.data)
    task = ClassificationTask(split.spec.num_classes)
    request = DeletionRequest.parse(request_text)
    views = request.resolve(split.train, split.test, split.spec.num_classes)

    def factory() -> torch.nn.Module:
        return build_model(cfg.model, split.spec)

    seed_everything(cfg.seed)
    original = factory()
    t0 = time.perf_counter()
    fit(original, split.train, split.test, cfg, show_progress=False)
    train_seconds = time.perf_counter() - t0

    retrained = copy.deepcopy(original)
    ctx = Context(task, torch.Generator().manual_seed(SEED), torch.device("cpu"), to_dict(cfg), factory)
    retrain_cfg = UnlearnConfig(method=from_dict(MethodConfig, {"name": "retrain"}), stop=StopConfig(), seed=SEED)
    ret = unlearn_model(retrained, views, build_method(retrain_cfg.method, task), retrain_cfg, ctx)
    ref = view_metrics(retrained, views, split.test)
    ref_ua = ref["forget_accuracy"]
    print(f"[{preset} {request_text}] original {view_metrics(original, views, split.test)['test_accuracy']:.4f}, "
          f"retrained UA {ref_ua:.4f} TA {ref['test_accuracy']:.4f} ({ret.seconds:.1f} s)", flush=True)  # fmt: skip

    rows = []
    for name in methods:
        key, values = GRID[name]
        for value in values:
            if (setting, name, value) in done:
                rows.append(done[(setting, name, value)])
                continue
            model = copy.deepcopy(original)
            ucfg = UnlearnConfig(method=from_dict(MethodConfig, {"name": name, key: value}), stop=STOP, seed=SEED)
            ctx = Context(task, torch.Generator().manual_seed(SEED), torch.device("cpu"), to_dict(cfg), factory)
            res = unlearn_model(model, views, build_method(ucfg.method, task), ucfg, ctx, reference_value=ref_ua)
            m = view_metrics(model, views, split.test)
            row = {
                "setting": setting, "method": name, "param": key, "value": value,
                "gap": gap(m, ref, request.kind), "steps": res.steps, "seconds": res.seconds,
                "time_ratio_to_retrain": res.seconds / ret.seconds, "stop_reason": res.stop_reason,
                "metrics": m, "reference": ref, "train_seconds": train_seconds, "retrain_seconds": ret.seconds,
            }  # fmt: skip
            rows.append(row)
            with cache.open("a", encoding="utf-8") as f:  # append-only: a crash loses at most this run
                f.write(json.dumps(row) + "\n")
            print(f"  {name:>13} {key}={value:<8g} gap {row['gap']:.4f}  UA {m['forget_accuracy']:.3f} "
                  f"steps {res.steps:>3}  {res.stop_reason}", flush=True)  # fmt: skip
    return rows


def summarise(rows: list[dict], out: Path) -> dict[str, float]:
    """Best grid value per method by the gap averaged over settings; writes README.md and a plot."""
    settings = sorted({r["setting"] for r in rows})
    best: dict[str, float] = {}
    lines = [
        "# Unlearning pilot sweep: shipped defaults",
        "",
        "Generated by `python benchmarks/unlearn_pilot/pilot.py` (pilot seed 0). Each method's default is the",
        "grid value with the smallest gap to the retrained model (mean |Δ| of UA, RA, TA), averaged over the",
        "settings below; stop rule: forget accuracy ≤ retrained model's, 300-step budget, checked every 10 steps.",
        "",
        "| method | param | chosen | mean gap | " + " | ".join(f"gap: {s}" for s in settings) + " |",
        "|---|---|---|---|" + "---|" * len(settings),
    ]
    for name in GRID:
        mine = [r for r in rows if r["method"] == name]
        if not mine:
            continue
        values = sorted({r["value"] for r in mine})
        scores = {v: mean(r["gap"] for r in mine if r["value"] == v) for v in values}
        choice = min(values, key=lambda v: scores[v])
        best[name] = choice
        per = [next(r for r in mine if r["value"] == choice and r["setting"] == s)["gap"] for s in settings]
        lines.append(f"| {name} | {mine[0]['param']} | {choice:g} | {scores[choice]:.4f} | "
                     + " | ".join(f"{g:.4f}" for g in per) + " |")  # fmt: skip
    lines += ["", "![gap vs value](gap_vs_lr.png)", ""]
    (out / "README.md").write_text("\n".join(lines), encoding="utf-8")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(9, 5))
        for i, name in enumerate(GRID):
            mine = [r for r in rows if r["method"] == name and r["param"] == "lr"]
            if mine:
                values = sorted({r["value"] for r in mine})
                style = "o-" if i < 10 else "s--"  # the colour cycle has 10 colours: keep lines 11+ distinct
                ax.plot(values, [mean(r["gap"] for r in mine if r["value"] == v) for v in values], style, label=name)
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("mean gap to retrained (UA, RA, TA)")
        ax.set_title("Unlearning pilot: gap to the retrained model vs learning rate")
        ax.legend(ncol=2, fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "gap_vs_lr.png", dpi=120)
    except ImportError:
        pass
    return best


def main() -> None:
    """Runs the sweep and writes the results."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="benchmarks/unlearn_pilot")
    p.add_argument("--methods", nargs="*", default=list(GRID))
    p.add_argument("--quick", action="store_true", help="digits settings only")
    p.add_argument("--fresh", action="store_true", help="ignore runs cached by an earlier, interrupted sweep")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    unknown = set(args.methods) - set(METHODS.names())
    if unknown:
        raise SystemExit(f"unknown methods: {sorted(unknown)}")
    cache = out / "runs.jsonl"
    if args.fresh:
        cache.unlink(missing_ok=True)
    rows = []
    for preset, overrides, request in SETTINGS[:2] if args.quick else SETTINGS:
        rows += run_setting(preset, overrides, request, args.methods, cache)
    best = summarise(rows, out)
    write_json(out / "results.json", {"seed": SEED, "stop": to_dict(STOP), "grid": GRID, "best": best,
                                      "versions": versions(), "runs": rows})  # fmt: skip
    print(json.dumps(best, indent=1))


if __name__ == "__main__":
    main()
