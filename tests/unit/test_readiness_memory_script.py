"""benchmarks/readiness/memory.py: re-measures a committed result's memory table and re-renders its report."""

from __future__ import annotations

import json

from ready2unlearn.config import from_dict
from ready2unlearn.recipes.ready_bench import ReadyBenchConfig, ReadyBenchRunner
from tests.conftest import load_script

MINI = {"train": "digits-mlp", "train_overrides": ["epochs=1", "model.hidden=[16]"], "seeds": [0],
        "groups": [{"name": "class", "ready": ["kind=class", "revocable=class:3,5", "alpha=0.01"],
                    "requests": {"in": "class:3"}, "targeted": ["in"]}],
        "methods": [{"name": "ga"}], "stop": {"max_steps": 2, "eval_every": 2},
        "relearn": {"sets": ["forget-10"], "steps": 2, "eval_every": 2}, "downweight": None, "dp": None,
        "negtrain": False, "memory": True, "mia": False, "sequential": {"count": 0},
        "allow_small_requests": True}  # fmt: skip


def test_remeasure_replaces_the_memory_table_and_keeps_the_old_one(tmp_path):
    module = load_script("readiness/memory.py")
    runner = ReadyBenchRunner(from_dict(ReadyBenchConfig, MINI), tmp_path, "mini", show_progress=False)
    measured = runner.run()["memory"]
    results = json.loads((tmp_path / "results.json").read_text())
    stale = {**results["memory"], "standard": 123 * 2**20}  # as the slice-counting probe inflated it
    (tmp_path / "results.json").write_text(json.dumps({**results, "memory": stale}))
    assert "| standard | 123.00 |" not in (tmp_path / "report.md").read_text()
    memory = module.remeasure(tmp_path)
    assert memory == measured  # the bench's own probe, on the recorded config
    after = json.loads((tmp_path / "results.json").read_text())
    assert after["memory"] == measured and after["memory_probe1"] == stale
    assert f"| standard | {measured['standard'] / 2**20:.2f} | 1.00 |" in (tmp_path / "report.md").read_text()


def test_a_partial_folder_gets_the_memory_record_its_bench_would_write(tmp_path):
    module = load_script("readiness/memory.py")
    run = tmp_path / "run"
    measured = ReadyBenchRunner(from_dict(ReadyBenchConfig, MINI), run, "mini", show_progress=False).run()["memory"]
    partial = tmp_path / "partial"  # finished cells and the matrix config, no results.json
    partial.mkdir()
    (partial / "bench_config.json").write_text(json.dumps({"preset": "mini", "config": MINI}))
    assert module.remeasure(partial) == measured
    written, bench = (json.loads((d / "memory.json").read_text()) for d in (partial, run))
    assert written == bench  # same figures and the same cache key, so a resumed bench reuses the file
