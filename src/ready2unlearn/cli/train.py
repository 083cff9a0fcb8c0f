"""``r2u train``: train a standard model and write a checkpoint with its card."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ready2unlearn.cli.common import add_data_dir, add_quiet, add_track, console, esc, metrics_table, notice, track_run
from ready2unlearn.config import to_dict
from ready2unlearn.errors import ConfigError
from ready2unlearn.recipes import sisa as sisa_recipe
from ready2unlearn.recipes import train as train_recipe
from ready2unlearn.tracking import flatten

EPILOG = """examples:
  r2u train --dataset digits --model mlp --epochs 20 --out runs/digits
  r2u train --dataset csv:patients.csv --label-col outcome --id-col patient_id --group-col hospital --out runs/p
  r2u train --dataset npz:pathmnist.npz --model cnn --epochs 10 --out runs/path   # MedMNIST release file
  r2u train --config fashion_mnist-cnn --out runs/fashion optim.lr=1e-3 model.hidden=256
  r2u train --config my.yaml --out runs/x --resume      # continue an interrupted run (same config)
  r2u train --config my.yaml --out runs/x --resume --allow-extend epochs=40   # ... and train it longer
  r2u train --config my.yaml --out runs/x --overwrite   # replace the run in runs/x
  r2u train --config fashion_mnist-cnn --ready --ready.revocable class:3,5,7 --out runs/ready
  r2u train --dataset digits --model mlp --ready --ready.method npo --ready.kind random ready.cap=1.5 --out runs/r
  r2u train --config fashion_mnist-cnn --sisa.shards 5 --sisa.slices 3 --out runs/sisa   # exact unlearning (SISA)
readiness knobs not listed as flags are set as overrides: ready.efficiency=1 ready.retention=1 ready.resistance=0
ready.cap=... ready.start_epoch=... ready.forget_size=... ready.first_order=true (see ReadyConfig)
presets: r2u ls presets"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers the ``train`` verb."""
    p = sub.add_parser(
        "train",
        help="train a standard model; writes model.safetensors + card.json",
        description="Train a classifier and write model.safetensors + card.json (config, seed, versions, "
        "data fingerprints, metrics) atomically into --out. Without --config, the shipped preset "
        "<dataset>-<model> is used when it exists.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides (type-checked)")
    p.add_argument("--config", "-c", metavar="PRESET|FILE", help="shipped preset name or YAML file")
    p.add_argument("--dataset", metavar="NAME|FORMAT:PATH",
                   help="dataset name (r2u ls datasets), or your own data: csv:PATH, parquet:PATH, npz:PATH, "
                   "imagefolder:DIR, hf:DIR; shortcut for data.name=")  # fmt: skip
    p.add_argument("--label-col", metavar="COLUMN", help="your own data: the label column (default: label)")
    p.add_argument("--id-col", metavar="COLUMN",
                   help="your own data: a column of unique integer sample ids (default: the row numbers)")  # fmt: skip
    p.add_argument("--group-col", metavar="COLUMN",
                   help="your own data: a group column, for group:COLUMN=VALUE requests")  # fmt: skip
    p.add_argument("--model", help="model name (r2u ls models); shortcut for model.name=")
    p.add_argument("--epochs", type=int, help="shortcut for epochs=")
    p.add_argument("--lr", type=float, help="shortcut for optim.lr=")
    p.add_argument("--batch-size", type=int, help="shortcut for batch_size=")
    p.add_argument("--seed", type=int, help="shortcut for seed=")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="output directory")
    g = p.add_argument_group("readiness training (Ready2Unlearn)")
    g.add_argument("--ready", action="store_true", help="train with the readiness objective (shipped defaults)")
    for flag, kind, text in READY_FLAGS:
        g.add_argument(f"--ready.{flag}", dest=f"ready_{flag}", type=kind, metavar=flag.upper(), help=text)
    g = p.add_argument_group("down-weighting the revocable rows (prepares for random requests)")
    g.add_argument(
        "--downweight",
        metavar="SPEC",
        help="revocable rows whose loss is down-weighted, as a request "
        "spec (random:0.3@7, class:3,5, samples:ids.txt); shortcut for downweight.revocable=",
    )
    g.add_argument(
        "--downweight.weight", dest="downweight_weight", type=float, metavar="W", help="their loss weight (default 0.1)"
    )
    g = p.add_argument_group("SISA training (exact unlearning by shard retraining; Bourtoule et al. 2021)")
    for flag, kind, text in SISA_FLAGS:
        g.add_argument(f"--sisa.{flag}", dest=f"sisa_{flag}", type=kind, metavar=flag.upper(), help=text)
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in --out (refused when the config changed)")  # fmt: skip
    p.add_argument("--allow-extend", action="store_true",
                   help="with --resume: let epochs grow (the LR schedule stretches from where it stands)")  # fmt: skip
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --out (its files go once the new one is written)")  # fmt: skip
    add_data_dir(p)
    add_track(p)
    add_quiet(p)
    p.set_defaults(func=run)


