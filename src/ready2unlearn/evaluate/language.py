"""Causal-LM evaluation: answer log-likelihoods, greedy generation, ROUGE-L / exact match and sequence MIAs.

Every scorer takes any ``torch.nn.Module`` with the contract ``model(input_ids [B, L]) -> logits [B, L, V]``
(a causal LM; a Hugging Face output's ``.logits`` is read off by :func:`ready2unlearn.unlearn.task.forward`)
and a Hugging Face tokenizer. A question/answer pair is encoded exactly as for training
(:func:`ready2unlearn.data.lm.encode_qa`: ``prompt(question) + answer + eos``, right-padded, labels on the
answer tokens), so "the answer's log-probability" here is the quantity the unlearning losses move. Models run
under ``torch.no_grad()`` in eval mode, in mini-batches, on the model's device; the previous train/eval mode
is restored afterwards.

The TOFU aggregates built on these scores (probability, truth ratio, forget quality, model utility) live in
:mod:`ready2unlearn.evaluate.tofu_metrics`.
"""

from __future__ import annotations

import re
import string
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from ready2unlearn.data.lm import IGNORE, QATemplate, encode_qa
from ready2unlearn.unlearn.task import forward

MIA_SCORES = ("loss", "zlib", "min_k")


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); the CPU for a module with neither."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextmanager
def _inference(model: nn.Module) -> Iterator[torch.device]:
    """Eval mode and no autograd for the block, restoring the caller's train/eval mode on exit."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model_device(model)
    finally:
        model.train(was_training)


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


def score_encoded(
    model: nn.Module, input_ids: torch.Tensor, labels: torch.Tensor, batch_size: int = 16
) -> list[np.ndarray]:
    """Per-token log-probabilities of the labelled tokens of already-encoded sequences.

    Logits at position ``t`` predict token ``t + 1``, so ``logits[:, :-1]`` are scored against
    ``labels[:, 1:]``; positions labelled :data:`~ready2unlearn.data.lm.IGNORE` are dropped.

    Args:
        model: Causal LM, ``model(input_ids) -> logits``.
        input_ids: ``[N, L]`` token ids (right-padded).
        labels: ``[N, L]`` target ids, ``IGNORE`` where not scored.
        batch_size: Sequences per forward pass.

    Returns:
        One float64 array per sequence with ``log p(token | prefix)`` for each labelled token, in order.
    """
    _check_batch_size(batch_size)
    out: list[np.ndarray] = []
    with _inference(model) as device:
        for lo in range(0, len(input_ids), batch_size):
            x, y = input_ids[lo : lo + batch_size], labels[lo : lo + batch_size]
            scored = y != IGNORE
            # Columns after the last scored token only cost compute: a causal model never lets them
            # influence earlier positions, so the batch is cut there.
            width = int(scored.any(0).nonzero().max()) + 1 if scored.any() else 1
            x, y = x[:, :width].to(device), y[:, :width].to(device)
            logits = forward(model, x)[:, :-1].float()
            target = y[:, 1:]
            mask = target != IGNORE
            # gather − logsumexp instead of a full log_softmax: a [B, L, V] copy of a large vocabulary is
            # the biggest allocation here, and only one entry per position is needed.
            tok = logits.gather(-1, target.clamp_min(0).unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, -1)
            out.extend(tok[i][mask[i]].double().cpu().numpy() for i in range(len(x)))
    return out


def token_logprobs(
    model: nn.Module,
    tokenizer: Any,
    questions: Sequence[str],
    answers: Sequence[str],
    template: QATemplate,
    max_len: int,
    batch_size: int = 16,
) -> list[np.ndarray]:
    """``log p(answer token | prompt, earlier answer tokens)`` for every answer token (eos included).

    Args:
        model: Causal LM, ``model(input_ids) -> logits``.
        tokenizer: Hugging Face tokenizer.
        questions: Questions, one per answer.
        answers: Answers to score.
        template: How a question becomes the prompt.
        max_len: Sequence length; longer answers are truncated as in training.
        batch_size: Sequences per forward pass.

    Returns:
        One array per pair, of length = the number of scored answer tokens.
    """
    if len(questions) != len(answers):
        raise ValueError(f"{len(questions)} questions but {len(answers)} answers")
    if not questions:
        return []
    rows = [{"question": q, "answer": a} for q, a in zip(questions, answers, strict=True)]
    x, y = encode_qa(tokenizer, rows, template, max_len)
    return score_encoded(model, x, y, batch_size)


def answer_logprobs(
    model: nn.Module,
    tokenizer: Any,
    questions: Sequence[str],
    answers: Sequence[str],
    template: QATemplate,
    max_len: int,
    batch_size: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """Summed answer log-probability ``log p(answer + eos | prompt)`` and the number of answer tokens.

    Args:
        model: Causal LM, ``model(input_ids) -> logits``.
        tokenizer: Hugging Face tokenizer.
        questions: Questions, one per answer.
        answers: Answers to score.
        template: How a question becomes the prompt.
        max_len: Sequence length; longer answers are truncated as in training.
        batch_size: Sequences per forward pass.

    Returns:
        ``(sum_logprob [N] float64, num_tokens [N] int64)``.
    """
    per_token = token_logprobs(model, tokenizer, questions, answers, template, max_len, batch_size)
    sums = np.array([t.sum() for t in per_token], dtype=np.float64)
    counts = np.array([t.size for t in per_token], dtype=np.int64)
    return sums, counts


def mean_logprob(sum_logprob: np.ndarray, num_tokens: np.ndarray) -> np.ndarray:
    """Per-token mean log-probability; ``nan`` where a sequence has no scored token."""
    counts = np.asarray(num_tokens, dtype=np.float64)
    return np.divide(sum_logprob, counts, out=np.full(counts.shape, np.nan), where=counts > 0)


def qa_loss(
    model: nn.Module,
    tokenizer: Any,
    rows: Sequence[Mapping[str, Any]],
    template: QATemplate,
    max_len: int,
    batch_size: int = 16,
) -> dict[str, float]:
    """Answer-token negative log-likelihood over QA rows, pooled over tokens (as a training loss is).

    Args:
        model: Causal LM, ``model(input_ids) -> logits``.
        tokenizer: Hugging Face tokenizer.
        rows: Dicts with ``"question"`` and ``"answer"``.
        template: How a question becomes the prompt.
        max_len: Sequence length.
        batch_size: Sequences per forward pass.

    Returns:
        ``{"loss": total NLL / total answer tokens, "perplexity": exp(loss), "num_tokens": total}``
        (``nan`` loss and perplexity for no rows).
    """
    sums, counts = answer_logprobs(model, tokenizer, [r["question"] for r in rows], [r["answer"] for r in rows],
                                   template, max_len, batch_size)  # fmt: skip
    total = int(counts.sum())
    loss = float(-sums.sum() / total) if total else float("nan")
    return {"loss": loss, "perplexity": float(np.exp(loss)), "num_tokens": float(total)}


def greedy_generate(
    model: nn.Module,
    tokenizer: Any,
    prompts: Sequence[str],
    max_new_tokens: int,
    batch_size: int = 16,
    max_len: int | None = None,
) -> list[str]:
    """Greedy (argmax) continuations of ``prompts`` using only the ``model(input_ids) -> logits`` contract.

    Prompts are grouped by token length so a batch needs no padding (and so no attention mask); each step
    re-runs the whole sequence (no key/value cache: evaluation sets are small and this keeps the contract
    minimal). A sequence stops at the tokenizer's eos token, which is not part of its text. Ties in the
    argmax go to the lowest token id, so the output is deterministic.

    Args:
        model: Causal LM, ``model(input_ids) -> logits``.
        tokenizer: Hugging Face tokenizer (prompts are encoded without special tokens, as in training).
        prompts: Texts to continue.
        max_new_tokens: Most tokens generated per prompt.
        batch_size: Prompts per forward pass.
        max_len: Optional cap on prompt + generated tokens (e.g. the model's context length).

    Returns:
        The generated texts (decoded with ``skip_special_tokens=True``), in the order of ``prompts``.
    """
    _check_batch_size(batch_size)
    encoded = [list(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    if any(not ids for ids in encoded):
        raise ValueError("greedy_generate needs every prompt to encode to at least one token")
    eos = getattr(tokenizer, "eos_token_id", None)
    if callable(getattr(model, "generate", None)) and getattr(tokenizer, "pad_token_id", None) is not None:
        return _hf_generate(model, tokenizer, encoded, max_new_tokens, batch_size, max_len)
    by_length: dict[int, list[int]] = {}
    for i, ids in enumerate(encoded):
        by_length.setdefault(len(ids), []).append(i)
    generated: list[list[int]] = [[] for _ in prompts]
    with _inference(model) as device:
        for length, members in sorted(by_length.items()):
            steps = max_new_tokens if max_len is None else min(max_new_tokens, max_len - length)
            for lo in range(0, len(members), batch_size):
                chunk = members[lo : lo + batch_size]
                seq = torch.tensor([encoded[i] for i in chunk], dtype=torch.long, device=device)
                done = torch.zeros(len(chunk), dtype=torch.bool, device=device)
                for _ in range(max(steps, 0)):
                    nxt = forward(model, seq)[:, -1].argmax(-1)
                    if eos is not None:
                        done |= nxt == eos
                    for j, i in enumerate(chunk):
                        if not done[j]:
                            generated[i].append(int(nxt[j]))
                    if bool(done.all()):
                        break
                    seq = torch.cat([seq, nxt.unsqueeze(1)], dim=1)
    return [tokenizer.decode(ids, skip_special_tokens=True) for ids in generated]


def _hf_generate(
    model: nn.Module, tokenizer: Any, encoded: list[list[int]], max_new_tokens: int, batch_size: int,
    max_len: int | None,
) -> list[str]:  # fmt: skip
    """Greedy decoding through Hugging Face ``generate`` (key/value cache, left padding + attention mask).

    Taken when the model has ``generate`` (any ``PreTrainedModel`` or PEFT model): prompts of different
    lengths then share a batch, which is what makes evaluation affordable on a CPU.
    """
    pad = int(tokenizer.pad_token_id)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))  # similar lengths share a batch
    out: list[str] = [""] * len(encoded)
    with _inference(model) as device:
        for lo in range(0, len(order), batch_size):
            chunk = order[lo : lo + batch_size]
            width = max(len(encoded[i]) for i in chunk)
            steps = max_new_tokens if max_len is None else min(max_new_tokens, max_len - width)
            if steps <= 0:
                continue
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for j, i in enumerate(chunk):
                ids[j, width - len(encoded[i]) :] = torch.tensor(encoded[i])
                mask[j, width - len(encoded[i]) :] = 1
            gen = model.generate(  # type: ignore[operator]
                input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=steps, do_sample=False,
                pad_token_id=pad, eos_token_id=getattr(tokenizer, "eos_token_id", None),
            )  # fmt: skip
            for j, i in enumerate(chunk):
                out[i] = tokenizer.decode(gen[j, width:].tolist(), skip_special_tokens=True)
    return out


@lru_cache(maxsize=1)
def _rouge_scorer() -> Any:
    try:
        from rouge_score import rouge_scorer
    except ImportError as e:  # optional dependency: only text-generation metrics need it
        raise ImportError("ROUGE-L needs the 'rouge-score' package: pip install rouge-score") from e
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l_recall(prediction: str, reference: str) -> float:
    """ROUGE-L recall of ``prediction`` against ``reference`` (Porter-stemmed), the score TOFU reports.

    Recall = length of the longest common token subsequence / number of reference tokens (Lin 2004,
    "ROUGE: A Package for Automatic Evaluation of Summaries"), via the ``rouge-score`` package.
    """
    return float(_rouge_scorer().score(reference, prediction)["rougeL"].recall)


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD-style normalisation (Rajpurkar et al. 2016): lower case, no punctuation/articles, single spaces."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalised prediction equals the normalised reference (:func:`normalize_answer`), else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def generation_scores(
    model: nn.Module,
    tokenizer: Any,
    rows: Sequence[Mapping[str, Any]],
    template: QATemplate,
    max_len: int,
    max_new_tokens: int,
    batch_size: int = 16,
) -> dict[str, Any]:
    """Greedy answers to the rows' questions scored against their ``"answer"`` (as TOFU's ROUGE metric).

    Args:
        model: Causal LM, ``model(input_ids) -> logits``.
        tokenizer: Hugging Face tokenizer.
        rows: Dicts with ``"question"`` and ``"answer"``.
        template: How a question becomes the prompt.
        max_len: Cap on prompt + generated tokens.
        max_new_tokens: Most tokens generated per answer.
        batch_size: Prompts per forward pass.

    Returns:
        ``{"rougeL_recall": mean, "exact_match": mean, "rougeL_recall_per_row": list,
        "generations": list of generated texts}`` (means are ``nan`` for no rows).
    """
    texts = greedy_generate(model, tokenizer, [template.prompt(r["question"]) for r in rows], max_new_tokens,
                            batch_size, max_len)  # fmt: skip
    texts = [t.strip() for t in texts]
    rouge = [rouge_l_recall(t, r["answer"]) for t, r in zip(texts, rows, strict=True)]
    em = [exact_match(t, r["answer"]) for t, r in zip(texts, rows, strict=True)]
    return {
        "rougeL_recall": float(np.mean(rouge)) if rows else float("nan"),
        "exact_match": float(np.mean(em)) if rows else float("nan"),
        "rougeL_recall_per_row": rouge,
        "generations": texts,
    }


def zlib_length(text: str) -> int:
    """Bytes of the zlib-compressed UTF-8 text: Carlini et al.'s (2021) reference-free entropy estimate."""
    return len(zlib.compress(text.encode("utf-8")))


