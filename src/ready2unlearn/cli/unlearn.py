"""``r2u unlearn``: serve deletion requests on a trained checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ready2unlearn.cli.common import add_data_dir, add_quiet, add_track, console, esc, metrics_table, track_run
from ready2unlearn.config import to_dict
from ready2unlearn.data.request import DeletionRequest
from ready2unlearn.engine.unlearn_config import load_unlearn_config
from ready2unlearn.errors import ConfigError
from ready2unlearn.recipes import sisa as sisa_recipe
from ready2unlearn.recipes import unlearn as unlearn_recipe
from ready2unlearn.tracking import Tracker

EPILOG = """requests (repeat --request to replay a sequence; each gets its own checkpoint):
  class:3  class:3,5  random:0.01  random:0.1@SEED  samples:ids.txt  samples:12,40  group:COLUMN=VALUE
stop rules (always within the step budget):
  steps[:N]   forget_acc:TARGET   forget_loss:TARGET     TARGET = number | chance | reference (needs --reference)
examples:
  r2u unlearn --checkpoint runs/digits --request class:3 --method ga --stop forget_acc:chance --out runs/ga
  r2u unlearn --checkpoint runs/fashion --request random:0.01 --method npo --stop forget_acc:reference \\
      --reference runs/fashion-retrained --budget 500 --out runs/npo method.beta=0.2
methods: r2u ls methods"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers the ``unlearn`` verb."""
    p = sub.add_parser(
        "unlearn",
        help="unlearn deletion request(s) from a checkpoint; writes unlearned checkpoint(s) with lineage",
        description="Apply an unlearning method to a trained checkpoint for one or more deletion requests. "
        "Every request is validated first; each result is a checkpoint whose card records the request, the "
        "method config, the stop reason, steps / gradient evaluations / time, and the parent's hash.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides (method.*, stop.*)")
    p.add_argument("--checkpoint", required=True, metavar="DIR", help="trained checkpoint directory")
    p.add_argument("--request", "-r", action="append", required=True, metavar="SPEC", help="deletion request")
    add_unlearn_flags(p)
    p.add_argument("--reference", metavar="DIR", help="retrained model checkpoint (target 'reference')")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="output directory (new or empty)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --out (its files go once the new model is written)")  # fmt: skip
    add_data_dir(p)
    add_track(p)
    add_quiet(p)
    p.set_defaults(func=run)


def add_unlearn_flags(p: argparse.ArgumentParser) -> None:
    """Adds the method/preset choice and the shortcut flags that :func:`overrides_from_flags` reads."""
    p.add_argument(
        "--method", "-m", help="unlearning method (default: the preset's, else ga); sisa: exact, for SISA models"
    )
    p.add_argument("--config", "-c", metavar="PRESET|FILE", help="unlearn preset (default: the method's own)")
    p.add_argument("--stop", metavar="RULE", help="stop rule (r2u unlearn --help); default: the preset's")
    p.add_argument("--budget", type=int, help="step budget (stop.max_steps)")
    p.add_argument("--epochs", type=float, help="budget in passes over the method's primary set (stop.epochs)")
    p.add_argument("--eval-every", type=int, help="check the stop rule every N steps (stop.eval_every)")
    p.add_argument("--retain-floor", type=float, help="divergence if retain accuracy falls below this")
    p.add_argument("--lr", type=float, help="shortcut for method.lr=")
    p.add_argument("--seed", type=int, help="shortcut for seed=")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")


def overrides_from_flags(args: argparse.Namespace) -> list[str]:
    """The ``key=value`` overrides that the shortcut flags (--stop, --budget, --lr...) stand for."""
    out = []
    if args.stop:
        rule, _, target = args.stop.partition(":")
        if rule == "steps":
            out += ["stop.rule=steps", "stop.target=null"] + ([f"stop.max_steps={target}"] if target else [])
        else:
            out += [f"stop.rule={rule}", f"stop.target={target}" if target else "stop.target=null"]
    pairs = {
        "stop.max_steps": args.budget, "stop.epochs": args.epochs, "stop.eval_every": args.eval_every,
        "stop.retain_floor": args.retain_floor, "method.lr": args.lr, "seed": args.seed, "device": args.device,
    }  # fmt: skip
    return out + [f"{k}={v}" for k, v in pairs.items() if v is not None]


