"""Small vision classifiers: MLP, a compact CNN, and the CIFAR variant of ResNet-18."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ready2unlearn.config import check
from ready2unlearn.data.base import DataSpec
from ready2unlearn.models.registry import ModelConfig, register_model


@dataclass
class MLPConfig(ModelConfig):
    """Multi-layer perceptron over flattened inputs.

    Attributes:
        hidden: Widths of the hidden layers.
        dropout: Dropout after each hidden layer.
    """

    name: str = "mlp"
    hidden: list[int] = field(default_factory=lambda: [256, 256])
    dropout: float = 0.1

    def __post_init__(self) -> None:
        check(self.name == "mlp", f"MLPConfig.name must be 'mlp', got {self.name!r}")
        check(all(h > 0 for h in self.hidden), f"model.hidden widths must be positive, got {self.hidden}")
        check(0.0 <= self.dropout < 1.0, f"model.dropout must be in [0, 1), got {self.dropout}")


@register_model("mlp", MLPConfig, ("image", "tabular"), "MLP on flattened inputs (ReLU, dropout)")
def build_mlp(cfg: MLPConfig, spec: DataSpec) -> nn.Module:
    """Flatten → (Linear → ReLU → Dropout)* → Linear."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(spec.input_shape)
    for h in cfg.hidden:
        layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(cfg.dropout)]
        width = h
    layers.append(nn.Linear(width, spec.num_classes))
    return nn.Sequential(*layers)


@dataclass
class CNNConfig(ModelConfig):
    """Compact conv net: per stage ``convs`` 3×3 convs and a 2×2 max-pool, then a hidden dense layer.

    Attributes:
        channels: Output channels of each stage; each stage halves the resolution (while it is ≥ 2).
            The default ``[16, 32]`` trains a Fashion-MNIST epoch in about 15 s on 2 CPU cores.
        convs: 3×3 conv layers per stage.
        hidden: Width of the dense layer before the classifier.
        dropout: Dropout before the dense layers.
        batch_norm: Add BatchNorm after each conv (off by default: keeps the functional inner loop of
            readiness training free of running statistics).
    """

    name: str = "cnn"
    channels: list[int] = field(default_factory=lambda: [16, 32])
    convs: int = 1
    hidden: int = 128
    dropout: float = 0.25
    batch_norm: bool = False

    def __post_init__(self) -> None:
        check(self.name == "cnn", f"CNNConfig.name must be 'cnn', got {self.name!r}")
        check(len(self.channels) > 0 and all(c > 0 for c in self.channels), "model.channels must be positive")
        check(self.convs > 0, "model.convs must be positive")
        check(self.hidden > 0, "model.hidden must be positive")
        check(0.0 <= self.dropout < 1.0, f"model.dropout must be in [0, 1), got {self.dropout}")


@register_model("cnn", CNNConfig, ("image",), "small conv net for 28x28 (and 8x8, 32x32) images")
def build_cnn(cfg: CNNConfig, spec: DataSpec) -> nn.Module:
    """Conv stages → flatten → dropout → Linear → ReLU → dropout → Linear."""
    c_in, h, w = spec.input_shape
    layers: list[nn.Module] = []
    for c_out in cfg.channels:
        for i in range(cfg.convs):
            layers.append(nn.Conv2d(c_in, c_out, 3, padding=1))
            if cfg.batch_norm:
                layers.append(nn.BatchNorm2d(c_out))
            c_in = c_out
            if i < cfg.convs - 1:
                layers.append(nn.ReLU())
        if min(h, w) >= 2:  # 8x8 digits survive three stages: 8 → 4 → 2 → 1
            # Pool before the ReLU: identical output (max commutes with a monotone function), 4x less work.
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        layers.append(nn.ReLU())
    layers += [
        nn.Flatten(),
        nn.Dropout(cfg.dropout),
        nn.Linear(c_in * h * w, cfg.hidden),
        nn.ReLU(),
        nn.Dropout(cfg.dropout),
        nn.Linear(cfg.hidden, spec.num_classes),
    ]
    return nn.Sequential(*layers)


@dataclass
class ResNet18Config(ModelConfig):
    """ResNet-18, CIFAR variant (3×3 stem, no max-pool), as used by SalUn and most unlearning papers.

    Attributes:
        width: Channels of the first stage (64 in the standard model; smaller for CPU runs).
        blocks: Basic blocks per stage.
    """

    name: str = "resnet18"
    width: int = 64
    blocks: list[int] = field(default_factory=lambda: [2, 2, 2, 2])

    def __post_init__(self) -> None:
        check(self.name == "resnet18", f"ResNet18Config.name must be 'resnet18', got {self.name!r}")
        check(self.width > 0 and len(self.blocks) == 4 and all(b > 0 for b in self.blocks),
              "model.width must be positive and model.blocks four positive counts")  # fmt: skip


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN layers with an identity (or 1×1 projection) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual forward pass."""
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR-style ResNet-18."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 64, blocks: tuple[int, ...] = (2, 2, 2, 2)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        stages, c_in = [], width
        for i, n in enumerate(blocks):
            c_out = width * 2**i
            for j in range(n):
                stages.append(BasicBlock(c_in, c_out, stride=2 if (i > 0 and j == 0) else 1))
                c_in = c_out
        self.layers = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` → logits ``[B, num_classes]``."""
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


@register_model("resnet18", ResNet18Config, ("image",), "ResNet-18, CIFAR variant (3x3 stem, no max-pool)")
def build_resnet18(cfg: ResNet18Config, spec: DataSpec) -> nn.Module:
    """Builds :class:`ResNet18` for the spec's channels and classes."""
    return ResNet18(spec.input_shape[0], spec.num_classes, cfg.width, tuple(cfg.blocks))
