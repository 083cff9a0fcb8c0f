"""Summary, target checks and the Markdown report of a readiness benchmark (``r2u ready-bench``).

Every number is a per-seed comparison made inside one run — ready vs standard model, same seed, same
request, same stop rule — then averaged over seeds (mean ± std). The targets (issue 5, DESIGN §5) apply to
the settings a group marks ``targeted`` and to the bench's main ``methods``; everything else is reported.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ready2unlearn.artifacts import atomic_write

#: name → (description, comparison, threshold); each is checked on the mean over seeds.
TARGETS: dict[str, tuple[str, str, float]] = {
    "steps_ratio": ("unlearning steps, ready / standard", "<=", 1 / 3),
    "after_vs_standard": ("accuracy after unlearning, ready − standard", ">=", 0.0),
    "after_gap_to_retrained": ("accuracy after unlearning, retrained − ready", "<=", 0.02),
    "before_vs_standard": ("test accuracy before unlearning, ready − standard", ">=", -0.01),
    "relearn_vs_standard": (
        "forget accuracy during the relearning attack (mean over its steps), ready − standard",
        "<=",
        0.0,
    ),
    "train_time_ratio": ("training wall-clock, ready / standard", "<=", 2.0),
}


def _acc_key(kind: str) -> str:
    return "test_retain_acc" if kind == "class" else "test_acc"


def _relearn_final(relearn: Mapping[str, Any] | None) -> float:
    if not relearn:
        return math.nan
    return float(next(iter(relearn.values()))["final_forget_acc"])


def _relearn_mean(relearn: Mapping[str, Any] | None) -> float:
    """Mean forget accuracy over the attack's steps (step 0, the unlearned state itself, excluded).

    The recovery target uses this rather than the final value: after ten Adam steps on ten samples a class
    is simply re-learned — the *retrained* model reaches 98.5% on digits too — so the final value
    saturates for every model and cannot tell resistant from fragile; how fast forget accuracy climbs can.
    """
    if not relearn:
        return math.nan
    accs = [p["forget_acc"] for p in next(iter(relearn.values()))["curve"] if p["step"] > 0]
    return float(np.mean(accs)) if accs else math.nan


def comparisons(cell: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per (variant ≠ standard, method) comparisons with the standard model of the same cell."""
    acc = _acc_key(cell["kind"])
    ref = cell["reference"]
    by = {(r["variant"], r["method"]): r for r in cell["runs"]}
    out = []
    for (variant, method), run in by.items():
        std = by.get(("standard", method))
        row = {"group": cell["group"], "setting": cell["setting"], "seed": cell["seed"], "variant": variant,
               "method": method, "targeted": cell["targeted"], "steps": run["steps"], "reached": run["reached"],
               "acc_after": run["metrics"][acc], "acc_before": run["before"]["test_acc"],
               "forget_acc_after": run["metrics"]["forget_acc"], "relearn_forget_acc": _relearn_mean(run["relearn"]),
               "forget_quality": run["metrics"].get("forget_quality", math.nan),
               "relearn_final_forget_acc": _relearn_final(run["relearn"]),
               "retrained_acc": ref["metrics"][acc], "retrained_relearn_forget_acc": _relearn_mean(ref["relearn"]),
               "train_seconds": run["train_seconds"], "unlearn_seconds": run["seconds"],
               "retrain_seconds": ref.get("seconds", math.nan)}  # fmt: skip
        if std is not None and variant != "standard":
            row.update(
                # Undefined when the standard model needs no step at all: there is nothing to speed up.
                steps_ratio=run["steps"] / std["steps"] if std["steps"] > 0 else math.nan,
                after_vs_standard=run["metrics"][acc] - std["metrics"][acc],
                after_gap_to_retrained=ref["metrics"][acc] - run["metrics"][acc],
                before_vs_standard=run["before"]["test_acc"] - std["before"]["test_acc"],
                relearn_vs_standard=_relearn_mean(run["relearn"]) - _relearn_mean(std["relearn"]),
                train_time_ratio=run["train_seconds"] / std["train_seconds"],
            )  # fmt: skip
        out.append(row)
    return out


def _stats(values: Sequence[float]) -> dict[str, float]:
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if len(v) == 0:
        return {"mean": math.nan, "std": math.nan, "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n": len(v)}


FIELDS = ("steps", "acc_after", "acc_before", "forget_acc_after", "forget_quality", "relearn_forget_acc",
          "relearn_final_forget_acc",
          "retrained_acc",
          "retrained_relearn_forget_acc", "train_seconds", "unlearn_seconds", *TARGETS)  # fmt: skip


