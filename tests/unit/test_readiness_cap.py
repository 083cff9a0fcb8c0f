"""Caps measured on the model: ready.cap=initial (starting weights) and ready.cap=heldout (held-out rows)."""

from __future__ import annotations

import copy
import dataclasses
import json
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ready2unlearn.config import from_dict
from ready2unlearn.engine.fit import fit
from ready2unlearn.errors import ConfigError
from ready2unlearn.readiness import ReadinessObjective, ReadyConfig, readiness_loss
from ready2unlearn.readiness.baselines import NegativeTrainingObjective
from ready2unlearn.readiness.calibrate import calibrate_alpha
from ready2unlearn.readiness.cap import CAP_ROWS, mean_loss
from ready2unlearn.task import ClassificationTask
from ready2unlearn.unlearn import Batch, build_method
from tests.conftest import make_blobs, toy_model, toy_train_config

#: Random requests from classes 1 and 2, fixed λ and α, readiness from the second epoch.
KNOBS = {"kind": "random", "revocable": "class:1,2", "cap": "initial", "alpha": 0.01, "dual": False, "lam": 0.1,
         "meta_every": 2, "start_epoch": 1}  # fmt: skip


def _loss(model: torch.nn.Module, data, classes=(1, 2)) -> float:
    rows = torch.isin(data.y, torch.tensor(classes))
    with torch.no_grad():
        return F.cross_entropy(model.eval()(data.x[rows]), data.y[rows]).item()


def test_initial_cap_is_the_pools_loss_under_the_starting_weights_even_when_readiness_starts_later():
    data, test = make_blobs(240, seed=0), make_blobs(80, seed=1)
    model = toy_model()
    start = _loss(copy.deepcopy(model), data)
    obj = ReadinessObjective(from_dict(ReadyConfig, KNOBS), data, 4, seed=0)
    fit(model, data, test, toy_train_config(), show_progress=False, regularizer=obj)
    (measured,) = obj.cap.measurements
    assert measured == {"epoch": 0, "cap": pytest.approx(start, rel=1e-5), "rows": 120}
    assert obj.cfg.cap == measured["cap"] and obj.calls > 0  # the readiness steps ran with it
    assert _loss(model, data) < 0.5 * start  # the pool was learned afterwards: measured later, the cap would differ
    summary = obj.summary(data)
    assert summary["cap"] == {"mode": "initial", "measurements": [measured]}
    assert summary["resolved"]["cap"] == measured["cap"]


def test_heldout_cap_follows_the_models_loss_on_unseen_rows_every_epoch():
    data, heldout = make_blobs(240, seed=0), make_blobs(80, seed=0)  # same blobs, other rows: unseen
    heldout = dataclasses.replace(heldout, x=heldout.x + 0.5 * torch.randn_like(heldout.x))
    cfg = from_dict(ReadyConfig, {**KNOBS, "cap": "heldout"})
    with pytest.raises(ConfigError, match="heldout="):
        ReadinessObjective(cfg, data, 4, seed=0)
    obj = ReadinessObjective(cfg, data, 4, seed=0, heldout=heldout)
    model = toy_model()
    train_cfg = toy_train_config()
    losses = []
    fit(model, data, None, train_cfg, show_progress=False, regularizer=obj,
        on_epoch=lambda _: losses.append(_loss(copy.deepcopy(model), heldout, classes=(0, 1, 2, 3))))  # fmt: skip
    caps = obj.cap.measurements
    assert [m["epoch"] for m in caps] == list(range(train_cfg.epochs)) and all(m["rows"] == 80 for m in caps)
    # Measured at the first step of each epoch, i.e. on the model the previous epoch left.
    for m, after_previous in zip(caps[1:], losses, strict=False):
        assert m["cap"] == pytest.approx(after_previous, rel=1e-4)
    assert caps[-1]["cap"] < caps[0]["cap"]  # the level of unseen rows fell as the model learned
    assert obj.cfg.cap == caps[-1]["cap"]
    resumed = ReadinessObjective(cfg, data, 4, seed=0, heldout=heldout)
    resumed.load_state_dict(obj.state_dict())
    assert resumed.cfg.cap == obj.cfg.cap and resumed.cap.measurements == caps


def test_a_resumed_run_keeps_the_initial_cap_and_one_without_it_is_refused():
    data = make_blobs(240, seed=0)
    cfg = from_dict(ReadyConfig, KNOBS)
    first = ReadinessObjective(cfg, data, 4, seed=0)
    first(toy_model(), 0, 0)
    resumed = ReadinessObjective(cfg, data, 4, seed=0)
    resumed.load_state_dict(first.state_dict())
    assert resumed.cfg.cap == first.cfg.cap and resumed.cap.measurements == first.cap.measurements
    loss, parts = resumed(toy_model(), 10, 1)  # past step 0: no new measurement needed
    assert loss is not None and parts["cap_saturated"] in (0.0, 1.0)
    with pytest.raises(ConfigError, match="step 10"):
        ReadinessObjective(cfg, data, 4, seed=0)(toy_model(), 10, 1)


def test_many_rows_are_subsampled_reproducibly():
    data = make_blobs(800, seed=0)
    model, task = toy_model(), ClassificationTask(4)
    rows = np.arange(600)
    a = mean_loss(model, data, rows, task, seed=1)
    assert a["rows"] == CAP_ROWS and a == mean_loss(model, data, rows, task, seed=1)
    assert a["cap"] != mean_loss(model, data, rows, task, seed=2)["cap"]


