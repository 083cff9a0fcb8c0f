"""Serving the queue: claim the next request, unlearn it from the served model, verify, certify, commit.

Launch: ``r2u request process --ledger ledger.db --checkpoint runs/digits --method ga``.

One claim at a time, in submission order, each starting from the model the previous one produced (the
served pointer). Per claim::

    claim (BEGIN IMMEDIATE) ─► check the parent's hash ─► load the parent and its data once, plan once
      ─► unlearn in memory (the recipe's step) ─► write the child into store/tmp ─► judge the run
      ─► verify the in-memory child (the evaluation harness) ─► rename the child into models/<sha256>
      ─► certificates ─► one transaction: register child + mark done + move the served pointer

A SISA model is served by the SISA recipe instead (exact shard retraining from its slice checkpoints).

Only a deletion that happened is certified. A run that missed its stop target (the budget ran out first),
diverged (and was rolled back), or left the model unchanged without its target having held from the start
marks its request ``failed`` with the reason in the event log; it writes no certificate, registers no
version and leaves the served pointer where it was (``r2u request retry`` puts it back in the queue).

A ``kill -9`` anywhere before the last transaction leaves the request ``running`` and at worst an
unregistered folder, which nothing reads; ``process --resume`` removes it and restarts the request from
its parent. The seed does not depend on the attempt, so a restarted request normally produces the very
same model file.
"""

from __future__ import annotations

import copy
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ready2unlearn.artifacts import CARD, read_card, save_checkpoint, versions, write_json
from ready2unlearn.attacks.relearn import RelearnConfig
from ready2unlearn.checkpoint import Checkpoint, load_checkpoint
from ready2unlearn.config import check, to_dict
from ready2unlearn.data.base import Split
from ready2unlearn.data.request import DeletionRequest, RequestViews
from ready2unlearn.data.sequence import plan_requests
from ready2unlearn.engine.unlearn_config import UnlearnConfig, load_unlearn_config
from ready2unlearn.errors import R2UError, RequestError
from ready2unlearn.ledger.certificate import (
    OUTCOME_ALREADY_MET,
    OUTCOME_EXACT,
    OUTCOME_FORGOTTEN,
    SCHEMA,
    write_certificate,
)
from ready2unlearn.ledger.store import CorruptModel, Heartbeat, Ledger, LedgerError, RequestRow, Worker
from ready2unlearn.recipes import sisa as sisa_recipe
from ready2unlearn.recipes import unlearn as unlearn_recipe
from ready2unlearn.recipes.evaluate import check_reference, evaluate_checkpoint, evaluate_model
from ready2unlearn.recipes.train import TrainConfig
from ready2unlearn.runtime import resolve_device
from ready2unlearn.task import accuracy_and_loss
from ready2unlearn.unlearn.sisa_checkpoint import is_sisa


class NotHonoured(LedgerError):
    """The unlearning run ended without doing what the request asks: its request fails, nothing is certified."""


@dataclass
class ProcessConfig:
    """How ``r2u request process`` serves the queue.

    Attributes:
        batch: Pending requests served together by one unlearning run (1 = one run per request).
        resume: Take over requests left ``running`` by a worker that died, restarting them from the parent.
        force: With ``resume``: take over running requests even if their worker looks alive.
        wait: When another live worker is serving, wait for it and go on with the rest of the queue
            (instead of returning at once).
        poll_seconds: How often a waiting worker looks again.
        max_claims: Stop after this many claims (``None``: until the queue is empty).
        relearn: Run the relearning attack for the certificate.
        relearn_steps: Fine-tuning steps of that attack.
        reference: A retrained model checkpoint to compare with (used for the request it was made for).
        retrain_reference: Retrain a gold model for every request (slow; gives the gap to retrained).
        stale_after: Seconds without heartbeat after which a worker on another host counts as dead.
        heartbeat_seconds: How often a worker refreshes its heartbeat.
        data_dir: Overrides the data directory recorded in the base checkpoint.
        show_progress: Progress bars.
        seed: Seed of the verification attacks.
    """

    batch: int = 1
    resume: bool = False
    force: bool = False
    wait: bool = True
    poll_seconds: float = 0.5
    max_claims: int | None = None
    relearn: bool = True
    relearn_steps: int = 30
    reference: str | None = None
    retrain_reference: bool = False
    stale_after: float = 300.0
    heartbeat_seconds: float = 2.0
    data_dir: str | None = None
    show_progress: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        check(self.batch >= 1, f"batch must be at least 1, got {self.batch}")
        check(not self.force or self.resume, "--force only makes sense with --resume")
        check(self.poll_seconds > 0 and self.heartbeat_seconds > 0 and self.stale_after > 0,
              "poll_seconds, heartbeat_seconds and stale_after must be positive")  # fmt: skip
        check(self.max_claims is None or self.max_claims >= 1, "max_claims must be at least 1")
        check(self.relearn_steps >= 1, "relearn_steps must be at least 1")
        check(not (self.reference and self.retrain_reference), "give --reference or --retrain-reference, not both")


