"""Adversarial inputs to the ledger (issue 17), driven through the CLI in-process.

Every case is either refused with exactly one line on stderr and exit status 2, or reported as a FAILED
verification (exit 1) — never a traceback — and leaves the files it was pointed at as they were.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import ready2unlearn
from ready2unlearn.cli.main import main
from ready2unlearn.ledger import Ledger, LedgerError, schema, verify_certificate
from ready2unlearn.ledger.certificate import (
    CERT_HTML,
    HASH_FIELD,
    HMAC_FIELD,
    KEY_ENV,
    OUTCOME_ALREADY_MET,
    OUTCOME_FORGOTTEN,
    render_html,
    seal,
)

KEY = "test-signing-key"
QUIET = ["--method", "ga", "-q", "--no-relearn"]
WORKING = [*QUIET, "--stop", "forget_acc:chance", "--budget", "500"]
SQLITE_SIDE_FILES = ("-wal", "-shm")


def _err_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one line on stderr (asserts there is exactly one, and no traceback)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def _snapshot(folder: Path, *, sqlite_side_files: bool = True) -> dict[str, tuple[bytes, int]]:
    """Bytes and mtime of every file under ``folder``.

    Reading a WAL database lets SQLite create its ``-wal`` / ``-shm`` companions (its read protocol, not a
    change to the ledger); ``sqlite_side_files=False`` leaves those out of the comparison.
    """
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and (sqlite_side_files or not p.name.endswith(SQLITE_SIDE_FILES))
    }


def _add(db: Path, target: str, *extra: str) -> int:
    return main(["request", "add", "--ledger", str(db), "--kind", "class", "--target", target, "--reason", "art. 17",
                 "--submitter", "carol", *extra])  # fmt: skip


def _process(db: Path, *args: str) -> int:
    return main(["request", "process", "--ledger", str(db), *args])


def _verify(cert: Path, *args: str) -> int:
    return main(["certificate", "verify", str(cert), *args])


def _copy(served: dict[str, Path], tmp_path: Path) -> dict[str, Path]:
    """A private copy of the served ledger (database and store), for tests that change it."""
    root = tmp_path / "copy"
    shutil.copytree(served["root"], root)
    return {"root": root, "db": root / "ledger.db", "cert": root / served["cert"].relative_to(served["root"])}


@pytest.fixture(scope="module")
def served(digits_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A ledger with request #1 (class 3) served and certified, the certificate signed with :data:`KEY`."""
    root = tmp_path_factory.mktemp("served")
    db = root / "ledger.db"
    assert _add(db, "3", "--checkpoint", str(digits_ckpt)) == 0
    os.environ[KEY_ENV] = KEY
    try:
        assert _process(db, *QUIET, "--stop", "steps:3") == 0
    finally:
        del os.environ[KEY_ENV]
    with Ledger(db, readonly=True) as led:
        cert = led.store / led.request(1).certificate
    return {"root": root, "db": db, "cert": cert}


