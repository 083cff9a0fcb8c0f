"""The ``r2u plan`` report: cost per strategy against the request count, utility, verification, a recommendation.

Costs are in units of one standard training measured in the same run: per seed, the median wall-clock of its
full trainings (the standard model and every retraining of the retrain strategy, which all train the same
model on nearly the same data), so one slow run on a shared machine does not rescale a whole column. Then
they are averaged over seeds with a 95% interval. A strategy's total for ``K`` requests is its one-off
training plus the cost of its first ``K`` requests; beyond the requests actually served, the served
requests' mean cost is extrapolated, and every such number is marked "extrapolated".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ready2unlearn.artifacts import atomic_write
from ready2unlearn.report.plots import new_figure, save_figure
from ready2unlearn.report.render import Block, Table, render_html, render_markdown
from ready2unlearn.report.stats import t_interval

#: Strategies in the order a reader compares them.
_FAMILY_ORDER = {"retrain": 0, "standard": 1, "ready": 2, "sisa": 3}


def _stat(values: Sequence[float]) -> dict[str, float]:
    mean, _, low, high, n = t_interval(values)
    return {"mean": mean, "ci_low": low, "ci_high": high, "n": n}


def _fmt(s: Mapping[str, float] | None, digits: int = 3, pct: bool = False) -> str:
    if not s or not math.isfinite(s.get("mean", math.nan)):
        return "–"
    k = 100.0 if pct else 1.0
    text = f"{k * s['mean']:.{digits}g}" if not pct else f"{k * s['mean']:.1f}"
    if s.get("n", 0) >= 2 and math.isfinite(s["ci_low"]):
        low, high = k * s["ci_low"], k * s["ci_high"]
        text += f" [{low:.1f}, {high:.1f}]" if pct else f" [{low:.{digits}g}, {high:.{digits}g}]"
    return text


def _costs(cell: Mapping[str, Any], standard_seconds: float, ks: Sequence[int]) -> dict[str, Any]:
    """One (strategy, seed): one-off and per-request cost in standard trainings, totals at each ``K``."""
    per = np.array([r["seconds"] for r in cell["requests"]], dtype=float) / standard_seconds
    one_off = float(cell["train_seconds"]) / standard_seconds
    totals = {}
    for k in ks:
        served = per[: min(k, len(per))].sum()
        extra = max(0, k - len(per)) * float(per.mean())
        totals[str(k)] = one_off + float(served) + extra
    return {"one_off": one_off, "per_request": float(per.mean()), "totals": totals}


def training_unit(retrain_cell: Mapping[str, Any]) -> float:
    """Seconds of one standard training on a seed: the median of its full trainings (standard + each retraining)."""
    return float(np.median([retrain_cell["train_seconds"], *(r["seconds"] for r in retrain_cell["requests"])]))


def _family(strategy: str) -> str:
    return strategy.split(" ")[0]


def summarise_plan(results: Mapping[str, Any]) -> dict[str, Any]:
    """Per-strategy costs, utility, verification and the recommendation, from a plan's ``results.json`` dict."""
    cfg = results["config"]
    ks = list(cfg["requests"])
    served = max(len(c["requests"]) for c in results["cells"])
    target_k = cfg.get("expected") or max(ks)
    scored_k = max(int(k) for k in results["cells"][0]["checkpoints"])  # the last served request
    judged_k = min(target_k, scored_k)
    by_strategy: dict[str, list[Mapping[str, Any]]] = {}
    for cell in results["cells"]:
        by_strategy.setdefault(cell["strategy"], []).append(cell)
    std = {int(c["seed"]): training_unit(c) for c in by_strategy["retrain"]}
    floor_cells = by_strategy.get("retrain", [])
    floor_relearn = _stat([_relearn_mean(c) for c in floor_cells])
    rows = []
    for name, cells in sorted(by_strategy.items(), key=lambda kv: (_FAMILY_ORDER.get(_family(kv[0]), 9), kv[0])):
        costs = [_costs(c, std[int(c["seed"])], ks) for c in cells]
        row: dict[str, Any] = {
            "strategy": name,
            "family": cells[0]["family"],
            "seeds": [c["seed"] for c in cells],
            "one_off": _stat([c["one_off"] for c in costs]),
            "per_request": _stat([c["per_request"] for c in costs]),
            "totals": {str(k): _stat([c["totals"][str(k)] for c in costs]) for k in ks},
            "extrapolated": [k for k in ks if k > served],
            "reached": float(np.mean([all(r["reached"] for r in c["requests"][:judged_k]) for c in cells])),
            "reached_share": float(np.mean([r["reached"] for c in cells for r in c["requests"][:judged_k]])),
            "relearn": _stat([_relearn_mean(c) for c in cells]),
        }
        for metric in ("test_acc", "forget_acc", "mia_auc", "avg_gap"):
            row[metric] = {k: _stat([_checkpoint(c, k, metric) for c in cells]) for k in _points(cells)}
        for extra in ("inference_ratio", "parameters_ratio"):
            if extra in cells[0]:
                row[extra] = _stat([c[extra] for c in cells])
        exact = row["family"] == "exact"
        gap = row["avg_gap"].get(str(judged_k), {}).get("mean", math.nan)
        row["verified"] = exact or (row["reached"] == 1.0 and gap <= cfg["max_avg_gap"])
        acc = row["test_acc"].get(str(judged_k), {}).get("mean", math.nan)
        row["meets_floor"] = cfg.get("utility_floor") is None or acc >= cfg["utility_floor"]
        rows.append(row)
    retrain = next((r for r in rows if r["strategy"] == "retrain"), None)
    for row in rows:
        row["break_even_vs_retrain"] = _break_even(row, retrain)
    return {
        "rows": rows,
        "unit_seconds": {str(k): v for k, v in std.items()},
        "target_k": target_k,
        "judged_k": judged_k,
        "served": served,
        "ks": ks,
        "relearn_floor": floor_relearn,
        "recommendation": _recommend(rows, cfg, target_k, judged_k),
    }


