"""The readiness sweep script: groups are named by shape, so inserting a shape never shifts another's cache."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from ready2unlearn.config import from_dict
from ready2unlearn.recipes.ready_bench import ReadyBenchConfig

SWEEP = Path(__file__).resolve().parents[2] / "benchmarks" / "readiness_sweep" / "sweep.py"


@pytest.fixture
def sweep():
    spec = importlib.util.spec_from_file_location("readiness_sweep", SWEEP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_inserting_a_shape_keeps_every_other_group(sweep, monkeypatch):
    before = {g["name"]: g for g in sweep.bench_config("digits")["groups"]}
    monkeypatch.setitem(sweep.SHAPES, "inserted (λ=0.5)", (["lam=0.5"], ["lam=0.5"]))
    monkeypatch.setitem(sweep.DATASETS["digits"], "shapes", ["inserted (λ=0.5)", *sweep.DIGITS_SHAPES])
    after = {g["name"]: g for g in sweep.bench_config("digits")["groups"]}
    assert set(after) - set(before) == {"inserted-lam-0.5-class", "inserted-lam-0.5-random"}
    for name, group in before.items():  # the same name still means the same knobs and request
        assert after[name] == group, name
    assert len(after) == len({g["name"] for g in sweep.bench_config("digits")["groups"]})  # names are distinct


@pytest.mark.parametrize("dataset", ["digits", "fashion"])
def test_sweep_configs_follow_the_protocol(sweep, dataset):
    cfg = from_dict(ReadyBenchConfig, sweep.bench_config(dataset))
    assert cfg.kind_stop("random").rule == "forget_loss" and cfg.kind_stop("class").rule == "forget_acc"
    assert cfg.mia and not cfg.allow_small_requests
    n_train = 1437 if dataset == "digits" else 10000
    for group in cfg.groups:
        if group.name.endswith("-random"):
            fraction = float(group.requests["in"].split(":")[1].split("@")[0])
            assert round(fraction * n_train) >= 200 and fraction >= 0.01, group.name


def test_running_some_shapes_merges_them_and_keeps_the_other_rows(sweep):
    def result(shapes, tag):
        cfg = sweep.bench_config("digits", shapes)
        rows = [{"group": g["name"], "variant": v, "tag": tag} for g in cfg["groups"] for v in ("standard", "ready")]
        table = [{"shape": s, "kind": k, "tag": tag} for s in shapes for k in ("class", "random")
                 if sweep.SHAPES[s][0 if k == "class" else 1] is not None]  # fmt: skip
        return {"dataset": "digits", "config": cfg, "shapes": table, "standard_steps": {"class": 1.0}, "rows": rows}

    old = result(["shipped defaults", "level form", "second order"], "old")
    new = result(["level form", "resistance λ3=1, 3 relearn steps, second order"], "new")
    merged = sweep.merge(old, new, ["level form", "resistance λ3=1, 3 relearn steps, second order"])
    shapes = [(r["shape"], r["tag"]) for r in merged["shapes"]]
    assert shapes == [("shipped defaults", "old"), ("shipped defaults", "old"), ("level form", "new"),
                      ("second order", "old"), ("second order", "old"),
                      ("resistance λ3=1, 3 relearn steps, second order", "new")]  # fmt: skip
    by_group = {(r["group"], r["variant"]): r["tag"] for r in merged["rows"]}
    assert by_group[("level-form-class", "ready")] == "new" and by_group[("second-order-class", "ready")] == "old"
    assert len(merged["rows"]) == len(by_group)  # no group's rows kept twice
    assert [g["name"] for g in merged["config"]["groups"]][-1] == "resistance-lam3-1-3-relearn-steps-second-order-class"
