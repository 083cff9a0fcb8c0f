"""What the α measurement costs, full vs fast, and the training cost it adds up to (issue 12).

Run: ``python benchmarks/readiness/calibration_cost.py [--seeds 0 1 2] [--out benchmarks/readiness/calibration_cost]``.

Per model (the digits MLP after 5 of its 20 epochs; the MNIST CNN on its 10k subset after 1 of its 4 epochs,
i.e. where ``alpha=auto`` measures α in a ready run) and seed, it trains the model that far, then

- measures α for class and random requests with ``ready.calibration=full`` and ``fast`` on that same model,
  recording α, the simulated runs' steps and the measurement's CPU time (``Calibration.seconds``);
- for MNIST, runs the training-cost probe (:func:`ready2unlearn.readiness.timing.measure_training_cost`) with the
  shipped defaults, with ``calibration=fast`` and with ``fast`` plus ``meta_every=4``.

Writes ``results.json`` (with versions) and ``README.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any

import torch

from ready2unlearn.artifacts import atomic_write, versions, write_json
from ready2unlearn.data.registry import load_split
from ready2unlearn.engine.fit import fit
from ready2unlearn.engine.method import method_config
from ready2unlearn.models.registry import build_model
from ready2unlearn.readiness import ReadyConfig
from ready2unlearn.readiness.calibrate import calibrate_alpha
from ready2unlearn.readiness.timing import measure_training_cost
from ready2unlearn.recipes.train import load_config
from ready2unlearn.runtime import seed_everything
from ready2unlearn.task import ClassificationTask

HERE = Path(__file__).resolve().parent / "calibration_cost"
#: model → (training preset, overrides, epochs trained before measuring, total epochs of the run).
MODELS = {
    "digits": ("digits-mlp", [], 5, 20),
    "mnist": ("mnist-cnn", ["data.train_subset=10000", "epochs=4"], 1, 4),
}
#: kind → (revocable set, deployment lr): the readiness matrix's settings.
KINDS = {"class": ("class:3,5,7", 3e-4), "random": ("random:0.1@7", 1e-3)}
PROBES = {"shipped defaults": {}, "calibration=fast": {"calibration": "fast"},
          "calibration=fast, meta_every=4": {"calibration": "fast", "meta_every": 4}}  # fmt: skip


class _ReadinessStarts(Exception):
    """Raised by :func:`_warm_model`'s hook at the first step of the epoch where readiness would start."""


def _warm_model(preset: str, overrides: list[str], epochs: int, seed: int):
    """The model a ready run of ``preset`` measures α on: trained by :func:`fit` with the run's own config.

    The run's whole config (its optimiser, LR schedule over all of its epochs, batch size, seed) drives
    :func:`fit`, and a regularizer hook stops it at the first step of epoch ``epochs`` — the step where a ready
    run's objective calls ``alpha=auto``'s measurement. A shorter ``fit`` would decay a cosine schedule over
    ``epochs`` instead of the whole run and measure α on another model.
    """
    cfg, _ = load_config(preset, [*overrides, f"seed={seed}"])
    split = load_split(cfg.data)
    seed_everything(cfg.seed)  # initialisation under the run's seed, as `r2u train` builds it
    model = build_model(cfg.model, split.spec)

    def stop_when_readiness_starts(_model: torch.nn.Module, _step: int, epoch: int):
        if epoch >= epochs:
            raise _ReadinessStarts
        return None, {}

    # Same order as in a ready run: the step's task forward runs, then the hook where α would be measured.
    with contextlib.suppress(_ReadinessStarts):
        fit(model, split.train, None, cfg, show_progress=False, regularizer=stop_when_readiness_starts,
            task=ClassificationTask(split.spec.num_classes))  # fmt: skip
    return model, split, cfg


def _ready(kind: str, **extra: Any) -> ReadyConfig:
    revocable, lr = KINDS[kind]
    return ReadyConfig(kind=kind, revocable=revocable, method=method_config({"name": "ga", "lr": lr}), **extra)


def measure(name: str, seed: int) -> dict[str, Any]:
    preset, overrides, warm, epochs = MODELS[name]
    model, split, cfg = _warm_model(preset, overrides, warm, seed)
    classes = split.spec.num_classes
    out: dict[str, Any] = {"model": name, "seed": seed, "trained_epochs": warm, "calibration": {}, "probe": {}}
    for kind in KINDS:
        cals = {mode: calibrate_alpha(model, split.train, _ready(kind, calibration=mode), classes, seed=seed)
                for mode in ("full", "fast")}  # fmt: skip
        out["calibration"][kind] = {mode: c.to_dict() for mode, c in cals.items()}
        if name == "mnist":
            out["probe"][kind] = {
                label: measure_training_cost(model, split.train, _ready(kind, **extra), classes, epochs=epochs,
                                             batch_size=cfg.batch_size, optim=cfg.optim, seed=seed).to_dict()
                for label, extra in PROBES.items()
            }  # fmt: skip
    return out


def report(results: list[dict[str, Any]]) -> str:
    lines = ["# The α measurement: full vs fast", "",
             "Generated by `python benchmarks/readiness/calibration_cost.py` (see its docstring). α and CPU time of "
             "the measurement on the same model and seed; the ratios are fast / full.", "",
             "| model | seed | kind | α full | α fast | α fast / full | steps full | steps fast | CPU s full | "
             "CPU s fast | cost fast / full |", "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        for kind, c in r["calibration"].items():
            full, fast = c["full"], c["fast"]
            lines.append(f"| {r['model']} | {r['seed']} | {kind} | {full['alpha']:.4g} | {fast['alpha']:.4g} | "
                         f"{fast['alpha'] / full['alpha']:.3f} | {full['steps']} | {fast['steps']} | "
                         f"{full['seconds']:.2f} | {fast['seconds']:.2f} | "
                         f"{fast['seconds'] / full['seconds']:.2f} |")  # fmt: skip
    lines += ["", "## Training cost on the MNIST CNN (probe, × standard training)", "",
              "| seed | kind | setting | step with the term / plain | readiness steps | α measurement | total |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        for kind, probes in r["probe"].items():
            for label, p in probes.items():
                lines.append(f"| {r['seed']} | {kind} | {label} | {p['step_ratio']:.2f} | {p['steps_share']:.2f} | "
                             f"{p['calibration_share']:.2f} | {p['ratio']:.2f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    p.add_argument("--out", type=Path, default=HERE)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    results = [measure(m, s) for m in args.models for s in args.seeds]
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "results.json", {"versions": versions(), "argv": argv if argv is not None else sys.argv[1:],
                                           "results": results})  # fmt: skip
    text = report(results)
    atomic_write(args.out / "README.md", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
