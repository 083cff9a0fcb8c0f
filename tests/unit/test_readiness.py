"""Readiness training: the functional inner loop, meta-gradients, the sampler and the knobs."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ready2unlearn.config import from_dict
from ready2unlearn.errors import ConfigError, RequestError
from ready2unlearn.readiness import (
    ReadinessObjective,
    ReadyConfig,
    RequestSampler,
    readiness_loss,
    simulate_unlearning,
    trainable_params,
)
from ready2unlearn.unlearn import Batch, ClassificationTask, build_method
from tests.conftest import make_blobs

TASK = ClassificationTask(4)
#: The fixed-λ form these mechanics tests were written for (the shipped class defaults are now dual / alpha=auto).
FIXED = {"alpha": 0.01, "dual": False, "meta_every": 1, "forget_term": "level"}


def _batch(seed: int = 0, n: int = 16) -> Batch:
    data = make_blobs(64, seed=seed)
    return Batch(data.x[:n], data.y[:n], data.x[n : 2 * n], data.y[n : 2 * n])


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4))


class _BNNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU())
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class _TiedNet(nn.Module):
    """Encoder/decoder sharing one weight matrix (like tied LM embeddings)."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Linear(8, 4, bias=False)
        self.mid = nn.Linear(4, 8)
        self.dec = nn.Linear(8, 4, bias=False)
        self.dec.weight = self.enc.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dec(torch.tanh(self.mid(self.enc(x.flatten(1)))))


def _sgd_reference(model: nn.Module, method_name: str, batch: Batch, steps: int, lr: float,
                   optim: type[torch.optim.Optimizer] = torch.optim.SGD) -> dict[str, torch.Tensor]:  # fmt: skip
    """The same unlearning run on a deep copy with a plain ``torch.optim`` loop (SGD unless ``optim``)."""
    ref = copy.deepcopy(model)
    method = build_method({"name": method_name}, TASK)
    if method_name in ("npo", "ga_kl"):
        method.snapshot_reference(model)
    opt = optim([p for p in ref.parameters() if p.requires_grad], lr=lr)
    for j in range(steps):
        loss, _ = method.loss(ref, batch, step=j)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return dict(ref.named_parameters())


@pytest.mark.parametrize("method_name", ["ga", "grad_diff", "npo"])
@pytest.mark.parametrize("first_order", [False, True])
def test_adam_inner_loop_matches_torch_optim_adam(method_name, first_order):
    """``optimizer="adam"``: the functional steps are the ones ``torch.optim.Adam`` takes from fresh moments."""
    model = _mlp()
    batch = _batch()
    theta = _functional(model, method_name, batch, steps=3, lr=0.01, first_order=first_order, optimizer="adam")
    expected = _sgd_reference(model, method_name, batch, steps=3, lr=0.01, optim=torch.optim.Adam)
    for name, p in theta.items():
        torch.testing.assert_close(p, expected[name], rtol=1e-4, atol=1e-6)
    # Adam's first step moves every coordinate with a gradient by about α, whatever the gradient's scale
    one = _functional(model, "ga", batch, steps=1, lr=0.01, optimizer="adam")
    moved = torch.cat([(one[n] - p).abs().flatten() for n, p in model.named_parameters()])
    assert torch.allclose(moved[moved > 0], torch.full_like(moved[moved > 0], 0.01), rtol=1e-3)
    with pytest.raises(ValueError, match="inner optimizer"):
        _functional(model, "ga", batch, steps=1, lr=0.01, optimizer="rmsprop")


