"""`--track mlflow|wandb|tensorboard`: each local store is read back with its own library's reader."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ready2unlearn.cli.main import main
from ready2unlearn.errors import ConfigError
from ready2unlearn.tracking import TRACKERS, NullTracker, flatten, numeric, open_tracker, tracking

TRAIN = ["train", "--dataset", "digits", "--model", "mlp", "--epochs", "2", "-q", "model.hidden=[64]", "optim.lr=0.01"]


@pytest.fixture(autouse=True)
def _restore_tracking_env(monkeypatch):
    """The backends set process-wide switches (offline mode, file store); give them back after each test."""
    for var in ("WANDB_MODE", "WANDB_ERROR_REPORTING", "MLFLOW_ALLOW_FILE_STORE", "MLFLOW_DISABLE_TELEMETRY"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv(var, "")  # registers the variable with monkeypatch, which restores it afterwards
        monkeypatch.delenv(var)


def train_tracked(tmp_path: Path, backend: str) -> dict:
    out = tmp_path / "runs" / "digits"
    assert main([*TRAIN, "--out", str(out), "--track", backend]) == 0
    return json.loads((out / "card.json").read_text(encoding="utf-8"))


# -- the contract ---------------------------------------------------------------------------------------------
def test_registry_and_helpers():
    assert TRACKERS.names() == ["mlflow", "tensorboard", "wandb"]
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": None, "e": "x"}) == {"a.b": 1, "a.c": "[1, 2]", "d": "null",
                                                                          "e": "x"}  # fmt: skip
    assert numeric({"a": 1, "b": True, "c": None, "d": "x", "e": float("inf"), "f": 0.5}) == {"a": 1.0, "b": 1.0,
                                                                                              "f": 0.5}  # fmt: skip
    assert isinstance(open_tracker(None, "unused", "run"), NullTracker)


def test_unknown_backend_and_missing_library_are_one_line_errors(tmp_path, monkeypatch, capsys):
    with pytest.raises(ConfigError, match=r"unknown tracker 'mlfow'\. Did you mean 'mlflow'"):
        open_tracker("mlfow", tmp_path, "run")
    for backend, module, package in (("mlflow", "mlflow", "mlflow-skinny"), ("wandb", "wandb", "wandb"),
                                     ("tensorboard", "tensorboard", "tensorboard")):  # fmt: skip
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed
        with pytest.raises(ConfigError, match=rf'--track {backend} needs the {package} package: pip install '
                                              r'"ready2unlearn\[track\]"'):  # fmt: skip
            open_tracker(backend, tmp_path, "run")
    # On the command line: exit 2 before any training, and nothing written.
    out = tmp_path / "runs" / "x"
    assert main([*TRAIN, "--out", str(out), "--track", "wandb"]) == 2
    err = capsys.readouterr().err
    assert "needs the wandb package" in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not (tmp_path / "runs" / "tracking").exists()
    assert main([*TRAIN, "--out", str(out), "--track-dir", str(tmp_path / "t")]) == 2
    assert "--track-dir needs --track" in capsys.readouterr().err


def test_a_refused_run_leaves_no_tracking_run(tmp_path):
    pytest.importorskip("tensorboard")
    out = tmp_path / "runs" / "digits"
    out.mkdir(parents=True)
    (out / "other.txt").write_text("not empty")
    assert main([*TRAIN, "--out", str(out), "--track", "tensorboard"]) == 2  # --out is not empty
    assert not (tmp_path / "runs" / "tracking").exists()


def test_a_failing_block_marks_the_run_failed(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    with pytest.raises(RuntimeError), tracking("mlflow", tmp_path, "boom") as tracker:
        tracker.log_metrics({"loss": 1.0}, step=1)
        raise RuntimeError("crash")
    client = MlflowClient(tracker.location.as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("ready2unlearn").experiment_id])
    assert run.info.status == "FAILED"


# -- MLflow ---------------------------------------------------------------------------------------------------
def mlflow_runs(track_dir: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"file:{track_dir / 'mlruns'}")  # what a user points MLflow at: a file store
    exp = client.get_experiment_by_name("ready2unlearn")
    return client, client.search_runs([exp.experiment_id])


def test_mlflow_file_store_after_train_and_unlearn(tmp_path):
    pytest.importorskip("mlflow")
    card = train_tracked(tmp_path, "mlflow")
    client, (run,) = mlflow_runs(tmp_path / "runs" / "tracking")
    assert run.info.status == "FINISHED" and run.info.run_name.startswith("train-digits-")
    params = run.data.params
    assert params["data.name"] == "digits" and params["epochs"] == "2" and params["model.hidden"] == "[64]"
    history = client.get_metric_history(run.info.run_id, "test_accuracy")
    assert [m.step for m in history] == [1, 2, 2]  # per epoch, then the final value
    assert [m.value for m in history][:2] == pytest.approx([h["test_accuracy"] for h in card["history"]])
    assert run.data.metrics["train_accuracy"] == pytest.approx(card["metrics"]["train_accuracy"])
    assert "card.json" in [a.path for a in client.list_artifacts(run.info.run_id)]

    # Two requests: each curve under its own prefix, each card in its own folder.
    assert main(["unlearn", "--checkpoint", str(tmp_path / "runs" / "digits"), "--request", "class:3", "--request",
                 "class:5", "--stop", "forget_acc:0.2", "--budget", "30", "--lr", "0.01", "--out",
                 str(tmp_path / "runs" / "ga"), "--track", "mlflow", "-q"]) == 0  # fmt: skip
    client, runs = mlflow_runs(tmp_path / "runs" / "tracking")
    (unl,) = [r for r in runs if r.info.run_name.startswith("unlearn-")]
    assert unl.data.params["method.name"] == "ga" and unl.data.params["requests"] == '["class:3", "class:5"]'
    curve = client.get_metric_history(unl.info.run_id, "req-02/forget_acc")
    assert curve[0].step == 0 and len(curve) >= 2
    assert curve[-1].value <= 0.2 and unl.data.metrics["req-02/reached"] == 1.0
    assert {a.path for a in client.list_artifacts(unl.info.run_id)} == {"req-01", "req-02"}
    assert [a.path for a in client.list_artifacts(unl.info.run_id, "req-02")] == ["req-02/card.json"]


BENCH_YAML = """\
train: digits-mlp
train_overrides: ["epochs=2", "model.hidden=[64]", "optim.lr=0.01"]
settings: ["class:3,5"]
methods: [{name: ga}]
seeds: [0]
stop: {rule: forget_acc, target: reference, tolerance: 0.05, max_steps: 20, eval_every: 5}
relearn: null
"""


def test_bench_results_in_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    preset = tmp_path / "presets" / "bench" / "tiny.yaml"  # a bench preset: its folder names its runner
    preset.parent.mkdir(parents=True)
    preset.write_text(BENCH_YAML, encoding="utf-8")
    out = tmp_path / "bench"
    assert main(["bench", str(preset), "--out", str(out), "-q", "--track", "tensorboard", "--track-dir",
                 str(tmp_path / "tb")]) == 0  # fmt: skip
    (run_dir,) = (tmp_path / "tb" / "tensorboard").iterdir()
    events = EventAccumulator(str(run_dir))
    events.Reload()
    tags = events.Tags()["scalars"]
    cell = "class:3,5/seed0/standard/ga"
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    (ga,) = [c for c in results["cells"] if c["key"] == cell]
    assert [e.step for e in events.Scalars(f"{cell}/forget_acc")] == [r["step"] for r in ga["curve"]]
    final = events.Scalars(f"final/{cell}/metrics.forget_acc")[0].value
    assert final == pytest.approx(ga["metrics"]["forget_acc"], abs=1e-6)
    assert f"final/{cell}/gaps.avg_gap" in tags
    assert {p.name for p in (run_dir / "artifacts").iterdir()} == {"results.json", "report.md", "report.html"}
    assert json.loads((run_dir / "params.json").read_text())["preset"] == str(preset)


# -- TensorBoard ----------------------------------------------------------------------------------------------
def test_tensorboard_event_files_after_train(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    card = train_tracked(tmp_path, "tensorboard")
    (run_dir,) = (tmp_path / "runs" / "tracking" / "tensorboard").iterdir()
    events = EventAccumulator(str(run_dir))
    events.Reload()
    acc = events.Scalars("test_accuracy")
    assert [e.step for e in acc] == [1, 2]
    assert [e.value for e in acc] == pytest.approx([h["test_accuracy"] for h in card["history"]])
    assert events.Scalars("final/train_accuracy")[0].value == pytest.approx(card["metrics"]["train_accuracy"])
    assert "config/text_summary" in events.Tags()["tensors"]  # the config as a text summary
    assert json.loads((run_dir / "params.json").read_text())["optim.lr"] == card["config"]["optim"]["lr"]
    assert (run_dir / "artifacts" / "card.json").read_text() == (tmp_path / "runs" / "digits" / "card.json").read_text()


# -- Weights & Biases -----------------------------------------------------------------------------------------
def read_wandb_run(path: Path) -> dict:
    """Config, history rows, summary and exit code of an offline run, from its ``.wandb`` file.

    wandb ships the record format (``wandb.proto.wandb_internal_pb2.Record``) but, since its Go core, no Python
    reader of the file: the file is a 7-byte W&B header followed by LevelDB-log records in 32 KiB blocks
    (a 7-byte header per chunk: CRC32, length, type FULL=1 / FIRST=2 / MIDDLE=3 / LAST=4).
    """
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, chunks, pos, pending = 32768, [], 7, b""
    while pos + 7 <= len(data):
        room = block - pos % block
        if room < 7:  # a block's tail too short for a chunk header is padding
            pos += room
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:  # zero padding up to the end of the block
            pos += room
            continue
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            chunks.append(pending)
    run: dict = {"config": {}, "history": [], "summary": {}, "exit_code": None}

    def items(entries):
        return {e.key or "/".join(e.nested_key): json.loads(e.value_json) for e in entries}

    for raw in chunks:
        rec = pb.Record()
        rec.ParseFromString(raw)
        kind = rec.WhichOneof("record_type")
        if kind == "config":
            run["config"].update(items(rec.config.update))
        elif kind == "history":
            run["history"].append(items(rec.history.item))
        elif kind == "summary":
            run["summary"].update(items(rec.summary.update))
        elif kind == "exit":
            run["exit_code"] = rec.exit.exit_code
    return run


#: Runs `r2u` with an audit hook that reports every attempt to resolve or reach a host that is not this machine,
#: until the interpreter has exited; then says whether wandb's usage telemetry is live. That telemetry is the
#: part of wandb that probes the W&B server, and when it flushes depends on timing, so the hook alone could miss
#: it: wandb builds it only for a process whose settings are online.
NO_NETWORK = """
import sys
def hook(event, args):
    if event in ("socket.getaddrinfo", "socket.connect"):
        address = args[1] if event == "socket.connect" else args[:2]
        if not (isinstance(address, str) or address[0] in ("localhost", "127.0.0.1", "::1")):
            sys.stderr.write(f"NETWORK {event} {address!r}\\n")