def summarise_readiness(results: Mapping[str, Any]) -> dict[str, Any]:
    """Aggregates comparisons over seeds and checks the targets.

    Returns:
        ``{"rows": [...], "targets": [...], "all_targets_met": bool}``; a row per (group, setting,
        variant, method) with ``{field: {mean, std, n}}``; a target per (targeted setting, main method).
    """
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for cell in results["cells"]:
        for row in comparisons(cell):
            groups[(row["group"], row["setting"], row["variant"], row["method"])].append(row)
    rows = []
    for (group, setting, variant, method), items in groups.items():
        rows.append({"group": group, "setting": setting, "variant": variant, "method": method,
                     "targeted": items[0]["targeted"], "seeds": sorted(r["seed"] for r in items),
                     **{f: _stats([r.get(f, math.nan) for r in items]) for f in FIELDS}})  # fmt: skip
    main = {m["name"] for m in results["config"]["methods"]}
    targets = []
    for row in rows:
        if not row["targeted"] or row["variant"] != "ready" or row["method"] not in main:
            continue
        for name, (text, op, threshold) in TARGETS.items():
            mean = row[name]["mean"]
            ok: bool | None = None  # n/a: e.g. the standard model already met the stop rule with 0 steps
            if math.isfinite(mean):
                ok = bool(mean <= threshold + 1e-12) if op == "<=" else bool(mean >= threshold - 1e-12)
            targets.append({"group": row["group"], "setting": row["setting"], "method": row["method"],
                            "target": name, "description": text, "op": op, "threshold": threshold,
                            "mean": mean, "std": row[name]["std"], "n": row[name]["n"], "met": ok})  # fmt: skip
    applicable = [t for t in targets if t["met"] is not None]
    return {"rows": rows, "targets": targets, "all_targets_met": bool(applicable) and all(t["met"] for t in applicable)}


# -- report ---------------------------------------------------------------------------------------------
def _pm(s: Mapping[str, float], pct: bool = False, digits: int = 3) -> str:
    if s["n"] == 0 or not math.isfinite(s["mean"]):
        return "–"
    scale = 100 if pct else 1
    return f"{s['mean'] * scale:.{1 if pct else digits}f} ± {s['std'] * scale:.{1 if pct else digits}f}"


