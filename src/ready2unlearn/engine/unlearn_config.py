"""The resolved configuration of one unlearning run: method, stop rule, seed, device."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ready2unlearn.config import apply_overrides, from_dict, load_yaml, resolve_preset
from ready2unlearn.engine.method import MethodConfig, method_config
from ready2unlearn.engine.stop import StopConfig
from ready2unlearn.errors import ConfigError


@dataclass
class UnlearnConfig:
    """Method (with its hyper-parameters), stop rule, seed and device of an unlearning run."""

    method: MethodConfig = field(default_factory=lambda: method_config({"name": "ga"}))
    stop: StopConfig = field(default_factory=StopConfig)
    seed: int = 0
    device: str = "auto"


def load_unlearn_config(
    preset: str | None = None, overrides: Sequence[str] = (), method: str | None = None
) -> tuple[UnlearnConfig, str | None]:
    """Resolves an :class:`UnlearnConfig`: preset (default: the method's shipped preset), then overrides.

    Args:
        preset: Shipped preset name (``configs/unlearn/<name>.yaml``) or a YAML path.
        overrides: ``key.sub=value`` strings.
        method: Shortcut: use this method's shipped preset (or its defaults) when ``preset`` is not given.
    """
    data: dict[str, Any] = {}
    path = None
    name = preset or method
    if name is not None:
        try:
            path = resolve_preset("unlearn", name)
            data = load_yaml(path)
        except ConfigError:
            if preset is not None:
                raise
            data = {}
    if method is not None and (data.get("method") or {}).get("name") != method:
        data["method"] = {"name": method}
    data = apply_overrides(data, list(overrides))
    return from_dict(UnlearnConfig, data), (str(path) if path else None)