def test_second_order_adam_inner_step_reaches_the_meta_gradient():
    """Through the Adam steps the meta-gradient exists and differs from the first-order one."""
    model, batch = _mlp(), _batch()
    grads = {}
    for first_order in (False, True):
        theta = trainable_params(model)
        theta_k = _functional(model, "ga", batch, steps=2, lr=0.01, first_order=first_order, optimizer="adam",
                              params=theta)  # fmt: skip
        loss = F.cross_entropy(torch.func.functional_call(model, theta_k, (batch.forget_x,)), batch.forget_y)
        grads[first_order] = torch.autograd.grad(loss, list(theta.values()))
    assert all(torch.isfinite(g).all() for g in grads[False])
    assert any(not torch.allclose(a, b) for a, b in zip(grads[False], grads[True], strict=True))
    # a parameter whose gradient is exactly 0 (v̂ = 0) keeps the meta-gradient finite
    dead = torch.nn.Linear(3, 2)
    dead.weight.data.zero_()
    params = trainable_params(dead)
    x = torch.zeros(4, 3)  # zero inputs: the weight's gradient is exactly 0, the bias's is not
    method = build_method({"name": "ga"}, TASK)
    batch_dead = Batch(forget_x=x, forget_y=torch.tensor([0, 1, 0, 1]))
    theta_k = simulate_unlearning(method, dead, batch_dead, steps=2, alpha=0.01, params=params, optimizer="adam")
    out = F.cross_entropy(torch.func.functional_call(dead, theta_k, (x + 1,)), torch.tensor([0, 1, 0, 1]))
    assert all(torch.isfinite(g).all() for g in torch.autograd.grad(out, list(params.values())))


def test_inner_optimizer_knob_keeps_old_config_dicts():
    """Unset, the knob is not in the config's dict: cache keys of ready models trained before stay the same."""
    from ready2unlearn.config import to_dict

    assert "inner_optimizer" not in to_dict(ReadyConfig())
    assert to_dict(ReadyConfig(inner_optimizer="method"))["inner_optimizer"] == "method"
    with pytest.raises(ConfigError):
        ReadyConfig(inner_optimizer="adam")


def _functional(model: nn.Module, method_name: str, batch: Batch, steps: int, lr: float, **kw):
    method = build_method({"name": method_name}, TASK)
    if method_name in ("npo", "ga_kl"):
        method.snapshot_reference(model)
    return simulate_unlearning(method, model, batch, steps=steps, alpha=lr, **kw)


@pytest.mark.parametrize("method_name", ["ga", "grad_diff", "ga_kl", "npo", "simnpo"])
@pytest.mark.parametrize("first_order", [False, True])
def test_inner_loop_matches_torch_optim_sgd(method_name, first_order):
    model = _mlp()
    batch = _batch()
    theta = _functional(model, method_name, batch, steps=3, lr=0.05, first_order=first_order)
    expected = _sgd_reference(model, method_name, batch, steps=3, lr=0.05)
    for name, p in theta.items():
        torch.testing.assert_close(p, expected[name], rtol=1e-5, atol=1e-6)
    # the model itself is untouched
    for name, p in model.named_parameters():
        torch.testing.assert_close(p, _mlp().state_dict()[name])


def test_simulated_ga_step_raises_forget_loss_and_descent_would_lower_it():
    model = _mlp()
    batch = _batch()
    before = TASK.loss(model, batch.forget_x, batch.forget_y)
    theta = _functional(model, "ga", batch, steps=1, lr=0.05)
    after = TASK.loss(model, batch.forget_x, batch.forget_y, theta)
    assert after > before
    # the sign is the method's, not the loop's: one simulated step of *descent* (grad_diff with w_f=0) lowers it
    descent = build_method({"name": "grad_diff", "forget_weight": 0.0}, TASK)
    retain_only = Batch(batch.forget_x, batch.forget_y, batch.forget_x, batch.forget_y)
    theta_d = simulate_unlearning(descent, model, retain_only, steps=1, alpha=0.05)
    assert TASK.loss(model, batch.forget_x, batch.forget_y, theta_d) < before


def _meta_loss(model, batch, theta):
    return TASK.loss(model, batch.retain_x, batch.retain_y, theta) - TASK.loss(
        model, batch.forget_x, batch.forget_y, theta
    )


