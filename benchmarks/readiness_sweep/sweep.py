"""Readiness sweep: which objective shape and knobs to ship as defaults (issue 5, DESIGN §5).

Run: ``python benchmarks/readiness_sweep/sweep.py [--only digits|fashion] [--work runs/readiness_sweep]``.

For each dataset, every *shape* below trains a ready model per request kind (class-wise: revocable classes
3,5,7, request class 3; random: a revocable pool and a request of at least 200 samples and 1% of the
training set drawn from it, see ``DATASETS``) for each seed, next to the standard and retrained models of
the same seed, through the readiness benchmark runner (``ready2unlearn.recipes.ready_bench``). GA and
grad_diff then unlearn each model with the bench's stop rule per request kind (class: forget accuracy ≤ the
retrained model's + 0.01; random: forget loss ≥ the retrained model's). Models and cells are cached in
``--work`` under hashes of their resolved configs (resumable; stages and datasets may share a folder), and
each group is named after its shape, never its position, so adding or reordering shapes reuses exactly the
models whose configs are unchanged. ``results.json`` (every shape, every metric) and ``README.md`` +
``sweep.png`` are written here.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

import torch

from ready2unlearn.artifacts import versions, write_json
from ready2unlearn.config import from_dict
from ready2unlearn.recipes.ready_bench import ReadyBenchConfig, ReadyBenchRunner

HERE = Path(__file__).resolve().parent

# name → (ready overrides for class requests, for random requests), each a change of ONE knob from the shipped
# defaults (readiness/config.py KIND_DEFAULTS: dual λ, alpha=auto, first order, every second step; class requests
# score the gain at alpha_factor 2, random ones the level at factor 1). ``None``: the shape does not concern
# that kind (it is the default there already, or meaningless).
SHAPES: dict[str, tuple[list[str] | None, list[str] | None]] = {
    "shipped defaults": ([], []),
    "level form": (["forget_term=level"], None),
    "gain form": (None, ["forget_term=gain"]),
    "alpha factor 1": (["alpha_factor=1"], None),
    "alpha factor 2": (None, ["alpha_factor=2"]),
    "alpha factor 3": (["alpha_factor=3"], None),
    "alpha factor 0.5": (["alpha_factor=0.5"], ["alpha_factor=0.5"]),
    "second order": (["first_order=false"], ["first_order=false"]),
    "every 4th step": (["meta_every=4"], ["meta_every=4"]),
    "batches of 32": (["forget_size=32"], ["forget_size=32"]),
    "fixed λ=0.03 (no dual)": (["dual=false", "lam=0.03"], ["dual=false", "lam=0.03"]),
    "resistance λ3=1, 3 relearn steps": (["resistance=1", "relearn_steps=3"], ["resistance=1", "relearn_steps=3"]),
    # The first-order resistance term only scores the forget loss at a shifted point; the true meta-gradient
    # through the simulated relearning steps is what could shape how fast the forgotten class comes back.
    "resistance λ3=1, 3 relearn steps, second order": (["resistance=1", "relearn_steps=3", "first_order=false"], None),
    "resistance λ3=3, 3 relearn steps, second order": (["resistance=3", "relearn_steps=3", "first_order=false"], None),
    "whole-data pool": (["revocable=null"], ["revocable=null"]),
    # What readiness costs to train: the α measurement judged on a subset (calibration=fast), alone and with
    # the term every 4th step (the two knobs that bound the cost the probe reports).
    "fast calibration": (["calibration=fast"], ["calibration=fast"]),
    "fast calibration, every 4th step": (["calibration=fast", "meta_every=4"], ["calibration=fast", "meta_every=4"]),
}
DIGITS_SHAPES = list(SHAPES)
FASHION_SHAPES = ["shipped defaults", "level form", "alpha factor 1", "alpha factor 3", "every 4th step"]

FASHION = {"train": "fashion_mnist-cnn", "train_overrides": ["data.train_subset=10000"], "epochs": 8,
           "work": "fashion"}  # fmt: skip
# Random requests must resolve a stop target (≥ 1% of the training set and ≥ 200 samples, DESIGN §6): digits
# has 1,437 training samples, so its request is 14% (201 samples) from a 30% pool; the 10,000-sample Fashion
# subset takes 2% (200) from a 10% pool.
DIGITS_RANDOM = {"kind": "random", "revocable": "random:0.3@7", "request": "random:0.14@1 in pool"}
FASHION_RANDOM = {"kind": "random", "revocable": "random:0.1@7", "request": "random:0.02@1 in pool"}
DATASETS = {
    "digits": {"train": "digits-mlp", "train_overrides": [], "epochs": 20, "shapes": DIGITS_SHAPES,
               "seeds": [0, 1, 2, 3, 4], "random": DIGITS_RANDOM},
    "fashion": {**FASHION, "shapes": FASHION_SHAPES, "seeds": [0, 1, 2, 3, 4], "random": FASHION_RANDOM},
}  # fmt: skip
CLASS = {"kind": "class", "revocable": "class:3,5,7", "request": "class:3"}


def group_name(shape: str, kind: str) -> str:
    """A group's name from its shape's name (stable when shapes are added or reordered) and the request kind."""
    text = shape.lower().replace("λ", "lam").replace("α", "alpha").replace("×", "x")
    return f"{re.sub(r'[^a-z0-9.]+', '-', text).strip('-')}-{kind}"


def bench_config(dataset: str, shapes: list[str] | None = None) -> dict:
    spec = DATASETS[dataset]
    seeds = spec["seeds"]
    groups = []
    for name in shapes or spec["shapes"]:
        for kind, extra in (("class", SHAPES[name][0]), ("random", SHAPES[name][1])):
            if extra is None:  # the shape only concerns the other kind
                continue
            base = CLASS if kind == "class" else spec["random"]
            ready = [f"kind={kind}", f"revocable={base['revocable']}", *extra]
            groups.append({"name": group_name(name, kind), "ready": ready,
                           "requests": {"in": base["request"]}, "targeted": ["in"]})  # fmt: skip
    # The stop rule per request kind, MIA and the seeded relearning attack are the ready-bench defaults.
    # Same protocol as the readiness matrix (configs/ready_bench/digits-ready.yaml): 500-step budget, random
    # requests served at lr 3e-3.
    return {"train": spec["train"], "train_overrides": spec["train_overrides"], "seeds": seeds, "groups": groups,
            "downweight": None, "dp": None, "negtrain": False, "memory": False,
            "stop": {"max_steps": 500, "eval_every": 2, "retain_eval_size": 500},
            "method_per_kind": {"random": ["lr=3e-3"]}}  # fmt: skip


def score(rows: list[dict], group: str, method: str = "ga") -> dict:
    """One group's (shape × kind) paired quantities for one method, each with its 95% interval."""
    (row,) = [r for r in rows if r["group"] == group and r["variant"] == "ready" and r["method"] == method]
    fields = (
        "steps_ratio",
        "before_vs_standard",
        "after_vs_standard",
        "relearn_gap_closed",
        "train_time_ratio",
        "train_cost_ratio",
    )
    return {f: row[f] for f in fields if f in row}


