"""Unlearning recipe: trained checkpoint + deletion request(s) → unlearned checkpoint(s) with lineage.

Launch: ``r2u unlearn --checkpoint runs/digits --request class:3 --method ga --stop forget_acc:chance
--out runs/digits-ga``.

:func:`unlearn_model` is the engine: one loop that draws forget/retain batches, asks the registered
method for its loss, steps the optimiser, and checks the stop rule and divergence every ``eval_every``
steps. Evaluation time is kept out of the reported unlearning time, so time ratios compare the methods,
not the bookkeeping. :func:`run` adds checkpoints, data checks, sequential requests and the card.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ready2unlearn.artifacts import clear_run_files, now_iso, prepare_out_dir, remove_created, save_checkpoint, versions
from ready2unlearn.checkpoint import load_checkpoint
from ready2unlearn.config import from_dict, to_dict
from ready2unlearn.data import byo
from ready2unlearn.data.base import ArrayDataset, Split
from ready2unlearn.data.registry import load_split
from ready2unlearn.data.request import DeletionRequest, RequestViews
from ready2unlearn.errors import ConfigError, DataError, R2UError, RequestError
from ready2unlearn.models.registry import build_model
from ready2unlearn.progress import progress_bar
from ready2unlearn.runtime import resolve_device, seed_everything
from ready2unlearn.task import ClassificationTask, accuracy_and_loss
from ready2unlearn.unlearn.base import Batch, Context, UnlearningMethod, build_method
from ready2unlearn.unlearn.config import UnlearnConfig


@dataclass
class UnlearnResult:
    """What an unlearning run did and where it ended.

    Attributes:
        steps: Optimiser steps taken (for ``retrain``: its training steps).
        grad_evals: Per-sample gradient evaluations (samples in every backward pass).
        seconds: Wall-clock of the unlearning updates alone (evaluation for the stop rule excluded).
        eval_seconds: Wall-clock spent evaluating the stop rule.
        stop_reason: ``target reached``, ``budget exhausted``, ``applied`` or ``diverged: ...``.
        reached: Whether the stop target was met (``None`` for rules without a target).
        target: The numeric stop target, if any.
        restored: A divergence check restored the last good state.
        curve: Per evaluation: step, forget accuracy / loss, retain accuracy (the unlearning curve).
        method_stats: Whatever a non-iterative method reported.
    """

    steps: int
    grad_evals: int
    seconds: float
    eval_seconds: float
    stop_reason: str
    reached: bool | None
    target: float | None
    restored: bool = False
    curve: list[dict[str, float]] = field(default_factory=list)
    method_stats: dict[str, Any] = field(default_factory=dict)


def _cycle(data: ArrayDataset, batch_size: int, gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless shuffled mini-batches (reshuffled every pass)."""
    while True:
        yield from data.batches(batch_size, shuffle=True, generator=gen)


def build_unlearn_optimizer(model: nn.Module, method: UnlearningMethod) -> torch.optim.Optimizer:
    """SGD or Adam over the trainable parameters, from the method config."""
    cfg = method.config
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def _params_finite(model: nn.Module) -> bool:
    return all(torch.isfinite(p).all() for p in model.parameters())


def unlearn_model(
    model: nn.Module,
    views: RequestViews,
    method: UnlearningMethod,
    cfg: UnlearnConfig,
    ctx: Context,
    *,
    reference_value: float | None = None,
    show_progress: bool = False,
) -> UnlearnResult:
    """Runs ``method`` on ``model`` (in place) until the stop rule, the budget or divergence ends it.

    Args:
        model: Any classifier module (only parameters with ``requires_grad`` are updated).
        views: The request's forget / retain / test views.
        method: A built method (``build_method``).
        cfg: Method, stop rule and seed.
        ctx: Task, RNG, device, and (for ``retrain``) the original training config.
        reference_value: The retrained model's forget accuracy (or loss), for ``target: reference``.
        show_progress: Show a progress bar.

    Returns:
        An :class:`UnlearnResult`; the model holds the final (or last good) state.
    """
    # Dropout and any stochastic method draw from the global RNG: seed it from the config, in a forked
    # RNG state so the caller's random stream is left as it was.
    with torch.random.fork_rng(devices=[ctx.device] if ctx.device.type == "cuda" else []):
        torch.manual_seed(cfg.seed)
        return _unlearn_loop(model, views, method, cfg, ctx, reference_value, show_progress)


