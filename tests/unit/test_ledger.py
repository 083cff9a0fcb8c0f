"""The deletion-request ledger in one process: state machine, validation, lineage, certificates, migrations."""

import json
import os
import socket
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from ready2unlearn.artifacts import sha256_file
from ready2unlearn.cli.main import main
from ready2unlearn.data import DeletionRequest
from ready2unlearn.engine.unlearn_config import load_unlearn_config
from ready2unlearn.errors import R2UError
from ready2unlearn.ledger import Ledger, ProcessConfig, Worker, process, schema, verify_certificate
from ready2unlearn.ledger.certificate import HASH_FIELD
from ready2unlearn.ledger.store import CorruptModel, LedgerError
from ready2unlearn.recipes.unlearn import run as unlearn_run
from ready2unlearn.unlearn import StopConfig

FAST = ProcessConfig(relearn_steps=5, poll_seconds=0.05)


def _cfg(steps=5, method="ga"):
    cfg, _ = load_unlearn_config(None, [], method=method)
    cfg.stop = StopConfig.parse("steps", max_steps=steps)
    return cfg


def _ledger(tmp_path, ckpt):
    led = Ledger(tmp_path / "ledger.db")
    led.bind(ckpt)
    return led


def _add(led, kind, target, reason="test"):
    split, forgotten = led.load_split()
    return led.add_request(kind, target, reason, "alice", split, forgotten)


