"""``report.md`` and ``report.html`` for a benchmark run, from its ``results.json`` dict.

Both files are rendered from one list of blocks (headings, key-value lists, tables, images), so the
Markdown and the HTML always show the same numbers. The HTML is a single self-contained page: inline CSS,
relative image links into ``plots/``, no JavaScript and nothing fetched from the network.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ready2unlearn.artifacts import atomic_write
from ready2unlearn.report.plots import (
    method_label,
    plot_relearn_curves,
    plot_time_vs_gap,
    plot_unlearning_curves,
    relearn_floor,
    relearn_set_names,
)
from ready2unlearn.report.summary import summarise

TABLE_METRICS = [
    "forget_acc", "retain_acc", "test_acc", "test_retain_acc", "mia_efficacy", "avg_gap", "steps",
    "time_ratio_to_retrain",
]  # fmt: skip
MISSING = "–"

PLOTS = {
    "unlearning_curves": "Unlearning curves",
    "relearn_curves": "Relearning attack",
    "time_vs_gap": "Cost vs. fidelity",
}

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; max-width: 1200px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.6em 0 0.3em; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.65em; }
th { background: #f0f0f0; text-align: center; }
td { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td:first-child { text-align: left; }
tr:nth-child(even) td { background: #fafafa; }
tr.ref td { font-weight: 600; background: #eef4ea; }
p.note { font-size: 0.88em; color: #555; margin-top: 0.2em; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.88em; }
img { max-width: 100%; border: 1px solid #ddd; }
dt { font-weight: 600; margin-top: 0.4em; }
"""


# -- document model -----------------------------------------------------------------------------------
@dataclass
class Table:
    """A report table: a header, rows of formatted cells, and which rows are the reference (drawn in bold)."""

    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    reference: list[bool] = field(default_factory=list)  # rows drawn in bold: the retrained model

    def add(self, cells: list[str], reference: bool = False) -> None:
        """Appends a row."""
        self.rows.append(cells)
        self.reference.append(reference)


# Blocks are (kind, payload): ("h1"|"h2"|"h3"|"h4"|"p"|"note", str), ("kv"|"defs", [(term, text)]),
# ("code", (summary, language, text)), ("table", Table), ("img", (alt, relative path)).
Block = tuple[str, Any]


# -- number formatting --------------------------------------------------------------------------------
def _stat(row: Mapping[str, Any], name: str) -> tuple[float | None, float, int]:
    s = row["metrics"].get(name, {})
    return s.get("mean"), s.get("std") or 0.0, s.get("n", 0)


def _with_n(text: str, n: int, n_group: int) -> str:
    # Flag a mean over fewer seeds than the row's, so a missing value is not silently averaged away.
    return text if n >= n_group else f"{text} (n={n})"


def fmt_percent(mean: float | None, std: float) -> str:
    """``97.31 ± 0.42`` for a fraction of 0.9731 ± 0.0042; ``–`` when missing."""
    return MISSING if mean is None else f"{100 * mean:.2f} ± {100 * std:.2f}"


def fmt_count(mean: float | None, std: float) -> str:
    """Step counts: whole numbers stay whole (``40 ± 0``), fractional means get one decimal."""
    if mean is None:
        return MISSING

    def num(x: float) -> str:
        return str(round(x)) if float(x).is_integer() else f"{x:.1f}"

    return f"{num(mean)} ± {num(std)}"


def fmt_sig3(mean: float | None, std: float) -> str:
    """Mean to 3 significant digits, std to the same number of decimals (``0.0512 ± 0.0031``)."""
    if mean is None:
        return MISSING
    if mean == 0:
        return f"0 ± {std:.3g}"
    rounded = float(f"{mean:.2e}")  # round first, so 9.996 becomes 10.0 and not 10.00
    decimals = max(0, 2 - math.floor(math.log10(abs(rounded))))
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}"


# -- building blocks ----------------------------------------------------------------------------------
def _is_class_setting(setting: str) -> bool:
    return str(setting).startswith("class")


def _row_label(row: Mapping[str, Any], multi_variant: bool, retrain_variants: int) -> str:
    if row["method"] == "retrain":
        return f"Retrain (gold, {row['variant']})" if retrain_variants > 1 else "Retrain (gold)"
    return method_label(row["method"], row["variant"], multi_variant)


