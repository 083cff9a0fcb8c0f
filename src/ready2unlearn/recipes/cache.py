"""Benchmark caches keyed by what made them (DESIGN §6: "keyed by a hash of its resolved config, never by position").

Every cached model and cell of ``r2u bench`` / ``r2u ready-bench`` is stored under a name that ends in a
hash of its *cache config*: a plain mapping of everything that affects it (training config and seed, the
readiness / baseline / method / stop / relearning configs, the forgotten rows, the models it was computed
from) plus :data:`CACHE_VERSION`. The mapping itself is stored beside the artifact and compared on load; a
mismatch is recomputed rather than trusted. So reordering, inserting or editing a row of a preset can never
make another row pick up a stale model or cell.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ready2unlearn.artifacts import CARD, load_weights, read_card, save_checkpoint, write_json

#: Bump when a code change alters what a cached model or cell would contain for the same config, so old
#: caches are recomputed instead of reused (2: per-kind stop rules, seeded relearning, MIA on, negtrain).
CACHE_VERSION = 2


def canonical(config: Mapping[str, Any]) -> Any:
    """``config`` as plain JSON data (tuples become lists), the form that is hashed, stored and compared."""
    return json.loads(json.dumps({"cache_version": CACHE_VERSION, **config}, sort_keys=True, default=str))


def cache_key(config: Mapping[str, Any]) -> str:
    """A 12-hex-digit hash of :func:`canonical` ``(config)``."""
    text = json.dumps(canonical(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def cache_record(config: Mapping[str, Any]) -> dict[str, Any]:
    """What is stored with a cached artifact: ``{"key", "config"}``."""
    return {"key": cache_key(config), "config": canonical(config)}


def matches(stored: Mapping[str, Any] | None, config: Mapping[str, Any]) -> bool:
    """Whether a stored :func:`cache_record` was made from ``config``."""
    return bool(stored) and stored.get("config") == canonical(config)  # type: ignore[union-attr]


def load_json(path: Path, config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The cached JSON payload at ``path`` if it was made from ``config``; ``None`` (recompute) otherwise."""
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if matches(data.get("cache"), config) else None


def store_json(path: Path, config: Mapping[str, Any], payload: Mapping[str, Any]) -> dict[str, Any]:
    """Writes ``payload`` plus its cache record to ``path`` atomically; returns what was written."""
    data = {**payload, "cache": cache_record(config)}
    write_json(path, data)
    return data


class ModelCache:
    """Trained models cached as checkpoints in ``root/seed<S>/<name>-<hash>``, keyed by their cache config.

    A cached checkpoint whose stored config differs from the one asked for is retrained over, never trusted.
    Composable: a runner owns one and asks it for each model by name and config.

    Args:
        root: Folder of the cache.
        device: Where loaded models go.
        card: ``card(seed, info) -> card`` of a checkpoint written for ``seed`` (its provenance: training
            config, data fingerprints, versions). Cached weights are loaded into a model from ``build``.
    """

    def __init__(self, root: Path, device: torch.device, card: Callable[[int, dict[str, Any]], dict[str, Any]]):
        self.root, self.device, self.card = Path(root), device, card
        self._loaded: dict[str, tuple[nn.Module, dict[str, Any]]] = {}

    def path(self, seed: int, name: str, config: Mapping[str, Any]) -> Path:
        """The folder of model ``name`` made from ``config`` for ``seed``."""
        slug = re.sub(r"[^a-zA-Z0-9._-]+", "-", name).strip("-")
        return self.root / f"seed{seed}" / f"{slug}-{cache_key(config)}"

    def get(self, seed: int, name: str, config: Mapping[str, Any], build: Callable[[], nn.Module],
            train: Callable[[nn.Module], dict[str, Any]]) -> tuple[nn.Module, dict[str, Any]]:  # fmt: skip
        """The model and its training info: from memory, from the cache folder, or built and trained now.

        Args:
            seed: The seed (part of the folder name; ``config`` must hold everything else that matters).
            name: The model's name (``standard``, ``ready``...).
            config: Everything the model depends on (hashed).
            build: Builds the untrained model (called after ``torch.manual_seed(seed)``).
            train: Trains it in place and returns JSON-able info (seconds, metrics...).
        """
        d = self.path(seed, name, config)
        if str(d) in self._loaded:
            return self._loaded[str(d)]
        if (d / CARD).exists():
            card = read_card(d)  # hash-checked
            if matches(card.get("cache"), config):
                # Built by ``build`` and filled from the file, so a user's own module caches like a registered one.
                model = build()
                load_weights(model, d, self.device)
                self._loaded[str(d)] = (model, card["info"])
                return self._loaded[str(d)]
        torch.manual_seed(seed)
        model = build()
        info = train(model)
        save_checkpoint(model, d, {**self.card(seed, info), "info": info, "cache": cache_record(config)})
        self._loaded[str(d)] = (model, info)
        return model, info