def _points(cells: Sequence[Mapping[str, Any]]) -> list[str]:
    return sorted(cells[0]["checkpoints"], key=int)


def _checkpoint(cell: Mapping[str, Any], k: str, metric: str) -> float:
    point = cell["checkpoints"].get(k) or {}
    source = point.get("gaps", {}) if metric == "avg_gap" else point.get("metrics", {})
    return float(source.get(metric, math.nan))


def _relearn_mean(cell: Mapping[str, Any]) -> float:
    """Mean held-out forget accuracy over the relearning attack (first relearn set)."""
    attack = cell.get("relearn") or {}
    for result in attack.values():
        curve = result.get("curve") or []
        if curve:
            return float(np.mean([p["forget_acc"] for p in curve]))
    return math.nan


def _break_even(row: Mapping[str, Any], retrain: Mapping[str, Any] | None) -> float | None:
    """Requests after which ``row`` costs less in total than retraining after each (None: never or n/a)."""
    if retrain is None or row is retrain:
        return None
    d_once = row["one_off"]["mean"] - retrain["one_off"]["mean"]
    d_each = retrain["per_request"]["mean"] - row["per_request"]["mean"]
    if d_each <= 0:
        return None
    return max(0.0, d_once / d_each)


def _recommend(rows: Sequence[Mapping[str, Any]], cfg: Mapping[str, Any], target_k: int, judged_k: int) -> str:
    """One paragraph naming the cheapest strategy that passes verification and the utility floor, with numbers."""
    eligible = [r for r in rows if r["verified"] and r["meets_floor"]]
    if not eligible:
        return (
            f"No strategy passed verification (every request reached, Avg. Gap ≤ {cfg['max_avg_gap']}) and the "
            f"utility floor after {judged_k} requests; retraining after each request remains the safe choice."
        )
    ranked = sorted(eligible, key=lambda r: r["totals"][str(target_k)]["mean"])
    best = ranked[0]
    ext = " (extrapolated)" if target_k in best["extrapolated"] else ""
    text = (
        f"For {target_k} requests, {best['strategy']} costs least among the strategies that pass: "
        f"{best['totals'][str(target_k)]['mean']:.3g} standard trainings in total{ext} "
        f"({best['one_off']['mean']:.3g} one-off + {best['per_request']['mean']:.3g} per request), with test "
        f"accuracy {100 * best['test_acc'][str(judged_k)]['mean']:.1f}% and Avg. Gap "
        f"{best['avg_gap'][str(judged_k)]['mean']:.3f} after {judged_k} requests (seeds {best['seeds']})."
    )
    if len(ranked) > 1:
        second = ranked[1]
        text += (
            f" Next: {second['strategy']} at {second['totals'][str(target_k)]['mean']:.3g} standard trainings, "
            f"{100 * second['test_acc'][str(judged_k)]['mean']:.1f}% accuracy."
        )
        a, b = best["totals"][str(target_k)], second["totals"][str(target_k)]
        if all(math.isfinite(v) for v in (a["ci_high"], b["ci_low"])) and a["ci_high"] >= b["ci_low"]:
            text += " Their cost intervals overlap: on this evidence the two are not told apart by cost."
    failed = [r["strategy"] for r in rows if not r["verified"]]
    if failed:
        text += f" Not verified (a request missed its target, or Avg. Gap > {cfg['max_avg_gap']}): {', '.join(failed)}."
    low = [r["strategy"] for r in rows if r["verified"] and not r["meets_floor"]]
    if low:
        text += f" Below the utility floor of {cfg['utility_floor']}: {', '.join(low)}."
    return text


