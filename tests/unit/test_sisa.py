"""SISA: a stable layout, both aggregations, and exact unlearning (bit for bit against training without the rows)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.data.registry import load_split
from ready2unlearn.data.sisa import SisaConfig, sisa_layout
from ready2unlearn.errors import ConfigError, DataError, RequestError
from ready2unlearn.models.ensemble import Ensemble
from ready2unlearn.optim import OptimConfig
from ready2unlearn.recipes.train import TrainConfig
from ready2unlearn.unlearn.sisa import train_sisa, unlearn_sisa
from ready2unlearn.unlearn.sisa_checkpoint import load_sisa, save_sisa


def _data(n: int = 240, seed: int = 0) -> ArrayDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long() + 2 * (x[:, 2] > 0.5).long()
    owners = np.arange(n) % 17
    return ArrayDataset(x, y, torch.arange(1000, 1000 + n), groups={"owner": owners})


class Net(nn.Module):
    """A user-defined module with dropout (its randomness must replay exactly) and a normalisation layer."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


CFG = TrainConfig(epochs=3, batch_size=16, seed=3, optim=OptimConfig(lr=1e-2))


def _same(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_layout_is_stable_under_deletion_and_balanced():
    data, cfg = _data(), SisaConfig(shards=4, slices=3)
    full = sisa_layout(data, cfg, seed=1)
    keep = np.flatnonzero(np.arange(len(data)) % 5 != 0)
    sub = sisa_layout(data.subset(keep), cfg, seed=1)
    assert np.array_equal(full.shard[keep], sub.shard) and np.array_equal(full.slice[keep], sub.slice)
    sizes = np.array(full.sizes())
    assert sizes.sum() == len(data) and sizes.min() > 0
    assert not np.array_equal(sisa_layout(data, cfg, seed=2).shard, full.shard)  # the seed matters


def test_shard_by_group_puts_each_owner_in_one_shard():
    data = _data()
    layout = sisa_layout(data, SisaConfig(shards=3, slices=2, shard_by="owner"), seed=0)
    for owner in np.unique(data.groups["owner"]):
        assert len(np.unique(layout.shard[data.groups["owner"] == owner])) == 1
    with pytest.raises(DataError, match="not a group column"):
        sisa_layout(data, SisaConfig(shards=3, shard_by="user"), seed=0)


def test_config_rejects_bad_counts():
    with pytest.raises(ConfigError):
        SisaConfig(shards=0)
    with pytest.raises(ConfigError):
        SisaConfig(slices=0)
    assert SisaConfig(slices=3).slice_epochs(10) == 5  # 2E / (R + 1): the row visits of E epochs


def test_aggregations():
    a, b, c = (nn.Linear(2, 3) for _ in range(3))
    for m, bias in zip((a, b, c), ([5.0, 0, 0], [0, 5.0, 0], [0, 5.0, 0]), strict=True):
        nn.init.zeros_(m.weight)
        m.bias.data = torch.tensor(bias)
    x = torch.zeros(1, 2)
    vote = Ensemble([a, b, c], "vote")(x)
    assert vote.argmax(-1).item() == 1  # two members of three say label 1
    soft = Ensemble([a, b, c], "softmax")(x)
    assert torch.allclose(soft.exp().sum(-1), torch.ones(1))
    expected = torch.stack([m(x).softmax(-1) for m in (a, b, c)]).mean(0)
    assert torch.allclose(soft.exp(), expected, atol=1e-6)


@pytest.mark.parametrize("shard_by", [None, "owner"])
def test_unlearning_equals_training_without_the_rows(shard_by):
    data = _data()
    sisa = SisaConfig(shards=3, slices=3, shard_by=shard_by)
    model = train_sisa(Net, data, CFG, sisa, show_progress=False)
    layout = model.layout(data)
    if shard_by is None:  # two rows of shard 0 (slice 1 and 2)
        rows = [int(np.flatnonzero((layout.shard == 0) & (layout.slice == r))[0]) for r in (1, 2)]
    else:  # every row of one owner
        rows = np.flatnonzero(data.groups["owner"] == 5).tolist()
    forget = data.ids[rows].tolist()
    result = unlearn_sisa(model, data, forget, CFG, show_progress=False)
    reference = train_sisa(Net, data.subset(np.setdiff1d(np.arange(len(data)), rows)), CFG, sisa, show_progress=False)
    assert _same(result.model.ensemble, reference.ensemble)  # exact, parameter for parameter
    hit = sorted({int(layout.shard[r]) for r in rows})
    assert [r["shard"] for r in result.retrained] == hit  # only the shards that held a deleted row
    first = {k: int(layout.slice[[r for r in rows if layout.shard[r] == k]].min()) for k in hit}
    assert {r["shard"]: r["from_slice"] for r in result.retrained} == first
    assert result.stages == sum(sisa.slices - j for j in first.values()) < sisa.shards * sisa.slices
    for k in range(sisa.shards):  # untouched constituents are the trained ones; touched ones changed
        assert _same(result.model.ensemble.members[k], model.ensemble.members[k]) == (k not in hit)
    assert result.model.lineage[hit[0]][-1]["event"] == "retrained"


def test_sequential_deletions_stay_exact_and_bad_ids_are_rejected():
    data = _data()
    sisa = SisaConfig(shards=2, slices=2)
    model = train_sisa(Net, data, CFG, sisa, show_progress=False)
    first = unlearn_sisa(model, data, data.ids[:3].tolist(), CFG, show_progress=False)
    rest = data.subset(np.arange(3, len(data)))
    second = unlearn_sisa(first.model, rest, rest.ids[:4].tolist(), CFG, show_progress=False)
    reference = train_sisa(Net, data.subset(np.arange(7, len(data))), CFG, sisa, show_progress=False)
    assert _same(second.model.ensemble, reference.ensemble)
    with pytest.raises(RequestError, match="not in the training data"):
        unlearn_sisa(first.model, rest, data.ids[:1].tolist(), CFG, show_progress=False)
    with pytest.raises(RequestError, match="names no ids"):
        unlearn_sisa(model, data, [], CFG, show_progress=False)


def test_checkpoint_round_trip_keeps_unlearning_exact(tmp_path):
    data = _data()
    sisa = SisaConfig(shards=2, slices=3, aggregation="vote")
    model = train_sisa(Net, data, CFG, sisa, show_progress=False)
    card = save_sisa(model, tmp_path / "ckpt", {"seed": CFG.seed})
    assert card["sisa"]["config"]["aggregation"] == "vote" and len(card["sisa"]["slice_files"]) == 2 * 3
    loaded = load_sisa(tmp_path / "ckpt", Net)
    assert _same(loaded.ensemble, model.ensemble) and loaded.cfg == sisa
    x = data.x[:20]
    model.ensemble.eval()
    loaded.ensemble.eval()
    assert torch.equal(loaded.ensemble(x), model.ensemble(x))
    a = unlearn_sisa(model, data, data.ids[:5].tolist(), CFG, show_progress=False)
    b = unlearn_sisa(loaded, data, data.ids[:5].tolist(), CFG, show_progress=False)
    assert _same(a.model.ensemble, b.model.ensemble)
    victim = tmp_path / "ckpt" / card["sisa"]["slice_files"]["0/0"]["file"]
    victim.write_bytes(victim.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(DataError, match="sha256"):
        load_sisa(tmp_path / "ckpt", Net)


def test_cli_sisa_train_and_exact_unlearn(tmp_path, monkeypatch):
    from ready2unlearn.checkpoint import load_checkpoint
    from ready2unlearn.cli.main import main
    from ready2unlearn.recipes import sisa as sisa_recipe
    from ready2unlearn.recipes import train as train_recipe

    monkeypatch.chdir(tmp_path)
    args = ["train", "--dataset", "digits", "--model", "mlp", "--epochs", "2", "--sisa.shards", "2",
            "--sisa.slices", "3", "--out", "sisa", "--quiet"]  # fmt: skip
    assert main(args) == 0
    model, card, cfg = sisa_recipe.load(tmp_path / "sisa")
    assert card["sisa"]["config"]["shards"] == 2 and len(card["sisa"]["slice_files"]) == 2 * 3
    split = load_split(cfg.data)
    layout = model.layout(split.train)
    rows = np.flatnonzero((layout.shard == 1) & (layout.slice == 2))[:3]  # late rows of shard 1 only
    ids = split.train.ids[rows].tolist()
    (tmp_path / "ids.txt").write_text("\n".join(map(str, ids)))
    assert main(["unlearn", "--checkpoint", "sisa", "--request", "samples:ids.txt", "--method", "sisa",
                 "--out", "gone", "--quiet"]) == 0  # fmt: skip
    served, served_card, _ = sisa_recipe.load(tmp_path / "gone")
    assert served_card["unlearn"]["retrained"] == [{"shard": 1, "from_slice": 2, "deleted": 3,
                                                    "rows": int((layout.shard == 1).sum()) - 3}]  # fmt: skip
    assert served_card["unlearn"]["exact_text"] == "exact: retrained shard 1 from slice 2"
    assert served_card["lineage"]["forgotten_ids"] == ids
    keep = np.setdiff1d(np.arange(len(split.train)), rows)
    factory = sisa_recipe.model_factory(cfg, split.spec, "cpu")
    reference = train_sisa(factory, split.train.subset(keep), cfg, cfg.sisa, show_progress=False)
    assert _same(served.ensemble, reference.ensemble)  # the served checkpoint is SISA trained without the rows
    loaded = load_checkpoint(tmp_path / "gone").model  # evaluations load the ensemble like any classifier
    assert isinstance(loaded, Ensemble) and _same(loaded, served.ensemble)
    with pytest.raises(ConfigError, match="sisa"):
        train_recipe.run(cfg, tmp_path / "other")


def test_ledger_serves_a_sisa_model_exactly_and_certifies_it(tmp_path, monkeypatch):
    from ready2unlearn.cli.main import main
    from ready2unlearn.engine.unlearn_config import load_unlearn_config
    from ready2unlearn.ledger import Ledger, ProcessConfig, process, verify_certificate
    from ready2unlearn.ledger.certificate import OUTCOME_EXACT

    monkeypatch.chdir(tmp_path)
    assert main(["train", "--dataset", "digits", "--model", "mlp", "--epochs", "2", "--sisa.shards", "2",
                 "--sisa.slices", "2", "--out", "sisa", "--quiet"]) == 0  # fmt: skip
    led = Ledger(tmp_path / "ledger.db")
    led.bind(tmp_path / "sisa")
    split, forgotten = led.load_split()
    req = led.add_request("samples", "0,1,2", "test", "alice", split, forgotten)
    cfg, _ = load_unlearn_config(None, [], method="ga")  # the method is not used: SISA models are served exactly
    summary = process(led.path, cfg, ProcessConfig(relearn_steps=3, poll_seconds=0.05))
    assert summary.done == [req.id]
    row = led.request(req.id)
    cert_path = led.store / row.certificate
    cert = json.loads(cert_path.read_text())
    assert cert["outcome"] == OUTCOME_EXACT and cert["method"]["name"] == "sisa"
    assert cert["unlearning"]["exact"].startswith("exact: retrained shard")
    assert cert["unlearning"]["rule"] == "exact" and cert["unlearning"]["retrained"]
    assert "forget_acc" in cert["verification"]["metrics"]  # the harness still measures the served ensemble
    assert verify_certificate(cert_path).ok
    assert "Forgotten exactly" in (cert_path.parent / "certificate.html").read_text()
    # the next request is served from the retrained ensemble, again exactly
    req2 = led.add_request("samples", "3,4", "test", "bob", *led.load_split())
    process(led.path, cfg, ProcessConfig(relearn_steps=3, poll_seconds=0.05))
    assert led.request(req2.id).status == "done" and led.request(req2.id).parent_hash == row.child_hash
