"""The unlearning recipe and `r2u unlearn`: cards, lineage, sequential requests, bad input."""

import json
import shutil

import pytest

from ready2unlearn.artifacts import sha256_file
from ready2unlearn.cli.main import main
from ready2unlearn.config import from_dict
from ready2unlearn.data import DeletionRequest
from ready2unlearn.engine.unlearn_config import UnlearnConfig, load_unlearn_config
from ready2unlearn.errors import ConfigError, R2UError, RequestError
from ready2unlearn.recipes.unlearn import run
from ready2unlearn.unlearn import StopConfig

from ..conftest import train_digits


@pytest.fixture(scope="module")
def digits_ckpt(tmp_path_factory):
    return train_digits(tmp_path_factory.mktemp("ckpt") / "digits", epochs=6, hidden=64)


def _cfg(method="ga", stop="forget_acc:chance", budget=300):
    cfg, _ = load_unlearn_config(None, [], method=method)
    cfg.stop = StopConfig.parse(stop, max_steps=budget)
    return cfg


def test_single_request_card_and_lineage(digits_ckpt, tmp_path):
    (card,) = run(digits_ckpt, [DeletionRequest.parse("class:3")], _cfg(), tmp_path / "u", show_progress=False)
    on_disk = json.loads((tmp_path / "u" / "card.json").read_text())
    assert on_disk == json.loads(json.dumps(card))
    parent_sha = sha256_file(digits_ckpt / "model.safetensors")
    assert on_disk["lineage"]["parent_sha256"] == parent_sha
    assert on_disk["lineage"]["requests"][0]["parent_sha256"] == parent_sha
    assert on_disk["unlearn"]["request"] == {"kind": "class", "classes": [3]}
    assert on_disk["unlearn"]["config"]["method"]["name"] == "ga"
    result = on_disk["unlearn"]["result"]
    assert result["stop_reason"] == "target reached" and result["steps"] > 0 and result["grad_evals"] > 0
    assert on_disk["metrics"]["forget_accuracy"] <= 0.1 < on_disk["metrics_before"]["forget_accuracy"]
    assert len(on_disk["lineage"]["forgotten_ids"]) == on_disk["unlearn"]["views"]["forget"]
    assert on_disk["weights_sha256"] == sha256_file(tmp_path / "u" / "model.safetensors")


def test_sequential_requests_chain_and_accumulate(digits_ckpt, tmp_path):
    reqs = [DeletionRequest.parse(t) for t in ("class:3", "random:0.02", "class:5")]
    cards = run(digits_ckpt, reqs, _cfg(stop="steps", budget=20), tmp_path / "seq", show_progress=False)
    assert [p.name for p in sorted((tmp_path / "seq").iterdir())] == ["req-01", "req-02", "req-03"]
    for i, card in enumerate(cards):
        assert len(card["lineage"]["requests"]) == i + 1
        if i:
            assert card["lineage"]["parent_sha256"] == cards[i - 1]["weights_sha256"]
    ids = cards[-1]["lineage"]["forgotten_ids"]
    assert len(ids) == len(set(ids)) == sum(c["unlearn"]["views"]["forget"] for c in cards)
    # a later run continues the lineage from the last checkpoint and never re-forgets the same samples
    (more,) = run(tmp_path / "seq" / "req-03", [DeletionRequest.parse("class:7")], _cfg(stop="steps", budget=5),
                  tmp_path / "more", show_progress=False)  # fmt: skip
    assert len(more["lineage"]["requests"]) == 4 and set(ids) < set(more["lineage"]["forgotten_ids"])
    with pytest.raises(RequestError, match=r"forget set is empty.*earlier request"):
        run(tmp_path / "seq" / "req-03", [DeletionRequest.parse("class:3")], _cfg(), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_bad_requests_fail_before_anything_is_written(digits_ckpt, tmp_path):
    cases = [
        ([DeletionRequest.parse("class:3"), DeletionRequest.parse("class:3")], RequestError, "request 2"),
        ([DeletionRequest.parse("samples:5000")], RequestError, "not in the training split"),
        ([DeletionRequest.parse("group:user=1")], RequestError, "no group column"),
        ([DeletionRequest.parse("class:12")], RequestError, "unknown class 12"),
    ]
    for reqs, err, match in cases:
        with pytest.raises(err, match=match):
            run(digits_ckpt, reqs, _cfg(), tmp_path / "bad", show_progress=False)
        assert not (tmp_path / "bad").exists()
    with pytest.raises(ConfigError, match="unknown unlearning method"):
        from_dict(UnlearnConfig, {"method": {"name": "gradient_ascent"}})


def test_mismatched_checkpoint_and_data(digits_ckpt, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(digits_ckpt, other)
    card = json.loads((other / "card.json").read_text())
    card["data"]["fingerprints"]["train"] = "0" * 16
    (other / "card.json").write_text(json.dumps(card))
    with pytest.raises(R2UError, match="trained on different data"):
        run(other, [DeletionRequest.parse("class:1")], _cfg(), tmp_path / "out", show_progress=False)
    assert not (tmp_path / "out").exists()


def test_reference_target_uses_the_retrained_model(digits_ckpt, tmp_path):
    (ret,) = run(digits_ckpt, [DeletionRequest.parse("class:2")], _cfg("retrain", "steps"), tmp_path / "ret",
                 show_progress=False)  # fmt: skip
    assert ret["metrics"]["forget_accuracy"] == 0.0 and ret["unlearn"]["result"]["stop_reason"] == "applied"
    (ga,) = run(digits_ckpt, [DeletionRequest.parse("class:2")], _cfg("ga", "forget_acc:reference"), tmp_path / "ga",
                reference=tmp_path / "ret", show_progress=False)  # fmt: skip
    assert ga["unlearn"]["reference_value"] == 0.0 and ga["unlearn"]["result"]["target"] == 0.0
    assert ga["metrics"]["forget_accuracy"] == 0.0


def test_cli_unlearn(digits_ckpt, tmp_path, capsys):
    code = main(["unlearn", "--checkpoint", str(digits_ckpt), "--request", "class:4", "--method", "npo",
                 "--stop", "forget_acc:0.2", "--budget", "300", "--out", str(tmp_path / "npo"), "-q",
                 "method.beta=0.2"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "target reached" in out and "forget_accuracy" in out
    card = json.loads((tmp_path / "npo" / "card.json").read_text())
    assert card["unlearn"]["config"]["method"]["beta"] == 0.2
    assert main(["ls", "methods"]) == 0 and "bad_teacher" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--method", "gradient_ascent", "--request", "class:1"], "unknown unlearning method"),
        (["--request", "class:1", "--stop", "until:3"], "stop.rule must be one of"),
        (["--request", "random:2"], "strictly between 0 and 1"),
        (["--request", "class:1", "--stop", "forget_acc:reference"], "--reference"),
    ],
)
def test_cli_unlearn_bad_input(digits_ckpt, tmp_path, capsys, argv, match):
    assert main(["unlearn", "--checkpoint", str(digits_ckpt), *argv, "--out", str(tmp_path / "x"), "-q"]) == 2
    err = capsys.readouterr().err
    assert match in err.replace("\n", " ") and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_cli_unlearn_missing_checkpoint(tmp_path, capsys):
    code = main(
        ["unlearn", "--checkpoint", str(tmp_path / "none"), "--request", "class:1", "--out", str(tmp_path / "o")]
    )
    assert code == 2 and "not a checkpoint" in capsys.readouterr().err