def test_second_order_meta_gradient_matches_create_graph_and_hessian_vector_product():
    torch.set_default_dtype(torch.float64)
    try:
        model = _mlp()
        batch = _batch()
        batch = Batch(
            *(
                t.double() if t.is_floating_point() else t
                for t in (batch.forget_x, batch.forget_y, batch.retain_x, batch.retain_y)
            )
        )
        params = trainable_params(model)
        names = list(params)
        alpha = 0.1
        theta = _functional(model, "ga", batch, steps=1, lr=alpha)
        second = torch.autograd.grad(_meta_loss(model, batch, theta), [params[n] for n in names])

        # Independent: hand-written one-step unrolled loss with create_graph=True.
        def inner(p):
            return -TASK.loss(model, batch.forget_x, batch.forget_y, p)

        g = torch.autograd.grad(inner(params), [params[n] for n in names], create_graph=True)
        unrolled = {n: params[n] - alpha * gi for n, gi in zip(names, g, strict=True)}
        manual = torch.autograd.grad(_meta_loss(model, batch, unrolled), [params[n] for n in names])
        for a, b in zip(second, manual, strict=True):
            torch.testing.assert_close(a, b)

        # First order: the outer gradient at θ' (no curvature). Second = first − α·H_inner·first.
        theta_fo = _functional(model, "ga", batch, steps=1, lr=alpha, first_order=True)
        first = torch.autograd.grad(_meta_loss(model, batch, theta_fo), [params[n] for n in names])
        leaf = {n: t.detach().requires_grad_(True) for n, t in theta_fo.items()}
        at_prime = torch.autograd.grad(_meta_loss(model, batch, leaf), list(leaf.values()))
        for a, b in zip(first, at_prime, strict=True):
            torch.testing.assert_close(a, b)

        flat = tuple(params[n].detach() for n in names)

        def inner_flat(*ps):
            return inner(dict(zip(names, ps, strict=True)))

        _, hv = torch.autograd.functional.hvp(inner_flat, flat, tuple(first))
        for s, f, h in zip(second, first, hv, strict=True):
            torch.testing.assert_close(s, f - alpha * h)
        assert any((s - f).abs().max() > 1e-6 for s, f in zip(second, first, strict=True))
    finally:
        torch.set_default_dtype(torch.float32)


def test_batchnorm_buffers_are_not_touched_and_parity_holds():
    model = _BNNet().train()
    batch = _batch()
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    theta = _functional(model, "ga", batch, steps=2, lr=0.05)
    for k, v in model.named_buffers():
        torch.testing.assert_close(v, buffers[k])
    expected = _sgd_reference(model, "ga", batch, steps=2, lr=0.05)
    for name, p in theta.items():
        torch.testing.assert_close(p, expected[name], rtol=1e-5, atol=1e-6)
    cfg = from_dict(ReadyConfig, {"resistance": 1.0, "alpha": 0.05})
    loss, _ = readiness_loss(build_method({"name": "ga"}, TASK), model, batch, cfg)
    loss.backward()
    for k, v in model.named_buffers():
        torch.testing.assert_close(v, buffers[k])
    assert all(p.grad is not None for p in model.parameters())


def test_tied_weights_enter_once_and_match_sgd():
    model = _TiedNet()
    params = trainable_params(model)
    assert "dec.weight" not in params and "enc.weight" in params
    batch = _batch()
    theta = _functional(model, "grad_diff", batch, steps=2, lr=0.05)
    expected = _sgd_reference(model, "grad_diff", batch, steps=2, lr=0.05)
    for name, p in theta.items():
        torch.testing.assert_close(p, expected[name], rtol=1e-5, atol=1e-6)


def test_frozen_parameters_stay_out_of_the_inner_loop_and_get_no_gradient():
    model = _mlp()
    model[1].weight.requires_grad_(False)
    model[1].bias.requires_grad_(False)
    batch = _batch()
    theta = _functional(model, "ga", batch, steps=2, lr=0.05)
    assert set(theta) == {"3.weight", "3.bias"}
    expected = _sgd_reference(model, "ga", batch, steps=2, lr=0.05)
    for name, p in theta.items():
        torch.testing.assert_close(p, expected[name], rtol=1e-5, atol=1e-6)
    loss, _ = readiness_loss(build_method({"name": "ga"}, TASK), model, batch, from_dict(ReadyConfig, FIXED))
    loss.backward()
    assert model[1].weight.grad is None and model[3].weight.grad is not None


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_the_simulated_relearning_attack_matches_a_plain_torch_optim_loop(optimizer):
    """The resistance term's θ'' is the real attack's: ``relearn_steps`` steps of torch.optim SGD / Adam at
    ``relearn_alpha`` on ``relearn_size`` forget samples, from θ'_k, scored on the other forget samples."""
    model = _mlp()
    batch = _batch()
    cfg = from_dict(ReadyConfig, {**FIXED, "resistance": 1.0, "cap": 50.0, "relearn_size": 6, "relearn_steps": 3,
                                  "relearn_alpha": 0.02, "relearn_optimizer": optimizer})  # fmt: skip
    _, parts = readiness_loss(build_method({"name": "ga"}, TASK), model, batch, cfg)
    attacked = copy.deepcopy(model)
    attacked.load_state_dict(_sgd_reference(model, "ga", batch, steps=1, lr=0.01), strict=False)
    opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)(attacked.parameters(), lr=0.02)
    for _ in range(3):
        loss = TASK.loss(attacked, batch.forget_x[:6], batch.forget_y[:6])
        opt.zero_grad()
        loss.backward()
        opt.step()
    expected = TASK.loss(attacked.eval(), batch.forget_x[6:], batch.forget_y[6:]).item()
    assert parts["forget_relearned"] == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ConfigError, match="relearn_optimizer"):
        from_dict(ReadyConfig, {"relearn_optimizer": "rmsprop"})