@dataclass
class ProcessSummary:
    """What one ``process`` call did."""

    done: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    resumed: list[int] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    certificates: list[str] = field(default_factory=list)
    orphans_removed: int = 0
    waited_seconds: float = 0.0


Log = Callable[[str], None]


def process(
    ledger_path: str | Path,
    cfg: UnlearnConfig,
    pcfg: ProcessConfig | None = None,
    *,
    checkpoint: str | Path | None = None,
    log: Log | None = None,
) -> ProcessSummary:
    """Serves every pending request of a ledger, in order, each producing a new model version.

    Args:
        ledger_path: The ledger database.
        cfg: Unlearning method, stop rule and seed (as for ``r2u unlearn``).
        pcfg: Serving options.
        checkpoint: The base checkpoint: binds an unbound ledger; otherwise it must be one of its versions.
        log: Called with one line per event worth telling (the CLI prints them).

    Returns:
        A :class:`ProcessSummary`.

    Raises:
        R2UError: If a request is stuck under a dead worker (run with ``resume``), a model file is corrupt
            (the request goes back to pending), or the ledger is not bound.
    """
    pcfg = pcfg or ProcessConfig()
    say = log or (lambda _msg: None)
    worker = Worker.current()
    summary = ProcessSummary()
    if checkpoint is None and not Path(ledger_path).exists():
        # Nothing to serve and nothing to bind: do not leave an empty ledger file behind.
        raise LedgerError(f"{ledger_path} does not exist; give --checkpoint DIR to create a ledger bound to that model")
    with Ledger(ledger_path) as ledger:
        if checkpoint is not None:
            ledger.bind(checkpoint)
        if not ledger.bound:
            raise LedgerError(f"{ledger_path} is not bound to a model yet: pass --checkpoint DIR")
        claims = 0
        while pcfg.max_claims is None or claims < pcfg.max_claims:
            claim = ledger.claim(worker, batch=pcfg.batch, resume=pcfg.resume, force=pcfg.force,
                                 stale_after=pcfg.stale_after)  # fmt: skip
            if claim.state == "idle":
                break
            if claim.state == "wait":
                if not pcfg.wait:
                    say(f"request {claim.rows[0].describe()} is being served by {_who(claim.rows[0])}; not waiting")
                    break
                time.sleep(pcfg.poll_seconds)
                summary.waited_seconds += pcfg.poll_seconds
                continue
            if claim.state == "blocked":
                r = claim.rows[0]
                raise LedgerError(
                    f"request {r.describe()} is still 'running' under {_who(r)}, which is no longer alive: "
                    "run `r2u request process --resume` to restart it from its parent model"
                )
            claims += 1
            ids = [r.id for r in claim.rows]
            if claim.resumed:
                summary.resumed += ids
                summary.orphans_removed += len(ledger.clean_orphans())
                say(f"resuming {', '.join(r.describe() for r in claim.rows)} (its worker died)")
            # Our own claims count as alive only while we serve them (a crashed in-process attempt's do not).
            with ledger.serving(ids):
                try:
                    with Heartbeat(ledger, ids, worker, pcfg.heartbeat_seconds):
                        child, certs = _serve(ledger, claim.rows, worker, cfg, pcfg, say)
                    summary.done += ids
                    summary.certificates += certs
                    if child not in summary.versions:
                        summary.versions.append(child)
                except CorruptModel as e:
                    ledger.release(ids, worker, str(e))
                    raise
                except (RequestError, NotHonoured) as e:
                    # The request no longer fits what the model holds (cannot happen for requests validated in
                    # queue order, but a hand-edited ledger can do it), or the run did not forget it: it fails,
                    # the served model stays, and the queue goes on from there.
                    ledger.fail(ids, worker, str(e))
                    _drop_certificates(ledger, ids)
                    summary.failed.update(dict.fromkeys(ids, str(e)))
                    say(f"failed {', '.join(f'#{i}' for i in ids)}: {e}")
                except KeyboardInterrupt:
                    ledger.release(ids, worker, "interrupted")
                    _drop_certificates(ledger, ids)
                    raise
                except Exception as e:
                    ledger.fail(ids, worker, f"{type(e).__name__}: {e}")
                    _drop_certificates(ledger, ids)
                    raise
    return summary


