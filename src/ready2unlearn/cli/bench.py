"""``r2u bench``: run a benchmark matrix and write results.json, report.md and report.html."""

from __future__ import annotations

import argparse

from ready2unlearn.cli.common import add_preset_run_args, console
from ready2unlearn.recipes.bench import run_bench


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers the ``bench`` verb."""
    p = sub.add_parser(
        "bench",
        help="run a benchmark preset (methods × settings × seeds vs retraining); resumable",
        description="Run a benchmark matrix by the evaluation protocol: train the original model per seed, "
        "retrain the gold model per setting, unlearn with every method under the same stop rule, evaluate "
        "(UA/RA/TA, gaps, MIA, relearning), and write results.json + report.md + report.html with plots. "
        "Re-running with the same --out resumes: finished cells are kept.",
    )
    add_preset_run_args(p, "bench")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Runs ``r2u bench``."""
    overrides = [*args.overrides, *([f"data_dir={args.data_dir}"] if args.data_dir else [])]
    results = run_bench(args.preset, args.out, overrides, show_progress=not args.quiet)
    console.print(f"{len(results['cells'])} cells in {results['wall_seconds']:.0f} s")
    for name in ("results.json", "report.md", "report.html"):
        console.print(f"  {args.out}/{name}")
    return 0
