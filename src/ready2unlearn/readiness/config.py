"""The readiness-training knobs (DESIGN §5), validated as one dataclass recorded in every ready model's card."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from ready2unlearn.config import OMIT_UNSET, check
from ready2unlearn.data.request import DeletionRequest
from ready2unlearn.engine.method import METHODS, MethodConfig, method_config
from ready2unlearn.readiness.cap import MEASURED_CAPS

#: Unlearning methods readiness can prepare for: the gradient-ascent family, whose loss is differentiable
#: in the parameters and needs nothing but the current model (NPO/KL references are the model itself).
READY_METHODS: tuple[str, ...] = ("ga", "grad_diff", "ga_kl", "npo", "simnpo")

# fmt: off
#: Shipped defaults per request kind. Class and random requests use the constrained form (``dual``: λ
#: adapts until simulated requests are honoured, clipped at ``lam_max``) with the inner step measured on the
#: model itself (``alpha=auto``: the displacement the deployment unlearner needs, see readiness/calibrate.py),
#: first order, every second step. Why: fixed λ/α pairs tuned on Fashion-MNIST did nothing on the digits MLP
#: (λ 0.03 never reached the cap; GA 222 → 196 steps) and a fixed α is a different request on every model.
#:
#: Class requests score the *gain* of the simulated unlearning (``forget_term=gain``) at twice the measured
#: displacement (``alpha_factor=2``). The level form rewards fitting the revocable classes badly at θ, which is
#: where its cost came from: on the tabular BatchNorm net (3 seeds, batch norm frozen while unlearning) level
#: gave 0.58x the GA steps at −3.6 points, gain 0.47-0.50x at −2.1 points, gain at factor 2 0.78x at −0.1
#: points; on the digits MLP gain and level tie (0.18x vs 0.19x at −1 point) and factor 2 gives 0.33x at −0.5
#: points. The factor trades speed for accuracy on both models in the same direction (0.5: 0.28x at −8.7
#: points on the tabular net). 5-seed numbers: benchmarks/readiness/README.md.
#:
#: Random requests keep the level form at factor 1: they are honoured once their samples look unseen, i.e.
#: less well fitted, so the level is what matters (digits: level 0.45x, gain 1.06x, 3 seeds). Their cap
#: (0.3 nats: above the digits / Fashion test loss, where the retrained model's forget loss sits) is in
#: absolute nats and does not fit models whose training loss is above it (tabular net: λ decays to 0, no
#: effect).
#:
#: Group requests (a user's rows; the TOFU language benches) measure their cap on the model (``cap=auto``: the
#: loss of held-out rows when there are any, else the pool's loss under the starting weights) and adapt λ,
#: first order. The fixed cap of 1 nat they had before sat below the language-model loss scale: on SmolLM2 +
#: LoRA (TOFU forget01) the forget loss after the simulated step was past it on every readiness step, so the
#: efficiency term passed no gradient and readiness was the retention term alone (2 seeds: GA 1.09x the
#: standard steps, NPO 1.08x). With the measured cap it acted (saturated on 5–12.5% of steps) at about the same
#: utility (3 seeds: −0.008 [−0.022, +0.006] before unlearning) and GA 0.95 [0.66, 1.37]x, grad_diff 0.87 [0.75,
#: 1.00]x the standard steps: no speed-up near the ≤ 1/2 target (benchmarks/tofu/README.md); a dual step of 0.5
#: pinned λ at its ceiling for 0.94x / 0.76x on one seed (benchmarks/tofu/sweep-smollm2.md).
#: First order because every measured-cap shape was measured so; the second-order default it replaces gained
#: nothing there and builds a second graph through the whole language model.
#:
#: Class requests measure α the fast way (``calibration=fast``), which kept the speed-up and the accuracy on both
#: CNNs at about half the training cost (5 seeds each): MNIST 0.207x vs 0.215x the GA steps, −0.1 points,
#: 2.37x the standard training cost instead of 4.2-5.4x; Fashion-MNIST 0.331x vs 0.333x, −0.1 points, 2.09x
#: instead of ~4.4x (benchmarks/readiness/cheap_schedule/; on digits the after-unlearning accuracy moved with
#: α). Random requests (200 rows) gain nothing from it.
KIND_DEFAULTS: dict[str, dict[str, float | int | bool | str]] = {
    "class": {"lam": 0.03, "alpha": "auto", "first_order": True, "meta_every": 2, "cap": 5.0, "dual": True,
              "forget_term": "gain", "alpha_factor": 2.0, "calibration": "fast"},
    "random": {"lam": 0.03, "alpha": "auto", "first_order": True, "meta_every": 2, "cap": 0.3, "dual": True,
               "forget_term": "level", "alpha_factor": 1.0, "calibration": "full"},
    "group": {"lam": 0.1, "alpha": 0.03, "first_order": True, "meta_every": 2, "cap": "auto", "dual": True,
              "forget_term": "level", "alpha_factor": 1.0, "calibration": "full"},
}
# fmt: on


@dataclass
class ReadyConfig:
    """Ready2Unlearn readiness training (Duan, Yang, Abbasi, Tam 2025, arXiv 2505.10845).

    Per training step the task loss gets ``lam · L_ready``, where ``L_ready`` simulates a future request
    (a forget batch F and retain batch R drawn by :class:`~ready2unlearn.readiness.RequestSampler`), runs
    ``inner_steps`` differentiable steps of size ``alpha`` of the registered unlearning ``method`` from
    the current parameters, and scores the state reached:

        L_ready = λ2·CE(θ'_k; R) − λ1·min(CE(θ'_k; F), cap) − λ3·min(CE(θ''; F), cap)

    with θ'' the point ``relearn_steps`` simulated relearning steps (SGD, or the attack's Adam) on ``relearn_size``
    samples of F reach from θ'_k.

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
            ``lam``, ``alpha``, ``first_order``, ``meta_every``, ``cap``, ``dual``, ``forget_term``,
            ``alpha_factor`` and ``calibration`` left ``null`` take the shipped default of ``kind``
            (:data:`KIND_DEFAULTS`); :meth:`resolved` fills them in.
        efficiency: λ1, weight of the forget term (forgetting reached within ``inner_steps``).
        retention: λ2, weight of the retain loss after simulated unlearning.
        resistance: λ3, weight of the forget loss after a simulated relearning step.
        forget_term: ``level`` scores ``min(CE(θ'_k; F), cap)``; ``gain`` scores the increase
            ``min(CE(θ'_k; F), cap) − CE(θ; F)`` the unlearning steps bring, which gives no reward for
            simply fitting F badly at θ. Past the cap only the ``− CE(θ; F)`` part still passes a gradient:
            it keeps F fitted at θ while the simulated request is already honoured.
        cap: Cap c of the forget terms, in the task loss's units, or measured on the model
            (:mod:`~ready2unlearn.readiness.cap`): ``heldout``, its mean loss on held-out rows (passed to the
            objective), again every epoch — the level of rows it never saw, where the retrained model's loss on
            a request sits; ``initial``, the revocable pool's loss under the starting weights, before the first
            update — the level of unseen data for a *pretrained* model, with no extra rows (meaningless where
            the output layer starts random: from scratch, or a new classification head); ``auto``, ``heldout``
            when held-out rows are given, else ``initial``.
        alpha: Inner (simulated unlearning) step size, or ``auto``: ``alpha_factor × lr × steps`` the
            deployment method needs on simulated requests
            (:func:`~ready2unlearn.readiness.calibrate.calibrate_alpha`), measured on a standard-trained model
            (``r2u ready-tune``, the readiness bench) or, in ``r2u train``, on the model when readiness starts
            (``start_epoch`` must then be ≥ 1).
        inner_steps: k, simulated unlearning steps.
        first_order: Detach the inner gradients (first-order MAML): cheaper, ignores curvature.
        meta_every: Add the readiness term every N training steps (bounds its cost).
        start_epoch: Train this many epochs with the task loss alone before readiness starts (warm-up). With
            ``alpha=auto`` and 0, training recipes start readiness after a quarter of the epochs
            (:meth:`for_epochs`).
        relearn_size: Forget samples the simulated relearning attack fine-tunes on; the resistance term is
            scored on the *other* samples of F, as the real attack is scored on held-out forget samples.
        relearn_alpha: Step size of the simulated relearning steps; ``null`` = ``alpha``.
        relearn_steps: Simulated relearning steps (the real attack takes several).
        relearn_optimizer: How the simulated relearning steps move: ``sgd`` or ``adam`` (the attack's own
            optimiser; its steps are ``relearn_alpha`` per coordinate whatever the gradient's scale, so a model
            cannot resist them by flattening its loss around the unlearned point).
        inner_optimizer: How the simulated unlearning steps move: ``sgd`` (plain steps, the default) or
            ``method`` (the deployment method's own optimiser: with ``adam`` the steps ``torch.optim.Adam``
            takes, so α measured as Adam's ``lr × steps`` is the same distance; see
            :func:`~ready2unlearn.readiness.inner.simulate_unlearning`).
        score_mode: How the state reached is scored. ``eval``: BatchNorm running statistics and no dropout, as
            the stop rule and every metric see the model. ``mixed``: the forget terms as in ``eval``; the retain
            term without dropout but with normalisation layers on the retain batch's own statistics (a retain
            batch draws from every class, so they estimate the population's, and the gradient then passes
            through the normalisation as the task loss's does). ``train``: both in train mode. The inner
            unlearning steps always run as the deployed unlearner trains. Without normalisation layers ``mixed``
            and ``eval`` are the same. ``train`` scoring is wrong for BatchNorm models: a forget batch of one
            class normalised by its own statistics looks forgotten before any step (tabular BN net: 4.4 nats
            in train mode vs 0.87 in eval mode after the same simulated step). Default ``mixed``: scoring the
            retain term through running statistics cost the BatchNorm CNN on CIFAR-10 11 points of test accuracy
            (50.8% vs 62.1% standard, seed 0); ``mixed`` 60.6%.
        dual: Adapt λ by dual ascent on the constraint "a simulated request is honoured": forget loss after
            the inner steps ≥ ``cap`` (:mod:`~ready2unlearn.readiness.dual`); ``lam`` is the starting value.
            With ``dual`` the retention term keeps the absolute weight ``retention`` (the look-ahead retain
            loss is a second task loss) and λ weighs only the forget terms.
        lam_max: Upper clip of the dual λ: the utility guard.
        dual_lr: Dual step size η.
        alpha_factor: ``alpha=auto`` resolves to ``alpha_factor × lr × median(steps)``.
        calibration: How ``alpha=auto`` is measured: ``full`` judges each simulated run's stop on its whole
            forget set every second step; ``fast`` on 256 of its samples every fourth step (about 4x cheaper
            where the forget set is a whole class; see :func:`~ready2unlearn.readiness.calibrate.calibrate_alpha`).
            Default: ``fast`` for class requests, ``full`` otherwise.
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
    forget_term: Literal["level", "gain"] | None = None
    cap: float | Literal["initial", "heldout", "auto"] | None = None
    alpha: float | Literal["auto"] | None = None
    inner_steps: int = 1
    first_order: bool | None = None
    meta_every: int | None = None
    start_epoch: int = 0
    relearn_size: int = 10
    relearn_alpha: float | None = None
    relearn_steps: int = 1
    # Omitted from the config's dict while unset, so the cache keys of every ready model trained before stay valid.
    relearn_optimizer: Literal["sgd", "adam"] = field(default="sgd", metadata=OMIT_UNSET)
    # Omitted from the config's dict while unset, so the cache keys of every ready model trained before stay valid.
    inner_optimizer: Literal["sgd", "method"] = field(default="sgd", metadata=OMIT_UNSET)
    score_mode: Literal["eval", "train", "mixed"] = "mixed"
    dual: bool | None = None
    lam_max: float = 1.0
    dual_lr: float = 0.05
    alpha_factor: float | None = None
    # Omitted from the config's dict while unset, so the cache keys of every ready model trained before stay valid.
    calibration: Literal["full", "fast"] | None = field(default=None, metadata=OMIT_UNSET)

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
        if isinstance(self.cap, str):
            check(self.cap in MEASURED_CAPS,
                  f"ready.cap must be a positive number, initial, heldout or auto, got {self.cap!r}")  # fmt: skip
        else:
            check(self.cap is None or self.cap > 0, f"ready.cap must be positive, got {self.cap}")
        check(self.inner_optimizer in ("sgd", "method"), "ready.inner_optimizer must be sgd or method")
        check(self.relearn_optimizer in ("sgd", "adam"), "ready.relearn_optimizer must be sgd or adam")
        check(self.calibration in (None, "full", "fast"),
              f"ready.calibration must be full or fast, got {self.calibration!r}")  # fmt: skip
        if isinstance(self.alpha, str):
            check(self.alpha == "auto", f"ready.alpha must be a positive number or auto, got {self.alpha!r}")
        else:
            check(self.alpha is None or self.alpha > 0, f"ready.alpha must be positive, got {self.alpha}")
        check(self.relearn_steps >= 1, f"ready.relearn_steps must be ≥ 1, got {self.relearn_steps}")
        check(self.lam_max > 0 and self.dual_lr > 0, "ready.lam_max and ready.dual_lr must be positive")
        check(self.alpha_factor is None or self.alpha_factor > 0,
              f"ready.alpha_factor must be positive, got {self.alpha_factor}")  # fmt: skip
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

    def for_epochs(self, epochs: int) -> ReadyConfig:
        """The config a training run of ``epochs`` epochs uses.

        ``alpha=auto`` is measured on the model when readiness starts, so with ``start_epoch`` 0 readiness
        starts after a quarter of the epochs instead (at least one): on the digits MLP a measurement after 5 of
        20 epochs gave GA 40 steps instead of 222 at −0.3 points, one after 10 epochs 52-72 steps.
        """
        # Only start_epoch is filled in: the other knobs stay null so a later change of kind re-resolves them.
        if self.resolved().alpha == "auto" and self.start_epoch == 0 and epochs >= 2:
            return dataclasses.replace(self, start_epoch=max(1, epochs // 4))
        return self

    @property
    def resolved_forget_size(self) -> int:
        """Forget-batch size actually used."""
        return self.forget_size or self.method.batch_size

    @property
    def resolved_retain_size(self) -> int:
        """Retain-batch size actually used."""
        return self.retain_size or self.resolved_forget_size