def _who(row: RequestRow) -> str:
    return row.worker.describe() if row.worker else "an unknown worker"


def _drop_certificates(ledger: Ledger, ids: Sequence[int]) -> None:
    """Removes certificates of requests that did not end done (written before a failure, or by a dead attempt).

    Called only after ``fail`` / ``release`` succeeded, i.e. while the requests were still ours: a
    certificate without a done request must not lie around where it could pass for proof.
    """
    for i in ids:
        d = ledger.certificate_dir(i)
        if d.exists():
            shutil.rmtree(d, ignore_errors=True)


def judge(result: dict[str, Any], rule: str, last: dict[str, Any], parent_hash: str, child_hash: str) -> str:
    """Whether an unlearning run did what its request needs; the certificate's ``outcome`` when it did.

    Args:
        result: The card's ``unlearn.result`` (steps, stop_reason, reached, target, restored).
        rule: The stop rule (``steps``, ``forget_acc``, ``forget_loss``).
        last: The last row of the unlearning curve (forget accuracy / loss where the run ended).
        parent_hash: The model the run started from.
        child_hash: The model it produced.

    Returns:
        :data:`OUTCOME_FORGOTTEN`, or :data:`OUTCOME_ALREADY_MET` when the target held before any step.

    Raises:
        NotHonoured: If the run diverged, missed its stop target, or changed nothing for no reason.
    """
    steps, reason, target = result.get("steps"), str(result.get("stop_reason")), result.get("target")
    if reason.startswith("diverged") or result.get("restored"):
        where = "its parent" if child_hash == parent_hash else "its last good state"
        raise NotHonoured(f"unlearning {reason}; the model was rolled back to {where}")
    if target is not None and result.get("reached") is not True:
        if rule == "forget_loss":
            got = f"forget_loss {last.get('forget_loss', float('nan')):.3f} < target {target:.4g}"
        else:
            got = f"forget_acc {last.get('forget_acc', float('nan')):.3f} > target {target:.4g}"
        raise NotHonoured(f"stop target not reached: {got} after {steps} step(s) ({reason})")
    if child_hash == parent_hash:
        if target is not None and steps == 0 and reason == "target reached":
            return OUTCOME_ALREADY_MET
        raise NotHonoured(f"the unlearning run left the model unchanged ({steps} step(s), {reason}): "
                          "nothing was forgotten")  # fmt: skip
    return OUTCOME_FORGOTTEN


def _combined(plans: Sequence[RequestViews]) -> tuple[DeletionRequest, dict[int, list[int]]]:
    """One ``samples`` request for a batch: the union of what each planned request forgets."""
    ids = sorted({int(i) for v in plans for i in v.forget.ids.tolist()})
    per = {i: v.forget.ids.tolist() for i, v in enumerate(plans)}
    return DeletionRequest.for_samples(ids), per