def _pt(d: dict | None) -> str:
    """A paired difference in points: mean [95% CI]."""
    if not d or not d.get("n"):
        return "–"
    return f"{100 * d['mean']:+.2f} [{100 * d['ci_low']:+.2f}, {100 * d['ci_high']:+.2f}]"


def run(dataset: str, work: Path, only: list[str] | None = None) -> dict:
    cfg = from_dict(ReadyBenchConfig, bench_config(dataset, only))
    # Straight through the runner (no whole-folder config check): stages share one folder, which is safe
    # because every cached model and cell is keyed and checked by the hash of its own resolved config.
    results = ReadyBenchRunner(cfg, work / DATASETS[dataset].get("work", dataset), f"readiness-sweep-{dataset}").run()
    shapes = only or DATASETS[dataset]["shapes"]
    table = []
    for name in shapes:
        for k, kind in enumerate(("class", "random")):
            if SHAPES[name][k] is not None:
                rows = results["summary"]["rows"]
                table.append({"shape": name, "kind": kind, **{m: score(rows, group_name(name, kind), m)
                                                               for m in ("ga", "grad_diff")}})  # fmt: skip
    std_steps = {kind: [r["steps"]["mean"] for r in results["summary"]["rows"] if r["variant"] == "standard"
                        and r["group"].endswith(f"-{kind}")]
                 for kind in ("class", "random")}  # fmt: skip
    return {"dataset": dataset, "config": bench_config(dataset), "shapes": table,
            "standard_steps": {k: sum(v) / len(v) for k, v in std_steps.items() if v},
            "rows": results["summary"]["rows"]}  # fmt: skip


def merge(old: dict, new: dict, shapes: list[str]) -> dict:
    """``old`` with the rows of ``shapes`` replaced by ``new``'s, in the order of :data:`SHAPES`."""
    groups = {group_name(s, k) for s in shapes for k in ("class", "random")}
    table = [r for r in old["shapes"] if r["shape"] not in shapes] + new["shapes"]
    order = list(SHAPES)
    table.sort(key=lambda r: (order.index(r["shape"]), r["kind"]))
    rows = [r for r in old["rows"] if r["group"] not in groups] + [r for r in new["rows"] if r["group"] in groups]
    # The config records every shape that is in the table (what a full re-run would compute).
    config = bench_config(new["dataset"], [s for s in order if any(r["shape"] == s for r in table)])
    return {**old, "config": config, "shapes": table, "rows": rows}


