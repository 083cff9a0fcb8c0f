"""The ledger serves a request in memory: one load of the model and the split, the same child as `r2u unlearn`."""

import importlib
import json
from collections import Counter
from pathlib import Path

from ready2unlearn import checkpoint as checkpoint_mod
from ready2unlearn.artifacts import sha256_file
from ready2unlearn.data import DeletionRequest
from ready2unlearn.data import registry as data_registry
from ready2unlearn.engine.unlearn_config import load_unlearn_config
from ready2unlearn.ledger import Ledger, ProcessConfig, process
from ready2unlearn.recipes import evaluate as evaluate_recipe
from ready2unlearn.recipes import sisa as sisa_recipe
from ready2unlearn.recipes import unlearn as unlearn_recipe
from ready2unlearn.unlearn import StopConfig

process_mod = importlib.import_module("ready2unlearn.ledger.process")  # the package exports a function of that name
FAST = ProcessConfig(relearn_steps=5, poll_seconds=0.05)
# What may differ between two runs of the same request: when and where, and wall-clock.
VOLATILE = {"created", "versions", "ledger"}


def _cfg(stop="steps", steps=5, method="ga", seed=0):
    cfg, _ = load_unlearn_config(None, [f"seed={seed}"], method=method)
    cfg.stop = StopConfig.parse(stop, max_steps=steps)
    return cfg


def _add(led, kind, target):
    split, forgotten = led.load_split()
    return led.add_request(kind, target, "test", "alice", split, forgotten)


def _count_loads(monkeypatch):
    """Counts every split and model load, wherever the ledger and the recipes look them up."""
    calls = Counter()

    def counting(name, fn):
        def wrapped(*a, **k):
            calls[name] += 1
            return fn(*a, **k)

        return wrapped

    split_fn = counting("split", data_registry.load_split)
    model_fn = counting("model", checkpoint_mod.load_checkpoint)
    for mod in (unlearn_recipe, sisa_recipe):  # unlearn_recipe's serves load_matching_split, for every caller
        monkeypatch.setattr(mod, "load_split", split_fn)
    for mod in (process_mod, unlearn_recipe, evaluate_recipe):
        monkeypatch.setattr(mod, "load_checkpoint", model_fn)
    assert unlearn_recipe.load_split is split_fn and process_mod.load_checkpoint is model_fn
    return calls


def _comparable(card):
    out = {k: v for k, v in card.items() if k not in VOLATILE}
    out["unlearn"] = {k: v for k, v in card["unlearn"].items() if k != "reference"}
    out["unlearn"]["result"] = {k: v for k, v in card["unlearn"]["result"].items()
                                if k not in ("seconds", "eval_seconds")}  # fmt: skip
    out["lineage"] = {k: v for k, v in card["lineage"].items() if k != "parent"}
    return json.loads(json.dumps(out))


def test_one_split_and_one_model_load_per_served_request(digits_ckpt, tmp_path, monkeypatch):
    led = Ledger(tmp_path / "ledger.db")
    led.bind(digits_ckpt)
    for target in ("1", "2", "3"):
        _add(led, "class", target)
    calls = _count_loads(monkeypatch)
    summary = process(led.path, _cfg(), FAST)
    assert len(summary.done) == 3 and not summary.failed
    assert calls == {"split": 3, "model": 3}  # three requests served one by one

    # a batch is one served claim; a retrained reference is made in memory from the same load
    for target in ("4", "5"):
        _add(led, "class", target)
    calls.clear()
    summary = process(led.path, _cfg(), ProcessConfig(batch=2, relearn_steps=5, retrain_reference=True))
    assert len(summary.done) == 2 and not summary.failed
    assert calls == {"split": 1, "model": 1}
    (cert,) = {json.loads(Path(c).read_text())["verification"]["reference_note"] for c in summary.certificates}
    assert cert.startswith("retrained from scratch")


def test_ledger_child_equals_r2u_unlearn_and_verification_equals_r2u_eval(digits_ckpt, tmp_path):
    """Same request, method, stop rule and seed: the ledger's child and verification are those of the recipes."""
    cfg = _cfg(stop="forget_acc:reference", steps=400, seed=3)
    led = Ledger(tmp_path / "ledger.db")
    led.bind(digits_ckpt)
    row = _add(led, "class", "6")
    summary = process(led.path, cfg, ProcessConfig(relearn_steps=5, retrain_reference=True))
    assert summary.done == [row.id], summary.failed
    child_dir = led.model_dir(led.model(led.served_hash()))
    ledger_card = json.loads((child_dir / "card.json").read_text())
    cert = json.loads(Path(summary.certificates[0]).read_text())

    # the same request through the recipes, on disk: retrained reference, unlearned child, evaluation
    req = DeletionRequest.parse("class:6")
    rcfg, _ = load_unlearn_config(None, ["seed=3"], method="retrain")
    unlearn_recipe.run(digits_ckpt, [req], rcfg, tmp_path / "ref", show_progress=False)
    (card,) = unlearn_recipe.run(digits_ckpt, [req], cfg, tmp_path / "child", reference=tmp_path / "ref",
                                 show_progress=False)  # fmt: skip
    assert ledger_card["weights_sha256"] == card["weights_sha256"] == sha256_file(child_dir / "model.safetensors")
    assert _comparable(ledger_card) == _comparable(card)
    assert ledger_card["ledger"] == {
        "requests": [row.id],
        "batch": False,
        "parent_sha256": sha256_file(digits_ckpt / "model.safetensors"),
    }

    relearn = process_mod._relearn_config(ProcessConfig(relearn_steps=5), card["unlearn"]["views"]["forget"])
    expected = evaluate_recipe.evaluate_checkpoint(tmp_path / "child", None, tmp_path / "ref", relearn, None, 0)
    got = cert["verification"]
    for key in ("weights_sha256", "request", "views", "metrics", "gaps", "relearn", "relearn_reference"):
        assert got[key] == json.loads(json.dumps(expected[key])), key
    assert got["reference"]["metrics"] == json.loads(json.dumps(expected["reference"]["metrics"]))
