"""The deletion service under load and faults: 8 clients, 2 workers, a worker SIGKILLed, the server restarted.

On the loopback only, bounded in count and time:

1. train a small digits MLP (the base model), bind a ledger to it, create one submitter token per client and
   an operator and an auditor token;
2. start ``r2u serve --workers 2`` (each worker ``r2u request process --watch --batch B``) as a child process;
3. 8 client threads submit ``--submissions`` requests in all through the API (``httpx``), each timed: mostly
   single-sample deletions no other submission names, plus deliberate duplicates of the client's own
   earlier requests (must be refused with 409) and invalid ones (a class the data does not have: 422).
   A client whose connection fails (the server is restarting) retries the same body; a retry answered
   "duplicate of #N" for its own earlier target means the first attempt was recorded and its answer lost,
   so it counts as accepted as #N;
4. a monitor samples the queue every 0.5 s; when the first third of the submissions is in, the worker that
   is serving a claim right then is killed with SIGKILL; at two thirds, the server is stopped (SIGTERM) and
   started again;
5. once every submission is answered, wait for the queue to drain, then check from the ledger itself:
   every accepted request is there and done (lost = 0), each has exactly one ``done`` event (exactly once),
   no duplicate or invalid submission was recorded, and every certificate verifies (seals, both model
   files, the ledger's row, event log and lineage).

Unlearning here is GA with a fixed 5-step budget per claim (``--stop steps:5``): the benchmark is about the
service (claims, crashes, restarts, latency), not about forgetting quality, which the readiness and
unlearning benchmarks measure.

Run: ``python benchmarks/ledger_service/run.py`` (about 5 minutes on 2 cores); writes ``results.json``,
``README.md`` and ``timeline.png`` beside this script, the ledger and logs under ``--work``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from matplotlib.figure import Figure

from ready2unlearn.artifacts import now_iso, versions, write_json
from ready2unlearn.ledger import Ledger, verify_certificate
from ready2unlearn.recipes import train as train_recipe

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    """A free TCP port on the loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``r2u serve`` as a child process that can be stopped and started again on the same port."""

    def __init__(self, ledger: Path, port: int, workers: int, worker_args: list[str], log: Path) -> None:
        self.cmd = [sys.executable, "-m", "ready2unlearn.cli.main", "serve", "--ledger", str(ledger), "--port",
                    str(port), "--workers", str(workers), "--poll", "0.2", "--", *worker_args]  # fmt: skip
        self.base = f"http://127.0.0.1:{port}"
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> float:
        """Starts the server; returns the seconds until it answered its health check."""
        t0 = time.perf_counter()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT)
        while time.perf_counter() - t0 < timeout:
            try:
                if httpx.get(f"{self.base}/api/v1/health", timeout=1).status_code == 200:
                    return time.perf_counter() - t0
            except httpx.HTTPError:
                time.sleep(0.1)
        raise SystemExit(f"the server did not come up within {timeout} s; see {self.log}")

    def stop(self) -> None:
        """SIGTERM (workers are stopped and release their claims), then waits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)


def plan_submissions(ids: list[int], clients: int, total: int, dup_share: float, bad_share: float,
                     seed: int) -> list[list[dict[str, Any]]]:  # fmt: skip
    """Each client's submissions in order: ``{"body", "expect"}`` with expect ``new``, ``duplicate`` or ``invalid``."""
    rng = random.Random(seed)
    per = total // clients
    pool = iter(rng.sample(ids, len(ids)))
    plans: list[list[dict[str, Any]]] = []
    for c in range(clients):
        own: list[str] = []
        plan = []
        for k in range(per):
            u = rng.random()
            if own and u < dup_share:
                target, expect = rng.choice(own), "duplicate"
            elif u < dup_share + bad_share:
                target, expect = None, "invalid"
            else:
                target, expect = str(next(pool)), "new"
                own.append(target)
            if target is None:
                body = {"kind": "class", "target": "42", "reason": f"client {c} #{k}: no such class"}
            else:
                body = {"kind": "samples", "target": target, "reason": f"client {c} #{k}", "submitter": f"user-{c}"}
            plan.append({"body": body, "expect": expect})
        plans.append(plan)
    return plans


