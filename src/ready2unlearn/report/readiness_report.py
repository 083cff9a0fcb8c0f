"""The Markdown report and plots of a readiness benchmark (``report.md`` beside ``results.json``)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ready2unlearn.artifacts import atomic_write
from ready2unlearn.report.plots import new_figure, save_figure

_COLORS = {"standard": "tab:blue", "ready": "tab:red", "downweight": "tab:green", "negtrain": "tab:orange",
           "dp": "tab:purple", "retrained": "black"}  # fmt: skip


# -- number formatting ----------------------------------------------------------------------------------
def _pm(s: Mapping[str, Any] | None, pct: bool = False, digits: int = 3) -> str:
    """``mean ± std`` of a statistic (in points when ``pct``); ``–`` when absent."""
    if not s or s["n"] == 0 or not math.isfinite(s["mean"]):
        return "–"
    scale, d = (100, 1) if pct else (1, digits)
    return f"{s['mean'] * scale:.{d}f} ± {s['std'] * scale:.{d}f}"


def ci_text(
    s: Mapping[str, Any] | None,
    pct: bool = False,
    digits: int | None = None,
    *,
    signed: bool = False,
    show_n: bool = False,
    lone: str | None = None,
) -> str:
    """``mean [low, high]`` (95% CI) of a statistic, or its ratio text (geometric mean, censoring).

    The one formatter for an estimate with its interval, shared by the readiness reports and scripts.

    Args:
        s: A statistic with ``mean``, ``ci_low``, ``ci_high`` and ``n``, or one with a ready ``text`` (a ratio's
            geometric mean and censoring bounds); ``None`` or ``n == 0`` prints ``–``.
        pct: Print in points (×100); ``digits`` then defaults to 1 instead of 3.
        digits: Decimal places.
        signed: Print a sign on every number (for differences).
        show_n: Append ``(n=…)``.
        lone: A note for a value with no interval (one seed), e.g. ``"no CI"``; it joins ``n`` in one bracket.
    """
    if not s or (s.get("n") == 0 and not s.get("text")):
        return "–"
    if s.get("text"):
        return str(s["text"])
    scale = 100 if pct else 1
    d = digits if digits is not None else (1 if pct else 3)
    f = f"{'+' if signed else ''}.{d}f"
    has_ci = math.isfinite(s["ci_low"]) and math.isfinite(s["ci_high"])
    text = f"{s['mean'] * scale:{f}}"
    if has_ci:
        text += f" [{s['ci_low'] * scale:{f}}, {s['ci_high'] * scale:{f}}]"
    notes = [f"n={s['n']}"] if show_n else []
    if lone and not has_ci:  # one seed: say so rather than print "[nan, nan]"
        notes.append(lone)
    return text + (f" ({', '.join(notes)})" if notes else "")


def _reached(s: Mapping[str, Any] | None) -> str:
    return "–" if not s or s["n"] == 0 else f"{round(s['mean'] * s['n'])}/{s['n']}"


# -- tables ---------------------------------------------------------------------------------------------
def targets_table(targets: Sequence[Mapping[str, Any]]) -> list[str]:
    """The target table: one row per target with its estimate, interval, threshold and verdict."""
    lines = ["| group / setting | method | target | estimate [95% CI] (n) | threshold | verdict |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for t in targets:
        # Not ``show_n``: a target with no defined value keeps its "– (n=0)" text.
        est = t["text"] if t.get("text") else ci_text(t) + f" (n={t['n']})"
        verdict = t["verdict"] if t["verdict"] != "missed" else "**missed**"
        lines.append(f"| {t['group']} / {t['setting']} | {t['method']} | {t['description']} | {est} | "
                     f"{t['op']} {t['threshold']:.3f} | {verdict} |")  # fmt: skip
    return lines


def _efficiency_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = ["| group / setting | variant | method | steps | reached | steps ratio vs standard [95% CI] | "
             "forget acc before % | forget loss before | acc before % | acc after % (utility) | retrained acc % | "
             "train wall-clock ratio | train cost ratio (probe) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['group']} / {r['setting']}{' *' if r['targeted'] else ''} | {r['variant']} | "
                     f"{r['method']} | {_pm(r['steps'], digits=1)} | {_reached(r['reached'])} | "
                     f"{ci_text(r.get('steps_ratio'))} | {_pm(r['before_forget_acc'], True)} | "
                     f"{_pm(r['before_forget_loss'])} | {_pm(r['acc_before'], True)} | {_pm(r['acc_after'], True)} | "
                     f"{_pm(r['retrained_acc'], True)} | {ci_text(r.get('train_time_ratio'))} | "
                     f"{ci_text(r.get('train_cost_ratio'))} |")  # fmt: skip
    return lines


def _privacy_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = ["| group / setting | variant | method | MIA AUC (retrained) | MIA-efficacy (retrained) | Avg. Gap | "
             "forget quality | UA during relearn % | UA after relearn % | floor during relearn % | "
             "gap to floor closed [95% CI] |", "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['group']} / {r['setting']}{' *' if r['targeted'] else ''} | {r['variant']} | "
                     f"{r['method']} | {_pm(r['mia_auc'])} ({_pm(r['retrained_mia_auc'])}) | "
                     f"{_pm(r['mia_efficacy'])} ({_pm(r['retrained_mia_efficacy'])}) | {_pm(r['avg_gap'])} | "
                     f"{_pm(r['forget_quality'])} | {_pm(r['relearn_forget_acc'], True)} | "
                     f"{_pm(r['relearn_final_forget_acc'], True)} | {_pm(r['retrained_relearn_forget_acc'], True)} | "
                     f"{ci_text(r.get('relearn_gap_closed'))} |")  # fmt: skip
    return lines


def _negtrain_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    if not rows:
        return []
    lines = ["## Ready vs negative training (equal utility cost?)", "",
             "Steps ratio ready / negtrain, each variant's steps ratio to the standard model, and each variant's "
             "utility cost (test accuracy before unlearning minus the standard model's, points; negative = a cost). "
             "Readiness shows a benefit of its simulated unlearning only where it needs fewer steps at no larger "
             "cost.", "",
             "| group / setting | method | ready / negtrain steps [95% CI] | ready / standard | negtrain / standard | "
             "test acc before, ready − standard (pt) | test acc before, negtrain − standard (pt) |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['group']} / {r['setting']}{' *' if r['targeted'] else ''} | {r['method']} | "
                     f"{ci_text(r['steps_ratio_vs_negtrain'])} | {ci_text(r['steps_ratio'])} | "
                     f"{ci_text(r['negtrain_steps_ratio'])} | {ci_text(r['before_vs_standard'], True)} | "
                     f"{ci_text(r['negtrain_before_vs_standard'], True)} |")  # fmt: skip
    return [*lines, ""]


def _twin_lines(cells: Sequence[Mapping[str, Any]]) -> list[str]:
    """A note when the DP-SGD baseline trained a twin of the model (e.g. GroupNorm for BatchNorm): not the same net."""
    replaced = next((r["dp_replaced"] for c in cells for r in c["runs"] if r.get("dp_replaced")), None)
    if not replaced:
        return []
    return [f"`dp` is the model's DP-trainable twin: DP-SGD cannot train {', '.join(replaced)}, so Opacus's fix "
            "replaced them (GroupNorm for BatchNorm) before DP-SGD training.", ""]  # fmt: skip


def _constraint_lines(cells: Sequence[Mapping[str, Any]]) -> list[str]:
    """One row per ready model (group × seed): how hard its readiness constraint worked.

    Where readiness paid off the constraint was violated on 49–100% of readiness steps and λ rose from the
    start; a constraint honoured from the start leaves readiness idle (``readiness/preflight.py``).
    """
    seen: dict[tuple[str, int], Mapping[str, Any]] = {}
    for c in cells:
        for r in c["runs"]:
            if r["variant"] == "ready" and r.get("constraint"):
                seen.setdefault((c["group"], c["seed"]), r["constraint"])
    if not seen:
        return []

    def num(v: Any, fmt: str) -> str:
        return "—" if v is None else format(v, fmt)

    lines = ["## The readiness constraint", "",
             "How hard the dual λ had to work in each ready model: the share of readiness steps whose simulated "
             "request was not yet honoured, λ at the start and end, and λ's drift when readiness started (≤ 0: "
             "slack, readiness idles). Where readiness paid off the constraint was violated on 49–100% of steps.", "",
             "| group | seed | violated | λ start → end | drift at start |", "|---|---|---|---|---|"]  # fmt: skip
    for (group, seed), h in sorted(seen.items()):
        lines.append(f"| {group} | {seed} | {h['violated']:.0%} | {num(h.get('lam_start'), '.3g')} → "
                     f"{h['lam_end']:.3g} | {num(h.get('drift'), '+.2f')} |")  # fmt: skip
    return [*lines, ""]


def _stop_text(cfg: Mapping[str, Any]) -> str:
    stop = cfg["stop"]
    kinds = "; ".join(f"{k}: {', '.join(v)}" for k, v in cfg.get("stop_per_kind", {}).items())
    return f"budget {stop['max_steps']} steps, checked every {stop['eval_every']}; per request kind — {kinds}"


# -- plots ----------------------------------------------------------------------------------------------
def _targeted_panels(results: Mapping[str, Any]) -> tuple[Any, Any, list[Any], list[tuple[str, str]], str] | None:
    """A figure with one panel per targeted (group, setting), and what the panels show; ``None`` if none."""
    cells = [c for c in results["cells"] if c["targeted"]]
    keys = list(dict.fromkeys((c["group"], c["setting"]) for c in cells))
    if not keys:
        return None
    fig = new_figure(4.2 * len(keys), 3.4)
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    return fig, axes, cells, keys, results["config"]["methods"][0]["name"]


def plot_ready_curves(results: Mapping[str, Any], path: Path) -> Path | None:
    """The stop rule's quantity vs unlearning step per variant, one panel per targeted setting (first method).

    Class requests show forget accuracy, loss-stopped requests forget loss; the dotted line is the target.
    """
    panels = _targeted_panels(results)
    if panels is None:
        return None
    fig, axes, cells, keys, method = panels
    for ax, (group, setting) in zip(axes, keys, strict=True):
        quantity = "forget_acc"
        for cell in (c for c in cells if (c["group"], c["setting"]) == (group, setting)):
            quantity = "forget_loss" if cell.get("stop", {}).get("rule") == "forget_loss" else "forget_acc"
            for run in cell["runs"]:
                if run["method"] != method or run["variant"] not in _COLORS:
                    continue
                xs = [p["step"] for p in run["curve"]]
                ys = [p[quantity] for p in run["curve"]]
                ax.plot(xs, ys, color=_COLORS[run["variant"]], alpha=0.7, lw=1.2,
                        label=run["variant"] if cell["seed"] == cells[0]["seed"] else None)  # fmt: skip
            target = next((r.get("target") for r in cell["runs"] if r.get("target") is not None), None)
            ax.axhline(cell["reference"]["metrics"][quantity] if target is None else target, color="black", ls=":",
                       lw=1)  # fmt: skip
        ax.set_title(f"{group} / {setting} ({method})", fontsize=9)
        ax.set_xlabel("unlearning step")
        ax.set_ylabel(quantity.replace("_", " "))
        ax.set_xscale("symlog", linthresh=10)
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_relearn(results: Mapping[str, Any], path: Path) -> Path | None:
    """Forget accuracy during the relearning attack: every variant and the retrained floor (mean over seeds)."""
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
            ax.plot(xs, np.mean(ys, axis=0), marker="o", ms=3, label=name, color=_COLORS.get(name))
        ax.set_title(f"relearning: {key[0]} / {key[1]} ({method})", fontsize=9)
        ax.set_xlabel("attack step")
        ax.set_ylabel("forget accuracy (mean over seeds)")
        ax.legend(fontsize=7)
    return save_figure(fig, path)


# -- the report -----------------------------------------------------------------------------------------
def _sequential_lines(q: Mapping[str, Any]) -> list[str]:
    lines = [f"## Sequential requests ({q['request']}, {q['method']}, seed {q['seed']})", "",
             "Steps marked † exhausted the budget (censored).", "",
             "| request | size | steps standard | steps ready | test acc standard % | test acc ready % | "
             "retrained test acc % |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in q["rows"]:
        s, d = r["standard"], r["ready"]
        lines.append(f"| {r['request']} | {r['size']} | {s['steps']}{'' if s['reached'] else ' †'} | "
                     f"{d['steps']}{'' if d['reached'] else ' †'} | {100 * s['test_acc']:.1f} | "
                     f"{100 * d['test_acc']:.1f} | {100 * r['reference_test_acc']:.1f} |")  # fmt: skip
    return [*lines, ""]


def memory_lines(m: Mapping[str, Any]) -> list[str]:
    """One training step's memory: autograd's saved bytes (an upper bound) and, where measured, the true peak."""
    std, peak = m["standard"], m.get("peak") or {}
    models = ["standard", *(k for k in m if k.startswith("ready-"))]
    lines = ["## Memory per training step", "",
             f"Batch {m['batch_size']}; parameters + buffers {m['state_bytes'] / 2**20:.2f} MiB (same for all). "
             "*Saved* = the bytes autograd saves for backward, each kept alive to the end of the step (an upper "
             "bound). *Peak* = the most the step (loss, backward and its gradients) has allocated at any moment "
             "above what was live before it.", "",
             "| model | saved MiB | ratio | peak MiB | ratio |", "|---|---|---|---|---|"]  # fmt: skip
    for k in models:
        p, p0 = peak.get(k), peak.get("standard")
        ptxt = "n/a | n/a" if p is None or not p0 else f"{p / 2**20:.2f} | {p / p0:.2f}"
        lines.append(f"| {k} | {m[k] / 2**20:.2f} | {m[k] / std:.2f} | {ptxt} |")
    return [*lines, ""]


def _cost_lines(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Per group: what a readiness step costs, what the α calibration costs, and the ratio they add up to."""
    by: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in records:
        by[r["group"]].append(r)
    lines = ["## Training cost (interleaved probe)", "",
             "Blocks of plain training steps alternate with blocks of steps that also run the readiness term, on "
             "copies of the seed's standard model, timed in this process's CPU time (synchronised wall-clock on a "
             "GPU). Ratio = (S·t_plain + C·(t_ready − t_plain) + t_calibration) / (S·t_plain) for S training steps "
             "of which C run the term. The α measurement's time is the ready run's own where its card recorded it; "
             "otherwise it was timed on the seed's fully trained standard model, which takes longer than the in-run "
             "measurement after a quarter of the epochs, so the ratio is then an upper bound. Mean over seeds "
             "(min–max).", "",
             "| group | seeds | step with the term / plain step | steps running the term | readiness steps "
             "(× standard training) | α calibration (× standard training) | α timed on | total ratio |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip

    def span(rs: Sequence[Mapping[str, Any]], key: str) -> str:
        v = [float(r[key]) for r in rs]
        return f"{np.mean(v):.2f} ({min(v):.2f}–{max(v):.2f})"

    def sources(rs: Sequence[Mapping[str, Any]]) -> str:
        # "this model" (the seed's fully trained standard model) makes the ratio an upper bound.
        return ", ".join(sorted({str(r.get("calibration_source", "this model")) for r in rs}))

    for group, rs in by.items():
        r0 = rs[0]
        lines.append(f"| {group} | {len(rs)} | {span(rs, 'step_ratio')} | {r0['ready_calls']} of "
                     f"{r0['steps_per_epoch'] * r0['epochs']} (every {r0['meta_every']}, from epoch "
                     f"{r0['start_epoch'] + 1}) | {span(rs, 'steps_share')} | {span(rs, 'calibration_share')} | "
                     f"{sources(rs)} | {span(rs, 'ratio')} |")  # fmt: skip
    return [*lines, ""]


def write_readiness_report(results: Mapping[str, Any], out_dir: str | Path) -> Path:
    """Writes ``report.md``: targets, efficiency/utility and privacy/relearning tables, baselines, extras, plots."""
    out = Path(out_dir)
    plots = {"curves": plot_ready_curves(results, out / "plots" / "ready_curves.png"),
             "relearn": plot_relearn(results, out / "plots" / "relearn.png")}  # fmt: skip
    s = results["summary"]
    cfg = results["config"]
    verdicts = [t["verdict"] for t in s["targets"]]
    tally = ", ".join(f"{verdicts.count(v)} {v}" for v in ("met", "missed", "inconclusive", "n/a") if v in verdicts)
    lines = [f"# Readiness benchmark: {results['preset']}", "",
             f"Training preset `{cfg['train']}` {cfg['train_overrides']}, seeds {results['seeds']}. Stop rules: "
             f"{_stop_text(cfg)} (`target=reference` is the retrained model's value, with the tolerance added). "
             "Every comparison is paired by seed inside one run; intervals are 95%: t-intervals for differences, "
             "geometric mean with a t-interval on log-ratios for ratios. A run that exhausted its budget is censored: "
             "its step ratio is a bound (≤ / ≥), counted apart from n, and a target is met only when its whole "
             "interval lies on the right side (missed: wholly on the wrong side; otherwise inconclusive). Rows marked "
             "* are targeted; accuracy is test-retain accuracy for class requests, test accuracy otherwise. "
             "Forget quality: KS-test p-value of the forget samples' losses against the retrained model's. "
             "Gap to floor closed: (standard recovery − variant recovery) / (standard recovery − retrained "
             "recovery) under the same seeded relearning attack.", "",
             f"## Targets ({'all met' if s['all_targets_met'] else tally or 'none'})", "",
             *targets_table(s["targets"]), "", "## Efficiency and utility", "", *_efficiency_table(s["rows"]), "",
             *_twin_lines(results["cells"]), "## Privacy and relearning", "", *_privacy_table(s["rows"]), "",
             *_negtrain_table(s.get("vs_negtrain", [])), *_constraint_lines(results["cells"])]  # fmt: skip
    if results.get("cost"):
        lines += _cost_lines(results["cost"])
    if "memory" in results:
        lines += memory_lines(results["memory"])
    if "sequential" in results:
        lines += _sequential_lines(results["sequential"])
    for name, p in plots.items():
        if p is not None:
            lines += [f"![{name}](plots/{p.name})", ""]
    path = out / "report.md"
    text = "\n".join(lines)
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path