def _unlearn_loop(
    model: nn.Module,
    views: RequestViews,
    method: UnlearningMethod,
    cfg: UnlearnConfig,
    ctx: Context,
    reference_value: float | None,
    show_progress: bool,
) -> UnlearnResult:
    stop = cfg.stop
    target = stop.resolve_target(ctx.task.num_classes, reference_value)
    device = ctx.device
    forget = views.forget.to(device)
    retain = views.retain.to(device)
    eval_pos = torch.randperm(len(retain), generator=ctx.generator)[: stop.retain_eval_size].sort().values
    retain_eval = retain.subset(eval_pos.numpy())

    curve: list[dict[str, float]] = []
    eval_seconds = 0.0

    def evaluate(step: int) -> dict[str, float]:
        nonlocal eval_seconds
        t = time.perf_counter()
        fa, fl = ctx.task.accuracy_and_loss(model, forget)
        ra, _ = ctx.task.accuracy_and_loss(model, retain_eval)
        eval_seconds += time.perf_counter() - t
        row = {"step": step, "forget_acc": fa, "forget_loss": fl, "retain_acc": ra}
        curve.append(row)
        return row

    def result(steps: int, grad_evals: int, seconds: float, reason: str, restored: bool = False,
               stats: dict[str, Any] | None = None) -> UnlearnResult:  # fmt: skip
        last = curve[-1]
        reached = None if target is None else stop.reached(target, last["forget_acc"], last["forget_loss"])
        return UnlearnResult(steps, grad_evals, seconds, eval_seconds, reason, reached, target, restored, curve,
                             stats or {})  # fmt: skip

    bs = method.config.batch_size
    budget = stop.max_steps
    if stop.epochs is not None:
        budget = max(1, math.ceil(stop.epochs * method.primary_size(views) / bs))
    method.budget = budget
    method.prepare(model, views, ctx)
    start = evaluate(0)
    if not method.iterative:
        t0 = time.perf_counter()
        stats = method.apply(model, views, ctx)
        seconds = time.perf_counter() - t0
        evaluate(int(stats.get("steps", 0)))
        return result(int(stats.get("steps", 0)), int(stats.get("grad_evals", 0)), seconds, "applied", stats=stats)
    if stop.reached(target, start["forget_acc"], start["forget_loss"]):
        return result(0, 0, 0.0, "target reached")

    optimizer = build_unlearn_optimizer(model, method)
    forget_batches = _cycle(forget, bs, ctx.generator) if method.uses_forget else None
    retain_bs = method.config.retain_batch_size or bs
    retain_batches = _cycle(retain, retain_bs, ctx.generator) if method.uses_retain else None
    good_state = copy.deepcopy(model.state_dict())
    steps = grad_evals = 0
    seconds = 0.0
    reason = "budget exhausted"
    restored = False
    method.train_mode(model)
    with progress_bar(show_progress) as bar:
        task = bar.add_task(f"unlearn ({method.config.name})", total=budget)
        for step in range(budget):
            t0 = time.perf_counter()
            batch = Batch()
            if forget_batches is not None:
                batch.forget_x, batch.forget_y = next(forget_batches)
            if retain_batches is not None:
                batch.retain_x, batch.retain_y = next(retain_batches)
            loss, _ = method.loss(model, batch, step=step)
            if not torch.isfinite(loss):
                model.load_state_dict(good_state)
                reason, restored = f"diverged: non-finite loss at step {step + 1}", True
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            method.after_backward(model)
            optimizer.step()
            method.after_step(model)
            seconds += time.perf_counter() - t0
            steps += 1
            grad_evals += batch.size()
            bar.update(task, advance=1)
            if steps % stop.eval_every and steps != budget:
                continue
            row = evaluate(steps)
            method.train_mode(model)
            if not _params_finite(model) or not math.isfinite(row["forget_loss"]):
                model.load_state_dict(good_state)
                reason, restored = f"diverged: non-finite parameters or outputs at step {steps}", True
                break
            if stop.retain_floor is not None and row["retain_acc"] < stop.retain_floor:
                model.load_state_dict(good_state)
                reason, restored = (f"diverged: retain accuracy {row['retain_acc']:.3f} below the floor "
                                    f"{stop.retain_floor} at step {steps}", True)  # fmt: skip
                break
            good_state = copy.deepcopy(model.state_dict())
            if stop.reached(target, row["forget_acc"], row["forget_loss"]):
                reason = "target reached"
                break
    if restored:
        evaluate(steps)
    model.eval()
    return result(steps, grad_evals, seconds, reason, restored)


