"""Censored step ratios, paired statistics over seeds, and the stop rules they judge (hand-made curves)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ready2unlearn.engine.stop import StopConfig
from ready2unlearn.errors import ConfigError
from ready2unlearn.report.stats import (
    CensoredRatio,
    censored_ratio,
    judge_ratios,
    paired_difference,
    paired_ratio,
    ratio_from_dict,
)


# -- censored ratios -------------------------------------------------------------------------------------------
def test_a_ratio_exists_only_when_both_runs_reached():
    exact = censored_ratio(10, True, 40, True)
    assert (exact.kind, exact.value, exact.text()) == ("exact", 0.25, "0.250")
    # Ready reached in 10, standard gave up after its 300-step budget: the true ratio is at most 10/300.
    upper = censored_ratio(10, True, 300, False)
    assert (upper.kind, upper.text()) == ("at_most", "≤ 0.033") and upper.censored
    # Standard reached in 30, ready gave up after 300: the true ratio is at least 10.
    lower = censored_ratio(300, False, 30, True)
    assert (lower.kind, lower.value, lower.text()) == ("at_least", 10.0, "≥ 10.000")
    both = censored_ratio(300, False, 300, None)  # None: a rule without a target never "reached"
    assert both.kind == "both_censored" and math.isnan(both.value) and both.text() == "n/a (both censored)"
    assert censored_ratio(5, True, 0, True).kind == "undefined"  # the standard model needed no step at all
    assert ratio_from_dict(upper.to_dict()) == upper


def test_a_bound_proves_a_target_only_from_the_right_side():
    assert censored_ratio(10, True, 300, False).proves("<=", 1 / 3) is True  # ≤ 0.033 ≤ 1/3
    assert censored_ratio(200, True, 300, False).proves("<=", 1 / 3) is None  # ≤ 0.67: could be either
    assert censored_ratio(300, False, 30, True).proves("<=", 1 / 3) is False  # ≥ 10 > 1/3
    assert censored_ratio(300, False, 3000, True).proves("<=", 1 / 3) is None  # ≥ 0.1: could be either
    assert censored_ratio(10, True, 30, True).proves(">=", 0.5) is False
    assert censored_ratio(300, False, 300, False).proves("<=", 1 / 3) is None


def test_zero_steps_count_as_one_in_the_log():
    r = censored_ratio(0, True, 20, True)
    assert r.value == 0.0 and r.log_value == pytest.approx(math.log(1 / 20))
    assert CensoredRatio.exact(3.0, 2.0).value == 1.5 and CensoredRatio.exact(1.0, 0.0).kind == "undefined"
    # The table text says which seeds were floored, so "0.05×" is not read as a measured speed-up.
    text = paired_ratio([r, censored_ratio(1, True, 20, True)])["text"]
    assert text.startswith("0.050 ") and text.endswith("(n=2, 1 at 0 steps, counted as 1)")
    assert "at 0 steps" not in paired_ratio([censored_ratio(1, True, 20, True)] * 2)["text"]


# -- paired statistics ---------------------------------------------------------------------------------------
def test_paired_difference_is_a_t_interval():
    values = [1.0, 2.0, 3.0, 4.0, 5.0, math.nan]
    out = paired_difference(values, ">=", 1.0)
    low, high = stats.t.interval(0.95, df=4, loc=3.0, scale=np.std(values[:5], ddof=1) / math.sqrt(5))
    assert (out["mean"], out["n"], out["missing"]) == (3.0, 5, 1)
    assert out["ci_low"] == pytest.approx(low) and out["ci_high"] == pytest.approx(high)
    assert out["verdict"] == "met"  # 1.04 > 1: the whole interval is on the right side
    assert paired_difference(values, ">=", 2.0)["verdict"] == "inconclusive"
    assert paired_difference(values, "<=", 1.0)["verdict"] == "missed"
    single = paired_difference([0.5], "<=", 1.0)  # one seed: no interval, no verdict either way
    assert single["verdict"] == "inconclusive" and math.isnan(single["ci_low"])
    assert paired_difference([math.nan], "<=", 1.0)["verdict"] == "n/a"


def test_paired_ratio_is_a_geometric_mean_with_a_log_t_interval():
    ratios = [censored_ratio(a, True, b, True) for a, b in ((1, 2), (2, 1), (1, 1), (1, 4))]
    out = paired_ratio(ratios)
    logs = np.log([0.5, 2.0, 1.0, 0.25])
    low, high = stats.t.interval(0.95, df=3, loc=logs.mean(), scale=logs.std(ddof=1) / 2)
    assert out["mean"] == pytest.approx(math.exp(logs.mean()))
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((math.exp(low), math.exp(high)))
    assert out["n"] == 4 and out["censored"] == 0 and out["per_seed"] == ["0.500", "2.000", "1.000", "0.250"]


def test_censored_seeds_never_count_as_met():
    good = [censored_ratio(s, True, 30, True) for s in (5, 6, 5, 6, 5)]
    assert judge_ratios(good, "<=", 1 / 3) == "met"
    proving = [*good, censored_ratio(5, True, 300, False)]  # "≤ 0.017" proves the target for that seed
    assert judge_ratios(proving, "<=", 1 / 3) == "met"
    unknown = [*good, censored_ratio(250, True, 300, False)]  # "≤ 0.83" does not
    assert judge_ratios(unknown, "<=", 1 / 3) == "inconclusive"
    against = [*good, censored_ratio(300, False, 30, True)]  # "≥ 10" even speaks against it
    assert judge_ratios(against, "<=", 1 / 3) == "inconclusive"
    bad = [censored_ratio(s, True, 30, True) for s in (28, 31, 29)] + [censored_ratio(300, False, 30, True)]
    assert judge_ratios(bad, "<=", 1 / 3) == "missed"
    assert judge_ratios([censored_ratio(300, False, 300, False)] * 3, "<=", 1 / 3) == "n/a"
    # One exact seed has no spread of its own: the proving bounds join its interval.
    mostly_bounds = [censored_ratio(6, True, 30, True)] + [censored_ratio(s, True, 300, False) for s in (8, 9, 10, 9)]
    assert judge_ratios(mostly_bounds, "<=", 1 / 3) == "met"
    assert judge_ratios(mostly_bounds[:1], "<=", 1 / 3) == "inconclusive"
    text = paired_ratio(proving)["text"]
    assert text.endswith("(n=5, 1 censored)")


# -- stop rules on hand-made curves --------------------------------------------------------------------------
def _first_stop(stop: StopConfig, reference: float, curve: list[tuple[float, float]]) -> int | None:
    """The first point of a (forget accuracy, forget loss) curve at which ``stop`` is reached."""
    target = stop.resolve_target(10, reference)
    return next((i for i, (acc, loss) in enumerate(curve) if stop.reached(target, acc, loss)), None)


def test_loss_stop_resolves_what_an_accuracy_stop_cannot():
    # A random request of 200 samples: forget accuracy sits near the test accuracy the whole way (one sample
    # flips it), while the loss climbs steadily to the retrained model's 0.62.
    curve = [(0.92, 0.05), (0.915, 0.2), (0.91, 0.4), (0.905, 0.61), (0.9, 0.63), (0.9, 0.8)]
    assert _first_stop(StopConfig(rule="forget_loss", target="reference"), 0.62, curve) == 4
    assert _first_stop(StopConfig(rule="forget_loss", target="reference", tolerance=0.05), 0.62, curve) == 3
    # With the accuracy rule the stop hinges on one sample of the retrained model's 0.905.
    acc = StopConfig(rule="forget_acc", target="reference")
    assert _first_stop(acc, 0.905, curve) == 3 and _first_stop(acc, 0.9 - 1 / 200, curve) is None


def test_class_tolerance_admits_a_stubborn_sample_but_not_more():
    n = 200  # |D_f|; the retrained model classifies none of the forgotten class correctly
    curve = [(1.0, 0.0), (0.3, 1.0), (2 / n, 3.0), (1 / n, 4.0), (0.0, 9.0)]
    strict = StopConfig(rule="forget_acc", target="reference", max_steps=4)
    tolerant = StopConfig(rule="forget_acc", target="reference", max_steps=4, tolerance=0.01)
    assert _first_stop(strict, 0.0, curve) == 4 and _first_stop(tolerant, 0.0, curve) == 2
    assert tolerant.resolve_target(10, 0.0) == 0.01 and tolerant.resolve_target(10, 0.2) == pytest.approx(0.21)
    # Tolerance applies to reference targets only; a run that misses even the tolerant target stays censored.
    assert StopConfig(rule="forget_acc", target=0.0, tolerance=0.01).resolve_target(10, None) == 0.0
    assert not tolerant.reached(tolerant.resolve_target(10, 0.0), 0.02, 2.0)
    with pytest.raises(ConfigError, match="tolerance"):
        StopConfig(rule="forget_acc", target="reference", tolerance=-0.1)
