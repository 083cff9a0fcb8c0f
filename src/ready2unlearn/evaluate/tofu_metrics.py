"""TOFU's unlearning metrics: probability, truth ratio, ROUGE-L, forget quality and model utility.

Maini et al. 2024, "TOFU: A Task of Fictitious Unlearning for LLMs" (arXiv 2401.06121). Definitions follow
the paper and, where the paper leaves room, the reference implementation (``locuslab/tofu``,
``evaluate_util.py`` and ``aggregate_eval_stat.py``):

* Every answer probability is length-normalised: ``P(a|q)^(1/|a|) = exp(mean token log-prob)``, with the
  answer's tokens counted as the loss counts them (eos included).
* **Probability**: on the forget/retain sets the mean normalised probability of the answer; on real authors
  and world facts the answer's share ``P(a) / (P(a) + Σ_i P(perturbed_i))`` of the normalised probabilities.
* **Truth ratio** per question ``R = geomean_i P(perturbed_i)^(1/|perturbed_i|) / P(base)^(1/|base|)``, where
  the base answer is ``"paraphrased_answer"`` on forget/retain rows and the answer itself on real-author /
  world-fact rows (which have no paraphrase). The paper writes an arithmetic mean over the perturbed answers;
  the reference code averages their per-token losses, i.e. takes the geometric mean, and so do we.
  ``R < 1`` means the model prefers the (paraphrased) true answer.
* The reported truth-ratio number is ``mean(max(0, 1 − R))`` on retain / real authors / world facts (higher
  = better knowledge) and ``mean(min(R, 1/R))`` on the forget set, as ``aggregate_eval_stat.py`` computes
  them (the reference code writes both through ``1/R``; the formulas are the same).
* **Model utility**: harmonic mean of probability, ROUGE-L recall and truth ratio on retain, real authors
  and world facts (9 numbers when all three sets are evaluated).
* **Forget quality**: p-value of the two-sample Kolmogorov–Smirnov test between the per-question forget-set
  truth ratios of the unlearned model and of a model retrained without the forget set. The reference code
  tests ``1/R``; the KS statistic and p-value are unchanged by a strictly monotone map of both samples, so
  testing ``R`` gives the same number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from torch import nn

from ready2unlearn.data.lm import QATemplate
from ready2unlearn.evaluate.language import score_generations
from ready2unlearn.evaluate.scorer import Scorer

SETS = ("forget", "retain", "real_authors", "world_facts")
# Sets whose probability is the answer's share against its perturbed alternatives (TOFU's multiple-choice-like
# real-author and world-fact questions); the others use the answer's own normalised probability.
RELATIVE_PROB_SETS = ("real_authors", "world_facts")
UTILITY_METRICS = ("prob", "rougeL_recall", "truth_ratio")


def _questions(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    return [r["question"] for r in rows]


def _perturbed(rows: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    out = []
    for i, r in enumerate(rows):
        pert = r.get("perturbed_answer")
        if isinstance(pert, str):
            pert = [pert]
        if not pert:
            raise ValueError(f"row {i} has no 'perturbed_answer'; truth ratios need TOFU's *_perturbed files")
        out.append(list(pert))
    return out


def perturbed_logprobs(scorer: Scorer, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Normalised log-probabilities of each row's perturbed answers, ``[N, max #perturbed]``, ``nan``-padded.

    Raises:
        ValueError: If a row has no ``"perturbed_answer"``.
    """
    pert = _perturbed(rows)
    flat_q = [r["question"] for r, p in zip(rows, pert, strict=True) for _ in p]
    flat = scorer.mean_logprobs(flat_q, [a for p in pert for a in p])
    out = np.full((len(rows), max((len(p) for p in pert), default=0)), np.nan)
    pos = 0
    for i, p in enumerate(pert):
        out[i, : len(p)] = flat[pos : pos + len(p)]
        pos += len(p)
    return out


