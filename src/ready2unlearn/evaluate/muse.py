"""MUSE's unlearning metrics: VerbMem, KnowMem (forget and retain) and PrivLeak.

Shi et al. 2024, "MUSE: Machine Unlearning Six-Way Evaluation for Language Models" (arXiv 2407.06460).
Definitions follow the paper and, where it leaves room, the authors' evaluation code (``swj0419/muse_bench``,
``eval.py``):

* **VerbMem** (C1, no verbatim memorisation): the model greedily continues each forget-set passage
  (``verbmem/forget.json`` ``prompt``; 128 new tokens) and the continuation is scored by ROUGE-L against the
  true continuation (``gt``). Lower = less memorised.
* **KnowMem** (C2 on ``knowmem/forget_qa.json``; C4 utility on ``retain_qa.json``): the model answers each
  question after the few-shot examples of the ``*_icl`` file, each a ``Question: …`` line and an ``Answer: …``
  line (32 new tokens, cut at the first blank line or next ``Question:``), scored by ROUGE-L against the answer.
  Forget: lower = less knowledge left; retain: higher = utility preserved.
* **PrivLeak** (C3): ``(AUC_unlearned − AUC_retrained) / AUC_retrained`` of a Min-K% membership attack (k = 40%,
  MUSE's default) telling ``privleak/forget.json`` from ``privleak/holdout.json``. MUSE writes the AUC the
  other way round from the usual one (its reported target models sit near 0, not 1): here too
  ``AUC = P(a holdout document looks more member-like than a forget document)``, i.e. 1 − the usual AUC
  with forget documents as members. So a model that still recognises the forget set gets a *negative*
  PrivLeak (under-unlearning), one that pushes it below unseen text a *positive* one (over-unlearning), and
  the retrained model 0. The paper multiplies every number by 100; these functions return fractions.

Both ROUGE-L recall (the authors' code) and F1 (OpenUnlearning's MUSE port) are computed; the registered
metrics report the one chosen in :class:`MuseSettings` (``rouge``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ready2unlearn.attacks.sequence_mia import MIA_SCORES, auc_per_score, text_mia_scores
from ready2unlearn.config import check
from ready2unlearn.data.muse import MuseData
from ready2unlearn.errors import ConfigError
from ready2unlearn.evaluate.language import rouge_l
from ready2unlearn.evaluate.scorer import Scorer
from ready2unlearn.registry import Registry

ROUGE_KINDS = ("f1", "recall")
# AUC_retrained of MUSE's own retrained Llama-2 7B models (Min-40%, forget vs holdout), as published with the
# authors' evaluation code (swj0419/muse_bench constants.py, AUC_RETRAIN "forget_holdout_Min-40%"). Valid
# only for those models: anything else must be compared against its own retrained model.
MUSE_RETRAIN_AUC = {"news": 0.4772, "books": 0.5393}


@dataclass
class MuseSettings:
    """How MUSE's metrics are computed (defaults = the paper's).

    Attributes:
        verbmem_max_new_tokens: Tokens generated per VerbMem passage.
        knowmem_max_new_tokens: Tokens generated per KnowMem answer.
        k: Min-K% fraction of the PrivLeak attack.
        rouge: ROUGE-L form the metrics report: ``f1`` or ``recall`` (both are kept in the details).
        icl: Prefix KnowMem questions with the ``*_icl`` few-shot examples when the files are present.
        rows: Evaluate only the first N rows / documents of each set (``null`` = all; MUSE has 100).
    """

    verbmem_max_new_tokens: int = 128
    knowmem_max_new_tokens: int = 32
    k: float = 0.4
    rouge: str = "f1"
    icl: bool = True
    rows: int | None = None

    def __post_init__(self) -> None:
        check(self.verbmem_max_new_tokens > 0 and self.knowmem_max_new_tokens > 0, "muse: max_new_tokens must be > 0")
        check(0 < self.k <= 1, f"muse.k must be in (0, 1], got {self.k}")
        check(self.rouge in ROUGE_KINDS, f"muse.rouge must be one of {', '.join(ROUGE_KINDS)}, got {self.rouge!r}")
        check(self.rows is None or self.rows > 1, "muse.rows must be > 1 or null")


def _rouge_summary(generations: list[str], references: Sequence[str]) -> dict[str, Any]:
    scores = [rouge_l(g, r) for g, r in zip(generations, references, strict=True)]
    return {
        "rougeL_f1": float(np.mean([s["f1"] for s in scores])) if scores else float("nan"),
        "rougeL_recall": float(np.mean([s["recall"] for s in scores])) if scores else float("nan"),
        "rougeL_f1_per_row": [s["f1"] for s in scores],
        "rougeL_recall_per_row": [s["recall"] for s in scores],
        "generations": generations,
    }


def verbmem(scorer: Scorer, rows: Sequence[Mapping[str, str]], max_new_tokens: int = 128) -> dict[str, Any]:
    """VerbMem: ROUGE-L of the greedy continuation of each ``prompt`` against its true continuation ``gt``.

    A prompt longer than ``scorer.max_len − max_new_tokens`` tokens keeps its last tokens (the model's
    context window slides over the passage), so every passage is continued.

    Returns:
        ``{"rougeL_f1", "rougeL_recall"}`` means, their per-row lists and the ``"generations"``.
    """
    gens = scorer.generate([r["prompt"] for r in rows], max_new_tokens, keep_last=True)
    return _rouge_summary(gens, [r["gt"] for r in rows])


def knowmem_prompt(scorer: Scorer, question: str, icl: Sequence[Mapping[str, str]] = ()) -> str:
    """The few-shot prompt of one KnowMem question: each example as ``prompt(q) + a`` then a blank line."""
    shots = "".join(f"{scorer.template.prompt(r['question'])}{r['answer']}\n\n" for r in icl)
    return shots + scorer.template.prompt(question)


def _first_answer(text: str, prefix: str) -> str:
    """The generated answer up to the next blank line or the next question, as MUSE's decoding stops there."""
    cut = len(text)
    for stop in ("\n\n", prefix.strip()):
        if stop and stop in text:
            cut = min(cut, text.index(stop))
    return text[:cut].strip()


