import json

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from ready2unlearn import load_checkpoint
from ready2unlearn.artifacts import atomic_write, read_card, save_checkpoint, sha256_file
from ready2unlearn.config import from_dict, to_dict
from ready2unlearn.data.base import DataSpec
from ready2unlearn.engine.fit import FitConfig, fit
from ready2unlearn.errors import R2UError
from ready2unlearn.evaluate import accuracy_and_loss
from ready2unlearn.models import build_model
from ready2unlearn.recipes.train import TrainConfig, load_config, run

from ..conftest import make_blobs


def _cfg(**kw):
    base = {"epochs": 3, "batch_size": 32, "optim": {"lr": 0.01, "schedule": "constant"}}
    base.update(kw)
    return from_dict(TrainConfig, base)


def _mlp(seed=0):
    torch.manual_seed(seed)
    return build_model({"name": "mlp", "hidden": [16]}, DataSpec("image", (1, 1, 8), 4))


def test_fit_reduces_loss_and_learns():
    data = make_blobs()
    model = _mlp()
    _, before = accuracy_and_loss(model, data)
    result = fit(model, data, data, _cfg(), show_progress=False)
    acc, after = accuracy_and_loss(model, data)
    assert after < before * 0.5 and acc > 0.9
    assert len(result.history) == 3 and result.metrics["test_accuracy"] == pytest.approx(acc)


def test_fit_is_deterministic_given_seed_and_differs_across_seeds():
    data = make_blobs()
    weights = []
    for seed in (0, 0, 1):
        model = _mlp(seed=0)  # same init: only the training seed differs
        fit(model, data, None, _cfg(seed=seed), show_progress=False)
        weights.append(torch.cat([p.flatten() for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1])
    assert not torch.equal(weights[0], weights[2])


def test_until_epoch_stops_early_on_the_whole_runs_schedule():
    """``until_epoch`` = the first epochs of the full run: under a cosine schedule not the same as a shorter run."""
    data = make_blobs()
    cosine = {"optim": {"lr": 0.01, "schedule": "cosine"}, "epochs": 4}
    part, short = _mlp(), _mlp()
    result = fit(part, data, None, _cfg(**cosine), show_progress=False, until_epoch=1)
    assert [h["epoch"] for h in result.history] == [1]
    fit(short, data, None, _cfg(**{**cosine, "epochs": 1}), show_progress=False)
    assert not torch.equal(part[-1].weight, short[-1].weight)  # the 1-epoch run decays its LR 4x faster
    constant = _mlp()
    fit(constant, data, None, _cfg(), show_progress=False, until_epoch=1)
    one = _mlp()
    fit(one, data, None, _cfg(epochs=1), show_progress=False)
    assert all(torch.equal(a, b) for a, b in zip(constant.parameters(), one.parameters(), strict=True))
    with pytest.raises(ValueError, match="until_epoch"):
        fit(_mlp(), data, None, _cfg(), show_progress=False, until_epoch=4)


def test_fit_works_on_any_user_module():
    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(8, 4))

        def forward(self, x):
            return x.flatten(1) @ self.w

    data = make_blobs()
    model = Custom()
    fit(model, data, data, _cfg(), show_progress=False)
    assert accuracy_and_loss(model, data)[0] > 0.9


def test_sgd_step_schedule_and_grad_clip_configs_train():
    data = make_blobs()
    for optim in (
        {"name": "sgd", "lr": 0.05, "schedule": "step", "step_epochs": 1},
        {"name": "adamw", "lr": 0.01, "warmup_steps": 5, "weight_decay": 0.01},
    ):
        model = _mlp()
        fit(model, data, None, _cfg(optim=optim, grad_clip=1.0), show_progress=False)
        assert accuracy_and_loss(model, data)[0] > 0.8


class _Crash(Exception):
    pass


def _crash_after(n):
    def on_epoch(row):
        if row["epoch"] == n:
            raise _Crash

    return on_epoch


def test_resume_continues_to_the_same_weights(tmp_path):
    data = make_blobs()
    full = _mlp()
    fit(full, data, None, _cfg(epochs=4), show_progress=False)

    state = tmp_path / "state"
    interrupted = _mlp()
    # A 4-epoch run that "crashes" after epoch 2: same schedule length, so the LR at each step matches.
    with pytest.raises(_Crash):
        fit(interrupted, data, None, _cfg(epochs=4), state_dir=state, show_progress=False, on_epoch=_crash_after(2))
    meta = json.loads((state / "state.json").read_text())
    assert meta["epoch"] == 2 and len(list(state.glob("state-*.safetensors"))) == 1
    resumed = _mlp(seed=5)  # whatever init: the state replaces it
    # same total schedule (4 epochs), continued from the saved state
    r = fit(resumed, data, None, _cfg(epochs=4), state_dir=state, resume_from_state=True, show_progress=False)
    assert [h["epoch"] for h in r.history] == [1, 2, 3, 4]
    for p_full, p_res in zip(full.parameters(), resumed.parameters(), strict=True):
        assert torch.allclose(p_full, p_res, atol=1e-6)


