"""The ledger across processes: two workers racing for one request, and a worker killed with SIGKILL."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ready2unlearn
from ready2unlearn.engine.unlearn_config import load_unlearn_config
from ready2unlearn.ledger import Ledger, ProcessConfig, process, verify_certificate
from ready2unlearn.ledger.store import LedgerError
from ready2unlearn.unlearn import StopConfig

SRC = Path(ready2unlearn.__file__).resolve().parents[1]


def _worker(db, *args):
    """``r2u request process`` in its own process (one torch thread: the test machine has two cores)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # fmt: skip
    cmd = [sys.executable, "-m", "ready2unlearn.cli.main", "request", "process", "--ledger", str(db), "-q", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _bound(tmp_path, ckpt, *targets):
    led = Ledger(tmp_path / "ledger.db")
    led.bind(ckpt)
    split, forgotten = led.load_split()
    ids = [led.add_request("class", t, "test", "alice", split, forgotten).id for t in targets]
    return led, ids


def test_two_workers_one_request_is_served_exactly_once(digits_ckpt, tmp_path):
    led, (rid,) = _bound(tmp_path, digits_ckpt, "3")
    procs = [_worker(led.path, "--stop", "steps:20", "--no-relearn") for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    row = led.request(rid)
    assert row.status == "done" and row.attempts == 1
    events = [e["event"] for e in led.events(rid)]
    assert events.count("claimed") == 1 and events.count("done") == 1
    assert len(led.models()) == 2 and led.served_hash() == row.child_hash
    served = sorted(o.split("served ")[1].split(" request")[0] for o, _ in outs)
    assert served == ["0", "1"]


def test_kill_9_during_unlearning_then_resume(digits_ckpt, tmp_path):
    led, (rid,) = _bound(tmp_path, digits_ckpt, "4")
    base = led.served_hash()
    # a run long enough to be killed in the middle of its unlearning loop
    proc = _worker(led.path, "--method", "finetune", "--stop", "steps:1000000", "--eval-every", "100000")
    deadline = time.monotonic() + 90
    while led.request(rid).phase != "unlearning":
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the worker never started unlearning"
        time.sleep(0.05)
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    row = led.request(rid)
    assert row.status == "running" and row.phase == "unlearning" and row.worker.pid == proc.pid
    assert [m.hash for m in led.models()] == [base] and led.served_hash() == base  # nothing half-registered
    assert any((led.store / "tmp").iterdir())  # its unfinished work folder

    cfg, _ = load_unlearn_config(None, [], method="ga")
    cfg.stop = StopConfig.parse("steps", max_steps=5)
    with pytest.raises(LedgerError, match="no longer alive"):
        process(led.path, cfg, ProcessConfig(relearn=False))
    summary = process(led.path, cfg, ProcessConfig(resume=True, relearn_steps=5))
    assert summary.resumed == [rid] and summary.done == [rid] and summary.orphans_removed >= 1
    row = led.request(rid)
    assert row.status == "done" and row.attempts == 2 and row.parent_hash == base
    assert [v.hash for v in led.lineage()] == [base, row.child_hash]
    assert not any((led.store / "tmp").iterdir())
    assert verify_certificate(led.store / row.certificate).ok
    assert [e["event"] for e in led.events(rid)] == ["submitted", "claimed", "resumed", "model_registered",
                                                     "served_moved", "done"]  # fmt: skip
