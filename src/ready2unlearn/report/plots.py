"""PNG plots for the benchmark report.

The figures are built with matplotlib's object-oriented API (``matplotlib.figure.Figure``) and saved through
the Agg canvas that ``Figure.savefig`` picks for PNG files. That never touches pyplot or the process-wide
backend, so rendering a report from a notebook, a GUI or a headless server neither opens windows nor
switches the user's backend, and no figure is left registered in pyplot's global figure list.

Every function saves one PNG atomically and returns its path, or ``None`` when the data it needs is absent.
Colours are assigned per (method, variant) in order of first appearance, so a method has the same colour
in every plot of one report.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ready2unlearn.artifacts import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">")
_FLOOR_COLOR = "black"


# -- shared helpers -----------------------------------------------------------------------------------
def method_label(method: str, variant: str, multi_variant: bool) -> str:
    """Display name of a (method, variant) group: ``method (variant)`` only when several variants exist."""
    return f"{method} ({variant})" if multi_variant and variant else method


def _colors(keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    from matplotlib import colormaps

    keys = list(dict.fromkeys(keys))
    # tab10 keeps the colours far apart; beyond ten groups tab20 is the least-bad qualitative map.
    cmap = colormaps["tab10" if len(keys) <= 10 else "tab20"]
    return {k: cmap(i % cmap.N) for i, k in enumerate(keys)}


def new_figure(width: float, height: float) -> Figure:
    """A figure of the report's style (constrained layout, 110 dpi)."""
    from matplotlib.figure import Figure

    # constrained layout makes room for a legend placed "outside" the axes, so it never covers data.
    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Writes ``fig`` as a PNG, atomically."""
    # The temporary file has a .tmp suffix, so the format must be given explicitly.
    return atomic_write(path, lambda p: fig.savefig(p, format="png"))


def _grid(fig: Figure, n: int, max_cols: int, **kwargs: Any) -> list[Any]:
    ncols = min(n, max_cols)
    nrows = math.ceil(n / ncols)
    axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return list(axes[:n])


def _variants_differ(cells: Sequence[Mapping[str, Any]]) -> bool:
    return len({c.get("variant", "") for c in cells}) > 1


def _one_per_seed(cells: Iterable[Mapping[str, Any]], field: str) -> list[Any]:
    """``cell[field]`` once per seed (first cell of each seed that has it).

    The retrained reference is per setting and seed and is repeated in every method's cell; counting each
    copy would shrink the standard deviation for no reason.
    """
    seen: dict[Any, Any] = {}
    for c in cells:
        if c.get(field) is not None and c.get("seed") not in seen:
            seen[c.get("seed")] = c[field]
    return list(seen.values())


def _curve_arrays(curve: Any, key: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(steps, values) of one curve for ``key``, sorted by step; ``None`` if it has no usable point."""
    if not isinstance(curve, list):
        return None
    points = sorted(
        (float(p["step"]), float(p[key]))
        for p in curve
        if isinstance(p, Mapping)
        and isinstance(p.get("step"), (int, float))
        and isinstance(p.get(key), (int, float))
        and math.isfinite(p[key])
    )
    if not points:
        return None
    steps, values = zip(*points, strict=True)
    return np.asarray(steps), np.asarray(values)


