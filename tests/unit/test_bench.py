"""`run_bench` / `r2u bench` end to end on a tiny digits matrix: schema, sanity, resuming, bad presets."""

import json
import shutil

import pytest

from ready2unlearn.checkpoint import load_checkpoint
from ready2unlearn.cli.main import main
from ready2unlearn.data.request import DeletionRequest
from ready2unlearn.errors import ConfigError, R2UError, RequestError
from ready2unlearn.evaluate.metrics import EvalOutputs, compute, gaps
from ready2unlearn.recipes.bench import BenchRunner, load_bench_config, run_bench
from ready2unlearn.recipes.classifier_env import rows_digest
from ready2unlearn.recipes.unlearn import load_matching_split

SETTINGS = ["class:3", "random:0.1"]
METHODS = ["retrain", "ga", "grad_diff"]
N_CELLS = len(SETTINGS) * len(METHODS)

BENCH_YAML = """\
train: digits-mlp
train_overrides: ["epochs=3", "model.hidden=[32]"]
settings: ["class:3", "random:0.1"]
methods: [{name: ga}, {name: grad_diff}]
seeds: [0]
stop: {rule: forget_acc, target: reference, max_steps: 60, eval_every: 5}
relearn: {sets: ["forget-10"], steps: 5, eval_every: 5}
"""


