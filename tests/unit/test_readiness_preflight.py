"""The constraint preflight: does one simulated step of α already honour simulated requests on a model?"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch import nn

from ready2unlearn.config import from_dict
from ready2unlearn.engine.fit import fit
from ready2unlearn.errors import ConfigError
from ready2unlearn.readiness import ReadinessObjective, ReadyConfig
from ready2unlearn.readiness.dual import DualLambda
from ready2unlearn.readiness.objective import constraint_health
from ready2unlearn.readiness.preflight import Preflight, constraint_preflight
from ready2unlearn.report.readiness_report import _constraint_lines
from tests.conftest import make_blobs, toy_train_config


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4))


def _cfg(alpha: object, cap: float) -> ReadyConfig:
    knobs = {"kind": "class", "revocable": "class:1,2", "alpha": alpha, "cap": cap, "method": {"name": "ga"}}
    return from_dict(ReadyConfig, knobs)


def test_a_long_step_is_slack_a_short_one_binds_and_nothing_is_touched():
    data, model = make_blobs(240, seed=0), _mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    slack = constraint_preflight(model, data, _cfg(1.0, 3.0), 4, probes=4)
    binding = constraint_preflight(model, data, _cfg(1e-9, 3.0), 4, probes=4)
    assert slack.honoured == 4 and slack.slack and slack.drift < 0 and min(slack.forget_after) >= 3.0
    assert binding.honoured == 0 and not binding.slack and binding.drift > 0 and max(binding.forget_after) < 3.0
    # The step size only moves the point the forget loss is read at: a longer ascent step reads it higher.
    assert min(slack.forget_after) > max(binding.forget_after)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(rng, torch.get_rng_state()) and all(p.grad is None for p in model.parameters())
    assert slack.to_dict()["slack"] is True and len(slack.to_dict()["forget_after"]) == 4


def test_the_verdict_is_the_dual_lambdas_drift():
    """Slack exactly when the dual update would, on average, lower λ from these probes."""
    from_probes = Preflight(alpha=0.1, cap=5.0, forget_after=[6.0, 6.0, 2.0])
    assert from_probes.drift == pytest.approx((-0.2 - 0.2 + 0.6) / 3) and from_probes.honoured == 2
    assert not from_probes.slack  # 2 of 3 honoured, yet λ would rise
    d = DualLambda(0.03, lr=1.0)
    for a in from_probes.forget_after:
        d.update(a, 5.0)
    assert d.lam > 0.03  # the dual agrees: λ rose
    overshoot = Preflight(alpha=0.1, cap=5.0, forget_after=[50.0, 1.0])
    assert overshoot.drift == pytest.approx((-1.0 + 0.8) / 2) and overshoot.slack  # the clip, as in the dual


def _noisy_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Dropout(0.5),
                         nn.Linear(16, 4))  # fmt: skip


def test_the_preflight_is_repeatable_with_dropout_and_leaves_batch_norm_alone():
    data, model = make_blobs(240, seed=0), _noisy_net()
    model.train()(data.x[:64])  # running statistics that are not the initial ones
    before = {k: v.clone() for k, v in model.state_dict().items()}
    first = constraint_preflight(model, data, _cfg(0.5, 3.0), 4, probes=3, seed=1)
    torch.manual_seed(123)  # whatever the caller's stream
    assert constraint_preflight(model, data, _cfg(0.5, 3.0), 4, probes=3, seed=1) == first
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()) and model.training


def test_the_in_training_preflight_changes_nothing_the_run_computes():
    """Readiness training with the preflight at its start gives the same weights as without it."""
    data = make_blobs(240, seed=0)
    cfg = dataclasses.replace(toy_train_config(), epochs=2)
    knobs = {"kind": "class", "revocable": "class:1,2", "alpha": 0.05, "meta_every": 1}
    weights = []
    for skip in (False, True):
        obj = ReadinessObjective(from_dict(ReadyConfig, knobs), data, 4, seed=0)
        if skip:
            obj.preflight = Preflight(alpha=0.05, cap=5.0, forget_after=[0.0])  # as if already run
        model = _noisy_net()
        fit(model, data, None, cfg, show_progress=False, regularizer=obj)
        weights.append(model.state_dict())
        card = obj.summary(data)
        assert "preflight" in card and len(card["preflight"]["forget_after"]) == (1 if skip else 8)
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_a_resumed_run_keeps_its_preflight():
    data = make_blobs(240, seed=0)
    knobs = {"kind": "class", "revocable": "class:1,2", "alpha": 0.05}
    obj = ReadinessObjective(from_dict(ReadyConfig, knobs), data, 4, seed=0)
    obj(_noisy_net(), 0, 0)
    resumed = ReadinessObjective(from_dict(ReadyConfig, knobs), data, 4, seed=0)
    resumed.load_state_dict(json.loads(json.dumps(obj.state_dict())))
    assert resumed.preflight == obj.preflight is not None


def test_the_preflight_refuses_what_it_cannot_judge():
    data, model = make_blobs(240, seed=0), _mlp()
    with pytest.raises(ConfigError, match=r"numeric ready\.alpha"):
        constraint_preflight(model, data, _cfg("auto", 1.0), 4)
    with pytest.raises(ConfigError, match="probes"):
        constraint_preflight(model, data, _cfg(0.1, 1.0), 4, probes=0)
    heldout_cap = from_dict(ReadyConfig, {"kind": "class", "revocable": "class:1", "alpha": 0.1, "cap": "heldout"})
    with pytest.raises(ConfigError, match="held-out rows"):
        constraint_preflight(model, data, heldout_cap, 4)


def test_the_constraint_health_of_a_card_and_its_report_table():
    card = {"dual": {"violated_fraction": 0.26, "lam_start": 0.03, "lam": 0.0006}, "preflight": {"drift": -0.03}}
    assert constraint_health(card) == {"violated": 0.26, "lam_start": 0.03, "lam_end": 0.0006, "drift": -0.03}
    assert constraint_health({"cap_saturation": 1.0}) is None and constraint_health(None) is None  # fixed λ

    def cell(group, seed, health):
        runs = [{"variant": "standard"}, {"variant": "ready", "constraint": health}, {"variant": "ready"}]
        return {"group": group, "seed": seed, "runs": runs}

    older = {"violated": 0.5, "lam_end": 0.07}  # a card from before the start λ and the preflight were kept
    lines = _constraint_lines([cell("random", 0, older), cell("class", 1, constraint_health(card)),
                               cell("class", 1, older)])  # fmt: skip
    rows = [ln for ln in lines if ln.startswith("| class") or ln.startswith("| random")]
    assert rows == ["| class | 1 | 26% | 0.03 → 0.0006 | -0.03 |", "| random | 0 | 50% | — → 0.07 | — |"]
    assert _constraint_lines([cell("class", 0, None)]) == []
