"""Pool flooding (readiness/flooding.py) and fit's ``batch_loss`` hook."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ready2unlearn.engine.fit import fit
from ready2unlearn.errors import ConfigError
from ready2unlearn.readiness.flooding import PoolFlooding
from tests.conftest import make_blobs, toy_model, toy_train_config

POOL = "class:1,2"


def _pool_loss(model: torch.nn.Module, data, classes=(1, 2)) -> float:
    rows = torch.isin(data.y, torch.tensor(classes))
    with torch.no_grad():
        return F.cross_entropy(model.eval()(data.x[rows]), data.y[rows]).item()


def test_a_mean_batch_loss_trains_exactly_like_the_plain_loop():
    data = make_blobs(240, seed=0)
    plain, hooked = toy_model(), toy_model()
    fit(plain, data, None, toy_train_config(), show_progress=False)
    seen = []

    def mean(model, losses, positions, step, epoch):
        seen.append((len(losses), int(positions.max()), step, epoch))
        return losses.mean()

    fit(hooked, data, None, toy_train_config(), show_progress=False, batch_loss=mean)
    for a, b in zip(plain.parameters(), hooked.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert seen[0] == (32, seen[0][1], 0, 0) and seen[-1][3] == toy_train_config().epochs - 1
    with pytest.raises(ValueError, match="not both"):
        fit(toy_model(), data, None, toy_train_config(), show_progress=False, batch_loss=mean,
            sample_weight=torch.ones(len(data)))  # fmt: skip


def test_below_the_level_a_step_ascends_the_pool_and_descends_the_rest():
    data = make_blobs(240, seed=0)
    model = toy_model()
    fit(model, data, None, toy_train_config(), show_progress=False)  # fitted: the pool's loss is far below 1
    flood = PoolFlooding(data, POOL, 4, level=1.0, start_epoch=0)
    positions = torch.arange(len(data))
    before_pool, before_rest = _pool_loss(model, data), _pool_loss(model, data, (0, 3))
    assert before_pool < 1.0
    model.train()
    loss = flood(model, F.cross_entropy(model(data.x), data.y, reduction="none"), positions, 0, 0)
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.05 * p.grad
    assert _pool_loss(model, data) > before_pool  # flooded: gradient ascent on the pool's rows
    assert _pool_loss(model, data, (0, 3)) <= before_rest + 1e-6  # plain descent on the stable rows
    assert flood.epochs[0]["below"] == 1


def test_training_holds_the_pool_near_the_heldout_level_and_records_it():
    rows = make_blobs(400, seed=0)
    noise = 2.0 * torch.randn(rows.x.shape, generator=torch.Generator().manual_seed(0))
    rows = dataclasses.replace(rows, x=rows.x + noise)  # overlapping classes: unseen rows keep a real loss
    train, heldout = rows.subset(np.arange(320)), rows.subset(np.arange(320, 400))
    cfg = toy_train_config()
    standard, flooded = toy_model(), toy_model()
    fit(standard, train, None, cfg, show_progress=False)
    flood = PoolFlooding(train, POOL, 4, heldout=heldout, start_epoch=2)
    fit(flooded, train, None, cfg, show_progress=False, batch_loss=flood)
    level = flood.level.value
    assert level is not None and [m["epoch"] for m in flood.level.measurements] == list(range(2, cfg.epochs))
    assert _pool_loss(flooded, train) > 1.5 * _pool_loss(standard, train)  # not memorised past the level
    assert abs(_pool_loss(flooded, train) - level) < abs(_pool_loss(standard, train) - level)
    summary = flood.summary(train)
    assert summary["start_epoch"] == 2 and [e["epoch"] for e in summary["per_epoch"]] == list(range(2, cfg.epochs))
    assert summary["level"]["mode"] == "heldout" and summary["pool_rows"] == 160

    resumed = PoolFlooding(train, POOL, 4, heldout=heldout, start_epoch=2)
    resumed.load_state_dict(flood.state_dict())
    assert resumed.level.value == level and resumed.summary(train) == summary


def test_a_heldout_level_needs_heldout_rows():
    data = make_blobs(100, seed=0)
    with pytest.raises(ConfigError, match="heldout="):
        PoolFlooding(data, POOL, 4)
    with pytest.raises(ConfigError, match="flood level"):
        PoolFlooding(data, POOL, 4, level="initial")
