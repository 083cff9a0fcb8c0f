"""Registered metrics: known answers, skipping/raising on missing inputs, gaps; and the attack registry."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from ready2unlearn.attacks import ATTACKS, AttackInfo
from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.errors import ConfigError
from ready2unlearn.evaluate.metrics import METRICS, VIEWS, EvalOutputs, compute, gaps

# -- hand-made outputs ------------------------------------------------------------------------------------
# forget: predictions [0, 1, 2, 1] vs labels [0, 0, 2, 1] -> 3/4 correct
FORGET = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0], [0.5, 1.0, 0.0]])
FORGET_Y = torch.tensor([0, 0, 2, 1])
# retain: predictions [0, 1] vs labels [0, 1] -> 1
RETAIN = torch.tensor([[1.0, -1.0, 0.0], [0.0, 2.0, 1.0]])
RETAIN_Y = torch.tensor([0, 1])
# test: uniform logits have argmax 0 -> labels [0, 1] give 1/2 and CE = log 3 exactly
TEST = torch.zeros(2, 3)
TEST_Y = torch.tensor([0, 1])
# test_retain: predictions [2, 2, 0] vs labels [2, 1, 0] -> 2/3
TEST_RETAIN = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.5, 1.0], [4.0, 0.0, 0.0]])
TEST_RETAIN_Y = torch.tensor([2, 1, 0])
# test_forget: prediction 1 vs label 0 -> 0
TEST_FORGET = torch.tensor([[0.0, 1.0, 0.0]])
TEST_FORGET_Y = torch.tensor([0])
# reference logits on forget: predictions [0, 0, 2, 2] -> disagrees with the model on rows 1 and 3
REF_FORGET = torch.tensor([[3.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 2.0], [0.0, 0.0, 1.0]])
# reference on test: predictions [2, 0] vs the model's [0, 0] -> 1/2
REF_TEST = torch.tensor([[0.0, 0.0, math.log(2.0)], [1.0, 0.0, 0.0]])


def _outputs(reference: bool = True, drop: tuple[str, ...] = ()) -> EvalOutputs:
    logits = {"forget": FORGET, "retain": RETAIN, "test": TEST, "test_retain": TEST_RETAIN,
              "test_forget": TEST_FORGET}  # fmt: skip
    labels = {"forget": FORGET_Y, "retain": RETAIN_Y, "test": TEST_Y, "test_retain": TEST_RETAIN_Y,
              "test_forget": TEST_FORGET_Y}  # fmt: skip
    ref = {"forget": REF_FORGET, "test": REF_TEST} if reference else {}
    return EvalOutputs(
        logits={k: v for k, v in logits.items() if k not in drop},
        labels={k: v for k, v in labels.items() if k not in drop},
        reference={k: v for k, v in ref.items() if k not in drop},
    )


def _log_softmax(z: torch.Tensor) -> np.ndarray:
    z = z.double().numpy()
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _np_ce(z: torch.Tensor, y: torch.Tensor) -> float:
    return float(-_log_softmax(z)[np.arange(len(y)), y.numpy()].mean())


def _np_kl(ref: torch.Tensor, z: torch.Tensor) -> float:
    lr, lp = _log_softmax(ref), _log_softmax(z)
    return float((np.exp(lr) * (lr - lp)).sum(axis=1).mean())


def _np_ks_p(a: torch.Tensor, b: torch.Tensor, y: torch.Tensor) -> float:
    from scipy.stats import ks_2samp

    rows = np.arange(len(y))
    return float(ks_2samp(-_log_softmax(a)[rows, y.numpy()], -_log_softmax(b)[rows, y.numpy()]).pvalue)


EXPECTED = {
    "forget_acc": 3 / 4,
    "retain_acc": 1.0,
    "test_acc": 1 / 2,
    "test_retain_acc": 2 / 3,
    "test_forget_acc": 0.0,
    "forget_loss": _np_ce(FORGET, FORGET_Y),
    "retain_loss": _np_ce(RETAIN, RETAIN_Y),
    "test_loss": math.log(3.0),
    "test_retain_loss": _np_ce(TEST_RETAIN, TEST_RETAIN_Y),
    "test_forget_loss": math.log(2 + math.e),  # -log(1 / (e + 2))
    "forget_kl_to_reference": _np_kl(REF_FORGET, FORGET),
    "test_kl_to_reference": _np_kl(REF_TEST, TEST),
    "forget_disagreement": 2 / 4,
    "test_disagreement": 1 / 2,
    "forget_quality": _np_ks_p(FORGET, REF_FORGET, FORGET_Y),
}


def test_every_registered_metric_has_a_known_answer():
    assert set(METRICS.names()) == set(EXPECTED)
    result = compute(_outputs())
    assert set(result) == set(EXPECTED)
    for name, value in EXPECTED.items():
        assert isinstance(result[name], float)
        assert result[name] == pytest.approx(value, rel=1e-5, abs=1e-6), name


def test_closed_form_kl_and_ce():
    # p_ref = (1/4, 3/4), p = (1/2, 1/2): KL = 1/4 log(1/2) + 3/4 log(3/2)
    out = EvalOutputs(
        logits={"test": torch.zeros(1, 2), "forget": torch.tensor([[0.0, math.log(3.0)]])},
        labels={"test": torch.tensor([1]), "forget": torch.tensor([1])},
        reference={"test": torch.tensor([[0.0, math.log(3.0)]]), "forget": torch.tensor([[0.0, math.log(3.0)]])},
    )
    r = compute(out, ["test_kl_to_reference", "forget_kl_to_reference", "test_loss", "forget_loss"])
    assert r["test_kl_to_reference"] == pytest.approx(0.25 * math.log(0.5) + 0.75 * math.log(1.5), rel=1e-6)
    assert r["forget_kl_to_reference"] == pytest.approx(0.0, abs=1e-7)  # identical distributions
    assert r["test_loss"] == pytest.approx(math.log(2.0), rel=1e-6)
    assert r["forget_loss"] == pytest.approx(-math.log(0.75), rel=1e-6)


def test_kl_is_not_symmetric_and_direction_is_ref_to_model():
    a, b = torch.tensor([[0.0, 2.0, -1.0]]), torch.tensor([[1.0, 0.0, 0.0]])
    out = EvalOutputs(logits={"test": a}, labels={"test": torch.tensor([0])}, reference={"test": b})
    kl = compute(out, ["test_kl_to_reference"])["test_kl_to_reference"]
    assert kl == pytest.approx(_np_kl(b, a), rel=1e-5)
    assert abs(_np_kl(a, b) - _np_kl(b, a)) > 1e-2  # the check above can tell the directions apart


def test_compute_skips_metrics_whose_inputs_are_missing():
    no_ref = compute(_outputs(reference=False))
    assert set(no_ref) == {n for n in EXPECTED if "reference" not in METRICS.get(n).inputs}
    assert not any(k.endswith(("_kl_to_reference", "_disagreement")) for k in no_ref)
    # a view absent from the model's outputs drops its metrics, and those of the reference on it
    partial = compute(_outputs(drop=("test_forget", "test")))
    assert "test_forget_acc" not in partial and "test_forget_loss" not in partial
    assert "test_acc" not in partial and "test_kl_to_reference" not in partial and "test_disagreement" not in partial
    assert partial["forget_disagreement"] == 0.5 and partial["retain_acc"] == 1.0
    # the reference covering only some views: only those reference metrics are computed
    out = _outputs()
    del out.reference["test"]
    r = compute(out)
    assert "forget_kl_to_reference" in r and "test_kl_to_reference" not in r and "test_disagreement" not in r


def test_compute_by_name():
    assert compute(_outputs(), ["forget_acc", "test_loss"]) == pytest.approx(
        {"forget_acc": 0.75, "test_loss": math.log(3.0)}
    )
    with pytest.raises(ConfigError, match=r"'forget_kl_to_reference' needs forget, reference"):
        compute(_outputs(reference=False), ["forget_acc", "forget_kl_to_reference"])
    with pytest.raises(ConfigError, match="test_forget_acc"):
        compute(_outputs(drop=("test_forget",)), ["test_forget_acc"])
    with pytest.raises(ConfigError, match="unknown metric 'forget_accuracy'"):
        compute(_outputs(), ["forget_accuracy"])


def test_compute_with_an_empty_name_list_computes_nothing():
    assert compute(_outputs(reference=False), []) == {}


def test_metric_declarations():
    allowed_inputs = {*VIEWS, "reference"}
    for name, metric in METRICS.items():
        assert metric.name == name
        assert isinstance(metric.description, str) and metric.description.strip(), name
        assert metric.higher_is_better in (True, False, None), name
        assert metric.inputs and set(metric.inputs) <= allowed_inputs, name
    hib = {name: m.higher_is_better for name, m in METRICS.items()}
    assert hib == {
        "forget_acc": None, "test_forget_acc": None, "forget_loss": None, "test_forget_loss": None,
        "retain_acc": True, "test_acc": True, "test_retain_acc": True,
        "retain_loss": False, "test_loss": False, "test_retain_loss": False,
        "forget_kl_to_reference": False, "test_kl_to_reference": False,
        "forget_disagreement": False, "test_disagreement": False, "forget_quality": True,
    }  # fmt: skip
    assert METRICS.get("forget_kl_to_reference").inputs == ("forget", "reference")


def test_collect_runs_every_non_empty_view():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    ref = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))

    def ds(n: int) -> ArrayDataset:
        return ArrayDataset(torch.randn(n, 1, 1, 4), torch.arange(n) % 3, torch.arange(n))

    views = {"forget": ds(5), "retain": ds(7), "test": ds(6), "test_retain": ds(4), "test_forget": ds(0)}
    out = EvalOutputs.collect(model, views, ref)
    assert set(out.logits) == set(out.labels) == set(out.reference) == {"forget", "retain", "test", "test_retain"}
    assert out.logits["retain"].shape == (7, 3) and torch.equal(out.labels["retain"], views["retain"].y)
    with torch.no_grad():
        assert torch.allclose(out.reference["test"], ref(views["test"].x))
        assert torch.allclose(out.logits["forget"], model(views["forget"].x))
    r = compute(out)
    assert "test_forget_acc" not in r and r["forget_acc"] == pytest.approx(
        (model(views["forget"].x).argmax(1) == views["forget"].y).float().mean().item()
    )
    assert EvalOutputs.collect(model, views).reference == {}


# -- gaps ---------------------------------------------------------------------------------------------------
MODEL = {"forget_acc": 0.25, "retain_acc": 1.0, "test_acc": 0.75, "test_retain_acc": 0.875, "mia_efficacy": 0.5}
REF = {"forget_acc": 0.0, "retain_acc": 0.875, "test_acc": 0.25, "test_retain_acc": 1.0, "mia_efficacy": 0.75}


def test_gaps_for_a_class_request_use_test_retain_accuracy():
    g = gaps(MODEL, REF, "class")
    assert g == {
        "gap_forget_acc": 0.25,
        "gap_retain_acc": 0.125,
        "gap_test_retain_acc": 0.125,
        "gap_mia_efficacy": 0.25,
        "avg_gap": 0.1875,
    }


@pytest.mark.parametrize("kind", ["random", "samples", "group"])
def test_gaps_for_other_requests_use_test_accuracy(kind):
    g = gaps(MODEL, REF, kind)
    assert g == {
        "gap_forget_acc": 0.25,
        "gap_retain_acc": 0.125,
        "gap_test_acc": 0.5,
        "gap_mia_efficacy": 0.25,
        "avg_gap": 0.28125,
    }


def test_gaps_include_mia_efficacy_only_when_both_have_it():
    ref = {k: v for k, v in REF.items() if k != "mia_efficacy"}
    model = {k: v for k, v in MODEL.items() if k != "mia_efficacy"}
    for a, b in ((MODEL, ref), (model, REF)):
        g = gaps(a, b, "class")
        assert "gap_mia_efficacy" not in g
        assert g["avg_gap"] == pytest.approx((0.25 + 0.125 + 0.125) / 3)
    g = gaps(MODEL, REF, "random", extra=())
    assert set(g) == {"gap_forget_acc", "gap_retain_acc", "gap_test_acc", "avg_gap"}
    assert g["avg_gap"] == pytest.approx((0.25 + 0.125 + 0.5) / 3)
    # a model identical to its reference has no gap
    assert gaps(REF, REF, "class") == dict.fromkeys(
        ["gap_forget_acc", "gap_retain_acc", "gap_test_retain_acc", "gap_mia_efficacy", "avg_gap"], 0.0
    )


# -- the attack registry ------------------------------------------------------------------------------------
def test_attack_registry_lists_the_five_attacks():
    from ready2unlearn.attacks.mia import mia_auc, mia_efficacy
    from ready2unlearn.attacks.proof import run_proof
    from ready2unlearn.attacks.relearn import relearn_attack
    from ready2unlearn.attacks.sequence_mia import qa_mia_auc

    assert ATTACKS.names() == ["mia_auc", "mia_efficacy", "proof", "relearn", "sequence_mia"]
    fns = {"mia_auc": mia_auc, "mia_efficacy": mia_efficacy, "relearn": relearn_attack, "proof": run_proof,
           "sequence_mia": qa_mia_auc}  # fmt: skip
    for name, info in ATTACKS.items():
        assert isinstance(info, AttackInfo) and info.name == name
        assert info.fn is fns[name]
        assert info.summary.strip() and info.paper.strip()
        assert info.needs_reference is (name == "proof")
    with pytest.raises(AttributeError):
        ATTACKS.get("proof").summary = "changed"  # frozen
    with pytest.raises(ConfigError, match="unknown attack 'mia'"):
        ATTACKS.get("mia")