READY_FLAGS = (
    ("method", str, "unlearning method that will serve requests: ga, grad_diff, ga_kl, npo, simnpo"),
    ("kind", str, "simulated request kind: class, random or group"),
    (
        "revocable",
        str,
        "revocable set as a request spec (class:3,5 / random:0.1@7 / samples:ids.txt / "
        "group:user=7); default: the whole training set",
    ),
    ("lam", float, "λ, weight of the readiness term"),
    ("alpha", str, "inner (simulated unlearning) step size, or auto (measured on the model; default)"),
    ("inner_steps", int, "simulated unlearning steps k"),
    ("meta_every", int, "add the readiness term every N steps"),
)


SISA_FLAGS = (
    ("shards", int, "disjoint shards, one constituent model each"),
    ("slices", int, "checkpointed slices per shard (a deletion retrains from the slice before the first hit)"),
    ("aggregation", str, "softmax (mean of the constituents' softmax, default) or vote (majority)"),
    ("shard_by", str, "a group column whose rows share one shard (a user's request then retrains one shard)"),
)


def sisa_overrides(args: argparse.Namespace) -> list[str]:
    """``--sisa.X V`` flags as ``sisa.X=V`` overrides."""
    return [f"sisa.{flag}={json.dumps(v) if isinstance(v, str) else v}" for flag, _, _ in SISA_FLAGS
            if (v := getattr(args, f"sisa_{flag}", None)) is not None]  # fmt: skip


def ready_overrides(args: argparse.Namespace) -> list[str]:
    """``--ready.X V`` flags as ``ready.X=V`` overrides (``--ready.method`` names ``ready.method.name``)."""
    out = []
    for flag, _, _ in READY_FLAGS:
        value = getattr(args, f"ready_{flag}", None)
        if value is not None:
            out.append(f"ready.method.name={value}" if flag == "method" else f"ready.{flag}={value}")
    return out


def shortcut_overrides(args: argparse.Namespace) -> list[str]:
    """Translates the shortcut flags into ``key=value`` overrides (explicit overrides come after)."""
    pairs = {
        "epochs": args.epochs, "optim.lr": args.lr, "batch_size": args.batch_size, "seed": args.seed,
        "device": args.device, "data.data_dir": args.data_dir,
    }  # fmt: skip
    out = [f"{k}={v}" for k, v in pairs.items() if v is not None]
    if getattr(args, "downweight", None):
        out.append(f"downweight.revocable={json.dumps(args.downweight)}")
    if getattr(args, "downweight_weight", None) is not None:
        out.append(f"downweight.weight={args.downweight_weight}")
    # Column names are quoted so YAML keeps them strings ("2024", "true" and "a: b" are column names too).
    columns = {"data.label_col": args.label_col, "data.id_col": args.id_col, "data.group_col": args.group_col}
    return out + [f"{k}={json.dumps(v)}" for k, v in columns.items() if v is not None]