def reference_value(reference: nn.Module | None, views: RequestViews, rule: str) -> float | None:
    """The retrained model's value that a ``reference`` stop target compares against.

    Its forget accuracy, or its forget loss for the ``forget_loss`` rule; ``None`` without a reference model.
    """
    if reference is None:
        return None
    return accuracy_and_loss(reference, views.forget)[1 if rule == "forget_loss" else 0]


def view_metrics(model: nn.Module, views: RequestViews, test: ArrayDataset) -> dict[str, float]:
    """UA / RA / TA-style accuracies and losses of ``model`` on a request's views (NaN for empty views)."""
    out: dict[str, float] = {}
    for name, data in (("forget", views.forget), ("retain", views.retain), ("test", test),
                       ("test_retain", views.test_retain), ("test_forget", views.test_forget)):  # fmt: skip
        if len(data):
            out[f"{name}_accuracy"], out[f"{name}_loss"] = accuracy_and_loss(model, data)
    return out


def _remaining(train: ArrayDataset, forgotten: Sequence[int]) -> ArrayDataset:
    """Training rows whose ids have not been forgotten by an earlier request."""
    if not forgotten:
        return train
    keep = np.flatnonzero(~np.isin(train.ids.numpy(), np.asarray(forgotten, dtype=np.int64)))
    return train.subset(keep)


def load_matching_split(card: dict[str, Any], data_dir: str | None = None) -> tuple[Split, Any]:
    """Loads the dataset a checkpoint was trained on and checks its fingerprints against the card.

    Your own data (``csv:PATH``...) is read again from the path the card records, after checking that the
    file's sha256 is the one it was trained on.

    Raises:
        DataError: If the data differs from what the checkpoint was trained on.
    """
    from ready2unlearn.recipes.train import TrainConfig

    byo.check_unchanged(card.get("data", {}).get("meta") or {})
    cfg_data = dict(card["config"])
    if data_dir is not None:
        cfg_data["data"] = {**cfg_data["data"], "data_dir": data_dir}
    train_cfg = from_dict(TrainConfig, cfg_data)
    split = load_split(train_cfg.data)
    expected = card.get("data", {}).get("fingerprints")
    if expected and split.fingerprints() != expected:
        raise DataError(
            f"the checkpoint was trained on different data than {train_cfg.data.name!r} gives now "
            f"(fingerprint {expected['train']} vs {split.fingerprints()['train']}): use the same files and split"
        )
    return split, train_cfg


def plan_requests(
    split: Split, requests: Sequence[DeletionRequest], already_forgotten: Sequence[int]
) -> list[RequestViews]:
    """Resolves each request against the data left after the previous ones (validates the whole sequence).

    Raises:
        RequestError: If any request does not fit; nothing has been run yet.
    """
    forgotten = list(already_forgotten)
    plans = []
    for i, req in enumerate(requests):
        train = _remaining(split.train, forgotten)
        try:
            views = req.resolve(train, split.test, split.spec.num_classes)
        except RequestError as e:
            where = f"request {i + 1} ({req.describe()})" if len(requests) > 1 else f"request {req.describe()}"
            already = " (some may have been forgotten by an earlier request)" if forgotten else ""
            raise RequestError(f"{where}: {e}{already}") from None
        plans.append(views)
        forgotten += views.forget.ids.tolist()
    return plans


