"""Paired statistics over seeds and censored step ratios (DESIGN §6: "a run that exhausts its budget is censored").

A step ratio (ready / standard unlearning steps, or any method-vs-method ratio) is a value only when *both*
runs reached their stop target. When one of them ran out of budget its true step count is unknown — at
least the budget — so the ratio is a one-sided bound:

======================  ======================  ===========================================
numerator (e.g. ready)  denominator (standard)  ratio
======================  ======================  ===========================================
reached                 reached                 ``a / b``
reached                 censored                ``≤ a / b``  (b is only a lower bound)
censored                reached                 ``≥ a / b``  (a is only a lower bound)
censored                censored                ``n/a (both censored)``
======================  ======================  ===========================================

Over seeds, comparisons are paired (same seed, same request, same run). A difference is summarised by its
mean, std and a t-interval; a ratio by the geometric mean of the per-seed ratios with a t-interval on the
log-ratios, which treats 0.5× and 2× symmetrically. A target is judged on the 95% interval: *met* when the
whole interval is on the right side of the threshold, *missed* when it is wholly on the wrong side,
otherwise *inconclusive*. A censored seed never counts as a value: it can only fail to block a verdict, when
its bound alone already lies on that verdict's side (a ``≤ 0.03`` bound for a ``≤ 1/3`` target); any other
censored seed leaves the target inconclusive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats

Kind = Literal["exact", "at_most", "at_least", "both_censored", "undefined"]
Op = Literal["<=", ">="]
Verdict = Literal["met", "missed", "inconclusive", "n/a"]

#: Coverage of every reported confidence interval.
CONFIDENCE = 0.95
#: Slack for comparisons with a threshold, so 2.0 ≤ 2.0 holds after floating-point round-off.
_EPS = 1e-12


@dataclass(frozen=True)
class CensoredRatio:
    """A ratio of two step counts, exact or bounded by censoring.

    Attributes:
        kind: ``exact``; ``at_most`` / ``at_least`` (a bound: one run exhausted its budget);
            ``both_censored``; ``undefined`` (the denominator reached its target in 0 steps: nothing to
            speed up).
        value: The ratio, or the bound; NaN for ``both_censored`` and ``undefined``.
        numerator: Steps of the numerator run (taken, when censored); or any positive quantity.
        denominator: Steps of the denominator run (taken, when censored).
        floor: Smallest numerator the log-ratio counts (1 for step counts, see :attr:`log_value`).
    """

    kind: Kind
    value: float
    numerator: float
    denominator: float
    floor: float = 0.0

    @classmethod
    def exact(cls, numerator: float, denominator: float) -> CensoredRatio:
        """An uncensored ratio of two measured quantities (e.g. training seconds); NaN-valued if undefined."""
        if not denominator > 0 or not math.isfinite(numerator):
            return cls("undefined", math.nan, numerator, denominator)
        return cls("exact", numerator / denominator, numerator, denominator)

    @property
    def censored(self) -> bool:
        """True when at least one of the two runs exhausted its budget."""
        return self.kind in ("at_most", "at_least", "both_censored")

    @property
    def log_value(self) -> float:
        """``log(value)`` with the numerator floored at :attr:`floor`.

        For step counts the floor is one step: a run that needs 0 steps (the model already met the target)
        would put ``−∞`` into the geometric mean; one step keeps it finite and is within the stop rule's
        resolution (it is checked every ``eval_every ≥ 1`` steps).
        """
        if self.kind in ("both_censored", "undefined"):
            return math.nan
        return math.log(max(self.numerator, self.floor) / self.denominator)

    def proves(self, op: Op, threshold: float) -> bool | None:
        """Whether this ratio alone shows ``ratio op threshold``: True / False, or None when it cannot tell."""
        if self.kind == "exact":
            return _holds(self.value, op, threshold)
        if self.kind == ("at_most" if op == "<=" else "at_least") and _holds(self.value, op, threshold):
            return True  # the bound already lies on the right side
        if self.kind == ("at_least" if op == "<=" else "at_most") and not _holds(self.value, op, threshold):
            return False  # the bound already lies on the wrong side
        return None

    def text(self, digits: int = 3) -> str:
        """``0.250``, ``≤ 0.033``, ``≥ 1.500``, ``n/a (both censored)`` or ``n/a``."""
        if self.kind == "both_censored":
            return "n/a (both censored)"
        if self.kind == "undefined":
            return "n/a"
        sign = {"exact": "", "at_most": "≤ ", "at_least": "≥ "}[self.kind]
        return f"{sign}{self.value:.{digits}f}"

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``results.json``."""
        return {"kind": self.kind, "value": self.value, "numerator": self.numerator,
                "denominator": self.denominator, "floor": self.floor, "text": self.text()}  # fmt: skip


