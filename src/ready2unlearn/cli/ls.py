"""``r2u ls``: list registered datasets, models and shipped presets."""

from __future__ import annotations

import argparse

from rich.table import Table

from ready2unlearn.attacks import ATTACKS
from ready2unlearn.cli.common import add_data_dir, console, esc
from ready2unlearn.config import list_presets, load_yaml, resolve_preset
from ready2unlearn.data import DATASETS, byo
from ready2unlearn.errors import DataError
from ready2unlearn.evaluate.metrics import METRICS
from ready2unlearn.evaluate.muse import MUSE_METRICS
from ready2unlearn.models import MODELS
from ready2unlearn.unlearn import METHODS

PRESET_GROUPS = ("train", "unlearn", "bench", "ready_bench", "lm_bench", "muse_eval", "plan")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers the ``ls`` verb."""
    p = sub.add_parser("ls", help="list datasets, models, unlearning methods, metrics, attacks or presets",
                       description="List what is registered: datasets (with where their files are "
                       "found), models, or shipped presets.")  # fmt: skip
    p.add_argument("what", choices=("datasets", "models", "methods", "metrics", "attacks", "presets"))
    add_data_dir(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Runs ``r2u ls``."""
    if args.what == "datasets":
        table = Table(title="datasets")
        for col in ("name", "kind", "classes", "location", "summary"):
            table.add_column(col, overflow="fold")
        for name, info in DATASETS.items():
            try:
                where = info.location(args.data_dir)
            except DataError as e:
                where = f"error: {e}"
            table.add_row(name, info.kind, str(info.num_classes or "-"), esc(where), info.summary)
        # Bring-your-own forms (r2u train --dataset csv:PATH ...): listed so users find them where they look.
        for form, kind, summary in byo.FORMS:
            table.add_row(form, kind, "-", "your " + ("folder" if form.endswith("DIR") else "file"), esc(summary))
    elif args.what == "models":
        table = Table(title="models")
        for col in ("name", "inputs", "summary"):
            table.add_column(col)
        for name, info in MODELS.items():
            table.add_row(name, "/".join(info.kinds), info.summary)
    elif args.what == "methods":
        table = Table(title="unlearning methods")
        for col in ("name", "kind", "summary", "paper"):
            table.add_column(col, overflow="fold")
        for name, minfo in METHODS.items():
            kind = "iterative" if minfo.method_cls.iterative else "one-shot"
            if minfo.method_cls.classifier_only:
                kind += ", classifiers"
            table.add_row(name, kind, minfo.summary, minfo.paper)
    elif args.what == "metrics":
        table = Table(title="metrics")
        table.add_column("name", no_wrap=True)
        for col in ("better", "inputs", "description"):
            table.add_column(col, overflow="fold")
        for name, metric in METRICS.items():
            better = {True: "higher", False: "lower", None: "closer to retrained"}[metric.higher_is_better]
            table.add_row(name, better, ", ".join(metric.inputs), metric.description)
        # Language-model metrics of MUSE read generations and attack scores, not logits: their own registry.
        for name, muse_metric in MUSE_METRICS.items():
            better = {True: "higher", False: "lower", None: "closer to retrained"}[muse_metric.higher_is_better]
            table.add_row(f"muse/{name}", better, ", ".join(muse_metric.inputs), muse_metric.description)
    elif args.what == "attacks":
        table = Table(title="attacks")
        for col in ("name", "summary", "paper"):
            table.add_column(col, overflow="fold")
        for name, attack in ATTACKS.items():
            table.add_row(name, attack.summary, attack.paper)
    else:
        table = Table(title="presets")
        for col in ("group", "name", "launch"):
            table.add_column(col, overflow="fold")
        for group in PRESET_GROUPS:
            for name in list_presets(group):
                path = resolve_preset(group, name)
                first = path.read_text(encoding="utf-8").splitlines()[0].lstrip("# ").strip()
                load_yaml(path)  # a broken preset should fail here too, not only in validate
                table.add_row(group, name, first)
    console.print(table)
    return 0
