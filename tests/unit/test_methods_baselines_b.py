"""Baseline methods: scrub, bad_teacher, ssd."""

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
from ready2unlearn.unlearn import ssd as ssd_module
from ready2unlearn.unlearn.scrub import distill_kl
from ready2unlearn.unlearn.ssd import dampen, diagonal_importance

from ..conftest import make_blobs

NAMES = ["scrub", "bad_teacher", "ssd"]
TASK = ClassificationTask(4)


def make_model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))


@pytest.fixture(scope="module")
def views():
    return DeletionRequest.for_classes(1).resolve(make_blobs(240, seed=0), make_blobs(80, seed=0), 4)


@pytest.fixture(scope="module")
def trained(views):
    """A small MLP fitted on the full (separable) training set, so the forget class is learnt."""
    torch.manual_seed(0)
    model = make_model()
    x, y = torch.cat([views.forget.x, views.retain.x]), torch.cat([views.forget.y, views.retain.y])
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(150):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model


@pytest.fixture
def model(trained):
    return copy.deepcopy(trained)


def ctx(seed: int = 0) -> Context:
    return Context(TASK, torch.Generator().manual_seed(seed), torch.device("cpu"))


def accuracy(model: torch.nn.Module, ds) -> float:
    with torch.no_grad():
        return (model(ds.x).argmax(-1) == ds.y).float().mean().item()


def batch_for(views, n: int = 16, offset: int = 0) -> Batch:
    sl = slice(offset, offset + n)
    return Batch(views.forget.x[sl], views.forget.y[sl], views.retain.x[sl], views.retain.y[sl])


def run_steps(method, model, views, steps: int) -> list[dict[str, float]]:
    """What the engine does: the configured optimiser, both batches every step, hooks around the step."""
    cfg = method.config
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    g = torch.Generator().manual_seed(1)
    forget = itertools.cycle(list(views.forget.batches(cfg.batch_size, shuffle=True, generator=g)))
    retain = itertools.cycle(list(views.retain.batches(cfg.batch_size, shuffle=True, generator=g)))
    history = []
    model.train()
    for step in range(steps):
        b = Batch(*next(forget), *next(retain))
        loss, metrics = method.loss(model, b, step=step)
        assert torch.isfinite(loss) and all(isinstance(v, float) for v in metrics.values())
        opt.zero_grad()
        loss.backward()
        method.after_backward(model)
        opt.step()
        method.after_step(model)
        history.append(metrics)
    model.eval()
    return history


# -- shared ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_preset_loads_and_matches_defaults(name):
    cfg, path = load_unlearn_config(name)
    assert path is not None and path.endswith(f"{name}.yaml")
    assert cfg.method.name == name
    default = build_method({"name": name}, TASK).config
    assert cfg.method == default  # the preset spells out the defaults


@pytest.mark.parametrize("name", NAMES)
def test_classifier_only_refuses_lm_task(name):
    with pytest.raises(ConfigError, match="only works for classifiers"):
        build_method({"name": name}, SimpleNamespace(kind="lm", num_classes=4))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "data",
    [
        {"name": "scrub", "temperature": 0.0},
        {"name": "scrub", "max_every": 0},
        {"name": "scrub", "max_phase_steps": -1},
        {"name": "scrub", "kl_weight": -1.0},
        {"name": "scrub", "ce_weight": -0.5},
        {"name": "bad_teacher", "temperature": -1.0},
        {"name": "ssd", "alpha": 0.0},
        {"name": "ssd", "lam": -1.0},
        {"name": "ssd", "train_subset": 0},
        {"name": "ssd", "lr": 0.0},  # the common fields are still validated
    ],
)
def test_config_validation(data):
    with pytest.raises(ConfigError):
        build_method(data, TASK)


