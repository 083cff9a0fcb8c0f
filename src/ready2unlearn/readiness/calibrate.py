"""Calibrating readiness to the deployment unlearner: how far must a real unlearning run move the model?

The simulated inner step α of L_ready is measured in parameter units, so a fixed α means something
different on every model: on the digits MLP α = 0.01 asks for forgetting after a displacement that the
deployed GA (SGD, lr 3e-4) covers in ~30 steps, which costs the model accuracy to arrange; on the
Fashion-MNIST CNN α = 0.1 is farther than the standard model already needs, so readiness does nothing.
What transfers between models is the displacement the deployment unlearner itself needs on a model
trained the standard way: ``lr × steps`` of its real run. Asking readiness to make *one* simulated step
of that size suffice gave a 3-4x speed-up of the real run on both models at no accuracy cost (see
``benchmarks/readiness_sweep/README.md``).

:func:`calibrate_alpha` measures it: it draws simulated requests of the configured kind from the revocable
pool (never the request that will be served), runs the registered deployment method with its own
optimiser, learning rate and batch size on a copy of a trained model until the request is honoured, and
returns ``α = factor × lr × median(steps)``. Class requests are honoured when the forget accuracy is at
most ``tolerance``; random and group requests when the forget loss reaches ``ready.cap``.

Judging those stops is most of the measurement's cost: on the MNIST CNN (10k images, class requests of ~1,000
images, measured after the first of 4 epochs) the measurement cost 2.5–3.6 standard trainings of the whole run.
``ready.calibration=fast`` judges the stop on a fixed 256-sample subset of the forget set (and 32 retain rows,
only the divergence check reads them) every fourth step (:data:`STOPS`): the same α within 4% at 0.20–0.21×
the CPU time there (``benchmarks/readiness/calibration_cost/``, 3 seeds).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ready2unlearn.config import check
from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.data.request import DeletionRequest, RequestViews
from ready2unlearn.engine.method import Context, build_method
from ready2unlearn.engine.stop import StopConfig
from ready2unlearn.engine.unlearn import unlearn_model
from ready2unlearn.engine.unlearn_config import UnlearnConfig
from ready2unlearn.errors import ConfigError
from ready2unlearn.readiness.cap import measured_cap
from ready2unlearn.readiness.config import ReadyConfig
from ready2unlearn.readiness.cost import probe_clock
from ready2unlearn.readiness.sampler import RequestSampler
from ready2unlearn.task import ClassificationTask, Task

#: How each simulated run's stop is judged, per ``ready.calibration``: the check cadence, and the forget and
#: retain samples scored at each check (``None`` = the whole forget set).
STOPS: dict[str, dict[str, int | None]] = {
    "full": {"eval_every": 2, "forget_eval_size": None, "retain_eval_size": 200},
    "fast": {"eval_every": 4, "forget_eval_size": 256, "retain_eval_size": 32},
}


@dataclass
class Calibration:
    """What :func:`calibrate_alpha` measured and chose.

    Attributes:
        alpha: The chosen inner step size.
        displacement: ``lr × median(steps)`` of the deployment runs.
        steps: Deployment steps each simulated request needed (the budget when it was not honoured).
        reached: Whether each run honoured its request within the budget.
        forget_sizes: Forget-set size of each simulated request.
        rule: The stop rule the runs used (``forget_acc`` / ``forget_loss``) and its target.
        factor: ``alpha / displacement``.
        seconds: What the measurement took: this process's CPU time, or synchronised wall-clock on a GPU
            (:func:`~ready2unlearn.readiness.cost.probe_clock`); ``None`` in records made before it was timed.
    """

    alpha: float
    displacement: float
    steps: list[int]
    reached: list[bool]
    forget_sizes: list[int]
    rule: str
    factor: float
    seconds: float | None = field(default=None, compare=False)  # a timing, not part of what was measured

    def to_dict(self) -> dict[str, Any]:
        """Card entry."""
        return asdict(self)


def _simulated_views(train: ArrayDataset, sampler: RequestSampler, kind: str, size: int) -> RequestViews:
    """One simulated request drawn from the pool: a whole revocable class / group, or ``size`` random rows."""
    if kind == "random":
        pool = sampler.revocable.pool
        forget = np.sort(sampler.rng.choice(pool, size=min(size, len(pool)), replace=False))
    else:
        forget_rows, _ = sampler.sample_positions()
        unit_rows = sampler.unit_rows(int(forget_rows[0]))
        forget = np.sort(unit_rows)
    keep = np.setdiff1d(np.arange(len(train)), forget)
    request = DeletionRequest.for_samples(np.asarray(train.ids)[forget].tolist())
    empty = train.subset(np.empty(0, dtype=np.int64))
    return RequestViews(request, train.subset(forget), train.subset(keep), empty, empty, forget)


def calibrate_alpha(
    model: nn.Module,
    train: ArrayDataset,
    cfg: ReadyConfig,
    num_classes: int,
    *,
    requests: int = 3,
    budget: int = 500,
    tolerance: float = 0.01,
    random_size: int = 200,
    factor: float | None = None,
    seed: int = 0,
    task: Task | None = None,
    heldout: ArrayDataset | None = None,
) -> Calibration:
    """Measures the deployment unlearner on simulated requests and returns the matching inner step α.

    Args:
        model: A model trained without readiness (it is not modified: every run works on a copy).
        train: Its training set.
        cfg: Readiness knobs: the deployment ``method`` (name, lr, optimiser, batch size), the request
            ``kind`` and the ``revocable`` pool the simulated requests are drawn from.
        num_classes: Number of labels.
        requests: Simulated requests to measure (the median is used).
        budget: Step budget of each deployment run.
        tolerance: A class request is honoured at forget accuracy ≤ this.
        random_size: Rows of a simulated random request.
        factor: ``alpha = factor × lr × median(steps)``; ``None`` = ``cfg.alpha_factor``.
        seed: Seeds the draws and the runs.
        task: How the model is scored (default: a classifier over ``num_classes``).
        heldout: Rows the model does not train on: with ``ready.cap=heldout`` the random / group stop target is
            the model's mean loss on them (:func:`~ready2unlearn.readiness.cap.mean_loss`), measured here.

    Returns:
        A :class:`Calibration`.

    Raises:
        ConfigError: On a non-positive ``requests``, ``budget`` or ``factor``, or, for random and group
            requests, a ``cap`` that cannot be measured here (``initial``; ``heldout`` without ``heldout``).
    """
    cfg = cfg.resolved()
    factor = cfg.alpha_factor if factor is None else factor
    check(requests >= 1 and budget >= 1 and factor > 0, "calibration needs requests ≥ 1, budget ≥ 1 and factor > 0")
    task = task or ClassificationTask(num_classes)
    device = next(model.parameters()).device
    clock = probe_clock(device)
    t0 = clock()
    sampler = RequestSampler(train, cfg, num_classes, seed)
    cap = cfg.cap
    if cfg.kind != "class":
        cap = measured_cap(cap, model, heldout, task, seed=seed)
    if cfg.kind != "class" and not isinstance(cap, (int, float)):
        raise ConfigError(f"measuring alpha for {cfg.kind} requests stops at ready.cap, which is {cap!r} here: "
                          "initial is known only once a training run has measured it, heldout needs the held-out "
                          "rows (heldout=); give a number")  # fmt: skip
    rule, target = ("forget_acc", tolerance) if cfg.kind == "class" else ("forget_loss", cap)
    stop = StopConfig(rule=rule, target=target, max_steps=budget, **STOPS[cfg.calibration])  # type: ignore[arg-type]
    steps: list[int] = []
    reached: list[bool] = []
    sizes: list[int] = []
    for i in range(requests):
        views = _simulated_views(train, sampler, cfg.kind, random_size)
        ucfg = UnlearnConfig(method=cfg.method, stop=stop, seed=seed + i)
        ctx = Context(task, torch.Generator().manual_seed(seed + i), device)
        res = unlearn_model(copy.deepcopy(model), views, build_method(cfg.method, task), ucfg, ctx)
        steps.append(max(1, res.steps))
        reached.append(bool(res.reached))
        sizes.append(len(views.forget))
    displacement = cfg.method.lr * float(np.median(steps))
    return Calibration(
        alpha=factor * displacement,
        displacement=displacement,
        steps=steps,
        reached=reached,
        forget_sizes=sizes,
        rule=f"{stop.rule} {'≤' if stop.rule == 'forget_acc' else '≥'} {stop.target}",
        factor=factor,
        seconds=clock() - t0,
    )
