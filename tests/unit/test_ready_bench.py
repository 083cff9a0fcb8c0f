"""Readiness benchmark, baselines, memory accounting and the ``--ready`` command line."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch

from ready2unlearn.cli.main import main
from ready2unlearn.config import from_dict
from ready2unlearn.errors import ConfigError
from ready2unlearn.readiness import ReadinessObjective, ReadyConfig, RevocableSet
from ready2unlearn.readiness.baselines import DPConfig, fit_downweighted, fit_dp_sgd
from ready2unlearn.readiness.cost import saved_tensor_bytes
from ready2unlearn.recipes.ready_bench import ReadyBenchConfig, ReadyBenchRunner, resolve_request
from ready2unlearn.report.readiness import summarise_readiness
from tests.conftest import make_blobs, toy_model, toy_train_config

TINY = {
    "train": "digits-mlp",
    "train_overrides": ["epochs=2", "model.hidden=[32]"],
    "seeds": [0],
    "ready": {"meta_every": 2},
    "groups": [
        {"name": "class", "ready": ["revocable=class:3,5"], "requests": {"in": "class:3", "out": "class:1"},
         "targeted": ["in"], "baselines": True},
        {"name": "random", "ready": ["kind=random", "revocable=random:0.2@7"],
         "requests": {"in": "random:0.02@1 in pool", "out": "random:0.02@2 in stable"}, "targeted": ["in"]},
    ],
    "extra_methods": [{"name": "npo"}],
    "stop": {"rule": "forget_acc", "target": "reference", "max_steps": 20, "eval_every": 2},
    "relearn": {"sets": ["forget-10"], "steps": 4, "eval_every": 2},
    "dp": {"noise_multiplier": 0.5},
    "sequential": {"count": 2, "group": "random", "request": "random:0.02@50 in pool"},
}  # fmt: skip


def test_ready_bench_end_to_end_and_resume(tmp_path):
    cfg = from_dict(ReadyBenchConfig, TINY)
    results = ReadyBenchRunner(cfg, tmp_path, "tiny", show_progress=False).run()
    assert len(results["cells"]) == 4
    cell = next(c for c in results["cells"] if c["group"] == "class" and c["setting"] == "in")
    combos = {(r["variant"], r["method"]) for r in cell["runs"]}
    assert {("standard", "npo"), ("ready", "npo"), ("downweight", "ga"), ("dp", "grad_diff")} <= combos
    assert ("dp", "npo") not in combos
    out_cell = next(c for c in results["cells"] if c["group"] == "class" and c["setting"] == "out")
    assert {r["method"] for r in out_cell["runs"]} == {"ga", "grad_diff"}
    names = {t["target"] for t in results["summary"]["targets"]}
    assert names == {"steps_ratio", "after_vs_standard", "after_gap_to_retrained", "before_vs_standard",
                     "relearn_vs_standard", "train_time_ratio"}  # fmt: skip
    assert {t["group"] for t in results["summary"]["targets"]} == {"class", "random"}
    assert results["memory"]["ready-class"] > results["memory"]["standard"] > 0
    assert [r["request"] for r in results["sequential"]["rows"]] == [1, 2]
    report = (tmp_path / "report.md").read_text()
    assert "## Targets" in report and "Sequential requests" in report and "Memory per training step" in report
    assert (tmp_path / "plots" / "ready_curves.png").is_file() and (tmp_path / "plots" / "relearn.png").is_file()
    card = json.loads((tmp_path / "models" / "seed0" / "ready-class" / "card.json").read_text())
    assert card["bench"]["ready"]["revocable"] == "class:3,5"
    assert card["bench"]["readiness"]["revocable"]["classes"] == [3, 5]
    # random-in requests come from the revocable pool, random-out from the stable rest
    rand = {c["setting"]: c for c in results["cells"] if c["group"] == "random"}
    assert rand["in"]["request"].startswith("samples:") and rand["in"]["views"]["forget"] == round(0.02 * 1437)

    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "models").rglob("*.safetensors")}
    again = ReadyBenchRunner(cfg, tmp_path, "tiny", show_progress=False).run()
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "models").rglob("*.safetensors")} == mtimes
    assert again["summary"]["targets"] == results["summary"]["targets"]


def test_bench_config_validation():
    bad = copy.deepcopy(TINY)
    bad["groups"][0]["targeted"] = ["nope"]
    with pytest.raises(ConfigError, match="targeted"):
        from_dict(ReadyBenchConfig, bad)
    bad = copy.deepcopy(TINY)
    bad["groups"][1]["ready"] = ["lam=-1"]
    with pytest.raises(ConfigError, match="lam"):
        from_dict(ReadyBenchConfig, bad)
    bad = copy.deepcopy(TINY)
    bad["groups"][0]["requests"]["in"] = "random:0.1 in nowhere"
    with pytest.raises(ConfigError, match="pool or stable"):
        from_dict(ReadyBenchConfig, bad)


def test_resolve_request_draws_inside_the_pool_or_the_stable_set():
    data = make_blobs(200, seed=0)
    rev = RevocableSet.resolve(data, "random:0.25@3", 4)
    pool_ids = set(np.asarray(data.ids)[rev.pool].tolist())
    inside = resolve_request("random:0.05@1 in pool", data, 4, rev)
    outside = resolve_request("random:0.05@1 in stable", data, 4, rev)
    assert len(inside.sample_ids) == 10 and set(inside.sample_ids) <= pool_ids
    assert not set(outside.sample_ids) & pool_ids
    assert resolve_request("class:2", data, 4, rev).kind == "class"
    whole = RevocableSet.resolve(data, None, 4)
    assert len(resolve_request("random:0.05@1 in pool", data, 4, whole).sample_ids) == 10
    with pytest.raises(ConfigError, match="no stable set"):
        resolve_request("random:0.05@1 in stable", data, 4, whole)
    with pytest.raises(ConfigError, match="only applies to random"):
        resolve_request("class:1 in pool", data, 4, rev)


def _relearn(acc):
    return {"forget-10": {"final_forget_acc": acc, "curve": [{"step": 2, "forget_acc": acc}]}}


def _cell(std_steps, ready_steps, kind="class"):
    def run(variant, steps, acc):
        seconds = 1.0 + (variant == "ready")
        return {"variant": variant, "method": "ga", "steps": steps, "reached": True, "train_seconds": seconds,
                "seconds": 0.1, "before": {"test_acc": 0.9}, "relearn": _relearn(0.5),
                "metrics": {"test_retain_acc": acc, "test_acc": acc, "forget_acc": 0.0}}  # fmt: skip

    return {"group": "g", "setting": "in", "seed": 0, "targeted": True, "kind": kind,
            "reference": {"metrics": {"test_retain_acc": 0.9, "test_acc": 0.9}, "relearn": _relearn(0.1)},
            "runs": [run("standard", std_steps, 0.9), run("ready", ready_steps, 0.89)]}  # fmt: skip


def test_summary_targets_and_undefined_step_ratio():
    res = summarise_readiness({"cells": [_cell(30, 6)], "config": {"methods": [{"name": "ga"}]}})
    t = {x["target"]: x for x in res["targets"]}
    assert t["steps_ratio"]["mean"] == pytest.approx(0.2) and t["steps_ratio"]["met"]
    assert not t["after_vs_standard"]["met"] and t["after_gap_to_retrained"]["met"]
    assert t["train_time_ratio"]["mean"] == pytest.approx(2.0) and t["train_time_ratio"]["met"]
    assert not res["all_targets_met"]
    zero = summarise_readiness({"cells": [_cell(0, 0)], "config": {"methods": [{"name": "ga"}]}})
    ratio = next(x for x in zero["targets"] if x["target"] == "steps_ratio")
    assert math.isnan(ratio["mean"]) and ratio["met"] is None


def test_dp_sgd_baseline_leaves_a_plain_module():
    train, test = make_blobs(240, seed=0), make_blobs(80, seed=0)
    model = toy_model()
    result, eps = fit_dp_sgd(model, train, test, toy_train_config(), DPConfig(noise_multiplier=1.0))
    assert math.isfinite(eps) and eps > 0 and result.metrics["epsilon"] == eps
    assert result.metrics["train_accuracy"] > 0.5
    assert not model._forward_hooks and all(not hasattr(p, "grad_sample") for p in model.parameters())
    copy.deepcopy(model)  # later unlearning deep-copies it
    with pytest.raises(ConfigError):
        DPConfig(max_grad_norm=0)


def test_downweighted_baseline_validates_weight():
    train = make_blobs(240, seed=0)
    with pytest.raises(ValueError, match="weight"):
        fit_downweighted(toy_model(), train, None, toy_train_config(), [0, 1], 1.5)


def test_saved_tensor_bytes_counts_the_inner_loop():
    train = make_blobs(240, seed=0)
    model = toy_model()
    x, y = train.x[:32], train.y[:32]
    std = saved_tensor_bytes(lambda: torch.nn.functional.cross_entropy(model(x), y))
    obj = ReadinessObjective(ReadyConfig(), train, 4, seed=0)
    ready = saved_tensor_bytes(lambda: torch.nn.functional.cross_entropy(model(x), y) + obj(model, 0, 0)[0])
    assert ready > std > 0


def test_cli_train_ready_records_every_knob(tmp_path, capsys):
    out = tmp_path / "ready"
    code = main(["train", "--dataset", "digits", "--epochs", "1", "--ready", "--ready.method", "npo",
                 "--ready.kind", "random", "--ready.lam", "0.05", "--ready.meta_every", "3",
                 "--ready.revocable", "random:0.1@7", "ready.cap=1.5", "--out", str(out), "-q"])  # fmt: skip
    assert code == 0
    card = json.loads((out / "card.json").read_text())
    ready = card["config"]["ready"]
    assert ready["method"]["name"] == "npo" and ready["kind"] == "random" and ready["lam"] == 0.05
    assert ready["meta_every"] == 3 and ready["cap"] == 1.5 and "alpha" in ready and "inner_steps" in ready
    assert card["readiness"]["revocable"]["size"] == round(0.1 * 1437)
    assert card["readiness"]["meta_steps"] > 0
    assert main(["train", "--dataset", "digits", "--epochs", "1", "--ready.method", "scrub",
                 "--out", str(tmp_path / "bad"), "-q"]) == 2  # fmt: skip
    assert "gradient-ascent-family" in capsys.readouterr().err
    assert not (tmp_path / "bad" / "card.json").exists()
    plain = main(["train", "--dataset", "digits", "--epochs", "1", "--out", str(tmp_path / "std"), "-q"])
    assert plain == 0 and json.loads((tmp_path / "std" / "card.json").read_text())["config"]["ready"] is None