def censored_ratio(num_steps: int, num_reached: bool | None, den_steps: int, den_reached: bool | None) -> CensoredRatio:
    """The step ratio ``num / den`` of two unlearning runs, with each run's ``reached`` flag.

    Args:
        num_steps: Steps the numerator run took (e.g. the ready model's).
        num_reached: Whether it reached its stop target (``None``/``False``: censored at ``num_steps``).
        den_steps: Steps the denominator run took (e.g. the standard model's).
        den_reached: Whether it reached its stop target.

    Returns:
        A :class:`CensoredRatio`.
    """
    a, b = int(num_steps), int(den_steps)
    if not num_reached and not den_reached:
        return CensoredRatio("both_censored", math.nan, a, b, 1.0)
    if b == 0:  # the denominator was done before its first step (or stopped at 0 steps): no ratio to take
        return CensoredRatio("undefined", math.nan, a, b, 1.0)
    if num_reached and den_reached:
        return CensoredRatio("exact", a / b, a, b, 1.0)
    # The censored run would have needed more steps than it took, so its count only bounds the ratio.
    return CensoredRatio("at_most" if num_reached else "at_least", a / b, a, b, 1.0)


def ratio_from_dict(data: dict[str, Any]) -> CensoredRatio:
    """Inverse of :meth:`CensoredRatio.to_dict`."""
    return CensoredRatio(data["kind"], float(data["value"]), float(data["numerator"]), float(data["denominator"]),
                         float(data.get("floor", 0.0)))  # fmt: skip


def _holds(value: float, op: Op, threshold: float) -> bool:
    return value <= threshold + _EPS if op == "<=" else value >= threshold - _EPS


def t_interval(values: Sequence[float]) -> tuple[float, float, float, float, int]:
    """``(mean, std, ci_low, ci_high, n)`` of the finite ``values``: Student-t 95% interval of the mean.

    NaN interval for fewer than two values (a single seed has no spread to estimate).
    """
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    n = len(v)
    if n == 0:
        return math.nan, math.nan, math.nan, math.nan, 0
    mean = float(v.mean())
    if n == 1:
        return mean, 0.0, math.nan, math.nan, 1
    std = float(v.std(ddof=1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, df=n - 1)) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half, n


def _verdict(low: float, high: float, op: Op, threshold: float) -> Verdict:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "inconclusive"
    right = high <= threshold + _EPS if op == "<=" else low >= threshold - _EPS
    wrong = low > threshold + _EPS if op == "<=" else high < threshold - _EPS
    return "met" if right else "missed" if wrong else "inconclusive"


def paired_difference(values: Sequence[float], op: Op | None = None, threshold: float | None = None) -> dict[str, Any]:
    """Summary of per-seed paired differences (or any per-seed quantity): mean, std, n, 95% CI, verdict.

    Args:
        values: One value per seed (NaN = missing for that seed; counted in ``missing``).
        op: ``"<="`` or ``">="`` to judge ``threshold`` on the interval (``verdict``); ``None`` = no target.
        threshold: The target's threshold.
    """
    mean, std, low, high, n = t_interval(values)
    out: dict[str, Any] = {"mean": mean, "std": std, "n": n, "ci_low": low, "ci_high": high,
                           "missing": len(values) - n}  # fmt: skip
    if op is not None and threshold is not None:
        out["verdict"] = "n/a" if n == 0 else _verdict(low, high, op, threshold)
    return out


