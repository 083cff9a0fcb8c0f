"""Readiness objective, second form: eval-mode scoring, the dual λ, calibrated α, a held-out resistance term."""

from __future__ import annotations

import copy
import dataclasses
import json
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ready2unlearn.config import from_dict, to_dict
from ready2unlearn.engine.fit import fit
from ready2unlearn.engine.method import Context
from ready2unlearn.engine.stop import StopConfig
from ready2unlearn.engine.unlearn import unlearn_model
from ready2unlearn.engine.unlearn_config import UnlearnConfig
from ready2unlearn.errors import ConfigError
from ready2unlearn.readiness import ReadinessObjective, ReadyConfig, readiness_loss, trainable_params
from ready2unlearn.readiness import calibrate as calibrate_mod
from ready2unlearn.readiness.calibrate import calibrate_alpha
from ready2unlearn.readiness.dual import DualLambda
from ready2unlearn.readiness.objective import QUIET_MIN_UPDATES
from ready2unlearn.readiness.sampler import RequestSampler
from ready2unlearn.unlearn import Batch, ClassificationTask, build_method
from tests.conftest import make_blobs, toy_train_config


def _train_cfg(epochs: int):
    return dataclasses.replace(toy_train_config(), epochs=epochs)


TASK = ClassificationTask(4)


def _bn_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3),
                         nn.Linear(16, 4))  # fmt: skip


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4))


def _one_class_batch(n: int = 16) -> Batch:
    data = make_blobs(128, seed=0)
    f = data.y == 1
    return Batch(data.x[f][:n], data.y[f][:n], data.x[~f][:n], data.y[~f][:n])


def _trained_bn_net() -> nn.Module:
    model = _bn_net()
    fit(model, make_blobs(240, seed=0), None, _train_cfg(3), show_progress=False)
    return model.train()


# -- eval-mode scoring ----------------------------------------------------------------------------------------
def test_eval_scoring_sees_the_model_as_the_stop_rule_does():
    """With a vanishing inner step, eval-mode scoring equals the eval-mode loss of the model itself."""
    model, batch = _trained_bn_net(), _one_class_batch()
    for norm_stats in ("frozen", "update"):
        cfg = ReadyConfig(kind="class", alpha=1e-12, dual=False, retention=1.0, efficiency=1.0, cap=100.0,
                          method={"name": "ga", "norm_stats": norm_stats}, score_mode="eval")  # fmt: skip
        _, parts = readiness_loss(build_method(cfg.method, TASK), model, batch, cfg)
        # The simulated GA step runs as the deployed unlearner does: with batch norm frozen (the default) the
        # state is scored with the model's own running statistics; with norm_stats=update they first take one
        # update from the forget batch. Everything else is unchanged.
        ref = copy.deepcopy(model)
        if norm_stats == "update":
            with torch.no_grad():
                ref(batch.forget_x)
        ref.eval()
        with torch.no_grad():
            want_f = F.cross_entropy(ref(batch.forget_x), batch.forget_y).item()
            want_r = F.cross_entropy(ref(batch.retain_x), batch.retain_y).item()
        assert parts["forget_after"] == pytest.approx(want_f, rel=1e-4), norm_stats
        assert parts["retain_after"] == pytest.approx(want_r, rel=1e-4), norm_stats


def test_train_scoring_of_a_one_class_batch_differs_under_batchnorm():
    """The defect eval scoring fixes: BatchNorm normalises a one-class batch by its own statistics."""
    model, batch = _trained_bn_net(), _one_class_batch()
    base = ReadyConfig(kind="class", alpha=1e-12, dual=False, cap=100.0, score_mode="eval")
    torch.manual_seed(0)
    _, ev = readiness_loss(build_method(base.method, TASK), model, batch, base)
    torch.manual_seed(0)
    _, tr = readiness_loss(build_method(base.method, TASK), model, batch, dataclasses.replace(base, score_mode="train"))
    assert abs(ev["forget_after"] - tr["forget_after"]) > 0.05
    assert model.training  # the mode is restored


