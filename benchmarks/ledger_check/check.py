"""The ledger's acceptance check: 20 mixed requests, two workers at once, one killed mid-run, resume, audit.

On scikit-learn's embedded digits (no files needed):

1. train a base MLP and bind a fresh ledger to it;
2. submit 20 mixed requests with ``r2u request add`` (class and sample-id requests, some of them invalid:
   unknown class, unknown / test-split ids, duplicates, ids already covered, a group column digits lacks);
3. start two ``r2u request process`` workers at the same time (separate processes);
4. once a few requests are done, ``kill -9`` whichever worker is unlearning at that moment;
5. ``r2u request process --resume`` to finish the queue;
6. check: every valid request done exactly once, every invalid one rejected, the lineage a single chain,
   every certificate verifies (alone and against the ledger), and a tampered copy of one fails;
7. two requests the configuration cannot honour — a step budget too small to reach the stop target, and a
   diverging run (``--lr inf``) — must end ``failed`` with no certificate, no new version and the served
   model unchanged (``process`` exits 2); ``r2u request retry`` and a working ``process`` then serve each
   exactly once, with certificates that verify.

Re-run with ``python benchmarks/ledger_check/check.py`` (about two minutes on 2 cores); writes
``results.json`` and ``README.md`` beside this script, and the ledger itself under ``--work``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ready2unlearn.artifacts import now_iso, versions, write_json
from ready2unlearn.cli.main import main as r2u_main
from ready2unlearn.ledger import Ledger, verify_certificate
from ready2unlearn.recipes import train as train_recipe

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"


# GA until the forget accuracy matches the model retrained without the request (DESIGN §4 stop rule); the
# retrained model is also the certificate's reference for the gap.
# The budget must let GA actually reach that target: a run that exhausts it first is not a deletion (its request
# fails, uncertified), and with 300 steps a class or two stopped a few samples short.
PROCESS_ARGS = ("--method", "ga", "--stop", "forget_acc:reference", "--budget", "1000", "--retrain-reference")
# Step 7: configurations that cannot honour a request (each on a fresh class request).
NOT_HONOURED = {
    "budget too small for the stop target": ("1", ("--method", "ga", "--stop", "forget_acc:0.01", "--budget", "1")),
    "diverging run (--lr inf)": ("3", ("--method", "ga", "--lr", "inf", "--stop", "steps:50")),
}
# ... and the working one they are retried with: the check's own, with a larger step size. On a model that has
# already forgotten several classes, lr 3e-4 could not bring class 3 to the retrained model's forget accuracy
# within the budget (measured: 0.918 after 1000 steps) — that request would itself fail, uncertified.
RETRY_ARGS = (*PROCESS_ARGS, "--lr", "1e-3")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "200"}  # fmt: skip


def r2u(*argv: str) -> subprocess.CompletedProcess:
    """``r2u ARGV`` as its own process (exit status and stderr as a script would see them)."""
    return subprocess.run([sys.executable, "-m", "ready2unlearn.cli.main", *argv], env=_env(), capture_output=True,
                          text=True)  # fmt: skip


def not_honoured(db: Path) -> tuple[dict[str, bool], list[dict[str, Any]]]:
    """Step 7: requests served with a configuration that cannot honour them, then retried with one that can."""
    with Ledger(db, readonly=True) as led:
        served, models = led.served_hash(), len(led.models())
    cases: list[dict[str, Any]] = []
    for name, (target, args) in NOT_HONOURED.items():
        add = r2u("request", "add", "--ledger", str(db), "--kind", "class", "--target", target, "--reason",
                  f"check: {name}", "--submitter", "auditor")  # fmt: skip
        with Ledger(db, readonly=True) as led:
            rid = led.requests()[-1].id
        run = r2u("request", "process", "--ledger", str(db), "-q", "--no-relearn", *args)
        with Ledger(db, readonly=True) as led:
            row = led.request(rid)
            cases.append({
                "case": name, "id": rid, "args": list(args), "add_exit": add.returncode, "process_exit": run.returncode,
                "stderr": run.stderr.strip().splitlines(), "status": row.status, "note": row.note,
                "failed_event": [e["detail"].get("error") for e in led.events(rid) if e["event"] == "failed"],
                "certificate_dir": led.certificate_dir(rid).exists(),
                "served_unchanged": led.served_hash() == served, "versions_unchanged": len(led.models()) == models,
            })  # fmt: skip
    ids = [str(c["id"]) for c in cases]
    retry = r2u("request", "retry", "--ledger", str(db), *ids)
    rerun = r2u("request", "process", "--ledger", str(db), "-q", *RETRY_ARGS)
    with Ledger(db, readonly=True) as led:
        for c in cases:
            row = led.request(c["id"])
            events = [e["event"] for e in led.events(c["id"])]
            cert = led.store / row.certificate if row.certificate else None
            c.update(retry_exit=retry.returncode, rerun_exit=rerun.returncode, status_after_retry=row.status,
                     attempts=row.attempts, done_events=events.count("done"), retried_events=events.count("retried"),
                     certificate_ok=bool(cert) and verify_certificate(cert).ok,
                     certificate_ok_with_ledger=bool(cert) and verify_certificate(cert, db).ok,
                     outcome=json.loads(cert.read_text()).get("outcome") if cert else None)  # fmt: skip
    checks = {
        "not honoured: `process` exits 2 with one line naming the request": all(
            c["process_exit"] == 2 and len(c["stderr"]) == 1 and f"#{c['id']}:" in c["stderr"][0] for c in cases),
        "not honoured: the request ends failed, the reason in its event log": all(
            c["status"] == "failed" and c["note"] and c["failed_event"] == [c["note"]] for c in cases),
        "not honoured: no certificate, no new version, served model unchanged": all(
            not c["certificate_dir"] and c["served_unchanged"] and c["versions_unchanged"] for c in cases),
        "retry + a working process serve each exactly once": all(
            c["retry_exit"] == 0 and c["rerun_exit"] == 0 and c["status_after_retry"] == "done"
            and c["done_events"] == 1 and c["retried_events"] == 1 for c in cases),
        "their certificates verify, alone and with --ledger": all(
            c["certificate_ok"] and c["certificate_ok_with_ledger"] for c in cases),
    }  # fmt: skip
    return checks, cases


def worker(db: Path, log: Path, *extra: str) -> subprocess.Popen:
    """Starts ``r2u request process`` as its own process, output to ``log``."""
    cmd = [sys.executable, "-m", "ready2unlearn.cli.main", "request", "process", "--ledger", str(db), "-q",
           *PROCESS_ARGS, *extra]  # fmt: skip
    return subprocess.Popen(cmd, env=_env(), stdout=log.open("w"), stderr=subprocess.STDOUT)


def build_requests(led: Ledger) -> list[dict[str, Any]]:
    """20 requests: 13 valid (5 class, 8 sample-id) and 7 invalid, interleaved."""
    split, _ = led.load_split()
    rng = np.random.default_rng(0)
    ids, labels = split.train.ids.numpy(), split.train.y.numpy()
    classes = [0, 2, 5, 7, 9]
    others = ids[~np.isin(labels, classes)]
    picks = rng.choice(others, size=8 * 6, replace=False).reshape(8, 6)
    samples = [",".join(map(str, sorted(p.tolist()))) for p in picks]
    of_class_5 = ",".join(map(str, ids[labels == 5][:3].tolist()))
    valid = [("class", str(c)) for c in classes] + [("samples", s) for s in samples]
    invalid = [
        ("class", "12", "unknown class"),
        ("samples", "99999,100000", "unknown ids"),
        ("samples", ",".join(map(str, split.test.ids[:3].tolist())), "ids of the test split, not training"),
        ("class", "5", "duplicate of an earlier class request"),
        ("samples", samples[0], "duplicate of an earlier samples request"),
        ("samples", of_class_5, "ids already covered by the class-5 request"),
        ("group", "user=7", "digits has no group column"),
    ]
    out: list[dict[str, Any]] = []
    order = [*valid[:6], invalid[0], valid[6], invalid[1], invalid[3], valid[7], invalid[2], valid[8],
             invalid[4], valid[9], invalid[5], valid[10], invalid[6], valid[11], valid[12]]  # fmt: skip
    for item in order:
        kind, target = item[0], item[1]
        out.append({"kind": kind, "target": target, "valid": len(item) == 2,
                    "why_invalid": item[2] if len(item) == 3 else None})  # fmt: skip
    return out


def main() -> None:
    """Runs the check, prints a summary, writes results.json and README.md."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="runs/ledger_check", help="where the ledger and models go (not committed)")
    p.add_argument("--out", default=str(HERE), help="where results.json and README.md go")
    p.add_argument("--kill-after", type=int, default=3, help="kill a worker once this many requests are done")
    args = p.parse_args()
    torch.set_num_threads(1)
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    t0 = time.perf_counter()

    # 1. base model + ledger
    cfg, _ = train_recipe.load_config("digits-mlp", ["epochs=15", "model.hidden=[64]"])
    base_card = train_recipe.run(cfg, work / "base", show_progress=False)
    db = work / "ledger.db"

    # 2. 20 mixed requests through the CLI (in-process: same code path as the console script)
    with Ledger(db) as led:
        led.bind(work / "base")
        reqs = build_requests(led)
    codes = []
    for i, r in enumerate(reqs):
        argv = ["request", "add", "--ledger", str(db), "--kind", r["kind"], "--target", r["target"],
                "--reason", f"check request {i + 1}", "--submitter", f"user{i % 4}"]  # fmt: skip
        codes.append(r2u_main(argv))
    t_submit = time.perf_counter()

    # 3. two workers at once; 4. kill -9 the one that is unlearning after a few requests are done
    w = [worker(db, work / f"worker{i}.log") for i in range(2)]
    killed: dict[str, Any] = {}
    with Ledger(db) as led:
        deadline = time.monotonic() + 300
        while not killed and time.monotonic() < deadline:
            done = len(led.requests("done"))
            running = led.requests("running")
            if done >= args.kill_after and running and running[0].phase == "unlearning":
                victim = next((x for x in w if x.pid == running[0].worker.pid), None)
                if victim is not None:
                    os.kill(victim.pid, signal.SIGKILL)
                    victim.wait()
                    killed = {"pid": victim.pid, "worker": w.index(victim), "request": running[0].id,
                              "phase": running[0].phase, "done_before_kill": done}  # fmt: skip
            if all(x.poll() is not None for x in w):
                break
            time.sleep(0.02)
    for x in w:
        try:
            x.wait(timeout=300)
        except subprocess.TimeoutExpired:
            x.kill()
    worker_codes = [x.returncode for x in w]
    t_workers = time.perf_counter()
    with Ledger(db) as led:
        after_kill = {s: len(led.requests(s)) for s in ("pending", "running", "done", "rejected", "failed")}
        stuck = led.requests("running")
        killed["left_running"] = [r.id for r in stuck]
        killed["models_registered_for_it"] = sum(1 for m in led.models() if m.created_by in killed["left_running"])

    # 5. resume
    res = subprocess.run([sys.executable, "-m", "ready2unlearn.cli.main", "request", "process", "--ledger", str(db),
                          "-q", "--resume", *PROCESS_ARGS], env=_env(), capture_output=True, text=True)  # fmt: skip
    (work / "resume.log").write_text(res.stdout + res.stderr)
    t_resume = time.perf_counter()

    # 6. audit
    with Ledger(db) as led:
        rows = led.requests()
        models = led.models()
        chain = led.lineage()
        events = led.events()
        store = led.store
        served = led.served_hash()
    checks: dict[str, bool] = {}
    per_request = []
    for spec, row in zip(reqs, rows, strict=True):
        n_done = sum(1 for e in events if e["request_id"] == row.id and e["event"] == "done")
        entry = {"id": row.id, "kind": row.kind, "target": row.target[:40], "valid": spec["valid"],
                 "status": row.status, "note": row.note, "attempts": row.attempts, "done_events": n_done,
                 "child": (row.child_hash or "")[:12], "child_full": row.child_hash,
                 "unchanged": bool(row.child_hash) and row.child_hash == row.parent_hash}  # fmt: skip
        if row.certificate:
            cert = json.loads((store / row.certificate).read_text())
            ver = cert["verification"]
            entry.update(certificate_ok=verify_certificate(store / row.certificate).ok,
                         certificate_ok_with_ledger=verify_certificate(store / row.certificate, db).ok,
                         outcome=cert.get("outcome"),
                         UA=ver["metrics"].get("forget_acc"), TA=ver["metrics"].get("test_retain_acc"),
                         UA_retrained=ver.get("reference", {}).get("metrics", {}).get("forget_acc"),
                         avg_gap=ver.get("gaps", {}).get("avg_gap"), mia_auc=ver["metrics"].get("mia_auc"),
                         relearn_UA=next(iter(ver.get("relearn", {}).values()), {}).get("final_forget_acc"),
                         steps=cert["unlearning"]["steps"])  # fmt: skip
        per_request.append(entry)
    valid = [e for e in per_request if e["valid"]]
    invalid = [e for e in per_request if not e["valid"]]
    checks["every valid request done exactly once"] = all(
        e["status"] == "done" and e["done_events"] == 1 for e in valid)  # fmt: skip
    checks["every invalid request rejected"] = all(e["status"] == "rejected" for e in invalid)
    checks["add exit status 0 for valid, 2 for invalid"] = all(
        c == (0 if r["valid"] else 2) for c, r in zip(codes, reqs, strict=True))  # fmt: skip
    # A request whose stop target already holds (e.g. sample ids the retrained model also gets right) leaves the
    # weights unchanged: the same content hash, so no new version; every other one adds exactly one version.
    creators = [e["id"] for e in valid if not e["unchanged"]]
    checks["one new version per request that changed the model"] = len(models) == 1 + len(creators)
    parents = [m.parent_hash for m in models if m.parent_hash]
    checks["lineage is a single chain (base → served, no branch)"] = (
        len(chain) == len(models) and len(set(parents)) == len(parents) and chain[-1].hash == served
        and [v.created_by for v in chain[1:]] == creators
    )  # fmt: skip
    checks["every certificate verifies"] = all(e.get("certificate_ok") for e in valid)
    checks["every certificate verifies against the ledger (--ledger)"] = all(
        e.get("certificate_ok_with_ledger") for e in valid)  # fmt: skip
    checks["the killed request was left running, nothing registered for it"] = bool(
        killed.get("left_running")) and killed.get("models_registered_for_it") == 0  # fmt: skip
    checks["no orphan folder left in the store"] = (
        sorted(p.name for p in (store / "models").iterdir()) == sorted(m.hash for m in models)
        and not any((store / "tmp").iterdir())
    )  # fmt: skip
    # tamper with a copy of one certificate (claim a lower forget accuracy) and verify it again; pick one whose
    # forget accuracy is above 0, so that the edit changes something
    first = next(r for e, r in zip(per_request, rows, strict=True) if r.certificate and (e.get("UA") or 0) > 0)
    src = (store / first.certificate).parent
    tampered_dir = src.parent / (src.name + "-tampered")
    shutil.copytree(src, tampered_dir, dirs_exist_ok=True)
    cert = json.loads((tampered_dir / "certificate.json").read_text())
    cert["verification"]["metrics"]["forget_acc"] = 0.0
    (tampered_dir / "certificate.json").write_text(json.dumps(cert, indent=2))
    tampered = verify_certificate(tampered_dir / "certificate.json")
    checks["a tampered certificate fails verification"] = not tampered.ok
    cli_verify = r2u_main(["certificate", "verify", str(tampered_dir / "certificate.json")])
    checks["`r2u certificate verify` exits 1 on the tampered copy"] = cli_verify == 1
    shutil.rmtree(tampered_dir)  # not part of the ledger

    # 7. requests the configuration cannot honour
    t_audit = time.perf_counter()
    honour_checks, honour_cases = not_honoured(db)
    checks.update(honour_checks)
    total = time.perf_counter() - t0

    uas = [e["UA"] for e in valid if e.get("UA") is not None]
    gaps = [e["avg_gap"] for e in valid if e.get("avg_gap") is not None]
    results = {
        "created": now_iso(),
        "versions": versions(),
        "base_test_accuracy": base_card["metrics"]["test_accuracy"],
        "requests": {"submitted": len(reqs), "valid": len(valid), "invalid": len(invalid)},
        "workers": {"exit_codes": worker_codes, "after_kill": after_kill, "killed": killed},
        "resume": {"exit_code": res.returncode, "output": res.stdout.strip().splitlines()[-1:]},
        "lineage_length": len(chain),
        "checks": checks,
        "all_passed": all(checks.values()),
        "summary": {
            "UA_mean": float(np.mean(uas)),
            "UA_max": float(np.max(uas)),
            "avg_gap_mean": float(np.mean(gaps)) if gaps else None,
            "avg_gap_max": float(np.max(gaps)) if gaps else None,
        },
        "seconds": {
            "submit_20": round(t_submit - t0, 1),
            "two_workers_until_kill_and_exit": round(t_workers - t_submit, 1),
            "resume": round(t_resume - t_workers, 1),
            "not_honoured_and_retry": round(total - (t_audit - t0), 1),
            "total": round(total, 1),
        },
        "per_request": per_request,
        "tampered_checks": [c.__dict__ for c in tampered.checks],
        "not_honoured": honour_cases,
        "retry_args": list(RETRY_ARGS),
    }
    out = Path(args.out)
    write_json(out / "results.json", results)
    write_readme(out / "README.md", results)
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    print(f"{'all checks passed' if results['all_passed'] else 'SOME CHECKS FAILED'} in {total:.0f} s; "
          f"wrote {out / 'results.json'}")  # fmt: skip
    sys.exit(0 if results["all_passed"] else 1)


