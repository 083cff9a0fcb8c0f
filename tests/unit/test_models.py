from typing import get_args

import pytest
import torch
from torch import nn

from ready2unlearn.config import from_dict, to_dict
from ready2unlearn.data.base import DataSpec, Kind
from ready2unlearn.errors import ConfigError
from ready2unlearn.models import MODELS, build_model, count_parameters
from ready2unlearn.models.registry import ModelConfig, model_config

IMAGE_SPECS = [DataSpec("image", (1, 8, 8), 10), DataSpec("image", (1, 28, 28), 10), DataSpec("image", (3, 32, 32), 7)]


@pytest.mark.parametrize("spec", IMAGE_SPECS, ids=lambda s: "x".join(map(str, s.input_shape)))
@pytest.mark.parametrize(
    "cfg",
    [
        {"name": "mlp"},
        {"name": "cnn"},
        {"name": "cnn", "batch_norm": True, "convs": 2},
        {"name": "resnet18", "width": 8},
    ],
)
def test_image_models_forward_shape_and_backward(cfg, spec):
    model = build_model(cfg, spec)
    x = torch.randn(3, *spec.input_shape)
    out = model(x)
    assert out.shape == (3, spec.num_classes)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_text_bag_ignores_padding():
    spec = DataSpec("text", (6,), 3, vocab_size=50)
    model = build_model({"name": "text_bag"}, spec).eval()
    a = torch.tensor([[5, 6, 7, 0, 0, 0]])
    b = torch.tensor([[5, 6, 7, 0, 0, 0, 0, 0, 0]])
    assert model(a).shape == (1, 3)
    assert torch.allclose(model(a), model(b))  # padding does not change the pooled embedding
    assert model(torch.zeros(2, 6, dtype=torch.long)).isfinite().all()  # all-padding row: no division by zero


def test_resnet18_standard_size():
    model = build_model({"name": "resnet18"}, DataSpec("image", (3, 32, 32), 10))
    assert 11_000_000 < count_parameters(model) < 11_300_000  # the usual 11.17M CIFAR ResNet-18


def test_models_refuse_the_wrong_data_kind():
    with pytest.raises(ConfigError, match="takes text data"):
        build_model({"name": "text_bag"}, DataSpec("image", (1, 8, 8), 10))
    with pytest.raises(ConfigError, match="takes image data"):
        build_model({"name": "cnn"}, DataSpec("text", (8,), 2, vocab_size=9))


def test_registry_lists_the_shipped_models():
    assert {"mlp", "cnn", "resnet18", "text_bag"} <= set(MODELS.names())
    for name, info in MODELS.items():
        # Each entry's config class is a ModelConfig dataclass named after its key, which the name alone
        # rebuilds (so a card's {"name": ...} finds its architecture) and which round-trips unchanged.
        cfg = model_config({"name": name})
        assert type(cfg) is info.config_cls and issubclass(info.config_cls, ModelConfig) and cfg.name == name
        assert from_dict(ModelConfig, to_dict(cfg)) == cfg
        assert info.summary and set(info.kinds) <= set(get_args(Kind))
    assert isinstance(build_model({"name": "mlp", "hidden": []}, IMAGE_SPECS[0])[1], nn.Linear)
