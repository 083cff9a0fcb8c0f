"""The ledger's parts: the incremental covered-ids table (vs the replay), the v2 → v3 migration, serving sets."""

import os
import random
import socket
import sqlite3
from contextlib import closing

import pytest

from ready2unlearn.ledger import Ledger, Worker, schema
from ready2unlearn.ledger import covered as covered_table
from ready2unlearn.ledger import store as store_mod
from ready2unlearn.ledger.queue import ServingSet

OTHER = Worker(socket.gethostname(), os.getppid(), "")  # alive for the whole test: its claims are never stale


def _bound(path, ckpt):
    led = Ledger(path)
    led.bind(ckpt)
    return led


def _rows(led):
    return [(r.id, r.kind, r.target, r.status, r.note) for r in led.requests()]


def _serve(led, *, fail):
    """Claims the next request as another live worker and ends it done (model unchanged) or failed."""
    claim = led.claim(OTHER)
    if claim.state != "claimed":
        return
    ids = [r.id for r in claim.rows]
    if fail:
        led.fail(ids, OTHER, "test failure")
    else:
        led.complete(ids, OTHER, led.served_hash(), "unused", {}, {}, {})


def test_incremental_covered_ids_equal_the_replay_after_random_operations(digits_ckpt, tmp_path):
    fast, slow = _bound(tmp_path / "fast.db", digits_ckpt), _bound(tmp_path / "slow.db", digits_ckpt)
    split, forgotten = fast.load_split()
    train_ids, test_ids = split.train.ids.tolist(), split.test.ids.tolist()
    rng = random.Random(0)
    ops = {"class": 0, "samples": 0, "bad": 0, "done": 0, "failed": 0, "retry": 0}
    for _ in range(90):
        op = rng.choices(["class", "samples", "bad", "serve", "retry"], weights=[1, 8, 1, 4, 2])[0]
        if op == "class":
            args = ("class", ",".join(map(str, rng.sample(range(11), rng.choice([1, 1, 2])))))
        elif op == "samples":
            pool = train_ids if rng.random() < 0.9 else test_ids
            args = ("samples", ",".join(map(str, rng.sample(pool, rng.randint(1, 6)))))
        elif op == "bad":
            args = rng.choice([("group", "user=1"), ("class", "x"), ("samples", "99999")])
        if op in ("class", "samples", "bad"):
            a = fast.add_request(*args, "r", "t", split, forgotten)
            b = slow.add_request(*args, "r", "t", split, forgotten, replay=True)
            assert (a.id, a.status, a.note) == (b.id, b.status, b.note), args
            ops[op] += 1
        elif op == "serve":
            fail = rng.random() < 0.5
            for led in (fast, slow):
                _serve(led, fail=fail)
            ops["failed" if fail else "done"] += 1
        else:
            failed = [r.id for r in fast.requests("failed")]
            if failed:
                pick = [rng.choice(failed)]
                for led in (fast, slow):
                    try:
                        led.retry(pick)
                    except Exception as e:  # a duplicate came in meanwhile: both refuse it the same way
                        assert "cannot be retried" in str(e)
                ops["retry"] += 1
        assert _rows(fast) == _rows(slow)
        # The table (after catching up) is the replay, in both ledgers.
        replayed = fast.covered(split, forgotten, replay=True)
        assert fast.covered(split, forgotten) == replayed == slow.covered(split, forgotten, replay=True)
    assert all(n >= 3 for n in ops.values()), ops  # the sequence exercised every kind of change
    statuses = {r.status for r in fast.requests()}
    assert {"pending", "done", "failed", "rejected"} <= statuses
    assert any("already covered by request" in (r.note or "") for r in fast.requests())
    # the stored table itself (no pending catch-up) equals the replay after one more add
    fast.add_request("samples", str(train_ids[0]), "r", "t", split, forgotten)
    assert not covered_table.unfolded(fast.conn)
    assert covered_table.load(fast.conn) == fast.covered(split, forgotten, replay=True)