@pytest.fixture(scope="module")
def bench_yaml(tmp_path_factory):
    path = tmp_path_factory.mktemp("preset") / "bench" / "tiny-bench.yaml"  # the folder names its runner
    path.parent.mkdir()
    path.write_text(BENCH_YAML, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def bench_run(bench_yaml, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "out"
    results = run_bench(str(bench_yaml), out, show_progress=False)
    return out, results


def _cells(results):
    return {c["key"]: c for c in results["cells"]}


def _key(setting, method):
    return f"{setting}/seed0/standard/{method}"


def test_results_schema(bench_run):
    out, results = bench_run
    on_disk = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert on_disk["cells"] == json.loads(json.dumps(results["cells"]))
    for key in ("preset", "created", "versions", "config", "seeds", "cells", "summary"):
        assert key in on_disk, key
    assert on_disk["preset"] == "tiny-bench" and on_disk["seeds"] == [0]
    assert on_disk["config"]["train_overrides"] == ["epochs=3", "model.hidden=[32]"]
    assert [m["name"] for m in on_disk["config"]["methods"]] == ["ga", "grad_diff"]
    assert results["wall_seconds"] > 0

    cells = _cells(results)
    assert set(cells) == {_key(s, m) for s in SETTINGS for m in METHODS}
    assert len(list((out / "cells").glob("*.json"))) == N_CELLS
    # cells are ordered setting by setting, retrain first
    assert [c["setting"] for c in results["cells"]] == [s for s in SETTINGS for _ in METHODS]
    assert [c["method"] for c in results["cells"]][:: len(METHODS)] == ["retrain"] * len(SETTINGS)
    for key, cell in cells.items():
        for field in ("key", "setting", "seed", "variant", "method", "request", "metrics", "reference_metrics",
                      "gaps", "efficiency", "curve", "relearn", "relearn_reference"):  # fmt: skip
            assert field in cell, (key, field)
        assert cell["seed"] == 0 and cell["variant"] == "standard"
        kind = cell["setting"].split(":")[0]
        assert cell["request"]["kind"] == kind
        for m in ("forget_acc", "retain_acc", "test_acc", "test_retain_acc", "mia_auc", "mia_efficacy",
                  "forget_kl_to_reference" if cell["method"] != "retrain" else "forget_loss"):  # fmt: skip
            assert 0 <= cell["metrics"][m] < float("inf"), (key, m)
        retrain = cells[_key(cell["setting"], "retrain")]
        if cell["method"] != "retrain":  # every method is judged against the retrain cell of its setting
            assert cell["reference_metrics"] == retrain["metrics"]
        assert cell["gaps"] == pytest.approx(gaps(cell["metrics"], cell["reference_metrics"], kind))
        gap_keys = {"gap_forget_acc", "gap_retain_acc", "gap_mia_efficacy", "avg_gap",
                    "gap_test_retain_acc" if kind == "class" else "gap_test_acc"}  # fmt: skip
        assert set(cell["gaps"]) == gap_keys
        assert set(cell["relearn"]) == {"forget-10"} and cell["relearn_reference"] == retrain["relearn"]
        curve = cell["relearn"]["forget-10"]["curve"]
        assert [p["step"] for p in curve] == [0, 5] and cell["relearn"]["forget-10"]["sizes"]["forget"] == 10
        eff = cell["efficiency"]
        assert eff["seconds"] > 0 and eff["grad_evals"] > 0
        if cell["method"] != "retrain":
            assert 0 < eff["steps"] <= 60 and eff["stop_reason"] in ("target reached", "budget exhausted")
            assert eff["reached"] == (eff["stop_reason"] == "target reached")
            assert eff["time_ratio_to_retrain"] == pytest.approx(eff["seconds"] / retrain["efficiency"]["seconds"])
            assert cell["curve"] and cell["curve"][0]["step"] == 0 and "forget_acc" in cell["curve"][0]
    assert cells[_key("class:3", "ga")]["request"] == {"kind": "class", "classes": [3]}

    summary = {(r["setting"], r["method"]): r for r in on_disk["summary"]}
    assert set(summary) == {(s, m) for s in SETTINGS for m in METHODS}
    assert summary[("class:3", "ga")]["metrics"]["forget_acc"]["mean"] == pytest.approx(
        cells[_key("class:3", "ga")]["metrics"]["forget_acc"]
    )


def _models(out, name):
    return {d: load_checkpoint(d) for d in (out / "models" / "seed0").glob(f"{name}-*")}


def test_retrain_cells_are_the_cached_retrained_models(bench_run):
    out, results = bench_run
    cells = _cells(results)
    (standard,) = _models(out, "standard").values()
    split, _ = load_matching_split(standard.card)
    retrained = {ck.card["cache"]["config"]["forget_rows"]: ck for ck in _models(out, "retrain").values()}
    assert len(retrained) == len(SETTINGS)  # one gold model per request, keyed by the rows it forgot
    for setting in SETTINGS:
        views = DeletionRequest.parse(setting).resolve(split.train, split.test, split.spec.num_classes)
        gold = retrained[rows_digest(views)].model
        # The retrain cell holds the cached retrained model's own numbers, evaluated afresh here ...
        fresh = compute(EvalOutputs.for_request(gold, views, split.test))
        cell = cells[_key(setting, "retrain")]
        assert {k: cell["metrics"][k] for k in fresh} == pytest.approx(fresh)
        assert cell["efficiency"]["stop_reason"] == "applied" and cell["curve"] == []
        # ... which differ from the standard model it was retrained from: it never trained on D_f.
        before = compute(EvalOutputs.for_request(standard.model, views, split.test))
        assert cell["metrics"]["forget_acc"] < before["forget_acc"]
        ga = cells[_key(setting, "ga")]
        assert ga["gaps"]["gap_forget_acc"] == pytest.approx(abs(ga["metrics"]["forget_acc"] - fresh["forget_acc"]))
    assert cells[_key("class:3", "retrain")]["metrics"]["forget_acc"] == 0.0  # a class it never saw


def test_report_files(bench_run):
    out, _ = bench_run
    for name in ("report.md", "report.html"):
        text = (out / name).read_text(encoding="utf-8")
        assert text.strip() and "grad_diff" in text, name
    for name in ("unlearning_curves", "relearn_curves", "time_vs_gap"):
        png = out / "plots" / f"{name}.png"
        assert png.stat().st_size > 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert "plots/time_vs_gap.png" in (out / "report.md").read_text(encoding="utf-8")


def test_retrained_model_sanity_on_the_random_setting(bench_run):
    _, results = bench_run
    m = _cells(results)[_key("random:0.1", "retrain")]["metrics"]
    # never trained on the forget set: membership inference is near chance ...
    assert abs(m["mia_auc"] - 0.5) < 0.2
    # ... and forget samples are as hard as unseen ones
    assert abs(m["forget_acc"] - m["test_acc"]) < 0.1


def test_crash_and_resume(bench_yaml, tmp_path, monkeypatch):
    out = tmp_path / "resume"
    original_run_cell = BenchRunner._run_cell
    calls = {"n": 0}

    def crashing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("simulated crash")
        return original_run_cell(self, *args, **kwargs)

    monkeypatch.setattr(BenchRunner, "_run_cell", crashing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_bench(str(bench_yaml), out, show_progress=False)
    written = sorted(p.name for p in (out / "cells").glob("*.json"))
    assert len(written) == 2 and not (out / "results.json").exists()
    assert not list((out / "cells").glob("*.tmp*"))  # atomic writes leave no partial cell behind
    cached = {p: p.stat().st_mtime_ns for p in (out / "models").rglob("card.json")}
    (standard,) = [d / "card.json" for d in _models(out, "standard")]
    assert standard in cached
    weights = {p: p.read_bytes() for p in (out / "models").rglob("model.safetensors")}

    counted = {"n": 0}

    def counting(self, *args, **kwargs):
        counted["n"] += 1
        return original_run_cell(self, *args, **kwargs)

    monkeypatch.setattr(BenchRunner, "_run_cell", counting)
    results = run_bench(str(bench_yaml), out, show_progress=False)
    assert counted["n"] == N_CELLS - len(written)
    assert len(results["cells"]) == N_CELLS and (out / "results.json").exists()
    assert set(_cells(results)) == {_key(s, m) for s in SETTINGS for m in METHODS}
    for p, mtime in cached.items():  # the trained and retrained models were loaded, not trained again
        assert p.stat().st_mtime_ns == mtime, p
    for p, blob in weights.items():
        assert p.read_bytes() == blob, p
    # cells computed before and after the crash compare with the same (reloaded) reference
    cells = _cells(results)
    for cell in cells.values():
        retrain = cells[_key(cell["setting"], "retrain")]
        assert cell["reference_metrics"] == retrain["metrics"], cell["key"]
        assert cell["relearn_reference"] == retrain["relearn"], cell["key"]

    # a finished run resumes to nothing: only results.json and the report are rewritten
    counted["n"] = 0
    assert main(["bench", str(bench_yaml), "--out", str(out), "-q"]) == 0
    assert counted["n"] == 0 and standard.stat().st_mtime_ns == cached[standard]


def test_cells_are_keyed_by_their_config_not_their_name(bench_run, bench_yaml, tmp_path, monkeypatch):
    out = tmp_path / "copy"
    shutil.copytree(bench_run[0], out)
    same, _ = load_bench_config(str(bench_yaml))
    changed, _ = load_bench_config(str(bench_yaml), ["methods=[{name: ga, lr: 0.5}, {name: grad_diff}]"])
    ran = []
    run_cell = BenchRunner._run_cell

    def counting(self, *args):
        ran.append((args[4], args[7].name))  # (setting, method)
        return run_cell(self, *args)

    monkeypatch.setattr(BenchRunner, "_run_cell", counting)
    BenchRunner(same, out, "same", show_progress=False).run()
    assert ran == []  # the same config finds every cell
    results = BenchRunner(changed, out, "changed", show_progress=False).run()
    # Same cell names ("class:3/seed0/standard/ga"), another learning rate: only the ga cells are recomputed.
    assert sorted(ran) == [("class:3", "ga"), ("random:0.1", "ga")]
    assert {c["method_config"]["lr"] for c in results["cells"] if c["method"] == "ga"} == {0.5}


def test_a_different_config_is_refused(bench_run, bench_yaml, capsys):
    out, _ = bench_run
    saved = (out / "bench_config.json").read_bytes()
    results = (out / "results.json").read_bytes()
    with pytest.raises(ConfigError, match="different config"):
        run_bench(str(bench_yaml), out, ["stop.max_steps=30"], show_progress=False)
    assert main(["bench", str(bench_yaml), "seeds=[1]", "--out", str(out), "-q"]) == 2
    assert "different config" in capsys.readouterr().err.replace("\n", " ")
    assert (out / "bench_config.json").read_bytes() == saved and (out / "results.json").read_bytes() == results


@pytest.mark.parametrize(
    ("old", "new", "error", "match"),
    [
        ('settings: ["class:3", "random:0.1"]', 'settings: ["class:"]', (RequestError, ConfigError), "class:"),
        ('settings: ["class:3", "random:0.1"]', 'settings: ["class:x"]', (RequestError, ConfigError), "class:x"),
        ('settings: ["class:3", "random:0.1"]', 'settings: ["random:1.5"]', (RequestError, ConfigError), "random"),
        ("methods: [{name: ga}, {name: grad_diff}]", "methods: [{name: ga}, {name: retrain}]", ConfigError,
         "retrain"),
        ("methods: [{name: ga}, {name: grad_diff}]", "methods: [{name: ga}, {name: ga}]", ConfigError, "once"),
        ("methods: [{name: ga}, {name: grad_diff}]", "methods: [{name: gradient_ascent}]", ConfigError,
         "unknown unlearning method"),
        ("seeds: [0]", "seeds: [0, 0]", ConfigError, "distinct"),
        ('train_overrides: ["epochs=3", "model.hidden=[32]"]', 'train_overrides: ["epochs=0"]', ConfigError,
         "epochs"),
    ],
)  # fmt: skip
def test_bad_presets_fail_at_load(tmp_path, old, new, error, match):
    assert old in BENCH_YAML
    path = tmp_path / "bad.yaml"
    path.write_text(BENCH_YAML.replace(old, new), encoding="utf-8")
    with pytest.raises(error, match=match):
        load_bench_config(str(path))
    with pytest.raises(R2UError):
        run_bench(str(path), tmp_path / "out", show_progress=False)
    assert not (tmp_path / "out").exists()


def test_cli_bench_bad_preset(tmp_path, capsys):
    path = tmp_path / "bench" / "bad.yaml"
    path.parent.mkdir()
    path.write_text(BENCH_YAML.replace("{name: grad_diff}", "{name: retrain}"), encoding="utf-8")
    assert main(["bench", str(path), "--out", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "retrain" in err and "Traceback" not in err
    assert main(["bench", "no-such-bench-preset", "--out", str(tmp_path / "out"), "-q"]) == 2


def test_validate_passes(capsys):
    assert main(["validate"]) == 0
    assert "0 failed" in capsys.readouterr().out


def test_runner_is_chosen_by_the_preset_folder_not_its_keys(tmp_path, capsys):
    from ready2unlearn.cli.bench import preset_group

    assert preset_group("digits-quick") == "bench" and preset_group("digits-ready") == "ready_bench"
    for folder in ("bench", "ready_bench", "lm_bench"):
        path = tmp_path / folder / "x.yaml"
        path.parent.mkdir()
        path.write_text("groups: []\ntofu: {}\n")  # keys of other runners change nothing
        assert preset_group(str(path)) == folder
    loose = tmp_path / "x.yaml"
    loose.write_text("groups: []\n")
    assert preset_group(str(loose), runner="ready_bench") == "ready_bench"
    assert main(["bench", str(loose), "--out", str(tmp_path / "out"), "-q"]) == 2
    assert "keep it in a folder named after its runner" in capsys.readouterr().err
