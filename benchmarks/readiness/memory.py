"""Re-measures the memory-per-step table of committed readiness results, and re-renders their reports.

Run: ``python benchmarks/readiness/memory.py [digits fashion mnist]``.

The readiness bench's memory probe (autograd's saved storages during one standard and one ready step) used a
slice of the training set as its batch until 2026-12-04. A slice shares the whole set's storage, so both
steps counted the training set too (30 MiB on the 10k-image MNIST subset), which inflated every figure and
shrank the ready / standard ratio. What autograd keeps depends on shapes, not on trained values (the bench
measures on a freshly initialised model), so the table is re-measured here from each run's recorded config
with the bench's own, fixed probe, without re-running the matrix. ``results.json`` keeps the old figures under
``memory_probe1`` for the record.

Since 2026-12-05 the probe also records the true peak each step allocates (``memory["peak"]``): the saved-tensor
count keeps every saved tensor alive, so it overstates a readiness step, whose inner graph is freed halfway.
Re-running this script adds the peak to a committed table.

A partial matrix folder (``bench_config.json`` and finished cells, no ``results.json``; see ``partial.py``) gets
the ``memory.json`` the bench itself would write on its first seed, keyed by the same config, and
``partial.py`` adds its table to ``targets.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from ready2unlearn.artifacts import write_json
from ready2unlearn.config import from_dict
from ready2unlearn.recipes.cache import store_json
from ready2unlearn.recipes.ready_bench import ReadyBenchConfig, ReadyBenchRunner
from ready2unlearn.report.readiness_report import write_readiness_report

HERE = Path(__file__).resolve().parent


def remeasure(folder: Path) -> dict[str, object]:
    """Replaces ``memory`` in ``folder/results.json`` with a fresh measurement and re-renders ``report.md``.

    A folder without ``results.json`` but with a partial matrix's ``bench_config.json`` gets ``memory.json``.
    """
    if not (folder / "results.json").is_file():
        return measure_partial(folder)
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    # the bench measures memory on its first seed
    memory, _ = _measure(from_dict(ReadyBenchConfig, results["config"]), results["preset"], results["seeds"][0])
    if "memory" in results and "memory_probe1" not in results:
        results["memory_probe1"] = results["memory"]
    results["memory"] = memory
    write_json(folder / "results.json", results)
    write_readiness_report(results, folder)
    return memory


def measure_partial(folder: Path) -> dict[str, object]:
    """Writes ``folder/memory.json`` for a partial matrix, as its bench would on the first seed."""
    bench = json.loads((folder / "bench_config.json").read_text(encoding="utf-8"))
    cfg = from_dict(ReadyBenchConfig, bench["config"])
    memory, conf = _measure(cfg, bench["preset"], cfg.seeds[0])
    store_json(folder / "memory.json", conf, memory)
    return memory


def _measure(cfg: ReadyBenchConfig, preset: str, seed: int) -> tuple[dict[str, object], dict[str, object]]:
    """The bench's memory probe on ``seed`` (in a scratch folder), and the cache config it is keyed by."""
    with tempfile.TemporaryDirectory() as tmp:
        runner = ReadyBenchRunner(cfg, tmp, preset, show_progress=False)
        env = runner.classifier.env(seed)
        return runner.measure_memory(env, seed), runner.memory_config(env)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="*", default=["digits", "fashion", "mnist"], help="folders under this one")
    args = p.parse_args(argv)
    for name in args.folders:
        memory = remeasure(HERE / name)
        std = memory["standard"]
        ratios = ", ".join(f"{k} {v / std:.2f}x" for k, v in memory.items() if k.startswith("ready-"))  # type: ignore[operator]
        peak: dict[str, int] = memory.get("peak") or {}  # type: ignore[assignment]
        peaks = ", ".join(f"{k} {v / 2**20:.2f} MiB" for k, v in peak.items() if v is not None)
        print(f"{name}: saved: standard {std / 2**20:.2f} MiB; {ratios}; peak: {peaks}")  # type: ignore[operator]
    return 0


if __name__ == "__main__":
    sys.exit(main())