def _reference_for(
    parent: Checkpoint,
    split: Split,
    train_cfg: TrainConfig,
    req: DeletionRequest,
    views: RequestViews,
    cfg: UnlearnConfig,
    pcfg: ProcessConfig,
    device: torch.device,
    work: Path,
) -> tuple[str | None, nn.Module | None, str]:
    """The retrained model to compare with for ``req`` (its path, the model, or ``None``) and a note on it.

    ``--retrain-reference`` retrains in memory, from a copy of the parent, as ``r2u unlearn --method retrain``
    would for the same request and seed; the path recorded for it names the (never written) work folder.
    """
    if pcfg.retrain_reference:
        rcfg, _ = load_unlearn_config(None, [f"seed={cfg.seed}", f"device={cfg.device}"], method="retrain")
        model = copy.deepcopy(parent.model)
        unlearn_recipe.unlearn_planned(model, parent.model_config, split, train_cfg, req, views, rcfg, device=device,
                                       parent_card=parent.card, parent_dir=parent.path,
                                       show_progress=pcfg.show_progress)  # fmt: skip
        return str(work / "reference"), model, "retrained from scratch on what remains, for this request"
    if pcfg.reference:
        served = (read_card(pcfg.reference).get("unlearn") or {}).get("request")
        if served is not None and DeletionRequest.from_dict(served) == req:
            return pcfg.reference, load_checkpoint(pcfg.reference, device=str(device)).model, f"given: {pcfg.reference}"
        return None, None, f"--reference {pcfg.reference} was made for another request"
    return None, None, "none given (pass --reference or --retrain-reference for the gap to a retrained model)"


def _relearn_config(pcfg: ProcessConfig, forget_size: int) -> RelearnConfig | None:
    """The relearning attack a certificate reports (on half the forget set when it is small, none below 2)."""
    if not pcfg.relearn or forget_size < 2:
        return None  # below 2 nothing would be left to score the attack on
    sets = ["forget-50%"] if forget_size <= 10 else ["forget-10"]
    return RelearnConfig(sets=sets, steps=pcfg.relearn_steps, seed=pcfg.seed)


def _serve(
    ledger: Ledger, rows: list[RequestRow], worker: Worker, cfg: UnlearnConfig, pcfg: ProcessConfig, say: Log
) -> tuple[str, list[str]]:
    ids = [r.id for r in rows]
    parent = ledger.model(rows[0].parent_hash or "")
    parent_dir = ledger.check_model_file(parent)  # corrupt parent → CorruptModel, request back to pending
    parent_card = read_card(parent_dir)
    exact = is_sisa(parent_card)  # a SISA model is served by exact shard retraining, whatever the method
    if cfg.stop.target == "reference" and not exact and not (pcfg.retrain_reference or pcfg.reference):
        raise R2UError("stop target 'reference' needs --reference or --retrain-reference")
    if exact:
        return _serve_sisa(ledger, rows, worker, cfg, pcfg, say, parent, parent_dir, parent_card)

    # One load of the parent and of its data, one plan; unlearning and verification run on them in memory.
    ledger.set_phase(ids, worker, "unlearning")
    device = resolve_device(cfg.device)
    ck = load_checkpoint(parent_dir, device=str(device))
    split, train_cfg = unlearn_recipe.load_matching_split(ck.card, pcfg.data_dir)
    forgotten = (ck.card.get("lineage") or {}).get("forgotten_ids", [])
    plans = plan_requests(split, [r.request for r in rows], forgotten)
    per_request: dict[int, list[int]] = {}
    if len(rows) > 1:
        req, per = _combined(plans)
        per_request = {ids[i]: v for i, v in per.items()}
        (views,) = plan_requests(split, [req], forgotten)
    else:
        req, views = rows[0].request, plans[0]
    work = ledger.tmp_dir(f"req-{ids[0]:05d}-")
    say(f"serving {', '.join(r.describe() for r in rows)} from model {parent.hash[:12]} with {cfg.method.name}")
    reference, ref_model, ref_note = _reference_for(ck, split, train_cfg, req, views, cfg, pcfg, device, work)
    model = ck.model
    card, _, _, _ = unlearn_recipe.unlearn_planned(
        model, ck.model_config, split, train_cfg, req, views, cfg, device=device, parent_card=ck.card,
        parent_dir=parent_dir, reference_model=ref_model, reference=reference, show_progress=pcfg.show_progress,
    )  # fmt: skip
    card["ledger"] = {"requests": ids, "batch": len(ids) > 1, "parent_sha256": parent.hash}
    card = save_checkpoint(model, work / "model", card)  # the child's only write
    try:
        outcome = judge(card["unlearn"]["result"], cfg.stop.rule, (card["unlearn"]["curve"] or [{}])[-1], parent.hash,
                        card["weights_sha256"])  # fmt: skip
    except NotHonoured:
        shutil.rmtree(work, ignore_errors=True)  # nothing of this run is kept: no version, no certificate
        raise

    ledger.set_phase(ids, worker, "verifying")
    if reference is not None and not pcfg.retrain_reference:
        check_reference(read_card(reference), card, req, reference)
    verification = evaluate_model(model, card, views, split.test, checkpoint=work / "model", reference=reference,
                                  reference_model=ref_model, relearn=_relearn_config(pcfg, len(views.forget)),
                                  seed=pcfg.seed)  # fmt: skip
    verification["reference_note"] = ref_note
    if per_request:
        pos = {int(i): p for p, i in enumerate(split.train.ids.tolist())}
        verification["per_request"] = {
            str(rid): {"forget_size": len(fids),
                       "forget_acc": accuracy_and_loss(model, split.train.subset(
                           np.array([pos[i] for i in fids], dtype=np.int64)))[0]}
            for rid, fids in per_request.items()
        }  # fmt: skip
    return _commit(ledger, rows, worker, cfg, say, parent, parent_dir, work, card, verification, per_request, outcome)


