"""Report of the TOFU language-model benchmark: tables of forget quality / model utility and two plots."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ready2unlearn.artifacts import atomic_write
from ready2unlearn.report.stats import CensoredRatio, censored_ratio, paired_difference, paired_ratio

#: (column, how to read it from a cell or model evaluation) in the order the report shows them.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("forget quality", "forget_quality"),
    ("model utility", "eval.model_utility"),
    ("forget ROUGE-L", "eval.forget.rougeL_recall"),
    ("retain ROUGE-L", "eval.retain.rougeL_recall"),
    ("forget answer loss", "eval.forget_answer_loss"),
    ("retain answer loss", "eval.retain_answer_loss"),
    ("MIA AUC (loss)", "eval.mia_auc.loss"),
)

COMPARE_COLUMNS = ("model", "method", "steps, model / standard", "utility before, Δ", "utility after, Δ",
                   "relearning gap closed", "training time, model / standard")  # fmt: skip
#: The language-model targets (issue 13), judged on the paired 95% intervals: (column, op, threshold).
TARGETS: tuple[tuple[str, str, float], ...] = (
    ("steps, model / standard", "<=", 0.5),
    ("utility before, Δ", ">=", -0.02),
    ("utility after, Δ", ">=", 0.0),
    ("relearning gap closed", ">=", 0.5),
    ("training time, model / standard", "<=", 2.0),
)
TABLE_COLUMNS = ("model", "method", "seeds", "steps", "reached", *(c for c, _ in COLUMNS), "relearn min loss")


def _get(obj: Any, path: str) -> float:
    for key in path.split("."):
        if not isinstance(obj, Mapping) or key not in obj:
            return float("nan")
        obj = obj[key]
    return float(obj) if obj is not None else float("nan")


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _relearn_losses(relearn: Mapping[str, Any] | None) -> list[float]:
    """Held-out forget answer losses at every point of every relearning attack."""
    return [p["forget_loss"] for r in (relearn or {}).values() for p in r["curve"]]


def _relearn_loss(cell: Mapping[str, Any]) -> float:
    """Lowest held-out forget answer loss the relearning attack reaches (lower = more recovered)."""
    losses = _relearn_losses(cell.get("relearn"))
    return min(losses) if losses else float("nan")


def summarise_lm(results: Mapping[str, Any]) -> dict[str, Any]:
    """Per (model, method) means over seeds, and each prepared model (ready, baselines) against standard.

    Returns:
        ``table`` (one row per model × method), ``compare`` (ready and every baseline against the standard
        model, per method), ``train_time_ratio`` (ready / standard) and ``train_time_ratios`` (every model).
    """
    rows: dict[str, dict[str, Any]] = {}
    for seed_models in results["models"].values():
        for name, m in seed_models.items():
            row = rows.setdefault(name, {"model": name, "method": "—", "n": 0, "_v": {}})
            row["n"] += 1
            cell = {"eval": m["eval"], "forget_quality": m["eval"].get("forget_quality", float("nan"))}
            if name == "retrained":
                cell["forget_quality"] = 1.0  # the reference itself: its truth ratios are the target
            for col, path in COLUMNS:
                row["_v"].setdefault(col, []).append(_get(cell, path))
            row["_v"].setdefault("train seconds", []).append(m["info"]["seconds"])
    for cell in results["cells"]:
        row = rows.setdefault(f"{cell['base']}/{cell['method']}",
                              {"model": cell["base"], "method": cell["method"], "n": 0, "_v": {}})  # fmt: skip
        row["n"] += 1
        for col, path in COLUMNS:
            row["_v"].setdefault(col, []).append(_get(cell, path))
        row["_v"].setdefault("steps", []).append(cell["steps"])
        row["_v"].setdefault("reached", []).append(float(bool(cell["reached"])))
        row["_v"].setdefault("relearn min loss", []).append(_relearn_loss(cell))
    table = []
    for row in rows.values():
        table.append({"model": row["model"], "method": row["method"], "seeds": row["n"],
                      **{k: _mean(v) for k, v in row.pop("_v").items()}})  # fmt: skip
    return {"table": table, "compare": compare_to_standard(results), **_time_ratios(table)}


def _time_ratios(table: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    seconds = {r["model"]: r["train seconds"] for r in table if r["method"] == "—"}
    ratios = {m: v / seconds["standard"] for m, v in seconds.items() if "standard" in seconds and m != "retrained"}
    return {"train_time_ratio": ratios.get("ready", float("nan")), "train_time_ratios": ratios}


def _mean_relearn_loss(relearn: Mapping[str, Any] | None) -> float:
    """Mean held-out forget answer loss over the relearning attack (higher = less recovered)."""
    losses = _relearn_losses(relearn)
    return float(np.mean(losses)) if losses else float("nan")


def compare_to_standard(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each prepared model (ready, every baseline) against the standard one, per method, paired by seed.

    Per seed: the steps ratio as a censored ratio (a run that used up its budget only bounds it); model
    utility before and after unlearning as differences; the share of the standard model's relearning gap to
    the retrained floor that the model closes (mean held-out forget answer loss over the attack:
    ``(model − standard) / (retrained − standard)``, 1 = as hard to relearn as never-seen data); the training
    time ratio. Over seeds: geometric means / means with 95% intervals, each judged against :data:`TARGETS`.
    """
    models = results["models"]
    cells = {(c["base"], c["method"], str(c["seed"])): c for c in results["cells"]}
    out = []
    for base, method in dict.fromkeys((c["base"], c["method"]) for c in results["cells"]):
        if base == "standard":
            continue
        ratios, before, after, gap, time = [], [], [], [], []
        for seed, ms in models.items():
            m, s = cells.get((base, method, seed)), cells.get(("standard", method, seed))
            if m is None or s is None or base not in ms:
                continue
            ratios.append(censored_ratio(m["steps"], m["reached"], s["steps"], s["reached"]))
            before.append(_get(ms[base], "eval.model_utility") - _get(ms["standard"], "eval.model_utility"))
            after.append(_get(m, "eval.model_utility") - _get(s, "eval.model_utility"))
            floor = _mean_relearn_loss(ms.get("retrained", {}).get("relearn"))
            lm, ls = _mean_relearn_loss(m.get("relearn")), _mean_relearn_loss(s.get("relearn"))
            gap.append((lm - ls) / (floor - ls) if math.isfinite(floor) and abs(floor - ls) > 1e-9 else float("nan"))
            time.append(CensoredRatio("exact", ms[base]["info"]["seconds"] / ms["standard"]["info"]["seconds"],
                                      ms[base]["info"]["seconds"], ms["standard"]["info"]["seconds"], 1.0))  # fmt: skip
        row: dict[str, Any] = {"model": base, "method": method, "seeds": len(ratios)}
        series = {"utility before, Δ": before, "utility after, Δ": after, "relearning gap closed": gap}
        for column, op, threshold in TARGETS:
            if column in series:
                row[column] = paired_difference(series[column], op, threshold)  # type: ignore[arg-type]
            else:
                row[column] = paired_ratio(ratios if column.startswith("steps") else time, op, threshold)  # type: ignore[arg-type]
            row[column]["target"] = f"{op} {threshold:g}"
        out.append(row)
    return out