def test_readiness_loss_parts_and_cap():
    model = _mlp()
    batch = _batch()
    cfg = from_dict(ReadyConfig, {**FIXED, "resistance": 1.0, "cap": 1e-3, "first_order": False})
    loss, parts = readiness_loss(build_method({"name": "npo"}, TASK), model, batch, cfg)
    assert {"retain_after", "forget_after", "forget_relearned", "ready_loss"} <= set(parts)
    # past the cap the forget terms are constant: only retention is left
    torch.testing.assert_close(loss, torch.tensor(parts["retain_after"] - 2e-3), rtol=1e-5, atol=1e-6)
    (g,) = torch.autograd.grad(loss, [model[3].bias])
    (g_ret,) = torch.autograd.grad(
        TASK.loss(model, batch.retain_x, batch.retain_y,
                  _functional(model, "npo", batch, steps=1, lr=cfg.resolved().alpha)), [model[3].bias])  # fmt: skip
    torch.testing.assert_close(g, g_ret, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("retention", [0.0, 1.0])
def test_an_outer_step_on_l_ready_raises_the_forget_loss_reached_by_unlearning(first_order, retention):
    model, batch = _mlp(), _batch()
    cfg = from_dict(ReadyConfig, {**FIXED, "cap": 50.0, "first_order": first_order, "retention": retention, "lam": 1.0,
                                  "alpha": 0.05})  # fmt: skip
    ga = build_method({"name": "ga"}, TASK)

    def forget_after_unlearning() -> float:  # CE(θ'_k; F): one simulated GA step from the current θ
        theta = simulate_unlearning(ga, model, batch, steps=1, alpha=0.05)
        return TASK.loss(model, batch.forget_x, batch.forget_y, theta).item()

    before = forget_after_unlearning()
    loss, parts = readiness_loss(ga, model, batch, cfg)
    assert parts["forget_after"] == pytest.approx(before) and parts["cap_saturated"] == 0.0  # below the cap
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    opt.zero_grad()
    (cfg.lam * loss).backward()
    opt.step()
    assert forget_after_unlearning() > before + 1e-3


def test_a_saturated_cap_passes_no_gradient_and_is_reported():
    model, batch = _mlp(), _batch()
    cfg = from_dict(ReadyConfig, {**FIXED, "retention": 0.0, "cap": 0.5})  # CE(θ'_k; F) ≈ 1.3 is past the cap
    loss, parts = readiness_loss(build_method({"name": "ga"}, TASK), model, batch, cfg)
    assert parts["forget_after"] > 0.5 and parts["cap_saturated"] == 1.0
    loss.backward()
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())
    data = make_blobs(240, seed=0)
    for cap, expected in ((1e-3, 1.0), (1e3, 0.0)):
        obj = ReadinessObjective(from_dict(ReadyConfig, {**FIXED, "cap": cap}), data, 4, seed=0)
        for step in range(3):
            obj(model, step, 0)
        assert obj.summary(data)["cap_saturation"] == expected