def _serve_sisa(
    ledger: Ledger,
    rows: list[RequestRow],
    worker: Worker,
    cfg: UnlearnConfig,
    pcfg: ProcessConfig,
    say: Log,
    parent: Any,
    parent_dir: Path,
    parent_card: dict[str, Any],
) -> tuple[str, list[str]]:
    """Exact unlearning of a SISA model: the SISA recipe retrains the affected shards (it loads its own slices)."""
    ids = [r.id for r in rows]
    reqs = [r.request for r in rows]
    per_request: dict[int, list[int]] = {}
    split = None
    if len(rows) > 1:
        split, _ = unlearn_recipe.load_matching_split(parent_card, pcfg.data_dir)
        forgotten = (parent_card.get("lineage") or {}).get("forgotten_ids", [])
        req, per = _combined(plan_requests(split, reqs, forgotten))
        per_request = {ids[i]: v for i, v in per.items()}
    else:
        req = reqs[0]
    work = ledger.tmp_dir(f"req-{ids[0]:05d}-")
    served = ", ".join(r.describe() for r in rows)
    say(f"serving {served} from model {parent.hash[:12]} with exact SISA shard retraining")

    ledger.set_phase(ids, worker, "unlearning")
    reference = pcfg.reference if pcfg.reference else None
    ref_note = ("SISA: the served model is the one SISA training gives without the deleted rows"
                + (f"; compared with {pcfg.reference}" if reference else ""))  # fmt: skip
    (card,) = sisa_recipe.unlearn(parent_dir, [req], work / "model", data_dir=pcfg.data_dir,
                                  device=cfg.device, show_progress=pcfg.show_progress)  # fmt: skip
    card["ledger"] = {"requests": ids, "batch": len(ids) > 1, "parent_sha256": parent.hash}
    write_json(work / "model" / CARD, card)  # the weights (and their hash) are unchanged

    ledger.set_phase(ids, worker, "verifying")
    relearn = _relearn_config(pcfg, card["unlearn"]["views"]["forget"])
    verification = evaluate_checkpoint(work / "model", None, reference, relearn, pcfg.data_dir, pcfg.seed)
    verification["reference_note"] = ref_note
    if per_request and split is not None:
        child_model = load_checkpoint(work / "model").model
        pos = {int(i): p for p, i in enumerate(split.train.ids.tolist())}
        verification["per_request"] = {
            str(rid): {"forget_size": len(fids),
                       "forget_acc": accuracy_and_loss(child_model, split.train.subset(
                           np.array([pos[i] for i in fids], dtype=np.int64)))[0]}
            for rid, fids in per_request.items()
        }  # fmt: skip
    return _commit(ledger, rows, worker, cfg, say, parent, parent_dir, work, card, verification, per_request,
                   OUTCOME_EXACT)  # fmt: skip