sys.addaudithook(hook)
from ready2unlearn.cli.main import main
status = main(sys.argv[1:])
try:
    from wandb.analytics.opentelemetry.opentelemetry_proxy import get_open_telemetry_proxy
except ImportError:  # a wandb without usage telemetry
    get_open_telemetry_proxy = lambda: None
if get_open_telemetry_proxy() is not None:
    sys.stderr.write("NETWORK wandb telemetry is on\\n")
sys.exit(status)
"""


def test_wandb_offline_run_after_train_without_network(tmp_path):
    pytest.importorskip("wandb")
    out = tmp_path / "runs" / "digits"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}  # offline must come from the kit
    proc = subprocess.run([sys.executable, "-c", NO_NETWORK, *TRAIN, "--out", str(out), "--track", "wandb"],
                          capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "NETWORK" not in proc.stderr
    card = json.loads((out / "card.json").read_text(encoding="utf-8"))

    (run_dir,) = (tmp_path / "runs" / "tracking" / "wandb").glob("offline-run-*")
    (log,) = run_dir.glob("run-*.wandb")
    run = _read_when_written(log, ("test_accuracy",))
    assert run["exit_code"] == 0
    assert run["config"]["data.name"] == "digits" and run["config"]["epochs"] == 2
    rows = [r for r in run["history"] if "test_accuracy" in r]
    assert [r["step"] for r in rows] == [1, 2]
    assert [r["test_accuracy"] for r in rows] == pytest.approx([h["test_accuracy"] for h in card["history"]])
    assert run["summary"]["train_accuracy"] == pytest.approx(card["metrics"]["train_accuracy"])
    assert (run_dir / "files" / "card.json").is_file()


def _read_when_written(log: Path, keys: tuple[str, ...], timeout: float = 30.0) -> dict:
    """``read_wandb_run(log)`` once the history holds ``keys``.

    W&B's service process writes the run log; on a loaded machine the last records can land a moment after
    ``finish()`` returned (one CI run read an empty history), so the read is repeated for a while.
    """
    deadline = time.monotonic() + timeout
    while True:
        run = read_wandb_run(log)
        if all(any(k in r for r in run["history"]) for k in keys) or time.monotonic() > deadline:
            return run
        time.sleep(0.5)


def test_wandb_keeps_every_point_of_curves_whose_steps_restart(tmp_path):
    """Two requests' curves both start at step 0; W&B's one global step would drop the second's points."""
    pytest.importorskip("wandb")
    with tracking("wandb", tmp_path, "unlearn-seq") as tracker:
        for req in ("req-01", "req-02"):
            for step in (0, 5, 10):
                tracker.log_metrics({f"{req}/forget_acc": 1 - step / 10}, step=step)
        tracker.log_summary({"req-02/reached": True})
    (log,) = tracker.location.glob("run-*.wandb")
    run = _read_when_written(log, ("req-01/step", "req-02/step"))
    for req in ("req-01", "req-02"):
        points = [(r[f"{req}/step"], r[f"{req}/forget_acc"]) for r in run["history"] if f"{req}/step" in r]
        assert points == [(0, 1.0), (5, 0.5), (10, 0.0)]
    assert run["summary"]["req-02/reached"] == 1.0
