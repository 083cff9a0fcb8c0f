"""Membership inference on token sequences: loss, zlib and Min-K% scores of a causal LM, scored by ROC-AUC.

The classifier attacks of :mod:`ready2unlearn.attacks.mia` read one logit row per sample; a language model
gives one log-probability per *token*, and these attacks reduce that sequence to one number, each oriented
so that HIGHER means "more likely a member":

* ``"loss"``: mean token log-probability, i.e. the negated loss of Yeom et al. 2018 ("Privacy Risk in Machine
  Learning").
* ``"zlib"``: summed log-probability / zlib-compressed byte length of the text (Carlini et al. 2021,
  "Extracting Training Data from Large Language Models"). Carlini et al. divide the log-perplexity by the
  zlib entropy of fixed-length samples; texts here vary in length, so the summed log-probability (a code
  length that grows with the text, like the zlib length) is used instead.
* ``"min_k"``: :func:`min_k_percent` of the tokens (Shi et al. 2024, "Detecting Pretraining Data from Large
  Language Models").

Two kinds of sequence are scored: the answer tokens of QA rows given their question (TOFU) and whole
documents (MUSE's privacy-leak sets), both through :class:`~ready2unlearn.evaluate.scorer.Scorer`.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from ready2unlearn.evaluate.scorer import Scorer, mean_logprob

MIA_SCORES = ("loss", "zlib", "min_k")


def zlib_length(text: str) -> int:
    """Bytes of the zlib-compressed UTF-8 text: Carlini et al.'s (2021) reference-free entropy estimate."""
    return len(zlib.compress(text.encode("utf-8")))


def min_k_percent(logprobs: np.ndarray, k: float = 0.2) -> float:
    """Mean of the lowest ``k`` fraction of token log-probabilities (Min-K% Prob, Shi et al. 2024).

    A text seen in training has few very unlikely tokens, so the average over its least likely ``k``·n tokens
    is higher for members. At least one token is used (``floor(k·n)`` would be 0 for short answers).

    Args:
        logprobs: Per-token log-probabilities of one sequence.
        k: Fraction of tokens, in (0, 1].

    Returns:
        The mean (higher = more likely a member); ``nan`` for an empty sequence.
    """
    if not 0 < k <= 1:
        raise ValueError(f"k must be in (0, 1], got {k}")
    values = np.sort(np.asarray(logprobs, dtype=np.float64))
    if values.size == 0:
        return float("nan")
    return float(values[: max(1, int(k * values.size))].mean())


def scores_from_logprobs(
    per_token: Sequence[np.ndarray], texts: Sequence[str], k: float = 0.2
) -> dict[str, np.ndarray]:
    """The three membership scores of sequences from their per-token log-probabilities.

    Args:
        per_token: Token log-probabilities per sequence.
        texts: The scored text of each sequence (for the zlib length).
        k: Min-K% fraction.

    Returns:
        ``{"loss": [N], "zlib": [N], "min_k": [N]}`` float64 arrays.
    """
    sums = np.array([t.sum() for t in per_token], dtype=np.float64)
    counts = np.array([t.size for t in per_token], dtype=np.int64)
    return {
        "loss": mean_logprob(sums, counts),
        "zlib": sums / np.array([max(zlib_length(t), 1) for t in texts], dtype=np.float64),
        "min_k": np.array([min_k_percent(t, k) for t in per_token], dtype=np.float64),
    }


def qa_mia_scores(scorer: Scorer, rows: Sequence[Mapping[str, Any]], k: float = 0.2) -> dict[str, np.ndarray]:
    """Per-row membership scores of QA answers given their questions (see the module docstring)."""
    answers = [r["answer"] for r in rows]
    return scores_from_logprobs(scorer.token_logprobs([r["question"] for r in rows], answers), answers, k)


def text_mia_scores(scorer: Scorer, texts: Sequence[str], k: float = 0.2) -> dict[str, np.ndarray]:
    """Per-document membership scores of plain texts, each cut to the scorer's ``max_len`` tokens."""
    return scores_from_logprobs(scorer.text_logprobs(texts), texts, k)


def auc_per_score(
    member_scores: Mapping[str, np.ndarray], non_member_scores: Mapping[str, np.ndarray]
) -> dict[str, float]:
    """ROC AUC per score name (members labelled 1); scores must be oriented higher = member.

    Returns:
        ``{name: AUC}`` for each name in both mappings (0.5 = chance, 1.0 = perfect separation).
    """
    out: dict[str, float] = {}
    for name in member_scores:
        if name not in non_member_scores:
            continue
        pos, neg = np.asarray(member_scores[name]), np.asarray(non_member_scores[name])
        if not pos.size or not neg.size:
            raise ValueError("mia_auc needs at least one member and one non-member")
        labels = np.r_[np.ones(pos.size), np.zeros(neg.size)]
        out[name] = float(roc_auc_score(labels, np.r_[pos, neg]))
    return out


def qa_mia_auc(
    scorer: Scorer, members: Sequence[Mapping[str, Any]], non_members: Sequence[Mapping[str, Any]], k: float = 0.2
) -> dict[str, float]:
    """ROC AUC of each score at telling ``members`` (e.g. forget rows) from ``non_members`` (e.g. holdout rows).

    After unlearning, an AUC near 0.5 means the attack can no longer tell them apart.

    Returns:
        ``{"loss": AUC, "zlib": AUC, "min_k": AUC}``.
    """
    return auc_per_score(qa_mia_scores(scorer, members, k), qa_mia_scores(scorer, non_members, k))


def text_mia_auc(
    scorer: Scorer, members: Sequence[str], non_members: Sequence[str], k: float = 0.2
) -> dict[str, float]:
    """:func:`qa_mia_auc` for plain documents (whole texts scored, no prompt)."""
    return auc_per_score(text_mia_scores(scorer, members, k), text_mia_scores(scorer, non_members, k))
