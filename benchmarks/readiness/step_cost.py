"""What readiness costs to train, model by model and schedule by schedule (issue 12).

Run: ``python benchmarks/readiness/step_cost.py [--models digits fashion cifar10 tabular] [--blocks 6]``.

For each model it trains the model a ready run measures α on: the training preset's own :func:`fit` for a
quarter of its epochs (``until_epoch``, the LR schedule spanning the whole run), where ``alpha=auto`` is
measured. On that model it

- measures α for class requests with ``ready.calibration=full`` and ``fast``, timed (CPU time);
- runs the training-cost probe (:func:`ready2unlearn.readiness.timing.measure_training_cost`, the probe the
  readiness matrix reports) for every schedule in :data:`CONFIGS`: blocks of plain steps and of steps that run
  the readiness term alternate on copies of the model, in CPU time, so other jobs on the machine hit neither;
  the whole-run ratio adds the readiness steps of epochs ``epochs/4`` to ``epochs`` and one α measurement
  (full, or fast);
- records the memory of one plain step and one step with the term: the peak each allocates, and the
  bytes autograd saves (an upper bound, kept for comparison with earlier tables).

Writes ``step_cost/results.json`` (with versions and the resolved configs) and ``step_cost/README.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
from pathlib import Path
from typing import Any

import torch

from ready2unlearn.artifacts import atomic_write, versions, write_json
from ready2unlearn.config import from_dict, to_dict
from ready2unlearn.engine.fit import fit
from ready2unlearn.readiness import ReadinessObjective, ReadyConfig
from ready2unlearn.readiness.calibrate import calibrate_alpha
from ready2unlearn.readiness.cost import step_memory
from ready2unlearn.readiness.timing import measure_training_cost
from ready2unlearn.task import ClassificationTask

HERE = Path(__file__).resolve().parent / "step_cost"
sys.path.insert(0, str(HERE.parent))
import tabular  # noqa: E402  (the tabular task's data and user-defined model)
from calibration_cost import warm_model  # noqa: E402  (the model a ready run measures α on)

#: model → (training preset, or ``tabular`` for the user-defined BatchNorm net; revocable classes; deployment lr).
MODELS: dict[str, tuple[str, str, float]] = {
    "digits": ("digits-mlp", "class:3,5,7", 3e-4),
    "fashion": ("fashion_mnist-cnn", "class:0,2,4", 1e-3),
    "cifar10": ("cifar10-cnn", "class:3,5", 1e-3),
    "tabular": ("tabular", "class:1,3", 3e-4),
}
#: Readiness schedules compared: the shipped class default and cheaper ones.
CONFIGS: dict[str, dict[str, Any]] = {
    "shipped (every 2nd step, batches of 64)": {},
    "every 2nd step, batches of 32": {"forget_size": 32},
    "every 2nd step, batches of 16": {"forget_size": 16},
    "every 4th step, batches of 32": {"meta_every": 4, "forget_size": 32},
}


def _warm(name: str, seed: int):
    """``(model, train set, classes, train config)`` where readiness would start (after a quarter of the epochs)."""
    preset = MODELS[name][0]
    if preset != "tabular":
        model, split, cfg = warm_model(preset, [], None, seed)
        return model, split.train, split.spec.num_classes, cfg
    train, _ = tabular.tabular_data()
    cfg = tabular.train_cfg(seed)
    torch.manual_seed(seed)
    model = tabular.TabularNet()
    fit(model, train, None, cfg, show_progress=False, until_epoch=ReadyConfig().for_epochs(cfg.epochs).start_epoch)
    return model, train, tabular.CLASSES, cfg


def measure(name: str, blocks: int, steps: int, seed: int = 0) -> dict[str, Any]:
    """α measurement (full and fast) and the training-cost probe of every schedule, on one model."""
    model, train, classes, cfg = _warm(name, seed)
    _, revocable, lr = MODELS[name]
    base = {"kind": "class", "revocable": revocable, "method": {"name": "ga", "lr": lr}, "alpha": "auto"}
    cals = {mode: calibrate_alpha(model, train, from_dict(ReadyConfig, {**base, "calibration": mode}), classes,
                                  seed=seed)
            for mode in ("full", "fast")}  # fmt: skip
    rows: dict[str, Any] = {}
    for key, knobs in CONFIGS.items():
        rcfg = from_dict(ReadyConfig, {**base, **knobs})
        cost = measure_training_cost(model, train, rcfg, classes, epochs=cfg.epochs, batch_size=cfg.batch_size,
                                     optim=cfg.optim, seed=seed, blocks=blocks, steps=steps,
                                     calibration=cals["full"])  # fmt: skip
        fast = dataclasses.replace(cost, calibration=float(cals["fast"].seconds or 0.0))
        rows[key] = {"full": cost.to_dict(), "fast": fast.to_dict(), "config": to_dict(rcfg)}
    # One readiness step's memory vs one plain step's (shipped schedule, the measured α).
    task = ClassificationTask(classes)
    shipped = from_dict(ReadyConfig, {**base, "alpha": cals["full"].alpha})
    objective = ReadinessObjective(shipped.for_epochs(cfg.epochs), train, classes, seed)
    x, y = train.x[: cfg.batch_size].clone(), train.y[: cfg.batch_size].clone()  # a slice would count all of x
    model.train()
    memory = step_memory(
        model,
        {
            "standard": lambda: task.loss(model, x, y),
            "ready": lambda: task.loss(model, x, y) + objective(model, 0, cfg.epochs - 1)[0],
        },
    )
    return {
        "model": name, "seed": seed, "train_size": len(train), "batch_size": cfg.batch_size, "epochs": cfg.epochs,
        "calibration": {mode: c.to_dict() for mode, c in cals.items()}, "configs": rows,
        "autograd_bytes": memory["saved"], "peak_bytes": memory["peak"],
    }  # fmt: skip


def report(results: list[dict[str, Any]]) -> str:
    lines = ["# Readiness training cost, model by model", "",
             "Generated by `python benchmarks/readiness/step_cost.py` (see its docstring); one seed, CPU time, "
             "measured on the model a ready run measures α on (after a quarter of its epochs). *Step* = a step "
             "with the readiness term / a plain step (median of the interleaved blocks). *Training* = the whole "
             "run, ready / standard: readiness steps from epoch ⌊epochs/4⌋ on plus one α measurement, `full` or "
             "`fast`. Target: training ≤ 1.5×.", "",
             "| model | schedule | step | readiness steps (× standard training) | α measurement full / fast | "
             "training, α full | training, α fast | step peak plain → ready | autograd saved plain → ready |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        memory = " | ".join(_plain_to_ready(r.get(k)) for k in ("peak_bytes", "autograd_bytes"))
        for key, row in r["configs"].items():
            full, fast = row["full"], row["fast"]
            lines.append(f"| {r['model']} | {key} | {full['step_ratio']:.2f} | {full['steps_share']:.2f} | "
                         f"{full['calibration_share']:.2f} / {fast['calibration_share']:.2f} | {full['ratio']:.2f}× | "
                         f"{fast['ratio']:.2f}× | {memory} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def _plain_to_ready(mem: dict[str, int | None] | None) -> str:
    if not mem or mem.get("standard") is None or mem.get("ready") is None:
        return "not measured"  # results from before the peak was recorded
    return f"{mem['standard'] / 1e6:.2f} → {mem['ready'] / 1e6:.2f} MB"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    p.add_argument("--blocks", type=int, default=6)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=HERE, help="folder for results.json and README.md")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = [measure(m, args.blocks, args.steps, args.seed) for m in args.models]
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"versions": versions(), "python": platform.python_version(), "threads": args.threads,
            "argv": argv if argv is not None else sys.argv[1:]}  # fmt: skip
    write_json(args.out / "results.json", {"meta": meta, "results": results})
    text = report(results)
    atomic_write(args.out / "README.md", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
