"""``r2u plan``: measure every learning-time strategy on a model and data, and recommend one."""

from __future__ import annotations

import argparse

from ready2unlearn.artifacts import check_writable
from ready2unlearn.cli.common import add_preset_run_args, console, esc
from ready2unlearn.recipes.plan import run_plan


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers the ``plan`` verb."""
    p = sub.add_parser(
        "plan",
        help="which strategy for K expected requests? retrain vs fast methods vs ready vs SISA; resumable",
        description="Serve the same stream of deletion requests with every strategy (retrain after each request, "
        "the standard model + each fast method, a ready model + GA/grad_diff, SISA at several shard counts), "
        "measure one-off and per-request cost in standard trainings, test accuracy, Avg. Gap, MIA and "
        "relearning against the retrained model, and write results.json, report.md and report.html with a "
        "cost-vs-K and a Pareto plot and a recommendation. Re-running with the same --out resumes.",
    )
    add_preset_run_args(p, "plan")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Runs ``r2u plan``."""
    check_writable(args.out)
    overrides = [*args.overrides, *([f"data_dir={args.data_dir}"] if args.data_dir else [])]
    results = run_plan(args.preset, args.out, overrides, show_progress=not args.quiet)
    console.print(esc(results["summary"]["recommendation"]), soft_wrap=True)
    for name in ("results.json", "report.md", "report.html"):
        console.print(f"  {esc(args.out)}/{name}", soft_wrap=True)
    return 0