def write_readme(path: Path, r: dict[str, Any]) -> None:
    """A short Markdown account of the measured outcome."""
    k = r["workers"]["killed"]
    lines = [
        "# Ledger check (digits)",
        "",
        "`python benchmarks/ledger_check/check.py` — the issue's acceptance scenario on scikit-learn's embedded "
        "digits: 20 mixed requests, two `r2u request process` workers at once (GA until the forget accuracy is "
        "at most that of a model retrained without the request — retrained per request, also the certificate's "
        "reference for the gap; step budget 1000), one worker `kill -9`-ed while unlearning, then `process "
        "--resume`; then two requests the configuration cannot honour (step 7). Measured "
        f"{r['created'][:10]}, 2 CPU cores shared with other work, one torch thread per worker.",
        "",
        f"- requests: {r['requests']['submitted']} submitted, {r['requests']['valid']} valid, "
        f"{r['requests']['invalid']} invalid (unknown class, unknown ids, test-split ids, two duplicates, ids "
        "already covered by a class request, a group column digits does not have)",
        f"- kill: worker {k.get('worker')} (pid {k.get('pid')}) killed while request #{k.get('request')} was in phase "
        f"`{k.get('phase')}`, after {k.get('done_before_kill')} requests were done; the other worker then stopped "
        f"(exit codes {r['workers']['exit_codes']}) with {r['workers']['after_kill']}",
        f"- resume: exit {r['resume']['exit_code']}; lineage {r['lineage_length']} versions (base + one per request "
        "that changed the model)",
        f"- certificates: UA mean {r['summary']['UA_mean']:.3f} (max {r['summary']['UA_max']:.3f}); Avg. Gap to the "
        f"retrained model mean {r['summary']['avg_gap_mean']:.3f} (max {r['summary']['avg_gap_max']:.3f})",
        f"- time: {r['seconds']}",
        "",
        "Reading the table: *model unchanged* means the stop target already held before any step — the sample "
        "ids' forget accuracy was already at most the retrained model's (which, never having seen them, still "
        "classifies ordinary samples correctly) — so the weights, and therefore the content hash, stay the same: "
        "the request is done with child = parent and no new version. The killed request shows `attempts` 2. "
        "Relearning brings the forgotten classes back (UA after relearn near 1): gradient ascent hides more than "
        "it removes on this MLP, which is what the certificate is there to show. The step budget is 1000 because "
        "with the earlier 300, two class requests (0 and 9) stopped at UA 0.049 and 0.069 above the retrained "
        "model's 0.000 and were certified all the same; such a run now fails, uncertified (issue 17).",
        "",
        "| check | result |",
        "|---|---|",
        *(f"| {name} | {'pass' if ok else '**FAIL**'} |" for name, ok in r["checks"].items()),
        "",
        "| # | kind | target | status | attempts | UA | UA retrained | Avg. Gap | MIA AUC | UA after relearn | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    f = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    for e in r["per_request"]:
        note = e["note"] or ("model unchanged" if e.get("unchanged") else "")
        lines.append(f"| {e['id']} | {e['kind']} | {e['target']} | {e['status']} | {e['attempts']} | {f(e.get('UA'))} "
                     f"| {f(e.get('UA_retrained'))} | {f(e.get('avg_gap'))} | {f(e.get('mia_auc'))} "
                     f"| {f(e.get('relearn_UA'))} | {note} |")  # fmt: skip
    lines += [
        "",
        "Step 7 — requests the configuration cannot honour, each a fresh class request served with the flags shown, "
        f"then `r2u request retry` and `r2u request process {' '.join(r['retry_args'])}`:",
        "",
        "| # | case | process exit | status | reason recorded (event log) | certificate | after retry | attempts "
        "| done events | certificate verifies (alone / --ledger) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in r["not_honoured"]:
        lines.append(f"| {c['id']} | {c['case']}: `{' '.join(c['args'])}` | {c['process_exit']} | {c['status']} "
                     f"| {c['note']} | {'written' if c['certificate_dir'] else 'none'} | {c['status_after_retry']} "
                     f"| {c['attempts']} | {c['done_events']} | {c['certificate_ok']} / "
                     f"{c['certificate_ok_with_ledger']} |")  # fmt: skip
    lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
