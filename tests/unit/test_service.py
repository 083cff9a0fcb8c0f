"""``r2u serve``: tokens and roles, validation, limits, injection strings, processing, dashboard (issue 16).

Every refusal is checked twice: the answer (a 4xx with a one-line ``detail``) and the ledger (no request
row and no event was written).
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient

from ready2unlearn.cli.main import main
from ready2unlearn.ledger.store import Ledger
from ready2unlearn.ledger.tokens import digest
from ready2unlearn.service.app import create_app
from ready2unlearn.service.config import ServiceConfig

WORKER_ARGS = ["--method", "ga", "--stop", "steps:5"]
SQL = ["'; DROP TABLE requests; --", "1 OR 1=1", "3); DELETE FROM events; --", '" OR ""="']
PATHS = ["../../etc/passwd", "/etc/passwd", "..\\..\\windows\\win.ini", "%2e%2e%2fetc%2fpasswd"]


@pytest.fixture(scope="module")
def ledger_path(digits_ckpt, tmp_path_factory) -> Path:
    """A ledger bound to the digits checkpoint (binding happens once, as `request add --checkpoint` does)."""
    path = tmp_path_factory.mktemp("svc") / "ledger.db"
    with Ledger(path) as led:
        led.bind(digits_ckpt)
    return path


@pytest.fixture(scope="module")
def secrets_(ledger_path) -> dict[str, str]:
    """One token per role, plus a second submitter and a revoked one."""
    out = {}
    with Ledger(ledger_path) as led:
        for name, role in [("portal", "submitter"), ("desk", "submitter"), ("ops", "operator"),
                           ("dpo", "auditor"), ("old", "submitter")]:  # fmt: skip
            out[name] = led.tokens.add(name, role)[1]
        led.tokens.revoke("old")
    return out


@pytest.fixture(scope="module")
def client(ledger_path, secrets_):
    app = create_app(ServiceConfig(ledger=str(ledger_path), worker_args=WORKER_ARGS, max_body_bytes=4096))
    with TestClient(app) as c:
        yield c


def _h(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _counts(path: Path) -> tuple[int, int]:
    with sqlite3.connect(path) as conn:
        return (conn.execute("SELECT count(*) FROM requests").fetchone()[0],
                conn.execute("SELECT count(*) FROM events").fetchone()[0])  # fmt: skip


def _refused(client, ledger_path, method: str, url: str, status: int | tuple[int, ...], **kw) -> dict:
    """Sends a call that must be refused: the status, a one-line detail, and nothing written."""
    before = _counts(ledger_path)
    r = client.request(method, url, **kw)
    assert r.status_code in ((status,) if isinstance(status, int) else status), (r.status_code, r.text)
    detail = r.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail
    assert _counts(ledger_path) == before, "a refused call wrote to the ledger"
    return r.json()


# -- tokens -------------------------------------------------------------------------------------------------
def test_token_cli_prints_the_secret_once_and_stores_only_its_hash(ledger_path, capsys):
    assert main(["token", "add", "--ledger", str(ledger_path), "cli-made", "--role", "auditor", "--json"]) == 0
    secret = json.loads(capsys.readouterr().out)["secret"]
    assert secret.startswith("r2u_")
    wal = ledger_path.with_name(ledger_path.name + "-wal")
    raw = ledger_path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    assert secret.encode() not in raw and digest(secret) in _hashes(ledger_path)
    assert main(["token", "list", "--ledger", str(ledger_path), "--json"]) == 0
    listed = {t["name"]: t for t in json.loads(capsys.readouterr().out)}
    assert listed["cli-made"]["role"] == "auditor" and listed["cli-made"]["revoked"] is None
    assert "secret" not in listed["cli-made"] and secret not in json.dumps(listed)
    assert main(["token", "revoke", "--ledger", str(ledger_path), "cli-made"]) == 0
    assert main(["token", "revoke", "--ledger", str(ledger_path), "cli-made"]) == 2  # already revoked: one line
    assert main(["token", "add", "--ledger", str(ledger_path), "cli-made", "--role", "auditor"]) == 2  # never reused
    assert main(["token", "add", "--ledger", str(ledger_path), "bad name;", "--role", "auditor"]) == 2
    with Ledger(ledger_path, readonly=True) as led:
        assert led.tokens.authenticate(secret) is None
        assert [e["event"] for e in led.events() if e["detail"].get("token") == "cli-made"] == [
            "token_added", "token_revoked"]  # fmt: skip


def _hashes(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT sha256 FROM tokens")}


# -- authentication and roles --------------------------------------------------------------------------------
def test_missing_wrong_and_revoked_tokens_get_401_and_write_nothing(client, ledger_path, secrets_):
    body = {"kind": "class", "target": "4", "reason": "art. 17"}
    for headers in [{}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}, _h("r2u_" + "x" * 43),
                    _h("not-a-token"), _h(secrets_["old"]), _h(secrets_["portal"] + "x"), _h("' OR '1'='1"),
                    _h("r2u_' OR 1=1; DROP TABLE tokens; --"), _h("../../etc/passwd")]:  # fmt: skip
        out = _refused(client, ledger_path, "POST", "/api/v1/requests", 401, json=body, headers=headers)
        assert "token" in out["detail"] or "Authorization" in out["detail"]
        _refused(client, ledger_path, "GET", "/api/v1/requests", 401, headers=headers)
    r = client.get("/api/v1/requests", headers=_h(secrets_["old"]))
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_roles_are_enforced_and_violations_write_nothing(client, ledger_path, secrets_):
    body = {"kind": "class", "target": "5", "reason": "art. 17"}
    for who in ("ops", "dpo"):
        out = _refused(client, ledger_path, "POST", "/api/v1/requests", 403, json=body, headers=_h(secrets_[who]))
        assert "may not submit" in out["detail"]
    for who in ("portal", "dpo"):
        _refused(client, ledger_path, "POST", "/api/v1/process", 403, headers=_h(secrets_[who]))
    _refused(client, ledger_path, "GET", "/api/v1/lineage", 403, headers=_h(secrets_["portal"]))
    _refused(client, ledger_path, "GET", "/api/v1/events", 403, headers=_h(secrets_["portal"]))
    _refused(client, ledger_path, "GET", "/api/v1/process", 403, headers=_h(secrets_["portal"]))


def test_a_submitter_reads_only_its_own_requests(client, ledger_path, secrets_):
    r = client.post("/api/v1/requests", json={"kind": "class", "target": "6", "reason": "mine"},
                    headers=_h(secrets_["desk"]))  # fmt: skip
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    assert r.json()["token"] == "desk" and r.json()["submitter"] == "desk" and r.json()["status"] == "pending"
    assert rid in [x["id"] for x in client.get("/api/v1/requests", headers=_h(secrets_["desk"])).json()]
    assert rid not in [x["id"] for x in client.get("/api/v1/requests", headers=_h(secrets_["portal"])).json()]
    # another submitter's request looks exactly like a missing one
    mine = _refused(client, ledger_path, "GET", f"/api/v1/requests/{rid}", 404, headers=_h(secrets_["portal"]))
    missing = _refused(client, ledger_path, "GET", "/api/v1/requests/999999", 404, headers=_h(secrets_["portal"]))
    assert mine["detail"].replace(str(rid), "N") == missing["detail"].replace("999999", "N")
    for who in ("ops", "dpo", "desk"):
        got = client.get(f"/api/v1/requests/{rid}", headers=_h(secrets_[who]))
        assert got.status_code == 200 and got.json()["events"][0]["event"] == "submitted"
        assert got.json()["events"][0]["detail"]["token"] == "desk"


# -- validation, limits, injection ---------------------------------------------------------------------------
def test_rejections_match_the_cli_and_record_nothing(client, ledger_path, secrets_, capsys):
    h = _h(secrets_["portal"])
    out = _refused(client, ledger_path, "POST", "/api/v1/requests", 422, headers=h,
                   json={"kind": "class", "target": "42", "reason": "x"})  # fmt: skip
    # the same one-line reason `r2u request add` records for it
    with Ledger(ledger_path, readonly=True) as led:
        split, forgotten = led.load_split()
    from ready2unlearn.errors import RequestError
    from ready2unlearn.ledger.requests import parse_request, validate_request

    with pytest.raises(RequestError) as e:
        validate_request(split, parse_request("class", "42"), {}, forgotten)
    assert out["detail"] == str(e.value)
    ok = client.post("/api/v1/requests", headers=h, json={"kind": "samples", "target": "3,9", "reason": "x"})
    assert ok.status_code == 201
    dup = _refused(client, ledger_path, "POST", "/api/v1/requests", 409, headers=h,
                   json={"kind": "samples", "target": "9, 3", "reason": "again"})  # fmt: skip
    assert dup["detail"].startswith(f"duplicate of #{ok.json()['id']}")
    _refused(client, ledger_path, "POST", "/api/v1/requests", 422, headers=h,
             json={"kind": "samples", "target": "9", "reason": "covered"})  # fmt: skip


def test_malformed_and_oversized_bodies(client, ledger_path, secrets_):
    h = _h(secrets_["portal"])
    url = "/api/v1/requests"
    _refused(client, ledger_path, "POST", url, 422, headers={**h, "Content-Type": "application/json"}, content=b"{no")
    _refused(client, ledger_path, "POST", url, 422, headers=h, json=["class", "3"])
    _refused(client, ledger_path, "POST", url, 422, headers=h, json={"kind": "class", "target": "3"})  # no reason
    _refused(client, ledger_path, "POST", url, 422, headers=h, json={"kind": "class", "target": 3, "reason": "x"})
    _refused(client, ledger_path, "POST", url, 422, headers=h,
             json={"kind": "class", "target": "3", "reason": "x", "status": "done"})  # fmt: skip
    _refused(client, ledger_path, "POST", url, 422, headers=h, json={"kind": "random", "target": "0.1", "reason": "x"})
    _refused(client, ledger_path, "POST", url, 422, headers=h, json={"kind": "class", "target": "3", "reason": " "})
    _refused(client, ledger_path, "POST", url, 422, headers=h,
             json={"kind": "class", "target": "3", "reason": "a\x00b"})  # fmt: skip
    big = {"kind": "class", "target": "3", "reason": "x" * 5000}
    out = _refused(client, ledger_path, "POST", url, 413, headers=h, json=big)
    assert "larger than 4096" in out["detail"]

    def chunks():  # no Content-Length: counted while it streams
        for _ in range(10):
            yield b" " * 1000

    _refused(client, ledger_path, "POST", url, 413, headers={**h, "Content-Type": "application/json"}, content=chunks())
    _refused(client, ledger_path, "POST", url, 400, headers={**h, "Content-Length": "abc"}, content=b"{}")


@pytest.mark.parametrize("payload", SQL + PATHS)
def test_injection_strings_in_structured_fields_are_refused(client, ledger_path, secrets_, payload):
    h = _h(secrets_["portal"])
    good = {"kind": "class", "target": "2", "reason": "art. 17", "submitter": "user 88"}
    for field, value in [("kind", payload), ("target", payload), ("submitter", payload),
                         ("target", f"label={payload}"), ("target", f"{payload}=1")]:  # fmt: skip
        body = {**good, field: value}
        if value.startswith("label=") or value.endswith("=1"):
            body["kind"] = "group"
        _refused(client, ledger_path, "POST", "/api/v1/requests", (404, 409, 422), headers=h, json=body)
    for kind in ("class", "samples"):
        body = {**good, "kind": kind, "target": payload}
        _refused(client, ledger_path, "POST", "/api/v1/requests", 422, headers=h, json=body)
    # in the URL: ids are integers, and nothing outside the API's routes is served
    _refused(client, ledger_path, "GET", f"/api/v1/requests/{payload}", (404, 422), headers=h)
    _refused(client, ledger_path, "GET", f"/api/v1/requests/{payload}/certificate", (404, 422), headers=h)
    _refused(client, ledger_path, "GET", "/api/v1/requests", 422, headers=h, params={"status": payload})
    _refused(client, ledger_path, "GET", "/api/v1/events", 422, headers=_h(secrets_["dpo"]), params={"after": payload})
    with Ledger(ledger_path, readonly=True) as led:  # the tables are all still there
        assert {"requests", "events", "tokens", "models"} <= {
            r[0] for r in led.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}  # fmt: skip


def test_sample_targets_never_name_a_file_on_the_server(client, ledger_path, secrets_, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("1,2,3")  # `r2u request add --target ids.txt` reads such a file; the API must not
    for target in (str(ids), "ids.txt", "file:///etc/passwd"):
        out = _refused(client, ledger_path, "POST", "/api/v1/requests", 422, headers=_h(secrets_["portal"]),
                       json={"kind": "samples", "target": target, "reason": "x"})  # fmt: skip
        assert "inline, no files" in out["detail"]


def test_free_text_reason_is_stored_verbatim_and_shown_escaped(client, ledger_path, secrets_):
    """A reason is prose: quotes and semicolons are allowed, stored as sent, and escaped on the dashboard."""
    reason = "O'Brien asked; '); DROP TABLE requests; -- <script>alert(1)</script>"
    r = client.post("/api/v1/requests", headers=_h(secrets_["portal"]),
                    json={"kind": "class", "target": "1", "reason": reason})  # fmt: skip
    assert r.status_code == 201 and r.json()["reason"] == reason
    with Ledger(ledger_path, readonly=True) as led:
        assert led.request(r.json()["id"]).reason == reason
    client.cookies.set("r2u_session", secrets_["dpo"])
    page = client.get(f"/requests/{r.json()['id']}").text
    client.cookies.clear()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_certificate_path_outside_the_store_is_never_read(client, ledger_path, secrets_, tmp_path):
    with Ledger(ledger_path) as led:
        row = led.request(1)
        led.conn.execute("UPDATE requests SET certificate = ? WHERE id = ?", ("../../../../../../etc/hostname", 1))
    try:
        out = _refused(client, ledger_path, "GET", "/api/v1/requests/1/certificate", 404, headers=_h(secrets_["dpo"]))
        assert "not in the ledger's store" in out["detail"]
    finally:
        with Ledger(ledger_path) as led:
            led.conn.execute("UPDATE requests SET certificate = ? WHERE id = ?", (row.certificate, 1))


# -- processing, certificates, lineage ------------------------------------------------------------------------
def _wait_done(client, secret: str, ids: list[int], timeout: float = 120.0) -> list[dict]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        rows = [client.get(f"/api/v1/requests/{i}", headers=_h(secret)).json() for i in ids]
        if all(r["status"] in ("done", "failed") for r in rows):
            return rows
        time.sleep(0.5)
    raise AssertionError(f"not served within {timeout} s: {[r['status'] for r in rows]}")


def test_operator_triggers_processing_and_auditor_verifies(client, ledger_path, secrets_):
    pending = [r["id"] for r in client.get("/api/v1/requests", params={"status": "pending"},
                                           headers=_h(secrets_["ops"])).json()]  # fmt: skip
    assert pending
    r = client.post("/api/v1/process", headers=_h(secrets_["ops"]))
    assert r.status_code == 202 and r.json()["started"] is True
    again = client.post("/api/v1/process", headers=_h(secrets_["ops"]))  # one run at a time
    assert again.status_code == 202 and (again.json()["started"] is False or "pid" in again.json()["detail"])
    rows = _wait_done(client, secrets_["ops"], pending)
    assert all(r["status"] == "done" for r in rows), rows
    state = client.get("/api/v1/process", headers=_h(secrets_["dpo"])).json()
    assert state["counts"]["pending"] == 0 and state["counts"]["done"] >= len(pending)
    rid = pending[0]
    cert = client.get(f"/api/v1/requests/{rid}/certificate", headers=_h(secrets_["dpo"]))
    assert cert.status_code == 200 and cert.json()["kind"] == "ready2unlearn.certificate"
    assert cert.json()["request"]["id"] == rid
    ver = client.get(f"/api/v1/requests/{rid}/certificate/verify", headers=_h(secrets_["dpo"])).json()
    assert ver["ok"] is True and any("ledger" in c["name"] or "lineage" in c["name"] for c in ver["checks"])
    _refused(client, ledger_path, "GET", f"/api/v1/requests/{rid}/certificate/verify", (403, 404),
             headers=_h(secrets_["portal"]))  # fmt: skip
    chain = client.get("/api/v1/lineage", headers=_h(secrets_["dpo"])).json()
    assert chain[0]["parent_hash"] is None and chain[-1]["served"] and len(chain) >= 2
    log = client.get("/api/v1/events", headers=_h(secrets_["dpo"]), params={"limit": 1000}).json()
    assert any(e["event"] == "process_triggered" and e["detail"]["token"] == "ops" for e in log)
    assert all(e["detail"].get("token") for e in log if e["event"] in ("submitted", "process_triggered"))


def test_dashboard_needs_a_session_and_the_api_ignores_the_cookie(client, ledger_path, secrets_):
    assert client.get("/", follow_redirects=False).status_code == 303
    bad = client.post("/login", data={"token": "r2u_nope"}, follow_redirects=False)
    assert bad.status_code == 401 and "Invalid or revoked" in bad.text
    ok = client.post("/login", data={"token": secrets_["dpo"]}, follow_redirects=False)
    assert ok.status_code == 303 and "httponly" in ok.headers["set-cookie"].lower()
    assert "samesite=strict" in ok.headers["set-cookie"].lower()
    page = client.get("/")
    assert page.status_code == 200 and "Deletion requests" in page.text and 'id="queue"' in page.text
    assert client.get("/lineage").status_code == 200
    # the cookie is for reading pages; the API wants a bearer token (no cross-site writes)
    _refused(client, ledger_path, "POST", "/api/v1/process", 401)
    client.post("/logout")
    client.cookies.clear()
    assert client.get("/", follow_redirects=False).status_code == 303


def test_openapi_schema_lists_every_route(client):
    schema = client.get("/openapi.json").json()
    paths = set(schema["paths"])
    assert {"/api/v1/requests", "/api/v1/requests/{request_id}", "/api/v1/requests/{request_id}/certificate",
            "/api/v1/requests/{request_id}/certificate/verify", "/api/v1/lineage", "/api/v1/process",
            "/api/v1/events", "/api/v1/whoami"} <= paths  # fmt: skip
    assert "/login" not in paths and client.get("/api/v1/health").json()["status"] == "ok"


def test_unbound_or_missing_ledger_is_a_clear_error(tmp_path):
    from ready2unlearn.errors import R2UError

    with pytest.raises(R2UError, match="does not exist"):
        create_app(ServiceConfig(ledger=str(tmp_path / "none.db")))
    Ledger(tmp_path / "empty.db").close()
    with pytest.raises(R2UError, match="not bound"):
        create_app(ServiceConfig(ledger=str(tmp_path / "empty.db")))
    with pytest.raises(R2UError, match="workers"):
        ServiceConfig(ledger="x", workers=-1)


# -- workers ----------------------------------------------------------------------------------------------------
def _bound_ledger(ckpt: Path, path: Path, *classes: str) -> tuple[list, object, list]:
    """A new ledger bound to ``ckpt`` with one pending class request per entry of ``classes``."""
    with Ledger(path) as led:
        led.bind(ckpt)
        split, forgotten = led.load_split()
        rows = [led.add_request("class", c, "x", "u", split, forgotten) for c in classes]
    return rows, split, forgotten


def test_watch_serves_the_queue_and_takes_over_a_dead_workers_claim(digits_ckpt, tmp_path):
    import socket

    from ready2unlearn.engine.stop import StopConfig
    from ready2unlearn.engine.unlearn_config import load_unlearn_config
    from ready2unlearn.ledger.process import ProcessConfig
    from ready2unlearn.ledger.records import Worker
    from ready2unlearn.ledger.watch import watch

    path = tmp_path / "ledger.db"
    (a, b), _, _ = _bound_ledger(digits_ckpt, path, "3", "5")
    with Ledger(path) as led:
        dead = Worker(socket.gethostname(), 2**22 + 12345, "0")  # above pid_max: never a live process
        assert led.claim(dead).rows[0].id == a.id
    cfg, _ = load_unlearn_config(None, [], method="ga")
    cfg.stop = StopConfig.parse("steps", max_steps=3)
    summary = watch(path, cfg, ProcessConfig(relearn=False, poll_seconds=0.05), poll=0.05, rounds=2)
    assert summary.resumed == [a.id] and sorted(summary.done) == [a.id, b.id]
    with Ledger(path, readonly=True) as led:
        assert [r.status for r in led.requests()] == ["done", "done"]
    with pytest.raises(ValueError, match="poll"):
        watch(path, cfg, poll=0)


def test_worker_pool_restarts_a_killed_worker(ledger_path, tmp_path):
    import os
    import signal

    from ready2unlearn.service import workers

    pool = workers.WorkerPool(ledger_path, 1, WORKER_ARGS, poll=0.2, log_dir=tmp_path)
    pool.start()
    try:
        (pid,) = pool.pids()
        time.sleep(workers.RESTART_DELAY)
        os.kill(pid, signal.SIGKILL)
        deadline = time.time() + 30
        while time.time() < deadline and not (pool.pids() and pool.pids()[0] != pid):
            time.sleep(0.2)
        (status,) = pool.status()
        assert status["alive"] and status["pid"] != pid and status["restarts"] == 1 and status["exits"] == [-9]
        assert pool.trigger() == (False, "1 resident worker(s) serve the queue continuously")
    finally:
        pool.stop()
    assert not any(s["alive"] for s in pool.status())


def test_process_watch_cli_serves_new_requests_and_stops_cleanly_on_sigterm(digits_ckpt, tmp_path):
    """``r2u request process --watch``: keeps serving as requests arrive; SIGTERM ends it with status 0."""
    import signal
    import subprocess
    import sys

    path = tmp_path / "ledger.db"
    (first,), split, forgotten = _bound_ledger(digits_ckpt, path, "3")
    cmd = [sys.executable, "-m", "ready2unlearn.cli.main", "request", "process", "--ledger", str(path), "--watch",
           "--poll", "0.2", "--quiet", "--no-relearn", *WORKER_ARGS]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:

        def status(rid: int) -> str:
            with Ledger(path, readonly=True) as led:
                return led.request(rid).status

        deadline = time.time() + 120
        while status(first.id) != "done" and time.time() < deadline:
            time.sleep(0.2)
        assert status(first.id) == "done"
        with Ledger(path) as led:  # a request that arrives while the worker waits is served too
            second = led.add_request("class", "5", "x", "u", split, forgotten)
        while status(second.id) != "done" and time.time() < deadline:
            time.sleep(0.2)
        assert status(second.id) == "done"
        assert proc.poll() is None  # still watching
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and b"stopped" in out


def test_serve_cli_binds_loopback_and_hands_the_process_args_to_its_workers(ledger_path, monkeypatch):
    import ready2unlearn.cli.serve as serve_cli

    seen = {}
    monkeypatch.setattr(serve_cli.uvicorn, "run", lambda app, host, port, log_level: seen.update(
        app=app, host=host, port=port))  # fmt: skip
    argv = ["serve", "--ledger", str(ledger_path), "--port", "8123", "--workers", "2", "--data-dir", "/data",
            "--", "--method", "ga", "--stop", "steps:5"]  # fmt: skip
    assert main(argv) == 0
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8123
    pool = seen["app"].state.r2u.pool
    assert pool.count == 2 and pool.args == ["--method", "ga", "--stop", "steps:5", "--data-dir", "/data"]
    assert "--watch" in pool._command(watch=True) and "--resume" in pool._command(watch=False)
    assert main(["serve", "--ledger", str(ledger_path), "--workers", "-1"]) == 2  # one-line config error
