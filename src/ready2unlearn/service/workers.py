"""The workers beside the server: ``r2u request process --watch`` processes, supervised.

Serving runs in separate processes, not in the server's threads: an unlearning run holds the CPU (and the
GIL) for seconds to minutes, and the API must keep answering meanwhile. Each worker claims requests through
the ledger's exactly-once claims, so the server never hands work out itself and any number of workers, here
or started by hand elsewhere, can serve one ledger. A worker that dies (``kill -9``) is started again after
a pause; its claim is taken over by whichever worker looks next (``--watch`` resumes dead workers' claims).
With no resident workers, :meth:`WorkerPool.trigger` starts one ``r2u request process`` run that serves
the queue and exits.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

#: Seconds before a dead resident worker is started again (a worker that dies at once must not spin).
RESTART_DELAY = 2.0


@dataclass
class _Slot:
    """One worker process and its history."""

    index: int
    proc: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None
    started: float = 0.0
    restarts: int = 0
    exits: list[int] = field(default_factory=list)


class WorkerPool:
    """Resident ``--watch`` workers (restarted when they die) and one-shot runs started on demand.

    Args:
        ledger: The ledger database.
        count: Resident workers (0: processing runs only when triggered).
        args: Extra ``r2u request process`` arguments (method, stop rule, overrides).
        poll: Seconds between a resident worker's looks at an empty queue.
        log_dir: Where each worker's output goes (``worker-<i>.log``, appended).
    """

    def __init__(self, ledger: str | Path, count: int, args: list[str], poll: float, log_dir: Path) -> None:
        self.ledger, self.count, self.args, self.poll = str(ledger), count, list(args), poll
        self.log_dir = Path(log_dir)
        self.slots = [_Slot(i) for i in range(count)]
        self.oneshot: _Slot | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._supervisor: threading.Thread | None = None

    def _command(self, watch: bool) -> list[str]:
        cmd = [sys.executable, "-m", "ready2unlearn.cli.main", "request", "process", "--ledger", self.ledger, "--quiet"]
        if watch:
            cmd += ["--watch", "--poll", str(self.poll)]
        else:
            cmd += ["--resume"]  # a one-shot run also finishes what a dead worker left
        return cmd + self.args

    def _spawn(self, slot: _Slot, watch: bool) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        name = f"worker-{slot.index}.log" if watch else "process.log"
        if slot.log is None:
            slot.log = (self.log_dir / name).open("ab")
        slot.proc = subprocess.Popen(self._command(watch), stdout=slot.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)  # fmt: skip
        slot.started = time.time()

    def start(self) -> None:
        """Starts the resident workers and the thread that restarts them."""
        with self._lock:
            for slot in self.slots:
                self._spawn(slot, watch=True)
        if self.slots:
            self._supervisor = threading.Thread(target=self._supervise, name="r2u-worker-supervisor", daemon=True)
            self._supervisor.start()

    def _supervise(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                for slot in self.slots:
                    code = slot.proc.poll() if slot.proc is not None else None
                    if code is None or self._stop.is_set():
                        continue
                    if time.time() - slot.started < RESTART_DELAY:
                        continue  # died at once: wait, so a worker that cannot start does not spin
                    slot.exits.append(code)
                    slot.restarts += 1
                    self._spawn(slot, watch=True)

    def trigger(self) -> tuple[bool, str]:
        """Makes sure the queue gets served: ``(started a run?, why)``."""
        with self._lock:
            if self.slots:
                return False, f"{len(self.slots)} resident worker(s) serve the queue continuously"
            if self.oneshot is not None and self.oneshot.proc is not None and self.oneshot.proc.poll() is None:
                return False, f"a processing run is already in progress (pid {self.oneshot.proc.pid})"
            self.oneshot = self.oneshot or _Slot(0)
            self._spawn(self.oneshot, watch=False)
            return True, f"started a processing run (pid {self.oneshot.proc.pid})"  # type: ignore[union-attr]

    def status(self) -> list[dict[str, Any]]:
        """One entry per worker process this server started."""
        with self._lock:
            slots = [*self.slots, *([self.oneshot] if self.oneshot is not None else [])]
            out = []
            for s in slots:
                proc = s.proc
                code = proc.poll() if proc is not None else None
                out.append({"kind": "resident" if s in self.slots else "one-shot", "index": s.index,
                            "pid": proc.pid if proc else None, "alive": proc is not None and code is None,
                            "exit_code": code, "restarts": s.restarts, "exits": list(s.exits)})  # fmt: skip
            return out

    def pids(self) -> list[int]:
        """Pids of the live resident workers (the load benchmark kills one)."""
        return [s["pid"] for s in self.status() if s["alive"] and s["kind"] == "resident"]

    def stop(self, timeout: float = 15.0) -> None:
        """Asks every worker to stop (SIGTERM: a claim in progress goes back to pending), then kills stragglers."""
        self._stop.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=2)
        with self._lock:
            slots = [*self.slots, *([self.oneshot] if self.oneshot is not None else [])]
            for s in slots:
                if s.proc is not None and s.proc.poll() is None:
                    s.proc.terminate()
            deadline = time.time() + timeout
            for s in slots:
                if s.proc is None:
                    continue
                try:
                    s.proc.wait(timeout=max(0.1, deadline - time.time()))
                except subprocess.TimeoutExpired:
                    s.proc.kill()
                    s.proc.wait()
                if s.log is not None:
                    s.log.close()
                    s.log = None
