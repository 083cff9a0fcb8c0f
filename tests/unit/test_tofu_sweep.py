"""The TOFU readiness sweep script: valid shapes, knob-independent models and cells reused from a base run."""

from __future__ import annotations

import dataclasses
import json

import pytest

pytest.importorskip("transformers")

from ready2unlearn.config import to_dict
from ready2unlearn.recipes.lm_bench import load_lm_bench_config
from tests.conftest import kit_available, load_script


@pytest.fixture(scope="module")
def sweep():
    return load_script("tofu/sweep.py")


@pytest.mark.parametrize(("preset", "base_preset"),
                         [("tofu-forget01", "tofu-forget01-baselines"),
                          ("tofu-smollm2-forget01", "tofu-smollm2-forget01")])  # fmt: skip
def test_every_shape_is_a_valid_config_on_the_base_preset(sweep, preset, base_preset):
    base, _ = load_lm_bench_config(base_preset)
    spec = sweep.SWEEPS[preset]
    for name, overrides in spec.shapes.items():
        cfg, _ = load_lm_bench_config(spec.preset, [*spec.common, "seeds=[0, 1, 2]", *overrides])
        # only the readiness knobs differ from the run whose models are reused, and its methods are a subset
        # (held-out authors add rows no model trains on: the shared models and cells do not change)
        tofu = dataclasses.replace(cfg.tofu, heldout_authors=base.tofu.heldout_authors)
        assert cfg.train == base.train and tofu == base.tofu and cfg.stop == base.stop, name
        assert cfg.relearn == base.relearn and cfg.seeds == base.seeds, name
        assert all(m in base.methods for m in cfg.methods), name
        assert (cfg.ready == base.ready) is (not overrides), name  # the empty shape reuses the base ready model
    assert len({sweep.slug(n) for n in spec.shapes}) == len(spec.shapes)


def test_seed_from_base_copies_only_what_the_knobs_do_not_change(sweep, tmp_path):
    base, out = tmp_path / "base", tmp_path / "out"
    for name in ("standard", "retrained", "ready", "neftune"):
        d = base / "models" / "seed0" / name
        d.mkdir(parents=True)
        (d / "info.json").write_text("{}")
    (base / "cells").mkdir()
    for key in ("standard-eval", "retrained-eval", "retrained-relearn", "standard-ga", "ready-eval", "ready-ga"):
        (base / "cells" / f"seed0-{key}.json").write_text(json.dumps({"key": key}))
    copied = sweep.seed_from_base(base, out, [0])
    expected = [
        "models/seed0/standard",
        "models/seed0/retrained",
        "cells/seed0-standard-eval.json",
        "cells/seed0-retrained-eval.json",
        "cells/seed0-retrained-relearn.json",
        "cells/seed0-standard-ga.json",
    ]
    assert sorted(copied) == sorted(expected)
    assert not (out / "models" / "seed0" / "ready").exists()  # a shape trains its own ready model
    assert sweep.seed_from_base(base, out, [0]) == []  # nothing is copied over what is there
    shared = sweep.seed_from_base(base, tmp_path / "defaults", [0], with_ready=True)
    assert "models/seed0/ready" in shared and "cells/seed0-ready-ga.json" in shared


def test_the_lm_bench_saves_the_readiness_knobs_it_resolved():
    """A run folder names the knobs its ready model got, so one trained under other defaults is never resumed."""
    smol, _ = load_lm_bench_config("tofu-smollm2-forget01")
    assert (smol.ready.cap, smol.ready.dual, smol.ready.first_order) == ("auto", True, True)
    assert smol.tofu.heldout_authors == 10  # where auto measures the cap
    scratch, _ = load_lm_bench_config("tofu-forget01")  # pinned to the knobs its committed results used
    assert (scratch.ready.cap, scratch.ready.dual, scratch.ready.first_order) == (1.0, False, False)
    former, _ = load_lm_bench_config("tofu-smollm2-forget01", ["ready.cap=1", "tofu.heldout_authors=0"])
    assert to_dict(former)["ready"]["cap"] == 1.0 and to_dict(smol)["ready"]["cap"] == "auto"
    assert to_dict(smol)["ready"]["lam"] == 0.1  # resolved, not null


@pytest.mark.skipif(not kit_available("tofu"), reason="needs ../shared/data/tofu")
def test_the_language_step_cost_probe_times_both_defaults(tmp_path):
    """The probe runs both shapes on a tiny from-scratch QA model and writes its JSON and table."""
    probe = load_script("tofu/step_cost.py")
    tiny = ["tofu.retain_authors=1", "tofu.eval_rows=2", "tofu.max_len=48", "tofu.tokenizer=train:300",
            "tofu.heldout_authors=2", "train.epochs=2", "train.model.hidden=16", "train.model.layers=1",
            "train.model.intermediate=32", "train.model.max_positions=48", "ready.cap=auto", "ready.dual=true",
            "ready.first_order=true"]  # fmt: skip
    args = ["--preset", "tofu-forget01", "--blocks", "1", "--steps", "1", "--out", str(tmp_path), *tiny]
    assert probe.main(args) == 0
    rows = json.loads((tmp_path / "results.json").read_text())["results"]
    assert [r["shape"] for r in rows] == list(probe.SHAPES)
    former, current = rows
    assert (former["ready"]["cap"], former["ready"]["first_order"]) == (1.0, False)
    assert (current["ready"]["cap"], current["ready"]["dual"]) == ("auto", True)
    for r in rows:
        assert r["cost"]["ready_step"] > 0 and r["cost"]["ratio"] > 1
        assert r["autograd_bytes"]["ready"] > r["autograd_bytes"]["standard"]
        assert r["peak_bytes"]["ready"] > r["peak_bytes"]["standard"] > 0
        assert r["peak_rss_bytes"] > 10 * 2**20  # a Python process with torch loaded holds more than 10 MiB
    assert "| former group defaults" in (tmp_path / "README.md").read_text()
    # Without the saved-tensor bound (too big for SmolLM2 on 23 GB) the timing and both peaks remain.
    assert probe.main([*args[: -len(tiny)], "--shapes", "1", "--no-autograd-memory", *tiny]) == 0
    (row,) = json.loads((tmp_path / "results.json").read_text())["results"]
    assert row["autograd_bytes"] is None and row["cost"]["ratio"] > 1 and row["peak_rss_bytes"] > 0
    assert row["peak_bytes"]["ready"] > row["peak_bytes"]["standard"] > 0
    table = (tmp_path / "README.md").read_text()
    assert "not measured" in table and f"{row['peak_bytes']['ready'] / 1e6:.0f} MB" in table


def test_the_smollm2_baselines_preset_reuses_the_base_runs_models_and_cells():
    """Its header tells users to copy a tofu-smollm2-forget01 run's models and cells: only baselines may differ."""
    base, _ = load_lm_bench_config("tofu-smollm2-forget01")
    cfg, _ = load_lm_bench_config("tofu-smollm2-forget01-baselines")
    assert (cfg.train, cfg.tofu, cfg.ready, cfg.stop, cfg.relearn, cfg.seeds) == (
        base.train, base.tofu, base.ready, base.stop, base.relearn, base.seeds)  # fmt: skip
    assert [m.name for m in cfg.methods] == ["ga", "grad_diff"] and all(m in base.methods for m in cfg.methods)
    assert base.baselines is None and cfg.baselines is not None
    assert cfg.baselines.names == ["neftune", "downweight", "dp"]
