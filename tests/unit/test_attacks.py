"""Membership inference (attacks.mia) and the proof of forgetting (attacks.proof)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ready2unlearn.attacks.mia import (
    logit_scaled_confidence,
    mia_auc,
    mia_efficacy,
    per_sample_loss,
    true_class_confidence,
)
from ready2unlearn.attacks.proof import (
    DELTA,
    EPSILON_CAP,
    bin_scores,
    epsilon_bins,
    epsilon_from_rates,
    forgetting_score,
    per_example_epsilon,
    run_proof,
)
from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.errors import ConfigError


class PassThrough(nn.Module):
    """Returns its input as the logits, so a dataset's ``x`` *is* the logits."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))  # predict_logits reads the device off a parameter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def dataset(x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray) -> ArrayDataset:
    x, y = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64)
    return ArrayDataset(x, y, torch.arange(len(y)))


def binary_with_confidence(p: np.ndarray) -> ArrayDataset:
    """Two-class logits whose true-class (label 1) probability is ``p``."""
    p = np.asarray(p, dtype=np.float64)
    return dataset(np.stack([np.log1p(-p), np.log(p)], axis=1), np.ones(len(p)))


# ------------------------------------------------------------------------------------------- signals


def test_signals_known_answers():
    logits = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, -1.0], [1.0, 3.0, 0.0]])
    data, model = dataset(logits, [0, 0, 2]), PassThrough()
    p = torch.softmax(logits.double(), 1)[torch.arange(3), torch.tensor([0, 0, 2])].numpy()
    np.testing.assert_allclose(true_class_confidence(model, data), p, rtol=1e-6)
    np.testing.assert_allclose(true_class_confidence(model, data)[0], 1 / 3, rtol=1e-6)
    np.testing.assert_allclose(per_sample_loss(model, data), -np.log(p), rtol=1e-6)
    np.testing.assert_allclose(logit_scaled_confidence(model, data), np.log(p) - np.log1p(-p), rtol=1e-6)
    # Hand values: uniform over 3 classes -> log(1/3) - log(2/3) = -log 2; z_y - logsumexp(others) otherwise.
    np.testing.assert_allclose(logit_scaled_confidence(model, data)[0], -math.log(2), rtol=1e-6)
    np.testing.assert_allclose(
        logit_scaled_confidence(model, data)[1], 2.0 - math.log(math.exp(0.0) + math.exp(-1.0)), rtol=1e-6
    )
    for fn in (true_class_confidence, per_sample_loss, logit_scaled_confidence):
        assert fn(model, data).dtype == np.float64
        assert fn(model, data.subset([])).shape == (0,)


def test_logit_scaled_confidence_is_finite_when_confidence_saturates():
    # p(y|x) rounds to 1 (and to 0) in float32 and even float64; the statistic must still be exact.
    data = dataset(torch.tensor([[0.0, 60.0], [0.0, 800.0], [80.0, 0.0]]), [1, 1, 1])
    model = PassThrough()
    assert torch.softmax(data.x, 1)[0, 1].item() == 1.0
    out = logit_scaled_confidence(model, data)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, [60.0, 800.0, -80.0])
    assert np.isfinite(per_sample_loss(model, data)).all()


def test_signals_reject_single_class_logits():
    with pytest.raises(ConfigError, match="C >= 2"):
        logit_scaled_confidence(PassThrough(), dataset(torch.zeros(3, 1), [0, 0, 0]))


# ----------------------------------------------------------------------------------------------- mia_auc


def _random_data(n: int, seed: int, dim: int = 16, classes: int = 10) -> ArrayDataset:
    g = torch.Generator().manual_seed(seed)
    return dataset(torch.randn(n, dim, generator=g), torch.randint(0, classes, (n,), generator=g))


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 128), nn.ReLU(), nn.Linear(128, 10))


@pytest.fixture(scope="module")
def memorised() -> tuple[nn.Module, ArrayDataset]:
    """An MLP that has memorised 64 random-label samples."""
    members, model = _random_data(64, seed=1), _mlp()
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    for _ in range(150):
        opt.zero_grad()
        F.cross_entropy(model(members.x), members.y).backward()
        opt.step()
    assert (model(members.x).argmax(1) == members.y).float().mean().item() == 1.0
    return model, members


def test_mia_auc_is_chance_on_iid_non_members(memorised):
    model, _ = memorised
    a, b = _random_data(1000, seed=2), _random_data(1000, seed=3)
    for signal in ("loss", "confidence"):
        assert abs(mia_auc(model, a, b, signal=signal) - 0.5) < 0.1


def test_mia_auc_detects_memorised_members(memorised):
    model, members = memorised
    non_members = _random_data(200, seed=4)
    assert mia_auc(model, members, non_members) > 0.9
    assert mia_auc(model, members, non_members, signal="confidence") > 0.9
    assert mia_auc(model, members, non_members, max_samples=16) > 0.6