def test_gain_form_does_not_reward_fitting_forget_badly():
    model = _mlp()
    batch = _batch()
    level = from_dict(ReadyConfig, {**FIXED, "retention": 0.0})
    gain = from_dict(ReadyConfig, {**FIXED, "retention": 0.0, "forget_term": "gain"})
    ga = build_method({"name": "ga"}, TASK)
    l_level, _ = readiness_loss(ga, model, batch, level)
    l_gain, _ = readiness_loss(ga, model, batch, gain)
    before = TASK.loss(model, batch.forget_x, batch.forget_y)
    torch.testing.assert_close(l_gain, l_level + before)


# -- sampler -------------------------------------------------------------------------------------------------
def _sampler(**kw) -> RequestSampler:
    data = make_blobs(240, seed=0)
    return RequestSampler(data, from_dict(ReadyConfig, kw), 4, seed=0)


def test_preparing_for_random_requests_warns_what_the_benchmarks_measured(recwarn):
    data = make_blobs(120, seed=0)
    ReadinessObjective(ReadyConfig(kind="class", revocable="class:1", alpha=0.1), data, 4)
    assert not [w for w in recwarn if "random requests" in str(w.message)]
    with pytest.warns(UserWarning, match="random requests has not sped up unlearning.*--downweight"):
        ReadinessObjective(ReadyConfig(kind="random", revocable="random:0.2@0", alpha=0.1), data, 4)


def test_class_requests_come_from_the_revocable_classes_and_retain_excludes_them():
    s = _sampler(revocable="class:1,2", forget_size=8, retain_size=16)
    labels = s.train.labels
    seen = set()
    for _ in range(20):
        f, r = s.sample_positions()
        (c,) = set(labels[f].tolist())
        seen.add(c)
        assert c not in set(labels[r].tolist()) and len(f) == 8 and len(r) == 16
    assert seen == {1, 2}
    assert s.revocable.describe(s.train)["classes"] == [1, 2]


def test_random_requests_stay_in_the_pool_and_retain_avoids_the_request():
    s = _sampler(kind="random", revocable="samples:1000,1001,1002,1003,1004,1005", forget_size=4)
    for _ in range(10):
        f, r = s.sample_positions()
        assert set(f.tolist()) <= set(range(6)) and not set(f.tolist()) & set(r.tolist())
    whole = _sampler(kind="random", forget_size=4)
    assert whole.revocable.whole and len(whole.revocable.pool) == 240


def test_group_requests_and_reseed_reproducibility():
    s = _sampler(kind="group", group_column="user", forget_size=5)
    f, r = s.sample_positions()
    users = np.asarray(s.train.groups["user"])
    assert len(set(users[f].tolist())) == 1 and users[f][0] not in set(users[r].tolist())
    s.reseed(3, 1)
    a = s.sample_positions()
    s.reseed(3, 1)
    b = s.sample_positions()
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_sampler_errors():
    with pytest.raises(RequestError, match=r"no group column|not a column"):
        _sampler(kind="group", group_column="nope")
    with pytest.raises(RequestError, match="unknown class"):
        _sampler(revocable="class:9")


# -- knobs --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "data, match",
    [
        ({"method": {"name": "scrub"}}, "gradient-ascent-family"),
        ({"lam": -1}, "ready.lam"),
        ({"alpha": 0}, "ready.alpha"),
        ({"inner_steps": 0}, "inner_steps"),
        ({"meta_every": 0}, "meta_every"),
        ({"efficiency": 0, "retention": 0, "resistance": 0}, "all 0"),
        ({"cap": 0}, "ready.cap"),
        ({"kind": "group"}, "group_column"),
        ({"kind": "users"}, "ready.kind|kind"),
        ({"revocable": "class:"}, "KIND:SPEC"),
        ({"lamda": 0.1}, "did you mean"),
    ],
)
def test_knob_validation(data, match):
    with pytest.raises((ConfigError, RequestError), match=match):
        from_dict(ReadyConfig, data, "ready.")


def test_objective_schedule_scales_with_meta_every_and_skips_warmup():
    data = make_blobs(240, seed=0)
    model = _mlp()
    knobs = {"meta_every": 3, "start_epoch": 1, "lam": 0.1, "dual": False}
    obj = ReadinessObjective(from_dict(ReadyConfig, knobs), data, 4, seed=0)
    assert obj(model, 0, 0) == (None, {})  # warm-up epoch
    assert obj(model, 4, 1) == (None, {})  # between meta steps
    loss, parts = obj(model, 6, 1)
    assert loss is not None
    torch.testing.assert_close(loss, torch.tensor(0.1 * 3 * parts["ready_loss"]), rtol=1e-4, atol=1e-6)
    assert obj.summary(data)["meta_steps"] == 1