def _main_table(rows: Sequence[Mapping[str, Any]], setting: str, multi_variant: bool) -> Table:
    ta = "test_retain_acc" if _is_class_setting(setting) else "test_acc"
    table = Table(["Method", "UA (%)", "RA (%)", "TA (%)", "MIA-efficacy (%)", "Avg. Gap (pp)", "Steps",
                    "Time ratio to retrain", "n (seeds)"])  # fmt: skip
    retrain_variants = sum(r["method"] == "retrain" for r in rows)
    columns = [
        ("forget_acc", fmt_percent), ("retain_acc", fmt_percent), (ta, fmt_percent), ("mia_efficacy", fmt_percent),
        ("avg_gap", fmt_percent), ("steps", fmt_count), ("time_ratio_to_retrain", fmt_sig3),
    ]  # fmt: skip
    for row in rows:
        cells = [_row_label(row, multi_variant, retrain_variants)]
        for name, fmt in columns:
            mean, std, n = _stat(row, name)
            cells.append(_with_n(fmt(mean, std), n, row["n"]) if mean is not None else MISSING)
        cells.append(str(row["n"]))
        table.add(cells, reference=row["method"] == "retrain")
    return table


def _relearn_table(cells: Sequence[Mapping[str, Any]], multi_variant: bool) -> Table | None:
    sets = relearn_set_names(cells)
    if not sets:
        return None
    metrics = [f"relearn.{name}.final_forget_acc" for name in sets]
    table = Table(["Model", *sets, "n (seeds)"])
    floor = [{"setting": "", "variant": "", "method": "floor", "relearn": r} for r in relearn_floor(cells)]
    attacked = [c for c in cells if c.get("method") != "retrain" and isinstance(c.get("relearn"), Mapping)]
    floor_rows = summarise(floor, metrics) if floor else []
    for row in floor_rows + summarise(attacked, metrics):
        is_floor = row["method"] == "floor"
        label = "Retrained (floor)" if is_floor else method_label(row["method"], row["variant"], multi_variant)
        values = []
        for name in metrics:
            mean, std, n = _stat(row, name)
            values.append(_with_n(fmt_percent(mean, std), n, row["n"]) if mean is not None else MISSING)
        table.add([label, *values, str(row["n"])], reference=is_floor)
    return table


def _config_text(config: Any) -> tuple[str, str]:
    try:
        import yaml

        return "yaml", yaml.safe_dump(config, sort_keys=False, allow_unicode=True, default_flow_style=False)
    except Exception:  # a value YAML cannot represent safely: JSON with str() for the odd ones out
        return "json", json.dumps(config, indent=2, default=str)


