"""The typed model card: one shape for every producer, extras in their own sections, a lossless round trip."""

from __future__ import annotations

import pytest

from ready2unlearn.card import CORE_KEYS, ModelCard, data_section
from ready2unlearn.data.registry import DataConfig, load_split


def test_card_shape_round_trip_and_guarded_extras():
    split = load_split(DataConfig(name="digits"))
    card = ModelCard(producer="r2u test", config={"epochs": 1}, seed=3, model={"name": "mlp"},
                     data=data_section(split), metrics={"test_accuracy": 0.5}, extra={"history": [1, 2]})  # fmt: skip
    d = card.to_dict()
    assert set(CORE_KEYS) <= set(d) and d["kind"] == "ready2unlearn.checkpoint" and d["history"] == [1, 2]
    assert d["data"]["fingerprints"] == split.fingerprints() and "meta" in d["data"]
    assert "meta" not in data_section(split, meta=False)
    assert d["lineage"] == {"parent": None, "requests": []}
    back = ModelCard.from_dict({**d, "weights_sha256": "x" * 64, "weights_file": "model.safetensors"})
    assert back.to_dict() == d  # the weights fields belong to the checkpoint, not the card's content
    with pytest.raises(ValueError, match="ModelCard fields"):
        ModelCard(producer="p", config={}, seed=0, model={}, data={}, extra={"metrics": {}})


def test_every_recipe_writes_the_same_core(tmp_path, monkeypatch):
    from ready2unlearn.artifacts import read_card
    from ready2unlearn.cli.main import main

    monkeypatch.chdir(tmp_path)
    assert main(["train", "--dataset", "digits", "--model", "mlp", "--epochs", "1", "--out", "m", "-q"]) == 0
    assert main(["unlearn", "--checkpoint", "m", "--request", "samples:0,1", "--method", "ga", "--stop", "steps:2",
                 "--out", "u", "-q"]) == 0  # fmt: skip
    assert main(["train", "--dataset", "digits", "--model", "mlp", "--epochs", "1", "--sisa.shards", "2",
                 "--out", "s", "-q"]) == 0  # fmt: skip
    for folder, producer in (("m", "r2u train"), ("u", "r2u unlearn"), ("s", "r2u train")):
        card = read_card(tmp_path / folder)
        assert set(CORE_KEYS) <= set(card) and card["producer"] == producer
    assert read_card(tmp_path / "u")["lineage"]["parent_sha256"] == read_card(tmp_path / "m")["weights_sha256"]