class Client(threading.Thread):
    """Submits its plan in order; retries a failed connection with the same body."""

    def __init__(self, index: int, base: str, secret: str, plan: list[dict[str, Any]], progress: Counter,
                 rate: float) -> None:  # fmt: skip
        super().__init__(name=f"client-{index}", daemon=True)
        self.index, self.base, self.plan, self.progress, self.rate = index, base, plan, progress, rate
        self.rng = random.Random(index)
        self.headers = {"Authorization": f"Bearer {secret}"}
        self.results: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def run(self) -> None:
        accepted: dict[str, int] = {}  # target → request id, for telling a lost answer from a real duplicate
        with httpx.Client(timeout=60) as http:
            for item in self.plan:
                # Arrivals as a Poisson process (a portal's users do not queue up in lockstep), so the
                # submissions span the whole run and the restart happens while clients are submitting.
                time.sleep(self.rng.expovariate(self.rate))
                body, retries = item["body"], 0
                while True:
                    t0 = time.perf_counter()
                    try:
                        r = http.post(f"{self.base}/api/v1/requests", json=body, headers=self.headers)
                    except httpx.TransportError:
                        retries += 1
                        time.sleep(min(0.05 * 2**retries, 1.0))
                        continue
                    seconds = time.perf_counter() - t0
                    if r.status_code == 503:  # ledger busy past its lock timeout: nothing written, try again
                        retries += 1
                        continue
                    break
                detail = r.json().get("detail") if r.status_code >= 400 else None
                out = {"expect": item["expect"], "status": r.status_code, "seconds": seconds, "retries": retries,
                       "target": body["target"], "detail": detail}  # fmt: skip
                if r.status_code == 201:
                    out["id"] = r.json()["id"]
                    accepted[body["target"]] = out["id"]
                elif r.status_code == 409 and item["expect"] == "new" and retries:
                    # Our first attempt was recorded, its answer lost in the restart: accepted as that id.
                    out["id"] = int(out["detail"].split("#")[1].split()[0])
                    out["recovered"] = True
                self.results.append(out)
                self.progress["done"] += 1


def monitor(base: str, secret: str, stop: threading.Event, samples: list[dict[str, Any]], t0: float) -> None:
    """Samples the queue (counts by status) every 0.5 s while the run lasts."""
    headers = {"Authorization": f"Bearer {secret}"}
    while not stop.wait(0.5):
        try:
            state = httpx.get(f"{base}/api/v1/process", headers=headers, timeout=5).json()
        except (httpx.HTTPError, ValueError):
            samples.append({"t": time.perf_counter() - t0, "down": True})
            continue
        samples.append({"t": time.perf_counter() - t0, **state["counts"]})


def kill_serving_worker(base: str, secret: str, timeout: float = 60.0) -> dict[str, Any]:
    """SIGKILLs the worker that is serving a claim right now (waits for one to be serving)."""
    headers = {"Authorization": f"Bearer {secret}"}
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = httpx.get(f"{base}/api/v1/process", headers=headers, timeout=5).json()
        serving = [r for r in state["running"] if r.get("worker")]
        if serving:
            pid = serving[0]["worker"]["pid"]
            os.kill(pid, signal.SIGKILL)
            return {"pid": pid, "request": serving[0]["id"], "phase": serving[0]["phase"]}
        time.sleep(0.05)
    return {"pid": None, "note": f"no worker was serving within {timeout} s"}


