"""``r2u ready-tune``: measure the readiness step size on a standard-trained model (the pilot before ``--ready``).

The inner step α of readiness training is the displacement the deployment unlearner needs to honour a
request (:mod:`ready2unlearn.readiness.calibrate`). This verb measures it on a model the user already
trained the standard way, from simulated requests drawn from the revocable set, and prints the
``ready.alpha=...`` override that makes ``r2u train --ready`` start readiness from the first epoch with that
value. It then scores one simulated step of that size on a few more simulated requests: where the step already
honours them, the readiness constraint is slack on this model and a ready run would idle
(:mod:`~ready2unlearn.readiness.preflight`). The measurement, the check and the resolved knobs are written to
``--out`` (JSON, atomically) when given.
"""

from __future__ import annotations

import argparse
import dataclasses

from ready2unlearn.artifacts import check_writable, now_iso, versions, write_json
from ready2unlearn.checkpoint import load_checkpoint
from ready2unlearn.cli.common import add_data_dir, console, esc
from ready2unlearn.cli.train import READY_FLAGS, ready_overrides
from ready2unlearn.config import apply_overrides, from_dict, to_dict
from ready2unlearn.errors import ConfigError
from ready2unlearn.readiness.calibrate import calibrate_alpha
from ready2unlearn.readiness.config import ReadyConfig
from ready2unlearn.readiness.preflight import MEASURED, constraint_preflight
from ready2unlearn.recipes.unlearn import load_matching_split


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers the ``ready-tune`` verb."""
    p = sub.add_parser(
        "ready-tune",
        help="measure readiness's step size on a standard-trained checkpoint (prints ready.alpha=...)",
        description="Run the deployment unlearner (ready.method, with its optimiser and lr) on simulated "
        "requests drawn from the revocable set of a standard-trained checkpoint, and report the step size "
        "alpha = alpha_factor × lr × median(steps) to train ready models of that architecture and data with.",
        epilog="example: r2u ready-tune --checkpoint runs/fashion --ready.revocable class:3,5,7 --out tune.json",
    )
    p.add_argument("overrides", nargs="*", metavar="ready.key=value", help="readiness overrides (ready.cap=...)")
    p.add_argument("--checkpoint", required=True, metavar="DIR", help="a model trained without readiness")
    for flag, kind, text in READY_FLAGS:
        if flag != "alpha":
            p.add_argument(f"--ready.{flag}", dest=f"ready_{flag}", type=kind, metavar=flag.upper(), help=text)
    p.add_argument("--requests", type=int, default=3, help="simulated requests to measure (median; default 3)")
    p.add_argument("--budget", type=int, default=500, help="step budget of each measurement run (default 500)")
    p.add_argument(
        "--probes",
        type=int,
        default=8,
        help="simulated requests the constraint check scores at the measured step (default 8)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", "-o", metavar="FILE", help="write the measurement and the knobs as JSON")
    add_data_dir(p)
    p.set_defaults(func=run, ready_alpha=None)


def run(args: argparse.Namespace) -> int:
    """Runs ``r2u ready-tune``."""
    if args.out:
        check_writable(args.out, kind="file")
    overrides = ready_overrides(args) + list(args.overrides)
    bad = [o for o in overrides if not o.startswith("ready.")]
    if bad:
        raise ConfigError(f"ready-tune takes readiness overrides only (ready.key=value), got {bad[0]!r}")
    data = apply_overrides({"ready": {}}, overrides)["ready"]
    cfg = from_dict(ReadyConfig, data, "ready.").resolved()
    ck = load_checkpoint(args.checkpoint)
    if (ck.card.get("config") or {}).get("ready"):
        console.print(f"note: {esc(args.checkpoint)} was trained with readiness; measure a standard model")
    split, _ = load_matching_split(ck.card, args.data_dir)
    cal = calibrate_alpha(ck.model, split.train, cfg, split.spec.num_classes, requests=args.requests,
                          budget=args.budget, seed=args.seed, heldout=split.val)  # fmt: skip
    tuned = dataclasses.replace(cfg, alpha=cal.alpha)
    reached = sum(cal.reached)
    console.print(f"{cfg.method.name} (lr {cfg.method.lr:g}, {cfg.method.optimizer}) honoured {reached}/"
                  f"{len(cal.steps)} simulated {cfg.kind} requests ({esc(cal.rule)}) in {cal.steps} steps")  # fmt: skip
    if reached < len(cal.steps):
        console.print("[yellow]warning:[/yellow] some runs used the whole budget: the step size is a lower bound")
    console.print(
        f"ready.alpha={cal.alpha:.4g}  (= {cal.factor:g} × {cfg.method.lr:g} × {cal.displacement / cfg.method.lr:g})"
    )
    pre = constraint_preflight(ck.model, split.train, tuned, split.spec.num_classes, probes=args.probes,
                               seed=args.seed, heldout=split.val)  # fmt: skip
    mean_after, n = sum(pre.forget_after) / len(pre.forget_after), len(pre.forget_after)
    console.print(f"one simulated step of that size already honours {pre.honoured}/{n} simulated requests "
                  f"(forget loss after it {mean_after:.3g} on average, cap {pre.cap:.3g}): λ's drift {pre.drift:+.2f}, "
                  f"{'slack' if pre.slack else 'binding'}; {MEASURED}")  # fmt: skip
    if pre.slack:
        console.print("[yellow]warning:[/yellow] the readiness constraint is slack on this model: λ would decay "
                      "and readiness would cost training time for nothing (the CIFAR-10 CNN's class run started "
                      "so and gave no speed-up). A smaller ready.alpha_factor or a higher ready.cap makes it "
                      "bind, which is necessary but was not enough on that model")  # fmt: skip
    if args.out:
        write_json(args.out, {"created": now_iso(), "checkpoint": str(args.checkpoint),
                              "weights_sha256": ck.card.get("weights_sha256"), "calibration": cal.to_dict(),
                              "preflight": pre.to_dict(), "ready": to_dict(tuned), "versions": versions()})  # fmt: skip
        console.print(f"  {esc(args.out)}", soft_wrap=True)
    return 0
