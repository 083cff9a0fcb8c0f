"""Report of the TOFU language-model benchmark: tables of forget quality / model utility and two plots."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ready2unlearn.artifacts import atomic_write

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

COMPARE_COLUMNS = ("model", "method", "steps ratio (model/standard)", "forget quality (model, standard)",
                   "model utility Δ (model − standard)", "relearn min loss Δ (model − standard)")  # fmt: skip
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


def _relearn_loss(cell: Mapping[str, Any]) -> float:
    """Lowest held-out forget answer loss the relearning attack reaches (lower = more recovered)."""
    losses = [p["forget_loss"] for r in cell.get("relearn", {}).values() for p in r["curve"]]
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
    by = {(r["model"], r["method"]): r for r in table}
    compare = []
    for (model, method), r in by.items():
        if model in ("standard", "retrained") or method == "—" or ("standard", method) not in by:
            continue
        s = by[("standard", method)]
        compare.append({
            "model": model, "method": method,
            "steps ratio (model/standard)": r["steps"] / s["steps"] if s["steps"] else float("nan"),
            "forget quality (model, standard)": (r["forget quality"], s["forget quality"]),
            "model utility Δ (model − standard)": r["model utility"] - s["model utility"],
            "relearn min loss Δ (model − standard)": r["relearn min loss"] - s["relearn min loss"],
        })  # fmt: skip
    seconds = {n[0]: r["train seconds"] for n, r in by.items() if n[1] == "—"}
    ratios = {m: v / seconds["standard"] for m, v in seconds.items() if "standard" in seconds and m != "retrained"}
    return {
        "table": table,
        "compare": compare,
        "train_time_ratio": ratios.get("ready", float("nan")),
        "train_time_ratios": ratios,
    }


def _fmt(v: Any) -> str:
    if isinstance(v, tuple):
        return " vs ".join(_fmt(x) for x in v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return "—"
        return f"{v:.2e}" if v != 0 and abs(v) < 1e-3 else f"{v:.3f}"
    return str(v)


def _md_table(rows: Sequence[Mapping[str, Any]], cols: Sequence[str]) -> list[str]:
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(_fmt(r.get(c, float("nan"))) for c in cols) + " |" for r in rows]
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
        "Training time against the standard model (same run): "
        + ", ".join(f"{m} {r:.2f}×" for m, r in summary.get("train_time_ratios", {}).items() if m != "standard")
        + ".",
        "",
        "## Ready and the baselines against standard, per method",
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
