"""`r2u eval`: metrics.json of an unlearned checkpoint against a retrained one, default requests, bad input."""

import json

import pytest

from ready2unlearn.cli.main import main
from ready2unlearn.recipes import train as train_recipe

RELEARN_SETS = {"forget-10", "forget-5%", "retain+forget-10", "retain-only"}


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """The original digits checkpoint, GA-unlearned and retrained ones for class 3."""
    root = tmp_path_factory.mktemp("eval")
    cfg, _ = train_recipe.load_config("digits-mlp", ["epochs=4", "model.hidden=[64]"])
    train_recipe.run(cfg, root / "original", show_progress=False)
    common = ["--checkpoint", str(root / "original"), "--request", "class:3", "-q"]
    assert main(["unlearn", *common, "--method", "ga", "--stop", "forget_acc:chance", "--budget", "300",
                 "--out", str(root / "ga")]) == 0  # fmt: skip
    assert main(["unlearn", *common, "--method", "retrain", "--out", str(root / "retrained")]) == 0
    return {"original": root / "original", "ga": root / "ga", "retrained": root / "retrained", "root": root}


def _card(path):
    return json.loads((path / "card.json").read_text(encoding="utf-8"))


def test_eval_against_reference_with_relearning(ckpts, capsys):
    ga, retrained = ckpts["ga"], ckpts["retrained"]
    assert main(["eval", "--checkpoint", str(ga), "--reference", str(retrained), "--relearn"]) == 0
    printed = capsys.readouterr().out
    assert "Avg. Gap" in printed and "relearn forget-10" in printed and "retrained floor" in printed

    result = json.loads((ga / "metrics.json").read_text(encoding="utf-8"))
    for key in ("metrics", "reference", "gaps", "relearn", "relearn_reference", "efficiency"):
        assert key in result, key
    # the request defaults to the last one the checkpoint served
    assert result["request"] == {"kind": "class", "classes": [3]}
    card = _card(ga)
    assert result["views"] == card["unlearn"]["views"]
    assert result["weights_sha256"] == card["weights_sha256"]
    assert result["efficiency"]["steps"] == card["unlearn"]["result"]["steps"]
    assert result["efficiency"]["stop_reason"] == "target reached"

    m, ref = result["metrics"], result["reference"]["metrics"]
    assert result["reference"]["checkpoint"] == str(retrained)
    assert m["forget_acc"] <= 0.1 and ref["forget_acc"] == 0.0
    assert m["forget_acc"] == pytest.approx(card["metrics"]["forget_accuracy"], abs=1e-6)
    for name in ("forget_kl_to_reference", "test_kl_to_reference", "forget_disagreement", "test_disagreement",
                 "mia_auc", "mia_efficacy", "test_retain_acc", "test_forget_acc"):  # fmt: skip
        assert name in m, name
    assert "forget_kl_to_reference" not in ref  # the reference is not compared with itself
    assert set(result["gaps"]) == {"gap_forget_acc", "gap_retain_acc", "gap_test_retain_acc", "gap_mia_efficacy",
                                   "avg_gap"}  # fmt: skip
    assert result["gaps"]["gap_test_retain_acc"] == pytest.approx(abs(m["test_retain_acc"] - ref["test_retain_acc"]))
    assert result["gaps"]["avg_gap"] == pytest.approx(sum(v for k, v in result["gaps"].items() if k != "avg_gap") / 4)
    assert set(result["relearn"]) == set(result["relearn_reference"]) == RELEARN_SETS
    for name, r in result["relearn"].items():
        assert r["curve"][0]["step"] == 0 and r["curve"][-1]["step"] == 50, name
        assert 0 <= r["final_forget_acc"] <= r["max_forget_acc"] <= 1
    # a model that never saw class 3 cannot relearn it from other classes
    assert result["relearn_reference"]["retain-only"]["final_forget_acc"] == 0.0


