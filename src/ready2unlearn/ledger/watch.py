"""A long-running worker: serve the queue, then wait for new requests, until told to stop.

Launch: ``r2u request process --ledger ledger.db --watch`` (``r2u serve --workers N`` starts N of them).

Each round is one :func:`~ready2unlearn.ledger.process.process` call with ``resume`` on: a request left
``running`` by a worker that died (``kill -9``, a crash, a reboot) is taken over and restarted from its
parent, while a live worker's claim is waited for. So any number of watchers can run side by side and each
request is still served exactly once (the ledger's ``BEGIN IMMEDIATE`` claims), and killing one of them
loses nothing. A request that fails is marked ``failed`` by ``process`` (no certificate) and the watcher
goes on with the rest of the queue.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path

from ready2unlearn.engine.unlearn_config import UnlearnConfig
from ready2unlearn.errors import R2UError
from ready2unlearn.ledger.process import ProcessConfig, ProcessSummary, process


def watch(
    ledger_path: str | Path,
    cfg: UnlearnConfig,
    pcfg: ProcessConfig | None = None,
    *,
    checkpoint: str | Path | None = None,
    poll: float = 1.0,
    stop: threading.Event | None = None,
    rounds: int | None = None,
    log: Callable[[str], None] | None = None,
) -> ProcessSummary:
    """Serves the queue round after round until ``stop`` is set (or ``rounds`` rounds have run).

    Args:
        ledger_path: The ledger database.
        cfg: Unlearning method, stop rule and seed.
        pcfg: Serving options (``resume`` and ``wait`` are forced on: a watcher takes over dead workers'
            claims and waits for live ones).
        checkpoint: Binds an unbound ledger on the first round (as ``process``).
        poll: Seconds to sleep when the queue was empty.
        stop: Set it (from another thread or a signal handler) to end after the current round.
        rounds: Stop after this many rounds (``None``: until ``stop``).
        log: Called with one line per event worth telling.

    Returns:
        What every round did, merged.

    Raises:
        ValueError: If ``poll`` is not positive.
    """
    if poll <= 0:
        raise ValueError(f"poll must be positive, got {poll}")
    say = log or (lambda _msg: None)
    pcfg = dataclasses.replace(pcfg or ProcessConfig(), resume=True, wait=True, max_claims=None)
    stop = stop or threading.Event()
    total = ProcessSummary()
    n = 0
    while not stop.is_set() and (rounds is None or n < rounds):
        n += 1
        try:
            got = process(ledger_path, cfg, pcfg, checkpoint=checkpoint, log=say)
        except R2UError as e:
            # One request's trouble (a corrupt file put back to pending, a failed run) must not end the
            # worker: the failure is in the ledger; say it and look again after a pause.
            say(f"round {n}: {e}")
            stop.wait(poll)
            continue
        checkpoint = None  # bound now
        for name in ("done", "resumed", "versions", "certificates"):
            getattr(total, name).extend(getattr(got, name))
        total.failed.update(got.failed)
        total.orphans_removed += got.orphans_removed
        total.waited_seconds += got.waited_seconds
        if not (got.done or got.failed):
            stop.wait(poll)
    return total