def _mean_curve(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Mean over seeds on the union of their steps (see :func:`plot_unlearning_curves` for the rule)."""
    grid = np.unique(np.concatenate([s for s, _ in curves]))
    # np.interp holds the end values outside a curve's range: a run that stopped early keeps its final
    # model, so its final accuracy is the honest value for every later step.
    return grid, np.mean([np.interp(grid, s, v) for s, v in curves], axis=0)


def _legend(fig: Figure, handles: list[Any]) -> None:
    fig.legend(handles=handles, loc="outside right upper", fontsize="small", frameon=False)


def _line(color: Any, label: str, **kwargs: Any) -> Any:
    from matplotlib.lines import Line2D

    return Line2D([], [], color=color, label=label, **kwargs)


# -- 1. unlearning curves -----------------------------------------------------------------------------
def plot_unlearning_curves(cells: Sequence[Mapping[str, Any]], path: str | Path) -> Path | None:
    """Forget and retain accuracy against the unlearning step, one subplot per setting.

    Curves of different seeds have different lengths and steps (a stopping rule ends each run when it
    reaches its target). The thick line per (method, variant) is the mean over seeds on the union of
    their recorded steps: values are linearly interpolated between recorded points, and a run that has
    already stopped holds its final value, because its model no longer changes after the stop. Thin
    translucent lines are the individual seeds' forget accuracy, so the spread and the stopping points
    stay visible. Solid = forget accuracy (UA), dashed = retain accuracy (RA); the dotted black line is
    the retrained model's forget accuracy (``reference_metrics["forget_acc"]``, mean over seeds), the
    level an unlearned model should reach. The ``retrain`` method itself has no unlearning curve and is
    represented only by that line.

    Args:
        cells: Benchmark cells with a ``curve`` list of ``{"step", "forget_acc", "retain_acc"}`` points.
        path: Where to write the PNG.

    Returns:
        ``path``, or ``None`` when no cell has a usable curve.
    """
    usable = [c for c in cells if c.get("method") != "retrain" and _curve_arrays(c.get("curve"), "forget_acc")]
    if not usable:
        return None
    settings = list(dict.fromkeys(c.get("setting", "") for c in usable))
    keys = list(dict.fromkeys(_key(c) for c in usable))
    colors = _colors(keys)
    multi = _variants_differ(usable)

    ncols = min(len(settings), 3)
    fig = new_figure(4.4 * ncols + 2.6, 3.5 * math.ceil(len(settings) / ncols))
    # No shared y axis: a class request falls from ~100 % to ~0 %, a random-sample request often moves by a
    # few points only, and a shared 0–100 scale would flatten the latter into one line.
    axes = _grid(fig, len(settings), 3)
    for i, (ax, setting) in enumerate(zip(axes, settings, strict=True)):
        mine = [c for c in usable if c.get("setting", "") == setting]
        for key in keys:
            group = [c for c in mine if _key(c) == key]
            if not group:
                continue
            forget = [a for a in (_curve_arrays(c.get("curve"), "forget_acc") for c in group) if a is not None]
            for s, v in forget:
                ax.plot(s, 100 * v, color=colors[key], lw=0.7, alpha=0.3)
            ax.plot(*_scaled(_mean_curve(forget)), color=colors[key], lw=2.0)
            retain = [a for a in (_curve_arrays(c.get("curve"), "retain_acc") for c in group) if a is not None]
            if retain:
                ax.plot(*_scaled(_mean_curve(retain)), color=colors[key], lw=1.6, ls="--")
        every = [c for c in cells if c.get("setting", "") == setting]
        refs = [_finite(_get(r, "forget_acc")) for r in _one_per_seed(every, "reference_metrics")]
        refs = [v for v in refs if v is not None]
        if refs:
            ax.axhline(100 * float(np.mean(refs)), color=_FLOOR_COLOR, ls=":", lw=1.4)
        n_seeds = len({c.get("seed") for c in mine})
        ax.set_title(f"{setting}  (mean of {n_seeds} seed{'s' * (n_seeds != 1)})", fontsize="medium")
        ax.set_xlabel("unlearning step")
        if i % ncols == 0:
            ax.set_ylabel("accuracy (%)")
        lo, hi = ax.get_ylim()
        ax.set_ylim(max(lo - 1, -3), min(hi + 1, 103))
        ax.grid(alpha=0.3)

    handles = [_line(colors[k], method_label(*k, multi), lw=2) for k in keys]
    handles += [
        _line("gray", "forget acc (UA)", lw=2),
        _line("gray", "retain acc (RA)", lw=1.6, ls="--"),
        _line("gray", "one seed's UA", lw=0.7, alpha=0.5),
        _line(_FLOOR_COLOR, "retrained model's UA", lw=1.4, ls=":"),
    ]
    _legend(fig, handles)
    fig.suptitle("Unlearning curves")
    return save_figure(fig, path)


def _scaled(curve: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return curve[0], 100 * curve[1]


# -- 2. relearning attack -----------------------------------------------------------------------------
def _step_mean(curves: Iterable[Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean forget accuracy per relearn step over the seeds that recorded that step.

    Relearn curves share their steps (a fixed budget with a fixed evaluation interval), so this is a plain
    mean over seeds; grouping by step just keeps a truncated curve from shifting the others.
    """
    by_step: dict[float, list[float]] = {}
    for curve in curves:
        arrays = _curve_arrays(curve, "forget_acc")
        if arrays is None:
            continue
        for s, v in zip(*arrays, strict=True):
            by_step.setdefault(float(s), []).append(float(v))
    if not by_step:
        return None
    steps = np.asarray(sorted(by_step))
    return steps, np.asarray([np.mean(by_step[s]) for s in steps])


def relearn_set_names(cells: Sequence[Mapping[str, Any]]) -> list[str]:
    """Names of the relearn sets found in ``cells`` (their ``relearn`` or ``relearn_reference``), in order."""
    names: dict[str, None] = {}
    for c in cells:
        for field in ("relearn", "relearn_reference"):
            if isinstance(c.get(field), Mapping):
                names.update(dict.fromkeys(c[field]))
    return list(names)


def relearn_floor(cells: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The retrained model's relearn results of one setting, one per seed.

    Taken from ``relearn_reference`` (repeated in every cell of a seed, hence one per seed); when no cell
    carries it, the ``retrain`` cells' own ``relearn`` results are the same attack on the same model.
    """
    floor = _one_per_seed(cells, "relearn_reference")
    return floor or _one_per_seed([c for c in cells if c.get("method") == "retrain"], "relearn")


def plot_relearn_curves(cells: Sequence[Mapping[str, Any]], path: str | Path) -> Path | None:
    """Forget accuracy against relearning step, one subplot per relearn set (and per setting).

    Each subplot holds one relearn set; with several settings the subplots form a grid with one row per
    setting, because averaging a class request with a random-sample request would mean nothing. Lines are
    the mean over seeds at each relearn step per (method, variant); the thick black line is the same
    attack on the retrained model ("retrained (floor)"): a method resists relearning when its line stays
    near the floor.

    Args:
        cells: Benchmark cells with ``relearn`` (and ideally ``relearn_reference``) results.
        path: Where to write the PNG.

    Returns:
        ``path``, or ``None`` when no cell has relearn results.
    """
    sets = relearn_set_names(cells)
    if not sets:
        return None
    settings = [
        s
        for s in dict.fromkeys(c.get("setting", "") for c in cells)
        if relearn_set_names([c for c in cells if c.get("setting", "") == s])
    ]
    attacked = [c for c in cells if c.get("method") != "retrain" and isinstance(c.get("relearn"), Mapping)]
    keys = list(dict.fromkeys(_key(c) for c in attacked))
    colors = _colors(keys)
    multi = _variants_differ(attacked)

    ncols, nrows = len(sets), len(settings)
    fig = new_figure(3.6 * ncols + 2.6, 3.0 * nrows + 0.5)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    for r, setting in enumerate(settings):
        mine = [c for c in cells if c.get("setting", "") == setting]
        floor = relearn_floor(mine)
        for j, name in enumerate(sets):
            ax = axes[r, j]
            drawn = False
            for key in keys:
                group = [c for c in attacked if c.get("setting", "") == setting and _key(c) == key]
                mean = _step_mean(_get(c["relearn"], name, "curve") for c in group)
                if mean is not None:
                    ax.plot(*_scaled(mean), color=colors[key], lw=1.8, marker=".", ms=4)
                    drawn = True
            mean = _step_mean(_get(f, name, "curve") for f in floor)
            if mean is not None:
                ax.plot(*_scaled(mean), color=_FLOOR_COLOR, lw=2.6, zorder=3)
                drawn = True
            if not drawn:
                ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="gray")
            ax.set_title(name if nrows == 1 else f"{setting} · {name}", fontsize="medium")
            ax.set_ylim(-3, 103)
            ax.grid(alpha=0.3)
            if r == nrows - 1:
                ax.set_xlabel("relearn step")
            if j == 0:
                ax.set_ylabel("forget acc, held out (%)")

    handles = [_line(colors[k], method_label(*k, multi), lw=1.8, marker=".") for k in keys]
    handles.append(_line(_FLOOR_COLOR, "retrained (floor)", lw=2.6))
    _legend(fig, handles)
    fig.suptitle("Relearning attack: forget accuracy recovered by fine-tuning (mean over seeds)")
    return save_figure(fig, path)


def _get(obj: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(k)
    return obj


def _finite(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _key(cell: Mapping[str, Any]) -> tuple[str, str]:
    return cell.get("method", ""), cell.get("variant", "")


# -- 3. cost vs. fidelity -----------------------------------------------------------------------------
def plot_time_vs_gap(summary_rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path | None:
    """Pareto view: time ratio to retraining (x, log scale) against Avg. Gap to the retrained model (y).

    One point per (setting, method, variant) at the mean over seeds, with ±1 sample std error bars on
    both axes; the marker shape encodes the setting and the colour the method. A log axis cannot show
    values ≤ 0, so a lower x error bar that would cross zero is cut at 10 % of the mean. The black star
    at (1, 0) is retraining itself (by definition ratio 1 and gap 0); the dotted vertical line marks the
    retraining cost. Lower-left is better: fast and close to the retrained model.

    Args:
        summary_rows: Rows of :func:`~ready2unlearn.report.summary.summarise` with the metrics
            ``time_ratio_to_retrain`` and ``avg_gap``.
        path: Where to write the PNG.

    Returns:
        ``path``, or ``None`` when no non-retrain row has both metrics (and a positive time ratio).
    """
    points = []
    for row in summary_rows:
        stats = row.get("metrics", {})
        x, y = stats.get("time_ratio_to_retrain", {}), stats.get("avg_gap", {})
        if row.get("method") == "retrain" or x.get("mean") is None or y.get("mean") is None or x["mean"] <= 0:
            continue
        points.append((row, x["mean"], x.get("std") or 0.0, y["mean"], y.get("std") or 0.0))
    if not points:
        return None
    settings = list(dict.fromkeys(p[0].get("setting", "") for p in points))
    markers = {s: _MARKERS[i % len(_MARKERS)] for i, s in enumerate(settings)}
    keys = list(dict.fromkeys((p[0].get("method", ""), p[0].get("variant", "")) for p in points))
    colors = _colors(keys)
    multi = len({k[1] for k in keys}) > 1

    from matplotlib.ticker import FuncFormatter, LogLocator

    fig = new_figure(8.6, 5.0)
    ax = fig.subplots()
    ax.set_xscale("log")
    for row, x, xs, y, ys in points:
        key = (row.get("method", ""), row.get("variant", ""))
        ax.errorbar(
            [x], [100 * y], xerr=[[min(xs, 0.9 * x)], [xs]], yerr=[[100 * ys], [100 * ys]],
            fmt=markers[row.get("setting", "")], color=colors[key], ms=7, capsize=3, elinewidth=1, alpha=0.9,
        )  # fmt: skip
    ax.axvline(1.0, color="gray", ls=":", lw=1)
    ax.plot([1.0], [0.0], marker="*", color=_FLOOR_COLOR, ms=13, ls="none", zorder=4)
    # Keep the star and every error bar in view, with a margin on the log axis.
    lo = min([1.0] + [max(x - xs, 0.1 * x) for _, x, xs, _, _ in points])
    hi = max([1.0] + [x + xs for _, x, xs, _, _ in points])
    ax.set_xlim(lo / 1.6, hi * 1.6)
    y_lo = min(-0.5, min(100 * (y - ys) for *_, y, ys in points) - 0.5)
    y_hi = max(0.5, max(100 * (y + ys) for *_, y, ys in points))
    ax.set_ylim(y_lo, y_hi + 0.08 * (y_hi - y_lo))
    labels = [(method_label(p[0].get("method", ""), p[0].get("variant", ""), multi), p[1], 100 * p[3],
               colors[_key(p[0])]) for p in points]  # fmt: skip
    _place_labels(ax, [*labels, ("retrain", 1.0, 0.0, _FLOOR_COLOR)])
    # Plain numbers (0.05, 0.1, 0.2 …) read better than powers of ten for ratios near 1.
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.set_xlabel("time ratio to retraining (log scale; < 1 is faster than retraining)")
    ax.set_ylabel("Avg. Gap to retrained model (pp)")
    ax.set_title("Cost vs. fidelity, mean ± std over seeds (lower-left is better)", fontsize="medium")
    ax.grid(alpha=0.3, which="both")

    handles = [_line(colors[k], method_label(*k, multi), marker="o", ls="none") for k in keys]
    handles += [_line("gray", s, marker=markers[s], ls="none") for s in settings]
    handles.append(_line(_FLOOR_COLOR, "retrain (ratio 1, gap 0)", marker="*", ms=11, ls="none"))
    _legend(fig, handles)
    return save_figure(fig, path)


def _place_labels(ax: Any, labels: list[tuple[str, float, float, Any]]) -> None:
    """Annotates points, moving a label down until it no longer overlaps one placed before.

    Methods often land on nearly the same point (same step budget, similar gap); without this their labels
    print on top of each other. Positions are compared in axes fractions, which do not depend on the final
    layout; a label moved away from its point gets a thin connector line.
    """
    to_axes = ax.transData + ax.transAxes.inverted()
    placed: list[tuple[float, float, float]] = []  # (x, y, width) of each label's left end, axes fraction
    for text, x, y, color in labels:
        px, py = to_axes.transform((x, y))
        lx, ly, width = px + 0.012, py + 0.02, 0.012 * len(text) + 0.01
        while any(abs(ly - qy) < 0.04 and lx < qx + qw and qx < lx + width for qx, qy, qw in placed):
            ly -= 0.045
        placed.append((lx, ly, width))
        moved = abs(ly - (py + 0.02)) > 1e-9
        ax.annotate(
            text, (x, y), xytext=(lx, ly), textcoords="axes fraction", fontsize=8, color=color, va="bottom",
            arrowprops={"arrowstyle": "-", "color": color, "lw": 0.5, "alpha": 0.6} if moved else None,
        )  # fmt: skip