def run(args: argparse.Namespace) -> int:
    """Runs ``r2u train``."""
    ready = ready_overrides(args)
    cfg, preset = train_recipe.load_config(
        args.config,
        shortcut_overrides(args) + ready + sisa_overrides(args) + list(args.overrides),
        args.dataset,
        args.model,
        ready=args.ready or bool(ready),
    )
    out = Path(args.out)
    mode = f"  ready (method {cfg.ready.method.name}, kind {cfg.ready.kind})" if cfg.ready else ""
    console.print(f"[bold]train[/bold] {esc(cfg.data.name)} / {esc(cfg.model.name)}  "
                  f"preset={esc(preset or 'none (defaults)')}{esc(mode)}")  # fmt: skip
    console.print(f"  config: {esc(to_dict(cfg))}", soft_wrap=True)

    if cfg.sisa is not None:
        return _run_sisa(args, cfg, preset, out)
    with track_run(args, "train") as tracker:
        tracker.log_params({**to_dict(cfg), "preset": preset})

        def on_epoch(row: dict[str, float]) -> None:
            tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))
            if not args.quiet:
                acc = row.get("test_accuracy", float("nan"))
                console.print(f"  epoch {row['epoch']:>3}  loss {row['train_loss_running']:.4f}  test_acc {acc:.4f}")

        card = train_recipe.run(
            cfg, out, resume_run=args.resume, allow_extend=args.allow_extend, overwrite=args.overwrite,
            show_progress=not args.quiet, on_epoch=on_epoch, extra_card={"preset": preset}, notice=notice,
        )  # fmt: skip
        tracker.log_summary({**card["metrics"], "train_seconds": card["timing"]["train_seconds"]})
        if "readiness" in card:
            tracker.log_summary(flatten(card["readiness"], "readiness."))
        tracker.log_artifact(out / "card.json")
    console.print(
        metrics_table(f"{cfg.data.name} / {cfg.model.name}", {"ready" if cfg.ready else "standard": card["metrics"]})
    )
    if cfg.ready is not None:
        rev = card["readiness"]["revocable"]
        console.print(
            f"  readiness: {card['readiness']['meta_steps']} meta-steps, revocable {esc(rev['spec'])} "
            f"({rev['size']} samples), {card['timing']['train_seconds']:.1f} s"
        )
    console.print(f"wrote {esc(out / 'model.safetensors')} and {esc(out / 'card.json')}", soft_wrap=True)
    return 0


def _run_sisa(args: argparse.Namespace, cfg: train_recipe.TrainConfig, preset: str | None, out: Path) -> int:
    """``r2u train --sisa.shards S``: trains the SISA ensemble (no per-epoch resume: its stages are short)."""
    if args.resume:
        raise ConfigError("--resume does not apply to SISA training; rerun it (with --overwrite)")
    sisa = cfg.sisa
    console.print(f"  SISA: {sisa.shards} shards × {sisa.slices} slices, {sisa.slice_epochs(cfg.epochs)} epochs per "
                  f"slice, aggregation {esc(sisa.aggregation)}")  # fmt: skip
    with track_run(args, "train") as tracker:
        tracker.log_params({**to_dict(cfg), "preset": preset})
        card = sisa_recipe.train(cfg, out, overwrite=args.overwrite, show_progress=not args.quiet,
                                 extra_card={"preset": preset})  # fmt: skip
        tracker.log_summary({**card["metrics"], "train_seconds": card["timing"]["train_seconds"]})
        tracker.log_artifact(out / "card.json")
    console.print(metrics_table(f"{cfg.data.name} / {cfg.model.name}", {"sisa ensemble": card["metrics"]}))
    rows = card["sisa_layout"]["rows"]
    console.print(f"  shard sizes: {', '.join(str(sum(r)) for r in rows)} rows")
    console.print(f"wrote {esc(out / 'model.safetensors')}, {esc(out / 'sisa')}/ and {esc(out / 'card.json')}",
                  soft_wrap=True)  # fmt: skip
    return 0