def test_mia_auc_scores_a_seeded_balanced_subsample():
    # Members' losses 1..4; non-members' losses 0.5..9.5 (10 of them), so which 4 non-members the balanced
    # subsample keeps decides the AUC. It must be the 4 a generator seeded with `seed` picks, scored by loss.
    def with_losses(losses):
        p = np.exp(-np.asarray(losses, dtype=np.float64))  # true-class probability with loss −log p
        return binary_with_confidence(p)

    members, non_members = with_losses([1.0, 2.0, 3.0, 4.0]), with_losses(np.arange(10) + 0.5)
    model = PassThrough()
    for seed in (0, 7):
        keep = np.sort(np.random.default_rng(seed).choice(10, size=4, replace=False))
        non_losses = (np.arange(10) + 0.5)[keep]
        # members win a pair when their loss is lower: the AUC counts such pairs among all 16
        expected = np.mean([[m < n for n in non_losses] for m in (1.0, 2.0, 3.0, 4.0)])
        assert mia_auc(model, members, non_members, seed=seed) == pytest.approx(expected), seed
    picks = {tuple(np.sort(np.random.default_rng(s).choice(10, size=4, replace=False))) for s in (0, 7)}
    assert len(picks) == 2  # the two seeds do test different subsamples


def test_mia_auc_input_errors(memorised):
    model, members = memorised
    with pytest.raises(ConfigError, match="unknown membership signal"):
        mia_auc(model, members, members, signal="entropy")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="non-empty"):
        mia_auc(model, members.subset([]), members)
    with pytest.raises(ConfigError, match="max_samples"):
        mia_auc(model, members, members, max_samples=0)


# ------------------------------------------------------------------------------------------ mia_efficacy


def test_mia_efficacy_hand_made_confidences():
    g = np.random.default_rng(0)
    model = PassThrough()
    retain = binary_with_confidence(g.uniform(0.9, 0.999, 300))  # training data: confident
    test = binary_with_confidence(g.uniform(0.001, 0.6, 200))  # unseen data: much less so
    forgotten = binary_with_confidence(g.uniform(0.005, 0.05, 50))
    assert mia_efficacy(model, forgotten, retain, test) > 0.95
    remembered = retain.subset(np.arange(250, 300))  # outside the shadow members, same confidences
    assert mia_efficacy(model, remembered, retain, test) < 0.05
    with pytest.raises(ConfigError, match="non-empty"):
        mia_efficacy(model, forgotten, retain, test.subset([]))
    # Capping the shadow set (to bound the SVM fit) keeps the verdict on a clear case ...
    assert mia_efficacy(model, forgotten, retain, test, max_test=50) > 0.95
    # ... and means exactly "the first max_test test samples, and as many shadow members".
    ambiguous = binary_with_confidence(g.uniform(0.5, 0.95, 80))  # between the two populations
    capped = mia_efficacy(model, ambiguous, retain, test, max_test=20)
    assert capped == mia_efficacy(model, ambiguous, retain.subset(np.arange(20)), test.subset(np.arange(20)))
    assert capped != mia_efficacy(model, ambiguous, retain, test)  # the cap does change the shadow model here


# ------------------------------------------------------------------------------------------------- proof


def test_epsilon_from_rates_hand_check():
    # FPR 0.1, FNR 0.3: max(log(0.9 - δ)/0.3, log((0.7 - δ)/0.1)) = log(7 - 10 δ).
    assert epsilon_from_rates(0.1, 0.3) == pytest.approx(math.log((0.7 - DELTA) / 0.1))
    assert epsilon_from_rates(0.3, 0.1) == pytest.approx(math.log((0.7 - DELTA) / 0.1))
    assert epsilon_from_rates(0.0, 0.0) == np.inf  # perfect separation
    assert np.isnan(epsilon_from_rates(0.0, 0.4))  # one rate 0: rule skipped
    assert epsilon_from_rates(0.5, 0.5) == 0.0  # chance
    assert epsilon_from_rates(1.0, 0.2) == 0.0  # worse than chance, clipped


def test_epsilon_bins_follow_n():
    # The competition: N = 512 -> E = ceil(log 511) = 7, 14 bins of width 0.5.
    np.testing.assert_allclose(epsilon_bins(512), np.arange(0, 7.5, 0.5))
    np.testing.assert_allclose(epsilon_bins(10), [0, 0.5, 1, 1.5, 2, 2.5, 3])
    np.testing.assert_allclose(epsilon_bins(2), [0, 0.5])
    np.testing.assert_allclose(
        bin_scores([0, 0.49, 0.5, 1.2, 2.99, 3.0, EPSILON_CAP], 10), [1, 1, 0.5, 0.25, 1 / 32, 0, 0]
    )
    with pytest.raises(ConfigError):
        epsilon_bins(1)