def run(args: argparse.Namespace) -> int:
    """Runs ``r2u unlearn``."""
    if args.method == "sisa":
        return run_sisa(args)
    cfg, preset = load_unlearn_config(args.config, overrides_from_flags(args) + list(args.overrides), args.method)
    requests = [DeletionRequest.parse(r) for r in args.request]
    console.print(f"[bold]unlearn[/bold] {esc(args.checkpoint)}  method={esc(cfg.method.name)}  "
                  f"preset={esc(preset or 'none')}", soft_wrap=True)  # fmt: skip

    served: list[DeletionRequest] = []

    # Called by the recipe after each request, inside the `with` block below that binds `tracker`.
    def log(req: DeletionRequest, views: Any, res: Any, before: dict, after: dict, out: Path) -> None:
        served.append(req)
        track_request(tracker, len(served), len(requests), res, after, out)
        sizes = views.sizes()
        console.print(f"  request {esc(req.describe())}: forget {sizes['forget']}, retain {sizes['retain']} samples")
        console.print(
            f"  stopped: {esc(res.stop_reason)} after {res.steps} steps, {res.grad_evals} gradient evaluations, "
            f"{res.seconds:.2f} s" + (f" (target {res.target:.4f})" if res.target is not None else "")
        )
        keep = ("forget_accuracy", "retain_accuracy", "test_accuracy", "test_retain_accuracy", "test_forget_accuracy")
        console.print(metrics_table(req.describe(), {
            "before": {k: v for k, v in before.items() if k in keep},
            "after": {k: v for k, v in after.items() if k in keep},
        }))  # fmt: skip
        console.print(f"  wrote {esc(out)}", soft_wrap=True)

    with track_run(args, "unlearn") as tracker:
        tracker.log_params({**to_dict(cfg), "preset": preset, "checkpoint": args.checkpoint,
                            "requests": [r.describe() for r in requests], "reference": args.reference})  # fmt: skip
        unlearn_recipe.run(args.checkpoint, requests, cfg, args.out, reference=args.reference,
                           data_dir=args.data_dir, show_progress=not args.quiet, log=log,
                           overwrite=args.overwrite)  # fmt: skip
    return 0


def track_request(tracker: Tracker, number: int, total: int, res: Any, after: dict, out: Path) -> None:
    """Records one served request: its unlearning curve, final metrics and stop result, and its card.

    With several requests every key is prefixed ``req-NN/``: each request's curve starts again at step 0.
    """
    prefix = f"req-{number:02d}/" if total > 1 else ""
    for row in res.curve:
        tracker.log_metrics({f"{prefix}{k}": v for k, v in row.items() if k != "step"}, step=int(row["step"]))
    stats = {"steps": res.steps, "grad_evals": res.grad_evals, "seconds": res.seconds, "reached": res.reached,
             "target": res.target, "restored": res.restored}  # fmt: skip
    tracker.log_summary({f"{prefix}{k}": v for k, v in {**after, **stats}.items()})
    tracker.log_artifact(out / "card.json", folder=prefix.rstrip("/") or None)


def run_sisa(args: argparse.Namespace) -> int:
    """``r2u unlearn --method sisa``: exact deletion from a SISA checkpoint by retraining the shards hit."""
    ignored = [flag for flag, value in (("--config", args.config), ("--reference", args.reference)) if value]
    if ignored or args.overrides:
        raise ConfigError(f"--method sisa retrains shards with the checkpoint's own training config; drop "
                          f"{', '.join(ignored + list(args.overrides))}")  # fmt: skip
    requests = [DeletionRequest.parse(r) for r in args.request]
    console.print(f"[bold]unlearn[/bold] {esc(args.checkpoint)}  method=sisa (exact)", soft_wrap=True)

    def log(req: DeletionRequest, views: Any, done: dict, before: dict, after: dict, out: Path) -> None:
        stages = f"{done['stages']} slice stages, {done['seconds']:.2f} s"
        console.print(f"  request {esc(req.describe())}: forget {views.sizes()['forget']} samples; "
                      f"{esc(done['exact_text'])} ({stages})")  # fmt: skip
        keep = ("forget_accuracy", "retain_accuracy", "test_accuracy")
        table = {"before": {k: v for k, v in before.items() if k in keep},
                 "after": {k: v for k, v in after.items() if k in keep}}  # fmt: skip
        console.print(metrics_table(req.describe(), table))
        console.print(f"  wrote {esc(out)}", soft_wrap=True)

    with track_run(args, "unlearn") as tracker:
        tracker.log_params({"method": "sisa", "checkpoint": args.checkpoint,
                            "requests": [r.describe() for r in requests]})  # fmt: skip
        sisa_recipe.unlearn(args.checkpoint, requests, args.out, data_dir=args.data_dir,
                            device=args.device or "auto", show_progress=not args.quiet, overwrite=args.overwrite,
                            log=log)  # fmt: skip
    return 0
