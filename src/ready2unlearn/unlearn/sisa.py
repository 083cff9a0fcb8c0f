"""SISA training and exact unlearning (Bourtoule et al., "Machine Unlearning", IEEE S&P 2021).

Training: every shard's constituent starts from its own seeded initialisation and is trained once per slice
on the cumulative rows of slices ``0..r`` (slice ``r``'s stage has its own seed and a fresh optimiser), and
its weights after each slice are kept. Unlearning a set of ids: a shard without any of them is untouched; a
shard holding some restarts from its weights after the slice before the first one that held a deleted row
(its seeded initialisation when that is slice 0) and re-runs the remaining stages without the deleted rows.

Every stage depends only on the weights it starts from, its seed and its rows, and a row's shard and slice
depend only on its id (:mod:`ready2unlearn.data.sisa`). So the served model is, parameter for parameter,
the model SISA training would produce on the data without the deleted rows: the deletion is exact by
construction (bit for bit on a deterministic backend, which the tests check on CPU).
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.data.sisa import SisaConfig, SisaLayout, sisa_layout
from ready2unlearn.engine.fit import FitConfig, FitSettings, fit
from ready2unlearn.errors import RequestError
from ready2unlearn.models.ensemble import Ensemble
from ready2unlearn.progress import progress_bar
from ready2unlearn.task import Task

#: Builds one fresh constituent (called after the shard's initialisation seed is set).
ModelFactory = Callable[[], nn.Module]


def stage_seed(seed: int, *key: int) -> int:
    """A 31-bit seed for one stage (``key`` = (shard,) for the initialisation, (shard, slice) for a slice)."""
    return int(np.random.SeedSequence([seed, *key]).generate_state(1)[0] & 0x7FFFFFFF)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@dataclass
class SisaModel:
    """A SISA-trained model: the ensemble it serves plus what exact unlearning restarts from.

    Attributes:
        ensemble: The aggregated constituents (what predictions and evaluations use).
        cfg: The layout and aggregation.
        seed: The training seed (it fixes the layout and every stage's seed).
        slice_states: ``(shard, slice) → constituent weights`` after that slice, for every slice but the last
            (the last is the constituent itself).
        lineage: Per shard, the events that produced its current weights (trained; retrained from slice j
            without n rows).
    """

    ensemble: Ensemble
    cfg: SisaConfig
    seed: int
    slice_states: dict[tuple[int, int], dict[str, torch.Tensor]]
    lineage: list[list[dict[str, Any]]] = field(default_factory=list)

    def layout(self, data: ArrayDataset) -> SisaLayout:
        """Where each row of ``data`` lives (the same for every subset that contains the row)."""
        return sisa_layout(data, self.cfg, self.seed)


@dataclass
class SisaUnlearnResult:
    """What :func:`unlearn_sisa` did.

    Attributes:
        model: The model after the deletion (a new object; the input model is not modified).
        retrained: One entry per retrained shard: ``shard``, ``from_slice`` (the first stage re-run),
            ``deleted`` (rows removed from it) and ``rows`` (rows it was retrained on).
        stages: Slice stages re-run in all (a training run re-runs ``shards × slices``).
        seconds: Wall-clock of the retraining.
    """

    model: SisaModel
    retrained: list[dict[str, int]]
    stages: int
    seconds: float


def _run_stages(
    member: nn.Module,
    shard: int,
    first_slice: int,
    train: ArrayDataset,
    layout: SisaLayout,
    cfg: FitSettings,
    sisa: SisaConfig,
    seed: int,
    states: dict[tuple[int, int], dict[str, torch.Tensor]],
    task: Task | None,
    on_stage: Callable[[], None],
) -> int:
    """Trains ``member`` through slices ``first_slice..R-1`` of ``shard``; returns the rows of the last stage."""
    stage_cfg = FitConfig.of(cfg, epochs=sisa.slice_epochs(cfg.epochs))  # the loop settings alone: no readiness
    rows = np.empty(0, dtype=np.int64)
    for r in range(first_slice, sisa.slices):
        rows = layout.rows(shard, r)
        if len(rows):  # a stage with no rows yet leaves the weights as they are, in training and retraining alike
            fit(member, train.subset(rows), None, dataclasses.replace(stage_cfg, seed=stage_seed(seed, shard, r)),
                show_progress=False, task=task)  # fmt: skip
        if r < sisa.slices - 1:
            states[(shard, r)] = _state(member)
        on_stage()
    return len(rows)


def train_sisa(
    make_model: ModelFactory,
    train: ArrayDataset,
    cfg: FitSettings,
    sisa: SisaConfig,
    *,
    task: Task | None = None,
    show_progress: bool = True,
) -> SisaModel:
    """Trains a SISA ensemble on ``train``.

    Args:
        make_model: Builds one untrained constituent (any ``nn.Module`` classifier).
        train: The training set (unique ``ids``; with ``sisa.shard_by`` it needs that group column).
        cfg: Optimiser, batch size, epochs and seed of a normal run; each slice stage trains
            ``sisa.slice_epochs(cfg.epochs)`` epochs. ``cfg.ready`` is ignored.
        sisa: Shards, slices and aggregation.
        task: How batches are scored (default: a classifier).
        show_progress: Show one progress bar over the ``shards × slices`` stages.

    Returns:
        The :class:`SisaModel`.
    """
    layout = sisa_layout(train, sisa, cfg.seed)
    states: dict[tuple[int, int], dict[str, torch.Tensor]] = {}
    members, lineage = [], []
    with progress_bar(show_progress) as bar:
        bar_id = bar.add_task("SISA training", total=sisa.shards * sisa.slices)
        for k in range(sisa.shards):
            torch.manual_seed(stage_seed(cfg.seed, k))
            member = make_model()
            states[(k, -1)] = _state(member)  # the seeded initialisation: where a slice-0 deletion restarts
            rows = _run_stages(member, k, 0, train, layout, cfg, sisa, cfg.seed, states, task,
                               lambda: bar.advance(bar_id))  # fmt: skip
            members.append(member)
            lineage.append([{"event": "trained", "rows": rows}])
    return SisaModel(Ensemble(members, sisa.aggregation), sisa, cfg.seed, states, lineage)


def unlearn_sisa(
    model: SisaModel,
    train: ArrayDataset,
    forget_ids: Iterable[int],
    cfg: FitSettings,
    *,
    task: Task | None = None,
    show_progress: bool = True,
) -> SisaUnlearnResult:
    """Exactly removes ``forget_ids`` from a SISA model by retraining only the shards that held them.

    Args:
        model: The SISA model (not modified).
        train: The data the model was trained on: the original set, minus rows of earlier deletions.
        forget_ids: Ids to delete; each must be a row of ``train``.
        cfg: The training config the model was trained with (same optimiser, batch size, epochs, seed).
        task: How batches are scored (default: a classifier).
        show_progress: Show a progress bar over the re-run stages.

    Returns:
        A :class:`SisaUnlearnResult` whose model equals SISA training on ``train`` without ``forget_ids``.
        Constituents of untouched shards are shared with ``model`` (SISA keeps them as they are).

    Raises:
        RequestError: If no id is given, or an id is not in ``train``.
    """
    forget = np.unique(np.asarray(list(forget_ids), dtype=np.int64))
    if len(forget) == 0:
        raise RequestError("nothing to delete: the request names no ids")
    ids = train.ids.numpy()
    deleted = np.isin(ids, forget)
    missing = np.setdiff1d(forget, ids[deleted])
    if len(missing):
        raise RequestError(f"{len(missing)} id(s) are not in the training data of this SISA model "
                           f"(e.g. {missing[:3].tolist()}); were they deleted already?")  # fmt: skip
    layout = model.layout(train)
    remaining = train.subset(np.flatnonzero(~deleted))
    kept_layout = model.layout(remaining)
    sisa = model.cfg
    states = dict(model.slice_states)
    members = [m for m in model.ensemble.members]
    lineage = [list(events) for events in model.lineage]
    plan = []
    for k in range(sisa.shards):
        hit = deleted & (layout.shard == k)
        if hit.any():
            plan.append((k, int(layout.slice[hit].min()), int(hit.sum())))
    retrained = []
    t0 = time.perf_counter()
    with progress_bar(show_progress) as bar:
        bar_id = bar.add_task("SISA retraining", total=sum(sisa.slices - j for _, j, _ in plan))
        for k, first, count in plan:
            member = copy.deepcopy(members[k])  # keeps a custom module's structure; its weights are replaced
            member.load_state_dict(states[(k, first - 1)])
            rows = _run_stages(member, k, first, remaining, kept_layout, cfg, sisa, model.seed, states, task,
                               lambda: bar.advance(bar_id))  # fmt: skip
            members[k] = member
            event = {"event": "retrained", "from_slice": first, "deleted": count, "rows": rows}
            lineage[k].append(event)
            retrained.append({"shard": k, "from_slice": first, "deleted": count, "rows": rows})
    seconds = time.perf_counter() - t0
    new = SisaModel(Ensemble(members, sisa.aggregation), sisa, model.seed, states, lineage)
    return SisaUnlearnResult(new, retrained, sum(sisa.slices - j for _, j, _ in plan), seconds)
