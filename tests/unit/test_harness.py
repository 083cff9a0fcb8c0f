"""The benchmark harness (recipes/harness.py) and the cache names every runner must keep, byte for byte.

The pinned names were computed by the runners as they were before the harness existed (issue 15). A change
that alters one of them makes every existing ``runs/`` folder recompute what it already holds: if that is
intended (a fix that changes what a model or cell would contain), bump ``CACHE_VERSION`` and update the pins.
"""

from __future__ import annotations

import json

import pytest
import torch

from ready2unlearn.artifacts import save_checkpoint
from ready2unlearn.config import from_dict, to_dict
from ready2unlearn.data.request import DeletionRequest
from ready2unlearn.engine.method import method_config
from ready2unlearn.errors import ConfigError
from ready2unlearn.recipes import ready_bench
from ready2unlearn.recipes.bench import BenchConfig, BenchRunner
from ready2unlearn.recipes.cache import cache_key, cache_record
from ready2unlearn.recipes.classifier_env import retrain_config
from ready2unlearn.recipes.harness import CellCache, ModelCache, check_resumable, publish, run_resumable, slug
from ready2unlearn.recipes.plan import PlanRunner
from ready2unlearn.recipes.plan_config import PlanConfig
from ready2unlearn.recipes.ready_bench import ReadyBenchConfig, ReadyBenchRunner
from tests.conftest import toy_model

READY = {
    "train": "digits-mlp", "train_overrides": ["epochs=2", "model.hidden=[32]"], "seeds": [0],
    "ready": {"meta_every": 2},
    "groups": [{"name": "class", "ready": ["revocable=class:3,5"], "requests": {"in": "class:3", "out": "class:1"},
                "targeted": ["in"], "baselines": True}],
    "stop": {"rule": "forget_acc", "target": "reference", "max_steps": 20, "eval_every": 2},
    "relearn": {"sets": ["forget-10"], "steps": 4, "eval_every": 2}, "dp": {"noise_multiplier": 0.5},
    "memory": False, "mia_max_test": 200,
}  # fmt: skip
BENCH = {
    "train": "digits-mlp", "train_overrides": ["epochs=3", "model.hidden=[32]"], "settings": ["class:3", "random:0.1"],
    "methods": [{"name": "ga"}], "seeds": [0],
    "stop": {"rule": "forget_acc", "target": "reference", "max_steps": 60, "eval_every": 5},
    "relearn": {"sets": ["forget-10"], "steps": 5, "eval_every": 5},
}  # fmt: skip
PLAN = {"train": "digits-mlp", "train_overrides": ["epochs=2"], "requests": [1, 2], "serve": 2, "request_size": 8,
        "seeds": [0], "methods": [{"name": "ga"}], "ready_methods": [], "sisa": [], "mia": False}  # fmt: skip


# -- pinned names (resumability of existing runs/ folders) ------------------------------------------------
def test_ready_bench_names_are_pinned(tmp_path, monkeypatch):
    monkeypatch.setattr(ReadyBenchRunner, "_run_setting", lambda self, *a: {"stub": True})
    monkeypatch.setattr(ready_bench, "summarise_readiness", lambda results: {})
    monkeypatch.setattr(ReadyBenchRunner, "_cost", lambda self, *a: None)  # the cost probe would train the models
    runner = ReadyBenchRunner(from_dict(ReadyBenchConfig, READY), tmp_path, "pin", False, report=lambda r, o: None)
    runner.run()  # plans every cell; nothing is trained
    # The ready and negtrain keys (and so the cells) changed on purpose, when class requests' α measurement
    # default became calibration=fast and when ready.score_mode's default became mixed (a changed default must
    # retrain, never reuse).
    assert sorted(p.name for p in (tmp_path / "cells").iterdir()) == [
        "class-in-seed0-673126c1cca3.json", "class-out-seed0-e7f49b329c12.json"]  # fmt: skip
    assert not (tmp_path / "models").exists()
    env = runner.classifier.env(0)
    variants = runner._variants(env, 0, runner.cfg.groups[0])
    assert {k: v.key for k, v in variants.items()} == {
        "standard": "f85ac5f7914e", "ready": "8e63d32b54ec", "downweight": "afdb87d06bc4", "negtrain": "a74f7709524e",
        "dp": "514d31f9eef0"}  # fmt: skip
    standard = runner.classifier.model_config(env, "standard", {})
    assert runner.classifier.models.path(0, "standard", standard) == tmp_path / "models/seed0/standard-f85ac5f7914e"
    views = DeletionRequest.parse("class:3").resolve(env.split.train, env.split.test, env.split.spec.num_classes)
    ref_key = runner.classifier.model_key(env, "retrain", retrain_config(views))
    assert ref_key == "b7a87b8852ec"
    monkeypatch.setattr(ReadyBenchRunner, "_unlearn", lambda self, *a: {"stub": True})
    runner._cached_run(env, 0, "standard", "f85ac5f7914e", None, views, method_config({"name": "ga"}), None, ref_key,
                       {}, "class")  # fmt: skip
    assert [p.name for p in (tmp_path / "shared").iterdir()] == ["seed0-standard-ga-50bb80aa2741.json"]