def _blocks(results: Mapping[str, Any], plots: Mapping[str, Path | None]) -> list[Block]:
    cells = [c for c in results.get("cells") or [] if isinstance(c, Mapping)]
    multi_variant = len({c.get("variant", "") for c in cells}) > 1
    preset = str(results.get("preset") or "unnamed run")
    versions = results.get("versions") or {}
    seeds = results.get("seeds") or sorted({c.get("seed") for c in cells if c.get("seed") is not None})

    blocks: list[Block] = [("h1", f"Benchmark report: {preset}")]
    blocks.append(("kv", [
        ("Preset", preset),
        ("Created", str(results.get("created") or MISSING)),
        # "Seeds: 0" read as "no seeds": say which seeds and how many.
        ("Seeds", f"{', '.join(str(s) for s in seeds)} (n = {len(seeds)})" if seeds else MISSING),
        ("Cells", str(len(cells))),
        ("Versions", " · ".join(f"{k} {v}" for k, v in versions.items()) or MISSING),
    ]))  # fmt: skip
    if results.get("config") is not None:
        blocks.append(("code", ("Configuration", *_config_text(results["config"]))))

    rows = summarise(cells, TABLE_METRICS)
    blocks.append(("h2", "Results per setting"))
    if not cells:
        blocks.append(("p", "This run has no cells yet."))
    for setting in dict.fromkeys(r["setting"] for r in rows):
        mine = [c for c in cells if str(c.get("setting", "")) == setting]
        blocks.append(("h3", f"Setting: {setting}"))
        ta = "test-retain accuracy (class request)" if _is_class_setting(setting) else "test accuracy"
        blocks.append(("table", _main_table([r for r in rows if r["setting"] == setting], setting, multi_variant)))
        blocks.append(("note", f"mean ± sample std over seeds; TA = {ta}; Avg. Gap in percentage points; "
                               f"(n=k) marks a value averaged over fewer seeds than the row; {MISSING} = not "
                               "measured."))  # fmt: skip
        blocks.append(("h4", "Relearning attack"))
        relearn = _relearn_table(mine, multi_variant)
        if relearn is None:
            blocks.append(("p", "No relearning-attack results for this setting."))
        else:
            blocks.append(("table", relearn))
            blocks.append(("note", "forget accuracy (%) on the held-out forget samples after fine-tuning on each "
                                   "relearn set, mean ± std over seeds; lower is better, and the retrained model "
                                   "is the floor a method can hope for."))  # fmt: skip

    proof = results.get("proof") or {}
    if proof:
        blocks.append(("h2", "Proof of forgetting (NeurIPS 2023 challenge metric, small N)"))
        table = Table(["Method", "N", "Forgetting quality F", "RA ratio", "TA ratio", "Score"])
        for name, r in proof.items():
            table.add([str(name), str(r.get("n", MISSING)), *(f"{r[k]:.3f}" if r.get(k) is not None else MISSING
                       for k in ("forgetting_quality", "ra_ratio", "ta_ratio", "score"))],
                      reference=str(name).startswith("retrain"))  # fmt: skip
        blocks.append(("table", table))
        blocks.append(("note", "F = mean over forget examples of 2^(−ε bin) from N unlearning vs N retraining runs; "
                               "the retrain row pits two disjoint sets of retrained models against each other, "
                               "so it is the F a perfect unlearner gets at this N (F is biased below 1)."))  # fmt: skip

    blocks.append(("h2", "Plots"))
    for name, title in PLOTS.items():
        blocks.append(("h3", title))
        if plots.get(name) is None:
            blocks.append(("p", "Not drawn: this run has no data for it."))
        else:
            blocks.append(("img", (title, f"plots/{name}.png")))

    blocks.append(("h2", "How to read this"))
    blocks.append(("defs", [
        ("UA", "accuracy on the forget set (the samples or classes the deletion request removes). Unlike SalUn's "
               "UA (1 − accuracy) this is the accuracy itself; the target is the retrained model's value, not 0."),
        ("RA", "accuracy on the retain set (training data that stays); higher is better."),
        ("TA", "accuracy on the test set; for class requests on the test samples of the remaining classes, since "
               "the forgotten classes have no right answer left."),
        ("MIA-efficacy", "share of forget samples that a membership-inference attack, trained on retain versus "
                         "test samples, judges to be non-members; the target is again the retrained model's value."),
        ("Avg. Gap", "mean of |metric − retrained model's metric| over UA, RA, TA and MIA-efficacy, per seed, then "
                     "averaged; 0 means indistinguishable from retraining on these metrics. Every gap is judged "
                     "against the model retrained from scratch without the forget data (the gold standard), not "
                     "against an ideal value."),
        ("Steps, time ratio", "unlearning steps until the stopping rule fired, and wall-clock time divided by the "
                              "retraining time of the same setting and seed. Both were measured side by side in "
                              "the same run on the same machine, so ratios compare within this report but not "
                              "across machines."),
        ("Relearning attack", "fine-tunes each model briefly on a relearn set and measures how much forget "
                              "accuracy comes back; the retrained model under the same attack is the floor."),
    ]))  # fmt: skip
    return blocks


# -- Markdown -----------------------------------------------------------------------------------------
def _md_escape(text: str) -> str:
    # Characters that would break a table row or be read as inline HTML / code.
    return re.sub(r"([\\|<>`*_\[\]])", r"\\\1", str(text).replace("\n", " "))


def _md_table(table: Table) -> list[str]:
    def line(cells: Sequence[str], bold: bool = False) -> str:
        cells = [_md_escape(c) for c in cells]
        if bold:
            cells[0] = f"**{cells[0]}**"
        return "| " + " | ".join(cells) + " |"

    lines = [line(table.header), "|" + "|".join([":---"] + ["---:"] * (len(table.header) - 1)) + "|"]
    lines += [line(r, bold) for r, bold in zip(table.rows, table.reference, strict=True)]
    return [*lines, ""]


