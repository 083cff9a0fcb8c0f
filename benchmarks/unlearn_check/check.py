"""Runs every registered unlearning method through the real CLI on a checkpoint, for a class and a 1% random request.

For each request it first retrains the gold model (``r2u unlearn --method retrain``), then runs every other
method with ``--stop forget_acc:reference --reference <retrained> --budget N`` and collects the cards into
``results.json`` and ``README.md``. Re-run with:

    python benchmarks/unlearn_check/check.py --checkpoint runs/digits --out benchmarks/unlearn_check/digits \
        --work runs/unlearn_check/digits

(train the checkpoint first, e.g. ``r2u train --dataset digits --model mlp --epochs 20 --out runs/digits``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from ready2unlearn.artifacts import versions, write_json
from ready2unlearn.unlearn import METHODS

REQUESTS = ["class:3", "random:0.01"]


def r2u(*args: str) -> None:
    """Runs the ``r2u`` CLI in a subprocess (exactly what a user types), failing loudly."""
    cmd = [sys.executable, "-m", "ready2unlearn.cli.main", *args, "-q"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr}")


def main() -> None:
    """Runs the check and writes the results."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True, help="where results.json and README.md go")
    p.add_argument("--work", default="runs/unlearn_check", help="where the unlearned checkpoints go (not committed)")
    p.add_argument("--budget", type=int, default=500)
    p.add_argument("--eval-every", type=int, default=5)
    args = p.parse_args()
    out = Path(args.out)
    rows = []
    for request in REQUESTS:
        tag = request.replace(":", "-")
        ref = Path(args.work) / tag / "retrain"
        if not (ref / "card.json").exists():
            r2u(
                "unlearn",
                "--checkpoint",
                args.checkpoint,
                "--request",
                request,
                "--method",
                "retrain",
                "--out",
                str(ref),
                "--overwrite",  # only reached when no finished card is there: replace a crashed attempt
            )
        ref_card = json.loads((ref / "card.json").read_text())
        for name in METHODS.names():
            d = Path(args.work) / tag / name
            if name != "retrain" and not (d / "card.json").exists():
                r2u("unlearn", "--checkpoint", args.checkpoint, "--request", request, "--method", name,
                    "--stop", "forget_acc:reference", "--reference", str(ref), "--budget", str(args.budget),
                    "--eval-every", str(args.eval_every), "--out", str(d), "--overwrite")  # fmt: skip
            card = json.loads((d / "card.json").read_text())
            res, m = card["unlearn"]["result"], card["metrics"]
            rows.append({
                "request": request, "method": name, "stop_reason": res["stop_reason"], "reached": res["reached"],
                "steps": res["steps"], "grad_evals": res["grad_evals"], "seconds": res["seconds"],
                "forget_accuracy": m["forget_accuracy"], "retain_accuracy": m["retain_accuracy"],
                "test_accuracy": m["test_accuracy"], "target": res["target"],
                "reference_forget_accuracy": ref_card["metrics"]["forget_accuracy"],
                "parent_sha256": card["lineage"]["parent_sha256"],
            })  # fmt: skip
            accs = f"UA {m['forget_accuracy']:.3f}  RA {m['retain_accuracy']:.3f}  TA {m['test_accuracy']:.3f}"
            print(f"{request:>12} {name:>13}: {res['stop_reason']:<20} steps {res['steps']:>4}  {accs}", flush=True)
    write_json(out / "results.json", {"checkpoint": args.checkpoint, "budget": args.budget, "versions": versions(),
                                      "rows": rows})  # fmt: skip
    lines = [
        f"# Every method from the CLI on `{args.checkpoint}`",
        "",
        f"`python benchmarks/unlearn_check/check.py --checkpoint {args.checkpoint} --out {args.out}`; "
        f"stop rule `forget_acc:reference` (the retrained model's forget accuracy), budget {args.budget} steps.",
        "",
        "| request | method | stop reason | steps | UA | RA | TA | retrained UA |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cells = [r["request"], r["method"], r["stop_reason"], str(r["steps"])]
        cells += [f"{r[k]:.4f}" for k in ("forget_accuracy", "retain_accuracy", "test_accuracy",
                                          "reference_forget_accuracy")]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    (out / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
