"""One object that scores and decodes text with a causal LM: log-probabilities, answer losses, greedy generation.

Every language-model metric (TOFU's, MUSE's, the sequence membership attacks) needs the same five things: the
model, its tokenizer, how a question becomes a prompt, a sequence length and a batch size. :class:`Scorer`
holds them once, so a metric takes one argument instead of repeating the list.

The model contract is ``model(input_ids [B, L]) -> logits [B, L, V]`` (a Hugging Face output's ``.logits`` is
read off by :func:`ready2unlearn.task.forward`). A question/answer pair is encoded exactly as for
training (:func:`ready2unlearn.data.lm.encode_qa`: ``prompt(question) + answer + eos``, right-padded, labels on
the answer tokens), so "the answer's log-probability" here is the quantity the unlearning losses move. Models
run under ``torch.no_grad()`` in eval mode, in mini-batches; the caller's train/eval mode is restored.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ready2unlearn.data.lm import IGNORE, QATemplate, encode_qa, pad_id
from ready2unlearn.task import forward


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); the CPU for a module with neither."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def mean_logprob(sum_logprob: np.ndarray, num_tokens: np.ndarray) -> np.ndarray:
    """Per-token mean log-probability; ``nan`` where a sequence has no scored token."""
    counts = np.asarray(num_tokens, dtype=np.float64)
    return np.divide(sum_logprob, counts, out=np.full(counts.shape, np.nan), where=counts > 0)


@dataclass
class Scorer:
    """A causal LM with its tokenizer and evaluation settings.

    Attributes:
        model: Causal LM, ``model(input_ids) -> logits``.
        tokenizer: Hugging Face tokenizer (texts are encoded without special tokens, as in training).
        template: How a question becomes the prompt.
        max_len: Tokens per scored sequence and cap on prompt + generated tokens; ``None`` = no cap (then
            only generation works: QA scoring needs a length to pad to).
        batch_size: Sequences per forward pass.
        device: Where inputs go; ``None`` = the model's device (the model itself is never moved).
    """

    model: nn.Module
    tokenizer: Any
    template: QATemplate = field(default_factory=QATemplate)
    max_len: int | None = None
    batch_size: int = 16
    device: torch.device | str | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_len is not None and self.max_len < 2:
            raise ValueError(f"max_len must be >= 2 or None, got {self.max_len}")

    # -- plumbing -----------------------------------------------------------------------------------------
    @contextmanager
    def inference(self) -> Iterator[torch.device]:
        """Eval mode and no autograd for the block, restoring the caller's train/eval mode on exit."""
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                yield torch.device(self.device) if self.device is not None else model_device(self.model)
        finally:
            self.model.train(was_training)

    def _length(self) -> int:
        if self.max_len is None:
            raise ValueError("scoring needs Scorer.max_len (the sequence length to pad to)")
        return self.max_len

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # -- log-probabilities --------------------------------------------------------------------------------
    def score_encoded(self, input_ids: torch.Tensor, labels: torch.Tensor) -> list[np.ndarray]:
        """Per-token log-probabilities of the labelled tokens of already-encoded sequences.

        Logits at position ``t`` predict token ``t + 1``, so ``logits[:, :-1]`` are scored against
        ``labels[:, 1:]``; positions labelled :data:`~ready2unlearn.data.lm.IGNORE` are dropped.

        Args:
            input_ids: ``[N, L]`` token ids (right-padded).
            labels: ``[N, L]`` target ids, ``IGNORE`` where not scored.

        Returns:
            One float64 array per sequence with ``log p(token | prefix)`` for each labelled token, in order.
        """
        out: list[np.ndarray] = []
        with self.inference() as device:
            for lo in range(0, len(input_ids), self.batch_size):
                x, y = input_ids[lo : lo + self.batch_size], labels[lo : lo + self.batch_size]
                scored = y != IGNORE
                # Columns after the last scored token only cost compute: a causal model never lets them
                # influence earlier positions, so the batch is cut there.
                width = int(scored.any(0).nonzero().max()) + 1 if scored.any() else 1
                x, y = x[:, :width].to(device), y[:, :width].to(device)
                logits = forward(self.model, x)[:, :-1].float()
                target = y[:, 1:]
                mask = target != IGNORE
                # gather − logsumexp instead of a full log_softmax: a [B, L, V] copy of a large vocabulary is
                # the biggest allocation here, and only one entry per position is needed.
                tok = logits.gather(-1, target.clamp_min(0).unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, -1)
                out.extend(tok[i][mask[i]].double().cpu().numpy() for i in range(len(x)))
        return out

    def token_logprobs(self, questions: Sequence[str], answers: Sequence[str]) -> list[np.ndarray]:
        """``log p(answer token | prompt, earlier answer tokens)`` for every answer token (eos included).

        Answers longer than ``max_len`` allows are truncated as in training.

        Returns:
            One array per pair, of length = the number of scored answer tokens.
        """
        if len(questions) != len(answers):
            raise ValueError(f"{len(questions)} questions but {len(answers)} answers")
        if not questions:
            return []
        rows = [{"question": q, "answer": a} for q, a in zip(questions, answers, strict=True)]
        x, y = encode_qa(self.tokenizer, rows, self.template, self._length())
        return self.score_encoded(x, y)

    def answer_logprobs(self, questions: Sequence[str], answers: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Summed answer log-probability ``log p(answer + eos | prompt)`` and the number of answer tokens.

        Returns:
            ``(sum_logprob [N] float64, num_tokens [N] int64)``.
        """
        per_token = self.token_logprobs(questions, answers)
        sums = np.array([t.sum() for t in per_token], dtype=np.float64)
        counts = np.array([t.size for t in per_token], dtype=np.int64)
        return sums, counts

    def mean_logprobs(self, questions: Sequence[str], answers: Sequence[str]) -> np.ndarray:
        """``log P(a|q)^(1/|a|)``: the mean answer-token log-probability per pair (``nan`` for no token)."""
        return mean_logprob(*self.answer_logprobs(questions, answers))

    def qa_loss(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
        """Answer-token negative log-likelihood over QA rows, pooled over tokens (as a training loss is).

        Args:
            rows: Dicts with ``"question"`` and ``"answer"``.

        Returns:
            ``{"loss": total NLL / total answer tokens, "perplexity": exp(loss), "num_tokens": total}``
            (``nan`` loss and perplexity for no rows).
        """
        sums, counts = self.answer_logprobs([r["question"] for r in rows], [r["answer"] for r in rows])
        total = int(counts.sum())
        loss = float(-sums.sum() / total) if total else float("nan")
        return {"loss": loss, "perplexity": float(np.exp(loss)), "num_tokens": float(total)}

    def text_logprobs(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Per-token log-probabilities of plain texts (no prompt), each cut to its first ``max_len`` tokens.

        The first token has no prefix to be predicted from, so a text of n tokens yields n − 1 values; this is
        what a perplexity or Min-K% membership score over raw documents reads (MUSE's privacy-leak sets).
        """
        length = self._length()
        pad = pad_id(self.tokenizer)
        x = torch.full((len(texts), length), pad, dtype=torch.long)
        y = torch.full((len(texts), length), IGNORE, dtype=torch.long)
        for i, text in enumerate(texts):
            ids = torch.tensor(self._encode(text)[:length], dtype=torch.long)
            x[i, : len(ids)] = ids
            y[i, 1 : len(ids)] = ids[1:]
        return self.score_encoded(x, y) if len(texts) else []

    # -- generation ---------------------------------------------------------------------------------------
    def generate(self, prompts: Sequence[str], max_new_tokens: int, keep_last: bool = False) -> list[str]:
        """Greedy (argmax) continuations of ``prompts``, capped at ``max_len`` prompt + generated tokens.

        With a model that has ``generate`` (any ``PreTrainedModel`` or PEFT model) and a tokenizer with a pad
        token, Hugging Face's cached decoding runs with left padding; otherwise only the
        ``model(input_ids) -> logits`` contract is used: prompts are grouped by token length so a batch needs
        no padding (and so no attention mask), and each step re-runs the whole sequence. A sequence stops at
        the tokenizer's eos token, which is not part of its text. Ties in the argmax go to the lowest token
        id, so the output is deterministic.

        Args:
            prompts: Texts to continue.
            max_new_tokens: Most tokens generated per prompt.
            keep_last: Cut a prompt longer than ``max_len − max_new_tokens`` to its last tokens, so a long
                document prefix still leaves room for its continuation (MUSE's verbatim prompts). Without it
                such a prompt yields an empty continuation.

        Returns:
            The generated texts (decoded with ``skip_special_tokens=True``), in the order of ``prompts``.
        """
        encoded = [self._encode(p) for p in prompts]
        if any(not ids for ids in encoded):
            raise ValueError("greedy_generate needs every prompt to encode to at least one token")
        if keep_last and self.max_len is not None:
            room = max(self.max_len - max_new_tokens, 1)
            encoded = [ids[-room:] for ids in encoded]
        has_pad = getattr(self.tokenizer, "pad_token_id", None) is not None
        if callable(getattr(self.model, "generate", None)) and has_pad:
            return self._hf_generate(encoded, max_new_tokens)
        eos = getattr(self.tokenizer, "eos_token_id", None)
        by_length: dict[int, list[int]] = {}
        for i, ids in enumerate(encoded):
            by_length.setdefault(len(ids), []).append(i)
        generated: list[list[int]] = [[] for _ in prompts]
        with self.inference() as device:
            for length, members in sorted(by_length.items()):
                steps = max_new_tokens if self.max_len is None else min(max_new_tokens, self.max_len - length)
                for lo in range(0, len(members), self.batch_size):
                    chunk = members[lo : lo + self.batch_size]
                    seq = torch.tensor([encoded[i] for i in chunk], dtype=torch.long, device=device)
                    done = torch.zeros(len(chunk), dtype=torch.bool, device=device)
                    for _ in range(max(steps, 0)):
                        nxt = forward(self.model, seq)[:, -1].argmax(-1)
                        if eos is not None:
                            done |= nxt == eos
                        for j, i in enumerate(chunk):
                            if not done[j]:
                                generated[i].append(int(nxt[j]))
                        if bool(done.all()):
                            break
                        seq = torch.cat([seq, nxt.unsqueeze(1)], dim=1)
        return [self.tokenizer.decode(ids, skip_special_tokens=True) for ids in generated]

    def _hf_generate(self, encoded: list[list[int]], max_new_tokens: int) -> list[str]:
        """Greedy decoding through Hugging Face ``generate`` (key/value cache, left padding + attention mask).

        Prompts of different lengths then share a batch, which is what makes evaluation affordable on a CPU.
        """
        pad = int(self.tokenizer.pad_token_id)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))  # similar lengths share a batch
        out: list[str] = [""] * len(encoded)
        with self.inference() as device:
            for lo in range(0, len(order), self.batch_size):
                chunk = order[lo : lo + self.batch_size]
                width = max(len(encoded[i]) for i in chunk)
                steps = max_new_tokens if self.max_len is None else min(max_new_tokens, self.max_len - width)
                if steps <= 0:
                    continue
                ids = torch.full((len(chunk), width), pad, dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                for j, i in enumerate(chunk):
                    ids[j, width - len(encoded[i]) :] = torch.tensor(encoded[i])
                    mask[j, width - len(encoded[i]) :] = 1
                gen = self.model.generate(  # type: ignore[operator]
                    input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=steps,
                    do_sample=False, pad_token_id=pad, eos_token_id=getattr(self.tokenizer, "eos_token_id", None),
                )  # fmt: skip
                for j, i in enumerate(chunk):
                    out[i] = self.tokenizer.decode(gen[j, width:].tolist(), skip_special_tokens=True)
        return out

    def answer(self, questions: Sequence[str], max_new_tokens: int) -> list[str]:
        """Greedy answers to ``questions`` under the template, whitespace-stripped."""
        texts = self.generate([self.template.prompt(q) for q in questions], max_new_tokens)
        return [t.strip() for t in texts]