# -- 1. a certificate only for a deletion that happened ------------------------------------------------------
def _state(db: Path) -> dict[str, Any]:
    with Ledger(db, readonly=True) as led:
        return {"rows": led.requests(), "models": [m.hash for m in led.models()], "served": led.served_hash(),
                "events": led.events(), "store": led.store}  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        (["--stop", "forget_acc:0.1", "--budget", "1"],
         r"stop target not reached: forget_acc \d\.\d{3} > target 0\.1 after 1 step\(s\) \(budget exhausted\)"),
        (["--lr", "inf"], r"unlearning diverged: non-finite .* at step 1; the model was rolled back to its parent"),
    ],
    ids=["budget-too-small", "diverged"],
)  # fmt: skip
def test_unhonoured_run_fails_uncertified_then_retry_serves_it_once(digits_ckpt, tmp_path, capsys, flags, reason):
    db = tmp_path / "ledger.db"
    assert _add(db, "3", "--checkpoint", str(digits_ckpt)) == 0
    before = _state(db)
    assert _process(db, *QUIET, *flags) == 2
    err = _err_line(capsys)
    assert "1 request(s) failed, not certified (#1: " in err and "request retry" in err
    after = _state(db)
    (row,) = after["rows"]
    assert row.status == "failed" and row.certificate is None and row.child_hash is None
    assert re.search(reason, row.note), row.note
    assert after["events"][-1]["event"] == "failed" and after["events"][-1]["detail"]["error"] == row.note
    # nothing that could pass for proof: no certificate, no new version, the served model unchanged
    assert after["models"] == before["models"] and after["served"] == before["served"]
    store = after["store"]
    assert not (store / "certificates").exists() or not any((store / "certificates").iterdir())
    assert sorted(p.name for p in (store / "models").iterdir()) == before["models"]
    assert not any((store / "tmp").iterdir())

    assert main(["request", "retry", "--ledger", str(db), "1"]) == 0
    retried = _state(db)
    assert retried["rows"][0].status == "pending" and retried["rows"][0].note is None
    assert retried["events"][-1]["event"] == "retried" and retried["events"][-1]["detail"]["reason"] == "retry"
    assert _process(db, *WORKING) == 0
    capsys.readouterr()
    done = _state(db)
    (row,) = done["rows"]
    assert row.status == "done" and row.attempts == 2 and row.child_hash != row.parent_hash
    assert [e["event"] for e in done["events"]].count("done") == 1 and len(done["models"]) == 2
    cert = done["store"] / row.certificate
    assert json.loads(cert.read_text())["outcome"] == OUTCOME_FORGOTTEN
    assert _verify(cert, "--ledger", str(db)) == 0
    # a second process finds nothing to do: served exactly once
    assert _process(db, *WORKING) == 0 and _state(db)["events"] == done["events"]


def test_target_already_met_is_done_unchanged_and_says_so(digits_ckpt, tmp_path, capsys):
    db = tmp_path / "ledger.db"
    assert _add(db, "3", "--checkpoint", str(digits_ckpt)) == 0
    assert _process(db, *QUIET, "--stop", "forget_acc:1.0") == 0  # forget accuracy ≤ 1 holds before any step
    with Ledger(db, readonly=True) as led:
        row = led.request(1)
        assert row.status == "done" and row.child_hash == row.parent_hash and len(led.models()) == 1
        cert_path = led.store / row.certificate
    cert = json.loads(cert_path.read_text())
    assert cert["outcome"] == OUTCOME_ALREADY_MET and cert["unlearning"]["steps"] == 0
    assert cert["models"]["child"]["unchanged"] and cert["unlearning"]["reached"] is True
    assert "already held before unlearning" in (cert_path.parent / CERT_HTML).read_text()
    assert _verify(cert_path, "--ledger", str(db)) == 0
    capsys.readouterr()
    # the same certificate claiming a real deletion (re-sealed) fails: child = parent needs the explicit outcome
    cert["outcome"] = OUTCOME_FORGOTTEN
    cert_path.write_text(json.dumps(seal(cert)))
    (cert_path.parent / CERT_HTML).unlink()
    result = verify_certificate(cert_path, db)
    assert {c.name for c in result.checks if not c.ok} == {"unlearning outcome", "ledger: lineage"}


@pytest.mark.parametrize(
    "edit",
    [
        lambda c: c["unlearning"].update(reached=False),
        lambda c: c["unlearning"].update(reached=None),
        lambda c: c["unlearning"].update(stop_reason="diverged: non-finite loss at step 1"),
        lambda c: c["models"]["child"].update(c["models"]["parent"]),
        lambda c: c.update(outcome=OUTCOME_ALREADY_MET),
    ],
    ids=["not-reached", "reached-missing", "diverged", "child-is-parent", "already-met-but-changed"],
)
def test_verify_fails_a_certificate_that_proves_no_deletion(served, tmp_path, capsys, edit):
    """Defence in depth: even a correctly sealed certificate fails when its content proves no deletion."""
    cert_path = _copy(served, tmp_path)["cert"]
    cert = json.loads(cert_path.read_text())
    edit(cert)
    cert_path.write_text(json.dumps(seal(cert)))
    (cert_path.parent / CERT_HTML).unlink()
    assert _verify(cert_path) == 1
    assert "FAILED" in capsys.readouterr().out
    assert [c.name for c in verify_certificate(cert_path).checks if not c.ok] == ["unlearning outcome"]


