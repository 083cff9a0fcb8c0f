"""Unlearning recipe: trained checkpoint + deletion request(s) → unlearned checkpoint(s) with lineage.

Launch: ``r2u unlearn --checkpoint runs/digits --request class:3 --method ga --stop forget_acc:chance
--out runs/digits-ga``.

:func:`run` loads the checkpoint and the data it was trained on (checked by fingerprint), resolves the whole
request sequence up front (:func:`ready2unlearn.data.sequence.plan_requests`), runs each request through the
unlearning loop (:func:`ready2unlearn.engine.unlearn.unlearn_model`) and writes one checkpoint per request
with its lineage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ready2unlearn.artifacts import clear_run_files, prepare_out_dir, remove_created, save_checkpoint
from ready2unlearn.card import ModelCard
from ready2unlearn.checkpoint import load_checkpoint
from ready2unlearn.config import from_dict, to_dict
from ready2unlearn.data import byo
from ready2unlearn.data.base import Split
from ready2unlearn.data.registry import load_split
from ready2unlearn.data.request import DeletionRequest, RequestViews
from ready2unlearn.data.sequence import plan_requests
from ready2unlearn.engine.method import Context, build_method
from ready2unlearn.engine.unlearn import UnlearnResult, reference_value, unlearn_model, view_metrics
from ready2unlearn.engine.unlearn_config import UnlearnConfig
from ready2unlearn.errors import ConfigError, DataError, R2UError, RequestError
from ready2unlearn.models.registry import ModelConfig, build_model
from ready2unlearn.recipes.train import TrainConfig
from ready2unlearn.runtime import resolve_device, seed_everything
from ready2unlearn.task import ClassificationTask


def load_matching_split(card: dict[str, Any], data_dir: str | None = None) -> tuple[Split, TrainConfig]:
    """Loads the dataset a checkpoint was trained on and checks its fingerprints against the card.

    Your own data (``csv:PATH``...) is read again from the path the card records, after checking that the
    file's sha256 is the one it was trained on.

    Raises:
        DataError: If the data differs from what the checkpoint was trained on.
    """
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
    build_method(cfg.method, task)  # fails early for an unknown method or a bad config
    ref_model = load_checkpoint(reference, device=str(device)).model if reference else None

    cards = []
    model, parent_card, parent_dir = parent.model, parent.card, Path(checkpoint)
    for i, (req, views) in enumerate(zip(requests, plans, strict=True)):
        card, res, before, after = unlearn_planned(
            model, parent.model_config, split, train_cfg, req, views, cfg, device=device, parent_card=parent_card,
            parent_dir=parent_dir, index=i, reference_model=ref_model, reference=reference,
            show_progress=show_progress,
        )  # fmt: skip
        target_dir = out if len(requests) == 1 else out / f"req-{i + 1:02d}"
        if overwrite and i == 0:
            clear_run_files(out)  # the earlier run goes only now that this one has a model to put in its place
        card = save_checkpoint(model, target_dir, card)
        cards.append(card)
        if log is not None:
            log(req, views, res, before, after, target_dir)
        parent_card, parent_dir = card, target_dir
    return cards


def unlearn_planned(
    model: nn.Module,
    model_config: ModelConfig,
    split: Split,
    train_cfg: TrainConfig,
    request: DeletionRequest,
    views: RequestViews,
    cfg: UnlearnConfig,
    *,
    device: torch.device,
    parent_card: dict[str, Any],
    parent_dir: str | Path,
    index: int = 0,
    reference_model: nn.Module | None = None,
    reference: str | Path | None = None,
    show_progress: bool = False,
) -> tuple[dict[str, Any], UnlearnResult, dict[str, float], dict[str, float]]:
    """Serves one planned request in memory: unlearns ``model`` in place and builds the child's card.

    The step :func:`run` takes for each request, shared with the ledger (which serves a request from the
    model and split it loaded once, and writes the child itself): seeded ``cfg.seed + index``, the method
    built afresh, the stop target from ``reference_model``.

    Args:
        model: The parent model, changed in place into the child.
        model_config: Its architecture (methods that re-initialise a model, such as retrain, build one from it).
        split: The data the parent was trained on (:func:`load_matching_split`).
        train_cfg: The parent's training config.
        request: The request; ``views`` its plan against what the parent still holds.
        views: The request's views (:func:`ready2unlearn.data.sequence.plan_requests`).
        cfg: Method, stop rule, seed, device.
        device: Where ``model`` lives.
        parent_card: The parent's card (lineage, config, data).
        parent_dir: Where the parent was read from (recorded in the lineage).
        index: Position of the request in its sequence (offsets the seed).
        reference_model: A retrained model for ``target: reference``.
        reference: Its path, recorded in the card.
        show_progress: Show a progress bar.

    Returns:
        The child's card (without ``weights_sha256``: :func:`ready2unlearn.artifacts.save_checkpoint` adds
        it), the unlearning result, and the view metrics before and after.
    """
    gen = seed_everything(cfg.seed + index)
    task = ClassificationTask(split.spec.num_classes)
    factory = lambda: build_model(model_config, split.spec).to(device)  # noqa: E731
    ctx = Context(task, gen, device, train_config=to_dict(train_cfg), model_factory=factory)
    method = build_method(cfg.method, task)
    ref_value = reference_value(reference_model, views, cfg.stop.rule)
    before = view_metrics(model, views, split.test)
    res = unlearn_model(model, views, method, cfg, ctx, reference_value=ref_value, show_progress=show_progress)
    after = view_metrics(model, views, split.test)
    card = unlearned_card(parent_card, parent_dir, request, views, cfg, cfg.seed + index, res, before, after,
                          reference, ref_value)  # fmt: skip
    return card, res, before, after


def unlearned_card(
    parent_card: dict[str, Any],
    parent_dir: str | Path,
    request: DeletionRequest,
    views: RequestViews,
    cfg: UnlearnConfig,
    seed: int,
    res: UnlearnResult,
    before: dict[str, float],
    after: dict[str, float],
    reference: str | Path | None,
    ref_value: float | None,
) -> dict[str, Any]:
    """The card of a model unlearned from ``parent_card``'s model by ``request``: config, result, lineage."""
    prev = parent_card.get("lineage") or {}
    entry = {"request": request.to_dict(), "method": cfg.method.name, "forget_size": len(views.forget),
             "parent_sha256": parent_card.get("weights_sha256")}  # fmt: skip
    return ModelCard(
        producer="r2u unlearn",
        config=parent_card["config"],  # the architecture and data this model descends from
        seed=seed,
        model=parent_card.get("model") or {},
        data=parent_card.get("data") or {},
        metrics=after,
        lineage={
            "parent": str(parent_dir),
            "parent_sha256": parent_card.get("weights_sha256"),
            "requests": [*prev.get("requests", []), entry],
            "forgotten_ids": [*prev.get("forgotten_ids", []), *views.forget.ids.tolist()],
        },
        extra={
            "unlearn": {
                "request": request.to_dict(),
                "request_text": request.describe(),
                "config": to_dict(cfg),
                "views": views.sizes(),
                "forget_ids": views.forget.ids.tolist(),
                "result": {k: v for k, v in asdict(res).items() if k != "curve"},
                "curve": res.curve,
                "reference": str(reference) if reference else None,
                "reference_value": ref_value,
            },
            "metrics_before": before,
        },
    ).to_dict()