def test_state_machine_lineage_and_event_log(digits_ckpt, tmp_path):
    led = _ledger(tmp_path, digits_ckpt)
    base = led.served_hash()
    assert base == sha256_file(digits_ckpt / "model.safetensors")
    with closing(sqlite3.connect(led.path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    a, b = _add(led, "class", "3"), _add(led, "samples", "0,1,2")
    assert (a.status, b.status) == ("pending", "pending") and b.target == "0,1,2"
    # a live worker (our parent process) holds a claim: everyone else waits, nobody takes a second one
    other = Worker(socket.gethostname(), os.getppid(), "")
    claim = led.claim(other)
    assert claim.state == "claimed" and [r.id for r in claim.rows] == [a.id]
    assert led.request(a.id).status == "running" and led.request(a.id).parent_hash == base
    assert led.claim(Worker.current()).state == "wait"
    led.release([a.id], other, "test")
    assert led.request(a.id).status == "pending"

    summary = process(led.path, _cfg(), FAST)
    assert summary.done == [a.id, b.id] and not summary.failed
    rows = led.requests()
    assert [r.status for r in rows] == ["done", "done"]
    chain = led.lineage()
    assert [v.hash for v in chain] == [base, rows[0].child_hash, rows[1].child_hash]
    assert chain[1].created_by == a.id and chain[2].parent_hash == chain[1].hash
    assert led.served_hash() == rows[1].child_hash == sha256_file(led.model_dir(chain[2]) / "model.safetensors")
    assert [e["event"] for e in led.events(a.id)] == ["submitted", "claimed", "released", "claimed",
                                                      "model_registered", "served_moved", "done"]  # fmt: skip
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        led.conn.execute("UPDATE events SET event = 'x'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        led.conn.execute("DELETE FROM events")
    # nothing left: a second run is idle, and no orphan folder was left behind
    assert process(led.path, _cfg(), FAST).done == []
    assert sorted(p.name for p in (led.store / "models").iterdir()) == sorted(v.hash for v in chain)
    assert not any((led.store / "tmp").iterdir())


def test_bad_requests_are_recorded_rejected(digits_ckpt, tmp_path):
    led = _ledger(tmp_path, digits_ckpt)
    ok = _add(led, "class", "4")
    cases = [
        (("samples", "5000"), "not in the training split"),
        (("class", "12"), "unknown class 12"),
        (("class", "4"), f"duplicate of #{ok.id}"),
        (("class", "abc"), "invalid literal"),
        (("group", "user=3"), "no group column 'user'"),
    ]
    split, _ = led.load_split()
    test_ids = split.test.ids[:2].tolist()
    cases.append((("samples", ",".join(map(str, test_ids))), "not in the training split"))
    class4 = split.train.ids[split.train.y == 4][:3].tolist()
    cases.append((("samples", ",".join(map(str, class4))), f"already covered by request #{ok.id}"))
    for (kind, target), match in cases:
        row = _add(led, kind, target)
        assert row.status == "rejected" and match in row.note, (kind, target, row.note)
    with pytest.raises(R2UError, match="--reason"):
        _add(led, "class", "5", reason="  ")
    with pytest.raises(R2UError, match="unknown request kind 'random'"):
        _add(led, "random", "0.1")
    # rejected requests are never served; the valid one is
    summary = process(led.path, _cfg(), FAST)
    assert summary.done == [ok.id]
    # after it is done, the same class again is still a duplicate
    assert "duplicate" in _add(led, "class", "4").note


def test_cli_add_rejects_with_one_line(digits_ckpt, tmp_path, capsys):
    db = str(tmp_path / "l.db")
    assert main(["request", "add", "--ledger", db, "--kind", "class", "--target", "3", "--reason", "r"]) == 2
    assert "give --checkpoint" in capsys.readouterr().err and not Path(db).exists()  # nothing created
    argv = ["request", "add", "--ledger", db, "--checkpoint", str(digits_ckpt), "--kind", "class", "--reason", "r"]
    assert main([*argv, "--target", "3"]) == 0 and "#1 pending" in capsys.readouterr().out
    assert main([*argv, "--target", "99"]) == 2
    err = capsys.readouterr().err
    assert "request #2 rejected: unknown class 99" in err and "Traceback" not in err
    assert main(["request", "list", "--ledger", db, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in listed] == ["pending", "rejected"]


def test_corrupt_served_model_is_detected_and_nothing_is_lost(digits_ckpt, tmp_path, capsys):
    led = _ledger(tmp_path, digits_ckpt)
    req = _add(led, "class", "2")
    weights = led.model_dir(led.served_hash()) / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CorruptModel, match="corrupt"):
        process(led.path, _cfg(), FAST)
    assert led.request(req.id).status == "pending" and len(led.models()) == 1
    assert main(["request", "process", "--ledger", str(led.path), "--stop", "steps:3", "-q"]) == 2
    assert "no longer matches its registered sha256" in capsys.readouterr().err
    # a corrupt checkpoint offered as the base is refused by its card's hash
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in ("card.json", "model.safetensors"):
        (bad / f).write_bytes((digits_ckpt / f).read_bytes())
    (bad / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(R2UError, match="does not match the sha256"):
        Ledger(tmp_path / "other.db").bind(bad)


def test_certificate_verifies_and_tampering_is_detected(digits_ckpt, tmp_path, capsys):
    led = _ledger(tmp_path, digits_ckpt)
    req = _add(led, "class", "1")
    process(led.path, _cfg(), FAST)
    row = led.request(req.id)
    cert_path = led.store / row.certificate
    cert = json.loads(cert_path.read_text())
    assert cert["request"]["id"] == req.id and cert["request"]["reason"] == "test"
    assert cert["models"]["parent"]["sha256"] == row.parent_hash and cert["models"]["child"]["sha256"] == row.child_hash
    assert cert["method"]["name"] == "ga" and cert["method"]["config"]["stop"]["max_steps"] == 5
    ver = cert["verification"]
    assert {"forget_acc", "retain_acc", "test_retain_acc", "mia_auc", "mia_efficacy"} <= set(ver["metrics"])
    assert "forget-10" in ver["relearn"] and "reference_note" in ver
    assert cert[HASH_FIELD] in (cert_path.parent / "certificate.html").read_text()
    assert verify_certificate(cert_path).ok
    assert main(["certificate", "verify", str(cert_path)]) == 0

    cert["verification"]["metrics"]["forget_acc"] = 0.0  # a better-looking number
    cert_path.write_text(json.dumps(cert, indent=2))
    result = verify_certificate(cert_path)
    assert not result.ok and [c.name for c in result.checks if not c.ok] == ["certificate sha256"]
    assert main(["certificate", "verify", str(cert_path)]) == 1
    assert "FAILED" in capsys.readouterr().out
    # a swapped model file is caught too, even with an intact certificate
    process(led.path, _cfg(), FAST)
    req2 = _add(led, "class", "8")
    process(led.path, _cfg(), FAST)
    cert2 = led.store / led.request(req2.id).certificate
    child = led.model_dir(led.request(req2.id).child_hash) / "model.safetensors"
    child.write_bytes(child.read_bytes()[:-4] + b"\0\0\0\0")
    result = verify_certificate(cert2)
    assert [c.name for c in result.checks if not c.ok] == ["child model sha256"]
    assert main(["certificate", "verify", str(tmp_path / "nope.json")]) == 2


def test_batch_serves_several_requests_in_one_run(digits_ckpt, tmp_path):
    led = _ledger(tmp_path, digits_ckpt)
    ids = [_add(led, "class", "5").id, _add(led, "samples", "0,1").id, _add(led, "class", "6").id]
    summary = process(led.path, _cfg(), ProcessConfig(batch=2, relearn=False))
    assert summary.done == ids and len(summary.versions) == 2
    rows = led.requests()
    assert rows[0].child_hash == rows[1].child_hash != rows[2].child_hash
    assert rows[0].batch_id == rows[1].batch_id == ids[0] and rows[2].batch_id is None
    assert len(led.lineage()) == 3
    cert = json.loads((led.store / rows[1].certificate).read_text())
    assert cert["request"]["batch"] == ids[:2] and cert["request"]["forget_size"] == 2
    assert set(cert["verification"]["per_request"]) == {str(ids[0]), str(ids[1])}
    assert all(verify_certificate(led.store / r.certificate).ok for r in rows)


def test_dead_worker_blocks_until_resume_which_cleans_orphans(digits_ckpt, tmp_path, capsys):
    led = _ledger(tmp_path, digits_ckpt)
    req = _add(led, "class", "7")
    ghost = Worker(socket.gethostname(), 2**22 + 12345, "1")  # no such process
    assert led.claim(ghost).state == "claimed"
    (led.store / "models" / ("f" * 64)).mkdir()  # a child renamed into place just before the crash
    (led.store / "tmp" / "req-00001-half").mkdir(parents=True)
    with pytest.raises(LedgerError, match=r"no longer alive.*--resume"):
        process(led.path, _cfg(), FAST)
    assert main(["request", "process", "--ledger", str(led.path), "-q", "--stop", "steps:3"]) == 2
    assert "--resume" in capsys.readouterr().err
    summary = process(led.path, _cfg(), ProcessConfig(resume=True, relearn=False))
    assert summary.resumed == [req.id] and summary.done == [req.id] and summary.orphans_removed == 2
    row = led.request(req.id)
    assert row.status == "done" and row.attempts == 2 and row.parent_hash == led.lineage()[0].hash
    assert not (led.store / "models" / ("f" * 64)).exists()
    assert [e["event"] for e in led.events(req.id)][-4:] == ["resumed", "model_registered", "served_moved", "done"]
    with pytest.raises(R2UError, match="only makes sense with --resume"):
        ProcessConfig(force=True)


def test_migration_from_schema_v1(digits_ckpt, tmp_path):
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db, isolation_level=None)
    schema.migrate(conn, target=1)
    conn.executemany(
        "INSERT INTO requests (kind, target, submitter, reason, created) VALUES (?, ?, 'bob', 'old', '2024-01-01')",
        [("class", "9"), ("class", "nine")],
    )
    conn.execute("INSERT INTO events (ts, request_id, event) VALUES ('2024-01-01', 1, 'submitted')")
    conn.close()
    led = Ledger(db)
    assert schema.user_version(led.conn) == schema.LATEST == 4
    old, bad = led.requests()
    assert old.status == "pending" and old.spec == {"kind": "class", "classes": [9]}
    assert bad.status == "rejected" and "migration" in bad.note
    assert led.events(1)[0]["event"] == "submitted"
    led.bind(digits_ckpt)
    assert process(db, _cfg(), FAST).done == [old.id]
    # reopening is a no-op, and a ledger from a newer release is refused
    with Ledger(db) as again:
        assert schema.migrate(again.conn) == schema.LATEST
    led.conn.execute("PRAGMA user_version = 99")
    with pytest.raises(R2UError, match="newer than this release"):
        Ledger(db)


def test_cli_show_lineage_and_process(digits_ckpt, tmp_path, capsys):
    db = str(tmp_path / "l.db")
    assert main(["request", "add", "--ledger", db, "--checkpoint", str(digits_ckpt), "--kind", "class",
                 "--target", "0", "--reason", "art. 17", "--submitter", "carol"]) == 0  # fmt: skip
    assert main(["request", "process", "--ledger", db, "--checkpoint", str(digits_ckpt), "--method", "ga",
                 "--stop", "steps:3", "-q", "--no-relearn"]) == 0  # fmt: skip
    assert "served 1 request(s) into 1 new version(s)" in capsys.readouterr().out
    assert main(["request", "show", "--ledger", db, "1"]) == 0
    out = capsys.readouterr().out
    assert "carol" in out and "model_registered" in out and "certificate" in out
    assert main(["lineage", db, "--json"]) == 0
    chain = json.loads(capsys.readouterr().out)
    assert len(chain) == 2 and chain[1]["requests"][0]["id"] == 1 and chain[1]["served"]
    assert main(["lineage", db, chain[0]["hash"][:10]]) == 0 and "(base)" in capsys.readouterr().out
    assert main(["lineage", db, "0" * 64]) == 2 and "no model version" in capsys.readouterr().err
    assert main(["lineage", db, "zzz"]) == 2 and "hexadecimal digits" in capsys.readouterr().err
    assert main(["request", "show", "--ledger", db, "42"]) == 2
    assert main(["request", "list", "--ledger", str(tmp_path / "none.db")]) == 2
    (tmp_path / "junk.db").write_text("not a database")
    assert main(["request", "list", "--ledger", str(tmp_path / "junk.db")]) == 2
    assert "is not a ready2unlearn ledger" in capsys.readouterr().err
    # a registered version is accepted as --checkpoint; a foreign model is refused
    child = str(Path(db).parent / "l-store" / "models" / chain[1]["hash"])
    assert main(["request", "process", "--ledger", db, "--checkpoint", child, "-q"]) == 0
    capsys.readouterr()
    unlearn_run(digits_ckpt, [DeletionRequest.parse("class:5")], _cfg(1), tmp_path / "foreign", show_progress=False)
    assert main(["request", "process", "--ledger", db, "--checkpoint", str(tmp_path / "foreign"), "-q"]) == 2
    assert "is not one of its versions" in capsys.readouterr().err
