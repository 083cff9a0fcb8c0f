"""What readiness costs per training step, measured side by side: standard and ready steps interleaved.

Run: ``python benchmarks/readiness/step_cost.py [--models digits fashion cifar10 tabular] [--blocks 8]``.

Whole-run wall-clock ratios from the readiness matrix are noise on a shared 2-core machine (one digits
model trains in 1-2 s). This measures the cost where it arises, in one process: for each model, blocks of
``--steps`` standard training steps and the same number of ready steps alternate (same model state, same
batches, Adam as in training), so machine load hits both alike. A ready step is the task loss plus the
readiness objective (class requests, shipped defaults, α fixed so the one-off measurement of ``alpha=auto``
is timed separately) with ``meta_every`` as configured, so a block's time includes the steps without the
term. Reported per config: the ready/standard ratio (geometric mean of the block pairs, 95% interval),
the whole-training ratio it implies with readiness starting after a quarter of the epochs and the α
measurement added, and the autograd memory of one standard and one readiness step.

Writes ``step_cost/results.json`` (with versions and the resolved configs) and ``step_cost/README.md``.

This is the exploration of cheaper schedules across models (one seed, wall-clock, on a barely trained model).
The training-cost *target* of the readiness matrix is judged on the bench's own probe instead
(:mod:`ready2unlearn.readiness.timing`: per seed and group, on that seed's trained standard model, in CPU
time, with the α measurement timed on the same model).
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ready2unlearn.artifacts import versions, write_json
from ready2unlearn.config import from_dict, to_dict
from ready2unlearn.data.registry import DataConfig, load_split
from ready2unlearn.models.registry import build_model
from ready2unlearn.readiness import ReadinessObjective, ReadyConfig
from ready2unlearn.readiness.calibrate import calibrate_alpha
from ready2unlearn.readiness.cost import saved_tensor_bytes
from ready2unlearn.report.stats import censored_ratio, paired_ratio
from ready2unlearn.task import ClassificationTask

HERE = Path(__file__).resolve().parent / "step_cost"
sys.path.insert(0, str(HERE.parent))
import tabular  # noqa: E402  (the tabular task's data and user-defined model)

#: model → (dataset, model config, batch size, epochs, revocable classes, deployment lr): the training presets.
MODELS: dict[str, tuple[str, dict[str, Any], int, int, str, float]] = {
    "digits": ("digits", {"name": "mlp", "hidden": [256, 256], "dropout": 0.1}, 64, 20, "class:3,5,7", 3e-4),
    "fashion": ("fashion_mnist", {"name": "cnn", "channels": [16, 32], "hidden": 128, "dropout": 0.25}, 128, 8,
                "class:0,2,4", 1e-3),
    "cifar10": ("cifar10", {"name": "cnn", "channels": [16, 32, 64], "convs": 2, "hidden": 128, "dropout": 0.25,
                            "batch_norm": True}, 128, 8, "class:3,5", 1e-3),
    "tabular": ("tabular", {}, 64, 20, "class:1,3", 3e-4),
}  # fmt: skip
#: Readiness configs compared: the shipped class default and cheaper schedules.
CONFIGS: dict[str, dict[str, Any]] = {
    "default (every 2nd step, batches of 64)": {},
    "every 2nd step, batches of 32": {"forget_size": 32},
    "every 2nd step, batches of 16": {"forget_size": 16},
    "every 4th step, batches of 32": {"meta_every": 4, "forget_size": 32},
}


def _setup(name: str, seed: int):
    data, mcfg, batch, epochs, revocable, lr = MODELS[name]
    torch.manual_seed(seed)
    if name == "tabular":
        train, _ = tabular.tabular_data()
        model, classes = tabular.TabularNet(), tabular.CLASSES
    else:
        split = load_split(DataConfig(name=data))
        train, classes = split.train, split.spec.num_classes
        model = build_model(mcfg, split.spec)
    return model, train, classes, batch, epochs, revocable, lr


def _step(model, opt, task, x, y, objective, step):
    opt.zero_grad(set_to_none=True)
    loss = task.loss(model, x, y)
    if objective is not None:
        extra, _ = objective(model, step, 1)
        if extra is not None:
            loss = loss + extra
    loss.backward()
    opt.step()


def measure(name: str, blocks: int, steps: int, seed: int = 0) -> dict[str, Any]:
    """Interleaved timing of every config against standard steps on one model."""
    model, train, classes, bs, epochs, revocable, lr = _setup(name, seed)
    task = ClassificationTask(classes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    batches = [b for _, b in zip(range(steps), train.batches(bs, shuffle=True, generator=gen), strict=False)]
    model.train()
    for x, y in batches[:3]:  # warm-up: first-call costs (lazy imports, allocator) go to nobody
        _step(model, opt, task, x, y, None, 0)
    base = {"kind": "class", "revocable": revocable, "method": {"name": "ga", "lr": lr}, "alpha": 0.05}
    objectives = {k: ReadinessObjective(from_dict(ReadyConfig, {**base, **v}), train, classes, seed)
                  for k, v in CONFIGS.items()}  # fmt: skip
    for obj in objectives.values():
        _step(model, opt, task, *batches[0], obj, 0)
    times: dict[str, list[float]] = {"standard": [], **{k: [] for k in CONFIGS}}
    for _ in range(blocks):
        for key in times:
            obj = objectives.get(key)
            t0 = time.perf_counter()
            for i, (x, y) in enumerate(batches):
                _step(model, opt, task, x, y, obj, i)
            times[key].append(time.perf_counter() - t0)
    # One readiness step's autograd memory vs one standard step's.
    x, y = batches[0]
    std_mem = saved_tensor_bytes(lambda: task.loss(model, x, y))
    obj = objectives["default (every 2nd step, batches of 64)"]
    ready_mem = saved_tensor_bytes(lambda: task.loss(model, x, y) + obj(model, 0, 1)[0])
    # The one-off α measurement (alpha=auto), in units of one standard epoch.
    steps_per_epoch = math.ceil(len(train) / bs)
    epoch_seconds = sum(times["standard"]) / (blocks * steps) * steps_per_epoch
    t0 = time.perf_counter()
    cal = calibrate_alpha(model, train, from_dict(ReadyConfig, {**base, "alpha": "auto"}), classes, seed=seed)
    cal_epochs = (time.perf_counter() - t0) / epoch_seconds
    start = max(1, epochs // 4)
    rows = {}
    for key in CONFIGS:
        ratios = [censored_ratio(round(r * 1e6), True, round(s * 1e6), True)
                  for r, s in zip(times[key], times["standard"], strict=True)]  # fmt: skip
        step_ratio = paired_ratio(ratios, "<=", 1.5)
        whole = (start + (epochs - start) * step_ratio["mean"] + cal_epochs) / epochs
        rows[key] = {"step_ratio": step_ratio, "training_ratio": whole, "config": to_dict(objectives[key].cfg)}
    return {
        "model": name, "train_size": len(train), "batch_size": bs, "epochs": epochs, "start_epoch": start,
        "blocks": blocks, "steps_per_block": steps, "seconds": times, "configs": rows,
        "autograd_bytes": {"standard": std_mem, "ready": ready_mem}, "calibration_epochs": cal_epochs,
        "calibration_steps": cal.steps,
    }  # fmt: skip


def report(results: list[dict[str, Any]]) -> str:
    lines = ["# Readiness cost per training step", "",
             "Generated by `python benchmarks/readiness/step_cost.py` (see its docstring). Standard and ready "
             "steps interleaved in blocks in one process; ratio = geometric mean over block pairs [95% CI]. "
             "*Training* = the whole-run ratio implied: readiness from epoch ⌊epochs/4⌋ on, plus the one-off "
             "measurement of `alpha=auto` (in standard epochs). Target: training ≤ 1.5×.", "",
             "| model | config | ready / standard step time | training (implied) | α measurement (epochs) | "
             "autograd memory std → ready |", "|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        mem = r["autograd_bytes"]
        for key, row in r["configs"].items():
            memory = f"{mem['standard'] / 1e6:.2f} → {mem['ready'] / 1e6:.2f} MB"
            lines.append(f"| {r['model']} | {key} | {row['step_ratio']['text']} | {row['training_ratio']:.2f}× | "
                         f"{r['calibration_epochs']:.2f} | {memory} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    p.add_argument("--blocks", type=int, default=6)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=HERE, help="folder for results.json and README.md")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = [measure(m, args.blocks, args.steps) for m in args.models]
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"versions": versions(), "python": platform.python_version(), "threads": args.threads,
            "argv": argv if argv is not None else sys.argv[1:]}  # fmt: skip
    write_json(args.out / "results.json", {"meta": meta, "results": results})
    text = report(results)
    (args.out / "README.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
