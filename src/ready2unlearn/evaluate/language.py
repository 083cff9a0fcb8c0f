"""Causal-LM evaluation: answer log-likelihoods, greedy generation and ROUGE-L / exact match.

The work is done by :class:`~ready2unlearn.evaluate.scorer.Scorer` (model, tokenizer, template, length and
batch size held once); this module adds the text metrics and keeps the function forms that take those
arguments one by one (``answer_logprobs(model, tokenizer, questions, answers, template, max_len)`` and so
on), each a one-line call into a ``Scorer``. The sequence membership attacks live in
:mod:`ready2unlearn.attacks.sequence_mia` and are re-exported here under their old names.

The TOFU aggregates built on these scores (probability, truth ratio, forget quality, model utility) live in
:mod:`ready2unlearn.evaluate.tofu_metrics`; MUSE's in :mod:`ready2unlearn.evaluate.muse`.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from ready2unlearn.attacks.sequence_mia import (
    MIA_SCORES,
    min_k_percent,
    qa_mia_auc,
    qa_mia_scores,
    zlib_length,
)
from ready2unlearn.attacks.sequence_mia import auc_per_score as mia_auc
from ready2unlearn.data.lm import QATemplate
from ready2unlearn.evaluate.scorer import Scorer, mean_logprob, model_device

__all__ = [
    "MIA_SCORES", "Scorer", "answer_logprobs", "exact_match", "generation_scores", "greedy_generate", "mean_logprob",
    "mia_auc", "min_k_percent", "model_device", "normalize_answer", "qa_loss", "rouge_l", "rouge_l_recall",
    "score_encoded", "score_generations", "sequence_mia_auc", "sequence_mia_scores", "token_logprobs", "zlib_length",
]  # fmt: skip


# --------------------------------------------------------------------------------------------- text metrics
@lru_cache(maxsize=1)
def _rouge_scorer() -> Any:
    try:
        from rouge_score import rouge_scorer
    except ImportError as e:  # optional dependency: only text-generation metrics need it
        raise ImportError("ROUGE-L needs the 'rouge-score' package: pip install rouge-score") from e
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-L of ``prediction`` against ``reference`` (Porter-stemmed): ``{"recall", "precision", "f1"}``.

    Recall = length of the longest common token subsequence / number of reference tokens, precision the same
    over the prediction's tokens, F1 their harmonic mean (Lin 2004, "ROUGE: A Package for Automatic Evaluation
    of Summaries"), via the ``rouge-score`` package.
    """
    s = _rouge_scorer().score(reference, prediction)["rougeL"]
    return {"recall": float(s.recall), "precision": float(s.precision), "f1": float(s.fmeasure)}


def rouge_l_recall(prediction: str, reference: str) -> float:
    """ROUGE-L recall of ``prediction`` against ``reference`` (the score TOFU reports); see :func:`rouge_l`."""
    return rouge_l(prediction, reference)["recall"]


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD-style normalisation (Rajpurkar et al. 2016): lower case, no punctuation/articles, single spaces."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalised prediction equals the normalised reference (:func:`normalize_answer`), else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def score_generations(scorer: Scorer, rows: Sequence[Mapping[str, Any]], max_new_tokens: int) -> dict[str, Any]:
    """Greedy answers to the rows' questions scored against their ``"answer"`` (as TOFU's ROUGE metric).

    Args:
        scorer: Model, tokenizer, template; ``max_len`` caps prompt + generated tokens.
        rows: Dicts with ``"question"`` and ``"answer"``.
        max_new_tokens: Most tokens generated per answer.

    Returns:
        ``{"rougeL_recall": mean, "exact_match": mean, "rougeL_recall_per_row": list,
        "generations": list of generated texts}`` (means are ``nan`` for no rows).
    """
    texts = scorer.answer([r["question"] for r in rows], max_new_tokens)
    rouge = [rouge_l_recall(t, r["answer"]) for t, r in zip(texts, rows, strict=True)]
    em = [exact_match(t, r["answer"]) for t, r in zip(texts, rows, strict=True)]
    return {
        "rougeL_recall": float(np.mean(rouge)) if rows else float("nan"),
        "exact_match": float(np.mean(em)) if rows else float("nan"),
        "rougeL_recall_per_row": rouge,
        "generations": texts,
    }


