"""Stop rules for unlearning runs (DESIGN §4).

Every run has a step budget. On top of it, a rule says when forgetting is reached:

- ``steps``: run the whole budget (``max_steps``, or ``epochs`` passes over the method's primary set);
- ``forget_acc``: stop once forget-set accuracy ≤ the target;
- ``forget_loss``: stop once forget-set loss ≥ the target.

The target is a number, ``chance`` (1 / number of classes) or ``reference`` (the retrained model's value
on the same forget set, passed by the caller). A ``reference`` target takes a ``tolerance`` τ in the rule's
own units: ``forget_acc`` stops at ≤ reference + τ, ``forget_loss`` at ≥ reference − τ. Why: a retrained
model typically scores 0 on a forgotten class, and "forget accuracy ≤ 0" makes one stubborn sample hold
a run to its budget; τ = 0.01 accepts up to 1% of D_f (pick τ ≥ 1/|D_f| so that it admits at least one
sample). A run that misses even the tolerant target is still censored (``reached = false``).

Divergence — a non-finite loss, or retain accuracy below ``retain_floor`` — stops the run and restores the
last state that passed its check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from ready2unlearn.config import OMIT_UNSET, check
from ready2unlearn.errors import ConfigError

Rule = Literal["steps", "forget_acc", "forget_loss"]
MAX_EPOCHS = 1e6


@dataclass
class StopConfig:
    """When an unlearning run stops.

    Attributes:
        rule: ``steps``, ``forget_acc`` or ``forget_loss``.
        target: Threshold for ``forget_acc`` / ``forget_loss``: a number, ``chance`` or ``reference``.
        max_steps: Step budget (the run never takes more).
        epochs: Alternative budget in passes over the method's primary set (overrides ``max_steps``).
        eval_every: Check the rule (and divergence) every this many steps.
        retain_floor: Divergence if retain accuracy falls below this (absolute); ``null`` = no floor.
        retain_eval_size: Retain samples used for the divergence check (a fixed random subset, for speed).
        forget_eval_size: Judge the rule on a fixed random subset of this many forget samples instead of the
            whole forget set (``null`` = all of it). For speed where the stop point is an estimate anyway
            (readiness's α calibration, which scores a whole forgotten class at every check); the stop is then
            only as sure as the subset.
        tolerance: Slack τ ≥ 0 on a ``reference`` target, in the rule's units (accuracy for ``forget_acc``,
            nats for ``forget_loss``): stop at forget accuracy ≤ reference + τ, or forget loss ≥
            reference − τ. Numeric and ``chance`` targets are used as given.
    """

    rule: Rule = "steps"
    target: float | str | None = None
    max_steps: int = 100
    epochs: float | None = None
    eval_every: int = 1
    retain_floor: float | None = None
    retain_eval_size: int = 2000
    tolerance: float = 0.0
    # Omitted from the config's dict while unset, so every cached run keyed by a stop config stays valid.
    forget_eval_size: int | None = field(default=None, metadata=OMIT_UNSET)

    def __post_init__(self) -> None:
        check(self.max_steps > 0, f"stop.max_steps must be positive, got {self.max_steps}")
        # Bounded so that the step budget computed from it stays an ordinary integer (inf, nan and 1e308
        # would overflow math.ceil); a million passes is far beyond any real unlearning run.
        check(self.epochs is None or (math.isfinite(self.epochs) and 0 < self.epochs <= MAX_EPOCHS),
              f"stop.epochs must be a positive number of passes up to {MAX_EPOCHS:,.0f}, "
              f"got {self.epochs}")  # fmt: skip
        check(self.eval_every > 0, "stop.eval_every must be positive")
        check(self.retain_eval_size > 0, "stop.retain_eval_size must be positive")
        check(self.forget_eval_size is None or self.forget_eval_size > 0, "stop.forget_eval_size must be positive")
        check(self.retain_floor is None or 0 <= self.retain_floor <= 1, "stop.retain_floor must be in [0, 1]")
        check(math.isfinite(self.tolerance) and self.tolerance >= 0,
              f"stop.tolerance must be a finite number ≥ 0, got {self.tolerance}")  # fmt: skip
        if self.rule == "steps":
            check(self.target is None, "stop.target only applies to the forget_acc / forget_loss rules")
        else:
            check(self.target is not None, f"stop rule {self.rule} needs a target (a number, chance or reference)")
            if isinstance(self.target, str):
                check(self.target in ("chance", "reference"), f"stop.target must be a number, chance or reference, "
                      f"got {self.target!r}")  # fmt: skip
                check(self.rule == "forget_acc" or self.target == "reference", "chance only applies to forget_acc")

    @classmethod
    def parse(cls, text: str, **kw: object) -> StopConfig:
        """Parses the CLI form ``steps``, ``steps:N``, ``forget_acc:TARGET`` or ``forget_loss:TARGET``.

        Raises:
            ConfigError: On an unknown rule or target.
        """
        rule, _, arg = text.partition(":")
        if rule == "steps":
            if arg:
                if not arg.isdigit():
                    raise ConfigError(f"--stop {text!r}: steps:N needs an integer N")
                kw["max_steps"] = int(arg)
            return cls(rule="steps", **kw)  # type: ignore[arg-type]
        if rule not in ("forget_acc", "forget_loss"):
            raise ConfigError(f"unknown stop rule {rule!r}; use steps[:N], forget_acc:TARGET or forget_loss:TARGET")
        target: float | str | None = None
        if arg:
            try:
                target = float(arg)
            except ValueError:
                target = arg
        return cls(rule=rule, target=target, **kw)  # type: ignore[arg-type]

    def resolve_target(self, num_classes: int, reference: float | None) -> float | None:
        """The numeric target, given the class count and the retrained model's value (if any).

        A ``reference`` target includes :attr:`tolerance` (added to an accuracy, subtracted from a loss).

        Raises:
            ConfigError: If the target is ``reference`` and no reference value is available.
        """
        if self.rule == "steps":
            return None
        if self.target == "chance":
            return 1.0 / num_classes
        if self.target == "reference":
            if reference is None or math.isnan(reference):
                raise ConfigError("stop target 'reference' needs a retrained reference model (--reference DIR)")
            return reference + self.tolerance if self.rule == "forget_acc" else reference - self.tolerance
        return float(self.target)  # type: ignore[arg-type]

    def reached(self, target: float | None, forget_acc: float, forget_loss: float) -> bool:
        """Whether the rule's goal holds for the measured forget accuracy / loss."""
        if target is None:
            return False
        if self.rule == "forget_acc":
            return forget_acc <= target
        return forget_loss >= target
