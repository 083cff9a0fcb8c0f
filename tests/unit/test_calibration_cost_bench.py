"""benchmarks/readiness/calibration_cost.py: the full vs fast α measurement on a real (tiny) model."""

from __future__ import annotations

from tests.conftest import load_script


def test_measures_both_modes_on_the_same_model_and_reports_them(monkeypatch):
    module = load_script("readiness/calibration_cost.py")
    monkeypatch.setitem(module.MODELS, "digits", ("digits-mlp", ["model.hidden=[16]"], 1, 4))
    result = module.measure("digits", seed=0)
    for kind in ("class", "random"):
        full, fast = result["calibration"][kind]["full"], result["calibration"][kind]["fast"]
        assert full["seconds"] > 0 and fast["seconds"] > 0
        assert full["forget_sizes"] == fast["forget_sizes"]  # the same simulated requests, judged differently
    assert result["probe"] == {}  # the training-cost probe runs on the MNIST CNN only
    text = module.report([result])
    assert "| digits | 0 | class |" in text and "| digits | 0 | random |" in text
