from dataclasses import dataclass, field
from typing import Literal

import pytest

from ready2unlearn.config import apply_overrides, from_dict, list_presets, load_yaml, resolve_preset, to_dict
from ready2unlearn.errors import ConfigError
from ready2unlearn.models.text import TextBagConfig
from ready2unlearn.models.vision import CNNConfig, MLPConfig
from ready2unlearn.recipes.train import TrainConfig, load_config


@dataclass
class Inner:
    rate: float = 0.1
    mode: Literal["a", "b"] = "a"


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    sizes: list[int] = field(default_factory=lambda: [1, 2])
    name: str | None = None
    flag: bool = False


def test_round_trip_default_and_overridden():
    cfg = from_dict(Outer, {"inner": {"rate": 3, "mode": "b"}, "sizes": [4], "name": "x", "flag": True})
    assert cfg.inner.rate == 3.0 and isinstance(cfg.inner.rate, float)
    assert from_dict(Outer, to_dict(cfg)) == cfg
    assert from_dict(Outer, to_dict(Outer())) == Outer()


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"inner": {"rte": 1}}, "did you mean 'inner.rate'"),
        ({"sizes": [1, "x"]}, r"sizes\[1\] must be an integer"),
        ({"inner": {"mode": "c"}}, "must be one of"),
        ({"flag": "yes"}, "true or false"),
        ({"inner": 3}, "must be a mapping"),
        ({"inner": {"rate": "fast"}}, "must be a number"),
    ],
)
def test_bad_values_rejected(data, match):
    with pytest.raises(ConfigError, match=match):
        from_dict(Outer, data)


def test_overrides_parse_yaml_values_and_nest():
    d = apply_overrides({"inner": {"rate": 0.1}}, ["inner.rate=1e-3", "sizes=[3, 4]", "name=null", "flag=true"])
    cfg = from_dict(Outer, d)
    assert cfg.inner.rate == 1e-3 and cfg.sizes == [3, 4] and cfg.name is None and cfg.flag is True


@pytest.mark.parametrize("bad", ["noequals", "=3"])
def test_malformed_override(bad):
    with pytest.raises(ConfigError, match=r"key\.sub=value"):
        apply_overrides({}, [bad])


def test_override_into_value_is_rejected():
    with pytest.raises(ConfigError, match="is a value"):
        apply_overrides({"epochs": 3}, ["epochs.sub=1"])


def test_train_config_dispatches_model_config_by_name():
    cfg = from_dict(TrainConfig, {"model": {"name": "cnn", "channels": [8]}})
    assert isinstance(cfg.model, CNNConfig) and cfg.model.channels == [8]
    assert isinstance(TrainConfig().model, MLPConfig)
    assert from_dict(TrainConfig, to_dict(cfg)) == cfg
    with pytest.raises(ConfigError, match=r"unknown config key 'model\.channels'"):
        from_dict(TrainConfig, {"model": {"name": "mlp", "channels": [8]}})
    with pytest.raises(ConfigError, match="unknown model 'cnnn'"):
        from_dict(TrainConfig, {"model": {"name": "cnnn"}})


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("epochs=0", "epochs must be positive"),
        ("optim.lr=-1", "optim.lr must be positive"),
        ("optim.name=rmsprop", "must be one of"),
        ("data.name=mnsit", "Did you mean 'mnist'"),
        ("data.test_fraction=1.5", "test_fraction"),
        ("model.dropout=1.0", "dropout"),
        ("optim.lrr=1", "did you mean 'optim.lr'"),
    ],
)
def test_bad_train_overrides(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config("digits-mlp", [override])


def test_every_shipped_preset_loads_and_round_trips():
    names = list_presets("train")
    assert {"digits-mlp", "mnist-cnn", "fashion_mnist-cnn", "cifar10-resnet18", "ag_news-text_bag"} <= set(names)
    for name in names:
        path = resolve_preset("train", name)
        assert path.read_text().startswith("# r2u train --config " + name), "presets start with their command"
        cfg, _ = load_config(name)
        assert from_dict(TrainConfig, to_dict(cfg)) == cfg
        assert load_yaml(path)["data"]["name"] == cfg.data.name


def test_shortcuts_pick_dataset_model_preset_and_model_switch_resets_keys():
    cfg, preset = load_config(None, [], dataset="fashion_mnist", model="cnn")
    assert preset and preset.endswith("fashion_mnist-cnn.yaml") and cfg.epochs == 8
    cfg, preset = load_config("ag_news-text_bag", [], model="text_bag")
    assert isinstance(cfg.model, TextBagConfig) and cfg.model.embed_dim == 64
    cfg, preset = load_config("digits-mlp", [], model="cnn")
    assert isinstance(cfg.model, CNNConfig) and cfg.data.name == "digits"
    cfg, preset = load_config(None, [], dataset="mnist", model="resnet18")
    assert preset is None and cfg.data.name == "mnist"


def test_unknown_preset_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="Did you mean 'digits-mlp'"):
        resolve_preset("train", "digits-mpl")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(bad))
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(str(lst))
