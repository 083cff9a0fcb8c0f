"""What readiness costs to fine-tune a language model, former and current group defaults side by side (issue 13).

Run: ``python benchmarks/tofu/step_cost.py [--preset tofu-smollm2-forget01] [--blocks 4] [--steps 3]``.

The TOFU bench's training-time column divides the wall-clock of a ready and a standard fine-tune made in
different runs, often under different loads, so it is no timing claim. This probe is
(:func:`ready2unlearn.readiness.timing.measure_training_cost`, the probe of the vision matrix): on the preset's
LoRA model and training rows it alternates blocks of plain fine-tuning steps with blocks of steps that also run
the readiness term, on copies of the model, in this process's CPU time (other jobs on the machine hit
neither). The whole-run ratio counts the readiness steps as the preset's run takes them (every ``meta_every``-th
of its epochs × steps). α is given for group requests, so no α measurement is added; measuring the cap on the
held-out rows (one forward pass over at most 256 rows per epoch) is not timed. It also records the peak memory one
plain step and one step with the term allocate, the process's peak resident memory after the timed steps and,
unless ``--no-autograd-memory`` (needed for SmolLM2 on a 23 GB machine), the saved-tensor upper bound on the
autograd memory of the two steps.

Writes ``step_cost/results.json`` (with versions and the resolved configs) and ``step_cost/README.md`` beside
this script.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from ready2unlearn.artifacts import atomic_write, versions, write_json
from ready2unlearn.config import to_dict
from ready2unlearn.readiness import ReadinessObjective
from ready2unlearn.readiness.cost import step_memory
from ready2unlearn.readiness.timing import measure_training_cost
from ready2unlearn.recipes.lm_bench import LMBenchRunner, load_lm_bench_config

HERE = Path(__file__).resolve().parent / "step_cost"

#: Readiness settings compared, as overrides of the preset: the group defaults before and after 2026-12-05.
SHAPES: dict[str, list[str]] = {
    "former group defaults (cap 1 nat, fixed λ, second order)": [
        "ready.cap=1",
        "ready.dual=false",
        "ready.first_order=false",
    ],
    "group defaults (measured cap, dual λ, first order)": [],
}


def measure_shape(preset: str, overrides: list[str], blocks: int, steps: int, seed: int = 0,
                  autograd_memory: bool = True) -> dict[str, Any]:  # fmt: skip
    """The training-cost probe and one step's memory of one readiness setting on the preset's model.

    ``peak_bytes`` is the most one plain step and one step with the term allocate at any moment (loss, backward
    and gradients; :func:`~ready2unlearn.readiness.cost.peak_allocated_bytes`). ``peak_rss_bytes`` is the
    process's peak resident memory once the timed steps are done (Linux/macOS; the peak so far, so with several
    shapes it covers the earlier ones too). ``autograd_memory=False`` skips the saved-tensor count: it keeps
    every tensor autograd saves alive until the step ends, an upper bound that on SmolLM2 with the readiness
    term passed the 23 GB of the 2-core machine (the timed steps themselves peaked at 7 GB).
    """
    cfg, path = load_lm_bench_config(preset, overrides)
    with tempfile.TemporaryDirectory() as tmp:  # only the runner's data and model builders are used
        runner = LMBenchRunner(cfg, tmp, Path(path).stem, False)
        data = runner.load_data()
    model, task, tcfg = runner.build(data, seed), runner.task, cfg.train
    train = data.train.to(runner.device)
    heldout = None if data.heldout is None else data.heldout.to(runner.device)
    cost = measure_training_cost(model, train, cfg.ready, 0, epochs=tcfg.epochs, batch_size=tcfg.batch_size,
                                 optim=tcfg.optim, seed=seed, blocks=blocks, steps=steps, task=task,
                                 heldout=heldout)  # fmt: skip
    peak = peak_rss_bytes()
    objective = ReadinessObjective(cfg.ready, train, 0, seed, task=task, heldout=heldout)
    x, y = train.x[: tcfg.batch_size].clone(), train.y[: tcfg.batch_size].clone()
    model.train()
    memory = step_memory(model, {"standard": lambda: task.loss(model, x, y),
                                 "ready": lambda: task.loss(model, x, y) + objective(model, 0, 0)[0]},
                         runner.device, saved=autograd_memory)  # fmt: skip
    return {"cost": cost.to_dict(), "ready": to_dict(cfg.ready), "autograd_bytes": memory["saved"],
            "peak_bytes": memory["peak"], "peak_rss_bytes": peak,
            "train_rows": len(train), "batch_size": tcfg.batch_size, "epochs": tcfg.epochs}  # fmt: skip


def peak_rss_bytes() -> int | None:
    """This process's peak resident memory in bytes, or ``None`` where :mod:`resource` is missing (Windows)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, KiB on Linux


