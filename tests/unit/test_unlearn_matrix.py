"""One property matrix over every registered unlearning method (DESIGN §8)."""

import copy

import pytest
import torch
from torch import nn

from ready2unlearn.config import from_dict, to_dict
from ready2unlearn.engine.unlearn import unlearn_model
from ready2unlearn.engine.unlearn_config import UnlearnConfig
from ready2unlearn.evaluate import accuracy_and_loss
from ready2unlearn.unlearn import METHODS, Batch, ClassificationTask, MethodConfig, StopConfig, build_method

from ..conftest import toy_ctx

# Small-data settings per method so that k steps visibly forget on the toy problem; everything else default.
OVERRIDES = {"ssd": {"alpha": 1.0}, "scrub": {"max_phase_steps": 30}}
_ctx = toy_ctx


@pytest.fixture(scope="module")
def trained(toy):
    model, _, _, views = toy
    return model, views


def _run(model, views, name, steps=30, seed=0, **extra):
    cfg = UnlearnConfig(method=from_dict(MethodConfig, {"name": name, **OVERRIDES.get(name, {}), **extra}),
                        stop=StopConfig(max_steps=steps))  # fmt: skip
    method = build_method(cfg.method, ClassificationTask(4))
    return unlearn_model(model, views, method, cfg, _ctx(seed))


ALL = METHODS.names()


def test_the_matrix_covers_every_method_of_the_issue():
    assert set(ALL) >= {"ga", "grad_diff", "ga_kl", "npo", "simnpo", "retrain", "finetune", "neggrad_plus",
                        "random_label", "l1_sparse", "salun", "scrub", "bad_teacher", "ssd"}  # fmt: skip


@pytest.mark.parametrize("name", ALL)
def test_config_round_trip(name):
    cfg = from_dict(MethodConfig, {"name": name})
    assert type(cfg) is METHODS.get(name).config_cls
    assert from_dict(MethodConfig, to_dict(cfg)) == cfg


@pytest.mark.parametrize("name", ALL)
def test_finite_loss_and_functional_parity(trained, name):
    model, views = trained
    method = build_method({"name": name}, ClassificationTask(4))
    if not method.iterative:
        pytest.skip("one-shot method: no loss")
    model = copy.deepcopy(model).eval()  # no dropout noise between the two evaluations
    method.prepare(model, views, _ctx())
    batch = Batch(views.forget.x[:16], views.forget.y[:16], views.retain.x[:16], views.retain.y[:16])
    for step in (0, 1):
        plain, _ = method.loss(model, batch, step=step)
        functional, _ = method.loss(model, batch, params=dict(model.named_parameters()), step=step)
        assert torch.isfinite(plain)
        torch.testing.assert_close(plain, functional)


@pytest.mark.parametrize("name", ALL)
def test_forgetting_progresses(trained, name):
    model, views = trained
    model = copy.deepcopy(model)
    fa0, fl0 = accuracy_and_loss(model, views.forget)
    res = _run(model, views, name)
    fa1, fl1 = accuracy_and_loss(model, views.forget)
    assert fl1 > fl0, f"{name}: forget loss {fl0:.3f} → {fl1:.3f}"
    assert fa1 <= fa0
    assert res.steps > 0 or not METHODS.get(name).method_cls.iterative
    assert res.curve[0]["step"] == 0 and len(res.curve) >= 2


@pytest.mark.parametrize("name", ALL)
def test_frozen_parameters_unchanged(trained, name):
    model, views = trained
    model = copy.deepcopy(model)
    first = model[1]  # the first Linear of Flatten → Linear → ReLU → Dropout → Linear
    first.weight.requires_grad_(False)
    frozen = first.weight.detach().clone()
    _run(model, views, name, steps=10)
    assert torch.equal(first.weight, frozen)


@pytest.mark.parametrize("name", ALL)
def test_seeded_determinism(trained, name):
    model, views = trained
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    _run(a, views, name, steps=10, seed=3)
    _run(b, views, name, steps=10, seed=3)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_one_ga_step_raises_forget_loss(trained):
    model, views = trained
    model = copy.deepcopy(model).eval()
    method = build_method({"name": "ga", "lr": 0.01}, ClassificationTask(4))
    x, y = views.forget.x, views.forget.y
    before = nn.functional.cross_entropy(model(x), y)
    loss, _ = method.loss(model, Batch(x, y))
    assert torch.isclose(loss, -before)  # the engine minimises −CE
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.01 * p.grad
    assert nn.functional.cross_entropy(model(x), y) > before


def test_classifier_only_methods_refuse_other_tasks():
    class LMTask(ClassificationTask):
        kind = "lm"

    from ready2unlearn.errors import ConfigError

    for name in ALL:
        if METHODS.get(name).method_cls.classifier_only:
            with pytest.raises(ConfigError, match="only works for classifiers"):
                build_method({"name": name}, LMTask(4))
