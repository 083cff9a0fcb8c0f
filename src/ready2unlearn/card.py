"""The model card: one typed description that every checkpoint carries as ``card.json``.

Training, unlearning, SISA, the benchmarks, the strategy planner and the ledger all write cards, and the
ledger, ``r2u eval``, lineage replay and certificates read them. Building each card from :class:`ModelCard`
keeps the shared part (what produced the model, from which config, seed, data and versions, with which
lineage) identical everywhere; what a producer adds of its own (training history, the unlearning run, a
benchmark's info) goes in ``extra`` as named sections.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ready2unlearn.artifacts import now_iso, versions
from ready2unlearn.data.base import Split

KIND = "ready2unlearn.checkpoint"
SCHEMA = 1
#: Keys of the card that :class:`ModelCard` fields own (``extra`` may not reuse them).
CORE_KEYS = ("kind", "schema", "created", "producer", "config", "seed", "model", "data", "metrics", "versions",
             "lineage")  # fmt: skip


def data_section(split: Split, meta: bool = True) -> dict[str, Any]:
    """The card's ``data`` section: dataset name, input/output spec, fingerprints (and provenance)."""
    out: dict[str, Any] = {"name": split.name, "spec": split.spec.to_dict(), "fingerprints": split.fingerprints()}
    if meta:
        out["meta"] = dict(split.meta)
    return out


@dataclass
class ModelCard:
    """What a checkpoint is and where it came from.

    Attributes:
        producer: The command or runner that wrote it (``r2u train``, ``r2u unlearn``, ``r2u bench``...).
        config: The resolved training config of the architecture and data (``to_dict`` form).
        seed: The seed of the run that produced the weights.
        model: Architecture name (and parameter count, ensemble kind...).
        data: The ``data`` section (:func:`data_section`): name, spec, fingerprints, provenance.
        metrics: Final metrics of the model.
        lineage: ``parent`` (folder or ``None``), ``parent_sha256``, every request served so far and the ids
            they removed.
        extra: Producer-specific sections (``history``, ``timing``, ``unlearn``, ``bench``, ``readiness``...).
        created: UTC time, ISO-8601.
        versions: Library versions that determine the numbers.
    """

    producer: str
    config: Mapping[str, Any]
    seed: int | None
    model: Mapping[str, Any]
    data: Mapping[str, Any]
    metrics: Mapping[str, Any] = field(default_factory=dict)
    lineage: Mapping[str, Any] = field(default_factory=lambda: {"parent": None, "requests": []})
    extra: Mapping[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=now_iso)
    versions: Mapping[str, str] = field(default_factory=versions)

    def __post_init__(self) -> None:
        clash = sorted(set(self.extra) & set(CORE_KEYS))
        if clash:
            raise ValueError(f"card sections {clash} are ModelCard fields; set them as such, not in extra")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written as ``card.json`` (``save_checkpoint`` adds the weights' file name and hash)."""
        return {"kind": KIND, "schema": SCHEMA, "created": self.created, "producer": self.producer,
                "config": dict(self.config), "seed": self.seed, "model": dict(self.model), "data": dict(self.data),
                "metrics": dict(self.metrics), "versions": dict(self.versions), "lineage": dict(self.lineage),
                **self.extra}  # fmt: skip

    @classmethod
    def from_dict(cls, card: Mapping[str, Any]) -> ModelCard:
        """The typed view of a card read from disk (unknown sections land in ``extra``)."""
        extra = {k: v for k, v in card.items() if k not in CORE_KEYS and k not in ("weights_file", "weights_sha256")}
        return cls(producer=str(card.get("producer", "")), config=card.get("config") or {}, seed=card.get("seed"),
                   model=card.get("model") or {}, data=card.get("data") or {}, metrics=card.get("metrics") or {},
                   lineage=card.get("lineage") or {"parent": None, "requests": []}, extra=extra,
                   created=str(card.get("created", "")), versions=card.get("versions") or {})  # fmt: skip
