"""Run one seed of a TOFU bench as two processes, and merge seeds from separate folders into one report.

Part: ``python benchmarks/tofu/split_seed.py part --run runs/smol05-s1 --seed 1 -o tofu.forget=forget05
model:ready cells:ready`` (and, on the other core, ``model:standard model:retrained cells:standard``).

Merge: ``python benchmarks/tofu/split_seed.py merge --out DIR --base seed0-report/results.json 0=FOLDER
1=FOLDER 2=FOLDER``.

Why: ``r2u bench`` runs one seed's models and cells in order, in one process. On SmolLM2 + LoRA forget05 a
seed is about five core-hours (the ready fine-tune 38 minutes, cells of 20–80 minutes with their evaluations
and relearning attacks on a shared 2-core machine). So one process uses half the machine and a seed does not
fit in a session. ``part`` runs named jobs of one seed into the bench's own folder layout. Two processes share
it: each model and cell is written atomically, and a finished one is loaded, not recomputed. The jobs:

- ``model:NAME``: trains (or loads) a model and evaluates it. For ``retrained`` it also runs the relearning
  floor.
- ``cells:BASE``: every method from that base model, skipping finished cells.
- ``cell:BASE:METHOD``: one cell.

Give the two processes disjoint jobs. A cell that both start is computed twice, to the same result. A plain
``r2u bench`` on the folder afterwards finds everything cached and writes the report.

``merge`` assembles seeds that ran in separate folders (or were committed cell by cell) with
:func:`ready2unlearn.recipes.lm_bench.publish_lm`, so its report is the one a single run would have written.
Each FOLDER holds the seed's cells (in ``cells/`` or directly) and ``models/seed<S>/<name>/info.json``. A missing
info comes from ``--base``, a results file of the same bench that has that seed. The preset, config and data
description also come from ``--base``; any ``bench_config.json`` in a folder must match them, seeds aside.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ready2unlearn.artifacts import write_json
from ready2unlearn.config import to_dict
from ready2unlearn.errors import ConfigError
from ready2unlearn.recipes.harness import check_resumable
from ready2unlearn.recipes.lm_bench import (
    LMBenchRunner,
    cell_key,
    lm_cell_cache,
    load_lm_bench_config,
    publish_lm,
    seed_models,
)


def parse_jobs(jobs: list[str], bases: list[str], methods: list[str]) -> list[tuple[str, str, str]]:
    """``model:NAME``, ``cells:BASE`` and ``cell:BASE:METHOD`` as ``(kind, name, method)``; bad ones raise."""
    out = []
    for job in jobs:
        kind, _, rest = job.partition(":")
        name, _, method = rest.partition(":")
        names = [*bases, "retrained"] if kind == "model" else bases
        ok = (kind in ("model", "cells") and not method) or (kind == "cell" and method in methods)
        if not ok or name not in names:
            raise ValueError(f"bad job {job!r}: use model:{{{','.join([*bases, 'retrained'])}}}, "
                             f"cells:BASE or cell:BASE:{{{','.join(methods)}}}")  # fmt: skip
        out.append((kind, name, method))
    return out


def part(run: Path, seed: int, jobs: list[str], preset: str, overrides: list[str], progress: bool = True) -> None:
    """Runs ``jobs`` of ``seed`` into the bench folder ``run`` (see the module docstring)."""
    cfg, path = load_lm_bench_config(preset, [*overrides, f"seeds=[{seed}]"])
    bases = ["standard", "ready", *(cfg.baselines.names if cfg.baselines else [])]
    todo = parse_jobs(jobs, bases, [m.name for m in cfg.methods])
    try:
        check_resumable(cfg, run, flag="--run")
    except ConfigError as e:
        raise SystemExit(str(e)) from None
    write_json(run / "bench_config.json", {"config": to_dict(cfg), "preset": Path(path).stem})
    runner = LMBenchRunner(cfg, run, Path(path).stem, show_progress=progress)
    data = runner.load_data()
    for kind, name, only in todo:
        if kind == "model":
            model, _, _ = runner.model_step(data, seed, name)
            if name == "retrained":
                runner.floor_step(data, seed, model)
            continue
        ref_file = runner.cells.path(cell_key(seed, "retrained", "eval"), None)
        ref = runner.cells.load(ref_file, None)
        if ref is None:
            raise SystemExit(f"{ref_file} is missing: run model:retrained first (its loss is the stop target)")
        base, _ = runner.trained_model(data, seed, name)
        for mcfg in cfg.methods:
            if not only or mcfg.name == only:
                runner.cell_step(data, seed, name, base, mcfg, ref)


def _read(path: Path, what: str) -> Any:
    if not path.is_file():
        raise SystemExit(f"{path} is missing ({what})")
    return json.loads(path.read_text(encoding="utf-8"))


def merge(out: Path, base_file: Path, folders: dict[int, Path]) -> dict[str, Any]:
    """Merges seeds from ``folders`` into one results file and report in ``out`` (see the module docstring)."""
    base = _read(base_file, "the base results")
    config = {**base["config"], "seeds": sorted(folders)}
    some_seed = next(iter(base["models"].values()))
    bases = [n for n in some_seed if n != "retrained"]
    methods = [m["name"] for m in config["methods"]]
    models: dict[str, Any] = {}
    cells: list[dict[str, Any]] = []
    for seed in sorted(folders):
        folder = folders[seed]
        saved = folder / "bench_config.json"
        if saved.exists() and {**_read(saved, "")["config"], "seeds": None} != {**config, "seeds": None}:
            raise SystemExit(f"{saved} is a run of another config than {base_file}")
        stored = lm_cell_cache(folder, "cells" if (folder / "cells").is_dir() else "")
        infos = {}
        for name in (*bases, "retrained"):
            info_file = folder / "models" / f"seed{seed}" / name / "info.json"
            if info_file.exists():
                infos[name] = _read(info_file, "")
            else:
                infos[name] = base["models"].get(str(seed), {}).get(name, {}).get("info")
                if infos[name] is None:
                    raise SystemExit(f"{info_file} is missing and {base_file} has no seed {seed} {name} model")
        evals = {n: _read(stored.path(cell_key(seed, n, "eval"), None), "a model's evaluation") for n in infos}
        relearn = _read(stored.path(cell_key(seed, "retrained", "relearn"), None), "the relearning floor")
        models[str(seed)] = seed_models(infos, evals, relearn)
        cells += [_read(stored.path(cell_key(seed, b, m), None), "an unlearning cell")
                  for b in bases for m in methods]  # fmt: skip
    return publish_lm(base["preset"], config, base["data"], models, cells, out)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``part`` or ``merge``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("part", help="run some models and cells of one seed into a bench folder")
    p.add_argument("--run", type=Path, required=True, help="the bench folder (as r2u bench --out)")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--preset", default="tofu-smollm2-forget01")
    p.add_argument("-o", "--override", action="append", default=[], help="key=value, as r2u bench takes them")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("jobs", nargs="+", help="model:NAME, cells:BASE or cell:BASE:METHOD")
    m = sub.add_parser("merge", help="merge seeds from separate folders into one report")
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--base", type=Path, required=True, help="a results.json of the same bench")
    m.add_argument("folders", nargs="+", help="SEED=FOLDER")
    args = ap.parse_args(argv)
    if args.cmd == "part":
        part(args.run, args.seed, args.jobs, args.preset, args.override, not args.quiet)
    else:
        folders = {int(s): Path(f) for s, _, f in (x.partition("=") for x in args.folders)}
        merge(args.out, args.base, folders)
    return 0


if __name__ == "__main__":
    sys.exit(main())
