"""Membership inference: does the model still treat the forget set like training data?

Per-sample signals, all computed in float64 from the model's logits ``z`` and true label ``y``:

    confidence           p(y|x) = softmax(z)_y
    loss                 −log p(y|x)                                   (cross-entropy)
    logit-scaled conf.   log p(y|x) − log(1 − p(y|x)) = z_y − logsumexp_{j≠y} z_j

The logit-scaled confidence is the statistic of LiRA (Carlini et al. 2022, "Membership Inference Attacks
From First Principles"): it maps the saturated confidences of a trained model back to a roughly Gaussian
scale, which is what the per-example attacks of :mod:`ready2unlearn.attacks.proof` need.

Two population attacks use them:

* :func:`mia_auc` — the threshold attack of Yeom et al. 2018 ("Privacy Risk in Machine Learning"): a
  sample is called a member when its loss is low. Scored by ROC-AUC on balanced member / non-member
  sets, so 0.5 means the attacker cannot tell them apart.
* :func:`mia_efficacy` — the "MIA-efficacy" of Jia et al. 2023 ("Model Sparsity Can Simplify Machine
  Unlearning", arXiv 2304.04934) as used by SalUn (Fan et al. 2024, arXiv 2310.12508): an RBF SVM fitted
  on the true-class confidence of retain samples (members) against test samples (non-members), then
  asked about the forget set; the score is the share of forget samples it calls non-members.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from sklearn.svm import SVC
from torch import nn

from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.errors import ConfigError
from ready2unlearn.task import predict_logits

Signal = Literal["loss", "confidence"]
SIGNALS: tuple[str, ...] = ("loss", "confidence")


def _logits_and_labels(model: nn.Module, data: ArrayDataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Float64 logits ``[N, C]`` and CPU labels ``[N]``; float64 so that saturated softmaxes keep their tails."""
    logits = predict_logits(model, data).double()
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ConfigError(f"membership signals need [N, C] logits with C >= 2 classes, got shape {tuple(logits.shape)}")
    return logits, data.y.cpu().long()


def _empty_or(data: ArrayDataset) -> np.ndarray | None:
    return np.zeros(0, dtype=np.float64) if len(data) == 0 else None


def true_class_confidence(model: nn.Module, data: ArrayDataset) -> np.ndarray:
    """Softmax probability of the true label, ``p(y|x)``, per sample.

    Args:
        model: Classifier returning logits ``[B, C]``.
        data: Samples to score.

    Returns:
        ``[N]`` float64 array in ``[0, 1]``.
    """
    if (empty := _empty_or(data)) is not None:
        return empty
    logits, y = _logits_and_labels(model, data)
    return F.log_softmax(logits, dim=1).gather(1, y[:, None]).squeeze(1).exp().numpy()


def per_sample_loss(model: nn.Module, data: ArrayDataset) -> np.ndarray:
    """Cross-entropy ``−log p(y|x)`` per sample.

    Args:
        model: Classifier returning logits ``[B, C]``.
        data: Samples to score.

    Returns:
        ``[N]`` float64 array, ``>= 0``.
    """
    if (empty := _empty_or(data)) is not None:
        return empty
    logits, y = _logits_and_labels(model, data)
    return F.cross_entropy(logits, y, reduction="none").numpy()


def logit_scaled_confidence(model: nn.Module, data: ArrayDataset) -> np.ndarray:
    """LiRA's logit-scaled confidence ``log p(y|x) − log(1 − p(y|x))`` per sample.

    Computed from the logits, never from ``p``: with ``log(1 − p_y) = logsumexp_{j≠y} z_j − logsumexp_j z_j``
    the two normalisers cancel and the statistic is ``z_y − logsumexp_{j≠y} z_j``, which stays finite when
    ``p_y`` rounds to 1 (a memorised sample in float32) and when it underflows to 0.

    Args:
        model: Classifier returning logits ``[B, C]`` with ``C >= 2``.
        data: Samples to score.

    Returns:
        ``[N]`` float64 array (any real value; 0 means ``p(y|x) = 0.5``).
    """
    if (empty := _empty_or(data)) is not None:
        return empty
    logits, y = _logits_and_labels(model, data)
    true_logit = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf"))  # drop the true class from the normaliser
    return (true_logit - torch.logsumexp(others, dim=1)).numpy()