def test_identical_distributions_score_one():
    g = np.random.default_rng(0)
    conf = g.normal(size=(8, 20))
    eps = per_example_epsilon(conf, conf.copy())
    np.testing.assert_array_equal(eps, 0.0)
    out = forgetting_score(conf, conf.copy(), 0.9, 0.9, 0.8, 0.8)
    assert out["forgetting_quality"] == 1.0 and out["score"] == 1.0 and out["n"] == 8


def test_perfectly_separated_distributions_score_zero():
    g = np.random.default_rng(0)
    unlearned = g.uniform(0, 1, size=(8, 5))
    retrained = g.uniform(0, 1, size=(8, 5)) + 5.0  # same spread, far apart
    eps = per_example_epsilon(unlearned, retrained)
    np.testing.assert_array_equal(eps, EPSILON_CAP)
    np.testing.assert_array_equal(bin_scores(eps, 8), 0.0)
    assert forgetting_score(unlearned, retrained, 1, 1, 1, 1)["forgetting_quality"] == 0.0


def test_hand_checked_epsilon():
    # Unlearned 0..9, retrained 3..12 (N = 10). Best rule: "conf >= 9 -> retrained" with FPR = 1/10 (9)
    # and FNR = 6/10 (3..8), or its mirror "conf >= 4" (FPR 6/10, FNR 1/10): ε = log((0.4 - δ)/0.1).
    unlearned = np.arange(10.0)[:, None]
    retrained = np.arange(3.0, 13.0)[:, None]
    eps = per_example_epsilon(unlearned, retrained)
    assert eps[0] == pytest.approx(math.log((0.4 - DELTA) / 0.1))
    assert bin_scores(eps, 10)[0] == 0.25  # 1.386 is in [1, 1.5), bin 2


def test_degenerate_unlearned_distribution_is_caught():
    # A deterministic unlearning run (one point) against a spread of retrained models.
    retrained = np.random.default_rng(0).normal(size=(8, 3))
    unlearned = np.tile(np.median(retrained, axis=0), (8, 1))
    np.testing.assert_array_equal(per_example_epsilon(unlearned, retrained), EPSILON_CAP)


def test_forgetting_score_multiplies_utility_ratios():
    conf = np.random.default_rng(0).normal(size=(4, 6))
    out = forgetting_score(conf, conf.copy(), [0.8, 1.0], 1.0, 0.6, [0.8, 0.8])
    assert out["ra_ratio"] == pytest.approx(0.9) and out["ta_ratio"] == pytest.approx(0.75)
    assert out["score"] == pytest.approx(1.0 * 0.9 * 0.75)
    assert len(out["epsilon"]) == 6
    with pytest.raises(ConfigError, match="positive"):
        forgetting_score(conf, conf, 0.8, 0.0, 0.6, 0.8)
    with pytest.raises(ConfigError, match="same examples"):
        forgetting_score(conf, conf[:, :3], 0.8, 0.8, 0.6, 0.8)
    with pytest.raises(ConfigError, match="at least 2"):
        per_example_epsilon(conf[:1], conf)


def test_run_proof_same_model_both_sides():
    g = torch.Generator().manual_seed(0)
    forget = dataset(torch.randn(10, 3, generator=g), torch.randint(0, 3, (10,), generator=g))
    retain = dataset(torch.randn(20, 3, generator=g), torch.randint(0, 3, (20,), generator=g))
    test = dataset(torch.randn(20, 3, generator=g), torch.randint(0, 3, (20,), generator=g))
    model = PassThrough()
    out = run_proof(lambda seed: model, lambda seed: model, forget, retain, test, n=4)
    assert out["forgetting_quality"] == 1.0 and out["score"] == pytest.approx(1.0)
    # The pass-through model's accuracy is argmax(x) == y, known by hand on each set.
    ra = (retain.x.argmax(1) == retain.y).float().mean().item()
    assert out["ra_unlearned"] == pytest.approx(ra) and out["ra_retrained"] == pytest.approx(ra)
    assert len(out["epsilon"]) == 10

    # Seed-dependent models, different on the two sides: logits shifted by +seed vs +seed+10 on the true class.
    def shifted(offset: float):
        def make(seed: int) -> nn.Module:
            class Shift(PassThrough):
                def forward(self, x: torch.Tensor) -> torch.Tensor:
                    return x + (seed + offset) * F.one_hot(forget.y[: len(x)], 3).float()

            return Shift()

        return make

    far = run_proof(shifted(0.0), shifted(100.0), forget, forget, forget, n=4)
    assert far["forgetting_quality"] == 0.0
    with pytest.raises(ConfigError, match="n=1"):
        run_proof(lambda s: model, lambda s: model, forget, retain, test, n=1)
