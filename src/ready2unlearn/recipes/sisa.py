"""SISA recipes: ``r2u train --sisa.shards S --sisa.slices R`` and ``r2u unlearn --method sisa``.

Training writes one checkpoint folder: the ensemble (``model.safetensors``, what evaluations load), every
constituent's slice checkpoints (``sisa/``) and a card whose ``sisa`` section records the layout and, per
shard, its lineage. Serving a request retrains only the shards that held the deleted rows, from the slice
before the first one that held any (:mod:`ready2unlearn.unlearn.sisa`); the new folder's card says which
(``unlearn.retrained``) and that the deletion is exact.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from ready2unlearn.artifacts import clear_run_files, prepare_out_dir, read_card, remove_created
from ready2unlearn.card import ModelCard, data_section
from ready2unlearn.config import check, from_dict, to_dict
from ready2unlearn.data.base import DataSpec
from ready2unlearn.data.registry import load_split
from ready2unlearn.data.request import DeletionRequest
from ready2unlearn.data.sequence import plan_requests, remaining
from ready2unlearn.engine.fit import final_metrics
from ready2unlearn.engine.unlearn import view_metrics
from ready2unlearn.errors import ConfigError, R2UError, RequestError
from ready2unlearn.models.registry import build_model, count_parameters
from ready2unlearn.recipes.train import TrainConfig
from ready2unlearn.recipes.unlearn import load_matching_split
from ready2unlearn.runtime import resolve_device, seed_everything
from ready2unlearn.task import ClassificationTask
from ready2unlearn.unlearn.sisa import SisaModel, train_sisa, unlearn_sisa
from ready2unlearn.unlearn.sisa_checkpoint import is_sisa, load_sisa, save_sisa


def train(
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    overwrite: bool = False,
    show_progress: bool = True,
    producer: str = "r2u train",
    extra_card: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Trains a SISA ensemble for ``cfg`` (``cfg.sisa`` set) and writes its checkpoint folder.

    Args:
        cfg: Training config with a ``sisa`` section.
        out_dir: Output folder (must be empty or missing, unless ``overwrite``).
        overwrite: Replace an earlier run in ``out_dir`` once this one has succeeded.
        show_progress: Show a progress bar over the shard × slice stages.
        producer: Recorded in the card.
        extra_card: More card fields (e.g. the preset name).

    Returns:
        The card written.

    Raises:
        ConfigError: If ``cfg.sisa`` is not set, or ``out_dir`` cannot be used.
    """
    check(cfg.sisa is not None, "this config has no sisa section (set sisa.shards and sisa.slices)")
    out = Path(out_dir)
    created = prepare_out_dir(out, overwrite=overwrite)
    try:
        split = load_split(cfg.data)
        device = resolve_device(cfg.device)
        seed_everything(cfg.seed)
        task = ClassificationTask(split.spec.num_classes)
        t0 = time.perf_counter()
        model = train_sisa(model_factory(cfg, split.spec, device), split.train, cfg, cfg.sisa, task=task,
                           show_progress=show_progress)  # fmt: skip
        seconds = time.perf_counter() - t0
        card = ModelCard(
            producer=producer,
            config=to_dict(cfg),
            seed=cfg.seed,
            model={"name": cfg.model.name, "parameters": count_parameters(model.ensemble), "ensemble": "sisa"},
            data=data_section(split),
            metrics=final_metrics(model.ensemble, split.train, split.test, task),
            extra={
                "timing": {"train_seconds": seconds, "device": str(device)},
                "sisa_layout": model.layout(split.train).to_dict(),
                **(extra_card or {}),
            },
        ).to_dict()
        if overwrite:
            clear_run_files(out)
        return save_sisa(model, out, card)
    except R2UError:
        if created is not None:
            remove_created(out, created)
        raise


def model_factory(cfg: TrainConfig, spec: DataSpec, device: Any) -> Callable[[], nn.Module]:
    """Builds fresh constituents of the registered model in ``cfg`` for data of ``spec``."""

    def build() -> nn.Module:
        return build_model(cfg.model, spec).to(device)

    return build


def load(checkpoint: str | Path, device: str = "cpu") -> tuple[SisaModel, dict[str, Any], TrainConfig]:
    """Loads a SISA checkpoint of a registered model: the model, its card and its training config.

    Raises:
        DataError: If the folder is not a SISA checkpoint or a file is corrupt.
    """
    card = read_card(checkpoint)
    if not is_sisa(card):
        raise ConfigError(f"{checkpoint} is not a SISA model: --method sisa serves checkpoints trained with "
                          "`r2u train --sisa.shards S --sisa.slices R`")  # fmt: skip
    cfg = from_dict(TrainConfig, card["config"])
    dev = resolve_device(device)
    model = load_sisa(checkpoint, model_factory(cfg, DataSpec.from_dict(card["data"]["spec"]), dev), str(dev))
    return model, card, cfg