def test_mixed_scoring_normalises_the_retain_batch_by_its_own_statistics():
    """``mixed``: forget terms as the stop rule sees them; the retain term with batch statistics, no dropout."""
    model, batch = _trained_bn_net(), _one_class_batch()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = ReadyConfig(kind="class", alpha=1e-12, dual=False, cap=100.0, score_mode="mixed")
    _, parts = readiness_loss(build_method(cfg.method, TASK), model, batch, cfg)
    ref = copy.deepcopy(model).eval()
    with torch.no_grad():
        want_f = F.cross_entropy(ref(batch.forget_x), batch.forget_y).item()  # running statistics
        ref[2].train()  # the BatchNorm layer only: dropout stays off
        want_r = F.cross_entropy(ref(batch.retain_x), batch.retain_y).item()
    assert parts["forget_after"] == pytest.approx(want_f, rel=1e-4)
    assert parts["retain_after"] == pytest.approx(want_r, rel=1e-4)
    _, ev = readiness_loss(build_method(cfg.method, TASK), model, batch, dataclasses.replace(cfg, score_mode="eval"))
    assert abs(ev["retain_after"] - parts["retain_after"]) > 1e-3  # it is a different scoring under BatchNorm
    # The retain pass's running-statistics update reaches neither the model nor the forget scoring.
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert ev["forget_after"] == pytest.approx(parts["forget_after"], rel=1e-6)
    assert all(m.training for m in model.modules())  # every module's mode is restored


def test_mixed_retain_gradient_passes_through_the_batch_statistics():
    """Batch-normalised, the retain loss does not change when the layer before BatchNorm is scaled, so its
    gradient has no component along that layer's weights; through running statistics it has one."""
    model, batch = _trained_bn_net(), _one_class_batch()
    radial = {}
    for mode in ("mixed", "eval"):
        model.zero_grad()
        cfg = ReadyConfig(kind="class", alpha=1e-12, dual=False, cap=100.0, efficiency=0.0, score_mode=mode)
        loss, _ = readiness_loss(build_method(cfg.method, TASK), model, batch, cfg)
        loss.backward()
        lin = model[1]
        radial[mode] = ((lin.weight.grad * lin.weight).sum() + (lin.bias.grad * lin.bias).sum()).item()
    assert abs(radial["mixed"]) < 1e-3 < abs(radial["eval"])


def test_mixed_scoring_equals_eval_scoring_without_normalisation_layers():
    model, batch = _mlp(), _one_class_batch()
    cfg = ReadyConfig(kind="class", alpha=0.1, dual=False, cap=100.0, score_mode="mixed")
    mixed, pm = readiness_loss(build_method(cfg.method, TASK), model, batch, cfg)
    ev, pe = readiness_loss(build_method(cfg.method, TASK), model, batch, dataclasses.replace(cfg, score_mode="eval"))
    assert mixed.item() == ev.item() and pm == pe


# -- the dual λ -----------------------------------------------------------------------------------------------
def test_dual_lambda_grows_while_violated_decays_when_met_and_is_clipped():
    d = DualLambda(0.01, lr=0.5, lam_max=0.05)
    for _ in range(3):
        d.update(forget_after=1.0, cap=5.0)  # not honoured
    assert d.lam > 0.01
    for _ in range(50):
        d.update(forget_after=0.0, cap=5.0)
    assert d.lam == pytest.approx(0.05)  # clipped at the utility guard
    assert d.summary()["at_lam_max_fraction"] > 0.5
    high = d.lam
    d.update(forget_after=50.0, cap=5.0)  # honoured with room to spare
    assert d.lam < high
    assert d.update(float("nan"), 5.0) >= d.lam_min


