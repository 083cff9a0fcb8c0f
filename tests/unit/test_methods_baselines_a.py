"""Baseline methods: finetune, neggrad_plus, random_label, l1_sparse, salun."""

from __future__ import annotations

import copy
import itertools
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from ready2unlearn.data import DeletionRequest
from ready2unlearn.engine.unlearn_config import load_unlearn_config
from ready2unlearn.errors import ConfigError
from ready2unlearn.unlearn import Batch, ClassificationTask, Context, build_method
from ready2unlearn.unlearn.l1_sparse import l1_norm
from ready2unlearn.unlearn.random_label import random_other_labels

from ..conftest import make_blobs

NAMES = ["finetune", "neggrad_plus", "random_label", "l1_sparse", "salun"]
TASK = ClassificationTask(4)


@pytest.fixture(scope="module")
def views():
    return DeletionRequest.for_classes(1).resolve(make_blobs(240, seed=0), make_blobs(80, seed=1), 4)


@pytest.fixture(scope="module")
def trained(views):
    """A linear classifier fitted on the full (separable) training set, so the forget class is learnt."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 4))
    x, y = torch.cat([views.forget.x, views.retain.x]), torch.cat([views.forget.y, views.retain.y])
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model


@pytest.fixture
def model(trained):
    return copy.deepcopy(trained)


def ctx(seed: int = 0) -> Context:
    return Context(TASK, torch.Generator().manual_seed(seed), torch.device("cpu"))


def batch_for(method, views, n: int = 16) -> Batch:
    b = Batch()
    if method.uses_forget:
        b.forget_x, b.forget_y = views.forget.x[:n], views.forget.y[:n]
    if method.uses_retain:
        b.retain_x, b.retain_y = views.retain.x[:n], views.retain.y[:n]
    return b


def run_steps(method, model, views, steps: int) -> None:
    """What the engine does: SGD from the method config, hooks around the step."""
    cfg = method.config
    opt = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad],
        lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
    )  # fmt: skip
    g = torch.Generator().manual_seed(1)
    forget = itertools.cycle(list(views.forget.batches(cfg.batch_size, shuffle=True, generator=g)))
    retain = itertools.cycle(list(views.retain.batches(cfg.batch_size, shuffle=True, generator=g)))
    for step in range(steps):
        b = Batch()
        if method.uses_forget:
            b.forget_x, b.forget_y = next(forget)
        if method.uses_retain:
            b.retain_x, b.retain_y = next(retain)
        loss, metrics = method.loss(model, b, step=step)
        assert torch.isfinite(loss) and all(isinstance(v, float) for v in metrics.values())
        opt.zero_grad()
        loss.backward()
        method.after_backward(model)
        opt.step()
        method.after_step(model)


@torch.no_grad()
def accuracy(model, data) -> float:
    return (model(data.x).argmax(1) == data.y).float().mean().item()


# -- all methods ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_functional_parity(name, model, views):
    method = build_method({"name": name}, TASK)
    method.prepare(model, views, ctx())
    b = batch_for(method, views)
    plain, m1 = method.loss(model, b, step=3)
    functional, m2 = method.loss(model, b, params=dict(model.named_parameters()), step=3)
    torch.testing.assert_close(functional, plain)
    assert m1 == pytest.approx(m2)


@pytest.mark.parametrize("name", NAMES)
def test_shipped_preset_loads(name):
    cfg, path = load_unlearn_config(name)
    assert cfg.method.name == name and path.endswith(f"{name}.yaml")
    assert cfg.stop.rule == "steps"


@pytest.mark.parametrize("name", ["random_label", "salun"])
def test_classifier_only_refuses_other_tasks(name):
    with pytest.raises(ConfigError, match="only works for classifiers"):
        build_method({"name": name}, SimpleNamespace(kind="lm", num_classes=4))


@pytest.mark.parametrize(
    "cfg",
    [
        {"name": "neggrad_plus", "alpha": 0.0},
        {"name": "neggrad_plus", "alpha": 1.0},
        {"name": "random_label", "retain_weight": -1.0},
        {"name": "l1_sparse", "gamma": -1e-4},
        {"name": "l1_sparse", "decay_steps": 0},
        {"name": "salun", "mask_ratio": 0.0},
        {"name": "salun", "mask_ratio": 1.5},
    ],
)
def test_bad_configs_rejected(cfg):
    with pytest.raises(ConfigError):
        build_method(cfg, TASK)


# -- finetune -------------------------------------------------------------------------------------------------
def test_finetune_descends_on_retain(views):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 4))  # untrained: room to descend
    method = build_method({"name": "finetune"}, TASK)
    assert (method.uses_forget, method.uses_retain) == (False, True)
    method.prepare(model, views, ctx())
    before = TASK.loss(model, views.retain.x, views.retain.y).item()
    run_steps(method, model, views, 20)
    assert TASK.loss(model, views.retain.x, views.retain.y).item() < before


# -- neggrad_plus ---------------------------------------------------------------------------------------------
def test_neggrad_plus_loss_is_convex_mix(model, views):
    method = build_method({"name": "neggrad_plus", "alpha": 0.8}, TASK)
    b = batch_for(method, views)
    loss, metrics = method.loss(model, b)
    ce_f = F.cross_entropy(model(b.forget_x), b.forget_y)
    ce_r = F.cross_entropy(model(b.retain_x), b.retain_y)
    torch.testing.assert_close(loss, 0.8 * ce_r - 0.2 * ce_f)
    assert metrics["forget_loss"] == pytest.approx(ce_f.item())


# -- random_label ---------------------------------------------------------------------------------------------
def test_random_other_labels_never_true_and_uniform():
    y = torch.arange(6000) % 5
    out = random_other_labels(y, 5, torch.Generator().manual_seed(0))
    assert out.shape == y.shape and out.dtype == y.dtype
    assert not (out == y).any()
    for c in range(5):  # given y = c, the 4 other labels appear about equally (1200 draws, ~300 each)
        counts = torch.bincount(out[y == c], minlength=5)
        assert counts[c] == 0 and counts.sum() == 1200
        assert (counts[torch.arange(5) != c] > 240).all()
    again = random_other_labels(y, 5, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    with pytest.raises(ValueError):
        random_other_labels(torch.zeros(3, dtype=torch.long), 1, torch.Generator())


def test_random_label_draws_are_seeded_and_fresh_each_step(model, views):
    def labels(seed: int, step: int) -> torch.Tensor:
        method = build_method({"name": "random_label"}, TASK)
        method.prepare(model, views, ctx(seed))
        return random_other_labels(views.forget.y, 4, method.label_generator(step))

    assert torch.equal(labels(0, 5), labels(0, 5))
    assert not torch.equal(labels(0, 5), labels(0, 6))
    assert not torch.equal(labels(0, 5), labels(1, 5))
    assert not (labels(0, 7) == views.forget.y).any()


def test_random_label_needs_prepare(model, views):
    method = build_method({"name": "random_label"}, TASK)
    with pytest.raises(RuntimeError, match="prepare"):
        method.loss(model, batch_for(method, views))


def test_random_label_forgets(model, views):
    method = build_method({"name": "random_label"}, TASK)
    method.prepare(model, views, ctx())
    assert accuracy(model, views.forget) > 0.9
    run_steps(method, model, views, 30)
    assert accuracy(model, views.forget) < 0.5
    assert accuracy(model, views.retain) > 0.8


def test_random_label_retain_weight_zero_skips_retain():
    assert not build_method({"name": "random_label", "retain_weight": 0.0}, TASK).uses_retain


# -- l1_sparse ------------------------------------------------------------------------------------------------
def test_l1_penalty_decays_linearly_to_zero(model, views):
    method = build_method({"name": "l1_sparse", "gamma": 1e-2, "decay_steps": 40}, TASK)
    assert [method.gamma_at(t) for t in (0, 10, 20, 40, 80)] == pytest.approx([1e-2, 7.5e-3, 5e-3, 0.0, 0.0])
    b = batch_for(method, views)
    retain = TASK.loss(model, b.retain_x, b.retain_y)
    l1 = sum(p.abs().sum() for p in model.parameters())
    for step in (0, 10, 20, 40, 80):
        loss, metrics = method.loss(model, b, step=step)
        torch.testing.assert_close(loss, retain + method.gamma_at(step) * l1)
        assert metrics["l1_gamma"] == pytest.approx(method.gamma_at(step))
        assert metrics["l1_norm"] == pytest.approx(l1.item())


def test_l1_norm_skips_frozen_parameters(model):
    model[1].bias.requires_grad_(False)
    assert l1_norm(model).item() == pytest.approx(model[1].weight.abs().sum().item())
    params = {"1.weight": model[1].weight}
    assert l1_norm(model, params).item() == pytest.approx(model[1].weight.abs().sum().item())


def test_l1_sparse_shrinks_weights(model, views):
    method = build_method({"name": "l1_sparse", "gamma": 0.05, "decay_steps": 20}, TASK)
    before = l1_norm(model).item()
    run_steps(method, model, views, 20)
    assert l1_norm(model).item() < before


# -- salun ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ratio", [0.1, 0.3, 0.5, 1.0])
def test_salun_mask_keeps_requested_fraction(ratio, model, views):
    method = build_method({"name": "salun", "mask_ratio": ratio}, TASK)
    method.prepare(model, views, ctx())
    shapes = {n: p.shape for n, p in model.named_parameters()}
    assert {n: m.shape for n, m in method.masks.items()} == shapes
    assert all(m.dtype == torch.bool for m in method.masks.values())
    total = sum(p.numel() for p in model.parameters())
    kept = sum(int(m.sum()) for m in method.masks.values())
    assert abs(kept - ratio * total) <= 1


def test_salun_mask_selects_most_salient(model, views):
    method = build_method({"name": "salun", "mask_ratio": 0.25}, TASK)
    model.train()
    method.prepare(model, views, ctx())
    assert model.training  # the eval-mode saliency pass restores the mode
    assert all(p.grad is None for p in model.parameters())  # and leaves no gradients behind
    loss = TASK.loss(model, views.forget.x, views.forget.y)
    sal = torch.cat([g.abs().flatten() for g in torch.autograd.grad(loss, list(model.parameters()))])
    mask = torch.cat([method.masks[n].flatten() for n, _ in model.named_parameters()])
    assert sal[mask].min() >= sal[~mask].max()


def test_salun_masked_weights_untouched_and_forgets(model, views):
    cfg = {"name": "salun", "mask_ratio": 0.5, "weight_decay": 0.1, "momentum": 0.9, "batch_size": 16}
    method = build_method(cfg, TASK)
    method.prepare(model, views, ctx())
    original = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert accuracy(model, views.forget) > 0.9
    run_steps(method, model, views, 30)
    for name, p in model.named_parameters():
        mask = method.masks[name]
        assert torch.equal(p[~mask], original[name][~mask]), name  # bit-identical despite decay and momentum
    assert sum(int((p != original[n]).sum()) for n, p in model.named_parameters()) > 0
    assert accuracy(model, views.forget) < 0.5
