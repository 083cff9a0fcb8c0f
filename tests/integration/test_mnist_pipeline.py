"""The whole story on real data: train → retrain → unlearn → verify on MNIST from the data kit, tracked in MLflow.

About 1.5 minutes on 2 CPU cores, so it is off by default: ``pytest -m integration`` (or ``-m slow``).
"""

from __future__ import annotations

import json

import pytest

from ready2unlearn.cli.main import main

from ..conftest import requires_kit

pytestmark = [pytest.mark.integration, pytest.mark.slow, requires_kit]


def test_mnist_train_unlearn_verify_with_tracking(kit_dir, tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    runs, data = tmp_path / "runs", ["--data-dir", str(kit_dir), "-q"]
    assert main(["train", "--config", "mnist-mlp", "--out", str(runs / "mnist"), "epochs=1", "model.hidden=[128]",
                 "--track", "mlflow", *data]) == 0  # fmt: skip
    card = json.loads((runs / "mnist" / "card.json").read_text(encoding="utf-8"))
    assert card["metrics"]["test_accuracy"] > 0.9

    assert main(["unlearn", "--checkpoint", str(runs / "mnist"), "--request", "class:7", "--method", "retrain",
                 "--out", str(runs / "retrained"), *data]) == 0  # fmt: skip
    assert main(["unlearn", "--checkpoint", str(runs / "mnist"), "--request", "class:7", "--method", "ga",
                 "--stop", "forget_acc:reference", "stop.tolerance=0.01", "--reference", str(runs / "retrained"),
                 "--budget", "500", "--out", str(runs / "ga"), "--track", "mlflow", *data]) == 0  # fmt: skip
    result = json.loads((runs / "ga" / "card.json").read_text(encoding="utf-8"))["unlearn"]["result"]
    assert result["reached"] and result["steps"] < 500

    assert main(["eval", "--checkpoint", str(runs / "ga"), "--reference", str(runs / "retrained"),
                 "--data-dir", str(kit_dir)]) == 0  # fmt: skip
    ev = json.loads((runs / "ga" / "metrics.json").read_text(encoding="utf-8"))
    ref = ev["reference"]["metrics"]
    assert ref["forget_acc"] < 0.01 and ev["metrics"]["forget_acc"] <= ref["forget_acc"] + 0.01
    assert ev["metrics"]["test_retain_acc"] > 0.85 and ev["gaps"]["avg_gap"] < 0.05

    client = MlflowClient(f"file:{runs / 'tracking' / 'mlruns'}")
    tracked = client.search_runs([client.get_experiment_by_name("ready2unlearn").experiment_id])
    assert sorted(r.info.run_name.split("-")[0] for r in tracked) == ["train", "unlearn"]
    assert all(r.info.status == "FINISHED" for r in tracked)
    (unl,) = [r for r in tracked if r.info.run_name.startswith("unlearn")]
    curve = client.get_metric_history(unl.info.run_id, "forget_acc")
    assert curve[-1].value <= ref["forget_acc"] + 0.01 < curve[0].value