def percentile(xs: list[float], q: float) -> float:
    """The q-th percentile (0–100) by linear interpolation."""
    s = sorted(xs)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def check_ledger(db: Path, accepted: dict[int, str]) -> dict[str, Any]:
    """What the ledger holds after the run: lost, done-once, stray rows and certificate verification."""
    with Ledger(db, readonly=True) as led:
        rows = {r.id: r for r in led.requests()}
        events = led.events()
    done_events = Counter(e["request_id"] for e in events if e["event"] == "done")
    lost = [i for i in accepted if i not in rows or rows[i].status != "done"]
    not_once = [i for i in accepted if done_events.get(i, 0) != 1]
    wrong_target = [i for i, t in accepted.items() if i in rows and rows[i].target != t]
    stray = [r.id for r in rows.values() if r.id not in accepted]
    failures: list[str] = []
    verified = 0
    with Ledger(db, readonly=True) as led:
        store = led.store
    for i in sorted(accepted):
        r = rows.get(i)
        if r is None or not r.certificate:
            failures.append(f"#{i}: no certificate")
            continue
        v = verify_certificate(store / r.certificate, db)
        if v.ok:
            verified += 1
        else:
            failures.append(f"#{i}: " + "; ".join(c.name for c in v.checks if not c.ok))
    return {
        "rows": len(rows), "accepted": len(accepted), "done": sum(r.status == "done" for r in rows.values()),
        "lost": len(lost), "lost_ids": lost[:20], "done_exactly_once": len(accepted) - len(not_once),
        "not_exactly_once": not_once[:20], "wrong_target": wrong_target[:20], "stray_rows": stray[:20],
        "certificates_verified": verified, "certificate_failures": failures[:20],
        "resumed_events": sum(e["event"] == "resumed" for e in events),
        "released_events": sum(e["event"] == "released" for e in events),
        "versions": len({r.child_hash for r in rows.values() if r.child_hash}),
    }  # fmt: skip