# -- 5. read-only verbs never write; write verbs only touch ledgers ------------------------------------------
def _foreign(tmp_path: Path) -> Path:
    """Another application's SQLite database (rollback journal, as most are)."""
    folder = tmp_path / "foreign"
    folder.mkdir()
    db = folder / "app.db"
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO users (name) VALUES ('ada')")
        conn.commit()
    return db


def test_read_verbs_leave_a_foreign_database_byte_identical(served, tmp_path, capsys):
    db = _foreign(tmp_path)
    junk = db.parent / "junk.db"
    junk.write_text("not a database")
    empty = db.parent / "empty.db"
    empty.touch()
    before = _snapshot(db.parent)
    for target in (db, junk, empty):
        for argv in (
            ["request", "list", "--ledger", str(target)],
            ["request", "show", "--ledger", str(target), "1"],
            ["lineage", str(target)],
            ["certificate", "verify", str(served["cert"]), "--ledger", str(target)],
        ):
            assert main(argv) == 2, argv
            assert f"{target} is not a ready2unlearn ledger" in _err_line(capsys), argv
    assert _snapshot(db.parent) == before  # same bytes, same mtimes, no -wal / -shm / journal left behind
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_write_verbs_refuse_a_foreign_database_but_initialise_an_empty_one(digits_ckpt, tmp_path, capsys):
    db = _foreign(tmp_path)
    before = _snapshot(db.parent)
    for argv in (
        ["request", "add", "--ledger", str(db), "--checkpoint", str(digits_ckpt), "--kind", "class", "--target", "3",
         "--reason", "r"],
        ["request", "process", "--ledger", str(db), "--checkpoint", str(digits_ckpt), *QUIET],
        ["request", "retry", "--ledger", str(db), "1"],
    ):  # fmt: skip
        assert main(argv) == 2, argv
        assert "is not a ready2unlearn ledger (an SQLite database with tables users" in _err_line(capsys)
    assert _snapshot(db.parent) == before and not (db.parent / "app-store").exists()
    # an empty file, or an SQLite database without tables, may become a ledger
    (tmp_path / "empty.db").touch()
    with closing(sqlite3.connect(tmp_path / "blank.db")) as conn:
        conn.execute("CREATE TABLE t (a)")
        conn.execute("DROP TABLE t")
    for name in ("empty.db", "blank.db"):
        assert _add(tmp_path / name, "3", "--checkpoint", str(digits_ckpt)) == 0, name
    capsys.readouterr()


