"""benchmarks/tofu/split_seed.py: a seed run as two processes' jobs, and seeds merged, equal one plain run."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("transformers")
pytest.importorskip("peft")

from ready2unlearn.recipes.lm_bench import cell_key, lm_cell_cache, run_lm_bench
from tests.conftest import kit_available, load_script

TINY = ["tofu.retain_authors=1", "tofu.eval_rows=2", "tofu.max_new_tokens=4", "tofu.max_len=64",
        "tofu.tokenizer=train:400", "train.epochs=1", "train.model.hidden=16", "train.model.layers=1",
        "train.model.intermediate=32", "train.model.max_positions=64", "methods=[{name: ga}, {name: npo}]",
        "stop.max_steps=2", "stop.eval_every=1", "relearn.steps=2", "relearn.eval_every=1", "mia=false"]  # fmt: skip


def test_parse_jobs_names_the_valid_forms():
    module = load_script("tofu/split_seed.py")
    jobs = module.parse_jobs(["model:retrained", "cells:ready", "cell:standard:npo"], ["standard", "ready"],
                             ["ga", "npo"])  # fmt: skip
    assert jobs == [("model", "retrained", ""), ("cells", "ready", ""), ("cell", "standard", "npo")]
    for bad in ("cells:retrained", "cell:ready:simnpo", "model:nope", "cell:ready", "train:ready"):
        with pytest.raises(ValueError, match="bad job"):
            module.parse_jobs([bad], ["standard", "ready"], ["ga", "npo"])


def test_lm_cell_cache_names_cells_by_key_alone_in_either_layout(tmp_path):
    key = cell_key(3, "ready", "npo")
    assert lm_cell_cache(tmp_path).path(key, None) == tmp_path / "cells" / "seed3-ready-npo.json"
    assert lm_cell_cache(tmp_path, "").path(key, None) == tmp_path / "seed3-ready-npo.json"  # a committed seed folder


@pytest.mark.skipif(not kit_available("tofu"), reason="needs ../shared/data/tofu")
def test_split_jobs_then_merge_reproduce_one_plain_run(tmp_path):
    module = load_script("tofu/split_seed.py")
    run = tmp_path / "run"
    with pytest.raises(SystemExit, match="model:retrained first"):
        module.part(run, 0, ["cells:standard"], "tofu-forget01", TINY, progress=False)
    # Two "processes": every job of the seed, split the way the two cores split them.
    module.part(run, 0, ["model:standard", "model:retrained", "cells:standard"], "tofu-forget01", TINY, False)
    module.part(run, 0, ["model:ready", "cell:ready:npo", "cell:ready:ga"], "tofu-forget01", TINY, False)
    cells = sorted(p.name for p in (run / "cells").iterdir())
    assert len(cells) == 3 + 1 + 4  # three evaluations, the relearning floor, 2 bases x 2 methods
    stamps = {p.name: p.stat().st_mtime_ns for p in (run / "cells").iterdir()}
    plain = run_lm_bench("tofu-forget01", run, [*TINY, "seeds=[0]"], show_progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in (run / "cells").iterdir()} == stamps  # all reused
    with pytest.raises(SystemExit, match=r"different config.*another --run"):
        module.part(run, 0, ["model:ready"], "tofu-forget01", [*TINY, "stop.max_steps=3"], False)

    # Merge from a folder laid out like a committed partial one: cells at the top, model infos under models/.
    seed_dir = tmp_path / "partial" / "seed0"
    shutil.copytree(run / "cells", seed_dir)
    for name in ("standard", "retrained"):  # the ready model's info comes from --base
        shutil.copytree(run / "models" / "seed0" / name, seed_dir / "models" / "seed0" / name)
    merged = module.merge(tmp_path / "merged", run / "results.json", {0: seed_dir})
    for key in ("config", "models", "cells", "summary"):
        # As JSON text: the one-seed summary holds NaN intervals, which compare unequal as floats.
        assert json.dumps(merged[key], sort_keys=True) == json.dumps(plain[key], sort_keys=True), key
    assert (tmp_path / "merged" / "report.md").is_file()
    (seed_dir / "seed0-ready-npo.json").unlink()
    with pytest.raises(SystemExit, match=r"seed0-ready-npo\.json is missing"):
        module.merge(tmp_path / "again", run / "results.json", {0: seed_dir})
