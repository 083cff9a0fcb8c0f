"""Batch-norm statistics while unlearning: frozen by default, updated on request, the same in readiness."""

import copy

import pytest
import torch
from torch import nn

from ready2unlearn.config import from_dict
from ready2unlearn.engine.fit import fit
from ready2unlearn.engine.method import Batch
from ready2unlearn.engine.unlearn import unlearn_model
from ready2unlearn.engine.unlearn_config import UnlearnConfig
from ready2unlearn.errors import ConfigError
from ready2unlearn.readiness import ReadyConfig
from ready2unlearn.readiness import loss as loss_module
from ready2unlearn.readiness.loss import readiness_loss
from ready2unlearn.unlearn import ClassificationTask, MethodConfig, StopConfig, build_method

from ..conftest import toy_ctx, toy_train_config


def _bn_net(features: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(features, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))


@pytest.fixture(scope="module")
def bn_setup(toy):
    _, train, test, views = toy
    model = _bn_net(train.x[0].numel())
    fit(model, train, test, toy_train_config(), show_progress=False)
    return model, views


def _unlearn(model, views, norm_stats):
    cfg = UnlearnConfig(method=from_dict(MethodConfig, {"name": "ga", "lr": 0.01, "norm_stats": norm_stats}),
                        stop=StopConfig(rule="steps", max_steps=5))  # fmt: skip
    return unlearn_model(model, views, build_method(cfg.method, ClassificationTask(4)), cfg, toy_ctx())


def _stats(model):
    bn = model[2]
    return bn.running_mean.clone(), bn.running_var.clone(), int(bn.num_batches_tracked)


def test_frozen_norm_keeps_the_running_statistics(bn_setup):
    model, views = bn_setup
    model = copy.deepcopy(model)
    before = _stats(model)
    before_weights = copy.deepcopy(model.state_dict())
    res = _unlearn(model, views, "frozen")
    assert res.steps == 5
    after = _stats(model)
    assert torch.equal(before[0], after[0]) and torch.equal(before[1], after[1]) and before[2] == after[2]
    assert not torch.equal(before_weights["1.weight"], model.state_dict()["1.weight"])  # it did unlearn


def test_update_norm_moves_the_running_statistics(bn_setup):
    model, views = bn_setup
    model = copy.deepcopy(model)
    before = _stats(model)
    _unlearn(model, views, "update")
    after = _stats(model)
    assert not torch.equal(before[0], after[0]) and after[2] > before[2]


def test_train_mode_keeps_dropout_on_and_batch_norm_off():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.5))
    model.eval()
    method = build_method(from_dict(MethodConfig, {"name": "ga"}), ClassificationTask(4))
    method.train_mode(model)
    assert model.training and model[2].training and not model[1].training
    update = build_method(from_dict(MethodConfig, {"name": "ga", "norm_stats": "update"}), ClassificationTask(4))
    update.train_mode(model)
    assert model[1].training


def test_bad_norm_stats_is_a_config_error():
    with pytest.raises(ConfigError, match="norm_stats"):
        from_dict(MethodConfig, {"name": "ga", "norm_stats": "sometimes"})


def test_readiness_simulates_with_the_deployed_norm_mode_and_restores_modes(bn_setup, monkeypatch):
    model, views = bn_setup
    model = copy.deepcopy(model).train()
    seen = []
    real = loss_module.simulate_unlearning

    def spy(method, m, batch, **kw):
        seen.append(m[2].training)
        return real(method, m, batch, **kw)

    monkeypatch.setattr(loss_module, "simulate_unlearning", spy)
    cfg = ReadyConfig(kind="class", alpha=0.01, lam=0.1, dual=False)
    x, y = views.forget.x[:16], views.forget.y[:16]
    batch = Batch(forget_x=x, forget_y=y, retain_x=views.retain.x[:16], retain_y=views.retain.y[:16])
    before = _stats(model)
    for norm_stats, expected in (("frozen", False), ("update", True)):
        method = build_method(from_dict(MethodConfig, {"name": "ga", "norm_stats": norm_stats}), ClassificationTask(4))
        readiness_loss(method, model, batch, cfg)
        assert seen[-1] is expected
        assert model.training and model[2].training  # the training loop's modes are restored
    after = _stats(model)
    assert torch.equal(before[0], after[0])  # the simulation works on buffer copies