def base_answers(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The truth ratio's reference answer per row: ``"paraphrased_answer"`` when present, else ``"answer"``."""
    return [r.get("paraphrased_answer") or r["answer"] for r in rows]


def truth_ratios_from_logprobs(base_logprob: np.ndarray, perturbed_logprob: np.ndarray) -> np.ndarray:
    """``R = exp(mean_i log P(perturbed_i) − log P(base))`` per row from normalised log-probabilities.

    Args:
        base_logprob: ``[N]`` normalised log-probabilities of the base (paraphrased) answers.
        perturbed_logprob: ``[N, P]`` normalised log-probabilities of the perturbed answers (``nan`` = absent).
    """
    return np.exp(np.nanmean(perturbed_logprob, axis=1) - base_logprob)


def truth_ratios(scorer: Scorer, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Per-row TOFU truth ratio ``R`` (see the module docstring; ``R < 1`` = the true answer is preferred).

    Args:
        scorer: The model and its evaluation settings.
        rows: TOFU ``*_perturbed`` rows: ``"question"``, ``"answer"``, ``"perturbed_answer"`` (list) and
            optionally ``"paraphrased_answer"``.

    Returns:
        ``[N]`` float64 ratios.
    """
    base = scorer.mean_logprobs(_questions(rows), base_answers(rows))
    return truth_ratios_from_logprobs(base, perturbed_logprobs(scorer, rows))


def truth_ratio(
    model: nn.Module,
    tokenizer: Any,
    rows: Sequence[Mapping[str, Any]],
    template: QATemplate,
    max_len: int,
    batch_size: int = 16,
) -> np.ndarray:
    """:func:`truth_ratios` with a :class:`Scorer` built from the arguments."""
    return truth_ratios(Scorer(model, tokenizer, template, max_len, batch_size), rows)


def truth_ratio_score(ratios: np.ndarray, forget: bool) -> float:
    """TOFU's reported truth-ratio number: ``mean(min(R, 1/R))`` on the forget set, else ``mean(max(0, 1 − R))``."""
    r = np.asarray(ratios, dtype=np.float64)
    if forget:
        return float(np.mean(np.minimum(r, 1.0 / r)))
    return float(np.mean(np.maximum(0.0, 1.0 - r)))


def answer_probability(answer_logprob: np.ndarray, perturbed_logprob: np.ndarray | None = None) -> np.ndarray:
    """Per-row TOFU probability from normalised log-probabilities.

    Args:
        answer_logprob: ``[N]`` normalised log-probabilities of the answers.
        perturbed_logprob: ``[N, P]`` of the perturbed answers (``nan`` = absent), for the relative form.

    Returns:
        ``exp(answer_logprob)``, or with ``perturbed_logprob`` the share
        ``P(a) / (P(a) + Σ_i P(perturbed_i))`` (computed stably in log space).
    """
    if perturbed_logprob is None:
        return np.exp(answer_logprob)
    all_lp = np.concatenate([np.asarray(answer_logprob)[:, None], perturbed_logprob], axis=1)
    top = np.nanmax(all_lp, axis=1, keepdims=True)
    # Shifting by the row maximum keeps exp() from underflowing to 0/0 for long, unlikely answers.
    return np.exp(answer_logprob - top[:, 0]) / np.nansum(np.exp(all_lp - top), axis=1)


def forget_quality(truth_ratios_unlearned: np.ndarray, truth_ratios_retrained: np.ndarray) -> float:
    """TOFU forget quality: KS-test p-value between forget-set truth ratios of the unlearned and retrained models.

    High (near 1) = the unlearned model's truth-ratio distribution is indistinguishable from retraining's.
    """
    from scipy.stats import ks_2samp

    a, b = np.asarray(truth_ratios_unlearned, dtype=np.float64), np.asarray(truth_ratios_retrained, dtype=np.float64)
    if not a.size or not b.size:
        raise ValueError("forget_quality needs truth ratios from both models")
    return float(ks_2samp(a, b).pvalue)


def model_utility(values: Mapping[str, float]) -> float:
    """Harmonic mean of non-negative metric values (TOFU's model utility over its 9 numbers); 0 if any is 0.

    Raises:
        ValueError: If ``values`` is empty or holds a negative or non-finite number.
    """
    arr = np.array(list(values.values()), dtype=np.float64)
    if not arr.size:
        raise ValueError("model_utility needs at least one value")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"model_utility needs finite values >= 0, got {dict(values)}")
    if np.any(arr == 0):
        return 0.0
    from scipy.stats import hmean

    return float(hmean(arr))


def evaluate_set(scorer: Scorer, name: str, rows: Sequence[Mapping[str, Any]], max_new_tokens: int) -> dict[str, Any]:
    """Loss, probability, ROUGE-L recall and truth ratio of one TOFU evaluation set (see :func:`evaluate_tofu`)."""
    if name not in SETS:
        raise ValueError(f"unknown TOFU set {name!r}; known: {', '.join(SETS)}")
    if not rows:
        raise ValueError(f"TOFU set {name!r} is empty")
    questions = _questions(rows)
    loss = scorer.qa_loss(rows)
    answer_lp = scorer.mean_logprobs(questions, [r["answer"] for r in rows])
    pert_lp = perturbed_logprobs(scorer, rows)
    base = base_answers(rows)
    # Real-author / world-fact rows have no paraphrase, so the base answer is the answer already scored.
    same = all(b == r["answer"] for b, r in zip(base, rows, strict=True))
    base_lp = answer_lp if same else scorer.mean_logprobs(questions, base)
    ratios = truth_ratios_from_logprobs(base_lp, pert_lp)
    prob = answer_probability(answer_lp, pert_lp if name in RELATIVE_PROB_SETS else None)
    gen = score_generations(scorer, rows, max_new_tokens)
    return {
        "loss": loss["loss"],
        "perplexity": loss["perplexity"],
        "prob": float(np.mean(prob)),
        "rougeL_recall": gen["rougeL_recall"],
        "exact_match": gen["exact_match"],
        "truth_ratio": truth_ratio_score(ratios, forget=name == "forget"),
        "truth_ratio_raw_mean": float(np.mean(ratios)),
        "truth_ratios": ratios.tolist(),
        "generations": gen["generations"],
    }


def evaluate_tofu(
    scorer: Scorer, sets: Mapping[str, Sequence[Mapping[str, Any]]], max_new_tokens: int
) -> dict[str, Any]:
    """TOFU evaluation of a model on the given sets, plus model utility.

    Args:
        scorer: The model, tokenizer, template; ``max_len`` is the sequence length for scoring and the cap on
            prompt + generation.
        sets: Any of ``"forget"``, ``"retain"`` (rows of ``forgetXX_perturbed`` / ``retain_perturbed``),
            ``"real_authors"``, ``"world_facts"`` (rows of the ``*_perturbed`` files) → rows. TOFU evaluates
            300 rows of each; subsample before calling if needed.
        max_new_tokens: Most tokens generated per answer for ROUGE.

    Returns:
        ``{set: {"loss", "perplexity", "prob", "rougeL_recall", "exact_match", "truth_ratio" (TOFU's
        reported number), "truth_ratio_raw_mean", "truth_ratios" (per-row R, for :func:`tofu_forget_quality`),
        "generations"}}`` for each given set, and ``"model_utility"`` (harmonic mean of prob, ROUGE-L and
        truth ratio over the non-forget sets given; absent when only ``"forget"`` is given).
    """
    unknown = sorted(set(sets) - set(SETS))
    if unknown:
        raise ValueError(f"unknown TOFU set(s) {unknown}; known: {', '.join(SETS)}")
    result: dict[str, Any] = {}
    for name in SETS:
        if name in sets:
            result[name] = evaluate_set(scorer, name, sets[name], max_new_tokens)
    utility = {f"{name}/{m}": result[name][m] for name in SETS if name in result and name != "forget"
               for m in UTILITY_METRICS}  # fmt: skip
    if utility:
        result["model_utility"] = model_utility(utility)
    return result


def tofu_eval(
    model: nn.Module,
    tokenizer: Any,
    sets: Mapping[str, Sequence[Mapping[str, Any]]],
    template: QATemplate,
    max_len: int,
    max_new_tokens: int,
    batch_size: int = 16,
) -> dict[str, Any]:
    """:func:`evaluate_tofu` with a :class:`Scorer` built from the arguments."""
    return evaluate_tofu(Scorer(model, tokenizer, template, max_len, batch_size), sets, max_new_tokens)


def tofu_forget_quality(result: Mapping[str, Any], retrained_result: Mapping[str, Any]) -> float:
    """Forget quality from two :func:`evaluate_tofu` outputs (unlearned model, retrained model) on the same forget set.

    Raises:
        ValueError: If either result lacks the ``"forget"`` set or the two forget sets differ in size.
    """
    for label, res in (("result", result), ("retrained_result", retrained_result)):
        if "forget" not in res:
            raise ValueError(f"{label} has no 'forget' set; run tofu_eval with sets['forget']")
    a, b = result["forget"]["truth_ratios"], retrained_result["forget"]["truth_ratios"]
    if len(a) != len(b):
        raise ValueError(f"forget sets differ in size ({len(a)} vs {len(b)}); evaluate both on the same rows")
    return forget_quality(np.asarray(a), np.asarray(b))
