"""Evaluation recipe: verify an (unlearned) checkpoint against a deletion request.

Launch: ``r2u eval --checkpoint runs/digits-ga --reference runs/digits-retrained``.

Computes every registered metric on the request's views, membership inference on the forget set, and
optionally the relearning attack; with a retrained reference it adds the per-metric gaps and the Avg. Gap,
and runs the same attacks on the reference so each number has its floor beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from ready2unlearn.artifacts import now_iso, versions, write_json
from ready2unlearn.attacks.mia import forget_set_attacks
from ready2unlearn.attacks.relearn import RelearnConfig, relearn_attack
from ready2unlearn.checkpoint import load_checkpoint
from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.data.request import DeletionRequest, RequestViews
from ready2unlearn.data.sequence import plan_requests
from ready2unlearn.errors import R2UError, RequestError
from ready2unlearn.evaluate.metrics import EvalOutputs, compute, gaps
from ready2unlearn.recipes.unlearn import load_matching_split


def check_reference(ref_card: dict[str, Any], card: dict[str, Any], request: DeletionRequest, path: Any) -> None:
    """Refuses a reference model trained on other data or retrained for another request."""
    if ref_card.get("data", {}).get("fingerprints") != card.get("data", {}).get("fingerprints"):
        raise R2UError(f"reference {path} was trained on different data than the checkpoint")
    served = (ref_card.get("unlearn") or {}).get("request")
    if served is not None and DeletionRequest.from_dict(served) != request:
        raise R2UError(f"reference {path} was made for request {DeletionRequest.from_dict(served).describe()}, "
                       f"not {request.describe()}")  # fmt: skip


def evaluate_checkpoint(
    checkpoint: str | Path,
    request: DeletionRequest | None = None,
    reference: str | Path | None = None,
    relearn: RelearnConfig | None = None,
    data_dir: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Evaluates ``checkpoint`` on ``request`` (default: the last request in its lineage).

    Raises:
        RequestError: If no request is given and the checkpoint has not served one.
    """
    ck = load_checkpoint(checkpoint)
    split, _ = load_matching_split(ck.card, data_dir)
    lineage = (ck.card.get("lineage") or {}).get("requests", [])
    forgotten = (ck.card.get("lineage") or {}).get("forgotten_ids", [])
    last = DeletionRequest.from_dict(lineage[-1]["request"]) if lineage else None
    if request is None and last is None:
        raise RequestError(f"{checkpoint} has served no deletion request; pass --request")
    if request is None or request == last:
        # The request it served last: resolve it as it was served, against the data left before it.
        request = last
        earlier = forgotten[: len(forgotten) - int(lineage[-1]["forget_size"])]
    else:
        # Any other request is resolved against what the model still holds, as `r2u unlearn` would.
        earlier = forgotten
    (views,) = plan_requests(split, [request], earlier)
    ref_model = None
    if reference:
        ref = load_checkpoint(reference)
        check_reference(ref.card, ck.card, request, reference)
        ref_model = ref.model
    return evaluate_model(ck.model, ck.card, views, split.test, checkpoint=checkpoint, reference=reference,
                          reference_model=ref_model, relearn=relearn, seed=seed)  # fmt: skip


def evaluate_model(
    model: nn.Module,
    card: dict[str, Any],
    views: RequestViews,
    test: ArrayDataset,
    *,
    checkpoint: str | Path,
    reference: str | Path | None = None,
    reference_model: nn.Module | None = None,
    relearn: RelearnConfig | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The evaluation result of a model already in memory (what :func:`evaluate_checkpoint` returns).

    Args:
        model: The (unlearned) model.
        card: Its card (its hash and unlearning result are reported).
        views: The request's views, resolved against the data the model held before the request.
        test: The whole test set.
        checkpoint: Where the model is (or will be) stored, recorded in the result.
        reference: The retrained reference's path (recorded).
        reference_model: The retrained reference itself (adds its metrics, the gaps, its relearning floor).
        relearn: Run the relearning attack with these settings (``None`` = skip it).
        seed: Seeds membership inference.
    """
    scored = evaluate_views(model, views, test, reference_model, relearn, seed=seed)
    result: dict[str, Any] = {
        "created": now_iso(),
        "checkpoint": str(checkpoint),
        "weights_sha256": card.get("weights_sha256"),
        "request": views.request.to_dict(),
        "views": views.sizes(),
        "metrics": scored["metrics"],
        "versions": versions(),
    }
    unlearn = card.get("unlearn")
    if unlearn:
        result["efficiency"] = {k: unlearn["result"].get(k) for k in ("steps", "grad_evals", "seconds", "stop_reason")}
    if reference_model is not None:
        result["reference"] = {"checkpoint": str(reference), "metrics": scored["reference_metrics"]}
        result["gaps"] = scored["gaps"]
    for key in ("relearn", "relearn_reference"):
        if key in scored:
            result[key] = scored[key]
    return result


def evaluate_views(
    model: nn.Module,
    views: RequestViews,
    test: ArrayDataset,
    reference: nn.Module | None = None,
    relearn: RelearnConfig | None = None,
    *,
    mia: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """The verification protocol of one model on one request's views, the part shared by every caller.

    Args:
        model: The (unlearned) model.
        views: The request's forget / retain / test-forget / test-retain views.
        test: The whole test set.
        reference: A model retrained without the forget set: adds its metrics, the gaps and its relearning floor.
        relearn: Run the relearning attack with these settings (``None`` = skip it).
        mia: Run membership inference on the forget set.
        seed: Seeds membership inference.

    Returns:
        ``metrics`` (every registered metric that applies, plus ``mia_auc`` / ``mia_efficacy``); with a
        reference also ``reference_metrics`` and ``gaps``; with ``relearn`` also ``relearn`` (and
        ``relearn_reference``).
    """

    def score(m: nn.Module, ref: nn.Module | None) -> dict[str, float]:
        metrics = compute(EvalOutputs.for_request(m, views, test, ref))
        if mia:
            metrics.update(forget_set_attacks(m, views, test, seed))
        return metrics

    out: dict[str, Any] = {"metrics": score(model, reference)}
    if reference is not None:
        out["reference_metrics"] = score(reference, None)
        out["gaps"] = gaps(out["metrics"], out["reference_metrics"], views.request.kind)
    if relearn is not None:
        out["relearn"] = relearn_attack(model, views, relearn)
        if reference is not None:
            out["relearn_reference"] = relearn_attack(reference, views, relearn)
    return out


def write_metrics(result: dict[str, Any], path: str | Path) -> Path:
    """Writes an evaluation result as JSON, atomically."""
    return write_json(path, result)
