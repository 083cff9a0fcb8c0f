"""Registered metrics (lm-eval style): plain functions with declared inputs and a direction.

A metric reads an :class:`EvalOutputs` — the model's logits and labels on each view of a request
(``forget``, ``retain``, ``test``, ``test_retain``, ``test_forget``), and optionally the retrained
reference model's logits on the same views — and returns a float. ``higher_is_better`` is ``True``,
``False`` or ``None`` for metrics judged by closeness to the retrained model (forget accuracy: an
unlearned model should forget as much as retraining would, no more, no less).

Naming follows the unlearning literature (SalUn, Fan et al. 2024) with one deliberate difference: our
UA is the *accuracy on the forget set* (lower means more forgotten), not SalUn's 1 − accuracy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.data.request import RequestViews
from ready2unlearn.errors import ConfigError
from ready2unlearn.registry import Registry
from ready2unlearn.task import predict_logits

VIEWS = ("forget", "retain", "test", "test_retain", "test_forget")


@dataclass
class EvalOutputs:
    """Logits and labels per view, for the model under test and (optionally) the retrained reference."""

    logits: dict[str, torch.Tensor]
    labels: dict[str, torch.Tensor]
    reference: dict[str, torch.Tensor] = field(default_factory=dict)

    @classmethod
    def collect(
        cls, model: nn.Module, views: Mapping[str, ArrayDataset], reference: nn.Module | None = None
    ) -> EvalOutputs:
        """Runs ``model`` (and ``reference``) once over every non-empty view."""
        present = {k: v for k, v in views.items() if len(v)}
        return cls(
            logits={k: predict_logits(model, v) for k, v in present.items()},
            labels={k: v.y.cpu() for k, v in present.items()},
            reference={k: predict_logits(reference, v) for k, v in present.items()} if reference is not None else {},
        )

    @classmethod
    def for_request(
        cls, model: nn.Module, views: RequestViews, test: ArrayDataset, reference: nn.Module | None = None
    ) -> EvalOutputs:
        """:meth:`collect` over a request's four views plus the whole test set."""
        named = {"forget": views.forget, "retain": views.retain, "test": test,
                 "test_retain": views.test_retain, "test_forget": views.test_forget}  # fmt: skip
        return cls.collect(model, named, reference)


@dataclass(frozen=True)
class Metric:
    """A registered metric.

    Attributes:
        name: Registry key (also the key in ``metrics.json``).
        fn: ``EvalOutputs -> float``.
        higher_is_better: Direction; ``None`` = judged by closeness to the retrained model.
        inputs: Views it reads; ``"reference"`` means it needs the retrained model.
        description: One line for reports.
    """

    name: str
    fn: Callable[[EvalOutputs], float]
    higher_is_better: bool | None
    inputs: tuple[str, ...]
    description: str

    def available(self, out: EvalOutputs) -> bool:
        """Whether ``out`` holds every input this metric needs."""
        needs_ref = "reference" in self.inputs
        views = [i for i in self.inputs if i != "reference"]
        return all(v in out.logits for v in views) and (not needs_ref or all(v in out.reference for v in views))


METRICS: Registry[Metric] = Registry("metric")


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy."""
    return (logits.argmax(1) == labels).float().mean().item()


def mean_ce(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean cross-entropy."""
    return F.cross_entropy(logits, labels).item()


def kl_divergence(ref_logits: torch.Tensor, logits: torch.Tensor) -> float:
    """Mean ``KL(p_ref ‖ p)`` over samples, in nats."""
    return F.kl_div(F.log_softmax(logits, 1), F.log_softmax(ref_logits, 1), reduction="batchmean",
                    log_target=True).item()  # fmt: skip


def disagreement(ref_logits: torch.Tensor, logits: torch.Tensor) -> float:
    """Share of samples whose predicted class differs from the reference model's."""
    return (ref_logits.argmax(1) != logits.argmax(1)).float().mean().item()


