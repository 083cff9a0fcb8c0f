"""The relearning attack: relearn sets, held-out scoring, the retrained floor."""

import copy

import numpy as np
import pytest
import torch

from ready2unlearn.attacks.relearn import RelearnConfig, build_relearn_set, relearn_attack
from ready2unlearn.config import from_dict
from ready2unlearn.errors import ConfigError
from ready2unlearn.recipes.unlearn import unlearn_model
from ready2unlearn.unlearn import ClassificationTask, MethodConfig, StopConfig, build_method
from ready2unlearn.unlearn.config import UnlearnConfig

from ..conftest import toy_ctx


@pytest.fixture(scope="module")
def setup(toy):
    original, _, _, views = toy
    models = {"original": original}
    for name in ("retrain", "ga"):
        model = copy.deepcopy(original)
        cfg = UnlearnConfig(method=from_dict(MethodConfig, {"name": name, "lr": 0.01}),
                            stop=StopConfig(rule="forget_acc", target=0.0, max_steps=300))  # fmt: skip
        unlearn_model(model, views, build_method(cfg.method, ClassificationTask(4)), cfg, toy_ctx())
        models[name] = model
    return views, models


def test_relearn_sets_hold_out_what_they_train_on(setup):
    views, _ = setup
    cfg = RelearnConfig(retain_size=30)
    for spec, n_forget, n_retain in (("forget-10", 10, 0), ("forget-5%", 3, 0), ("retain+forget-10", 10, 30),
                                     ("retain-only", 0, 30)):  # fmt: skip
        learn, held, sizes = build_relearn_set(spec, views, cfg)
        assert sizes == {"forget": n_forget, "retain": n_retain} and len(learn) == n_forget + n_retain
        learned_forget = set(learn.ids.tolist()) & set(views.forget.ids.tolist())
        assert len(learned_forget) == n_forget and learned_forget.isdisjoint(held.ids.tolist())
        assert len(held) == len(views.forget) - n_forget
    with pytest.raises(ConfigError, match="leaves none"):
        build_relearn_set("forget-60", views, cfg)
    with pytest.raises(ConfigError, match="relearn set"):
        RelearnConfig(sets=["forget-ten"])


def test_attack_leaves_the_model_alone_and_is_seeded(setup):
    views, models = setup
    model = models["ga"]
    before = [p.detach().clone() for p in model.parameters()]
    cfg = RelearnConfig(sets=["forget-10"], steps=20, eval_every=5)
    a, b = relearn_attack(model, views, cfg), relearn_attack(model, views, cfg)
    assert a == b and [c["step"] for c in a["forget-10"]["curve"]] == [0, 5, 10, 15, 20]
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))


def test_retrained_model_is_the_floor_for_retain_only_relearning(setup):
    views, models = setup
    cfg = RelearnConfig(sets=["retain-only"], steps=30, lr=1e-2)
    floor = relearn_attack(models["retrain"], views, cfg)["retain-only"]
    # A model that never saw class 1 cannot learn it from retain data alone: its curve stays at the floor.
    assert max(c["forget_acc"] for c in floor["curve"]) <= 0.05
    original = relearn_attack(models["original"], views, cfg)["retain-only"]
    assert np.isclose(original["curve"][0]["forget_acc"], 1.0)