def test_a_failed_then_retried_request_resolves_in_queue_order_again(digits_ckpt, tmp_path):
    led = _bound(tmp_path / "l.db", digits_ckpt)
    split, forgotten = led.load_split()
    cls = led.add_request("class", "4", "r", "t", split, forgotten)
    _serve(led, fail=True)
    assert covered_table.watermark(led.conn) == cls.id - 1 and not covered_table.load(led.conn)
    four = split.train.ids[split.train.y == 4][:3].tolist()
    ids = led.add_request("samples", ",".join(map(str, four)), "r", "t", split, forgotten)
    assert ids.status == "pending"  # class 4 failed: its samples are free again
    led.retry([cls.id])
    assert covered_table.watermark(led.conn) == cls.id - 1
    # Replayed in id order, class 4 now takes every sample of 4, so the samples request no longer resolves:
    # the next submission is refused for it, exactly as the replay refuses it.
    got = led.add_request("class", "5", "r", "t", split, forgotten)
    with closing(Ledger(tmp_path / "l.db", readonly=True)) as ro, pytest.raises(Exception) as replay_error:
        ro.covered(split, forgotten, replay=True)
    assert got.status == "rejected" and got.note == str(replay_error.value)


def test_migration_from_schema_v2_keeps_requests_and_fills_covered_on_first_add(digits_ckpt, tmp_path):
    db = tmp_path / "v2.db"
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        schema.migrate(conn, target=2)
        conn.executemany(
            "INSERT INTO requests (kind, target, submitter, reason, created, status, spec, dedup_key) "
            "VALUES (?, ?, 'bob', 'old', '2024-01-01', ?, ?, ?)",
            [
                ("class", "3", "done", '{"kind": "class", "classes": [3]}', '{"kind": "class", "target": "3"}'),
                ("class", "5", "failed", '{"kind": "class", "classes": [5]}', '{"kind": "class", "target": "5"}'),
                ("class", "7", "pending", '{"kind": "class", "classes": [7]}', '{"kind": "class", "target": "7"}'),
            ],
        )
    # a reader sees the new schema through an in-memory copy; the file stays at version 2
    with closing(Ledger(db, readonly=True)) as ro:
        assert schema.user_version(ro.conn) == schema.LATEST == 4
        assert covered_table.watermark(ro.conn) == 0 and not covered_table.load(ro.conn)
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        assert schema.user_version(conn) == 2
    # a writer upgrades in place: requests kept, the covered table empty until the data is at hand
    led = Ledger(db)
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        assert schema.user_version(conn) == schema.LATEST
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"covered", "covered_through"} <= tables
    assert [(r.id, r.status) for r in led.requests()] == [(1, "done"), (2, "failed"), (3, "pending")]
    assert covered_table.watermark(led.conn) == 0
    led.bind(digits_ckpt)
    split, forgotten = led.load_split()
    sevens = split.train.ids[split.train.y == 7][:2].tolist()
    row = led.add_request("samples", ",".join(map(str, sevens)), "r", "t", split, forgotten)
    assert row.status == "rejected" and "already covered by request #3" in row.note
    assert "duplicate of #1" in led.add_request("class", "3", "r", "t", split, forgotten).note
    ok = led.add_request("class", "5", "r", "t", split, forgotten)  # #2 failed: 5 is free
    assert ok.status == "pending"
    # the first add folded in the old requests once; the table is now exactly the replay
    assert covered_table.watermark(led.conn) == ok.id and not covered_table.unfolded(led.conn)
    stored = covered_table.load(led.conn)
    assert stored == led.covered(split, forgotten, replay=True)
    assert set(stored.values()) == {1, 3, ok.id}
    led.close()


def test_claims_of_this_process_are_alive_only_while_it_serves_them(digits_ckpt, tmp_path):
    mine = ServingSet()
    led = Ledger(tmp_path / "l.db", serving=mine)
    led.bind(digits_ckpt)
    split, forgotten = led.load_split()
    req = led.add_request("class", "1", "r", "t", split, forgotten)
    me = Worker.current()
    assert led.claim(me).state == "claimed"
    # nobody serves it: a row naming our own pid is a leftover of a failed in-process attempt
    assert led.claim(me).state == "blocked"
    with led.serving([req.id]):
        assert req.id in mine and led.claim(me).state == "wait"
        # another ledger object with the process-wide registry does not see this private one
        with Ledger(led.path) as other:
            assert other.claim(me).state == "blocked"
    assert req.id not in mine and led.claim(me).state == "blocked"
    led.close()


def test_the_store_facade_keeps_its_public_names():
    for name in ("Ledger", "LedgerError", "RequestRejected", "CorruptModel", "LostClaim", "RequestRow",
                 "ModelVersion", "Claim", "Worker", "Heartbeat", "default_store", "ACTIVE_STATUSES"):  # fmt: skip
        assert hasattr(store_mod, name), name
    assert not hasattr(store_mod, "_SERVING")  # no module-level state for others to reach into