# -- plots ----------------------------------------------------------------------------------------------
def plot_cost_vs_k(summary: Mapping[str, Any], path: Path) -> Path:
    """Total cost (standard trainings) against the request count; dashed where extrapolated."""
    fig = new_figure(7.5, 4.6)
    ax = fig.subplots()
    ks = np.unique(np.geomspace(1, max(summary["ks"]), 40).round().astype(int))
    served = summary["served"]
    for row in summary["rows"]:
        one_off, per = row["one_off"]["mean"], row["per_request"]["mean"]
        totals = one_off + ks * per
        (line,) = ax.plot(ks[ks <= served], totals[ks <= served], label=row["strategy"])
        if (ks > served).any():
            ax.plot(ks[ks >= served], one_off + ks[ks >= served] * per, ls="--", color=line.get_color())
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("deletion requests K (dashed: extrapolated from the served ones)")
    ax.set_ylabel("total cost (standard trainings)")
    ax.set_title("Cost of honouring K requests (one-off training + per-request cost)", fontsize=10)
    fig.legend(loc="outside right upper", fontsize=8)
    return save_figure(fig, path)


def plot_pareto(summary: Mapping[str, Any], path: Path, floor: float | None) -> Path:
    """Test accuracy after the requests against the total cost for the target K; the Pareto front joined."""
    fig = new_figure(7.5, 4.6)
    ax = fig.subplots()
    k, judged = summary["target_k"], str(summary["judged_k"])
    points = []
    for row in summary["rows"]:
        x, y = row["totals"][str(k)]["mean"], row["test_acc"].get(judged, {}).get("mean", math.nan)
        if not (math.isfinite(x) and math.isfinite(y)):
            continue
        marker = "o" if row["verified"] else "x"
        ax.scatter([x], [100 * y], marker=marker, s=40)
        ax.annotate(row["strategy"], (x, 100 * y), fontsize=7, xytext=(4, 3), textcoords="offset points")
        points.append((x, y))
    front, best = [], -math.inf
    for x, y in sorted(points):
        if y > best:
            front.append((x, y))
            best = y
    if len(front) > 1:
        ax.plot([p[0] for p in front], [100 * p[1] for p in front], color="grey", lw=1, ls=":")
    if floor is not None:
        ax.axhline(100 * floor, color="tab:red", lw=1, ls="--", label="utility floor")
        ax.legend(fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel(f"total cost for K={k} requests (standard trainings)")
    ax.set_ylabel(f"test accuracy after {judged} requests (%)")
    ax.set_title("Utility vs cost (o verified, x not verified; dotted: Pareto front)", fontsize=10)
    return save_figure(fig, path)


# -- document -------------------------------------------------------------------------------------------
def _blocks(results: Mapping[str, Any], summary: Mapping[str, Any]) -> list[Block]:
    cfg = results["config"]
    judged = str(summary["judged_k"])
    blocks: list[Block] = [
        ("h1", f"Strategy plan: {results.get('preset', 'custom')}"),
        ("p", summary["recommendation"]),
        (
            "kv",
            [
                ("training preset", f"{cfg['train']} {' '.join(cfg['train_overrides'])}".strip()),
                ("data", f"{results['data']['name']} ({results['data']['train_rows']} training rows)"),
                (
                    "requests",
                    f"{summary['served']} served one after another, {cfg['request_size']} rows each"
                    + (f" (one {cfg['group_column']} value each)" if cfg.get("group_column") else ""),
                ),
                ("seeds", ", ".join(str(s) for s in cfg["seeds"])),
                (
                    "verification",
                    f"every request reaches the retrained model's forget "
                    f"{cfg['stop']['rule'].split('_')[1]}, and Avg. Gap ≤ {cfg['max_avg_gap']}; "
                    "retraining and SISA are exact",
                ),
                ("created", str(results.get("created"))),
            ],
        ),
        (
            "note",
            "Costs are multiples of one standard training measured in the same run (the median of the seed's "
            "full trainings; mean [95% CI] over seeds). Totals beyond the served requests extrapolate the served "
            "mean and are marked *.",
        ),
        ("h2", "Cost"),
    ]
    cost = Table(
        [
            "strategy",
            "one-off",
            "per request",
            *(f"total K={k}" + ("*" if k in summary["rows"][0]["extrapolated"] else "") for k in summary["ks"]),
            "break-even vs retrain (K)",
            "inference ×",
        ]
    )
    for r in summary["rows"]:
        be = r["break_even_vs_retrain"]
        cost.add(
            [
                r["strategy"],
                _fmt(r["one_off"]),
                _fmt(r["per_request"]),
                *(_fmt(r["totals"][str(k)]) for k in summary["ks"]),
                "–" if be is None else f"{be:.1f}",
                _fmt(r.get("inference_ratio")),
            ],
            reference=r["strategy"] == "retrain",
        )
    blocks += [("table", cost), ("img", ("cost vs K", "plots/cost_vs_k.png")), ("h2", "Utility and verification")]
    util = Table(
        [
            "strategy",
            *(f"test acc K={k} (%)" for k in sorted(summary["rows"][0]["test_acc"], key=int)),
            f"Avg. Gap K={judged}",
            f"MIA AUC K={judged}",
            "every request reached (seeds) / share of requests",
            "relearned forget acc (%)",
            "verified",
            "meets floor",
        ]
    )
    for r in summary["rows"]:
        util.add(
            [
                r["strategy"],
                *(_fmt(r["test_acc"][k], pct=True) for k in sorted(r["test_acc"], key=int)),
                _fmt(r["avg_gap"].get(judged)),
                _fmt(r["mia_auc"].get(judged)),
                f"{100 * r['reached']:.0f}% / {100 * r['reached_share']:.0f}%",
                _fmt(r["relearn"], pct=True),
                "yes" if r["verified"] else "no",
                "yes" if r["meets_floor"] else "no",
            ],
            reference=r["strategy"] == "retrain",
        )
    blocks += [
        ("table", util),
        (
            "note",
            "Relearned forget accuracy: mean held-out forget accuracy during the "
            "relearning attack after the last request; the retrain row is the floor an exact deletion sets.",
        ),
        ("img", ("utility vs cost", "plots/pareto.png")),
    ]
    return blocks


def write_plan_report(results: Mapping[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Writes ``report.md``, ``report.html`` and ``plots/{cost_vs_k,pareto}.png`` (each atomically)."""
    out = Path(out_dir)
    summary = results["summary"]
    paths = {
        "cost_vs_k": plot_cost_vs_k(summary, out / "plots" / "cost_vs_k.png"),
        "pareto": plot_pareto(summary, out / "plots" / "pareto.png", results["config"].get("utility_floor")),
    }
    blocks = _blocks(results, summary)
    markdown, page = render_markdown(blocks), render_html(blocks, f"Strategy plan: {results.get('preset')}")
    paths["markdown"] = atomic_write(out / "report.md", lambda p: p.write_text(markdown, encoding="utf-8"))
    paths["html"] = atomic_write(out / "report.html", lambda p: p.write_text(page, encoding="utf-8"))
    return paths