@pytest.mark.parametrize("name", ["scrub", "bad_teacher"])
@pytest.mark.parametrize("step", [0, 1, 100])
def test_functional_parity(name, step, model, views):
    method = build_method({"name": name}, TASK)
    method.prepare(model, views, ctx())
    with torch.no_grad():  # move the student off the teacher so every term is non-trivial
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(3)))
    b = batch_for(views)
    plain, m_plain = method.loss(model, b, step=step)
    func, m_func = method.loss(model, b, params=dict(model.named_parameters()), step=step)
    torch.testing.assert_close(plain, func)
    assert m_plain.keys() == m_func.keys()
    g_plain = torch.autograd.grad(plain, list(model.parameters()))
    g_func = torch.autograd.grad(method.loss(model, b, params=dict(model.named_parameters()), step=step)[0],
                                 list(model.parameters()))  # fmt: skip
    for a, c in zip(g_plain, g_func, strict=True):
        torch.testing.assert_close(a, c)


# -- scrub -------------------------------------------------------------------------------------------------


def test_scrub_phase_schedule(model, views):
    method = build_method({"name": "scrub", "max_phase_steps": 7, "max_every": 3}, TASK)
    assert [s for s in range(12) if method.is_max_step(s)] == [0, 3, 6]
    method.prepare(model, views, ctx())
    phases = [method.loss(model, batch_for(views), step=s)[1]["phase_max"] for s in range(8)]
    assert phases == [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0]
    alternate = build_method({"name": "scrub", "max_phase_steps": 4}, TASK)
    assert [alternate.is_max_step(s) for s in range(6)] == [True, False, True, False, False, False]
    never = build_method({"name": "scrub", "max_phase_steps": 0}, TASK)
    assert not any(never.is_max_step(s) for s in range(5))


def test_scrub_loss_terms(model, views):
    method = build_method({"name": "scrub", "kl_weight": 0.5, "ce_weight": 2.0, "temperature": 2.0}, TASK)
    method.prepare(model, views, ctx())
    with torch.no_grad():
        model[-1].bias.add_(torch.tensor([0.3, -0.2, 0.1, 0.0]))
    b = batch_for(views)
    loss_max, m = method.loss(model, b, step=0)
    kl_f = distill_kl(method.reference_logits(b.forget_x), model(b.forget_x), 2.0)
    torch.testing.assert_close(loss_max, -kl_f)  # maximise d on D_f = minimise −d
    assert m["forget_kl"] == pytest.approx(kl_f.item()) and m["forget_kl"] > 0
    loss_min, m = method.loss(model, b, step=1)
    kl_r = distill_kl(method.reference_logits(b.retain_x), model(b.retain_x), 2.0)
    torch.testing.assert_close(loss_min, 0.5 * kl_r + 2.0 * F.cross_entropy(model(b.retain_x), b.retain_y))
    assert set(m) == {"phase_max", "retain_kl", "retain_loss"}


def test_scrub_max_step_increases_forget_kl(model, views):
    method = build_method({"name": "scrub", "lr": 0.05}, TASK)
    method.prepare(model, views, ctx())
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    b = batch_for(views, 32)
    # Nudge the student off the teacher first: where they are equal, d and its gradient are exactly zero.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(3)))
    before = method.loss(model, b, step=0)[1]["forget_kl"]
    loss, m = method.loss(model, b, step=2)
    assert m["phase_max"] == 1.0
    opt.zero_grad()
    loss.backward()
    opt.step()
    after = method.loss(model, b, step=0)[1]["forget_kl"]
    assert before > 0 and after > 1.2 * before


def test_scrub_forgets_and_keeps_retain(model, views):
    assert accuracy(model, views.forget) == 1.0 and accuracy(model, views.retain) > 0.95
    method = build_method({"name": "scrub", "lr": 0.05, "max_phase_steps": 60, "batch_size": 32}, TASK)
    method.prepare(model, views, ctx())
    history = run_steps(method, model, views, 90)
    assert [h["phase_max"] for h in history[:4]] == [1.0, 0.0, 1.0, 0.0]
    assert all(h["phase_max"] == 0.0 for h in history[60:])
    assert accuracy(model, views.forget) < 0.3
    assert accuracy(model, views.retain) > 0.9


# -- bad_teacher -------------------------------------------------------------------------------------------