def knowmem(
    scorer: Scorer, qa: Sequence[Mapping[str, str]], icl: Sequence[Mapping[str, str]] = (), max_new_tokens: int = 32
) -> dict[str, Any]:
    """KnowMem: ROUGE-L of the greedy answer to each question (after the ``icl`` examples) against its answer.

    Returns:
        ``{"rougeL_f1", "rougeL_recall"}`` means, their per-row lists and the ``"generations"`` (cut answers).
    """
    prompts = [knowmem_prompt(scorer, r["question"], icl) for r in qa]
    gens = [_first_answer(g, scorer.template.prefix) for g in scorer.generate(prompts, max_new_tokens, keep_last=True)]
    return _rouge_summary(gens, [r["answer"] for r in qa])


def privleak_aucs(scorer: Scorer, forget: Sequence[str], holdout: Sequence[str], k: float = 0.4) -> dict[str, float]:
    """MUSE-oriented AUC of each sequence attack (loss, zlib, Min-K%) between forget and holdout documents.

    ``AUC = 1 − usual AUC`` with forget documents as members (see the module docstring): 0 = the forget set is
    perfectly recognised, 0.5 = it looks like unseen text, 1 = it looks *less* familiar than unseen text.
    """
    usual = auc_per_score(text_mia_scores(scorer, forget, k), text_mia_scores(scorer, holdout, k))
    return {name: 1.0 - usual[name] for name in MIA_SCORES}


def privleak(auc_unlearned: float, auc_retrained: float) -> float:
    """PrivLeak ``(AUC_unlearned − AUC_retrained) / AUC_retrained`` (0 = like retraining; < 0 under-unlearned).

    Raises:
        ValueError: If ``auc_retrained`` is not a finite number in (0, 1] (the ratio would be meaningless).
    """
    if not (math.isfinite(auc_retrained) and 0 < auc_retrained <= 1):
        raise ValueError(f"PrivLeak needs a retrained-model AUC in (0, 1], got {auc_retrained}")
    return (auc_unlearned - auc_retrained) / auc_retrained


@dataclass
class MuseOutputs:
    """What MUSE's metrics read, collected once per model (``None`` = not evaluated).

    Attributes:
        rouge: ``f1`` or ``recall``: the ROUGE-L form the metrics report.
        verbmem: :func:`verbmem` on the forget passages.
        knowmem_forget: :func:`knowmem` on the forget questions.
        knowmem_retain: :func:`knowmem` on the retain questions.
        privleak_aucs: :func:`privleak_aucs`, forget vs holdout.
        k: Min-K% fraction used.
        reference_auc: The retrained model's Min-K% AUC, for PrivLeak.
    """

    rouge: str = "f1"
    verbmem: dict[str, Any] | None = None
    knowmem_forget: dict[str, Any] | None = None
    knowmem_retain: dict[str, Any] | None = None
    privleak_aucs: dict[str, float] | None = None
    k: float = 0.4
    reference_auc: float | None = None

    @classmethod
    def collect(
        cls, scorer: Scorer, data: MuseData, settings: MuseSettings | None = None, reference_auc: float | None = None
    ) -> MuseOutputs:
        """Runs the model over every MUSE set in ``data`` (the first ``settings.rows`` rows of each)."""
        s = settings or MuseSettings()
        n = s.rows

        def icl(name: str) -> list[dict[str, str]]:
            return data.knowmem.get(f"{name}_icl", []) if s.icl else []

        kf, kr = data.knowmem.get("forget_qa"), data.knowmem.get("retain_qa")
        pf, ph = data.privleak.get("forget"), data.privleak.get("holdout")
        return cls(
            rouge=s.rouge,
            verbmem=verbmem(scorer, data.verbmem[:n], s.verbmem_max_new_tokens) if data.verbmem else None,
            knowmem_forget=knowmem(scorer, kf[:n], icl("forget_qa"), s.knowmem_max_new_tokens) if kf else None,
            knowmem_retain=knowmem(scorer, kr[:n], icl("retain_qa"), s.knowmem_max_new_tokens) if kr else None,
            privleak_aucs=privleak_aucs(scorer, pf[:n], ph[:n], s.k) if pf and ph else None,
            k=s.k,
            reference_auc=reference_auc,
        )

    def rouge_of(self, part: str) -> float:
        """The reported ROUGE-L mean of ``verbmem`` / ``knowmem_forget`` / ``knowmem_retain``."""
        return float(getattr(self, part)[f"rougeL_{self.rouge}"])


