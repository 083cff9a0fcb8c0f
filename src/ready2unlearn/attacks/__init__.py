"""Attacks that test whether a deletion request was honoured.

:data:`ATTACKS` lists them by name with a one-line summary and the paper each follows:

* ``mia_auc`` — loss-threshold membership inference scored by ROC-AUC (:func:`~.mia.mia_auc`);
* ``mia_efficacy`` — SalUn's MIA-efficacy, an SVM on true-class confidence (:func:`~.mia.mia_efficacy`);
* ``relearn`` — fine-tune on a few forget samples and watch the rest come back (:func:`~.relearn.relearn_attack`);
* ``sequence_mia`` — loss / zlib / Min-K% membership inference on a language model's token sequences, scored by
  ROC-AUC (:func:`~.sequence_mia.qa_mia_auc`, :func:`~.sequence_mia.text_mia_auc`);
* ``proof`` — the NeurIPS 2023 competition's proof of forgetting, N unlearned vs N retrained models
  (:func:`~.proof.run_proof`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ready2unlearn.attacks.mia import mia_auc, mia_efficacy
from ready2unlearn.attacks.proof import run_proof
from ready2unlearn.attacks.relearn import relearn_attack
from ready2unlearn.attacks.sequence_mia import qa_mia_auc, text_mia_auc
from ready2unlearn.registry import Registry


@dataclass(frozen=True)
class AttackInfo:
    """A registered attack.

    Attributes:
        name: Registry key.
        fn: The function that runs the attack.
        summary: One line for listings and reports.
        needs_reference: Whether it needs retrained models (not only the model under attack).
        paper: The paper it follows.
    """

    name: str
    fn: Callable[..., Any]
    summary: str
    needs_reference: bool
    paper: str


ATTACKS: Registry[AttackInfo] = Registry("attack")


def _register(name: str, fn: Callable[..., Any], summary: str, needs_reference: bool, paper: str) -> None:
    ATTACKS.register(name, AttackInfo(name, fn, summary, needs_reference, paper))


_register(
    "mia_auc",
    mia_auc,
    "loss-threshold membership inference on forget vs unseen samples, scored by ROC-AUC (0.5 = indistinguishable)",
    False,
    "Yeom et al. 2018, Privacy Risk in Machine Learning",
)
_register(
    "mia_efficacy",
    mia_efficacy,
    "SVM on true-class confidence fitted on retain vs test; share of the forget set judged non-member",
    False,
    "Jia et al. 2023 (arXiv 2304.04934); Fan et al. 2024, SalUn (arXiv 2310.12508)",
)
_register(
    "relearn",
    relearn_attack,
    "fine-tune on a few forget (or retain) samples and measure how much held-out forget accuracy returns",
    False,
    "Siddiqui et al. 2025, From Dormant to Deleted: Tamper-Resistant Unlearning Through Weight-Space Regularization",
)
_register(
    "sequence_mia",
    qa_mia_auc,
    "loss / zlib / Min-K% scores of a language model's answer tokens (or documents: text_mia_auc), forget vs "
    "unseen, scored by ROC-AUC",
    False,
    "Yeom et al. 2018; Carlini et al. 2021 (arXiv 2012.07805); Shi et al. 2024, Min-K% Prob (arXiv 2310.16789)",
)
_register(
    "proof",
    run_proof,
    "per-example (ε, δ) distinguishability of N unlearned vs N retrained models (forgetting quality F)",
    True,
    "Triantafillou et al. 2024, NeurIPS 2023 unlearning competition (arXiv 2406.09073)",
)

__all__ = [
    "ATTACKS", "AttackInfo", "mia_auc", "mia_efficacy", "qa_mia_auc", "relearn_attack", "run_proof", "text_mia_auc",
]  # fmt: skip