def _commit(
    ledger: Ledger,
    rows: list[RequestRow],
    worker: Worker,
    cfg: UnlearnConfig,
    say: Log,
    parent: Any,
    parent_dir: Path,
    work: Path,
    card: dict[str, Any],
    verification: dict[str, Any],
    per_request: dict[int, list[int]],
    outcome: str,
) -> tuple[str, list[str]]:
    """Moves the verified child (``work/model``) into the store, writes the certificates, commits the version."""
    ids = [r.id for r in rows]
    res = card["unlearn"]["result"]
    # Move the finished child into place *before* registering it: a crash after this rename leaves an
    # unregistered folder (cleaned by --resume), never a registered model without its file.
    child_hash = card["weights_sha256"]
    child_rel = f"models/{child_hash}"
    if child_hash != parent.hash:
        final = ledger.store / child_rel
        if final.exists():  # left by an earlier attempt that died before committing: same content?
            shutil.rmtree(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        (work / "model").rename(final)
    else:
        child_rel = parent.path
    child_dir = ledger.store / child_rel

    ledger.set_phase(ids, worker, "certifying")
    certs: dict[int, str] = {}
    for r in rows:
        cert_dir = ledger.certificate_dir(r.id)
        cert = _certificate(r, ids, per_request, parent, parent_dir, child_hash, child_dir, card, cfg, verification,
                            cert_dir, outcome)  # fmt: skip
        certs[r.id] = str(write_certificate(cert_dir, cert).relative_to(ledger.store))
    metrics = {**card.get("metrics", {}), "verification": verification.get("metrics", {})}
    ledger.complete(ids, worker, child_hash, child_rel, {"unlearn": to_dict(cfg), "requests": ids}, metrics, certs)
    shutil.rmtree(work, ignore_errors=True)
    say(
        f"done {', '.join(f'#{i}' for i in ids)}: model {child_hash[:12]} ({res['stop_reason']}, {res['steps']} steps;"
        f" UA {verification['metrics'].get('forget_acc', float('nan')):.3f})"
    )
    return child_hash, [str(ledger.store / c) for c in certs.values()]


def _certificate(
    row: RequestRow,
    batch: list[int],
    per_request: dict[int, list[int]],
    parent: Any,
    parent_dir: Path,
    child_hash: str,
    child_dir: Path,
    card: dict[str, Any],
    cfg: UnlearnConfig,
    verification: dict[str, Any],
    cert_dir: Path,
    outcome: str,
) -> dict[str, Any]:
    """The certificate content for one request (sealed and written by the caller).

    ``unlearning.reached`` is true by construction (:func:`judge` let the run through): the target was met,
    or for the ``steps`` rule every step of the budget was taken, or a one-shot method was applied.
    """

    def rel(p: Path) -> str:
        return os.path.relpath(p, cert_dir)

    forget_size = len(per_request[row.id]) if per_request else card["unlearn"]["views"]["forget"]
    res = card["unlearn"]["result"]
    exact = card["unlearn"].get("exact_text")  # SISA: which shards were retrained, from which slice
    last = (card["unlearn"].get("curve") or [{}])[-1]
    return {
        "kind": "ready2unlearn.certificate",
        "schema": SCHEMA,
        "created": card["created"],
        "outcome": outcome,
        "request": {
            "id": row.id, "kind": row.kind, "target": row.target, "spec": row.spec, "submitter": row.submitter,
            "reason": row.reason, "created": row.created, "attempts": row.attempts,
            "batch": batch if len(batch) > 1 else [], "forget_size": forget_size,
        },
        "models": {
            "parent": {"sha256": parent.hash, "file": rel(parent_dir / "model.safetensors")},
            "child": {"sha256": child_hash, "file": rel(child_dir / "model.safetensors"),
                      "unchanged": child_hash == parent.hash},
        },
        "method": ({"name": "sisa", "config": read_card(child_dir)["sisa"]["config"]} if exact
                   else {"name": cfg.method.name, "config": to_dict(cfg)}),
        "unlearning": {
            **{k: res.get(k) for k in ("steps", "grad_evals", "seconds", "stop_reason", "target", "restored")},
            "rule": "exact" if exact else cfg.stop.rule, "reached": True,
            "final": {k: last.get(k) for k in ("forget_acc", "forget_loss", "retain_acc")},
            **({"exact": exact, "retrained": card["unlearn"]["retrained"]} if exact else {}),
        },
        "data": card.get("data", {}).get("fingerprints"),
        "seed": card.get("seed"),
        "verification": {k: v for k, v in verification.items() if k not in ("checkpoint", "versions", "created")},
        "versions": versions(),
    }  # fmt: skip