@dataclass(frozen=True)
class MuseMetric:
    """A registered MUSE metric (the language-model counterpart of :class:`~.metrics.Metric`).

    Attributes:
        name: Registry key.
        fn: ``MuseOutputs -> float``.
        higher_is_better: Direction; ``None`` = best at the retrained model's value (PrivLeak: at 0).
        inputs: :class:`MuseOutputs` fields it reads (``reference_auc`` = needs the retrained model).
        description: One line for reports.
    """

    name: str
    fn: Callable[[MuseOutputs], float]
    higher_is_better: bool | None
    inputs: tuple[str, ...]
    description: str

    def available(self, out: MuseOutputs) -> bool:
        """Whether ``out`` holds every input this metric needs."""
        return all(getattr(out, i) is not None for i in self.inputs)


MUSE_METRICS: Registry[MuseMetric] = Registry("MUSE metric")


def _register(name: str, fn: Callable[[MuseOutputs], float], hib: bool | None, inputs: tuple[str, ...],
              desc: str) -> None:  # fmt: skip
    MUSE_METRICS.register(name, MuseMetric(name, fn, hib, inputs, desc))


_register("verbmem_forget", lambda o: o.rouge_of("verbmem"), False, ("verbmem",),
          "VerbMem (C1): ROUGE-L of greedy continuations of forget passages vs the true text")  # fmt: skip
_register("knowmem_forget", lambda o: o.rouge_of("knowmem_forget"), False, ("knowmem_forget",),
          "KnowMem (C2): ROUGE-L of few-shot answers to forget-set questions")  # fmt: skip
_register("knowmem_retain", lambda o: o.rouge_of("knowmem_retain"), True, ("knowmem_retain",),
          "utility preserved (C4): KnowMem on retain-set questions")  # fmt: skip
_register("privleak_auc", lambda o: o.privleak_aucs["min_k"], None, ("privleak_aucs",),  # type: ignore[index]
          "MUSE-oriented Min-K% AUC, forget vs holdout (0 = forget set recognised, 0.5 = unseen)")  # fmt: skip
_register("privleak", lambda o: privleak(o.privleak_aucs["min_k"], o.reference_auc), None,  # type: ignore[index,arg-type]
          ("privleak_aucs", "reference_auc"),
          "PrivLeak (C3): (AUC − AUC_retrained) / AUC_retrained; 0 = as retrained, < 0 = under-unlearned")  # fmt: skip


def compute_muse(out: MuseOutputs, names: list[str] | None = None) -> dict[str, float]:
    """Computes the named MUSE metrics (default: every one whose inputs are present).

    Raises:
        ConfigError: If a metric named explicitly cannot be computed from ``out``.
    """
    result = {}
    for name in MUSE_METRICS.names() if names is None else names:
        metric = MUSE_METRICS.get(name)
        if not metric.available(out):
            if names is not None:
                raise ConfigError(f"MUSE metric {name!r} needs {', '.join(metric.inputs)}, which this evaluation lacks")
            continue
        result[name] = metric.fn(out)
    return result


@dataclass
class MuseReport:
    """One model's MUSE numbers and the details behind them (for ``results.json``)."""

    metrics: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)


def evaluate_muse(
    scorer: Scorer, data: MuseData, settings: MuseSettings | None = None, reference_auc: float | None = None
) -> MuseReport:
    """Collects :class:`MuseOutputs` for one model and computes every available MUSE metric.

    Args:
        scorer: The model and its evaluation settings (``max_len`` = its context length; MUSE uses 2048).
        data: The corpus's evaluation files (:func:`~ready2unlearn.data.muse.load_muse`).
        settings: Generation lengths, Min-K% fraction, ROUGE form, row limit.
        reference_auc: The retrained model's ``privleak_auc`` (from its own :func:`evaluate_muse`), or
            :data:`MUSE_RETRAIN_AUC` for MUSE's released models; without it PrivLeak is left out.
    """
    out = MuseOutputs.collect(scorer, data, settings, reference_auc)
    details: dict[str, Any] = {"privleak_aucs": out.privleak_aucs, "k": out.k, "rouge": out.rouge}
    for part in ("verbmem", "knowmem_forget", "knowmem_retain"):
        if getattr(out, part) is not None:
            details[part] = getattr(out, part)
    return MuseReport(compute_muse(out), details)
