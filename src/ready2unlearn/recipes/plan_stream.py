"""One stream of deletion requests, served by each strategy of ``r2u plan``.

Every strategy serves the same requests, in the same order, on the same data:
- **retrain**: after each request, train from scratch on what is left. Its models are the references every
  other strategy is judged against (and what the approximate methods' stop rule compares with);
- **approximate** (standard or ready model + a fast method): unlearn each request in turn on the model the
  previous request left, until the request's forget loss (or accuracy) reaches the retrained model's;
- **SISA**: retrain the shards that held the request's rows from their last clean slice (exact).

Each request's cost is measured in the same process as the standard model's training, and reported as a
multiple of it (wall-clock ratios measured side by side, never absolute seconds).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ready2unlearn.attacks.mia import forget_set_attacks
from ready2unlearn.attacks.relearn import RelearnConfig, relearn_attack
from ready2unlearn.data.base import ArrayDataset, Split
from ready2unlearn.data.request import DeletionRequest, RequestViews
from ready2unlearn.engine.method import Context, MethodConfig, build_method
from ready2unlearn.engine.stop import StopConfig
from ready2unlearn.engine.unlearn import unlearn_model
from ready2unlearn.engine.unlearn_config import UnlearnConfig
from ready2unlearn.errors import RequestError
from ready2unlearn.evaluate.metrics import EvalOutputs, compute, gaps
from ready2unlearn.recipes.train import TrainConfig
from ready2unlearn.task import ClassificationTask
from ready2unlearn.unlearn.sisa import SisaModel, unlearn_sisa


@dataclass
class Stream:
    """The request stream of one seed: the rows each request deletes (positions in ``split.train``)."""

    split: Split
    requests: list[np.ndarray]

    def gone(self, k: int) -> np.ndarray:
        """Rows deleted by the first ``k`` requests."""
        return np.sort(np.concatenate(self.requests[:k])) if k else np.empty(0, dtype=np.int64)

    def views(self, k: int, cumulative: bool) -> RequestViews:
        """The ``k``-th request's views (1-based); ``cumulative`` = the rows of requests 1..k as one forget set."""
        train, test = self.split.train, self.split.test
        forget = self.gone(k) if cumulative else self.requests[k - 1]
        keep = np.setdiff1d(np.arange(len(train)), self.gone(k))
        request = DeletionRequest.for_samples(train.ids[forget].tolist())
        return RequestViews(request, train.subset(forget), train.subset(keep), test.subset([]), test, forget)

    def remaining(self, k: int) -> ArrayDataset:
        """The training rows left after ``k`` requests."""
        return self.split.train.subset(np.setdiff1d(np.arange(len(self.split.train)), self.gone(k)))


def draw_stream(split: Split, count: int, size: int, seed: int, group_column: str | None = None) -> Stream:
    """``count`` disjoint requests of ``size`` random rows (or of one group value each), drawn with ``seed``.

    Raises:
        RequestError: If the training set cannot hold that many requests.
    """
    rng = np.random.default_rng(seed)
    train = split.train
    if group_column is None:
        if count * size > len(train) // 2:
            raise RequestError(
                f"{count} requests of {size} rows would delete more than half of the "
                f"{len(train)} training rows; lower plan.serve or plan.request_size"
            )
        order = rng.permutation(len(train))
        return Stream(split, [np.sort(order[i * size : (i + 1) * size]) for i in range(count)])
    if group_column not in train.groups:
        raise RequestError(f"plan.group_column={group_column!r} is not a group column of this dataset")
    values = np.unique(train.groups[group_column])
    if count > len(values) // 2:
        raise RequestError(
            f"{count} group requests would delete more than half of the {len(values)} values of "
            f"{group_column!r}; lower plan.serve"
        )
    chosen = rng.choice(values, size=count, replace=False)
    return Stream(split, [np.flatnonzero(train.groups[group_column] == v) for v in chosen])


@dataclass
class Served:
    """What a strategy did to one request: its cost, its steps and whether it reached its target."""

    seconds: float
    steps: int
    reached: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON row."""
        return {"seconds": self.seconds, "steps": self.steps, "reached": self.reached}


#: serve(k, model) -> (model after the k-th request, what it cost): one strategy's way of honouring a request.
ServeFn = Callable[[int, nn.Module], tuple[nn.Module, Served]]


@dataclass
class Judge:
    """Scores a strategy's model after ``k`` requests against the model retrained without them."""

    stream: Stream
    references: dict[int, nn.Module]
    mia: bool
    mia_max_test: int | None
    seed: int

    def __post_init__(self) -> None:
        # Filled on first use: a resumed plan whose streams are all cached scores nothing (MIA fits are costly).
        self._ref_metrics: dict[int, dict[str, float]] = {}

    def _metrics(self, model: nn.Module, k: int, reference: nn.Module | None) -> dict[str, float]:
        views = self.stream.views(k, cumulative=True)
        metrics = compute(EvalOutputs.for_request(model, views, self.stream.split.test, reference))
        if self.mia:
            metrics.update(forget_set_attacks(model, views, self.stream.split.test, self.seed, self.mia_max_test))
        return metrics

    def score(self, model: nn.Module, k: int) -> dict[str, Any]:
        """Metrics after ``k`` requests and their gaps to the retrained model (``avg_gap`` among them)."""
        if k not in self._ref_metrics:
            self._ref_metrics[k] = self._metrics(self.references[k], k, None)
        metrics = self._metrics(model, k, self.references[k])
        return {"metrics": metrics, "gaps": gaps(metrics, self._ref_metrics[k], "random")}


