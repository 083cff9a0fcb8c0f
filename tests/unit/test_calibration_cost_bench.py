"""benchmarks/readiness/calibration_cost.py: the full vs fast α measurement on a real (tiny) model."""

from __future__ import annotations

import dataclasses

import torch

from ready2unlearn.engine.fit import fit
from ready2unlearn.models.registry import build_model
from ready2unlearn.runtime import seed_everything
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


def _same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_warm_model_is_the_ready_runs_model_when_alpha_is_measured():
    """One epoch of the whole run's ``fit``: with a constant LR that is exactly a 1-epoch ``fit`` under the
    same seed; under the run's cosine schedule it is not (the 1-epoch run would decay its LR 4× faster)."""
    module = load_script("readiness/calibration_cost.py")
    tiny = ["model.hidden=[16]", "epochs=4"]
    for schedule, same in (("constant", True), ("cosine", False)):
        overrides = [*tiny, f"optim.schedule={schedule}"]
        warm, split, cfg = module.warm_model("digits-mlp", overrides, 1, seed=3)
        assert cfg.epochs == 4 and cfg.seed == 3
        seed_everything(3)
        one_epoch = build_model(cfg.model, split.spec)
        fit(one_epoch, split.train, None, dataclasses.replace(cfg, epochs=1), show_progress=False)
        assert _same_weights(warm, one_epoch) is same, schedule