def run(
    checkpoint: str | Path,
    requests: Sequence[DeletionRequest],
    cfg: UnlearnConfig,
    out_dir: str | Path,
    *,
    reference: str | Path | None = None,
    data_dir: str | None = None,
    show_progress: bool = True,
    log: Any = None,
    overwrite: bool = False,
) -> list[dict[str, Any]]:
    """Serves ``requests`` in order, writing one checkpoint per request with lineage.

    One request writes into ``out_dir``; several write ``out_dir/req-01``, ``req-02``..., each the
    parent of the next. ``out_dir`` and every request are validated before any unlearning starts, so a
    bad one writes nothing; a run that fails later with a user-facing error removes what it created.

    Args:
        checkpoint: Parent checkpoint directory.
        requests: Deletion requests, applied in order.
        cfg: Method, stop rule, seed, device.
        out_dir: Output directory.
        reference: A retrained model's checkpoint (for ``target: reference`` and reporting). With several
            requests the same reference serves each of them: give one retrained for the whole sequence.
        data_dir: Overrides the data directory recorded in the card.
        show_progress: Show progress bars.
        log: Optional callback ``log(request, views, result, metrics_before, metrics_after, out_dir)``
            called after each request (the CLI prints its summary from it).
        overwrite: ``out_dir`` may hold an earlier run: its files are replaced once this run succeeds
            (without it, a non-empty ``out_dir`` is refused).

    Returns:
        The cards written, in order.
    """
    if not requests:
        raise RequestError("no deletion request given")
    out = Path(out_dir)
    for other, flag in ((checkpoint, "--checkpoint"), (reference, "--reference")):
        if other is not None and Path(other).exists() and out.exists() and out.resolve() == Path(other).resolve():
            raise ConfigError(f"--out {out} is the {flag}: write the unlearned model somewhere else")
    created = prepare_out_dir(out, overwrite=overwrite)
    try:
        return _serve(checkpoint, requests, cfg, out, reference, data_dir, show_progress, log, overwrite)
    except R2UError:
        if created is not None:
            remove_created(out, created)
        elif not overwrite:
            clear_run_files(out)  # the folder was empty: take back the requests a sequence already wrote
        raise


def _serve(
    checkpoint: str | Path,
    requests: Sequence[DeletionRequest],
    cfg: UnlearnConfig,
    out: Path,
    reference: str | Path | None,
    data_dir: str | None,
    show_progress: bool,
    log: Any,
    overwrite: bool,
) -> list[dict[str, Any]]:
    device = resolve_device(cfg.device)
    parent = load_checkpoint(checkpoint, device=str(device))
    split, train_cfg = load_matching_split(parent.card, data_dir)
    lineage = parent.card.get("lineage") or {}
    plans = plan_requests(split, requests, lineage.get("forgotten_ids", []))
    task = ClassificationTask(split.spec.num_classes)
    method = build_method(cfg.method, task)  # fails early for an unknown method or a bad config
    ref_model = load_checkpoint(reference, device=str(device)).model if reference else None

    cards = []
    model, parent_card, parent_dir = parent.model, parent.card, Path(checkpoint)
    for i, (req, views) in enumerate(zip(requests, plans, strict=True)):
        gen = seed_everything(cfg.seed + i)
        factory = lambda: build_model(parent.model_config, split.spec).to(device)  # noqa: E731
        ctx = Context(task, gen, device, train_config=to_dict(train_cfg), model_factory=factory)
        method = build_method(cfg.method, task)
        ref_value = reference_value(ref_model, views, cfg.stop.rule)
        before = view_metrics(model, views, split.test)
        res = unlearn_model(model, views, method, cfg, ctx, reference_value=ref_value, show_progress=show_progress)
        after = view_metrics(model, views, split.test)
        prev = parent_card.get("lineage") or {}
        entry = {"request": req.to_dict(), "method": cfg.method.name, "forget_size": len(views.forget),
                 "parent_sha256": parent_card.get("weights_sha256")}  # fmt: skip
        card = {
            "kind": "ready2unlearn.checkpoint",
            "schema": 1,
            "created": now_iso(),
            "producer": "r2u unlearn",
            "config": parent_card["config"],  # the architecture and data this model descends from
            "seed": cfg.seed + i,
            "model": parent_card.get("model"),
            "data": parent_card.get("data"),
            "unlearn": {
                "request": req.to_dict(),
                "request_text": req.describe(),
                "config": to_dict(cfg),
                "views": views.sizes(),
                "forget_ids": views.forget.ids.tolist(),
                "result": {k: v for k, v in asdict(res).items() if k != "curve"},
                "curve": res.curve,
                "reference": str(reference) if reference else None,
                "reference_value": ref_value,
            },
            "metrics_before": before,
            "metrics": after,
            "versions": versions(),
            "lineage": {
                "parent": str(parent_dir),
                "parent_sha256": parent_card.get("weights_sha256"),
                "requests": [*prev.get("requests", []), entry],
                "forgotten_ids": [*prev.get("forgotten_ids", []), *views.forget.ids.tolist()],
            },
        }
        target_dir = out if len(requests) == 1 else out / f"req-{i + 1:02d}"
        if overwrite and i == 0:
            clear_run_files(out)  # the earlier run goes only now that this one has a model to put in its place
        card = save_checkpoint(model, target_dir, card)
        cards.append(card)
        if log is not None:
            log(req, views, res, before, after, target_dir)
        parent_card, parent_dir = card, target_dir
    return cards