def min_k_percent(logprobs: np.ndarray, k: float = 0.2) -> float:
    """Mean of the lowest ``k`` fraction of token log-probabilities (Min-K% Prob, Shi et al. 2024).

    Shi et al. 2024, "Detecting Pretraining Data from Large Language Models": a text seen in training has
    few very unlikely tokens, so the average over its least likely ``k``·n tokens is higher for members.
    At least one token is used (``floor(k·n)`` would be 0 for short answers).

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


def sequence_mia_scores(
    model: nn.Module,
    tokenizer: Any,
    rows: Sequence[Mapping[str, Any]],
    template: QATemplate,
    max_len: int,
    k: float = 0.2,
    batch_size: int = 16,
) -> dict[str, np.ndarray]:
    """Per-row membership scores of QA answers, each oriented so that HIGHER means "more likely a member".

    * ``"loss"``: mean answer-token log-probability, i.e. the negated loss of Yeom et al. 2018.
    * ``"zlib"``: answer log-probability sum / zlib-compressed byte length of the answer text (Carlini et
      al. 2021, "Extracting Training Data from Large Language Models"). Carlini et al. divide the
      log-perplexity by the zlib entropy of fixed-length samples; answers here vary in length, so the summed
      log-probability (a code length that grows with the text, like the zlib length) is used instead.
    * ``"min_k"``: :func:`min_k_percent` of the answer tokens (Shi et al. 2024).

    Args:
        model: Causal LM, ``model(input_ids) -> logits``.
        tokenizer: Hugging Face tokenizer.
        rows: Dicts with ``"question"`` and ``"answer"``.
        template: How a question becomes the prompt.
        max_len: Sequence length.
        k: Min-K% fraction.
        batch_size: Sequences per forward pass.

    Returns:
        ``{"loss": [N], "zlib": [N], "min_k": [N]}`` float64 arrays.
    """
    per_token = token_logprobs(model, tokenizer, [r["question"] for r in rows], [r["answer"] for r in rows],
                               template, max_len, batch_size)  # fmt: skip
    sums = np.array([t.sum() for t in per_token], dtype=np.float64)
    counts = np.array([t.size for t in per_token], dtype=np.int64)
    return {
        "loss": mean_logprob(sums, counts),
        "zlib": sums / np.array([max(zlib_length(r["answer"]), 1) for r in rows], dtype=np.float64),
        "min_k": np.array([min_k_percent(t, k) for t in per_token], dtype=np.float64),
    }


def mia_auc(member_scores: Mapping[str, np.ndarray], non_member_scores: Mapping[str, np.ndarray]) -> dict[str, float]:
    """ROC AUC per score name (members labelled 1); scores must be oriented higher = member.

    Returns:
        ``{name: AUC}`` for each name in both mappings (0.5 = chance, 1.0 = perfect separation).
    """
    from sklearn.metrics import roc_auc_score

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
    """ROC AUC of each :func:`sequence_mia_scores` score at telling ``members`` from ``non_members``.

    After unlearning, an AUC near 0.5 on forget-set rows vs. unseen rows means the attack can no longer tell
    them apart.

    Args:
        model: Causal LM, ``model(input_ids) -> logits``.
        tokenizer: Hugging Face tokenizer.
        members: QA rows labelled 1 (e.g. the forget set).
        non_members: QA rows labelled 0 (e.g. a holdout set).
        template: How a question becomes the prompt.
        max_len: Sequence length.
        k: Min-K% fraction.
        batch_size: Sequences per forward pass.

    Returns:
        ``{"loss": AUC, "zlib": AUC, "min_k": AUC}``.
    """
    scores_in = sequence_mia_scores(model, tokenizer, members, template, max_len, k, batch_size)
    scores_out = sequence_mia_scores(model, tokenizer, non_members, template, max_len, k, batch_size)
    return mia_auc(scores_in, scores_out)
