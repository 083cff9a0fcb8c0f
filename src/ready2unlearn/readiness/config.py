"""The readiness-training knobs (DESIGN §5), validated as one dataclass recorded in every ready model's card."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from ready2unlearn.config import check
from ready2unlearn.data.request import DeletionRequest
from ready2unlearn.unlearn.base import METHODS, MethodConfig, method_config

#: Unlearning methods readiness can prepare for: the gradient-ascent family, whose loss is differentiable
#: in the parameters and needs nothing but the current model (NPO/KL references are the model itself).
READY_METHODS: tuple[str, ...] = ("ga", "grad_diff", "ga_kl", "npo", "simnpo")

#: Shipped defaults per request kind, chosen by ``benchmarks/readiness_sweep`` (see its README).
#: Class requests: first-order inner loop with λ=0.03 reached the step target at the smallest accuracy cost
#: of the shapes tried; a second-order loop or larger λ cost 1-7 points. Random requests: the class setting
#: barely sped them up, while α=0.03 made the revocable samples forgettable at no accuracy cost; the term
#: runs every second step to keep training under 2x. Caps: a class request is honoured once the class is
#: no longer predicted (loss well above log C); a random request only needs its samples to look like unseen
#: data, so a small cap stops readiness from making ordinary training points fragile. Group requests
#: (a user's rows) behave like random ones.
KIND_DEFAULTS: dict[str, dict[str, float | int | bool]] = {
    "class": {"lam": 0.03, "alpha": 0.01, "first_order": True, "meta_every": 1, "cap": 5.0},
    "random": {"lam": 0.1, "alpha": 0.03, "first_order": False, "meta_every": 2, "cap": 1.0},
    "group": {"lam": 0.1, "alpha": 0.03, "first_order": False, "meta_every": 2, "cap": 1.0},
}


@dataclass
class ReadyConfig:
    """Ready2Unlearn readiness training (Duan, Yang, Abbasi, Tam 2025, arXiv 2505.10845).

    Per training step the task loss gets ``lam · L_ready``, where ``L_ready`` simulates a future request
    (a forget batch F and retain batch R drawn by :class:`~ready2unlearn.readiness.RequestSampler`), runs
    ``inner_steps`` differentiable steps of size ``alpha`` of the registered unlearning ``method`` from
    the current parameters, and scores the state reached:

        L_ready = λ2·CE(θ'_k; R) − λ1·min(CE(θ'_k; F), cap) − λ3·min(CE(θ''; F), cap)

    with θ'' one simulated relearning step on ``relearn_size`` samples of F from θ'_k.

    Attributes:
        method: The unlearning method that will serve requests (``ga``, ``grad_diff``, ``ga_kl``, ``npo``,
            ``simnpo``), with its hyper-parameters.
        kind: Kind of the simulated requests: ``class``, ``random`` or ``group``.
        revocable: The declared revocable set as a request spec (``class:3,5``, ``random:0.1@7``,
            ``samples:ids.txt``, ``group:user=42``); ``null`` = the whole training set is the pool.
        group_column: Group column whose values are the requests when ``kind`` is ``group``.
        forget_size: Samples in a simulated forget batch; ``null`` = the method's ``batch_size``.
        retain_size: Samples in a simulated retain batch; ``null`` = ``forget_size``.
        lam: λ, the weight of ``L_ready`` against the task loss.
            ``lam``, ``alpha``, ``first_order``, ``meta_every`` and ``cap`` left ``null`` take the shipped
            default of ``kind`` (:data:`KIND_DEFAULTS`); :meth:`resolved` fills them in.
        efficiency: λ1, weight of the forget term (forgetting reached within ``inner_steps``).
        retention: λ2, weight of the retain loss after simulated unlearning.
        resistance: λ3, weight of the forget loss after a simulated relearning step.
        forget_term: ``level`` scores ``min(CE(θ'_k; F), cap)``; ``gain`` scores the increase
            ``min(CE(θ'_k; F), cap) − CE(θ; F)`` the unlearning steps bring, which gives no reward for
            simply fitting F badly at θ.
        cap: Cap c of the forget terms.
        alpha: Inner (simulated unlearning) step size.
        inner_steps: k, simulated unlearning steps.
        first_order: Detach the inner gradients (first-order MAML): cheaper, ignores curvature.
        meta_every: Add the readiness term every N training steps (bounds its cost).
        start_epoch: Train this many epochs with the task loss alone before readiness starts (warm-up).
        relearn_size: Forget samples the simulated relearning step uses.
        relearn_alpha: Step size of the simulated relearning step; ``null`` = ``alpha``.
    """

    method: MethodConfig = field(default_factory=lambda: method_config({"name": "ga"}))
    kind: Literal["class", "random", "group"] = "class"
    revocable: str | None = None
    group_column: str | None = None
    forget_size: int | None = None
    retain_size: int | None = None
    lam: float | None = None
    efficiency: float = 1.0
    retention: float = 1.0
    resistance: float = 0.0
    forget_term: Literal["level", "gain"] = "level"
    cap: float | None = None
    alpha: float | None = None
    inner_steps: int = 1
    first_order: bool | None = None
    meta_every: int | None = None
    start_epoch: int = 0
    relearn_size: int = 10
    relearn_alpha: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.method, Mapping):  # ReadyConfig(method={"name": "npo", "beta": 0.2}) from Python
            self.method = method_config(self.method)
        name = self.method.name
        check(name in READY_METHODS, f"ready.method must be a gradient-ascent-family method "
              f"({', '.join(READY_METHODS)}), got {name!r}")  # fmt: skip
        check(METHODS.get(name).method_cls.iterative, f"ready.method {name!r} is not iterative")
        check(self.lam is None or self.lam >= 0, f"ready.lam must be ≥ 0, got {self.lam}")
        for key in ("efficiency", "retention", "resistance"):
            check(getattr(self, key) >= 0, f"ready.{key} must be ≥ 0, got {getattr(self, key)}")
        check(self.efficiency + self.retention + self.resistance > 0,
              "ready.efficiency, ready.retention and ready.resistance are all 0: L_ready would be empty")  # fmt: skip
        check(self.cap is None or self.cap > 0, f"ready.cap must be positive, got {self.cap}")
        check(self.alpha is None or self.alpha > 0, f"ready.alpha must be positive, got {self.alpha}")
        check(self.inner_steps >= 1, f"ready.inner_steps must be ≥ 1, got {self.inner_steps}")
        check(self.meta_every is None or self.meta_every >= 1, f"ready.meta_every must be ≥ 1, got {self.meta_every}")
        check(self.start_epoch >= 0, f"ready.start_epoch must be ≥ 0, got {self.start_epoch}")
        check(self.forget_size is None or self.forget_size >= 1, "ready.forget_size must be ≥ 1")
        check(self.retain_size is None or self.retain_size >= 1, "ready.retain_size must be ≥ 1")
        check(self.relearn_size >= 1, f"ready.relearn_size must be ≥ 1, got {self.relearn_size}")
        check(self.relearn_alpha is None or self.relearn_alpha > 0, "ready.relearn_alpha must be positive")
        check(self.kind != "group" or bool(self.group_column), "ready.kind=group needs ready.group_column")
        if self.revocable is not None:
            DeletionRequest.parse(self.revocable)  # a malformed spec fails at load time

    def resolved(self) -> ReadyConfig:
        """A copy with every ``null`` kind-dependent knob set to the shipped default of ``kind``."""
        missing = {k: v for k, v in KIND_DEFAULTS[self.kind].items() if getattr(self, k) is None}
        return dataclasses.replace(self, **missing) if missing else self

    @property
    def resolved_forget_size(self) -> int:
        """Forget-batch size actually used."""
        return self.forget_size or self.method.batch_size

    @property
    def resolved_retain_size(self) -> int:
        """Retain-batch size actually used."""
        return self.retain_size or self.resolved_forget_size