def write_plot(samples: list[dict[str, Any]], marks: dict[str, float], path: Path) -> None:
    """Queue depth over time, with the kill and the restart marked."""
    fig = Figure(figsize=(8, 3.2))
    ax = fig.add_subplot()
    up = [s for s in samples if not s.get("down")]
    for key, colour in (("pending", "#f08c00"), ("running", "#1c7ed6"), ("done", "#2b8a3e")):
        ax.plot([s["t"] for s in up], [s.get(key, 0) for s in up], label=key, color=colour)
    for name, t in marks.items():
        ax.axvline(t, ls="--", color="#c92a2a" if "kill" in name else "#495057", lw=1)
        ax.text(t, ax.get_ylim()[1] * 0.95, f" {name}", fontsize=8, va="top")
    ax.set_xlabel("seconds since the first submission")
    ax.set_ylabel("requests")
    ax.legend(frameon=False, fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    fig.savefig(path, dpi=120, bbox_inches="tight")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=Path("runs/ledger_service"))
    p.add_argument("--submissions", type=int, default=1000)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch", type=int, default=25, help="requests served together per claim")
    p.add_argument("--rate", type=float, default=12.0, help="submissions per second, all clients together")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=1200, help="give up draining the queue after this many seconds")
    p.add_argument("--out", type=Path, default=HERE)
    args = p.parse_args(argv)

    work = args.work
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ckpt = work / "digits"
    cfg, _ = train_recipe.load_config("digits-mlp", ["epochs=5", "model.hidden=[64]"])
    train_recipe.run(cfg, ckpt, show_progress=False)
    db = work / "ledger.db"
    with Ledger(db) as led:
        led.bind(ckpt)
        split, _ = led.load_split()
        secrets = {f"client-{c}": led.tokens.add(f"client-{c}", "submitter")[1] for c in range(args.clients)}
        operator = led.tokens.add("ops", "operator")[1]
    ids = split.train.ids.tolist()
    plans = plan_submissions(ids, args.clients, args.submissions, dup_share=0.08, bad_share=0.04, seed=args.seed)

    port = free_port()
    worker_args = ["--method", "ga", "--stop", "steps:5", "--batch", str(args.batch), "--no-relearn"]
    server = Server(db, port, args.workers, worker_args, work / "server.log")
    startup = [server.start()]
    progress: Counter = Counter()
    clients = [Client(c, server.base, secrets[f"client-{c}"], plans[c], progress, args.rate / args.clients)
               for c in range(args.clients)]  # fmt: skip
    samples: list[dict[str, Any]] = []
    stop_monitor = threading.Event()
    t0 = time.perf_counter()
    mon = threading.Thread(target=monitor, args=(server.base, operator, stop_monitor, samples, t0), daemon=True)
    mon.start()
    for c in clients:
        c.start()
    total = sum(len(pl) for pl in plans)
    marks: dict[str, float] = {}
    while progress["done"] < total // 3:
        time.sleep(0.05)
    marks["worker SIGKILL"] = time.perf_counter() - t0
    killed = kill_serving_worker(server.base, operator)
    print(f"killed worker {killed}", flush=True)
    while progress["done"] < 2 * total // 3:
        time.sleep(0.05)
    marks["server restart"] = time.perf_counter() - t0
    server.stop()
    startup.append(server.start())
    print(f"server restarted in {startup[-1]:.1f} s", flush=True)
    for c in clients:
        c.join()
    submitted_s = time.perf_counter() - t0
    headers = {"Authorization": f"Bearer {operator}"}
    deadline = time.time() + args.timeout
    while time.time() < deadline:
        counts = httpx.get(f"{server.base}/api/v1/process", headers=headers, timeout=10).json()["counts"]
        if counts["pending"] == 0 and counts["running"] == 0:
            break
        time.sleep(0.5)
    drained_s = time.perf_counter() - t0
    stop_monitor.set()
    mon.join()
    workers_state = httpx.get(f"{server.base}/api/v1/process", headers=headers, timeout=10).json()["workers"]
    server.stop()

    results = [r for c in clients for r in c.results]
    accepted = {r["id"]: r["target"] for r in results if "id" in r}
    by_expect = {k: Counter(r["status"] for r in results if r["expect"] == k) for k in ("new", "duplicate", "invalid")}
    latencies = [r["seconds"] for r in results if r["status"] == 201]
    check = check_ledger(db, accepted)
    summary = {
        "submissions": len(results), "answered_201": by_expect["new"].get(201, 0),
        "recovered_after_lost_answer": sum(bool(r.get("recovered")) for r in results),
        "accepted": len(accepted), "duplicates_submitted": sum(by_expect["duplicate"].values()),
        "duplicates_rejected_409": by_expect["duplicate"].get(409, 0),
        "invalid_submitted": sum(by_expect["invalid"].values()),
        "invalid_rejected_422": by_expect["invalid"].get(422, 0),
        "unexpected": [r for r in results if (r["expect"] == "new" and "id" not in r)
                       or (r["expect"] == "duplicate" and r["status"] != 409)
                       or (r["expect"] == "invalid" and r["status"] != 422)][:20],
        "retried_connections": sum(r["retries"] > 0 for r in results),
        "latency_p50_ms": 1000 * percentile(latencies, 50), "latency_p95_ms": 1000 * percentile(latencies, 95),
        "latency_max_ms": 1000 * max(latencies) if latencies else None,
        "submission_phase_s": submitted_s, "drained_s": drained_s, "server_startup_s": startup,
        "killed_worker": killed, **check,
    }  # fmt: skip
    ok = (check["lost"] == 0 and check["done_exactly_once"] == len(accepted) and not check["stray_rows"]
          and not check["wrong_target"] and check["certificates_verified"] == len(accepted)
          and not summary["unexpected"]
          and summary["duplicates_rejected_409"] == summary["duplicates_submitted"])  # fmt: skip
    summary["ok"] = ok
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", {
        "created": now_iso(), "versions": versions(), "config": {k: str(v) if isinstance(v, Path) else v
                                                                 for k, v in vars(args).items()},
        "worker_args": worker_args, "summary": summary, "workers": workers_state, "marks": marks,
        "queue_samples": samples,
    })  # fmt: skip
    write_plot(samples, marks, out / "timeline.png")
    (out / "README.md").write_text(report(summary, marks, args, worker_args, samples), encoding="utf-8")
    print(f"{'OK' if ok else 'FAILED'}: accepted {len(accepted)}, lost {check['lost']}, done once "
          f"{check['done_exactly_once']}, verified {check['certificates_verified']}, p50 "
          f"{summary['latency_p50_ms']:.0f} ms, p95 {summary['latency_p95_ms']:.0f} ms")  # fmt: skip
    return 0 if ok else 1


