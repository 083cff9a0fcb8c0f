"""The readiness training-cost benchmark: the probe per schedule, full and fast α measurement, memory."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import load_script


def test_step_cost_writes_ratios_memory_and_calibration(tmp_path):
    module = load_script("readiness/step_cost.py")
    threads = torch.get_num_threads()
    try:
        assert module.main(["--models", "tabular", "--blocks", "2", "--steps", "2", "--out", str(tmp_path)]) == 0
    finally:
        torch.set_num_threads(threads)
    (result,) = json.loads((tmp_path / "results.json").read_text())["results"]
    assert set(result["configs"]) == set(module.CONFIGS)
    cal = result["calibration"]
    assert cal["full"]["seconds"] > 0 and cal["fast"]["seconds"] > 0
    for key, row in result["configs"].items():
        full, fast = row["full"], row["fast"]
        assert full["blocks"] == 2 and full["epochs"] == 20 and full["start_epoch"] == 5, key
        # the same timed steps; only the α measurement differs between the two whole-run ratios
        assert full["step_ratio"] == fast["step_ratio"] and full["steps_share"] == fast["steps_share"]
        assert full["calibration"] == pytest.approx(cal["full"]["seconds"])
        assert fast["calibration"] == pytest.approx(cal["fast"]["seconds"])
        assert full["ratio"] == pytest.approx(1 + full["steps_share"] + full["calibration_share"])
    every4 = result["configs"]["every 4th step, batches of 32"]["full"]
    assert every4["meta_every"] == 4 and every4["ready_calls"] < result["configs"][next(iter(module.CONFIGS))][
        "full"]["ready_calls"]  # fmt: skip
    # A readiness step keeps more tensors for backward than a plain one (inner step + look-ahead forwards).
    assert result["autograd_bytes"]["ready"] > result["autograd_bytes"]["standard"]
    assert result["peak_bytes"]["ready"] > result["peak_bytes"]["standard"] > 0
    assert "| tabular |" in (tmp_path / "README.md").read_text()
