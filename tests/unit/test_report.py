import copy
import math

import matplotlib.image
import pytest

from ready2unlearn.report import summarise, write_report
from ready2unlearn.report.render import fmt_count, fmt_percent, fmt_sig3

SETTINGS = ("class:3", "random:0.1")
SEEDS = (0, 1)
GROUPS = (("retrain", "standard"), ("ga", "standard"), ("ga", "ready"), ("npo", "standard"))
RELEARN_SETS = ("forget-10", "retain-only")


def _curve(n_steps: int, start: float, end: float) -> list[dict]:
    return [
        {"step": 5 * i, "forget_acc": start + (end - start) * i / n_steps, "retain_acc": 0.99 - 0.01 * i / n_steps}
        for i in range(n_steps + 1)
    ]


def _relearn(final: float) -> dict:
    return {
        name: {
            "curve": [
                {"step": s, "forget_acc": final * s / 25 * (1 if name == "forget-10" else 0.5)} for s in range(0, 30, 5)
            ],
            "final_forget_acc": final * (1 if name == "forget-10" else 0.5),
            "max_forget_acc": final,
            "sizes": {"forget": 10, "retain": 0},
        }
        for name in RELEARN_SETS
    }


def _cell(setting: str, seed: int, method: str, variant: str) -> dict:
    is_class = setting.startswith("class")
    ref = {"forget_acc": 0.0 if is_class else 0.9 + 0.01 * seed, "retain_acc": 0.99, "test_acc": 0.88 + 0.01 * seed,
           "test_retain_acc": 0.97, "mia_efficacy": 0.95}  # fmt: skip
    if method == "retrain":
        metrics, steps, ratio, curve = dict(ref), 500, 1.0, _curve(1, 1.0, ref["forget_acc"])
    else:
        ua = 0.01 + 0.02 * seed if (method, variant) == ("ga", "standard") else 0.05 + 0.01 * seed
        metrics = {**ref, "forget_acc": ua if is_class else 0.92, "retain_acc": 0.97 - 0.01 * seed, "mia_efficacy": 0.9}
        steps, ratio = 40 + 10 * seed, 0.05 + 0.01 * seed
        curve = _curve(4 + 3 * seed, 1.0, metrics["forget_acc"])  # seeds stop after different step counts
    ta = "test_retain_acc" if is_class else "test_acc"
    gaps = {f"gap_{k}": abs(metrics[k] - ref[k]) for k in ("forget_acc", "retain_acc", ta, "mia_efficacy")}
    gaps["avg_gap"] = sum(gaps.values()) / len(gaps)
    final = 0.05 if method == "retrain" else 0.4 + 0.1 * seed
    return {
        "key": f"{setting}/seed{seed}/{variant}/{method}", "setting": setting, "seed": seed, "variant": variant,
        "method": method, "request": {"kind": setting.split(":")[0]}, "metrics": metrics,
        "reference_metrics": ref, "gaps": gaps, "curve": curve,
        "efficiency": {"steps": steps, "grad_evals": 64 * steps, "seconds": ratio * 8, "time_ratio_to_retrain": ratio},
        "relearn": _relearn(final), "relearn_reference": _relearn(0.05),
    }  # fmt: skip


@pytest.fixture
def results() -> dict:
    cells = [_cell(s, seed, m, v) for s in SETTINGS for seed in SEEDS for m, v in GROUPS]
    return {
        "preset": "digits-quick", "created": "2026-11-24T15:00:00+00:00",
        "versions": {"python": "3.11.2", "torch": "2.13.0"}, "config": {"seeds": list(SEEDS), "lr": 1e-3},
        "seeds": list(SEEDS), "cells": cells,
    }  # fmt: skip


