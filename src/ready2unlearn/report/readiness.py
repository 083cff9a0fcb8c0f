"""Summary and target checks of a readiness benchmark (``r2u ready-bench``), paired by seed.

Every comparison is made inside one seed — ready (or a baseline) vs standard model, same request, same stop
rule, same run — and then summarised over seeds with a 95% confidence interval (:mod:`.stats`): differences
by a t-interval, ratios by the geometric mean with a t-interval on the log-ratios. Step ratios are censored
when a run exhausted its budget (shown as a bound, never as a value). Targets (issue 5, DESIGN §5) apply to
the ready model on the settings a group marks ``targeted`` and the bench's main ``methods``; each is judged
on its interval: met, missed or inconclusive. Everything else is reported.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ready2unlearn.report.stats import CensoredRatio, censored_ratio, paired_difference, paired_ratio, ratio_from_dict

#: name → (description, comparison, threshold). Each is judged on the 95% interval over seeds.
TARGETS: dict[str, tuple[str, str, float]] = {
    "steps_ratio": ("unlearning steps, ready / standard (censored runs as bounds)", "<=", 1 / 3),
    "after_vs_standard": ("accuracy after unlearning, ready − standard", ">=", 0.0),
    "after_gap_to_retrained": ("accuracy after unlearning, retrained − ready", "<=", 0.02),
    "before_vs_standard": ("test accuracy before unlearning, ready − standard (utility cost)", ">=", -0.005),
    "relearn_gap_closed": (
        "share of the standard-to-retrained-floor relearning gap that readiness closes (mean over the attack)",
        ">=",
        0.5,
    ),
    "train_cost_ratio": (
        "training cost incl. α calibration, ready / standard (interleaved probe)",
        "<=",
        1.5,
    ),
}
#: The steps target per request kind (issue 12): a third of the standard model's steps for class requests,
#: half for random / sample / group requests (their loss-based stop leaves less to speed up).
STEPS_THRESHOLD = {"class": 1 / 3, "random": 1 / 2, "samples": 1 / 2, "group": 1 / 2}
#: Target profiles, chosen by the bench config's ``targets``: ``vision`` is the table above (issue 12);
#: ``language`` is issue 13's targets for language models (the AG News text classifier, as for TOFU in
#: :mod:`ready2unlearn.report.lm`): steps ≤ 1/2 for every request kind, utility before unlearning ≥ standard −
#: 0.02, training ≤ 2×. A pretrained encoder fine-tuned for two epochs is not held to a from-scratch CNN's bar.
TARGET_PROFILES: dict[str, dict[str, float]] = {
    "vision": {},
    "language": {"steps_ratio": 1 / 2, "before_vs_standard": -0.02, "train_cost_ratio": 2.0},
}
#: Fields that hold a :class:`~ready2unlearn.report.stats.CensoredRatio` per seed (summarised geometrically).
#: ``train_time_ratio`` is the wall-clock ratio of the two whole training runs (reported, not judged: on a
#: shared machine it moves several-fold between seeds); the target uses the probe's ``train_cost_ratio``
#: (:mod:`ready2unlearn.readiness.timing`).
RATIOS = ("steps_ratio", "train_time_ratio", "train_cost_ratio", "steps_ratio_vs_negtrain", "negtrain_steps_ratio")
#: Per-run quantities and paired differences (summarised by mean, std and t-interval).
FIELDS = (
    "steps", "reached", "before_forget_acc", "before_forget_loss", "acc_before", "acc_after", "forget_acc_after",
    "forget_loss_after", "mia_auc", "mia_efficacy", "avg_gap", "forget_quality", "relearn_forget_acc",
    "relearn_final_forget_acc", "retrained_acc", "retrained_forget_acc", "retrained_forget_loss",
    "retrained_mia_auc", "retrained_mia_efficacy", "retrained_relearn_forget_acc",
    "retrained_relearn_final_forget_acc", "train_seconds", "unlearn_seconds", "standard_steps",
    "standard_reached", "after_vs_standard", "after_gap_to_retrained", "before_vs_standard",
    "relearn_vs_standard", "relearn_vs_retrained", "relearn_gap_closed", "relearn_gap_closed_final",
    "avg_gap_vs_standard", "negtrain_before_vs_standard",
)  # fmt: skip
#: Below this standard-to-floor recovery gap (1 point of forget accuracy) there is nothing to close: the
#: fraction closed is undefined for that seed rather than a division by almost nothing.
MIN_RELEARN_GAP = 0.01


def _acc_key(kind: str) -> str:
    return "test_retain_acc" if kind == "class" else "test_acc"


def _relearn(relearn: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    return next(iter(relearn.values())) if relearn else None


def relearn_final(relearn: Mapping[str, Any] | None) -> float:
    """Forget accuracy at the end of the (first) relearning attack; NaN when there is none."""
    r = _relearn(relearn)
    return math.nan if r is None else float(r["final_forget_acc"])


def relearn_mean(relearn: Mapping[str, Any] | None) -> float:
    """Mean forget accuracy over the attack's steps (step 0, the unlearned state itself, excluded).

    The recovery judgments use this rather than the final value: after ten Adam steps on ten samples a class
    is simply re-learned — the *retrained* model reaches 98.5% on digits too — so the final value
    saturates for every model and cannot tell resistant from fragile; how fast forget accuracy climbs can.
    """
    r = _relearn(relearn)
    if r is None:
        return math.nan
    accs = [p["forget_acc"] for p in r["curve"] if p["step"] > 0]
    return float(np.mean(accs)) if accs else math.nan


def gap_closed(standard: float, variant: float, floor: float) -> float:
    """``(standard − variant) / (standard − floor)``: the share of the standard-to-floor recovery gap closed.

    1 = the variant recovers no more than the retrained model, 0 = no better than the standard model,
    < 0 = worse. NaN when the standard model already recovers within :data:`MIN_RELEARN_GAP` of the floor.
    """
    gap = standard - floor
    if not math.isfinite(gap) or gap < MIN_RELEARN_GAP:
        return math.nan
    return (standard - variant) / gap


def _ratio(run: Mapping[str, Any], other: Mapping[str, Any]) -> CensoredRatio:
    return censored_ratio(run["steps"], run["reached"], other["steps"], other["reached"])


def comparisons(cell: Mapping[str, Any], cost: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Per (variant, method) numbers of one cell, and the paired comparisons with the standard model.

    ``cost`` is the timing probe's record for the cell's seed and group (``results["cost"]``), if measured.
    """
    acc = _acc_key(cell["kind"])
    ref = cell["reference"]
    rm = ref["metrics"]
    by = {(r["variant"], r["method"]): r for r in cell["runs"]}
    floor_mean, floor_final = relearn_mean(ref["relearn"]), relearn_final(ref["relearn"])
    out = []
    for (variant, method), run in by.items():
        m = run["metrics"]
        row: dict[str, Any] = {
            "group": cell["group"], "setting": cell["setting"], "seed": cell["seed"], "variant": variant,
            "kind": cell.get("kind"),
            "method": method, "targeted": cell["targeted"], "steps": run["steps"],
            "reached": float(bool(run["reached"])),
            "before_forget_acc": run["before"]["forget_acc"], "before_forget_loss": run["before"]["forget_loss"],
            "acc_before": run["before"]["test_acc"], "acc_after": m[acc], "forget_acc_after": m["forget_acc"],
            "forget_loss_after": m["forget_loss"], "mia_auc": m.get("mia_auc", math.nan),
            "mia_efficacy": m.get("mia_efficacy", math.nan), "avg_gap": run.get("gaps", {}).get("avg_gap", math.nan),
            "forget_quality": m.get("forget_quality", math.nan), "relearn_forget_acc": relearn_mean(run["relearn"]),
            "relearn_final_forget_acc": relearn_final(run["relearn"]), "retrained_acc": rm[acc],
            "retrained_forget_acc": rm["forget_acc"], "retrained_forget_loss": rm.get("forget_loss", math.nan),
            "retrained_mia_auc": rm.get("mia_auc", math.nan),
            "retrained_mia_efficacy": rm.get("mia_efficacy", math.nan),
            "retrained_relearn_forget_acc": floor_mean, "retrained_relearn_final_forget_acc": floor_final,
            "train_seconds": run["train_seconds"], "unlearn_seconds": run["seconds"],
        }  # fmt: skip
        std = by.get(("standard", method))
        if std is not None and variant != "standard":
            row.update(_versus_standard(run, std, acc, ref, floor_mean, floor_final))
            if variant == "ready" and cost is not None:
                row["train_cost_ratio"] = CensoredRatio.exact(cost["ready_seconds"], cost["standard_seconds"]).to_dict()
            neg = by.get(("negtrain", method))
            if variant == "ready" and neg is not None:
                # Ready vs the capped negative-training term at equal utility cost: both costs side by side.
                row["steps_ratio_vs_negtrain"] = _ratio(run, neg).to_dict()
                row["negtrain_steps_ratio"] = _ratio(neg, std).to_dict()
                row["negtrain_before_vs_standard"] = neg["before"]["test_acc"] - std["before"]["test_acc"]
        out.append(row)
    return out