def _register(name: str, fn: Callable[[EvalOutputs], float], hib: bool | None, inputs: tuple[str, ...],
              desc: str) -> None:  # fmt: skip
    METRICS.register(name, Metric(name, fn, hib, inputs, desc))


_LABEL = {"forget": "UA (forget-set accuracy)", "retain": "RA (retain-set accuracy)", "test": "TA (test accuracy)",
          "test_retain": "TA on test-retain", "test_forget": "accuracy on test-forget"}  # fmt: skip
for _v in VIEWS:
    _hib = None if _v in ("forget", "test_forget") else True
    _register(f"{_v}_acc", lambda o, v=_v: accuracy(o.logits[v], o.labels[v]), _hib, (_v,), _LABEL[_v])
    _register(f"{_v}_loss", lambda o, v=_v: mean_ce(o.logits[v], o.labels[v]), None if _hib is None else False,
              (_v,), f"mean cross-entropy on {_v}")  # fmt: skip
for _v in ("forget", "test"):
    _register(f"{_v}_kl_to_reference", lambda o, v=_v: kl_divergence(o.reference[v], o.logits[v]), False,
              (_v, "reference"), f"KL(p_retrained ‖ p) on {_v}")  # fmt: skip
    _register(f"{_v}_disagreement", lambda o, v=_v: disagreement(o.reference[v], o.logits[v]), False,
              (_v, "reference"), f"prediction disagreement with the retrained model on {_v}")  # fmt: skip


def forget_quality(ref_logits: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> float:
    """KS-test p-value of the forget samples' losses under the model vs under the retrained model.

    TOFU's forget quality (Maini et al. 2024) compares truth-ratio distributions; a classifier has no
    paraphrases, so the per-sample cross-entropy plays that part. 1 = indistinguishable from retraining.
    """
    from scipy.stats import ks_2samp

    a = F.cross_entropy(logits, labels, reduction="none").numpy()
    b = F.cross_entropy(ref_logits, labels, reduction="none").numpy()
    return float(ks_2samp(a, b).pvalue)


_register(
    "forget_quality",
    lambda o: forget_quality(o.reference["forget"], o.logits["forget"], o.labels["forget"]),
    True,
    ("forget", "reference"),
    "KS p-value of forget-sample losses vs the retrained model (TOFU-style)",
)


def compute(out: EvalOutputs, names: list[str] | None = None) -> dict[str, float]:
    """Computes the named metrics (default: every metric whose inputs are present).

    Raises:
        ConfigError: If a metric named explicitly cannot be computed from ``out``.
    """
    result = {}
    for name in METRICS.names() if names is None else names:
        metric = METRICS.get(name)
        if not metric.available(out):
            if names is not None:
                raise ConfigError(f"metric {name!r} needs {', '.join(metric.inputs)}, which this evaluation lacks")
            continue
        result[name] = metric.fn(out)
    return result


GAP_KEYS = {"class": ("forget_acc", "retain_acc", "test_retain_acc"), "other": ("forget_acc", "retain_acc", "test_acc")}


def gaps(model_metrics: Mapping[str, float], reference_metrics: Mapping[str, float], request_kind: str,
         extra: tuple[str, ...] = ("mia_efficacy",)) -> dict[str, float]:  # fmt: skip
    """Per-metric ``|m − m_retrained|`` and their mean, the "Avg. Gap" (UA, RA, TA and MIA when present).

    For class requests TA is measured on test-retain (the forgotten classes have no right answer left).
    """
    keys = [*GAP_KEYS["class" if request_kind == "class" else "other"],
            *(k for k in extra if k in model_metrics and k in reference_metrics)]  # fmt: skip
    out = {f"gap_{k}": abs(model_metrics[k] - reference_metrics[k]) for k in keys}
    out["avg_gap"] = sum(out.values()) / len(out)
    return out