def _md_row(md: str, label: str, heading: str) -> list[str]:
    """Cells of the first table row labelled ``label`` after ``heading``."""
    tail = md[md.index(heading) :]
    line = next(ln for ln in tail.splitlines() if ln.startswith(f"| {label} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_write_report_files_tables_and_plots(results, tmp_path):
    paths = write_report(results, tmp_path)
    assert set(paths) == {"markdown", "html", "unlearning_curves", "relearn_curves", "time_vs_gap"}
    for name in ("unlearning_curves", "relearn_curves", "time_vs_gap"):
        assert paths[name] == tmp_path / "plots" / f"{name}.png" and paths[name].stat().st_size > 0
        assert matplotlib.image.imread(paths[name]).ndim == 3
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no temporary file behind

    md = paths["markdown"].read_text(encoding="utf-8")
    assert md.startswith("# Benchmark report: digits-quick")
    assert "2026-11-24T15:00:00+00:00" in md and "torch 2.13.0" in md and "```yaml" in md
    row = _md_row(md, "ga (standard)", "Setting: class:3")
    # UA 0.01 and 0.03 → 2.00 ± 1.41; RA 0.97 and 0.96; time ratio 0.05 and 0.06 to 3 significant digits.
    assert row[1:3] == ["2.00 ± 1.41", "96.50 ± 0.71"]
    assert row[6:9] == ["45 ± 7.1", "0.0550 ± 0.0071", "2"]
    assert _md_row(md, "**Retrain (gold)**", "Setting: class:3")[1] == "0.00 ± 0.00"
    # Within a setting, retrain comes first; the class setting's TA column is test-retain accuracy (0.97).
    class_table = md[md.index("Setting: class:3") : md.index("Setting: random:0.1")]
    assert class_table.index("Retrain (gold)") < class_table.index("ga (standard)")
    assert _md_row(md, "ga (ready)", "Setting: class:3")[3] == "97.00 ± 0.00"
    # Random setting: TA is test accuracy, 0.88 and 0.89.
    assert _md_row(md, "ga (ready)", "Setting: random:0.1")[3] == "88.50 ± 0.71"
    # Relearning table: floor first (one value per seed, not one per cell), then the methods.
    assert _md_row(md, "**Retrained (floor)**", "Setting: class:3")[1:4] == ["5.00 ± 0.00", "2.50 ± 0.00", "2"]
    assert _md_row(md, "npo (standard)", "Relearning attack")[1] == "45.00 ± 7.07"
    for name in ("unlearning_curves", "relearn_curves", "time_vs_gap"):
        assert f"](plots/{name}.png)" in md
    assert "How to read this" in md

    page = paths["html"].read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<details>" in page and "<style>" in page
    assert '<img src="plots/relearn_curves.png"' in page
    assert "<script" not in page and "http" not in page  # self-contained: no JS, no external assets


def test_html_escapes_names_and_missing_relearn_skips_plot(results, tmp_path):
    for c in results["cells"]:
        c.pop("relearn")
        c.pop("relearn_reference")
        if c["method"] == "npo":
            c["method"] = "npo<script>"
        if c["method"] == "ga" and c["seed"] == 1:
            c["metrics"]["forget_acc"] = math.nan  # a failed evaluation: skipped, and the row says n=1
    results.pop("config")
    paths = write_report(results, tmp_path)
    assert "relearn_curves" not in paths and not (tmp_path / "plots" / "relearn_curves.png").exists()
    page = paths["html"].read_text(encoding="utf-8")
    assert "npo&lt;script&gt;" in page and "<script" not in page
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "No relearning-attack results" in md and r"npo\<script\>" in md  # backslash-escaped: no raw tag
    assert _md_row(md, "ga (standard)", "Setting: class:3")[1] == "1.00 ± 0.00 (n=1)"


def test_summarise_groups_orders_and_skips_nan():
    cells = [
        {"setting": "s", "seed": 0, "variant": "v", "method": "ga", "metrics": {"forget_acc": 0.2}},
        {"setting": "s", "seed": 1, "variant": "v", "method": "ga", "metrics": {"forget_acc": math.nan}},
        {"setting": "s", "seed": 2, "variant": "v", "method": "ga", "metrics": {"forget_acc": 0.4}, "gaps": {}},
        {"setting": "s", "seed": 0, "variant": "v", "method": "retrain", "metrics": {"forget_acc": 0.0},
         "efficiency": {"steps": 7}},
    ]  # fmt: skip
    rows = summarise(cells, ["forget_acc", "avg_gap", "steps"])
    assert [r["method"] for r in rows] == ["retrain", "ga"]
    ga = rows[1]
    assert ga["n"] == 3 and ga["seeds"] == [0, 1, 2]
    assert ga["metrics"]["forget_acc"]["n"] == 2
    assert ga["metrics"]["forget_acc"]["mean"] == pytest.approx(0.3)
    assert ga["metrics"]["forget_acc"]["std"] == pytest.approx(math.sqrt(0.02))
    assert ga["metrics"]["avg_gap"] == {"mean": None, "std": None, "n": 0}
    assert rows[0]["metrics"]["steps"] == {"mean": 7.0, "std": 0.0, "n": 1}  # one seed: std 0.0
    # Dotted paths reach nested results; a key that contains a dot itself still resolves.
    deep = [{"setting": "s", "variant": "v", "method": "m", "relearn": {"forget-0.5%": {"final_forget_acc": 0.5}}}]
    assert (
        summarise(deep, ["relearn.forget-0.5%.final_forget_acc"])[0]["metrics"]["relearn.forget-0.5%.final_forget_acc"][
            "mean"
        ]
        == 0.5
    )


def test_formatting():
    assert fmt_percent(0.9731, 0.0042) == "97.31 ± 0.42"
    assert fmt_percent(None, 0.0) == "–"
    assert fmt_sig3(0.05, 0.0014) == "0.0500 ± 0.0014"
    assert fmt_sig3(1.0, 0.0) == "1.00 ± 0.00"
    assert fmt_sig3(12.345, 1.0) == "12.3 ± 1.0"
    assert fmt_sig3(9.996, 0.1) == "10.0 ± 0.1"
    assert fmt_count(40.0, 0.0) == "40 ± 0"


def test_empty_results_do_not_crash(tmp_path):
    paths = write_report({"cells": []}, tmp_path)
    assert set(paths) == {"markdown", "html"}
    assert "no cells" in paths["markdown"].read_text(encoding="utf-8")


def test_summary_is_json_safe(results):
    import json

    results = copy.deepcopy(results)
    results["cells"][1]["efficiency"]["time_ratio_to_retrain"] = math.nan
    json.dumps(summarise(results["cells"], ["time_ratio_to_retrain"]), allow_nan=False)