def test_bench_names_are_pinned(tmp_path):
    runner = BenchRunner(from_dict(BenchConfig, BENCH), tmp_path, "pin", False)
    env = runner.classifier.env(0)
    assert runner.classifier.model_key(env, "standard", {}) == "26c8907e0fcb"
    names, refs = [], []
    for setting in BENCH["settings"]:
        views = DeletionRequest.parse(setting).resolve(env.split.train, env.split.test, env.split.spec.num_classes)
        refs.append(runner.classifier.model_key(env, "retrain", retrain_config(views)))
        for m in [method_config({"name": "retrain"}), *runner.cfg.methods]:
            conf = runner._cell_config(env, views, setting, "standard", m)
            names.append(runner.cells.path(runner._key(setting, 0, "standard", m), conf).relative_to(tmp_path))
    assert refs == ["2c6500c88a46", "79fb6f40f9d2"]
    assert [str(n) for n in names] == [
        "cells/class-3-seed0-standard-retrain-30a5bfecc2ab.json", "cells/class-3-seed0-standard-ga-776cd58238f0.json",
        "cells/random-0.1-seed0-standard-retrain-c31ec5988c78.json",
        "cells/random-0.1-seed0-standard-ga-3930c8ce70a3.json"]  # fmt: skip


def test_plan_names_are_pinned(tmp_path):
    runner = PlanRunner(from_dict(PlanConfig, PLAN), tmp_path, "pin", False)
    env = runner._env(0)
    standard = runner.models.path(0, "standard", {"model": "standard", **runner._trained_by(env)})
    assert standard == tmp_path / "models/seed0/standard-df716724eb95"
    conf = {"model": "standard", "method": to_dict(method_config({"name": "ga"})), "ready": None}
    runner._cell(env, "standard + ga", conf, lambda: {})
    assert runner.cells.files == [tmp_path / "cells/seed0-standard-+-ga-18bde6de6a2f.json"]


# -- the harness pieces -----------------------------------------------------------------------------------
def test_slug():
    assert slug("class:3/seed0/standard/ga") == "class-3-seed0-standard-ga"
    assert slug("random:0.1 in pool") == "random-0.1-in-pool" and slug("--a b--") == "a-b"


def test_cell_cache_keyed_unkeyed_and_this_runs_files(tmp_path):
    cells = CellCache(tmp_path)
    conf = {"cell": "x"}
    path = cells.path("a b/c", conf)
    assert path == tmp_path / "cells" / f"a-b-c-{cache_key(conf)}.json"
    made = []
    first = cells.get("a b/c", conf, lambda: made.append(1) or {"value": 1})
    again = cells.get("a b/c", conf, lambda: made.append(2) or {"value": 2})
    assert made == [1] and first == again == {"value": 1, "cache": cache_record(conf)}
    assert cells.load(path, {"cell": "y"}) is None  # another config never reuses it
    assert cells.files == [path, path]
    assert cells.read() == [{"value": 1, "cache": {"key": cache_key(conf)}}] * 2
    assert cells.read(keep_key=False) == [{"value": 1}] * 2
    plain = CellCache(tmp_path, name=lambda key: key)
    assert plain.path("seed0-x y", None) == tmp_path / "cells" / "seed0-x y.json"
    assert plain.get("k", None, lambda: {"v": 2}) == {"v": 2} and plain.get("k", None, dict) == {"v": 2}
    assert json.loads((tmp_path / "cells" / "k.json").read_text()) == {"v": 2}


def test_model_cache_trains_once_keeps_and_loads_old_bench_cards(tmp_path):
    trained = []

    def train(model):
        trained.append(1)
        return {"seconds": 1.0}

    cache = ModelCache(tmp_path, torch.device("cpu"), lambda seed, name, info: {"producer": "test", "name": name})
    model, info = cache.get(0, "standard", {"a": 1}, toy_model, train)
    assert info == {"seconds": 1.0} and trained == [1]
    assert cache.get(0, "standard", {"a": 1}, toy_model, train)[0] is model  # kept in memory
    cache.clear()
    loaded, _ = cache.get(0, "standard", {"a": 1}, toy_model, train, keep=False)
    assert loaded is not model and trained == [1]
    assert all(
        torch.equal(p, q) for p, q in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True)
    )
    card = json.loads((cache.path(0, "standard", {"a": 1}) / "card.json").read_text())
    assert card["info"] == {"seconds": 1.0} and card["name"] == "standard"
    # A checkpoint written by r2u bench before the harness keeps its info under "bench": it still loads.
    old = cache.path(0, "retrain", {"b": 2})
    save_checkpoint(model, old, {"bench": {"seconds": 3.0}, "cache": cache_record({"b": 2})})
    assert cache.get(0, "retrain", {"b": 2}, toy_model, train)[1] == {"seconds": 3.0} and trained == [1]
    assert cache.get(0, "retrain", {"b": 3}, toy_model, train)[1] == {"seconds": 1.0} and trained == [1, 1]


def test_run_resumable_refuses_another_config_and_publish_calls_the_report(tmp_path):
    class Runner:
        def __init__(self, cfg, out, preset, show_progress):
            self.out, self.cfg, self.preset = out, cfg, preset

        def run(self):
            (self.out / "x_config.json").write_text(json.dumps({"config": to_dict(self.cfg)}))
            return publish({"preset": self.preset}, self.out, lambda r, o: (o / "report.md").write_text(r["preset"]))

    cfg = from_dict(PlanConfig, PLAN)
    res = run_resumable(Runner, cfg, "some/dir/pin.yaml", tmp_path, False, config_file="x_config.json", what="a thing")
    assert res["preset"] == "pin" and res["wall_seconds"] >= 0
    assert json.loads((tmp_path / "results.json").read_text()) == {"preset": "pin"}
    assert (tmp_path / "report.md").read_text() == "pin"
    other = from_dict(PlanConfig, {**PLAN, "mia": True})
    check_resumable(cfg, tmp_path, "x_config.json")  # the same config resumes; a new folder always may
    check_resumable(other, tmp_path / "new", "x_config.json")
    with pytest.raises(ConfigError, match="holds a thing with a different config"):
        run_resumable(Runner, other, "pin.yaml", tmp_path, False, config_file="x_config.json", what="a thing")
