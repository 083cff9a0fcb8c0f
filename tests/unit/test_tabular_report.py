"""The tabular readiness benchmark's report cells: intervals, bound texts and one-seed values."""

from __future__ import annotations

from tests.conftest import load_script


def test_fmt_prints_interval_bound_text_and_one_seed_value():
    fmt = load_script("readiness/tabular.py")._fmt
    assert fmt({"mean": 0.5, "ci_low": 0.4, "ci_high": 0.6, "verdict": "met"}) == "+0.50 [+0.40, +0.60] (met)"
    assert fmt({"mean": 0.01, "ci_low": -0.02, "ci_high": 0.03}, pct=True) == "+1.00 [-2.00, +3.00] (-)"
    assert fmt({"text": "≤ 0.40", "mean": 0.4, "ci_low": 0.4, "ci_high": 0.4}) == "≤ 0.40 (-)"
    # One seed: the interval is NaN; the cell must say there is none instead of printing [+nan, +nan].
    one = fmt({"mean": 0.25, "ci_low": float("nan"), "ci_high": float("nan"), "verdict": "inconclusive"})
    assert one == "+0.25 (no CI) (inconclusive)" and "nan" not in one
