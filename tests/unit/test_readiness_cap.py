"""ready.cap=initial: the forget-term cap measured on the weights training starts from."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from ready2unlearn.config import from_dict
from ready2unlearn.engine.fit import fit
from ready2unlearn.errors import ConfigError
from ready2unlearn.readiness import ReadinessObjective, ReadyConfig, readiness_loss
from ready2unlearn.readiness.baselines import NegativeTrainingObjective
from ready2unlearn.readiness.calibrate import calibrate_alpha
from ready2unlearn.readiness.cap import CAP_ROWS, initial_cap
from ready2unlearn.task import ClassificationTask
from ready2unlearn.unlearn import Batch, build_method
from tests.conftest import make_blobs, toy_model, toy_train_config

#: Random requests from classes 1 and 2, fixed λ and α, readiness from the second epoch.
KNOBS = {"kind": "random", "revocable": "class:1,2", "cap": "initial", "alpha": 0.01, "dual": False, "lam": 0.1,
         "meta_every": 2, "start_epoch": 1}  # fmt: skip


def _pool_loss(model: torch.nn.Module, data, classes=(1, 2)) -> float:
    rows = torch.isin(data.y, torch.tensor(classes))
    with torch.no_grad():
        return F.cross_entropy(model.eval()(data.x[rows]), data.y[rows]).item()


def test_cap_is_the_pools_loss_under_the_starting_weights_even_when_readiness_starts_later():
    data, test = make_blobs(240, seed=0), make_blobs(80, seed=1)
    model = toy_model()
    start = _pool_loss(copy.deepcopy(model), data)
    obj = ReadinessObjective(from_dict(ReadyConfig, KNOBS), data, 4, seed=0)
    fit(model, data, test, toy_train_config(), show_progress=False, regularizer=obj)
    assert obj.initial_cap is not None and obj.initial_cap["rows"] == 120
    assert obj.initial_cap["cap"] == pytest.approx(start, rel=1e-5)
    assert obj.cfg.cap == obj.initial_cap["cap"] and obj.calls > 0  # the readiness steps ran with it
    trained = _pool_loss(model, data)
    assert trained < 0.5 * start  # the pool was learned afterwards: measured later, the cap would be another one
    summary = obj.summary(data)
    assert summary["initial_cap"] == obj.initial_cap and summary["resolved"]["cap"] == obj.initial_cap["cap"]


def test_a_resumed_run_keeps_the_measured_cap_and_one_without_it_is_refused():
    data = make_blobs(240, seed=0)
    cfg = from_dict(ReadyConfig, KNOBS)
    first = ReadinessObjective(cfg, data, 4, seed=0)
    first(toy_model(), 0, 0)
    resumed = ReadinessObjective(cfg, data, 4, seed=0)
    resumed.load_state_dict(first.state_dict())
    assert resumed.cfg.cap == first.cfg.cap and resumed.initial_cap == first.initial_cap
    loss, parts = resumed(toy_model(), 10, 1)  # past step 0: no new measurement needed
    assert loss is not None and parts["cap_saturated"] in (0.0, 1.0)
    with pytest.raises(ConfigError, match="step 10"):
        ReadinessObjective(cfg, data, 4, seed=0)(toy_model(), 10, 1)


def test_a_large_pool_is_subsampled_reproducibly():
    data = make_blobs(800, seed=0)
    model, task = toy_model(), ClassificationTask(4)
    pool = torch.arange(600).numpy()
    a = initial_cap(model, data, pool, task, step=0, seed=1)
    assert a["rows"] == CAP_ROWS and a == initial_cap(model, data, pool, task, step=0, seed=1)
    assert a["cap"] != initial_cap(model, data, pool, task, step=0, seed=2)["cap"]


def test_negative_training_measures_the_same_cap():
    data = make_blobs(240, seed=0)
    cfg = from_dict(ReadyConfig, KNOBS)
    model = toy_model()
    neg, ready = NegativeTrainingObjective(cfg, data, 4, seed=0), ReadinessObjective(cfg, data, 4, seed=0)
    neg(model, 0, 0)
    ready(model, 0, 0)
    assert neg.initial_cap == ready.initial_cap and neg.cfg.cap == ready.cfg.cap
    restored = NegativeTrainingObjective(cfg, data, 4, seed=0)
    restored.load_state_dict(neg.state_dict())
    assert restored.cfg.cap == neg.cfg.cap and restored.summary(data)["initial_cap"] == neg.initial_cap


def test_an_unmeasured_cap_is_refused_where_a_number_is_needed():
    data = make_blobs(240, seed=0)
    cfg = from_dict(ReadyConfig, KNOBS)
    with pytest.raises(ConfigError, match="cap=initial"):
        calibrate_alpha(toy_model(), data, dataclasses.replace(cfg, alpha="auto"), 4, seed=0)
    batch = Batch(data.x[:8], data.y[:8], data.x[8:16], data.y[8:16])
    with pytest.raises(ConfigError, match=r"numeric ready\.cap"):
        readiness_loss(build_method(cfg.method, ClassificationTask(4)), toy_model(), batch, cfg)
    with pytest.raises(ConfigError, match="matches none"):
        from_dict(ReadyConfig, {"cap": "auto"}, "ready.")
    with pytest.raises(ConfigError, match="positive number or initial"):
        ReadyConfig(cap="auto")  # type: ignore[arg-type]