@pytest.mark.parametrize("mode", ["initial", "heldout"])
def test_negative_training_measures_the_same_cap(mode):
    data, heldout = make_blobs(240, seed=0), make_blobs(60, seed=3)
    cfg = from_dict(ReadyConfig, {**KNOBS, "cap": mode})
    model = toy_model()
    neg = NegativeTrainingObjective(cfg, data, 4, seed=0, heldout=heldout)
    ready = ReadinessObjective(cfg, data, 4, seed=0, heldout=heldout)
    neg(model, 0, 0)
    ready(model, 0, 0)
    assert neg.cap.measurements == ready.cap.measurements and neg.cfg.cap == ready.cfg.cap
    restored = NegativeTrainingObjective(cfg, data, 4, seed=0, heldout=heldout)
    restored.load_state_dict(neg.state_dict())
    assert restored.cfg.cap == neg.cfg.cap and restored.summary(data)["cap"]["measurements"] == neg.cap.measurements


def test_an_unmeasured_cap_is_refused_where_a_number_is_needed():
    data = make_blobs(240, seed=0)
    cfg = from_dict(ReadyConfig, KNOBS)
    with pytest.raises(ConfigError, match="initial is known only"):
        calibrate_alpha(toy_model(), data, dataclasses.replace(cfg, alpha="auto"), 4, seed=0)
    with pytest.raises(ConfigError, match="heldout needs the held-out rows"):
        calibrate_alpha(toy_model(), data, dataclasses.replace(cfg, alpha="auto", cap="heldout"), 4, seed=0)
    batch = Batch(data.x[:8], data.y[:8], data.x[8:16], data.y[8:16])
    with pytest.raises(ConfigError, match=r"numeric ready\.cap"):
        readiness_loss(build_method(cfg.method, ClassificationTask(4)), toy_model(), batch, cfg)
    with pytest.raises(ConfigError, match="matches none"):
        from_dict(ReadyConfig, {"cap": "median"}, "ready.")
    with pytest.raises(ConfigError, match="initial, heldout or auto"):
        ReadyConfig(cap="median")  # type: ignore[arg-type]


def test_auto_cap_measures_on_heldout_rows_when_given_else_on_the_starting_weights():
    data, heldout = make_blobs(240, seed=0), make_blobs(60, seed=3)
    cfg = from_dict(ReadyConfig, {**KNOBS, "cap": "auto"})
    model = toy_model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # random requests are warned about on their own
        warnings.filterwarnings("error", message=".*held-out rows")  # rows given: nothing to say about them
        as_heldout = ReadinessObjective(cfg, data, 4, seed=0, heldout=heldout)
    with pytest.warns(UserWarning, match="found no held-out rows"):
        as_initial = ReadinessObjective(cfg, data, 4, seed=0)
    as_heldout(model, 0, 0)
    as_initial(model, 0, 0)
    level = mean_loss(model, heldout, np.arange(len(heldout)), ClassificationTask(4))["cap"]
    (on_heldout,) = as_heldout.cap.measurements
    (on_pool,) = as_initial.cap.measurements
    assert on_heldout["cap"] == pytest.approx(level) and on_heldout["rows"] == 60
    assert on_pool["rows"] == 120 and on_pool["cap"] != pytest.approx(level)  # the pool: classes 1 and 2
    assert as_heldout.summary(data)["cap"]["mode"] == "heldout"
    assert as_initial.summary(data)["cap"] == {"mode": "initial", "requested": "auto", "measurements": [on_pool]}
    # Where a number is needed before training, auto with held-out rows is one: their loss now.
    cal = calibrate_alpha(model, data, dataclasses.replace(cfg, alpha="auto", revocable="random:0.5@1"), 4, seed=0,
                          heldout=heldout, random_size=40, requests=1, budget=5)  # fmt: skip
    assert cal.rule == f"forget_loss ≥ {level}"


def test_alpha_for_random_requests_is_measured_against_the_heldout_level():
    """With ``cap=heldout`` the simulated runs stop where the model's loss on the held-out rows is."""
    rows = make_blobs(300, seed=0)
    data, heldout = rows.subset(np.arange(240)), rows.subset(np.arange(240, 300))  # other rows of the same blobs
    model = toy_model()
    fit(model, data, None, toy_train_config(), show_progress=False)
    cfg = from_dict(ReadyConfig, {**KNOBS, "cap": "heldout", "alpha": "auto", "revocable": "random:0.5@1",
                                  "method": {"name": "ga", "lr": 0.05}})  # fmt: skip
    level = mean_loss(model, heldout, np.arange(len(heldout)), ClassificationTask(4))["cap"]
    cal = calibrate_alpha(model, data, cfg, 4, seed=0, heldout=heldout, random_size=40, requests=2)
    assert cal.rule == f"forget_loss ≥ {level}"
    assert all(cal.reached) and cal.alpha > 0


def test_r2u_train_measures_a_heldout_cap_on_its_validation_split(tmp_path):
    from ready2unlearn.recipes.train import TrainConfig, run

    with pytest.raises(ConfigError, match=r"data\.validation=N"):
        from_dict(TrainConfig, {"epochs": 2, "ready": {"kind": "random", "cap": "heldout"}})
    cfg = from_dict(TrainConfig, {"epochs": 2, "model": {"name": "mlp", "hidden": [16]},
                                  "data": {"name": "digits", "validation": 100},
                                  "ready": {"kind": "random", "cap": "heldout", "alpha": 0.01, "revocable":
                                            "random:0.2@1", "start_epoch": 1}})  # fmt: skip
    out = run(cfg, tmp_path / "run", show_progress=False)
    card = json.loads((tmp_path / "run" / "card.json").read_text())
    caps = card["readiness"]["cap"]["measurements"]
    assert [(m["epoch"], m["rows"]) for m in caps] == [(0, 100), (1, 100)] and card["data"]["fingerprints"]["val"]
    assert out == card