# --------------------------------------------------------------------------------------------- function forms
# Each builds a Scorer from its arguments; new code should hold one Scorer and call its methods.
def score_encoded(
    model: nn.Module, input_ids: torch.Tensor, labels: torch.Tensor, batch_size: int = 16
) -> list[np.ndarray]:
    """:meth:`Scorer.score_encoded`: per-token log-probabilities of the labelled tokens of encoded sequences."""
    return Scorer(model, None, batch_size=batch_size).score_encoded(input_ids, labels)


def token_logprobs(
    model: nn.Module,
    tokenizer: Any,
    questions: Sequence[str],
    answers: Sequence[str],
    template: QATemplate,
    max_len: int,
    batch_size: int = 16,
) -> list[np.ndarray]:
    """:meth:`Scorer.token_logprobs`: ``log p(answer token | prompt, earlier answer tokens)`` per answer token."""
    return Scorer(model, tokenizer, template, max_len, batch_size).token_logprobs(questions, answers)


def answer_logprobs(
    model: nn.Module,
    tokenizer: Any,
    questions: Sequence[str],
    answers: Sequence[str],
    template: QATemplate,
    max_len: int,
    batch_size: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`Scorer.answer_logprobs`: ``(sum_logprob [N], num_tokens [N])`` of ``answer + eos`` given the prompt."""
    return Scorer(model, tokenizer, template, max_len, batch_size).answer_logprobs(questions, answers)


def qa_loss(
    model: nn.Module,
    tokenizer: Any,
    rows: Sequence[Mapping[str, Any]],
    template: QATemplate,
    max_len: int,
    batch_size: int = 16,
) -> dict[str, float]:
    """:meth:`Scorer.qa_loss`: answer-token NLL pooled over tokens, with perplexity and token count."""
    return Scorer(model, tokenizer, template, max_len, batch_size).qa_loss(rows)


def greedy_generate(
    model: nn.Module,
    tokenizer: Any,
    prompts: Sequence[str],
    max_new_tokens: int,
    batch_size: int = 16,
    max_len: int | None = None,
) -> list[str]:
    """:meth:`Scorer.generate`: greedy continuations, ``max_len`` capping prompt + generated tokens."""
    return Scorer(model, tokenizer, max_len=max_len, batch_size=batch_size).generate(prompts, max_new_tokens)


def generation_scores(
    model: nn.Module,
    tokenizer: Any,
    rows: Sequence[Mapping[str, Any]],
    template: QATemplate,
    max_len: int,
    max_new_tokens: int,
    batch_size: int = 16,
) -> dict[str, Any]:
    """:func:`score_generations` with a Scorer built from the arguments."""
    return score_generations(Scorer(model, tokenizer, template, max_len, batch_size), rows, max_new_tokens)


def sequence_mia_scores(
    model: nn.Module,
    tokenizer: Any,
    rows: Sequence[Mapping[str, Any]],
    template: QATemplate,
    max_len: int,
    k: float = 0.2,
    batch_size: int = 16,
) -> dict[str, np.ndarray]:
    """:func:`~ready2unlearn.attacks.sequence_mia.qa_mia_scores`: loss / zlib / Min-K% per QA row."""
    return qa_mia_scores(Scorer(model, tokenizer, template, max_len, batch_size), rows, k)


def sequence_mia_auc(
    model: nn.Module,
    tokenizer: Any,
    members: Sequence[Mapping[str, Any]],
    non_members: Sequence[Mapping[str, Any]],
    template: QATemplate,
    max_len: int,
    k: float = 0.2,
    batch_size: int = 16,
) -> dict[str, float]:
    """:func:`~ready2unlearn.attacks.sequence_mia.qa_mia_auc`: ROC AUC of each score, members vs non-members."""
    return qa_mia_auc(Scorer(model, tokenizer, template, max_len, batch_size), members, non_members, k)
