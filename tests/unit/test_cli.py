import json

import pytest

from ready2unlearn.cli.main import build_parser, main


def test_help_on_every_verb(capsys):
    parser = build_parser()
    verbs = parser._subparsers._group_actions[0].choices
    assert {"train", "ls", "validate", "demo"} <= set(verbs)
    for verb in verbs:
        with pytest.raises(SystemExit) as e:
            main([verb, "--help"])
        assert e.value.code == 0
    assert "usage: r2u train" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("what", "expect"),
    [("datasets", "fashion_mnist"), ("models", "resnet18"), ("presets", "digits-quick"), ("methods", "simnpo"),
     ("metrics", "forget_kl_to_reference"), ("attacks", "mia_efficacy")],
)  # fmt: skip
def test_ls(capsys, what, expect):
    assert main(["ls", what]) == 0
    assert expect in capsys.readouterr().out


def test_validate_all_presets_and_a_bad_file(capsys, tmp_path):
    assert main(["validate"]) == 0
    assert "0 failed" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: -1\n")
    assert main(["validate", str(bad)]) == 1


def test_train_in_process_writes_checkpoint(capsys, tmp_path):
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--dataset",
            "digits",
            "--model",
            "mlp",
            "--epochs",
            "2",
            "--out",
            str(out),
            "-q",
            "model.hidden=[32]",
        ]
    )
    assert code == 0
    card = json.loads((out / "card.json").read_text())
    assert card["config"]["epochs"] == 2 and card["config"]["model"]["hidden"] == [32]
    assert card["preset"].endswith("digits-mlp.yaml")
    assert "test_accuracy" in capsys.readouterr().out
    # a second run into the same folder refuses instead of overwriting
    assert main(["train", "--dataset", "digits", "--out", str(out), "-q"]) == 2
    assert "already holds" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
        (["--config", "digits-mlp", "optim.lrr=1"], "did you mean 'optim.lr'"),
        (["--config", "digits-mlp", "epochs=abc"], "epochs must be an integer"),
        (["--dataset", "mnist", "--data-dir", "/nonexistent"], "does not exist"),
        (["--dataset", "tofu"], "language models"),
    ],
)
def test_train_bad_input_is_one_line_and_writes_nothing(capsys, tmp_path, argv, match):
    out = tmp_path / "x"
    assert main(["train", *argv, "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert match in err.replace("\n", " ") and "Traceback" not in err
    assert not (out / "card.json").exists()


def test_demo_tells_the_whole_story(capsys, tmp_path):
    assert main(["demo", "--out", str(tmp_path), "-q"]) == 0
    out = capsys.readouterr().out
    assert "Avg. Gap" in out and "UA after relearning" in out and "standard and a ready model" in out
    card = json.loads((tmp_path / "standard" / "card.json").read_text())
    assert card["metrics"]["test_accuracy"] > 0.9
    unlearned = json.loads((tmp_path / "unlearned" / "card.json").read_text())
    assert unlearned["unlearn"]["result"]["stop_reason"] == "target reached"
    assert unlearned["lineage"]["parent_sha256"] == card["weights_sha256"]
    metrics = json.loads((tmp_path / "unlearned" / "metrics.json").read_text())
    assert metrics["gaps"]["avg_gap"] < 0.05
    # The Ready2Unlearn story: the same request, served the same way, on a model trained to be ready.
    ready = json.loads((tmp_path / "ready" / "card.json").read_text())
    assert ready["readiness"]["calibration"]["alpha"] > 0 and ready["metrics"]["test_accuracy"] > 0.9
    ready_unlearned = json.loads((tmp_path / "ready-unlearned" / "card.json").read_text())
    assert ready_unlearned["unlearn"]["result"]["reached"]
    assert ready_unlearned["unlearn"]["result"]["steps"] < unlearned["unlearn"]["result"]["steps"]
    results = json.loads((tmp_path / "results.json").read_text())
    assert {c["variant"] for c in results["cells"]} == {"standard", "ready"}
    assert "(n = 1)" in (tmp_path / "report.md").read_text()
    for name in ("report.md", "report.html", "results.json", "plots/unlearning_curves.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert main(["demo", "--out", str(tmp_path), "-q"]) == 2  # refuses to overwrite
