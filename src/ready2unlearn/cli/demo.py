"""``r2u demo``: the main job on the embedded digits data, with no files needed."""

from __future__ import annotations

import argparse
from pathlib import Path

from ready2unlearn.cli.common import add_quiet, console, metrics_table
from ready2unlearn.errors import ConfigError
from ready2unlearn.recipes import train as train_recipe


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers the ``demo`` verb."""
    p = sub.add_parser(
        "demo",
        help="train a standard model on the embedded digits data and report it (no files needed)",
        description="Train an MLP on scikit-learn's embedded 8x8 digits (about 10 s on a laptop CPU), "
        "write the checkpoint and print its accuracy.",
    )
    p.add_argument("--out", "-o", default="r2u-demo", metavar="DIR", help="output folder (default: r2u-demo)")
    add_quiet(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Runs ``r2u demo``."""
    out = Path(args.out) / "standard"
    if (out / "card.json").exists():
        raise ConfigError(f"{out} already holds a demo checkpoint; pass another --out or delete it")
    cfg, preset = train_recipe.load_config("digits-mlp")
    console.print("[bold]ready2unlearn demo[/bold]: standard training on digits (embedded, 1,437 train / 360 test)")
    card = train_recipe.run(cfg, out, show_progress=not args.quiet, producer="r2u demo", extra_card={"preset": preset})
    console.print(metrics_table("digits / mlp", {"standard": card["metrics"]}))
    console.print(f"checkpoint: {out}  (card: {out / 'card.json'})")
    return 0
