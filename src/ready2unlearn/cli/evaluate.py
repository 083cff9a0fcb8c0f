"""``r2u eval``: verify a checkpoint against a deletion request, optionally against a retrained model."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from ready2unlearn.artifacts import check_writable
from ready2unlearn.attacks.relearn import RelearnConfig
from ready2unlearn.cli.common import add_data_dir, console, esc
from ready2unlearn.data.request import DeletionRequest
from ready2unlearn.recipes.evaluate import evaluate_checkpoint, write_metrics

SHOWN = ("forget_acc", "retain_acc", "test_acc", "test_retain_acc", "test_forget_acc", "forget_loss",
         "mia_auc", "mia_efficacy", "forget_kl_to_reference", "test_disagreement")  # fmt: skip


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers the ``eval`` verb."""
    p = sub.add_parser(
        "eval",
        help="verify a checkpoint: UA/RA/TA, gaps to a retrained model, membership inference, relearning",
        description="Evaluate a checkpoint on a deletion request's views (default: the last request it served). "
        "With --reference (a retrained model), print each metric beside the reference's value and the gap. "
        "Writes metrics.json (default: into the checkpoint folder).",
    )
    p.add_argument("--checkpoint", required=True, metavar="DIR")
    p.add_argument("--request", "-r", metavar="SPEC", help="deletion request (default: the checkpoint's last)")
    p.add_argument("--reference", metavar="DIR", help="retrained model to compare with")
    p.add_argument("--relearn", action="store_true", help="also run the relearning attack (slower)")
    p.add_argument("--out", "-o", metavar="FILE", help="metrics JSON path (default: CHECKPOINT/metrics.json)")
    p.add_argument("--seed", type=int, default=0, help="seed of the attacks' sampling")
    add_data_dir(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Runs ``r2u eval``."""
    request = DeletionRequest.parse(args.request) if args.request else None
    relearn = RelearnConfig(seed=args.seed) if args.relearn else None
    out = Path(args.out) if args.out else Path(args.checkpoint) / "metrics.json"
    # Checked before the metrics and attacks are computed. The default lands in the checkpoint folder; when
    # that is not a folder, loading the checkpoint reports it better.
    if args.out or Path(args.checkpoint).is_dir():
        check_writable(out, kind="file", flag="--out")
    result = evaluate_checkpoint(args.checkpoint, request, args.reference, relearn, args.data_dir, args.seed)
    ref = result.get("reference", {}).get("metrics", {})
    table = Table(title=esc(f"{args.checkpoint} — request {DeletionRequest.from_dict(result['request']).describe()}"))
    table.add_column("metric")
    table.add_column("model", justify="right")
    if ref:
        table.add_column("retrained", justify="right")
        table.add_column("|gap|", justify="right")
    for k in SHOWN:
        if k not in result["metrics"]:
            continue
        v = result["metrics"][k]
        row = [k, f"{v:.4f}"]
        if ref:
            r = ref.get(k)
            row += [f"{r:.4f}" if r is not None else "-", f"{abs(v - r):.4f}" if r is not None else "-"]
        table.add_row(*row)
    console.print(table)
    if "gaps" in result:
        console.print(f"Avg. Gap (UA, RA, TA, MIA-efficacy): {result['gaps']['avg_gap']:.4f}")
    console.print("MIA AUC: 0.5 = forget set indistinguishable from unseen data; MIA-efficacy: compare with retrained.")
    for name, r in result.get("relearn", {}).items():
        floor = result.get("relearn_reference", {}).get(name, {}).get("final_forget_acc")
        extra = f" (retrained floor {floor:.4f})" if floor is not None else ""
        console.print(f"relearn {esc(name)}: forget accuracy → {r['final_forget_acc']:.4f}{extra}")
    write_metrics(result, out)
    console.print(f"wrote {esc(out)}", soft_wrap=True)
    return 0
