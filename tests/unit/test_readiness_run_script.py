"""benchmarks/readiness/run.py: how a target's value is written in the gathered README."""

from __future__ import annotations

import math

from tests.conftest import load_script


def test_value_with_an_interval_and_without_one():
    value = load_script("readiness/run.py")._value
    assert value({"mean": 0.1, "ci_low": -0.05, "ci_high": 0.25, "n": 5}) == "+0.100 [-0.050, +0.250] (n=5)"
    # One seed with a defined recovery gap has no interval: say so instead of printing "[+nan, +nan]".
    assert value({"mean": -0.041, "ci_low": math.nan, "ci_high": math.nan, "n": 1}) == "-0.041 (n=1, no interval)"
    assert value({"mean": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n": 0}) == "–"
    assert value({"text": "0.208 [0.154, 0.281] (n=5)", "n": 5}) == "0.208 [0.154, 0.281] (n=5)"
