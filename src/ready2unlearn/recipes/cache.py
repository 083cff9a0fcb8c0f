"""Benchmark caches keyed by what made them (DESIGN §6: "keyed by a hash of its resolved config, never by position").

Every cached model and cell of ``r2u bench`` / ``r2u ready-bench`` is stored under a name that ends in a
hash of its *cache config*: a plain mapping of everything that affects it (training config and seed, the
readiness / baseline / method / stop / relearning configs, the forgotten rows, the models it was computed
from) plus :data:`CACHE_VERSION`. The mapping itself is stored beside the artifact and compared on load; a
mismatch is recomputed rather than trusted. So reordering, inserting or editing a row of a preset can never
make another row pick up a stale model or cell. The caches built on these functions (models, cells) are in
:mod:`ready2unlearn.recipes.harness`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ready2unlearn.artifacts import write_json

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
