"""The language benchmark's comparison: paired by seed, censored step ratios, the relearning floor, targets."""

from __future__ import annotations

import math

import pytest

from ready2unlearn.report.lm import compare_to_standard, summarise_lm


def _relearn(loss: float) -> dict:
    return {"forget-10": {"curve": [{"step": 0, "forget_loss": loss}, {"step": 5, "forget_loss": loss}]}}


def _results() -> dict:
    def model(utility: float, seconds: float, relearn: float | None = None) -> dict:
        out = {"info": {"seconds": seconds}, "eval": {"model_utility": utility}}
        return {**out, "relearn": _relearn(relearn)} if relearn is not None else out

    models = {
        "0": {"standard": model(0.50, 10), "ready": model(0.49, 20), "retrained": model(0.45, 9, relearn=6.0)},
        "1": {"standard": model(0.40, 10), "ready": model(0.41, 30), "retrained": model(0.40, 9, relearn=5.0)},
    }
    cell = lambda base, seed, steps, reached, utility, relearn: {  # noqa: E731
        "base": base, "method": "ga", "seed": seed, "steps": steps, "reached": reached,
        "eval": {"model_utility": utility}, "relearn": _relearn(relearn)}  # fmt: skip
    cells = [cell("standard", 0, 40, True, 0.30, 2.0), cell("ready", 0, 10, True, 0.32, 4.0),
             cell("standard", 1, 30, True, 0.20, 1.0), cell("ready", 1, 300, False, 0.25, 3.0)]  # fmt: skip
    return {"models": models, "cells": cells}


def test_compare_pairs_by_seed_and_keeps_censored_runs_as_bounds():
    (row,) = compare_to_standard(_results())
    assert row["model"] == "ready" and row["method"] == "ga" and row["seeds"] == 2
    steps = row["steps, model / standard"]
    assert steps["per_seed"] == ["0.250", "≥ 10.000"] and steps["n"] == 1 and steps["censored"] == 1
    assert steps["verdict"] == "inconclusive"  # one seed met, one censored on the wrong side: no verdict
    assert row["utility before, Δ"]["mean"] == pytest.approx(0.0)  # −0.01 and +0.01
    assert row["utility after, Δ"]["mean"] == pytest.approx(0.035)
    # relearning: (model − standard) / (retrained − standard) of the mean held-out loss: 2/4 and 2/4
    assert row["relearning gap closed"]["mean"] == pytest.approx(0.5)
    assert row["training time, model / standard"]["mean"] == pytest.approx(math.sqrt(2.0 * 3.0))
    assert row["training time, model / standard"]["verdict"] == "inconclusive"


def test_without_a_relearning_floor_the_gap_is_not_guessed():
    results = _results()
    for ms in results["models"].values():
        ms["retrained"].pop("relearn")
    (row,) = compare_to_standard(results)
    assert row["relearning gap closed"]["n"] == 0 and row["relearning gap closed"]["verdict"] == "n/a"


def test_summary_keeps_the_table_and_training_time_ratios():
    results = _results()
    s = summarise_lm(results)
    assert s["train_time_ratios"]["ready"] == pytest.approx(2.5) and s["train_time_ratio"] == pytest.approx(2.5)
    assert {(r["model"], r["method"]) for r in s["table"]} >= {("standard", "ga"), ("ready", "ga"), ("retrained", "—")}
