"""The readiness report cells: intervals, bound texts and one-seed values (tabular script and `ci_text`)."""

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


def test_ci_text_options_cover_every_readiness_formatter():
    from ready2unlearn.report.readiness_report import ci_text

    five = {"mean": -0.041, "ci_low": -0.1, "ci_high": 0.02, "n": 5}
    one = {"mean": 0.0123, "ci_low": float("nan"), "ci_high": float("nan"), "n": 1}
    assert ci_text(five) == "-0.041 [-0.100, 0.020]"
    assert ci_text(five, pct=True) == "-4.1 [-10.0, 2.0]"  # points default to one decimal
    assert ci_text(five, signed=True, show_n=True) == "-0.041 [-0.100, +0.020] (n=5)"
    assert ci_text(one) == "0.012"  # the plain form stays silent about a missing interval
    assert ci_text(one, signed=True, show_n=True, lone="no interval") == "+0.012 (n=1, no interval)"
    assert ci_text(one, True, 2, signed=True, lone="no CI") == "+1.23 (no CI)"
    assert ci_text({"mean": 0.0, "ci_low": 0.0, "ci_high": 0.0, "n": 0}) == "–"
    assert ci_text({"text": "0.50× [0.40, 0.60] (n=5)", "n": 5}, signed=True, show_n=True).startswith("0.50×")
    assert ci_text(None) == "–"