def test_fit_with_readiness_and_sample_weights_runs_and_weights_matter():
    from ready2unlearn.engine.fit import fit
    from tests.conftest import toy_model, toy_train_config

    train, test = make_blobs(240, seed=0), make_blobs(80, seed=1)
    cfg = toy_train_config()
    m1 = toy_model()
    obj = ReadinessObjective(from_dict(ReadyConfig, {**FIXED, "revocable": "class:1"}), train, 4, seed=0)
    res = fit(m1, train, test, cfg, show_progress=False, regularizer=obj)
    assert res.metrics["train_accuracy"] > 0.9 and obj.calls == cfg.epochs * 8
    with pytest.raises(ValueError, match="sample_weight"):
        fit(toy_model(), train, test, cfg, show_progress=False, sample_weight=torch.ones(3))
    w_same = fit(toy_model(), train, test, cfg, show_progress=False, sample_weight=torch.full((240,), 2.0))
    plain = fit(toy_model(), train, test, cfg, show_progress=False)
    assert w_same.metrics["train_loss"] == pytest.approx(plain.metrics["train_loss"], rel=1e-4)
    w = torch.ones(240)
    w[train.labels == 1] = 0.0
    zeroed = fit(toy_model(), train, test, cfg, show_progress=False, sample_weight=w)
    assert zeroed.metrics["train_loss"] != pytest.approx(plain.metrics["train_loss"], rel=1e-3)


def test_kind_defaults_fill_only_what_is_unset():
    cls = ReadyConfig().resolved()
    rnd = from_dict(ReadyConfig, {"kind": "random", "lam": 0.5}).resolved()
    assert (cls.lam, cls.first_order, cls.cap, cls.alpha, cls.dual) == (0.03, True, 5.0, "auto", True)
    assert (rnd.lam, rnd.alpha, rnd.meta_every, rnd.cap) == (0.5, "auto", 2, 0.3)
    grp = from_dict(ReadyConfig, {"kind": "group", "group_column": "user"}).resolved()
    assert (grp.dual, grp.alpha, grp.cap, grp.first_order) == (True, 0.03, "auto", True)
    assert ReadyConfig().lam is None  # the config itself keeps "default" so a later kind change re-resolves


def test_current_model_reference_is_eval_mode_and_no_grad():
    from ready2unlearn.readiness import CurrentModelReference

    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 4), nn.Dropout(0.9)).train()
    ref = CurrentModelReference(model)
    x = _batch().forget_x
    out1, out2 = ref(x), ref(x)
    torch.testing.assert_close(out1, out2)
    assert not out1.requires_grad and model.training and list(ref.parameters()) == []
    torch.testing.assert_close(out1, F.linear(x.flatten(1), model[1].weight, model[1].bias))


def test_gain_form_past_the_cap_only_keeps_forget_fitted():
    model = _mlp()
    batch = _batch()
    cfg = from_dict(ReadyConfig, {**FIXED, "retention": 0.0, "forget_term": "gain", "cap": 1e-3})
    loss, parts = readiness_loss(build_method({"name": "ga"}, TASK), model, batch, cfg)
    assert parts["cap_saturated"] == 1.0
    (g,) = torch.autograd.grad(loss, [model[3].bias])
    (g_fit,) = torch.autograd.grad(TASK.loss(model, batch.forget_x, batch.forget_y), [model[3].bias])
    torch.testing.assert_close(g, g_fit)  # −(cap − CE(θ; F)): descent on the forget loss at θ


def test_class_requests_default_to_the_gain_form_at_twice_the_measured_displacement():
    cfg = ReadyConfig(kind="class").resolved()
    assert cfg.forget_term == "gain" and cfg.alpha_factor == 2.0
    rnd = ReadyConfig(kind="random").resolved()
    assert rnd.forget_term == "level" and rnd.alpha_factor == 1.0
    assert ReadyConfig(kind="class", forget_term="level", alpha_factor=0.5).resolved().alpha_factor == 0.5