def test_eval_of_the_reference_against_itself_has_no_gap(ckpts, tmp_path):
    out = tmp_path / "self.json"
    retrained = str(ckpts["retrained"])
    assert main(["eval", "--checkpoint", retrained, "--reference", retrained, "--out", str(out)]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    assert set(result["gaps"].values()) == {0.0}
    assert result["metrics"]["forget_kl_to_reference"] == pytest.approx(0.0, abs=1e-6)
    assert result["metrics"]["test_disagreement"] == 0.0
    assert "relearn" not in result and result["efficiency"]["stop_reason"] == "applied"


def test_an_explicit_request_equal_to_the_served_one_gives_the_same_numbers(ckpts, tmp_path):
    a, b = tmp_path / "default.json", tmp_path / "explicit.json"
    ga = str(ckpts["ga"])
    assert main(["eval", "--checkpoint", ga, "--out", str(a)]) == 0
    assert main(["eval", "--checkpoint", ga, "--request", "class:3", "--out", str(b)]) == 0
    ra, rb = (json.loads(p.read_text(encoding="utf-8")) for p in (a, b))
    assert ra["request"] == rb["request"] and ra["views"] == rb["views"] and ra["metrics"] == rb["metrics"]
    assert "gaps" not in ra and "reference" not in ra


def test_eval_of_an_original_checkpoint_needs_a_request(ckpts, capsys):
    original = ckpts["original"]
    assert main(["eval", "--checkpoint", str(original)]) == 2
    err = capsys.readouterr().err
    assert "has served no deletion request" in err.replace("\n", " ") and "Traceback" not in err
    assert not (original / "metrics.json").exists()


def test_eval_of_an_original_checkpoint_with_a_request_and_out_file(ckpts, tmp_path):
    original = ckpts["original"]
    out = tmp_path / "nested" / "random.json"
    assert main(["eval", "--checkpoint", str(original), "--request", "random:0.1", "--out", str(out)]) == 0
    assert not (original / "metrics.json").exists()
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["request"]["kind"] == "random" and result["request"]["fraction"] == 0.1
    assert result["views"]["forget"] == round(0.1 * (result["views"]["forget"] + result["views"]["retain"]))
    assert "efficiency" not in result and "gaps" not in result and "relearn" not in result
    m = result["metrics"]
    assert "test_forget_acc" not in m and "forget_kl_to_reference" not in m  # no test-forget view, no reference
    assert m["forget_acc"] > 0.7 and 0 <= m["mia_auc"] <= 1


def test_eval_follows_the_lineage_of_sequential_requests(ckpts):
    seq = ckpts["root"] / "seq"
    assert main(["unlearn", "--checkpoint", str(ckpts["original"]), "--request", "class:3", "--request",
                 "random:0.05", "--method", "ga", "--stop", "steps:3", "--out", str(seq), "-q"]) == 0  # fmt: skip
    last = seq / "req-02"
    assert main(["eval", "--checkpoint", str(last)]) == 0
    result = json.loads((last / "metrics.json").read_text(encoding="utf-8"))
    card = _card(last)
    assert result["request"] == card["unlearn"]["request"] and result["request"]["kind"] == "random"
    # resolved against the data left after class 3 was forgotten, exactly as it was served
    assert result["views"] == card["unlearn"]["views"]
    assert result["metrics"]["forget_acc"] == pytest.approx(card["metrics"]["forget_accuracy"], abs=1e-6)


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--request", "class:12"], "unknown class 12"),
        (["--request", "random:2"], "strictly between 0 and 1"),
        (["--request", "class:"], "KIND:SPEC"),
    ],
)
def test_eval_bad_requests(ckpts, capsys, argv, match):
    assert main(["eval", "--checkpoint", str(ckpts["original"]), *argv]) == 2
    err = capsys.readouterr().err
    assert match in err.replace("\n", " ") and "Traceback" not in err


def test_eval_missing_checkpoint(tmp_path, capsys):
    assert main(["eval", "--checkpoint", str(tmp_path / "none"), "--request", "class:1"]) == 2
    assert "not a checkpoint" in capsys.readouterr().err


def test_eval_refuses_a_reference_made_for_another_request(ckpts, tmp_path, capsys):
    import shutil

    ref = tmp_path / "ref"
    shutil.copytree(ckpts["retrained"], ref)
    card = _card(ref)
    card["unlearn"]["request"] = {"kind": "class", "classes": [2]}
    (ref / "card.json").write_text(json.dumps(card))
    assert main(["eval", "--checkpoint", str(ckpts["ga"]), "--reference", str(ref)]) == 2
    assert "made for request class:2" in capsys.readouterr().err


def test_eval_of_another_request_resolves_against_what_the_model_still_holds(ckpts, tmp_path):
    out = tmp_path / "m.json"
    assert main(["eval", "--checkpoint", str(ckpts["ga"]), "--request", "random:0.1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    forgotten = _card(ckpts["ga"])["unlearn"]["views"]["forget"]
    assert result["views"]["forget"] + result["views"]["retain"] == 1437 - forgotten