def _balanced_positions(n_rows: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """All rows if ``size`` covers them, else a sorted random subset of ``size`` rows."""
    if size >= n_rows:
        return np.arange(n_rows)
    return np.sort(rng.choice(n_rows, size=size, replace=False))


def mia_auc(
    model: nn.Module,
    members: ArrayDataset,
    non_members: ArrayDataset,
    signal: Signal = "loss",
    max_samples: int | None = None,
    seed: int = 0,
) -> float:
    """ROC-AUC of a threshold membership attack (Yeom et al. 2018).

    The member score is ``−loss`` (``signal="loss"``) or the true-class confidence (``signal="confidence"``);
    both rank samples the same way up to floating-point ties. The larger set is subsampled to the size of
    the smaller (and both to ``max_samples``) with a seeded generator, so the AUC compares equal-sized
    populations and does not drift with the forget/test size ratio.

    Args:
        model: Classifier under attack.
        members: Samples the attacker should call members (e.g. the forget set).
        non_members: Samples never trained on (e.g. the test set).
        signal: ``"loss"`` or ``"confidence"``.
        max_samples: Optional cap on the samples used from each set.
        seed: Seeds the subsampling.

    Returns:
        AUC in ``[0, 1]``: 0.5 = members and non-members indistinguishable, 1 = perfectly separated.

    Raises:
        ConfigError: Empty set, unknown signal or a non-positive ``max_samples``.
    """
    if signal not in SIGNALS:
        raise ConfigError(f"unknown membership signal {signal!r}; choose one of {', '.join(SIGNALS)}")
    if len(members) == 0 or len(non_members) == 0:
        raise ConfigError(
            f"mia_auc needs non-empty member and non-member sets, got {len(members)} and {len(non_members)}"
        )
    if max_samples is not None and max_samples < 1:
        raise ConfigError(f"max_samples must be a positive integer or None, got {max_samples}")
    size = min(len(members), len(non_members), max_samples or len(members))
    rng = np.random.default_rng(seed)
    members = members.subset(_balanced_positions(len(members), size, rng))
    non_members = non_members.subset(_balanced_positions(len(non_members), size, rng))

    def score(data: ArrayDataset) -> np.ndarray:
        return -per_sample_loss(model, data) if signal == "loss" else true_class_confidence(model, data)

    scores = np.concatenate([score(members), score(non_members)])
    labels = np.concatenate([np.ones(size), np.zeros(size)])
    return float(roc_auc_score(labels, scores))


def mia_efficacy(
    model: nn.Module, forget: ArrayDataset, retain: ArrayDataset, test: ArrayDataset, max_test: int | None = None
) -> float:
    """MIA-efficacy of Jia et al. 2023 / SalUn (Fan et al. 2024): share of the forget set judged non-member.

    The feature is the model's true-class confidence ``p(y|x)`` (one number per sample). A shadow training
    set takes the first ``|test|`` samples of ``retain`` as members (label 1) and ``test`` as non-members
    (label 0); ``sklearn.svm.SVC(C=3, gamma="auto", kernel="rbf")`` is fitted on it and then predicts the
    forget samples. The SVM fit is quadratic in ``2·|test|``, so pass a test subset if it is large.

    Unlike :func:`mia_auc` this score has no 0.5 reference point: a retrained model typically scores well
    below 1 (forget samples it generalises to look like members), so always report the retrained model's
    value beside it. Higher means the forget set looks less like training data.

    Args:
        model: Classifier under attack (unlearned or retrained).
        forget: The forget set.
        retain: The retain set; its first ``|test|`` samples are the shadow members.
        test: Held-out samples, the shadow non-members.
        max_test: Use only the first ``max_test`` test samples (and as many shadow members). ``None`` keeps
            the definition exact; a cap bounds the quadratic SVM fit (10k test samples take ~20 s on 2 cores)
            at the price of a noisier decision boundary.

    Returns:
        Share of ``forget`` predicted non-member, in ``[0, 1]``.

    Raises:
        ConfigError: If any of the three sets is empty.
    """
    if len(forget) == 0 or len(retain) == 0 or len(test) == 0:
        raise ConfigError(
            f"mia_efficacy needs non-empty forget, retain and test sets, got {len(forget)}, {len(retain)}, {len(test)}"
        )
    if max_test is not None and len(test) > max_test:
        test = test.subset(np.arange(max_test))
    shadow_in = true_class_confidence(model, retain.subset(np.arange(min(len(test), len(retain)))))
    shadow_out = true_class_confidence(model, test)
    features = np.concatenate([shadow_in, shadow_out])[:, None]
    labels = np.concatenate([np.ones(len(shadow_in), dtype=np.int64), np.zeros(len(shadow_out), dtype=np.int64)])
    clf = SVC(C=3, gamma="auto", kernel="rbf").fit(features, labels)
    predicted = clf.predict(true_class_confidence(model, forget)[:, None])
    return float(np.mean(predicted == 0))


def forget_set_attacks(
    model: nn.Module, views: Any, test: ArrayDataset, seed: int = 0, max_test: int | None = None
) -> dict[str, float]:
    """Both membership-inference scores of a request's forget set, as ``r2u eval`` and ``r2u bench`` report them.

    The AUC attack's non-members are the test rows of the forgotten classes when there are any (class and
    group requests), else the whole test set.
    """
    non_members = views.test_forget if len(views.test_forget) else test
    return {
        "mia_auc": mia_auc(model, views.forget, non_members, seed=seed),
        "mia_efficacy": mia_efficacy(model, views.forget, views.retain, test, max_test),
    }