def test_dual_objective_weights_only_the_forget_terms_and_records_lambda():
    data = make_blobs(240, seed=0)
    cfg = from_dict(
        ReadyConfig, {"kind": "class", "dual": True, "lam": 0.2, "alpha": 0.05, "retention": 0.5, "meta_every": 1}
    )
    obj = ReadinessObjective(cfg, data, 4, seed=0)
    model = _mlp()
    loss, parts = obj(model, 0, 0)
    assert parts["lam"] == pytest.approx(0.2)
    # L = retention · R_after − λ · (min(F_after, cap) − F_before): the class default scores the gain.
    assert cfg.resolved().forget_term == "gain"
    gain = min(parts["forget_after"], cfg.resolved().cap) - parts["forget_before"]
    want = 0.5 * parts["retain_after"] - 0.2 * gain
    assert loss.item() == pytest.approx(want, rel=1e-4, abs=1e-6)
    assert obj.dual is not None and obj.dual.lam > 0.2  # far from honoured: λ went up
    summary = obj.summary(data)
    assert summary["dual"]["lam"] == pytest.approx(obj.dual.lam)


def test_dual_training_honours_simulated_requests_that_fixed_small_lambda_does_not():
    data = make_blobs(240, seed=0)
    common = {"kind": "class", "lam": 0.01, "alpha": 0.05, "cap": 3.0, "first_order": True, "meta_every": 1,
              "forget_term": "level"}  # fmt: skip
    out = {}
    for dual in (False, True):
        model = _mlp()
        knobs = {**common, "dual": dual, "lam_max": 2.0, "dual_lr": 0.5}
        obj = ReadinessObjective(from_dict(ReadyConfig, knobs), data, 4, seed=0)
        fit(model, data, None, _train_cfg(6), show_progress=False, regularizer=obj)
        out[dual] = obj.summary(data)["mean_parts"]["forget_after"]
    # Blobs this well separated resist even λ = lam_max, but the dual λ rises and pushes harder than a fixed
    # small λ (mean simulated forget loss 0.51 vs 0.37).
    assert out[True] > out[False] + 0.1


# -- resistance simulates the real attack ---------------------------------------------------------------------
def test_resistance_relearns_on_some_forget_samples_and_scores_the_others():
    model, batch = _mlp(), _one_class_batch(12)
    cfg = ReadyConfig(kind="class", alpha=0.1, dual=False, retention=0.0, efficiency=0.0, resistance=1.0,
                      relearn_size=4, relearn_steps=3, relearn_alpha=0.2, cap=100.0, first_order=True)  # fmt: skip
    _, parts = readiness_loss(build_method(cfg.method, TASK), model, batch, cfg)
    # By hand: one GA step of size α on F, then 3 SGD steps on the first 4 forget samples, scored on the rest.
    ref = copy.deepcopy(model)
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    (-F.cross_entropy(ref(batch.forget_x), batch.forget_y)).backward()
    opt.step()
    opt = torch.optim.SGD(ref.parameters(), lr=0.2)
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(ref(batch.forget_x[:4]), batch.forget_y[:4]).backward()
        opt.step()
    with torch.no_grad():
        want = F.cross_entropy(ref(batch.forget_x[4:]), batch.forget_y[4:]).item()
    assert parts["forget_relearned"] == pytest.approx(want, rel=1e-4)


