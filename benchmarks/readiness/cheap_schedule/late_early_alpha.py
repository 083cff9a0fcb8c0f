"""Probe: readiness only in the last epochs, at the α the shipped schedule measured early.

``fashion-late.yaml`` starts readiness late (epoch 5 or 6 of 6) and so measures α late, on a better-fitted model
that needs more GA steps: a larger α, a weaker demand. This probe separates the two. Each seed trains with
``start_epoch`` 4 or 5 and α fixed to the value that seed's shipped run (``fashion-fast.yaml``, readiness from
epoch 2) measured after epoch 1 (``calibration.alpha`` in its ready model's card). The measurement itself is
not run, so its cost is not counted here.

Run (one bench per seed, since α differs per seed; the standard and retrained models are reused from the
``fashion-fast`` work folder when it is given)::

    python benchmarks/readiness/cheap_schedule/late_early_alpha.py run --work runs --reuse runs/fashion-fast
    python benchmarks/readiness/cheap_schedule/late_early_alpha.py summary --work runs \\
        --baseline runs/fashion-fast --out benchmarks/readiness/cheap_schedule/fashion-late
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path

import yaml

from ready2unlearn.report.readiness import summarise_readiness
from ready2unlearn.report.readiness_report import targets_table

HERE = Path(__file__).parent
SEEDS = (0, 1, 2, 3, 4)
#: α each seed's shipped ready model measured after epoch 1 (fashion-fast; its cards' ``calibration.alpha``).
EARLY_ALPHA = {0: 0.0264, 1: 0.0936, 2: 0.024, 3: 0.0264, 4: 0.0312}
#: Readiness from this epoch on (0-based), i.e. in the last 2 / last 1 of the 6 epochs.
STARTS = {"last2": 4, "last1": 5}


def _config(seed: int, start: int) -> dict:
    cfg = yaml.safe_load((HERE / "fashion-late.yaml").read_text())
    group = dict(cfg["groups"][0], name=f"class-start{start}")
    group["ready"] = [o for o in group["ready"] if not o.startswith("start_epoch=")]
    group["ready"] += [f"start_epoch={start}", f"alpha={EARLY_ALPHA[seed]}"]
    return {**cfg, "seeds": [seed], "groups": [group]}


def run(work: Path, reuse: Path | None) -> None:
    """One ``r2u ready-bench`` per schedule and seed, in ``work/fashion-early-alpha-<schedule>-s<seed>``."""
    for name, start in STARTS.items():
        for seed in SEEDS:
            out = work / f"fashion-early-alpha-{name}-s{seed}"
            out.mkdir(parents=True, exist_ok=True)
            if reuse is not None and not (out / "models" / f"seed{seed}").exists():
                shutil.copytree(reuse / "models" / f"seed{seed}", out / "models" / f"seed{seed}")
            (out / "cfg.yaml").write_text(yaml.safe_dump(_config(seed, start), sort_keys=False))
            subprocess.run(["r2u", "ready-bench", str(out / "cfg.yaml"), "--out", str(out)], check=True)


def _cells(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("cells/*.json"))]


def summary(work: Path, baseline: Path, out: Path) -> None:
    """The bench's own target table (paired by seed, censoring, 95% intervals) per schedule, with per-seed steps."""
    schedules = {"shipped (readiness from epoch 2, α after epoch 1)": [baseline]}
    for name in STARTS:
        schedules[f"{name} epochs, early α"] = [work / f"fashion-early-alpha-{name}-s{seed}" for seed in SEEDS]
    result: dict[str, dict] = {}
    lines: list[str] = []
    for label, folders in schedules.items():
        cells = [cell for folder in folders for cell in _cells(folder)]
        config = json.loads((folders[0] / "bench_config.json").read_text())["config"]
        targets = summarise_readiness({"cells": cells, "config": config})["targets"]
        steps = {m["name"]: [] for m in config["methods"]}
        for cell in sorted(cells, key=lambda c: c["seed"]):
            runs = {(r["variant"], r["method"]): r["steps"] for r in cell["runs"]}
            for method, seq in steps.items():
                seq.append(f"{runs[('standard', method)]} → {runs[('ready', method)]}")
        result[label] = {"seeds": sorted(c["seed"] for c in cells), "targets": targets, "steps": steps}
        lines += [f"### {label}", "", *targets_table(targets), ""]
        lines += [f"Steps, standard → ready, seeds {result[label]['seeds']}: {method} {', '.join(seq)}."
                  for method, seq in steps.items()] + [""]  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "early_alpha.json").write_text(json.dumps(result, indent=1))
    (out / "early_alpha.md").write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    """Command line: ``run`` or ``summary``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run", "summary"])
    parser.add_argument("--work", type=Path, default=Path("runs"))
    parser.add_argument("--reuse", type=Path, default=None, help="fashion-fast work folder (its models)")
    parser.add_argument("--baseline", type=Path, default=Path("runs/fashion-fast"))
    parser.add_argument("--out", type=Path, default=HERE / "fashion-late")
    args = parser.parse_args()
    run(args.work, args.reuse) if args.command == "run" else summary(args.work, args.baseline, args.out)


if __name__ == "__main__":
    main()
