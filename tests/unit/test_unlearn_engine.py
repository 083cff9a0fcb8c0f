import copy
from dataclasses import dataclass

import pytest
import torch

from ready2unlearn.config import from_dict
from ready2unlearn.engine.fit import fit
from ready2unlearn.engine.unlearn import unlearn_model
from ready2unlearn.engine.unlearn_config import UnlearnConfig, load_unlearn_config
from ready2unlearn.errors import ConfigError
from ready2unlearn.evaluate import accuracy_and_loss
from ready2unlearn.unlearn import ClassificationTask, MethodConfig, StopConfig, build_method
from ready2unlearn.unlearn.ga import GAConfig, GradientAscent

from ..conftest import toy_ctx, toy_model, toy_train_config

TRAIN_CFG = toy_train_config()
_factory = toy_model
_ctx = toy_ctx


@pytest.fixture(scope="module")
def setup(toy):
    return toy


def _go(model, views, method_cfg, stop, ref=None, method=None):
    cfg = UnlearnConfig(method=from_dict(MethodConfig, method_cfg), stop=stop)
    method = method or build_method(cfg.method, ClassificationTask(4))
    return unlearn_model(model, views, method, cfg, _ctx(), reference_value=ref)


def test_forget_accuracy_target_stops_early_and_is_met(setup):
    model, _, _, views = setup
    model = copy.deepcopy(model)
    res = _go(model, views, {"name": "ga", "lr": 0.01}, StopConfig(rule="forget_acc", target="chance", max_steps=500))
    assert res.stop_reason == "target reached" and res.reached and res.target == 0.25
    assert 0 < res.steps < 500
    assert accuracy_and_loss(model, views.forget)[0] <= 0.25
    assert res.grad_evals == res.steps * 60  # 60 forget samples < batch 64: the whole set each step
    assert res.seconds > 0 and res.eval_seconds > 0


def test_unreachable_target_exhausts_the_budget(setup):
    model, _, _, views = setup
    res = _go(copy.deepcopy(model), views, {"name": "ga", "lr": 1e-6}, StopConfig(rule="forget_acc", target=0.0,
                                                                                   max_steps=7))  # fmt: skip
    assert res.stop_reason == "budget exhausted" and res.steps == 7 and res.reached is False


def test_forget_loss_rule_and_reference_target(setup):
    model, _, _, views = setup
    res = _go(copy.deepcopy(model), views, {"name": "ga", "lr": 0.01},
              StopConfig(rule="forget_loss", target="reference", max_steps=500), ref=3.0)  # fmt: skip
    assert res.reached and res.curve[-1]["forget_loss"] >= 3.0
    with pytest.raises(ConfigError, match="--reference"):
        _go(copy.deepcopy(model), views, {"name": "ga"}, StopConfig(rule="forget_acc", target="reference"))


def test_forget_eval_size_judges_the_stop_on_a_fixed_subset(setup):
    model, _, _, views = setup  # 60 forget samples
    stop = dict(rule="forget_acc", target="chance", max_steps=500)
    whole = _go(copy.deepcopy(model), views, {"name": "ga", "lr": 0.01}, StopConfig(**stop))
    # A subset as large as the forget set is the forget set: the run is unchanged, step for step.
    same = _go(copy.deepcopy(model), views, {"name": "ga", "lr": 0.01}, StopConfig(**stop, forget_eval_size=60))
    assert same.steps == whole.steps and same.curve == whole.curve
    sub = _go(copy.deepcopy(model), views, {"name": "ga", "lr": 0.01}, StopConfig(**stop, forget_eval_size=8))
    # Every check scored 8 samples: accuracies in eighths, and the stop was judged on them.
    assert all(abs(8 * row["forget_acc"] - round(8 * row["forget_acc"])) < 1e-6 for row in sub.curve)
    assert sub.reached and sub.curve[-1]["forget_acc"] <= 0.25
    with pytest.raises(ConfigError, match="forget_eval_size"):
        StopConfig(**stop, forget_eval_size=0)