def _flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def test_bad_teacher_incompetent_teacher_is_seeded_and_random(model, views):
    rng_before = torch.get_rng_state()
    a, b, c = (build_method({"name": "bad_teacher"}, TASK) for _ in range(3))
    a.prepare(model, views, ctx(0))
    b.prepare(model, views, ctx(0))
    c.prepare(model, views, ctx(1))
    assert torch.equal(torch.get_rng_state(), rng_before)  # the global RNG is left alone
    assert torch.equal(_flat(a.incompetent), _flat(b.incompetent))
    assert not torch.equal(_flat(a.incompetent), _flat(c.incompetent))
    assert not torch.allclose(_flat(a.incompetent), _flat(a.reference))
    assert torch.equal(_flat(a.reference), _flat(model))  # competent teacher = the original
    assert not any(p.requires_grad for p in a.incompetent.parameters())
    assert not a.incompetent.training
    # The random teacher knows nothing: about chance on the forget class, unlike the original.
    assert accuracy(a.incompetent, views.forget) < 0.9 and accuracy(a.reference, views.forget) == 1.0
    # Same seed, same losses.
    bt = batch_for(views)
    torch.testing.assert_close(a.loss(model, bt)[0], b.loss(model, bt)[0])


def test_bad_teacher_loss_is_size_weighted_mix(model, views):
    method = build_method({"name": "bad_teacher", "temperature": 2.0}, TASK)
    method.prepare(model, views, ctx())
    b = Batch(views.forget.x[:8], views.forget.y[:8], views.retain.x[:24], views.retain.y[:24])
    loss, m = method.loss(model, b)
    # Per-sample teacher choice over the concatenated batch, computed independently.
    x = torch.cat([b.forget_x, b.retain_x])
    with torch.no_grad():
        teacher = torch.cat([method.incompetent(b.forget_x), method.reference(b.retain_x)])
    per_sample = F.kl_div(F.log_softmax(model(x) / 2, -1), F.log_softmax(teacher / 2, -1), reduction="none",
                          log_target=True).sum(-1)  # fmt: skip
    torch.testing.assert_close(loss, 4.0 * per_sample.mean())
    assert m["forget_kl"] > m["retain_kl"]


def test_bad_teacher_forgets(model, views):
    method = build_method({"name": "bad_teacher", "lr": 0.01, "batch_size": 32}, TASK)
    method.prepare(model, views, ctx())
    run_steps(method, model, views, 40)
    assert accuracy(model, views.forget) < 0.5
    assert accuracy(model, views.retain) > 0.9


# -- ssd ---------------------------------------------------------------------------------------------------


def test_ssd_dampen_hand_made():
    theta = torch.tensor([1.0, -2.0, 3.0, 4.0, 5.0, -6.0])
    imp_d = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 2.0])
    imp_f = torch.tensor([5.0, 20.0, 100.0, 0.0, 3.0, 20.0])
    # selected: 20 > 10·1, 100 > 10·1, 3 > 10·0; not: 5 ≤ 10, 0 ≤ 0, 20 ≤ 10·2
    n = dampen({"w": theta}, {"w": imp_d}, {"w": imp_f}, alpha=10.0, lam=1.0)
    assert n == 3
    torch.testing.assert_close(theta, torch.tensor([1.0, -0.1, 0.03, 4.0, 0.0, -6.0]))
    # λ large enough caps the factor at 1: selected but unchanged.
    theta = torch.tensor([2.0])
    assert dampen({"w": theta}, {"w": torch.tensor([1.0])}, {"w": torch.tensor([20.0])}, alpha=10.0, lam=50.0) == 1
    assert theta.item() == 2.0