def paired_ratio(
    ratios: Sequence[CensoredRatio], op: Op | None = None, threshold: float | None = None
) -> dict[str, Any]:
    """Geometric mean of per-seed ratios with a t-interval on the log-ratios, censoring counted.

    ``mean``/``ci_low``/``ci_high`` come from the exact ratios only; ``n`` is how many there are, and
    ``censored`` / ``undefined`` count the others. The verdict (when ``op`` is given) also uses bounds that
    point the right way (see the module docstring), never a censored seed as if it were a value.
    """
    exact = [r for r in ratios if r.kind == "exact"]
    gmean, std, low, high, n = _log_interval([r.log_value for r in exact])
    out: dict[str, Any] = {
        "mean": gmean, "std_log": std, "n": n, "ci_low": low, "ci_high": high,
        "censored": sum(r.censored for r in ratios), "undefined": sum(r.kind == "undefined" for r in ratios),
        "per_seed": [r.text() for r in ratios], "text": _ratio_text(ratios, gmean, low, high),
    }  # fmt: skip
    if op is not None and threshold is not None:
        out["verdict"] = judge_ratios(ratios, op, threshold)
    return out


def _log_interval(logs: Sequence[float]) -> tuple[float, float, float, float, int]:
    mean, std, low, high, n = t_interval(logs)
    return math.exp(mean) if n else math.nan, std, math.exp(low), math.exp(high), n  # exp(NaN) = NaN


def judge_ratios(ratios: Sequence[CensoredRatio], op: Op, threshold: float) -> Verdict:
    """``met`` / ``missed`` / ``inconclusive`` / ``n/a`` for ``ratio op threshold`` over seeds.

    *Met* needs every seed to be exact or a bound that alone proves the target, and the t-interval of the
    exact seeds' log-ratios wholly on the right side; *missed* mirrors it with bounds on the wrong side. A
    proving bound does not enter the interval — its true value is unknown beyond the bound, so putting the
    bound in its place would distort the spread — but the seed cannot weaken the verdict either, since it is
    on the same side. With fewer than two exact seeds (no spread to estimate) the bounds join the interval.
    """
    usable = [r for r in ratios if r.kind != "undefined"]
    if not usable or all(r.kind == "both_censored" for r in usable):
        return "n/a"
    toward = "at_most" if op == "<=" else "at_least"
    away = "at_least" if op == "<=" else "at_most"
    for side, verdict, proof in ((toward, "met", True), (away, "missed", False)):
        if all(r.kind == "exact" or (r.kind == side and r.proves(op, threshold) is proof) for r in usable):
            exact = [r for r in usable if r.kind == "exact"]
            basis = exact if len(exact) >= 2 else usable
            _, _, low, high, _ = _log_interval([r.log_value for r in basis])
            if _verdict(low, high, op, threshold) == verdict:
                return verdict  # type: ignore[return-value]
    return "inconclusive"


def _ratio_text(ratios: Sequence[CensoredRatio], gmean: float, low: float, high: float) -> str:
    """One cell of a report table: the geometric mean and CI, with censoring spelled out."""
    n, k = sum(r.kind == "exact" for r in ratios), sum(r.censored for r in ratios)
    if n == 0:
        bounds = sorted({r.text() for r in ratios if r.kind in ("at_most", "at_least")})
        if not bounds:
            return "n/a (both censored)" if k else "n/a"
        return f"{', '.join(bounds[:3])}{' …' if len(bounds) > 3 else ''} ({k} censored)"
    ci = f" [{low:.3f}, {high:.3f}]" if math.isfinite(low) else ""
    # A run already past its target needs 0 steps; the log counts it as one step (the floor). Say so, or a
    # model that never learned the data would read as a measured speed-up.
    z = sum(r.kind == "exact" and r.numerator < r.floor for r in ratios)
    zeros = f", {z} at 0 steps, counted as {ratios[0].floor:g}" if z else ""
    return f"{gmean:.3f}{ci} (n={n}{f', {k} censored' if k else ''}{zeros})"