def test_checkpoint_round_trip_and_card(tmp_path):
    cfg, _ = load_config("digits-mlp", ["epochs=3", "model.hidden=[32]", "optim.lr=5e-3"])
    card = run(cfg, tmp_path / "ckpt", show_progress=False)
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert files == ["card.json", "model.safetensors"]  # no temp files, resume state removed
    on_disk = json.loads((tmp_path / "ckpt" / "card.json").read_text())
    assert on_disk == json.loads(json.dumps(card, default=str))
    assert on_disk["weights_sha256"] == sha256_file(tmp_path / "ckpt" / "model.safetensors")
    assert from_dict(TrainConfig, on_disk["config"]) == cfg
    assert on_disk["seed"] == 0 and "torch" in on_disk["versions"]
    assert set(on_disk["data"]["fingerprints"]) == {"train", "test"}
    assert 0.5 < on_disk["metrics"]["test_accuracy"] <= 1.0

    ck = load_checkpoint(tmp_path / "ckpt")
    original = load_file(str(tmp_path / "ckpt" / "model.safetensors"))
    for k, v in ck.model.state_dict().items():
        assert torch.equal(v, original[k])
    assert to_dict(ck.model_config) == to_dict(cfg.model)


def test_corrupt_checkpoint_is_detected(tmp_path):
    model = _mlp()
    save_checkpoint(model, tmp_path, {"config": {"model": {"name": "mlp", "hidden": [16]}}})
    w = tmp_path / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(R2UError, match="does not match the sha256"):
        read_card(tmp_path)
    with pytest.raises(R2UError, match="not a checkpoint"):
        read_card(tmp_path / "nothing")


def test_tied_weights_survive_a_checkpoint(tmp_path):
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4)
            self.b = nn.Linear(4, 4)
            self.b.weight = self.a.weight

        def forward(self, x):
            return self.b(self.a(x))

    m = Tied()
    save_checkpoint(m, tmp_path, {})
    m2 = Tied()
    from ready2unlearn.artifacts import load_weights

    load_weights(m2, tmp_path)
    assert m2.a.weight is m2.b.weight and torch.equal(m2.a.weight, m.a.weight)


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")

    def boom(p):
        p.write_text("partial")
        raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


def test_atomic_write_gives_ordinary_file_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.json", lambda p: p.write_text("{}"))
    finally:
        os.umask(mask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644


def test_fit_config_is_the_loop_share_of_train_config():
    """FitConfig (what retrain and SISA stages train with) keeps TrainConfig's names and defaults."""
    full, loop = to_dict(TrainConfig()), to_dict(FitConfig())
    assert loop == {k: full[k] for k in loop}
    cfg = TrainConfig(epochs=3, batch_size=16, seed=7, grad_clip=1.0)
    assert FitConfig.from_train_config(to_dict(cfg)) == FitConfig.of(cfg)
    assert FitConfig.of(cfg, epochs=1).epochs == 1 and FitConfig.of(cfg).optim == cfg.optim


def test_r2u_train_downweights_the_revocable_rows_as_the_bench_baseline_does(tmp_path):
    from ready2unlearn.data.registry import load_split
    from ready2unlearn.errors import ConfigError
    from ready2unlearn.readiness.baselines import fit_downweighted
    from ready2unlearn.readiness.sampler import RevocableSet
    from ready2unlearn.runtime import seed_everything

    raw = {"epochs": 2, "model": {"name": "mlp", "hidden": [16]}, "downweight": {"revocable": "class:3,5"}}
    cfg = from_dict(TrainConfig, raw)
    card = run(cfg, tmp_path / "dw", show_progress=False)
    assert card["downweight"] == {"revocable": "class:3,5", "weight": 0.1, "rows": card["downweight"]["rows"]}
    split = load_split(cfg.data)
    pool = RevocableSet.resolve(split.train, "class:3,5", 10).pool
    assert card["downweight"]["rows"] == len(pool) > 0
    seed_everything(cfg.seed)
    reference = build_model(cfg.model, split.spec)
    fit_downweighted(reference, split.train, None, cfg, pool.tolist(), 0.1)
    trained = load_checkpoint(tmp_path / "dw").model
    for a, b in zip(reference.state_dict().values(), trained.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    plain = run(from_dict(TrainConfig, {k: v for k, v in raw.items() if k != "downweight"}), tmp_path / "plain",
                show_progress=False)  # fmt: skip
    assert plain["metrics"] != card["metrics"] and "downweight" not in plain["config"]
    with pytest.raises(ConfigError, match=r"downweight\.weight"):
        from_dict(TrainConfig, {**raw, "downweight": {"revocable": "class:3", "weight": 1.5}})
    with pytest.raises(ConfigError, match="must name the revocable rows"):
        from_dict(TrainConfig, {**raw, "downweight": {"weight": 0.5}})
    with pytest.raises(ConfigError, match="sisa"):
        from_dict(TrainConfig, {**raw, "sisa": {"shards": 2}})


def test_cli_downweight_flags_become_the_config(tmp_path, monkeypatch):
    from ready2unlearn.artifacts import read_card
    from ready2unlearn.cli.main import main

    monkeypatch.chdir(tmp_path)
    args = ["train", "--dataset", "digits", "--model", "mlp", "--epochs", "1", "-q", "--downweight", "class:3"]
    assert main([*args, "--downweight.weight", "0.25", "--out", "m"]) == 0
    card = read_card(tmp_path / "m")
    assert card["config"]["downweight"] == {"revocable": "class:3", "weight": 0.25} and card["downweight"]["rows"] > 0
    assert main([*args[:-2], "--downweight.weight", "0.25", "--out", "n"]) == 2  # a weight without rows: refused
