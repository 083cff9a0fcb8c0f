"""benchmarks/readiness/partial.py: finished cells of an interrupted matrix are copied and tabulated."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

from tests.conftest import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "readiness" / "partial.py"


def _run(variant: str, steps: int, relearn: list[float]) -> dict:
    curve = [{"step": 2 * i, "forget_acc": a} for i, a in enumerate(relearn)]
    metrics = {"test_retain_acc": 0.88, "test_acc": 0.8}
    return {"variant": variant, "method": "ga", "steps": steps, "reached": True, "before": {"test_acc": 0.9},
            "metrics": metrics, "relearn": {"forget-10": {"curve": curve}}}  # fmt: skip


def test_partial_table(tmp_path):
    module = load_script("readiness/partial.py")
    cell = {"group": "class", "setting": "in", "seed": 3, "kind": "class",
            "reference": {"relearn": {"forget-10": {"curve": [{"forget_acc": 0.1}, {"forget_acc": 0.3}]}}},
            "runs": [_run("standard", 90, [0.0, 1.0]), _run("ready", 20, [0.5, 0.5])]}  # fmt: skip
    (tmp_path / "work" / "cells").mkdir(parents=True)
    (tmp_path / "work" / "cells" / "class-in-seed3-abc.json").write_text(json.dumps(cell))
    assert module.main(["--work", str(tmp_path / "work"), "--out", str(tmp_path / "out")]) == 0
    lines = (tmp_path / "out" / "table.md").read_text().splitlines()
    assert lines[2] == "| class / in | 3 | standard | ga | 90 | True | 0.900 | 0.880 | 0.500 | 0.200 |"
    assert lines[3].startswith("| class / in | 3 | ready | ga | 20 |")
    assert (tmp_path / "out" / "cells" / "class-in-seed3-abc.json").is_file()


@functools.cache
def _mnist_results() -> dict:
    """The committed MNIST matrix's results (read once: the file is large)."""
    return json.loads((SCRIPT.parent / "mnist" / "results.json").read_text())


def _mnist_work(tmp_path: Path, seeds: tuple[int, ...]):
    """The partial module, and a work folder holding the MNIST matrix's config and its cells of ``seeds``."""
    module = load_script("readiness/partial.py")
    # Real cells of the MNIST matrix, laid out as an interrupted run's work folder.
    results = _mnist_results()
    work = tmp_path / "work"
    (work / "cells").mkdir(parents=True)
    (work / "bench_config.json").write_text(json.dumps({"preset": results["preset"], "config": results["config"]}))
    cells = [c for c in results["cells"] if c["seed"] in seeds]
    for i, cell in enumerate(cells):
        (work / "cells" / f"{cell['group']}-{cell['setting']}-seed{cell['seed']}-{i}.json").write_text(json.dumps(cell))
    return module, work, cells


def test_partial_targets_from_the_matrix_config(tmp_path):
    """With the matrix's bench_config.json the partial folder also judges the targets on the finished seeds."""
    module, work, _ = _mnist_work(tmp_path, (0, 1, 2))
    assert module.main(["--work", str(work), "--out", str(tmp_path / "out")]) == 0
    text = (tmp_path / "out" / "targets.md").read_text()
    assert "provisional" in text and "| class / in | ga | unlearning steps, ready / standard" in text
    assert re.search(r"\| class / in \| ga \| \d+\.\d{3} \[", text)  # ready / negtrain steps, paired by seed
    assert (tmp_path / "out" / "bench_config.json").is_file()


def _with_cost(work: Path) -> None:
    """Lay the MNIST matrix's training-cost probes into the work folder, as the bench writes them."""
    results = _mnist_results()
    (work / "cost").mkdir(exist_ok=True)
    for p in results["cost"]:
        (work / "cost" / f"seed{p['seed']}-{p['group']}.json").write_text(json.dumps(p))


def test_partial_targets_are_final_once_every_cell_is_in(tmp_path):
    """With every cell and cost probe of every configured seed the table is no longer labelled provisional."""
    seeds = tuple(_mnist_results()["config"]["seeds"])
    module, work, _ = _mnist_work(tmp_path, seeds)
    _with_cost(work)
    assert module.main(["--work", str(work), "--out", str(tmp_path / "out")]) == 0
    first = (tmp_path / "out" / "targets.md").read_text().splitlines()[0]
    assert first.startswith("Targets on every seed") and "provisional" not in first


def test_partial_targets_stay_provisional_while_a_seed_lacks_cells(tmp_path):
    """A cell of every seed is not enough: a missing cell or cost probe keeps the table provisional."""
    seeds = tuple(_mnist_results()["config"]["seeds"])
    module, work, _ = _mnist_work(tmp_path, seeds)
    _with_cost(work)
    last = sorted((work / "cells").glob(f"random-out-seed{seeds[-1]}-*.json"))
    last[0].unlink()
    next((work / "cost").glob(f"seed{seeds[-1]}-class.json")).unlink()
    assert module.main(["--work", str(work), "--out", str(tmp_path / "out")]) == 0
    first = (tmp_path / "out" / "targets.md").read_text().splitlines()[0]
    assert "provisional" in first and "2 cells or cost probes missing" in first
    group = {"name": "class", "requests": {"in": "class:3"}, "targeted": []}
    assert module.missing([], {"groups": [group], "seeds": [0], "cost": False}) == ["class/in seed 0"]
    # The bench probes every group's training cost unless told not to, targeted or not.
    assert module.missing([], {"groups": [group], "seeds": [0]}) == ["class/in seed 0", "class cost probe seed 0"]


def test_partial_judges_training_cost_on_the_copied_probes(tmp_path):
    """Cost probes in the work folder are copied and judged: 30 s ready against 10 s standard is 3×."""
    module, work, cells = _mnist_work(tmp_path, (0,))
    group = next(c["group"] for c in cells if c["targeted"])
    (work / "cost").mkdir()
    probe = {"seed": 0, "group": group, "ready_seconds": 30.0, "standard_seconds": 10.0}
    (work / "cost" / "seed0.json").write_text(json.dumps(probe))
    assert module.main(["--work", str(work), "--out", str(tmp_path / "out")]) == 0
    text = (tmp_path / "out" / "targets.md").read_text()
    assert re.search(r"training cost incl\. α calibration.*\| 3\.000 \(n=1\)", text)
    assert (tmp_path / "out" / "cost" / "seed0.json").is_file()


def test_partial_shows_the_memory_table_of_the_bench_record(tmp_path):
    """A memory.json in the work folder (as the bench or memory.py writes it) is copied and tabulated."""
    module, work, _ = _mnist_work(tmp_path, (0,))
    memory = {"batch_size": 128, "state_bytes": 2**20, "standard": 10 * 2**20, "ready-class": 30 * 2**20,
              "peak": {"standard": 8 * 2**20, "ready-class": 20 * 2**20}}  # fmt: skip
    (work / "memory.json").write_text(json.dumps(memory))
    assert module.main(["--work", str(work), "--out", str(tmp_path / "out")]) == 0
    text = (tmp_path / "out" / "targets.md").read_text()
    assert "| ready-class | 30.00 | 3.00 | 20.00 | 2.50 |" in text
    assert (tmp_path / "out" / "memory.json").is_file()
