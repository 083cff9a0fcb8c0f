"""The training-cost probe: the ratio's arithmetic, interleaved step timing, and the probe on a real model."""

from __future__ import annotations

import pytest
import torch

from ready2unlearn.errors import ConfigError
from ready2unlearn.optim import OptimConfig
from ready2unlearn.readiness import ReadyConfig
from ready2unlearn.readiness.calibrate import calibrate_alpha
from ready2unlearn.readiness.timing import TrainingCost, interleaved_step_times, measure_training_cost
from ready2unlearn.task import ClassificationTask
from tests.conftest import make_blobs, toy_model


def test_cost_ratio_adds_the_measured_parts():
    c = TrainingCost(plain_step=0.01, ready_step=0.03, calibration=2.0, steps_per_epoch=100, epochs=4,
                     start_epoch=1, meta_every=2, blocks=5)  # fmt: skip
    assert c.ready_calls == 150  # 3 readiness epochs × 100 steps, every second one
    assert c.standard_seconds == pytest.approx(4.0)
    # 4 s of plain steps + 150 × 0.02 s of readiness terms + 2 s of calibration, over 4 s.
    assert c.ratio == pytest.approx((4.0 + 3.0 + 2.0) / 4.0)
    d = c.to_dict()
    assert d["steps_share"] == pytest.approx(0.75) and d["calibration_share"] == pytest.approx(0.5)
    assert d["step_ratio"] == pytest.approx(3.0) and d["ratio"] == pytest.approx(c.ratio)
    # A readiness step measured as cheaper than a plain one (timer noise) adds nothing, never a saving.
    assert TrainingCost(0.02, 0.01, 0.0, 10, 2, 0, 1, 1).ratio == pytest.approx(1.0)


def test_interleaved_timing_sees_an_expensive_term_and_leaves_the_model_alone():
    train = make_blobs(256)
    model = toy_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    task = ClassificationTask(int(train.y.max()) + 1)

    def heavy(m):  # ten extra forward/backward passes' worth of work
        return sum(task.loss(m, train.x[:64], train.y[:64]) for _ in range(10)) * 0.0

    plain, ready = interleaved_step_times(model, train, task, heavy, batch_size=32, optim=OptimConfig(name="adam"),
                                          blocks=3, steps=4)  # fmt: skip
    assert ready > 2 * plain > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ConfigError):
        interleaved_step_times(model, train, task, heavy, batch_size=32, optim=OptimConfig(), blocks=0)


def test_probe_times_the_calibration_when_alpha_is_measured():
    train = make_blobs(400)
    num_classes = int(train.y.max()) + 1
    model = toy_model()
    cfg = ReadyConfig(kind="class", method={"name": "ga", "lr": 1e-2})
    cost = measure_training_cost(model, train, cfg, num_classes, epochs=4, batch_size=32, optim=OptimConfig(),
                                 blocks=2, steps=2)  # fmt: skip
    assert cost.calibration > 0 and cost.start_epoch == 1 and cost.meta_every == cfg.resolved().meta_every
    assert cost.steps_per_epoch == 13 and cost.ratio > 1 and cost.calibration_source == "this model"
    # The ready run's own timed measurement is used as it is (its α drives the timed steps).
    own = calibrate_alpha(model, train, cfg, num_classes)
    own.seconds = 123.0
    reused = measure_training_cost(model, train, cfg, num_classes, epochs=4, batch_size=32, optim=OptimConfig(),
                                   blocks=1, steps=1, calibration=own)  # fmt: skip
    assert reused.calibration == 123.0 and reused.calibration_source == "ready run"
    fixed = measure_training_cost(model, train, ReadyConfig(kind="class", alpha=0.01), num_classes, epochs=4,
                                  batch_size=32, optim=OptimConfig(), blocks=2, steps=2)  # fmt: skip
    assert fixed.calibration == 0.0 and fixed.start_epoch == 0 and fixed.calibration_source == "none"
