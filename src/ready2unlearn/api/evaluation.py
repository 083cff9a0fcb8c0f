"""``ready2unlearn.evaluate``: the verification protocol of ``r2u eval`` on an in-memory model."""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from ready2unlearn.api.inputs import RequestLike, model_device, resolve_views
from ready2unlearn.attacks.relearn import RelearnConfig, build_relearn_set
from ready2unlearn.data.request import RequestViews
from ready2unlearn.errors import ConfigError
from ready2unlearn.recipes.evaluate import evaluate_views


def evaluate(
    model: nn.Module,
    train: Any,
    test: Any,
    request: RequestLike,
    reference: nn.Module | None = None,
    relearn: bool | RelearnConfig = True,
    mia: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Verifies that ``model`` forgot ``request``: accuracies, membership inference, gaps, relearning.

    The same protocol as ``r2u eval`` and ``r2u bench`` (DESIGN §6). Neither model is changed.

    Args:
        model: The (unlearned) classifier.
        train: Its training data (``ArrayDataset`` or ``datasets.Dataset``); the request picks the forget set.
        test: Held-out data.
        request: What was to be forgotten (a ``DeletionRequest``, ``"class:3"``, or sample ids).
        reference: A model retrained without the forget set: adds its metrics, the gaps to it and the Avg. Gap,
            and the relearning attack on it (the floor).
        relearn: Run the relearning attack (``True``: default settings, seeded by ``seed``; or a
            :class:`~ready2unlearn.attacks.relearn.RelearnConfig`; ``False``: skip it). The default sets that
            would leave no held-out forget sample (``forget-10`` on a forget set of 10) are left out.
        mia: Run membership inference on the forget set.
        seed: Seeds membership inference and the relearning attack.

    Returns:
        A dict with

        - ``summary``: ``UA`` (forget accuracy), ``RA`` (retain accuracy), ``TA`` (test accuracy; on the
          test-retain rows for class requests), ``MIA_AUC`` and ``MIA_efficacy`` (with ``mia``), ``avg_gap``
          (with a reference), ``relearned_UA`` (held-out forget accuracy after the first relearn set's attack,
          ``forget-10`` by default, with ``relearn``);
        - ``metrics``: every registered metric of the model (``forget_acc``, ``retain_acc``, ``test_acc``,
          losses, ``mia_auc``, ``mia_efficacy``; KL, disagreement and forget quality with a reference);
        - ``request`` and ``views`` (the sizes of forget / retain / test_forget / test_retain);
        - with a reference: ``reference_metrics`` and ``gaps`` (``gap_forget_acc``..., ``avg_gap``);
        - with ``relearn``: ``relearn`` per relearn set (curve, ``final_forget_acc``, ``max_forget_acc``) and,
          with a reference, ``relearn_reference``.

    Raises:
        DataError: On unusable data.
        RequestError: If the request does not fit ``train``.
    """
    model_device(model)  # a clear error for something that is not a module
    if test is None:
        raise ConfigError("evaluate needs held-out test data: TA and membership inference are measured on it")
    views, test_data, _ = resolve_views(train, test, request)
    relearn_cfg = _default_relearn(views, seed) if relearn is True else relearn or None
    scored = evaluate_views(model, views, test_data, reference, relearn_cfg, mia=mia, seed=seed)
    return {"summary": _summary(scored, views.request.kind), "request": views.request.to_dict(),
            "views": views.sizes(), **scored}  # fmt: skip


def _default_relearn(views: RequestViews, seed: int) -> RelearnConfig:
    """The default attack, without the relearn sets that this forget set is too small for."""
    cfg = RelearnConfig(seed=seed)
    fits = []
    for spec in cfg.sets:
        try:
            build_relearn_set(spec, views, cfg)
        except ConfigError:  # it would take every forget sample and leave none to score on
            continue
        fits.append(spec)
    return dataclasses.replace(cfg, sets=fits)  # `retain-only` always fits: never empty


def _summary(scored: dict[str, Any], kind: str) -> dict[str, float]:
    """The headline numbers under their names in the unlearning literature."""
    m = scored["metrics"]
    ta = "test_retain_acc" if kind == "class" and "test_retain_acc" in m else "test_acc"
    out = {"UA": m["forget_acc"], "RA": m["retain_acc"], "TA": m[ta]}
    if "mia_auc" in m:
        out.update(MIA_AUC=m["mia_auc"], MIA_efficacy=m["mia_efficacy"])
    if "gaps" in scored:
        out["avg_gap"] = scored["gaps"]["avg_gap"]
    attack = scored.get("relearn", {})
    if attack:
        first = next(iter(attack.values()))
        out["relearned_UA"] = first["final_forget_acc"]
    return out
