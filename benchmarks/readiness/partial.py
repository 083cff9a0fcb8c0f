"""Tabulate the finished cells of an interrupted readiness matrix (no verdicts: those need every seed).

Run: ``python benchmarks/readiness/partial.py --work runs/readiness/fashion --out
benchmarks/readiness/fashion-partial``.

A long matrix (``run.py --only fashion``) runs for hours on 2 cores and is resumable, but its cache lives in
``--work`` on the machine that ran it. This copies the finished cells (``cells/*.json``, each the full record of
one request kind × setting × seed) into ``--out/cells`` and writes ``--out/table.md``: per cell and model
variant, the unlearning steps and whether the target was reached, test accuracy before, accuracy after (on the
test-retain set for class requests), the mean held-out forget accuracy during the relearning attack, and the
retrained model's value for it (the floor). Hand-written context goes in ``--out/README.md`` around it.

When the work folder holds the matrix's ``bench_config.json`` it is copied too, and ``--out/targets.md`` judges
the targets on the cells finished so far: the same summary as the full report, so a verdict is provisional (and
labelled with its ``n``) until every cell and cost probe of every seed is in; the table's first line says what is
missing. The training-cost target is judged on the probes in
``cost/*.json``, which are copied to ``--out/cost``. Where ``--work`` or ``--out`` holds the bench's
``memory.json`` (``memory.py`` writes one for a partial folder), its memory-per-step table follows the targets.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from ready2unlearn.artifacts import atomic_write
from ready2unlearn.report.readiness import summarise_readiness
from ready2unlearn.report.readiness_report import ci_text, memory_lines, targets_table


def _relearn_mean(relearn: dict | None) -> float:
    for result in (relearn or {}).values():
        curve = result.get("curve") or []
        if curve:
            return sum(p["forget_acc"] for p in curve) / len(curve)
    return float("nan")


def rows(cells: list[dict]) -> list[str]:
    """One Markdown row per (cell, variant, method)."""
    out = []
    for c in sorted(cells, key=lambda c: (c["group"], c["setting"], c["seed"])):
        floor = _relearn_mean(c["reference"].get("relearn"))
        after_key = "test_retain_acc" if c["kind"] == "class" else "test_acc"
        for r in c["runs"]:
            before, after = r["before"]["test_acc"], r["metrics"][after_key]
            out.append(f"| {c['group']} / {c['setting']} | {c['seed']} | {r['variant']} | {r['method']} | "
                       f"{r['steps']} | {r['reached']} | {before:.3f} | {after:.3f} | "
                       f"{_relearn_mean(r.get('relearn')):.3f} | {floor:.3f} |")  # fmt: skip
    return out


def missing(cells: list[dict], config: dict, cost: list[dict] | None = None) -> list[str]:
    """What the matrix still lacks: a cell per group × request × seed and, as the bench measures them (its
    ``cost`` option, on unless the config turns it off), a cost probe per group × seed."""
    have = {(c["group"], c["setting"], c["seed"]) for c in cells}
    probes = {(p["group"], p["seed"]) for p in cost or []}
    gaps = []
    for group in config["groups"]:
        name = group["name"]
        for seed in config["seeds"]:
            gaps += [f"{name}/{s} seed {seed}" for s in group["requests"] if (name, s, seed) not in have]
            if config.get("cost", True) and (name, seed) not in probes:
                gaps.append(f"{name} cost probe seed {seed}")
    return gaps


def targets(cells: list[dict], config: dict, cost: list[dict] | None = None) -> list[str]:
    """The target table (and ready vs negative training) on the cells (and cost probes) finished so far."""
    s = summarise_readiness({"cells": cells, "config": config, "cost": cost or []})
    seeds = sorted({c["seed"] for c in cells})
    gaps = missing(cells, config, cost)
    # Final only when every cell and probe is in (a seed with one cell is not a finished seed), though the
    # cells may come from several folders (and machines).
    head = (
        f"Targets on every seed ({seeds}), from cells run in separate folders and joined here."
        if not gaps
        else f"Targets on the cells finished so far (seeds {seeds} of {config['seeds']}; {len(gaps)} cells or cost "
        f"probes missing, first {gaps[0]}; provisional until every one is in)."
    )
    out = [
        head,
        "",
        *targets_table(s["targets"]),
    ]  # the full report's table
    out += ["", "Ready against the negative-training baseline (steps, paired by seed):", "",
            "| setting | method | ready / negtrain | ready / standard | negtrain / standard |",
            "|---|---|---|---|---|"]  # fmt: skip
    for r in s["vs_negtrain"]:
        if r["targeted"]:
            out.append(f"| {r['group']} / {r['setting']} | {r['method']} | {ci_text(r['steps_ratio_vs_negtrain'])} | "
                       f"{ci_text(r['steps_ratio'])} | {ci_text(r['negtrain_steps_ratio'])} |")  # fmt: skip
    return out


def _copy_records(work: Path, out: Path, sub: str) -> list[dict]:
    """Copies ``work/sub/*.json`` into ``out/sub`` and returns them loaded (none when the folder is absent)."""
    files = sorted((work / sub).glob("*.json"))
    if files:
        (out / sub).mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy2(f, out / sub / f.name)
    return [json.loads(f.read_text(encoding="utf-8")) for f in files]


def _memory(work: Path, out: Path) -> dict | None:
    """The bench's memory-per-step record, copied from ``work`` when it has one, else ``out``'s own."""
    if (work / "memory.json").is_file() and work.resolve() != out.resolve():
        shutil.copy2(work / "memory.json", out / "memory.json")
    path = out / "memory.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def write_lines(path: Path, lines: list[str]) -> None:
    """Writes ``lines`` as a text file atomically, so an interrupted run never leaves half a table."""
    atomic_write(path, lambda tmp: tmp.write_text("\n".join(lines) + "\n", encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True, help="the matrix's work folder (holds cells/)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    cells, cost = (_copy_records(args.work, args.out, sub) for sub in ("cells", "cost"))
    header = ["| group / setting | seed | variant | method | steps | reached | test acc before | acc after (TA) | "
              "relearn UA (mean) | retrained floor |", "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    write_lines(args.out / "table.md", [*header, *rows(cells)])
    config_file = args.work / "bench_config.json"
    if config_file.is_file() and cells:
        shutil.copy2(config_file, args.out / "bench_config.json")
        config = json.loads(config_file.read_text(encoding="utf-8"))["config"]
        memory = _memory(args.work, args.out)
        write_lines(
            args.out / "targets.md", [*targets(cells, config, cost), *(["", *memory_lines(memory)] if memory else [])]
        )
    print(f"{len(cells)} cells → {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