def _targets_table(targets: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = ["| group / setting | method | target | mean ± std (n) | threshold | met |", "|---|---|---|---|---|---|"]
    for t in targets:
        lines.append(f"| {t['group']} / {t['setting']} | {t['method']} | {t['description']} | "
                     f"{t['mean']:.3f} ± {t['std']:.3f} ({t['n']}) | {t['op']} {t['threshold']:.3f} | "
                     f"{'n/a' if t['met'] is None else 'yes' if t['met'] else '**no**'} |")  # fmt: skip
    return lines


def _rows_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = ["| group / setting | variant | method | steps | steps ratio | acc before % | acc after % (utility) | "
             "retrained acc % | forget quality | UA during relearn % | UA after relearn % | "
             "retrained UA during relearn % | train time ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['group']} / {r['setting']}{' *' if r['targeted'] else ''} | {r['variant']} | "
                     f"{r['method']} | {_pm(r['steps'], digits=1)} | {_pm(r['steps_ratio'])} | "
                     f"{_pm(r['acc_before'], True)} | {_pm(r['acc_after'], True)} | "
                     f"{_pm(r['retrained_acc'], True)} | {_pm(r['forget_quality'])} | "
                     f"{_pm(r['relearn_forget_acc'], True)} | {_pm(r['relearn_final_forget_acc'], True)} | "
                     f"{_pm(r['retrained_relearn_forget_acc'], True)} | "
                     f"{_pm(r['train_time_ratio'], digits=2)} |")  # fmt: skip
    return lines


def _targeted_panels(results: Mapping[str, Any]) -> tuple[Any, Any, list[Any], list[tuple[str, str]], str] | None:
    """A figure with one panel per targeted (group, setting), and what the panels show; ``None`` if none."""
    from ready2unlearn.report.plots import _new_figure

    cells = [c for c in results["cells"] if c["targeted"]]
    keys = list(dict.fromkeys((c["group"], c["setting"]) for c in cells))
    if not keys:
        return None
    fig = _new_figure(4.2 * len(keys), 3.4)
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    return fig, axes, cells, keys, results["config"]["methods"][0]["name"]


def plot_ready_curves(results: Mapping[str, Any], path: Path) -> Path | None:
    """Forget accuracy vs unlearning step, standard vs ready, one panel per targeted setting (first method)."""
    from ready2unlearn.report.plots import _save

    panels = _targeted_panels(results)
    if panels is None:
        return None
    fig, axes, cells, keys, method = panels
    colors = {"standard": "tab:blue", "ready": "tab:red", "downweight": "tab:green", "dp": "tab:purple"}
    for ax, (group, setting) in zip(axes, keys, strict=True):
        for cell in (c for c in cells if (c["group"], c["setting"]) == (group, setting)):
            for run in cell["runs"]:
                if run["method"] != method or run["variant"] not in colors:
                    continue
                xs = [p["step"] for p in run["curve"]]
                ys = [p["forget_acc"] for p in run["curve"]]
                ax.plot(xs, ys, color=colors[run["variant"]], alpha=0.7, lw=1.2,
                        label=run["variant"] if cell["seed"] == cells[0]["seed"] else None)  # fmt: skip
            ax.axhline(cell["reference"]["metrics"]["forget_acc"], color="black", ls=":", lw=1)
        ax.set_title(f"{group} / {setting} ({method})", fontsize=9)
        ax.set_xlabel("unlearning step")
        ax.set_ylabel("forget accuracy")
        ax.set_xscale("symlog", linthresh=10)
        ax.legend(fontsize=7)
    return _save(fig, path)


def plot_relearn(results: Mapping[str, Any], path: Path) -> Path | None:
    """Forget accuracy during the relearning attack: standard, ready and the retrained floor."""
    from ready2unlearn.report.plots import _save

    panels = _targeted_panels(results)
    if panels is None:
        return None
    fig, axes, cells, keys, method = panels
    for ax, key in zip(axes, keys, strict=True):
        series: dict[str, list[list[float]]] = defaultdict(list)
        xs: list[int] = []
        for cell in (c for c in cells if (c["group"], c["setting"]) == key):
            curves = {"retrained": cell["reference"]["relearn"]}
            curves.update({r["variant"]: r["relearn"] for r in cell["runs"] if r["method"] == method})
            for name, rel in curves.items():
                curve = next(iter(rel.values()))["curve"]
                xs = [p["step"] for p in curve]
                series[name].append([p["forget_acc"] for p in curve])
        for name, ys in series.items():
            ax.plot(
                xs, np.mean(ys, axis=0), marker="o", ms=3, label=name, color="black" if name == "retrained" else None
            )
        ax.set_title(f"relearning: {key[0]} / {key[1]} ({method})", fontsize=9)
        ax.set_xlabel("attack step")
        ax.set_ylabel("forget accuracy (mean over seeds)")
        ax.legend(fontsize=7)
    return _save(fig, path)


def write_readiness_report(results: Mapping[str, Any], out_dir: str | Path) -> Path:
    """Writes ``report.md`` with the target table, the per-setting table, memory, sequential and plots."""
    out = Path(out_dir)
    plots = {"curves": plot_ready_curves(results, out / "plots" / "ready_curves.png"),
             "relearn": plot_relearn(results, out / "plots" / "relearn.png")}  # fmt: skip
    s = results["summary"]
    cfg = results["config"]
    lines = [f"# Readiness benchmark: {results['preset']}", "",
             f"Training preset `{cfg['train']}` {cfg['train_overrides']}, seeds {results['seeds']}; stop rule "
             f"`{cfg['stop']['rule']}` ≤ retrained model's, budget {cfg['stop']['max_steps']} steps. "
             "Rows marked * are targeted; accuracy is test-retain accuracy for class requests, test accuracy "
             "otherwise (the model utility of a classifier). Forget quality: KS-test p-value of the forget "
             "samples' losses against the retrained model's (1 = indistinguishable; TOFU's notion for "
             "classifiers). Every ratio compares models of the same seed measured in the same run.", "",
             f"## Targets ({'all met' if s['all_targets_met'] else 'not all met'})", "",
             *_targets_table(s["targets"]), "", "## All settings", "", *_rows_table(s["rows"]), ""]  # fmt: skip
    if "memory" in results:
        m = results["memory"]
        std = m["standard"]
        lines += ["## Memory per training step (autograd saved tensors)", "",
                  f"Batch {m['batch_size']}; parameters + buffers {m['state_bytes'] / 2**20:.2f} MiB (same for all).",
                  "", "| model | MiB | ratio to standard |", "|---|---|---|",
                  f"| standard | {std / 2**20:.2f} | 1.00 |"]  # fmt: skip
        lines += [f"| {k} | {v / 2**20:.2f} | {v / std:.2f} |" for k, v in m.items() if k.startswith("ready-")]
        lines.append("")
    if "sequential" in results:
        q = results["sequential"]
        lines += [f"## Sequential requests ({q['request']}, {q['method']}, seed {q['seed']})", "",
                  "| request | size | steps standard | steps ready | test acc standard % | test acc ready % | "
                  "retrained test acc % |", "|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in q["rows"]:
            lines.append(f"| {r['request']} | {r['size']} | {r['standard']['steps']} | {r['ready']['steps']} | "
                         f"{100 * r['standard']['test_acc']:.1f} | {100 * r['ready']['test_acc']:.1f} | "
                         f"{100 * r['reference_test_acc']:.1f} |")  # fmt: skip
        lines.append("")
    for name, p in plots.items():
        if p is not None:
            lines += [f"![{name}](plots/{p.name})", ""]
    path = out / "report.md"
    text = "\n".join(lines)
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path
