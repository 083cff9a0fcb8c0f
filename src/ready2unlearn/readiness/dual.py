"""Constrained readiness: λ as a dual variable, so no per-model tuning of the forget-term weight.

With a fixed λ the forget term behaves like a switch. Measured on the digits MLP (class requests, first
order, cap 5): at λ = 0.03 the simulated forget loss after the inner step stays at 0.24, the cap is never
approached and GA needs 196 steps instead of 222; at λ = 0.3 it jumps to 8, GA needs 8 steps and the model
loses 4 points after unlearning. The right λ differs by model (Fashion-MNIST needed 0.03), so a shipped
constant cannot be right for models nobody tuned it on.

Readiness is therefore posed as a constraint: *a simulated request must be honoured by the simulated
unlearning run*, i.e. its forget loss after the inner steps must reach the cap c. λ is the Lagrange
multiplier of that constraint and follows multiplicative dual ascent (as in constrained RL's
temperature/penalty updates):

    λ ← clip(λ · exp(η · (c − L_F(θ'_k)) / c), λ_min, λ_max)

It grows while simulated requests are not honoured and decays once they are, so readiness costs no more
than the constraint needs. ``λ_max`` is the utility guard: where honouring requests that fast is only
possible by wrecking the model, λ stops at ``λ_max`` and the card says the constraint did not hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ready2unlearn.config import check


def relative_violation(forget_after: float, cap: float) -> float:
    """How far a simulated request fell short of the cap, relative to it, clipped to [−1, 1] (negative: honoured).

    The clip keeps a huge overshoot from crashing λ to its floor at once; a non-finite loss counts as fully
    violated.
    """
    violation = (cap - forget_after) / cap if math.isfinite(forget_after) else 1.0
    return max(-1.0, min(1.0, violation))


@dataclass
class DualLambda:
    """The multiplier of the "simulated request honoured" constraint, updated after every readiness step.

    Attributes:
        lam: Current λ.
        lr: Dual step size η (in log-λ units per unit of relative violation).
        lam_min: Lower clip (keeps a multiplicative update able to grow again).
        lam_max: Upper clip: the utility guard.
        history: λ at the end of every epoch, for the card.
    """

    lam: float
    lr: float = 0.05
    lam_min: float = 1e-4
    lam_max: float = 1.0
    history: list[float] = field(default_factory=list)
    _violations: float = 0.0
    _updates: int = 0
    _at_max: int = 0
    _start: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        check(self.lr > 0, f"ready.dual_lr must be positive, got {self.lr}")
        check(0 < self.lam_min <= self.lam_max, "ready.lam_max must be ≥ the dual λ's lower clip (1e-4)")
        self.lam = min(max(self.lam, self.lam_min), self.lam_max)
        self._start = self.lam

    def update(self, forget_after: float, cap: float) -> float:
        """One dual-ascent step from the forget loss the simulated unlearning reached; returns the new λ."""
        violation = relative_violation(forget_after, cap)
        self.lam = min(self.lam_max, max(self.lam_min, self.lam * math.exp(self.lr * violation)))
        self._updates += 1
        self._violations += float(violation > 0)
        self._at_max += int(self.lam >= self.lam_max)
        return self.lam

    def end_epoch(self) -> None:
        """Records λ for the card's per-epoch trace."""
        self.history.append(self.lam)

    def state_dict(self) -> dict[str, Any]:
        """The multiplier and its counters, for a resumed run (JSON data)."""
        return {"lam": self.lam, "start": self._start, "history": list(self.history), "violations": self._violations,
                "updates": self._updates, "at_max": self._at_max}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores :meth:`state_dict`."""
        self.lam = float(state["lam"])
        self._start = float(state.get("start", self._start))
        self.history = [float(v) for v in state.get("history", [])]
        self._violations = float(state.get("violations", 0.0))
        self._updates = int(state.get("updates", 0))
        self._at_max = int(state.get("at_max", 0))

    def summary(self) -> dict[str, Any]:
        """Card entry: λ at the start and end and per epoch, how often the constraint was violated or λ capped."""
        n = max(1, self._updates)
        return {
            "lam_start": self._start,
            "lam": self.lam,
            "lam_max": self.lam_max,
            "lr": self.lr,
            "per_epoch": [*self.history, self.lam],
            "violated_fraction": self._violations / n,
            "at_lam_max_fraction": self._at_max / n,
            "updates": self._updates,
        }