# -- calibration ----------------------------------------------------------------------------------------------
def test_calibrated_alpha_is_lr_times_the_median_steps_of_real_runs():
    data = make_blobs(240, seed=0)
    model = _mlp()
    fit(model, data, None, _train_cfg(4), show_progress=False)
    cfg = from_dict(ReadyConfig, {"kind": "class", "revocable": "class:1,2", "method": {"name": "ga", "lr": 0.01}})
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cal = calibrate_alpha(model, data, cfg, 4, requests=3, budget=400, seed=0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the model is untouched
    # The class default asks for the request to be honoured at twice the measured displacement.
    assert cal.factor == 2.0 and cal.displacement == pytest.approx(0.01 * float(np.median(cal.steps)))
    assert cal.alpha == pytest.approx(2.0 * cal.displacement)
    assert all(cal.reached) and all(s > 1 for s in cal.steps)
    # Same draw, run by hand through the engine: the same step count.
    sampler = RequestSampler(data, cfg.resolved(), 4, 0)
    rows, _ = sampler.sample_positions()
    forget = np.sort(sampler.unit_rows(int(rows[0])))
    from ready2unlearn.data.request import DeletionRequest, RequestViews

    keep = np.setdiff1d(np.arange(len(data)), forget)
    empty = data.subset(np.empty(0, dtype=np.int64))
    views = RequestViews(DeletionRequest.for_samples(data.ids[forget].tolist()), data.subset(forget),
                         data.subset(keep), empty, empty, forget)  # fmt: skip
    stop = StopConfig(rule="forget_acc", target=0.01, max_steps=400, eval_every=2, retain_eval_size=200)
    res = unlearn_model(copy.deepcopy(model), views, build_method(cfg.method, TASK),
                        UnlearnConfig(method=cfg.method, stop=stop, seed=0),
                        Context(TASK, torch.Generator().manual_seed(0), torch.device("cpu")))  # fmt: skip
    assert res.steps == cal.steps[0]


def test_fast_calibration_judges_fewer_samples_less_often(monkeypatch):
    data = make_blobs(1200, seed=0)  # 300 rows per class: more than the fast subset
    model = _mlp()
    fit(model, data, None, _train_cfg(2), show_progress=False)
    seen = []
    real = calibrate_mod.unlearn_model

    def spy(model, views, method, ucfg, ctx, **kw):
        seen.append(ucfg.stop)
        return real(model, views, method, ucfg, ctx, **kw)

    monkeypatch.setattr(calibrate_mod, "unlearn_model", spy)
    out = {}
    for mode in ("full", "fast"):
        cfg = from_dict(ReadyConfig, {"kind": "class", "method": {"name": "ga", "lr": 0.01}, "calibration": mode})
        out[mode] = calibrate_alpha(model, data, cfg, 4, requests=2, budget=400, seed=0)
    full, fast = seen[:2], seen[2:]
    assert {(s.eval_every, s.forget_eval_size, s.retain_eval_size) for s in full} == {(2, None, 200)}
    assert {(s.eval_every, s.forget_eval_size, s.retain_eval_size) for s in fast} == {(4, 256, 32)}
    # Same simulated requests; the stop is only resolved to the check cadence, so the steps agree within it.
    assert out["fast"].forget_sizes == out["full"].forget_sizes
    assert all(abs(a - b) <= 4 for a, b in zip(out["fast"].steps, out["full"].steps, strict=True))
    # Unset, it is left out of the config's dict and resolves per request kind: fast for class requests.
    assert "calibration" not in to_dict(ReadyConfig()) and to_dict(cfg)["calibration"] == "fast"
    assert ReadyConfig(kind="class").resolved().calibration == "fast"
    assert ReadyConfig(kind="random").resolved().calibration == "full"
    assert ReadyConfig(kind="class", calibration="full").resolved().calibration == "full"
    with pytest.raises(ConfigError, match="calibration"):
        ReadyConfig(calibration="slow")  # type: ignore[arg-type]


def test_alpha_auto_needs_a_warm_up_and_is_measured_when_readiness_starts():
    data = make_blobs(240, seed=0)
    with pytest.raises(ConfigError, match="start_epoch"):
        ReadinessObjective(from_dict(ReadyConfig, {"alpha": "auto"}), data, 4)
    cfg = from_dict(
        ReadyConfig, {"kind": "class", "alpha": "auto", "start_epoch": 2, "method": {"name": "ga", "lr": 0.01}}
    )
    obj = ReadinessObjective(cfg, data, 4, seed=0)
    model = _mlp()
    fit(model, data, None, _train_cfg(3), show_progress=False, regularizer=obj)
    card = obj.summary(data)
    assert card["calibration"]["alpha"] == pytest.approx(card["resolved"]["alpha"])
    assert card["resolved"]["alpha"] > 0 and card["meta_steps"] > 0


def test_a_saturated_fixed_cap_warns():
    data = make_blobs(240, seed=0)
    cfg = from_dict(ReadyConfig, {"kind": "class", "dual": False, "alpha": 5.0, "cap": 0.01, "lam": 0.1})
    obj = ReadinessObjective(cfg, data, 4, seed=0)
    obj(_mlp(), 0, 0)
    with pytest.warns(UserWarning, match="past ready.cap"):
        card = obj.summary(data)
    assert card["cap_saturation"] == 1.0 and "warning" in card


def test_a_quiet_dual_run_warns_and_an_active_one_does_not():
    """Requests honoured on nearly every step (λ decays, the forget term idles) are reported; a run that kept
    the constraint busy is not."""
    data = make_blobs(240, seed=0)
    cfg = from_dict(ReadyConfig, {"kind": "class", "dual": True, "lam": 0.03, "alpha": 0.05, "cap": 5.0})
    quiet = ReadinessObjective(cfg, data, 4, seed=0)
    quiet.calls = 1
    for _ in range(QUIET_MIN_UPDATES):
        quiet.dual.update(forget_after=9.0, cap=5.0)  # honoured with room to spare every time
    with pytest.warns(UserWarning, match="already honoured on 100%"):
        card = quiet.summary(data)
    assert card["dual"]["lam"] < card["dual"]["lam_start"] == pytest.approx(0.03) and "warning" in card

    busy = ReadinessObjective(cfg, data, 4, seed=0)
    busy.calls = 1
    for i in range(QUIET_MIN_UPDATES):
        busy.dual.update(forget_after=9.0 if i % 2 else 1.0, cap=5.0)  # violated on half the steps
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "warning" not in busy.summary(data)

    short = ReadinessObjective(cfg, data, 4, seed=0)
    short.calls = 1
    short.dual.update(forget_after=9.0, cap=5.0)  # one update says nothing yet
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "warning" not in short.summary(data)


def test_the_dual_lambdas_start_survives_a_resume():
    d = DualLambda(0.03)
    d.update(forget_after=9.0, cap=5.0)
    e = DualLambda(0.5)
    e.load_state_dict(json.loads(json.dumps(d.state_dict())))
    assert e.summary() == d.summary() and e.summary()["lam_start"] == pytest.approx(0.03)


def test_trainable_params_only_enter_the_dual_objective():
    model = _mlp()
    model[1].weight.requires_grad_(False)
    data = make_blobs(240, seed=0)
    obj = ReadinessObjective(from_dict(ReadyConfig, {"kind": "class", "alpha": 0.05}), data, 4, seed=0)
    loss, _ = obj(model, 0, 0)
    loss.backward()
    assert model[1].weight.grad is None and all(p.grad is not None for p in trainable_params(model).values())


def test_a_resumed_ready_run_keeps_its_measured_alpha_and_dual_lambda(tmp_path):
    """alpha=auto and the dual λ are state: a crash and --resume must continue them, not start them over."""
    data = make_blobs(240, seed=0)
    knobs = {"kind": "class", "alpha": "auto", "start_epoch": 1, "method": {"name": "ga", "lr": 0.01}}

    def objective() -> ReadinessObjective:
        return ReadinessObjective(from_dict(ReadyConfig, knobs), data, 4, seed=0)

    full_obj, full = objective(), _mlp()
    fit(full, data, None, _train_cfg(4), show_progress=False, regularizer=full_obj)

    class Crash(Exception):
        pass

    def crash_after_2(row):
        if row["epoch"] == 2:
            raise Crash

    state = tmp_path / "state"
    with pytest.raises(Crash):
        fit(_mlp(), data, None, _train_cfg(4), state_dir=state, show_progress=False, regularizer=objective(),
            on_epoch=crash_after_2)  # fmt: skip
    resumed_obj, resumed = objective(), _mlp(seed=5)
    fit(resumed, data, None, _train_cfg(4), state_dir=state, resume_from_state=True, show_progress=False,
        regularizer=resumed_obj)  # fmt: skip
    assert resumed_obj.calibration == full_obj.calibration  # restored, not measured again on the resumed model
    assert resumed_obj.summary(data)["dual"] == full_obj.summary(data)["dual"]
    for a, b in zip(full.parameters(), resumed.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