def render_markdown(blocks: Sequence[Block]) -> str:
    """Renders report blocks as GitHub-flavoured Markdown."""
    out: list[str] = []
    for kind, payload in blocks:
        if kind in ("h1", "h2", "h3", "h4"):
            out += ["#" * int(kind[1]) + " " + _md_escape(payload), ""]
        elif kind == "p":
            out += [_md_escape(payload), ""]
        elif kind == "note":
            out += [f"*{_md_escape(payload)}*", ""]
        elif kind == "kv":
            out += [f"- **{_md_escape(k)}:** {_md_escape(v)}" for k, v in payload] + [""]
        elif kind == "defs":
            out += [f"- **{_md_escape(k)}** — {_md_escape(v)}" for k, v in payload] + [""]
        elif kind == "code":
            summary, lang, text = payload
            # A fence longer than any backtick run inside the text cannot be closed early by it.
            fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", text)), default=0))
            out += [f"**{_md_escape(summary)}**", "", f"{fence}{lang}", text.rstrip("\n"), fence, ""]
        elif kind == "table":
            out += _md_table(payload)
        elif kind == "img":
            alt, src = payload
            out += [f"![{_md_escape(alt)}]({src})", ""]
    return "\n".join(out).rstrip("\n") + "\n"


# -- HTML ---------------------------------------------------------------------------------------------
def _html_table(table: Table) -> list[str]:
    e = html.escape
    out = ["<table>", "<thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in table.header) + "</tr></thead>", "<tbody>"]
    for row, ref in zip(table.rows, table.reference, strict=True):
        attr = ' class="ref"' if ref else ""
        out.append(f"<tr{attr}>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>")
    return [*out, "</tbody>", "</table>"]


def render_html(blocks: Sequence[Block], title: str) -> str:
    """Renders report blocks as one self-contained HTML page (inline CSS, no scripts, no external assets)."""
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
    ]
    for kind, payload in blocks:
        if kind in ("h1", "h2", "h3", "h4"):
            out.append(f"<{kind}>{e(payload)}</{kind}>")
        elif kind == "p":
            out.append(f"<p>{e(payload)}</p>")
        elif kind == "note":
            out.append(f'<p class="note">{e(payload)}</p>')
        elif kind == "kv":
            out += ["<ul>", *(f"<li><strong>{e(k)}:</strong> {e(v)}</li>" for k, v in payload), "</ul>"]
        elif kind == "defs":
            out += ["<dl>", *(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in payload), "</dl>"]
        elif kind == "code":
            summary, lang, text = payload
            out.append(f"<details><summary>{e(summary)} ({e(lang.upper())})</summary><pre>{e(text)}</pre></details>")
        elif kind == "table":
            out += _html_table(payload)
        elif kind == "img":
            alt, src = payload
            out.append(f'<p><img src="{e(src, quote=True)}" alt="{e(alt, quote=True)}"></p>')
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"


# -- entry point --------------------------------------------------------------------------------------
def write_report(results: Mapping[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Writes ``report.md``, ``report.html`` and ``plots/*.png`` for a benchmark run.

    Every file is written atomically (temporary file in the same directory, then ``os.replace``), so a
    crash leaves the previous report intact. Plots whose data is absent (e.g. a run without the
    relearning attack) are skipped and the report says so.

    Args:
        results: The ``results.json`` dict of ``r2u bench`` (``preset``, ``created``, ``versions``,
            ``config``, ``seeds``, ``cells``); missing keys are tolerated.
        out_dir: Directory for the report (created if needed); the plots go into ``out_dir/plots``.

    Returns:
        Paths by name: ``markdown``, ``html`` and, for each plot drawn, ``unlearning_curves``,
        ``relearn_curves`` and ``time_vs_gap``.
    """
    out = Path(out_dir)
    cells = [c for c in results.get("cells") or [] if isinstance(c, Mapping)]
    plots_dir = out / "plots"
    plots: dict[str, Path | None] = {
        "unlearning_curves": plot_unlearning_curves(cells, plots_dir / "unlearning_curves.png"),
        "relearn_curves": plot_relearn_curves(cells, plots_dir / "relearn_curves.png"),
        "time_vs_gap": plot_time_vs_gap(
            summarise(cells, ["time_ratio_to_retrain", "avg_gap"]), plots_dir / "time_vs_gap.png"
        ),
    }
    blocks = _blocks(results, plots)
    markdown = render_markdown(blocks)
    page = render_html(blocks, f"Benchmark report: {results.get('preset') or 'unnamed run'}")
    paths = {
        "markdown": atomic_write(out / "report.md", lambda p: p.write_text(markdown, encoding="utf-8")),
        "html": atomic_write(out / "report.html", lambda p: p.write_text(page, encoding="utf-8")),
    }
    paths.update({name: path for name, path in plots.items() if path is not None})
    return paths