def _versus_standard(run, std, acc, ref, floor_mean, floor_final) -> dict[str, Any]:
    m, sm = run["metrics"], std["metrics"]
    rec, std_rec = relearn_mean(run["relearn"]), relearn_mean(std["relearn"])
    return {
        "steps_ratio": _ratio(run, std).to_dict(), "standard_steps": std["steps"],
        "standard_reached": float(bool(std["reached"])),
        "train_time_ratio": CensoredRatio.exact(run["train_seconds"], std["train_seconds"]).to_dict(),
        "after_vs_standard": m[acc] - sm[acc], "after_gap_to_retrained": ref["metrics"][acc] - m[acc],
        "before_vs_standard": run["before"]["test_acc"] - std["before"]["test_acc"],
        "relearn_vs_standard": rec - std_rec, "relearn_vs_retrained": rec - floor_mean,
        "relearn_gap_closed": gap_closed(std_rec, rec, floor_mean),
        "relearn_gap_closed_final": gap_closed(relearn_final(std["relearn"]), relearn_final(run["relearn"]),
                                               floor_final),
        "avg_gap_vs_standard": run.get("gaps", {}).get("avg_gap", math.nan)
        - std.get("gaps", {}).get("avg_gap", math.nan),
    }  # fmt: skip


def _threshold(name: str, kind: str | None, profile: str = "vision") -> tuple[str | None, float | None]:
    if name not in TARGETS:
        return None, None
    _, op, threshold = TARGETS[name]
    if name in TARGET_PROFILES[profile]:
        return op, TARGET_PROFILES[profile][name]
    if name == "steps_ratio" and kind is not None:
        threshold = STEPS_THRESHOLD.get(kind, threshold)
    return op, threshold