def longest_stall(samples: list[dict[str, Any]]) -> float:
    """The longest time (s) during which the done count did not move while requests were waiting."""
    up = [s for s in samples if not s.get("down")]
    best, since = 0.0, None
    for a, b in itertools.pairwise(up):
        waiting = a.get("pending", 0) + a.get("running", 0) > 0
        if waiting and b.get("done", 0) == a.get("done", 0):
            since = a["t"] if since is None else since
            best = max(best, b["t"] - since)
        else:
            since = None
    return best


def report(s: dict[str, Any], marks: dict[str, float], args: argparse.Namespace, worker_args: list[str],
           samples: list[dict[str, Any]]) -> str:  # fmt: skip
    """The Markdown report."""
    rows = [
        ("submissions", s["submissions"]),
        ("accepted (201, or 409 naming the client's own earlier attempt after a lost answer)",
         f"{s['accepted']} ({s['recovered_after_lost_answer']} recovered)"),
        ("duplicates refused with 409", f"{s['duplicates_rejected_409']} of {s['duplicates_submitted']}"),
        ("invalid refused with 422", f"{s['invalid_rejected_422']} of {s['invalid_submitted']}"),
        ("submissions that retried a failed connection (server restart)", s["retried_connections"]),
        ("**lost** (accepted but missing or not done)", s["lost"]),
        ("done exactly once (one `done` event each)", f"{s['done_exactly_once']} of {s['accepted']}"),
        ("rows no client was told about / wrong target", f"{len(s['stray_rows'])} / {len(s['wrong_target'])}"),
        ("certificates verified (seals, model files, ledger row, event log, lineage)",
         f"{s['certificates_verified']} of {s['accepted']}"),
        ("claims taken over from a dead worker (`resumed` events)", s["resumed_events"]),
        ("claims released on SIGTERM (`released` events)", s["released_events"]),
        ("model versions", s["versions"]),
        ("submission latency p50 / p95 / max (accepted)",
         f"{s['latency_p50_ms']:.0f} / {s['latency_p95_ms']:.0f} / {s['latency_max_ms']:.0f} ms"),
        ("server start-up (first, after restart)", " / ".join(f"{x:.1f} s" for x in s["server_startup_s"])),
        ("all submissions answered / queue drained", f"{s['submission_phase_s']:.0f} s / {s['drained_s']:.0f} s"),
        ("longest time with requests waiting and none finishing", f"{longest_stall(samples):.0f} s"),
    ]  # fmt: skip
    k = s["killed_worker"]
    lines = [
        "# Deletion service under load and faults", "",
        "Generated by `python benchmarks/ledger_service/run.py` (loopback only). "
        f"{args.clients} client threads submitted {s['submissions']} requests through `r2u serve` (Poisson "
        f"arrivals, {args.rate:g}/s in all) while "
        f"{args.workers} resident workers (`r2u request process --watch {' '.join(worker_args)}`) served them on "
        "digits. When a third of the submissions were answered, the worker serving a claim right then was killed "
        f"with SIGKILL (pid {k.get('pid')}, request #{k.get('request')}, phase {k.get('phase')}); at two thirds the "
        "server was stopped with SIGTERM and started again. Latencies are wall-clock times on a shared 2-core "
        "machine, for context: they include the workers' unlearning runs competing for the same cores.", "",
        f"**Verdict: {'passed' if s['ok'] else 'FAILED'}** — lost = {s['lost']}, each accepted request done "
        "exactly once, every certificate verified." if s["ok"] else "**Verdict: FAILED** (see results.json).", "",
        "| measure | value |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows), "",
        "![queue over time](timeline.png)", "",
        "Latency is that of the attempt that was answered; a client that met the restarting server retried the "
        "same body after a back-off (the restart's cost shows in the stall above: the old workers release their "
        "claims, the new server and its workers start, import PyTorch and load the model again).", "",
        "Unlearning uses GA with a fixed budget of 5 steps per claim and batches of "
        f"{args.batch} requests: this benchmark is about the service (claims, crashes, restarts, latency); "
        "forgetting quality is measured by the readiness and unlearning benchmarks.", "",
    ]  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
