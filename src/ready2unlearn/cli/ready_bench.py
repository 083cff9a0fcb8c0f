"""``r2u ready-bench``: standard vs ready vs retrained, with the targets of the readiness protocol."""

from __future__ import annotations

import argparse
from collections import Counter

from ready2unlearn.artifacts import check_writable
from ready2unlearn.cli.common import add_preset_run_args, console, esc
from ready2unlearn.recipes.ready_bench import run_ready_bench


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers the ``ready-bench`` verb."""
    p = sub.add_parser(
        "ready-bench",
        help="readiness benchmark: standard vs ready vs retrained models, targets checked; resumable",
        description="Per seed, train the standard model, one ready model per group of the preset (and the "
        "DP-SGD / down-weighting baselines), retrain the gold model per request, unlearn every variant with "
        "the same stop rule, run the relearning attack, and write results.json + report.md with the target "
        "table and plots. Re-running with the same --out resumes.",
        epilog="example: r2u ready-bench fashion-ready --out runs/ready-fashion  (presets: r2u ls presets)",
    )
    add_preset_run_args(p, "ready_bench")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Runs ``r2u ready-bench``."""
    check_writable(args.out)  # before the first model is trained
    overrides = [*args.overrides, *([f"data_dir={args.data_dir}"] if args.data_dir else [])]
    results = run_ready_bench(args.preset, args.out, overrides, show_progress=not args.quiet)
    verdicts = Counter(t.get("verdict", "n/a") for t in results["summary"]["targets"])
    counts = ", ".join(f"{verdicts[v]} {v}" for v in ("met", "missed", "inconclusive", "n/a") if verdicts[v])
    console.print(f"{len(results['cells'])} cells in {results['wall_seconds']:.0f} s; targets: {counts}")
    for name in ("results.json", "report.md"):
        console.print(f"  {esc(args.out)}/{name}", soft_wrap=True)
    return 0