def serve_stream(
    model: nn.Module,
    serve: ServeFn,
    horizon: int,
    checkpoints: list[int],
    judge: Judge,
    relearn: RelearnConfig | None,
    on_request: Callable[[], None],
) -> dict[str, Any]:
    """Serves requests ``1..horizon`` with ``serve``; scores the model at each checkpoint, attacks it at the end."""
    rows, scores = [], {}
    for k in range(1, horizon + 1):
        model, served = serve(k, model)
        rows.append(served.to_dict())
        if k in checkpoints:
            scores[str(k)] = judge.score(model, k)
        on_request()
    out: dict[str, Any] = {"requests": rows, "checkpoints": scores}
    if relearn is not None:
        out["relearn"] = relearn_attack(model, judge.stream.views(horizon, cumulative=True), relearn)
    return out


# -- the strategies' serve functions ------------------------------------------------------------------------
def retrain_serve(
    stream: Stream,
    train_at: Callable[[int], tuple[nn.Module, float]],
    task: ClassificationTask,
    targets: dict[int, dict[str, float]],
) -> ServeFn:
    """Retrain from scratch after each request (``train_at(k) -> (model, seconds)``); records each request's target.

    The target of request ``k`` is the retrained model's forget accuracy and loss on that request's rows: what
    an approximate method must reach on the same request.
    """

    def serve(k: int, _: nn.Module) -> tuple[nn.Module, Served]:
        model, seconds = train_at(k)
        acc, loss = task.accuracy_and_loss(model, stream.split.train.subset(stream.requests[k - 1]))
        targets[k] = {"forget_acc": acc, "forget_loss": loss}
        return model, Served(seconds, 0, True)

    return serve


def approximate_serve(
    stream: Stream,
    mcfg: MethodConfig,
    stop: StopConfig,
    task: ClassificationTask,
    device: torch.device,
    targets: dict[int, dict[str, float]],
    seed: int,
) -> ServeFn:
    """Unlearn each request with ``mcfg`` until it reaches the retrained model's forget loss (or accuracy)."""
    method = build_method(mcfg, task)

    def serve(k: int, model: nn.Module) -> tuple[nn.Module, Served]:
        ucfg = UnlearnConfig(method=mcfg, stop=stop, seed=seed + k)
        ctx = Context(task, torch.Generator().manual_seed(seed + k), device)
        target = targets[k]["forget_loss" if stop.rule == "forget_loss" else "forget_acc"]
        res = unlearn_model(model, stream.views(k, cumulative=False), method, ucfg, ctx, reference_value=target)
        return model, Served(res.seconds, res.steps, bool(res.reached))

    return serve


def sisa_serve(stream: Stream, sisa: SisaModel, cfg: TrainConfig, task: ClassificationTask) -> ServeFn:
    """Exact SISA deletion of each request (the ``model`` argument is the ensemble; the state is kept here)."""
    state = {"model": sisa}

    def serve(k: int, _: nn.Module) -> tuple[nn.Module, Served]:
        train = stream.remaining(k - 1)
        ids = stream.split.train.ids[stream.requests[k - 1]].tolist()
        res = unlearn_sisa(state["model"], train, ids, cfg, task=task, show_progress=False)
        state["model"] = res.model
        return res.model.ensemble, Served(res.seconds, res.stages, True)

    return serve


def inference_ratio(model: nn.Module, baseline: nn.Module, data: ArrayDataset, repeats: int = 5) -> float:
    """Forward time of ``model`` over ``data`` / ``baseline``'s, interleaved so both see the same machine load."""
    ratios = []
    model.eval()
    baseline.eval()
    with torch.no_grad():
        for _ in range(repeats):
            times = []
            for m in (model, baseline):
                t0 = time.perf_counter()
                for x, _ in data.batches(512):
                    m(x)
                times.append(time.perf_counter() - t0)
            ratios.append(times[0] / max(times[1], 1e-9))
    return float(np.exp(np.mean(np.log(ratios))))
