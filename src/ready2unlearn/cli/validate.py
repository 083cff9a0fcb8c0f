"""``r2u validate``: load every shipped preset (or the given YAML files) and check it fully."""

from __future__ import annotations

import argparse

from rich.table import Table

from ready2unlearn.cli.common import console, esc
from ready2unlearn.cli.ls import PRESET_GROUPS
from ready2unlearn.config import list_presets
from ready2unlearn.engine.unlearn_config import load_unlearn_config
from ready2unlearn.errors import R2UError
from ready2unlearn.recipes import train as train_recipe
from ready2unlearn.recipes.bench import load_bench_config
from ready2unlearn.recipes.lm_bench import load_lm_bench_config
from ready2unlearn.recipes.muse_eval import load_muse_eval_config
from ready2unlearn.recipes.plan_config import load_plan_config
from ready2unlearn.recipes.ready_bench import load_ready_bench_config

LOADERS = {
    "train": lambda preset: train_recipe.load_config(preset),
    "unlearn": load_unlearn_config,
    "bench": load_bench_config,
    "ready_bench": load_ready_bench_config,
    "lm_bench": load_lm_bench_config,
    "muse_eval": load_muse_eval_config,
    "plan": load_plan_config,
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers the ``validate`` verb."""
    p = sub.add_parser(
        "validate",
        help="check every shipped preset (or given YAML files)",
        description="Build the full, type-checked config of every shipped preset, or of the YAML files "
        "given (as training configs). Exit status 1 if any fails.",
    )
    p.add_argument("files", nargs="*", metavar="FILE.yaml", help="validate these training configs instead")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Runs ``r2u validate``."""
    targets = [("train", f) for f in args.files] or [(g, n) for g in PRESET_GROUPS for n in list_presets(g)]
    table = Table(title="validate")
    for col in ("group", "preset", "result"):
        table.add_column(col, overflow="fold")
    failed = 0
    for group, path in targets:
        try:
            LOADERS[group](path)
            result = "[green]ok[/green]"
        except R2UError as e:
            failed += 1
            result = f"[red]{esc(e)}[/red]"
        table.add_row(group, esc(path), result)
    console.print(table)
    console.print(f"{len(targets) - failed} ok, {failed} failed")
    return 1 if failed else 0