def measure(preset: str, overrides: list[str], blocks: int, steps: int, seed: int = 0,
            shapes: list[int] | None = None, autograd_memory: bool = True) -> list[dict[str, Any]]:  # fmt: skip
    """:func:`measure_shape` for the shapes of :data:`SHAPES` named by their position in it (default: all)."""
    names = [name for i, name in enumerate(SHAPES) if shapes is None or i in shapes]
    return [{"shape": name, "overrides": SHAPES[name],
             **measure_shape(preset, [*overrides, *SHAPES[name]], blocks, steps, seed, autograd_memory)}
            for name in names]  # fmt: skip


def report(preset: str, rows: list[dict[str, Any]], blocks: int, steps: int) -> str:
    """The Markdown table of :func:`measure`'s rows."""
    lines = [f"# Readiness fine-tuning cost: `{preset}`", "",
             f"Generated by `python benchmarks/tofu/step_cost.py` (see its docstring): one seed, CPU time, {blocks} "
             f"interleaved blocks of {steps} steps per kind. *Step* = a step with the readiness term / a plain "
             "step (medians). *Training* = the whole fine-tune, ready / standard, the term on every `meta_every`-th "
             "step. Target for language models: training ≤ 2×.", "",
             "| readiness | plain step (s) | step with the term (s) | step | training | step peak plain → ready | "
             "autograd saved plain → ready | process peak RSS |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        c, rss = r["cost"], r.get("peak_rss_bytes")
        rss_text = "n/a" if rss is None else f"{rss / 1e9:.1f} GB"
        lines.append(f"| {r['shape']} | {c['plain_step']:.2f} | {c['ready_step']:.2f} | {c['step_ratio']:.2f}× | "
                     f"{c['ratio']:.2f}× | {_plain_to_ready(r.get('peak_bytes'))} | "
                     f"{_plain_to_ready(r['autograd_bytes'])} | {rss_text} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def _plain_to_ready(mem: dict[str, int | None] | None) -> str:
    if not mem or mem.get("standard") is None or mem.get("ready") is None:
        return "not measured"
    return f"{mem['standard'] / 1e6:.0f} → {mem['ready'] / 1e6:.0f} MB"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="tofu-smollm2-forget01")
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--shapes",
        type=int,
        nargs="+",
        help="positions in SHAPES to measure (default: all; the "
        "second-order one holds about 10 GB on SmolLM2, so it may need a quiet machine)",
    )
    p.add_argument("--no-autograd-memory", action="store_true",
                   help="skip the saved-tensor upper bound (on SmolLM2 it needs more than 23 GB); the steps' peak "
                   "allocation and the peak RSS of the timed steps are still recorded")  # fmt: skip
    p.add_argument("--out", type=Path, default=HERE, help="folder for results.json and README.md")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the preset (e.g. for a small test run)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = measure(args.preset, args.overrides, args.blocks, args.steps, args.seed, args.shapes,
                   not args.no_autograd_memory)  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"preset": args.preset, "versions": versions(), "python": platform.python_version(),
            "threads": args.threads, "argv": argv if argv is not None else sys.argv[1:]}  # fmt: skip
    write_json(args.out / "results.json", {"meta": meta, "results": rows})
    text = report(args.preset, rows, args.blocks, args.steps)
    atomic_write(args.out / "README.md", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