def write_summary(all_results: dict) -> None:
    lines = ["# Readiness sweep", "", "Generated by `python benchmarks/readiness_sweep/sweep.py`. Each row changes one "
             "knob of the shipped defaults (`readiness/config.py` KIND_DEFAULTS) and is compared, paired by seed, "
             "with the standard model of the same seed, under the readiness matrix's protocol (class requests stop "
             "at forget accuracy ≤ retrained + 0.01, random ones at forget loss ≥ retrained; censored runs are "
             "bounds). GA shown (grad_diff in `results.json`): steps ratio = ready / standard unlearning steps "
             "(geometric mean [95% CI]); before / after = test(-retain) accuracy, ready − standard, in points; "
             "relearn = share of the standard-to-retrained relearning gap closed.", ""]  # fmt: skip
    for dataset, res in all_results.items():
        lines += [f"## {dataset} ({res['config']['train']} {res['config']['train_overrides']}, seeds "
                  f"{res['config']['seeds']}; the standard model needs " + ", ".join(
                      f"{v:.0f} steps ({k})" for k, v in res["standard_steps"].items()) + ")", "",
                  "| shape | kind | steps ratio | before (pt) | after (pt) | relearn gap closed | train cost |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in res["shapes"]:
            ga = r["ga"]
            gap = ga.get("relearn_gap_closed")
            gap_text = f"{gap['mean']:+.2f} [{gap['ci_low']:+.2f}, {gap['ci_high']:+.2f}]" if gap and gap["n"] else "–"
            before, after = _pt(ga.get("before_vs_standard")), _pt(ga.get("after_vs_standard"))
            # The interleaved CPU-time probe where it ran; older rows only have the whole runs' wall-clock.
            time, how = ga.get("train_cost_ratio"), ""
            if not time:
                time, how = ga.get("train_time_ratio"), " (wall)"
            time_text = f"{time['mean']:.2f}× [{time['ci_low']:.2f}, {time['ci_high']:.2f}]{how}" if time else "–"
            lines.append(f"| {r['shape']} | {r['kind']} | {ga['steps_ratio']['text']} | {before} | {after} | "
                         f"{gap_text} | {time_text} |")  # fmt: skip
        lines.append("")
    lines += ["![sweep](sweep.png)", ""]
    notes = HERE / "NOTES.md"
    if notes.exists():
        lines += [notes.read_text(encoding="utf-8")]
    (HERE / "README.md").write_text("\n".join(lines), encoding="utf-8")


def plot(all_results: dict) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6 * len(all_results), 4.2), layout="constrained")
    axes = fig.subplots(1, len(all_results), squeeze=False)[0]
    for ax, (dataset, res) in zip(axes, all_results.items(), strict=True):
        for r in res["shapes"]:
            marker = "o" if r["kind"] == "class" else "s"
            x, y = r["ga"]["steps_ratio"]["mean"], 100 * r["ga"]["before_vs_standard"]["mean"]
            if not math.isfinite(x):  # every seed censored: no point to place
                continue
            ax.scatter(x, y, marker=marker, c="tab:red" if r["kind"] == "class" else "tab:blue")
            ax.annotate(r["shape"], (x, y), fontsize=6)
        ax.axvline(1 / 3, color="grey", ls=":")
        ax.axhline(-0.5, color="grey", ls=":")
        ax.set_xscale("log")
        ax.set_xlabel("unlearning steps, ready / standard (log)")
        ax.set_ylabel("test accuracy before unlearning, ready − standard (pt)")
        ax.set_title(f"{dataset}: efficiency vs utility cost (o class, □ random)", fontsize=9)
    fig.savefig(HERE / "sweep.png", dpi=120)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=list(DATASETS))
    p.add_argument("--work", type=Path, default=Path("runs/readiness_sweep"))
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--report", action="store_true", help="only rewrite README.md and sweep.png from results.json")
    p.add_argument("--shapes", nargs="+", metavar="NAME",
                   help="run only these shapes and merge them into results.json (the other rows are kept)")  # fmt: skip
    args = p.parse_args(argv)
    unknown = sorted(set(args.shapes or []) - set(SHAPES))
    if unknown:
        p.error(f"unknown shapes {unknown}; choose from {list(SHAPES)}")
    torch.set_num_threads(args.threads)
    path = HERE / "results.json"
    all_results = json.loads(path.read_text())["datasets"] if path.exists() else {}
    for dataset in [] if args.report else [args.only] if args.only else list(DATASETS):
        only = [s for s in args.shapes if s in DATASETS[dataset]["shapes"]] if args.shapes else None
        if only == []:
            continue
        result = run(dataset, args.work, only)
        # re-read: another dataset may have finished meanwhile
        all_results = json.loads(path.read_text())["datasets"] if path.exists() else {}
        if only and dataset in all_results:
            result = merge(all_results[dataset], result, only)
        all_results[dataset] = result
        write_json(path, {"versions": versions(), "datasets": all_results})
    write_summary(all_results)
    plot(all_results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
