"""``r2u bench``: run a benchmark matrix and write results.json, report.md and report.html."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ready2unlearn.artifacts import check_writable
from ready2unlearn.cli import ready_bench
from ready2unlearn.cli.common import add_preset_run_args, add_track, console, esc, track_run
from ready2unlearn.config import list_presets
from ready2unlearn.errors import ConfigError
from ready2unlearn.recipes.bench import run_bench
from ready2unlearn.recipes.lm_bench import run_lm_bench
from ready2unlearn.recipes.muse_eval import run_muse_eval
from ready2unlearn.tracking import Tracker, flatten


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers the ``bench`` verb."""
    p = sub.add_parser(
        "bench",
        help="run a benchmark preset (methods × settings × seeds vs retraining); resumable",
        description="Run a benchmark matrix by the evaluation protocol: train the original model per seed, "
        "retrain the gold model per setting, unlearn with every method under the same stop rule, evaluate "
        "(UA/RA/TA, gaps, MIA, relearning), and write results.json + report.md + report.html with plots. "
        "Re-running with the same --out resumes: finished cells are kept. Readiness presets (r2u ls presets: "
        "ready_bench, e.g. text-class), language-model presets (lm_bench: tofu-forget01/05/10) and MUSE "
        "evaluations of local checkpoints (muse_eval: muse-news, muse-books) run here too.",
    )
    add_preset_run_args(p, "bench")
    p.add_argument(
        "--runner",
        choices=RUNNERS,
        help="runner of a YAML file kept outside a folder named after it (default: its folder)",
    )
    add_track(p)
    p.set_defaults(func=run)


#: The benchmark runners ``r2u bench`` dispatches to, each named like the preset folder it reads.
RUNNERS = ("bench", "ready_bench", "lm_bench", "muse_eval")


def preset_group(preset: str, runner: str | None = None) -> str:
    """Which runner a preset belongs to: ``--runner``, else the folder it lives in.

    A shipped preset's folder is its group (``configs/ready_bench/digits-ready.yaml`` → ``ready_bench``); a YAML
    file of your own is read by the runner its folder is named after (``my/ready_bench/x.yaml``). The content
    never decides: a key added to one runner's config cannot silently send a file to another runner.

    Raises:
        ConfigError: On an unknown ``runner``, or a YAML file whose folder names no runner (and no ``--runner``).
    """
    if runner is not None:
        if runner not in RUNNERS:
            raise ConfigError(f"--runner must be one of {', '.join(RUNNERS)}, got {runner!r}")
        return runner
    path = Path(preset)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        folder = path.resolve().parent.name
        if folder in RUNNERS:
            return folder
        raise ConfigError(f"cannot tell which benchmark runs {preset}: keep it in a folder named after its runner "
                          f"({', '.join(f'{r}/' for r in RUNNERS)}) or pass --runner")  # fmt: skip
    for group in RUNNERS[1:]:
        if preset in list_presets(group):
            return group
    return "bench"


def run(args: argparse.Namespace) -> int:
    """Runs ``r2u bench`` (dispatching readiness and language-model presets to their runners)."""
    check_writable(args.out)  # a re-run resumes in its own folder, so only writability is checked
    with track_run(args, "bench") as tracker:
        status = run_group(args)
        track_results(tracker, Path(args.out), args.preset)
    return status


def run_group(args: argparse.Namespace) -> int:
    """Runs the preset with the runner of its group (``bench``, ``ready_bench`` or ``lm_bench``)."""
    group = preset_group(args.preset, args.runner)
    if group == "ready_bench":
        return ready_bench.run(args)
    if group == "lm_bench":
        return run_lm(args)
    if group == "muse_eval":
        return run_muse(args)
    overrides = [*args.overrides, *([f"data_dir={args.data_dir}"] if args.data_dir else [])]
    results = run_bench(args.preset, args.out, overrides, show_progress=not args.quiet)
    console.print(f"{len(results['cells'])} cells in {results['wall_seconds']:.0f} s")
    for name in ("results.json", "report.md", "report.html"):
        console.print(f"  {esc(args.out)}/{name}", soft_wrap=True)
    return 0


def run_lm(args: argparse.Namespace) -> int:
    """Runs a TOFU (``lm_bench``) preset and prints forget quality / model utility per model."""
    overrides = [*args.overrides, *([f"data_dir={args.data_dir}"] if args.data_dir else [])]
    results = run_lm_bench(args.preset, args.out, overrides, show_progress=not args.quiet)
    for row in results["summary"]["table"]:
        console.print(f"  {esc(row['model']):>9} {esc(row['method']):>9}: forget quality {row['forget quality']:.3g}, "
                      f"model utility {row['model utility']:.3f}")  # fmt: skip
    for name in ("results.json", "report.md"):
        console.print(f"  {esc(args.out)}/{name}", soft_wrap=True)
    return 0


def run_muse(args: argparse.Namespace) -> int:
    """Runs a MUSE (``muse_eval``) preset and prints each model's MUSE metrics."""
    overrides = [*args.overrides, *([f"data_dir={args.data_dir}"] if args.data_dir else [])]
    results = run_muse_eval(args.preset, args.out, overrides)
    for row in results["models"]:
        numbers = ", ".join(f"{k} {v:.3g}" for k, v in row["metrics"].items())
        console.print(f"  {esc(row['name'])}: {numbers}")
    for name in ("results.json", "report.md"):
        console.print(f"  {esc(args.out)}/{name}", soft_wrap=True)
    return 0


#: The parts of a benchmark cell that hold its results (the rest is its configuration).
CELL_RESULTS = ("metrics", "gaps", "efficiency")


def track_results(tracker: Tracker, out: Path, preset: str) -> None:
    """Records a finished benchmark from its ``results.json``: config, per-cell results and curves, report files.

    Every key is prefixed with the cell's key (``class:3/seed0/standard/ga/forget_acc``); the curves are the
    cells' unlearning curves.
    """
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    tracker.log_params({"preset": preset, **results.get("config", {})})
    for cell in results.get("cells", []):
        name = cell.get("key") or "/".join(str(cell[k]) for k in ("setting", "group", "seed", "variant", "method")
                                           if k in cell)  # fmt: skip
        parts = {k: cell[k] for k in CELL_RESULTS if isinstance(cell.get(k), dict)}
        tracker.log_summary({f"{name}/{k}": v for k, v in flatten(parts).items()})
        for row in cell.get("curve") or []:
            tracker.log_metrics({f"{name}/{k}": v for k, v in row.items() if k != "step"}, step=int(row["step"]))
    for file in ("results.json", "report.md", "report.html"):
        if (out / file).is_file():
            tracker.log_artifact(out / file)
