"""Seed aggregation of benchmark cells: mean and sample standard deviation per metric.

A benchmark cell is one (setting, seed, variant, method) run of ``r2u bench``. The report shows each
(setting, variant, method) group as ``mean ± std`` over its seeds; :func:`summarise` computes those
numbers once so the tables, the plots and ``results.json`` agree.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

# Where a bare metric name is looked up, in order: the model's metrics, then the gaps to the retrained
# model, then the efficiency record. The names do not collide in practice (``avg_gap`` only lives in
# ``gaps``, ``steps`` and ``time_ratio_to_retrain`` only in ``efficiency``).
SECTIONS = ("metrics", "gaps", "efficiency")

_MISSING = object()


def _resolve(obj: Any, parts: list[str]) -> Any:
    """Follows ``parts`` into nested mappings; tries the longest joined key first.

    Keys may contain dots themselves (a relearn set called ``forget-0.5%``), so ``a.b.c`` is tried as
    ``a.b.c``, then ``a.b`` + ``c``, then ``a`` + ``b.c`` and so on.
    """
    if not parts:
        return obj
    if not isinstance(obj, Mapping):
        return _MISSING
    for i in range(len(parts), 0, -1):
        key = ".".join(parts[:i])
        if key in obj:
            found = _resolve(obj[key], parts[i:])
            if found is not _MISSING:
                return found
    return _MISSING


def metric_value(cell: Mapping[str, Any], name: str) -> float | None:
    """The value of metric ``name`` in ``cell``, or ``None`` when it is absent, not a number or not finite.

    Args:
        cell: One benchmark cell.
        name: A bare name (``forget_acc``, ``avg_gap``, ``steps``), looked up in ``cell["metrics"]``, then
            ``cell["gaps"]``, then ``cell["efficiency"]``; or a dotted path from the cell's top level
            (``reference_metrics.forget_acc``, ``relearn.forget-10.final_forget_acc``).

    Returns:
        The value as a float, or ``None``.
    """
    value = _resolve(cell, name.split("."))
    if value is _MISSING:
        for section in SECTIONS:
            value = _resolve(cell.get(section), [name])
            if value is not _MISSING:
                break
    # bool is an int subclass but never a metric; NaN/inf come from failed or degenerate runs (e.g. a
    # zero-second retrain gives an infinite time ratio) and would poison the mean.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"mean": None, "std": None, "n": 0}
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "n": len(values)}


def summarise(cells: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """Groups cells by (setting, variant, method) and aggregates each metric over seeds.

    Missing, non-numeric and non-finite (NaN, inf) values are skipped, so the ``n`` of a metric counts
    the values actually used and may be smaller than the group's ``n``. The result holds only JSON types
    (``None`` for a metric with no value), so it can go into ``results.json`` as is.

    Args:
        cells: Benchmark cells (each with ``setting``, ``variant``, ``method`` and usually ``seed``).
        metrics: Metric names, resolved as in :func:`metric_value`.

    Returns:
        One row per group: ``{"setting", "variant", "method", "n", "seeds", "metrics": {name: {"mean",
        "std", "n"}}}`` with ``std`` the sample standard deviation (``0.0`` for a single value). Settings
        keep their order of first appearance; within a setting the ``retrain`` groups come first, then the
        others in order of first appearance.
    """
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for cell in cells:
        key = (str(cell.get("setting", "")), str(cell.get("variant", "")), str(cell.get("method", "")))
        groups.setdefault(key, []).append(cell)

    settings = list(dict.fromkeys(k[0] for k in groups))
    ordered = []
    for setting in settings:
        mine = [k for k in groups if k[0] == setting]
        ordered += [k for k in mine if k[2] == "retrain"] + [k for k in mine if k[2] != "retrain"]

    rows = []
    for setting, variant, method in ordered:
        members = groups[(setting, variant, method)]
        stats = {}
        for name in metrics:
            values = [v for v in (metric_value(c, name) for c in members) if v is not None]
            stats[name] = _stats(values)
        rows.append(
            {
                "setting": setting,
                "variant": variant,
                "method": method,
                "n": len(members),
                "seeds": [c.get("seed") for c in members],
                "metrics": stats,
            }
        )
    return rows