def test_ssd_importance_is_batch_weighted_squared_gradient():
    torch.manual_seed(0)
    lin = torch.nn.Linear(8, 4)
    x, y = torch.randn(10, 8), torch.randint(0, 4, (10,))
    imp, seen = diagonal_importance(lin, TASK, iter([(x[:6], y[:6]), (x[6:], y[6:])]), torch.device("cpu"))
    assert seen == 10

    def closed_form(xb, yb):  # ∂ mean CE / ∂W = (softmax − onehot)ᵀ x / B for a linear layer
        r = (F.softmax(lin(xb), -1) - F.one_hot(yb, 4)).detach()
        return r.T @ xb / len(yb), r.mean(0)

    (w1, b1), (w2, b2) = closed_form(x[:6], y[:6]), closed_form(x[6:], y[6:])
    torch.testing.assert_close(imp["weight"], (6 * w1**2 + 4 * w2**2) / 10)
    torch.testing.assert_close(imp["bias"], (6 * b1**2 + 4 * b2**2) / 10)
    assert lin.weight.grad is None  # .grad is untouched


def test_ssd_apply_dampens_exactly_the_selected_entries(model, views, monkeypatch):
    names = [n for n, _ in model.named_parameters()]
    g = torch.Generator().manual_seed(0)
    imp_d = {n: torch.rand(p.shape, generator=g) for n, p in model.named_parameters()}
    imp_f = {n: 20 * torch.rand(p.shape, generator=g) for n, p in model.named_parameters()}
    calls = iter([(imp_d, 1), (imp_f, 1)])  # apply scores D first, then D_f
    monkeypatch.setattr(ssd_module, "diagonal_importance", lambda *a, **k: next(calls))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    stats = build_method({"name": "ssd", "alpha": 10.0, "lam": 1.0}, TASK).apply(model, views, ctx())
    expected = 0
    for n in names:
        sel = imp_f[n] > 10.0 * imp_d[n]
        expected += int(sel.sum())
        want = torch.where(sel, torch.clamp(imp_d[n] / imp_f[n], max=1.0) * before[n], before[n])
        torch.testing.assert_close(dict(model.named_parameters())[n].detach(), want)
    assert 0 < stats["dampened"] == expected
    assert stats["dampened_fraction"] == pytest.approx(expected / sum(p.numel() for p in model.parameters()))


def test_ssd_apply_on_class_request(model, views):
    model.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    forget_acc, retain_acc = accuracy(model, views.forget), accuracy(model, views.retain)
    method = build_method({"name": "ssd", "alpha": 10.0}, TASK)  # the paper's α; the toy problem needs it
    assert not method.iterative
    method.prepare(model, views, ctx())
    stats = method.apply(model, views, ctx())
    assert model.training  # mode restored
    assert stats["dampened"] > 0 and 0 < stats["dampened_fraction"] < 1
    assert stats["importance_samples"] == 240 and stats["grad_evals"] == 240 + len(views.forget)
    assert stats["seconds"] >= 0
    for n, p in model.named_parameters():
        assert torch.all(p.detach().abs() <= before[n].abs())  # never grows |θ|
    assert forget_acc == 1.0 and accuracy(model, views.forget) < 0.5
    assert accuracy(model, views.retain) > retain_acc - 0.15


def test_ssd_huge_alpha_changes_nothing(model, views):
    before = copy.deepcopy(model.state_dict())
    stats = build_method({"name": "ssd", "alpha": 1e12}, TASK).apply(model, views, ctx())
    assert stats["dampened"] == 0
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_ssd_train_subset_is_seeded_and_keeps_proportion(model, views):
    method = build_method({"name": "ssd", "train_subset": 60}, TASK)
    m1, m2 = copy.deepcopy(model), copy.deepcopy(model)
    s1, s2 = method.apply(m1, views, ctx(0)), method.apply(m2, views, ctx(0))
    # 60 of 180 retain samples, plus 60 · 60/180 = 20 of the 60 forget samples.
    assert s1["importance_samples"] == 80 and s1["dampened"] == s2["dampened"]
    for a, b in zip(m1.parameters(), m2.parameters(), strict=True):
        assert torch.equal(a, b)


def test_ssd_has_no_loss(model, views):
    with pytest.raises(NotImplementedError, match="not iterative"):
        build_method({"name": "ssd"}, TASK).loss(model, batch_for(views))
