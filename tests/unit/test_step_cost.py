"""The readiness step-cost benchmark: interleaved timing writes ratios with intervals, memory and the α cost."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

STEP_COST = Path(__file__).resolve().parents[2] / "benchmarks" / "readiness" / "step_cost.py"


def test_step_cost_writes_ratios_memory_and_calibration(tmp_path):
    spec = importlib.util.spec_from_file_location("step_cost", STEP_COST)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    try:
        assert module.main(["--models", "digits", "--blocks", "2", "--steps", "3", "--out", str(tmp_path)]) == 0
    finally:
        torch.set_num_threads(threads)
    (result,) = json.loads((tmp_path / "results.json").read_text())["results"]
    assert set(result["configs"]) == set(module.CONFIGS)
    assert all(len(v) == 2 for v in result["seconds"].values())  # one time per block, per config
    for row in result["configs"].values():
        ratio = row["step_ratio"]
        assert ratio["n"] == 2 and ratio["ci_low"] <= ratio["mean"] <= ratio["ci_high"]
        assert row["training_ratio"] > 0
    # A readiness step keeps more tensors for backward than a plain one (inner step + look-ahead forwards).
    assert result["autograd_bytes"]["ready"] > result["autograd_bytes"]["standard"]
    assert result["calibration_epochs"] > 0 and result["calibration_steps"] and min(result["calibration_steps"]) >= 1
    assert "| digits |" in (tmp_path / "README.md").read_text()