def _summarise_field(name: str, items: Sequence[Mapping[str, Any]], profile: str) -> dict[str, Any]:
    op, threshold = _threshold(name, items[0].get("kind"), profile)
    if name in RATIOS:
        return paired_ratio([ratio_from_dict(r[name]) for r in items if name in r], op, threshold)  # type: ignore[arg-type]
    return paired_difference([float(r.get(name, math.nan)) for r in items], op, threshold)  # type: ignore[arg-type]


def summarise_readiness(results: Mapping[str, Any]) -> dict[str, Any]:
    """Aggregates the per-seed comparisons and judges the targets on their 95% intervals.

    Returns:
        ``{"rows", "targets", "vs_negtrain", "all_targets_met"}``: a row per (group, setting, variant, method)
        with a statistic per field (``mean``, ``std``/``std_log``, ``n``, ``ci_low``, ``ci_high``; ratios also
        ``censored`` and ``text``); a target per (targeted setting, main method) with its ``verdict`` (``met``,
        ``missed``, ``inconclusive`` or ``n/a``) and ``met`` (True / False / None for the last two), judged
        on the thresholds of the config's ``targets`` profile (:data:`TARGET_PROFILES`, default ``vision``);
        ready vs negative training per (group, setting, method). ``all_targets_met`` holds when every
        target that applies is met.
    """
    profile = results["config"].get("targets", "vision")
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = defaultdict(list)
    costs = {(c["seed"], c["group"]): c for c in results.get("cost", [])}
    for cell in results["cells"]:
        for row in comparisons(cell, costs.get((cell["seed"], cell["group"]))):
            groups[(row["group"], row["setting"], row["variant"], row["method"])].append(row)
    rows = []
    for (group, setting, variant, method), items in groups.items():
        fields = [f for f in (*FIELDS, *RATIOS) if any(f in r for r in items)]
        rows.append({"group": group, "setting": setting, "variant": variant, "method": method,
                     "kind": items[0].get("kind"), "targeted": items[0]["targeted"],
                     "seeds": sorted(r["seed"] for r in items),
                     **{f: _summarise_field(f, items, profile) for f in fields}})  # fmt: skip
    main = {m["name"] for m in results["config"]["methods"]}
    targets = []
    for row in rows:
        if not row["targeted"] or row["variant"] != "ready" or row["method"] not in main:
            continue
        for name, (text, _, _) in TARGETS.items():
            op, threshold = _threshold(name, row.get("kind"), profile)
            st = row.get(name) or {"mean": math.nan, "n": 0, "verdict": "n/a"}
            verdict = st["verdict"]
            targets.append({"group": row["group"], "setting": row["setting"], "method": row["method"],
                            "target": name, "description": text, "op": op, "threshold": threshold,
                            "verdict": verdict, "met": {"met": True, "missed": False}.get(verdict),
                            **{k: st.get(k, math.nan) for k in ("mean", "std", "std_log", "ci_low", "ci_high")},
                            "n": st["n"], "censored": st.get("censored", 0), "text": st.get("text")})  # fmt: skip
    applicable = [t for t in targets if t["verdict"] != "n/a"]
    return {"rows": rows, "targets": targets, "vs_negtrain": _vs_negtrain(rows),
            "all_targets_met": bool(applicable) and all(t["verdict"] == "met" for t in applicable)}  # fmt: skip


def _vs_negtrain(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Ready vs the negative-training baseline: step ratios and both utility costs, per (group, setting, method)."""
    out = []
    for r in rows:
        if r["variant"] == "ready" and "steps_ratio_vs_negtrain" in r:
            out.append({k: r[k] for k in ("group", "setting", "method", "targeted", "steps_ratio_vs_negtrain",
                                          "steps_ratio", "negtrain_steps_ratio", "before_vs_standard",
                                          "negtrain_before_vs_standard")})  # fmt: skip
    return out
