"""``r2u plan``: the request stream, the cost model and recommendation, and a small end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ready2unlearn.cli.main import main
from ready2unlearn.config import from_dict
from ready2unlearn.data.registry import DataConfig, load_split
from ready2unlearn.errors import ConfigError, RequestError
from ready2unlearn.recipes.plan_config import PlanConfig
from ready2unlearn.recipes.plan_stream import draw_stream
from ready2unlearn.report.plan_report import summarise_plan, training_unit


@pytest.fixture(scope="module")
def digits():
    return load_split(DataConfig(name="digits"))


def test_config_validation():
    cfg = from_dict(PlanConfig, {"requests": [100, 1, 10], "serve": 20})
    assert cfg.requests == [1, 10, 100] and cfg.served_points == [1, 10] and cfg.horizon == 20 and cfg.target_k == 100
    for bad in (
        {"requests": [0]},
        {"serve": 0},
        {"utility_floor": 1.5},
        {"methods": [{"name": "retrain"}]},
        {"sisa": [{"shards": 2}, {"shards": 2}]},
        {"stop": {"rule": "steps"}},
        {"serve": 2, "request_size": 5},
    ):  # fmt: skip  (the 10-sample relearning attack needs > 10 rows)
        with pytest.raises(ConfigError):
            from_dict(PlanConfig, bad)


def test_a_ready_model_that_cannot_measure_alpha_fails_before_anything_trains():
    """alpha=auto is measured when readiness starts (after a quarter of the epochs): one epoch is refused at once."""
    from ready2unlearn.recipes.plan_config import load_plan_config

    with pytest.raises(ConfigError, match="at least 2"):
        load_plan_config("digits-plan", ["train_overrides=[epochs=1]"])
    cfg, _ = load_plan_config("digits-plan", ["train_overrides=[epochs=1]", "ready=[kind=random, alpha=0.05]"])
    assert cfg.ready_config(1).alpha == 0.05
    assert cfg.ready_config(20).start_epoch == 0  # a number needs no warm-up
    assert load_plan_config("digits-plan")[0].ready_config(20).start_epoch == 5  # auto: after a quarter


def test_stream_is_disjoint_seeded_and_bounded(digits):
    a, b = draw_stream(digits, 20, 5, seed=0), draw_stream(digits, 20, 5, seed=0)
    assert all(np.array_equal(x, y) for x, y in zip(a.requests, b.requests, strict=True))
    rows = np.concatenate(a.requests)
    assert len(rows) == len(np.unique(rows)) == 100
    assert np.array_equal(a.gone(3), np.sort(np.concatenate(a.requests[:3])))
    assert len(a.remaining(3)) == len(digits.train) - 15
    views = a.views(2, cumulative=False)
    assert len(views.forget) == 5 and len(views.retain) == len(digits.train) - 10  # request 1's rows are gone too
    with pytest.raises(RequestError, match="more than half"):
        draw_stream(digits, 200, 5, seed=0)


def _cell(strategy, family, seed, train_s, request_s, reached=True, gap=0.01, acc=0.9):
    point = {"metrics": {"test_acc": acc, "forget_acc": 0.5, "mia_auc": 0.5}, "gaps": {"avg_gap": gap}}
    return {"strategy": strategy, "family": family, "seed": seed, "train_seconds": train_s,
            "requests": [{"seconds": s, "steps": 1, "reached": reached} for s in request_s],
            "checkpoints": {"1": point, "2": point}}  # fmt: skip


def test_costs_break_even_verification_and_recommendation():
    cells = []
    for seed in (0, 1):
        cells += [_cell("retrain", "exact", seed, 10.0, [10.0, 12.0]),  # unit: median(10, 10, 12) = 10 s
                  _cell("standard + ga", "approximate", seed, 10.0, [1.0, 1.0]),
                  _cell("ready + ga", "approximate", seed, 30.0, [0.5, 0.5], reached=False),
                  _cell("sisa 2x2", "exact", seed, 12.0, [5.0, 5.0], acc=0.8)]  # fmt: skip
    cfg = {"requests": [1, 2, 10], "expected": None, "max_avg_gap": 0.03, "utility_floor": 0.85}
    summary = summarise_plan({"config": cfg, "cells": cells, "standard_seconds": {"0": 10.0, "1": 10.0}})
    rows = {r["strategy"]: r for r in summary["rows"]}
    assert training_unit(cells[0]) == 10.0 and summary["unit_seconds"] == {"0": 10.0, "1": 10.0}
    ga = rows["standard + ga"]
    assert ga["one_off"]["mean"] == pytest.approx(1.0) and ga["per_request"]["mean"] == pytest.approx(0.1)
    assert ga["totals"]["2"]["mean"] == pytest.approx(1.2)
    assert ga["totals"]["10"]["mean"] == pytest.approx(2.0) and ga["extrapolated"] == [10]  # 1 + 10 × 0.1
    assert rows["retrain"]["totals"]["2"]["mean"] == pytest.approx(1 + 1.0 + 1.2)
    assert ga["break_even_vs_retrain"] == pytest.approx(0.0)  # same one-off, cheaper per request
    assert rows["sisa 2x2"]["break_even_vs_retrain"] == pytest.approx(0.2 / 0.6)
    assert not rows["ready + ga"]["verified"] and rows["retrain"]["verified"] and rows["sisa 2x2"]["verified"]
    assert not rows["sisa 2x2"]["meets_floor"]
    assert rows["ready + ga"]["reached"] == 0.0 and rows["ready + ga"]["reached_share"] == 0.0
    text = summary["recommendation"]
    assert text.startswith("For 10 requests, standard + ga costs least") and "(extrapolated)" in text
    assert "ready + ga" in text and "sisa 2x2" in text  # named as not verified / below the floor


def test_plan_end_to_end_and_resume(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["plan", "digits-plan", "seeds=[0, 1]", "serve=2", "requests=[1, 2, 5]", "request_size=8",
            "train_overrides=[epochs=2]", "methods=[{name: ga}]", "ready_methods=[{name: ga}]",
            "sisa=[{shards: 2, slices: 2}]", "stop.max_steps=40", "mia=false", "utility_floor=null",
            "--out", "out", "--quiet"]  # fmt: skip
    assert main(args) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    strategies = {c["strategy"] for c in results["cells"]}
    assert strategies == {"retrain", "standard + ga", "ready + ga", "sisa 2x2"}
    assert len(results["cells"]) == 8 and all(len(c["requests"]) == 2 for c in results["cells"])
    retrain = next(c for c in results["cells"] if c["strategy"] == "retrain")
    assert set(retrain["targets"]) == {"1", "2"} and all(r["reached"] for r in retrain["requests"])
    sisa = next(c for c in results["cells"] if c["strategy"] == "sisa 2x2")
    assert sisa["parameters_ratio"] == pytest.approx(2.0) and sisa["inference_ratio"] > 0
    assert all(r["steps"] >= 1 for r in sisa["requests"])  # stages re-run per request
    rows = results["summary"]["rows"]
    assert all(r["extrapolated"] == [5] for r in rows)
    for name in ("report.md", "report.html", "plots/cost_vs_k.png", "plots/pareto.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    assert (
        "(extrapolated)" in results["summary"]["recommendation"]
        or "No strategy" in results["summary"]["recommendation"]
    )
    cells = sorted((tmp_path / "out" / "cells").iterdir())
    stamps = [p.stat().st_mtime_ns for p in cells]
    assert main(args) == 0  # resumed: every cached stream is reused, not recomputed
    assert [p.stat().st_mtime_ns for p in sorted((tmp_path / "out" / "cells").iterdir())] == stamps
    capsys.readouterr()
    assert main([*args[:-3], "serve=3", "--out", "out"]) == 2  # another config never resumes this folder
    assert "different config" in capsys.readouterr().err


def test_plan_api_on_your_own_module_and_data(tmp_path):
    import torch

    import ready2unlearn as r2u
    from ready2unlearn.data.base import ArrayDataset

    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 6, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    train, test = (
        ArrayDataset(x[:300], y[:300], torch.arange(300)),
        ArrayDataset(x[300:], y[300:], torch.arange(300, 400)),
    )

    class Net(torch.nn.Module):  # a user's own module: cached by its weights, rebuilt by re-initialising a copy
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))

        def forward(self, x):
            return self.body(x)

    options = {"requests": [1, 2], "serve": 2, "request_size": 8, "methods": [{"name": "ga"}], "ready_methods": [],
               "sisa": [{"shards": 2, "slices": 2}], "mia": False, "stop": {"rule": "forget_loss",
               "target": "reference", "max_steps": 30, "eval_every": 2}}  # fmt: skip
    results = r2u.plan(Net(), train, test, tmp_path / "plan", train_config=r2u.TrainConfig(epochs=3), seeds=[0],
                       **options)  # fmt: skip
    assert {c["strategy"] for c in results["cells"]} == {"retrain", "standard + ga", "sisa 2x2"}
    assert results["data"]["name"] == "custom" and results["summary"]["recommendation"]
    cards = list((tmp_path / "plan" / "models").rglob("card.json"))
    assert cards and all(json.loads(c.read_text())["model"]["name"] == "Net" for c in cards)
    again = r2u.plan(Net(), train, test, tmp_path / "plan", train_config=r2u.TrainConfig(epochs=3), seeds=[0],
                     **options)  # fmt: skip
    assert again["cells"] == results["cells"]  # resumed from the cache, model weights loaded into fresh Nets