def test_epochs_budget_counts_passes_over_the_primary_set(setup):
    model, _, _, views = setup
    res = _go(copy.deepcopy(model), views, {"name": "ga", "batch_size": 20}, StopConfig(epochs=2, max_steps=999))
    assert res.steps == 6  # 60 forget samples / 20 per batch × 2 epochs
    res = _go(copy.deepcopy(model), views, {"name": "finetune", "batch_size": 20}, StopConfig(epochs=1))
    assert res.steps == 9  # 180 retain samples / 20


@dataclass
class _NaNConfig(GAConfig):
    name: str = "ga"


class _NaNAfter(GradientAscent):
    """GA whose loss turns NaN at step 3."""

    def loss(self, model, batch, params=None, step=0):
        loss, m = super().loss(model, batch, params, step)
        return (loss * float("nan") if step == 3 else loss), m


def test_non_finite_loss_restores_the_last_good_state(setup):
    model, _, _, views = setup
    model = copy.deepcopy(model)
    method = _NaNAfter(GAConfig(lr=1e-3), ClassificationTask(4))
    res = _go(model, views, {"name": "ga", "lr": 1e-3}, StopConfig(max_steps=10), method=method)
    assert res.stop_reason.startswith("diverged: non-finite loss") and res.restored and res.steps == 3
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_retain_floor_restores_last_good_state(setup):
    model, _, _, views = setup
    model = copy.deepcopy(model)
    res = _go(model, views, {"name": "ga", "lr": 0.5}, StopConfig(max_steps=200, retain_floor=0.9))
    assert res.stop_reason.startswith("diverged: retain accuracy") and res.restored
    assert res.curve[-1]["retain_acc"] >= 0.9  # the restored state passed the floor


def test_retrain_matches_a_fresh_training_run_on_retain(setup):
    model, _, _, views = setup
    unlearned = copy.deepcopy(model)
    res = _go(unlearned, views, {"name": "retrain"}, StopConfig())
    fresh = _factory()  # what `r2u train` on D_r alone would build: same seed, same initialisation
    fit(fresh, views.retain, None, TRAIN_CFG, show_progress=False)
    for a, b in zip(unlearned.parameters(), fresh.parameters(), strict=True):
        assert torch.equal(a, b)
    assert res.stop_reason == "applied" and res.steps == 8 * 6  # 8 epochs × ceil(180 / 32)


@pytest.mark.parametrize(
    ("text", "kw", "expect"),
    [
        ("steps:40", {}, {"rule": "steps", "max_steps": 40}),
        ("forget_acc:chance", {"max_steps": 9}, {"rule": "forget_acc", "target": "chance", "max_steps": 9}),
        ("forget_acc:0.05", {}, {"rule": "forget_acc", "target": 0.05}),
        ("forget_loss:reference", {}, {"rule": "forget_loss", "target": "reference"}),
    ],
)
def test_stop_rule_parsing(text, kw, expect):
    stop = StopConfig.parse(text, **kw)
    assert {k: getattr(stop, k) for k in expect} == expect


@pytest.mark.parametrize(
    ("text", "match"),
    [("until:3", "unknown stop rule"), ("forget_acc", "needs a target"), ("forget_acc:often", "chance or reference"),
     ("forget_loss:chance", "chance only applies"), ("steps:x", "integer")],
)  # fmt: skip
def test_bad_stop_rules(text, match):
    with pytest.raises(ConfigError, match=match):
        StopConfig.parse(text)


def test_shipped_unlearn_presets_cover_every_method():
    from ready2unlearn.config import list_presets
    from ready2unlearn.unlearn import METHODS

    assert set(METHODS.names()) <= set(list_presets("unlearn"))
    for name in list_presets("unlearn"):
        cfg, path = load_unlearn_config(name)
        assert path and cfg.method.name == name


def test_l1_sparse_decays_over_the_run_budget(setup):
    model, _, _, views = setup
    cfg = UnlearnConfig(method=from_dict(MethodConfig, {"name": "l1_sparse"}), stop=StopConfig(epochs=1))
    method = build_method(cfg.method, ClassificationTask(4))
    unlearn_model(copy.deepcopy(model), views, method, cfg, _ctx())
    assert method.budget == 3  # 180 retain samples / 64 per batch
    assert method.gamma_at(0) > method.gamma_at(1) > method.gamma_at(3) == 0.0