def fmt_cell(v: Any) -> str:
    """One table cell: a paired statistic with its interval and verdict, a pair, a number or text."""
    if isinstance(v, Mapping):  # a paired statistic: its interval and verdict against the target
        if "text" in v:
            text = v["text"]
        elif v.get("n"):
            ci = f" [{v['ci_low']:+.3f}, {v['ci_high']:+.3f}]" if math.isfinite(v["ci_low"]) else ""
            text = f"{v['mean']:+.3f}{ci} (n={v['n']})"
        else:
            text = "–"
        verdict = v.get("verdict")
        return (
            f"{text}; {v['target']}: **{verdict}**"
            if verdict in ("missed", "inconclusive")
            else (f"{text}; {v['target']}: {verdict}" if verdict else text)
        )
    if isinstance(v, tuple):
        return " vs ".join(fmt_cell(x) for x in v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return "—"
        return f"{v:.2e}" if v != 0 and abs(v) < 1e-3 else f"{v:.3f}"
    return str(v)


def _md_table(rows: Sequence[Mapping[str, Any]], cols: Sequence[str]) -> list[str]:
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(fmt_cell(r.get(c, float("nan"))) for c in cols) + " |" for r in rows]
    return out


def plot_quality_utility(summary: Mapping[str, Any], path: str | Path) -> Path | None:
    """Model utility vs forget quality (log scale), one marker per model × method: up and right is better."""
    from matplotlib.figure import Figure

    rows = [r for r in summary["table"] if math.isfinite(r["forget quality"]) and math.isfinite(r["model utility"])]
    if not rows:
        return None
    fig = Figure(figsize=(6.4, 4.4), constrained_layout=True)
    ax = fig.add_subplot()
    colors = {"standard": "tab:blue", "ready": "tab:orange", "retrained": "black", "neftune": "tab:green",
              "downweight": "tab:purple", "dp": "tab:brown"}  # fmt: skip
    markers = {m: k for m, k in zip(dict.fromkeys(r["method"] for r in rows), "os^DvPX*h", strict=False)}
    for r in rows:
        ax.scatter(max(r["forget quality"], 1e-30), r["model utility"], color=colors.get(r["model"], "gray"),
                   marker=markers[r["method"]], s=60, label=f"{r['model']} {r['method']}")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("forget quality (KS p-value vs retrained, log)")
    ax.set_ylabel("model utility")
    ax.set_title("TOFU: standard, ready and baselines (— = before unlearning)")
    ax.legend(fontsize=7, loc="best")
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=120))
    return Path(path)