def unlearn(
    checkpoint: str | Path,
    requests: Sequence[DeletionRequest],
    out_dir: str | Path,
    *,
    data_dir: str | None = None,
    device: str = "auto",
    show_progress: bool = True,
    overwrite: bool = False,
    log: Callable[[DeletionRequest, Any, dict[str, Any], dict, dict, Path], None] | None = None,
) -> list[dict[str, Any]]:
    """Serves ``requests`` on a SISA checkpoint exactly, one folder per request (as ``r2u unlearn`` does).

    Args:
        checkpoint: A SISA checkpoint folder.
        requests: Deletion requests, applied in order.
        out_dir: Output folder (``out_dir/req-NN`` per request when there are several).
        data_dir: Overrides the data directory recorded in the card.
        device: Where to retrain.
        show_progress: Show a progress bar over the re-run stages.
        overwrite: Replace an earlier run in ``out_dir`` once this one has succeeded.
        log: Called after each request with ``(request, views, what was retrained, metrics before, after, folder)``.

    Returns:
        The cards written, in order.

    Raises:
        RequestError: If a request does not fit the data left; nothing is written then.
    """
    if not requests:
        raise RequestError("no deletion request given")
    out = Path(out_dir)
    created = prepare_out_dir(out, overwrite=overwrite)
    try:
        return _serve(checkpoint, requests, out, data_dir, device, show_progress, overwrite, log)
    except R2UError:
        if created is not None:
            remove_created(out, created)
        elif not overwrite:
            clear_run_files(out)
        raise


def _serve(
    checkpoint: str | Path,
    requests: Sequence[DeletionRequest],
    out: Path,
    data_dir: str | None,
    device: str,
    show_progress: bool,
    overwrite: bool,
    log: Callable[..., None] | None,
) -> list[dict[str, Any]]:
    model, parent_card, train_cfg = load(checkpoint, device)
    split, _ = load_matching_split(parent_card, data_dir)
    forgotten = list((parent_card.get("lineage") or {}).get("forgotten_ids", []))
    plans = plan_requests(split, requests, forgotten)  # validates the whole sequence before any retraining
    task = ClassificationTask(split.spec.num_classes)
    cards, parent_dir = [], Path(checkpoint)
    for i, (req, views) in enumerate(zip(requests, plans, strict=True)):
        train = remaining(split.train, forgotten)
        ensemble = model.ensemble
        before = view_metrics(ensemble, views, split.test)
        ids = views.forget.ids.tolist()
        res = unlearn_sisa(model, train, ids, train_cfg, task=task, show_progress=show_progress)
        model = res.model
        after = view_metrics(model.ensemble, views, split.test)
        prev = parent_card.get("lineage") or {}
        exact = "; ".join(f"retrained shard {r['shard']} from slice {r['from_slice']}" for r in res.retrained)
        entry = {"request": req.to_dict(), "method": "sisa", "forget_size": len(ids), "exact": True,
                 "parent_sha256": parent_card.get("weights_sha256")}  # fmt: skip
        unlearn = {"request": req.to_dict(), "request_text": req.describe(), "method": "sisa", "exact": True,
                   "exact_text": f"exact: {exact}", "retrained": res.retrained, "stages": res.stages,
                   "seconds": res.seconds, "views": views.sizes(), "forget_ids": ids,
                   # the fields an approximate run records, so tools reading either kind find them
                   "result": {"steps": res.stages, "grad_evals": None, "seconds": res.seconds,
                              "stop_reason": "exact retraining", "reached": True, "target": None,
                              "restored": False}}  # fmt: skip
        card = ModelCard(
            producer="r2u unlearn",
            config=parent_card["config"],
            seed=parent_card.get("seed"),
            model=parent_card.get("model") or {},
            data=parent_card.get("data") or {},
            metrics=after,
            lineage={"parent": str(parent_dir), "parent_sha256": parent_card.get("weights_sha256"),
                     "requests": [*prev.get("requests", []), entry], "forgotten_ids": [*forgotten, *ids]},
            extra={"unlearn": unlearn, "metrics_before": before},
        ).to_dict()  # fmt: skip
        target = out if len(requests) == 1 else out / f"req-{i + 1:02d}"
        if overwrite and i == 0:
            clear_run_files(out)
        card = save_sisa(model, target, card)
        cards.append(card)
        if log is not None:
            log(req, views, card["unlearn"], before, after, target)
        forgotten += ids
        parent_card, parent_dir = card, target
    return cards
