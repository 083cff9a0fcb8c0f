"""TOFU (Maini et al. 2024, "TOFU: A Task of Fictitious Unlearning for LLMs"): fictitious-author QA.

``full`` holds 4,000 question/answer pairs, 20 per author for 200 authors, in author order; the
``forgetXX`` splits are its last 1/5/10 % rows (the last 2/10/20 authors) and ``retainYY`` the rest. A
sample's id is its row in ``full``; the ``author`` group column (row // 20) serves group requests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ready2unlearn.data.files import find_file, read_verified
from ready2unlearn.errors import DataError

QA_PER_AUTHOR = 20
FORGET_SPLITS = {"forget01": 40, "forget05": 200, "forget10": 400}
EVAL_FILES = (
    "forget01_perturbed", "forget05_perturbed", "forget10_perturbed", "retain_perturbed",
    "holdout01", "holdout05", "holdout10", "real_authors", "real_authors_perturbed",
    "world_facts", "world_facts_perturbed",
)  # fmt: skip


@dataclass(frozen=True)
class QADataset:
    """Question/answer rows with stable ids and group columns (the QA analogue of ``ArrayDataset``)."""

    rows: list[dict[str, Any]]
    ids: np.ndarray
    groups: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def labels(self) -> None:
        """QA rows have no class labels."""
        return None

    def subset(self, index: np.ndarray | list[int]) -> QADataset:
        """Rows at the given positions."""
        idx = np.asarray(index, dtype=np.int64)
        return QADataset([self.rows[i] for i in idx], self.ids[idx], {k: v[idx] for k, v in self.groups.items()})


def read_jsonl(path: Path, verify: bool = True) -> list[dict[str, Any]]:
    """Reads a TOFU JSON-Lines file, checking its checksum and that each row has a question."""
    key = f"tofu/{path.name.removesuffix('.gz')}"
    text = read_verified(path, "tofu", key, verify).decode("utf-8", "replace")
    try:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as e:
        raise DataError(f"tofu: file {str(path)!r} is not JSON Lines ({e.msg}); replace it") from None
    if not rows or any("question" not in r for r in rows):
        raise DataError(f"tofu: file {str(path)!r} has rows without a 'question'; replace it")
    return rows


def load_tofu(root: Path | None, verify: bool = True) -> tuple[QADataset, QADataset, dict[str, np.ndarray]]:
    """Loads TOFU as ``(train=full, test=holdout10, named forget splits → row ids)``.

    Raises:
        DataError: If a file is missing or corrupt, or ``full`` does not have 20 rows per author.
    """
    full = read_jsonl(find_file(root, "tofu", "full.jsonl", ("tofu", "TOFU")), verify)
    if len(full) % QA_PER_AUTHOR:
        raise DataError(f"tofu: full.jsonl has {len(full)} rows, not a multiple of {QA_PER_AUTHOR} per author")
    ids = np.arange(len(full))
    train = QADataset(full, ids, {"author": ids // QA_PER_AUTHOR})
    hold = read_jsonl(find_file(root, "tofu", "holdout10.jsonl", ("tofu", "TOFU")), verify)
    hold_ids = np.arange(len(hold))
    test = QADataset(hold, hold_ids, {"author": hold_ids // QA_PER_AUTHOR + len(full) // QA_PER_AUTHOR})
    splits = {name: ids[-n:] for name, n in FORGET_SPLITS.items()}
    return train, test, splits


def load_tofu_file(root: Path | None, name: str, verify: bool = True) -> list[dict[str, Any]]:
    """Loads one of the evaluation files (e.g. ``forget01_perturbed``, ``world_facts``) by stem."""
    if name not in EVAL_FILES and name not in FORGET_SPLITS and not name.startswith("retain"):
        raise DataError(f"tofu: unknown file {name!r}; known: {', '.join(EVAL_FILES)}")
    return read_jsonl(find_file(root, "tofu", f"{name}.jsonl", ("tofu", "TOFU")), verify)