def plot_lm_curves(cells: Sequence[Mapping[str, Any]], path: str | Path) -> Path | None:
    """Forget answer loss vs unlearning step: standard solid, ready dashed, baselines dotted; a colour per method."""
    from matplotlib.figure import Figure

    if not cells:
        return None
    fig = Figure(figsize=(6.4, 4.4), constrained_layout=True)
    ax = fig.add_subplot()
    methods = list(dict.fromkeys(c["method"] for c in cells))
    palette = dict(zip(methods, ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"), strict=False))
    seen = set()
    for c in cells:
        steps = [p["step"] for p in c["curve"]]
        loss = [p["forget_loss"] for p in c["curve"]]
        label = f"{c['base']} {c['method']}"
        style = {"standard": "-", "ready": "--"}.get(c["base"], ":")
        ax.plot(steps, loss, color=palette.get(c["method"], "gray"), linestyle=style,
                label=None if label in seen else label)  # fmt: skip
        seen.add(label)
    ax.axhline(cells[0]["target"], color="black", linewidth=0.8, linestyle=":", label="retrained (target)")
    ax.set_xlabel("unlearning step")
    ax.set_ylabel("forget answer loss (nats/token)")
    ax.legend(fontsize=7)
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=120))
    return Path(path)


def write_lm_report(results: Mapping[str, Any], out_dir: str | Path) -> dict[str, Any]:
    """Writes ``report.md`` and its plots into ``out_dir``; returns the summary stored in results.json."""
    out = Path(out_dir)
    summary = summarise_lm(results)
    plots = {"quality_utility": plot_quality_utility(summary, out / "quality_utility.png"),
             "curves": plot_lm_curves(results["cells"], out / "unlearning_curves.png")}  # fmt: skip
    cfg, data = results["config"], results["data"]
    lines = [
        f"# TOFU benchmark: `{results['preset']}`",
        "",
        f"Model `{cfg['train']['model']['name']}`, forget split `{cfg['tofu']['forget']}` "
        f"({data['forget_rows']} QA pairs), trained on {data['train_rows']} pairs ({data['retain_authors']} "
        f"retain authors + the forget authors); retrained on {data['retain_rows']}. Seeds: {cfg['seeds']}. "
        f"Stop rule: {cfg['stop']['rule']} ≥ the retrained model's, at most {cfg['stop']['max_steps']} steps.",
        "",
        "Forget quality: KS-test p-value of the forget set's truth ratios against the retrained model's "
        "(higher = closer to never having seen the data). Model utility: harmonic mean of probability, ROUGE-L "
        "and truth ratio on retain, real-author and world-fact questions. MIA AUC: loss attack, forget vs "
        "unseen holdout authors (0.5 = indistinguishable). Relearn min loss: lowest held-out forget answer loss "
        "the relearning attack reaches (lower = more recovered).",
        "",
        "Training time against the standard model (mean wall-clock of the fine-tunes over the seeds; a model "
        "reused from an earlier run keeps that run's time, so the ratio is as fair as the runs' loads were equal): "
        + ", ".join(f"{m} {r:.2f}×" for m, r in summary.get("train_time_ratios", {}).items() if m != "standard")
        + ".",
        "",
        "## Ready and the baselines against standard, per method",
        "",
        "Paired by seed: steps as the geometric mean of per-seed ratios (a run that used up its budget only "
        "bounds its ratio: censored), utility differences and the share of the standard model's relearning gap "
        "to the retrained floor that the model closes as means, each with its 95% interval and judged against "
        "the language targets (steps ≤ 1/2, utility before ≥ standard − 0.02, after ≥ standard, relearning gap "
        "closed ≥ 1/2, training ≤ 2×); **missed** / **inconclusive** in bold.",
        "",
        *_md_table(summary["compare"], COMPARE_COLUMNS),
        "",
        "## All models (means over seeds; method — = before unlearning)",
        "",
        *_md_table(summary["table"], TABLE_COLUMNS),
        "",
    ]
    for title, p in (("Forget quality vs model utility", plots["quality_utility"]),
                     ("Unlearning curves", plots["curves"])):  # fmt: skip
        if p is not None:
            lines += [f"## {title}", "", f"![{title}]({p.name})", ""]
    text = "\n".join(lines)
    atomic_write(out / "report.md", lambda p: p.write_text(text, encoding="utf-8"))
    return summary
