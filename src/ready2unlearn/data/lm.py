"""Question/answer rows → causal-LM training tensors, with the loss on the answer tokens only.

A QA pair becomes one right-padded token sequence ``prompt(question) + answer + eos``; its label row copies
the answer tokens and puts :data:`IGNORE` (−100, PyTorch's ``ignore_index``) on the prompt and the padding,
so every loss the toolkit computes (training, unlearning, the readiness inner loop) scores the answer given
the question, as TOFU does. Right padding needs no attention mask for a causal model: a padded position
comes after every real token, so no real token ever attends to it.

The result is an ordinary :class:`~ready2unlearn.data.base.ArrayDataset` (``x`` = input ids ``[N, L]``,
``y`` = labels ``[N, L]``), so batching, subsets, requests and fingerprints work unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ready2unlearn.config import check
from ready2unlearn.data.base import ArrayDataset

IGNORE = -100


@dataclass(frozen=True)
class QATemplate:
    """How a question is turned into a prompt (the answer follows it directly).

    Attributes:
        prefix: Text before the question.
        separator: Text between the question and the answer.
    """

    prefix: str = "Question: "
    separator: str = "\nAnswer: "

    def prompt(self, question: str) -> str:
        """The text the model is conditioned on."""
        return f"{self.prefix}{question}{self.separator}"


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def pad_id(tokenizer: Any) -> int:
    """The tokenizer's padding id, falling back to its end-of-sequence id (causal LMs often have no pad)."""
    for attr in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, attr, None)
        if value is not None:
            return int(value)
    raise ValueError("the tokenizer has neither a pad nor an eos token; set tokenizer.pad_token")


def encode_pair(
    tokenizer: Any, question: str, answer: str, template: QATemplate, max_len: int
) -> tuple[list[int], int]:
    """Token ids of one QA pair and the position where the answer starts.

    The answer is truncated to fit ``max_len`` (the end-of-sequence token, when the tokenizer has one, is
    kept inside the answer so the model learns to stop). A prompt longer than ``max_len // 2`` keeps its
    last tokens (the separator that cues the answer survives), so every pair has room for an answer.
    """
    prompt = _ids(tokenizer, template.prompt(question))
    if len(prompt) > max_len // 2:
        prompt = prompt[-(max_len // 2) :]
    answer_ids = _ids(tokenizer, answer)
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is not None:
        answer_ids = [*answer_ids, int(eos)]
    room = max_len - len(prompt)
    return prompt + answer_ids[:room], len(prompt)


def encode_qa(
    tokenizer: Any,
    rows: Sequence[Mapping[str, Any]],
    template: QATemplate,
    max_len: int,
    answer_key: str = "answer",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, labels)``, each ``[N, max_len]``: right-padded, labels = answer tokens, else −100."""
    check(max_len > 1, f"max_len must be > 1, got {max_len}")
    pad = pad_id(tokenizer)
    x = np.full((len(rows), max_len), pad, dtype=np.int64)
    y = np.full((len(rows), max_len), IGNORE, dtype=np.int64)
    for i, row in enumerate(rows):
        ids, start = encode_pair(tokenizer, row["question"], row[answer_key], template, max_len)
        x[i, : len(ids)] = ids
        y[i, start : len(ids)] = ids[start:]
    return torch.from_numpy(x), torch.from_numpy(y)


def qa_dataset(
    tokenizer: Any,
    rows: Sequence[Mapping[str, Any]],
    ids: np.ndarray,
    groups: Mapping[str, np.ndarray],
    template: QATemplate,
    max_len: int,
) -> ArrayDataset:
    """An :class:`ArrayDataset` of encoded QA pairs keeping the rows' ids and group columns."""
    x, y = encode_qa(tokenizer, rows, template, max_len)
    return ArrayDataset(x, y, torch.as_tensor(np.asarray(ids, dtype=np.int64)), dict(groups))