def test_read_verbs_do_not_migrate_an_older_ledger(digits_ckpt, tmp_path, capsys):
    db = tmp_path / "old.db"
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        schema.migrate(conn, target=1)
        conn.execute("INSERT INTO requests (kind, target, submitter, reason, created) "
                     "VALUES ('class', '9', 'bob', 'old', '2024-01-01')")  # fmt: skip
    before = _snapshot(tmp_path)
    assert main(["request", "list", "--ledger", str(db), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["status"] == "pending" and row["spec"] == {"kind": "class", "classes": [9]}  # read through a migration
    assert main(["request", "show", "--ledger", str(db), "1"]) == 0
    capsys.readouterr()
    assert main(["lineage", str(db)]) == 2 and "not bound to a model yet" in _err_line(capsys)
    assert _snapshot(tmp_path) == before
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        assert schema.user_version(conn) == 1
    # a write verb migrates it
    assert _add(db, "3", "--checkpoint", str(digits_ckpt)) == 0
    with closing(sqlite3.connect(db)) as conn:
        assert schema.user_version(conn) == schema.LATEST
    capsys.readouterr()


_RUN_MANY = """
import contextlib, io, json, sys
from ready2unlearn.cli.main import main
results = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    results.append([rc, out.getvalue(), err.getvalue()])
print(json.dumps(results))
"""


def _unprivileged(*argvs: list[str]) -> list[tuple[int, str, str]]:
    """Runs each ``r2u ARGV`` in one process that obeys file permissions (root's override capabilities dropped).

    Returns:
        ``(exit status, stdout, stderr)`` per command.
    """
    env = {**os.environ, "COLUMNS": "200",
           "PYTHONPATH": os.pathsep.join([str(Path(ready2unlearn.__file__).resolve().parents[1]),
                                          os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    cmd = [sys.executable, "-c", _RUN_MANY, json.dumps(argvs)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: file permissions cannot be enforced")
        cmd = [setpriv, "--bounding-set", "-dac_override,-dac_read_search,-fowner", *cmd]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return [tuple(r) for r in json.loads(proc.stdout)]


def test_a_ledger_in_a_read_only_folder_can_be_listed(served, tmp_path, capsys):
    copy = _copy(served, tmp_path)
    folder, db = copy["root"], copy["db"]
    for side in SQLITE_SIDE_FILES:
        Path(f"{db}{side}").unlink(missing_ok=True)
    before = _snapshot(folder)
    db.chmod(0o444)
    folder.chmod(0o555)
    try:
        # A WAL database with no -wal file in a folder nobody may write: SQLite cannot create its -shm index,
        # so the reader falls back to reading the file as immutable.
        listed, lineage, verified = _unprivileged(
            ["request", "list", "--ledger", str(db), "--json"],
            ["lineage", str(db), "--json"],
            ["certificate", "verify", str(copy["cert"]), "--ledger", str(db)],
        )
        assert listed[0] == 0 and [r["status"] for r in json.loads(listed[1])] == ["done"], listed
        assert lineage[0] == 0 and len(json.loads(lineage[1])) == 2, lineage
        assert verified[0] == 0 and "certificate verified" in verified[1], verified
        assert main(["request", "list", "--ledger", str(db)]) == 0  # in-process too
        capsys.readouterr()
    finally:
        folder.chmod(0o755)
        db.chmod(0o644)
    assert _snapshot(folder, sqlite_side_files=False) == before


@pytest.mark.parametrize("what", ["file", "folder"])
def test_writing_to_a_read_only_ledger_is_refused_and_writes_nothing(served, tmp_path, capsys, what):
    copy = _copy(served, tmp_path)
    folder, db = copy["root"], copy["db"]
    before = _snapshot(folder)
    target = db if what == "file" else folder
    target.chmod(0o444 if what == "file" else 0o555)
    try:
        for argv in (
            ["request", "add", "--ledger", str(db), "--kind", "class", "--target", "4", "--reason", "r"],
            ["request", "process", "--ledger", str(db), *QUIET],
            ["request", "retry", "--ledger", str(db), "1"],
        ):
            assert main(argv) == 2, argv
            assert "is read-only" in _err_line(capsys), argv
    finally:
        target.chmod(0o644 if what == "file" else 0o755)
    assert _snapshot(folder) == before


def test_retry_refuses_unknown_unfailed_and_duplicate_requests(digits_ckpt, tmp_path, capsys):
    db = tmp_path / "ledger.db"
    assert _add(db, "3", "--checkpoint", str(digits_ckpt)) == 0 and _add(db, "4") == 0
    assert _process(db, *QUIET, "--stop", "forget_acc:0.1", "--budget", "1", "--max", "1") == 2  # #1 fails
    assert _process(db, *QUIET, "--stop", "steps:2") == 0  # #2 done
    assert _add(db, "3") == 0  # #3 asks for what #1 asked: accepted, since #1 failed
    capsys.readouterr()
    before = _snapshot(tmp_path)
    for ids, message in (
        (["2"], "request #2 is done, not failed"),
        (["3"], "request #3 is pending, not failed"),
        (["99"], "no request #99"),
        (["9" * 30], f"no request #{'9' * 30}"),
        (["-1"], "no request #-1"),
        (["1", "99"], "no request #99"),  # all or none: #1 stays failed
        (["1"], "request #1 cannot be retried: #3 (pending) asks for the same deletion"),
    ):
        assert main(["request", "retry", "--ledger", str(db), *ids]) == 2, ids
        assert message in _err_line(capsys), ids
    assert main(["request", "show", "--ledger", str(db), "9" * 30]) == 2 and "no request" in _err_line(capsys)
    assert _snapshot(tmp_path, sqlite_side_files=False) == before
    with Ledger(db, readonly=True) as led:
        assert [r.status for r in led.requests()] == ["failed", "done", "pending"]


# -- 6. structurally edited certificates ----------------------------------------------------------------------
EDITS = {
    "models-is-a-list": lambda c: c.update(models=[c["models"]]),
    "request-missing": lambda c: c.pop("request"),
    "request-is-a-string": lambda c: c.update(request="#1"),
    "request-id-is-a-string": lambda c: c["request"].update(id="1"),
    "request-id-is-huge": lambda c: c["request"].update(id=10**30),
    "child-is-a-string": lambda c: c["models"].update(child="abc"),
    "hash-is-a-number": lambda c: c.update({HASH_FIELD: 12345}),
    "model-hash-is-a-number": lambda c: c["models"]["parent"].update(sha256=7),
    "model-file-is-a-list": lambda c: c["models"]["child"].update(file=["x"]),
    "model-file-has-a-nul": lambda c: c["models"]["child"].update(file="a\u0000b"),
    "model-file-is-a-folder": lambda c: c["models"]["child"].update(file="."),
    "unlearning-is-a-string": lambda c: c.update(unlearning="done"),
    "verification-is-a-list": lambda c: c.update(verification=[1, 2]),
    "relearn-is-garbage": lambda c: c["verification"].update(relearn={"forget-10": 3}, per_request=[1]),
    "method-is-null": lambda c: c.update(method=None),
    "hmac-is-a-list": lambda c: c.update({HMAC_FIELD: [1]}),
    "batch-is-a-number": lambda c: c["request"].update(batch=5),
}

SEAL_EDITS = ("hash-is-a-number", "hmac-is-a-list")


@pytest.mark.parametrize("name", sorted(EDITS))
@pytest.mark.parametrize("resealed", [False, True], ids=["edited", "resealed"])
def test_structurally_edited_certificate_fails_without_a_traceback(served, tmp_path, capsys, monkeypatch, name,
                                                                   resealed):  # fmt: skip
    cert_path = _copy(served, tmp_path)["cert"]
    cert = json.loads(cert_path.read_text())
    EDITS[name](cert)
    if resealed:
        cert = seal(cert)
        if name in SEAL_EDITS:  # sealing recomputes the seals: edit them again afterwards
            EDITS[name](cert)
    cert_path.write_text(json.dumps(cert))
    assert isinstance(render_html(cert), str)  # the page renders whatever the content
    for key in (None, KEY):
        if key:
            monkeypatch.setenv(KEY_ENV, key)
        for extra in ([], ["--ledger", str(served["db"])]):
            rc = _verify(cert_path, *extra)
            captured = capsys.readouterr()
            assert "Traceback" not in captured.err
            assert rc == 1 and "certificate verification FAILED" in captured.out, (name, extra, captured)
            assert captured.err == ""


# -- 7. a re-sealed certificate, the ledger cross-check and the HMAC --------------------------------------------
def test_resealed_certificate_is_caught_by_the_ledger_and_the_hmac(served, tmp_path, capsys, monkeypatch):
    cert_path = _copy(served, tmp_path)["cert"]
    db = served["db"]
    assert _verify(cert_path, "--ledger", str(db)) == 0
    out = capsys.readouterr().out
    for row in ("ledger: request row", "ledger: event log", "ledger: lineage", "certificate HMAC"):
        assert row in out
    checks = {c.name: c for c in verify_certificate(cert_path, db).checks}
    assert checks["certificate HMAC (R2U_CERT_KEY)"].detail.startswith("not checked: R2U_CERT_KEY not set")
    monkeypatch.setenv(KEY_ENV, KEY)
    assert _verify(cert_path, "--ledger", str(db)) == 0 and "matches the key" in capsys.readouterr().out
    monkeypatch.delenv(KEY_ENV)

    # change the target, recompute the self-hash, delete the page: the self-hash alone cannot tell
    cert = json.loads(cert_path.read_text())
    cert["request"]["target"] = "5"
    cert["request"]["spec"] = {"kind": "class", "classes": [5]}
    cert_path.write_text(json.dumps(seal(cert)))
    (cert_path.parent / CERT_HTML).unlink()
    assert verify_certificate(cert_path).ok  # documented limit of a self-hash
    result = verify_certificate(cert_path, db)
    assert [c.name for c in result.checks if not c.ok] == ["ledger: request row"]
    assert "target differs (certificate '5', ledger '3')" in next(c.detail for c in result.checks if not c.ok)
    assert _verify(cert_path, "--ledger", str(db)) == 1
    capsys.readouterr()
    # the key catches it without the ledger: the stale signature no longer matches, a removed one is missing
    monkeypatch.setenv(KEY_ENV, KEY)
    assert [c.name for c in verify_certificate(cert_path).checks if not c.ok] == ["certificate HMAC (R2U_CERT_KEY)"]
    del cert[HMAC_FIELD]
    cert_path.write_text(json.dumps(seal(cert, None)))
    failed = [c for c in verify_certificate(cert_path).checks if not c.ok]
    assert [c.name for c in failed] == ["certificate HMAC (R2U_CERT_KEY)"] and "carries no" in failed[0].detail
    # a forger with the key could re-sign; the ledger still disagrees
    cert_path.write_text(json.dumps(seal(cert, KEY.encode())))
    assert verify_certificate(cert_path).ok and not verify_certificate(cert_path, db).ok
    # an unknown ledger is a one-line error, not a failed check
    assert _verify(cert_path, "--ledger", str(tmp_path / "none.db")) == 2
    assert "does not exist" in _err_line(capsys)


def test_ledger_cross_check_names_each_mismatch(served, tmp_path):
    copy = _copy(served, tmp_path)
    cert = json.loads(copy["cert"].read_text())
    (copy["cert"].parent / CERT_HTML).unlink()
    for field, value in (("id", 99), ("submitter", "mallory"), ("reason", "none"), ("kind", "samples")):
        edited = json.loads(json.dumps(cert))
        edited["request"][field] = value
        copy["cert"].write_text(json.dumps(seal(edited)))
        failed = {c.name: c.detail for c in verify_certificate(copy["cert"], copy["db"]).checks if not c.ok}
        if field == "id":
            assert set(failed) == {"ledger: request row", "ledger: event log"} and "no request #99" in str(failed)
        else:
            assert list(failed) == ["ledger: request row"] and f"{field} differs" in failed["ledger: request row"]


# -- 8. hash prefixes are literal ------------------------------------------------------------------------------
def test_lineage_matches_hash_prefixes_literally(served, capsys):
    db = str(served["db"])
    before = _snapshot(served["root"], sqlite_side_files=False)
    for bad in ("_", "%", "a_", "%%", "ab cd", "g" * 4, "0" * 65):
        assert main(["lineage", db, bad]) == 2, bad
        assert "hexadecimal digits" in _err_line(capsys), bad
    assert main(["lineage", db, ""]) == 2 and "no model hash given" in _err_line(capsys)
    with Ledger(db, readonly=True) as led:
        head = led.served_hash()
        assert led.model(head[:6].upper()).hash == head
        with pytest.raises(LedgerError, match="hexadecimal"):
            led.model("_" * 64)
    assert main(["lineage", db, head[:8], "--json"]) == 0
    assert [v["hash"] for v in json.loads(capsys.readouterr().out)][-1] == head
    assert _snapshot(served["root"], sqlite_side_files=False) == before
