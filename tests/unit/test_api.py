"""The one-call Python API: ready2unlearn.unlearn / evaluate / retrain on a plain torch model."""

from __future__ import annotations

import copy
import sys

import numpy as np
import pytest
import torch
from torch import nn

import ready2unlearn as r2u
from ready2unlearn import ArrayDataset, DataConfig, DeletionRequest, StopConfig, TrainConfig, fit, load_split
from ready2unlearn.api import from_hf_dataset
from ready2unlearn.engine.method import Context, build_method, method_config
from ready2unlearn.engine.unlearn import unlearn_model
from ready2unlearn.engine.unlearn_config import UnlearnConfig
from ready2unlearn.errors import ConfigError, DataError, RequestError
from ready2unlearn.recipes import train as train_recipe
from ready2unlearn.task import ClassificationTask
from ready2unlearn.unlearn import retrain as retrain_method


def mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


@pytest.fixture(scope="module")
def digits():
    """``(trained MLP, train, test)`` on scikit-learn's digits, trained once for the module."""
    split = load_split(DataConfig(name="digits"))
    torch.manual_seed(0)
    model = mlp()
    fit(model, split.train, split.test, TrainConfig(epochs=5), show_progress=False)
    return model, split.train, split.test


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


# -- unlearn --------------------------------------------------------------------------------------------------
def test_unlearn_reaches_a_forget_accuracy_target_in_place(digits):
    trained, train, test = digits
    model = copy.deepcopy(trained)
    res = r2u.unlearn(model, train, "class:3", stop="forget_acc:0.01", lr=1e-3, budget=300)
    assert isinstance(res, r2u.UnlearnResult)
    assert res.reached and res.stop_reason == "target reached" and 0 < res.steps < 300
    assert res.curve[-1]["forget_acc"] <= 0.01 < res.curve[0]["forget_acc"]
    assert not same_weights(model, trained)  # in place: the module passed in is the unlearned one
    assert r2u.evaluate(model, train, test, "class:3", relearn=False, mia=False)["summary"]["UA"] <= 0.01


def test_unlearn_equals_the_low_level_path(digits):
    """Same seed and settings → bit-identical weights to assembling the engine by hand."""
    trained, train, test = digits
    by_api, by_hand = copy.deepcopy(trained), copy.deepcopy(trained)
    r2u.unlearn(by_api, train, "class:3", method="npo", stop="forget_acc:0.05", lr=1e-3, budget=40, seed=7, beta=0.2)

    cfg = UnlearnConfig(method=method_config({"name": "npo", "lr": 1e-3, "beta": 0.2}),
                        stop=StopConfig(rule="forget_acc", target=0.05, max_steps=40), seed=7)  # fmt: skip
    task = ClassificationTask(10)
    views = DeletionRequest.parse("class:3").resolve(train, test, 10)
    ctx = Context(task, torch.Generator().manual_seed(7), torch.device("cpu"))
    unlearn_model(by_hand, views, build_method(cfg.method, task), cfg, ctx)

    assert r2u.api.unlearn_config("npo", "forget_acc:0.05", lr=1e-3, budget=40, seed=7, beta=0.2) == cfg
    assert same_weights(by_api, by_hand)
    other_seed = copy.deepcopy(trained)
    r2u.unlearn(other_seed, train, "class:3", method="npo", stop="forget_acc:0.05", lr=1e-3, budget=40, seed=8,
                beta=0.2)  # fmt: skip
    assert not same_weights(other_seed, by_hand)


def test_unlearn_takes_the_methods_preset_and_a_stop_config(digits):
    trained, train, _ = digits
    cfg = r2u.api.unlearn_config("ga")
    assert cfg.method.lr == 3e-4 and cfg.stop.rule == "steps" and cfg.stop.max_steps == 100  # configs/unlearn/ga
    res = r2u.unlearn(copy.deepcopy(trained), train, "class:3", stop=StopConfig(rule="steps", max_steps=7))
    assert res.steps == 7 and res.reached is None
    assert r2u.api.unlearn_config("ga", "steps:12").stop.max_steps == 12
    assert r2u.api.unlearn_config("ga", "steps:12", budget=5).stop.max_steps == 5


def test_unlearn_accepts_sample_ids_and_a_reference_target(digits):
    trained, train, _ = digits
    ids = train.ids[:40].tolist()
    ref = r2u.retrain(mlp, train, ids, TrainConfig(epochs=5), seed=1)
    model = copy.deepcopy(trained)
    res = r2u.unlearn(model, train, ids, stop="forget_loss:reference", reference=ref, lr=3e-3, budget=300)
    forget = train.subset(np.arange(40))
    ref_loss = ClassificationTask(10).accuracy_and_loss(ref, forget)[1]
    assert res.target == pytest.approx(ref_loss)
    assert res.reached and res.curve[-1]["forget_loss"] >= ref_loss
    assert r2u.unlearn(copy.deepcopy(trained), train, torch.tensor(ids), stop="steps:1").steps == 1


def test_unlearn_does_not_reseed_the_callers_random_stream(digits):
    trained, train, _ = digits
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    r2u.unlearn(copy.deepcopy(trained), train, "class:3", stop="steps:3")
    assert torch.equal(torch.rand(3), expected)


# -- bad inputs: one line, the right error type --------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"method": "gaa"}, ConfigError, "unknown unlearning method 'gaa'. Did you mean 'ga'"),
        ({"stop": "forget_accc:0.1"}, ConfigError, "unknown stop rule 'forget_accc'"),
        ({"stop": "forget_acc"}, ConfigError, "needs a target"),
        ({"stop": "steps:ten"}, ConfigError, "integer N"),
        ({"stop": 5}, ConfigError, "stop must be a StopConfig"),
        ({"stop": "forget_acc:reference"}, ConfigError, "needs a retrained reference model"),
        ({"method": "npo", "betta": 0.1}, ConfigError, "did you mean 'method.beta'"),
        ({"lr": -1.0}, ConfigError, "method.lr must be positive"),
        ({"request": "samples:1,2,999999"}, RequestError, r"sample ids \[999999\] are not in the training split"),
        ({"request": [5, 999999]}, RequestError, "are not in the training split"),
        ({"request": "class:12"}, RequestError, "unknown class 12"),
        ({"request": "klass:3"}, RequestError, "unknown request kind"),
        ({"request": 3.5}, RequestError, "a request must be"),
        ({"train": [[0.0]]}, DataError, "train must be an ArrayDataset or a Hugging Face datasets.Dataset"),
        ({"method": "retrain"}, ConfigError, "needs train_config"),
        ({"model": "mlp"}, ConfigError, "model must be a torch.nn.Module"),
    ],
)
def test_bad_inputs_are_one_line_errors(digits, kwargs, error, match):
    trained, train, _ = digits
    args = {"model": copy.deepcopy(trained), "train": train, "request": "class:3", **kwargs}
    with pytest.raises(error, match=match) as err:
        r2u.unlearn(**args)
    one_line(err)


def test_evaluate_and_retrain_refuse_bad_inputs(digits):
    trained, train, test = digits
    with pytest.raises(ConfigError, match="needs held-out test data") as err:
        r2u.evaluate(trained, train, None, "class:3")
    one_line(err)
    with pytest.raises(RequestError, match="not in the training split"):
        r2u.evaluate(trained, train, test, [10**9])
    with pytest.raises(ConfigError, match="zero-argument factory"):
        r2u.retrain(42, train, "class:3")
    with pytest.raises(ConfigError, match=r"must return an nn\.Module"):
        r2u.retrain(lambda: "not a model", train, "class:3")

    class Scaled(nn.Module):  # a parameter no reset_parameters() reaches
        def __init__(self) -> None:
            super().__init__()
            self.inner = mlp()
            self.scale = nn.Parameter(torch.ones(1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x) * self.scale

    with pytest.raises(ConfigError, match="parameter 'scale' belongs to a module without reset_parameters") as err:
        r2u.retrain(Scaled(), train, "class:3")
    one_line(err)


# -- evaluate -------------------------------------------------------------------------------------------------
def test_evaluate_returns_the_documented_keys(digits):
    trained, train, test = digits
    ref = r2u.retrain(mlp, train, "class:3", TrainConfig(epochs=2))
    out = r2u.evaluate(trained, train, test, "class:3", reference=ref)
    assert set(out) == {"summary", "request", "views", "metrics", "reference_metrics", "gaps", "relearn",
                        "relearn_reference"}  # fmt: skip
    assert set(out["summary"]) == {"UA", "RA", "TA", "MIA_AUC", "MIA_efficacy", "avg_gap", "relearned_UA"}
    m = out["metrics"]
    assert out["summary"]["UA"] == m["forget_acc"] and out["summary"]["TA"] == m["test_retain_acc"]
    assert {"forget_acc", "retain_acc", "test_acc", "mia_auc", "mia_efficacy", "forget_kl_to_reference"} <= set(m)
    assert out["gaps"]["avg_gap"] == out["summary"]["avg_gap"] >= 0
    assert set(out["relearn"]) == {"forget-10", "forget-5%", "retain+forget-10", "retain-only"}
    assert out["views"]["forget"] == int((train.labels == 3).sum()) and out["request"] == {"kind": "class",
                                                                                           "classes": [3]}  # fmt: skip
    assert out["reference_metrics"]["forget_acc"] < 0.05 < m["forget_acc"]  # the trained model still knows class 3

    bare = r2u.evaluate(trained, train, test, "class:3", relearn=False, mia=False)
    assert set(bare) == {"summary", "request", "views", "metrics"}
    assert set(bare["summary"]) == {"UA", "RA", "TA"} and "mia_auc" not in bare["metrics"]
    assert bare["metrics"]["forget_acc"] == m["forget_acc"]


def test_evaluate_matches_the_checkpoint_recipe(digits, tmp_path):
    """`r2u eval` and the API compute the same numbers for the same model and request."""
    from ready2unlearn.recipes.evaluate import evaluate_checkpoint

    cfg, _ = train_recipe.load_config("digits-mlp", ["epochs=2", "model.hidden=[16]"])
    train_recipe.run(cfg, tmp_path / "ck", show_progress=False)
    ck = r2u.load_checkpoint(tmp_path / "ck")
    split = load_split(cfg.data)
    via_recipe = evaluate_checkpoint(tmp_path / "ck", DeletionRequest.parse("class:5"), seed=3)
    via_api = r2u.evaluate(ck.model, split.train, split.test, "class:5", relearn=False, seed=3)
    assert via_api["metrics"] == via_recipe["metrics"]


def test_evaluate_drops_relearn_sets_a_small_forget_set_cannot_hold(digits):
    trained, train, test = digits
    out = r2u.evaluate(trained, train, test, train.ids[:8].tolist())
    assert set(out["relearn"]) == {"forget-5%", "retain-only"}


# -- retrain --------------------------------------------------------------------------------------------------
@pytest.fixture
def fit_spy(monkeypatch):
    """Records the training data and the starting weights of every `fit` call the retrain method makes."""
    calls = []
    real_fit = retrain_method.fit

    def spy(model, train, test, cfg, **kw):
        calls.append({"ids": train.ids.clone(), "start": copy.deepcopy(model.state_dict()), "cfg": cfg})
        return real_fit(model, train, test, cfg, **kw)

    monkeypatch.setattr(retrain_method, "fit", spy)
    return calls


def test_retrain_never_sees_the_forget_set_and_starts_fresh(digits, fit_spy):
    trained, train, _ = digits
    before = copy.deepcopy(trained.state_dict())
    fresh = r2u.retrain(trained, train, "class:3", TrainConfig(epochs=2, batch_size=64), seed=5)

    (call,) = fit_spy
    forget_ids = train.ids[train.y == 3]
    assert len(call["ids"]) == len(train) - len(forget_ids) and len(forget_ids) > 0
    assert not np.isin(call["ids"].numpy(), forget_ids.numpy()).any()
    assert call["cfg"].epochs == 2 and call["cfg"].seed == 5 and call["cfg"].batch_size == 64
    # A fresh initialisation: every submodule's reset_parameters() under the training seed, not the trained weights.
    torch.manual_seed(5)
    expected = copy.deepcopy(trained)
    for m in expected.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    assert all(torch.equal(call["start"][k], v) for k, v in expected.state_dict().items())
    assert fresh is not trained and not same_weights(fresh, trained)
    assert all(torch.equal(before[k], v) for k, v in trained.state_dict().items())  # the input is left alone
    forget = train.subset(np.flatnonzero(train.labels == 3))
    assert ClassificationTask(10).accuracy_and_loss(fresh, forget)[0] < 0.05


def test_retrain_from_a_factory_is_seeded(digits, fit_spy):
    _, train, _ = digits
    a = r2u.retrain(mlp, train, "class:3", TrainConfig(epochs=1), seed=2)
    b = r2u.retrain(mlp, train, "class:3", TrainConfig(epochs=1, seed=2))
    assert same_weights(a, b)
    torch.manual_seed(2)
    assert all(torch.equal(fit_spy[0]["start"][k], v) for k, v in mlp().state_dict().items())


# -- Hugging Face datasets ------------------------------------------------------------------------------------
def hf_digits(train: ArrayDataset, **columns):
    datasets = pytest.importorskip("datasets")
    names = {"x": "x", "y": "label", "ids": "id", **columns}
    return datasets.Dataset.from_dict({names["x"]: train.x.numpy(), names["y"]: train.y.numpy(),
                                       names["ids"]: train.ids.numpy()})  # fmt: skip


def test_the_api_runs_on_a_hugging_face_dataset(digits):
    trained, train, test = digits
    hf_train, hf_test = hf_digits(train), hf_digits(test)
    converted = from_hf_dataset(hf_train)
    assert torch.equal(converted.x, train.x) and torch.equal(converted.y, train.y)
    assert torch.equal(converted.ids, train.ids)

    on_hf, on_arrays = copy.deepcopy(trained), copy.deepcopy(trained)
    res = r2u.unlearn(on_hf, hf_train, "class:3", stop="forget_acc:0.01", lr=1e-3, budget=300)
    r2u.unlearn(on_arrays, train, "class:3", stop="forget_acc:0.01", lr=1e-3, budget=300)
    assert res.reached and same_weights(on_hf, on_arrays)
    ids = train.ids[:30].tolist()  # sample requests name the `id` column's values
    out = r2u.evaluate(on_hf, hf_train, hf_test, ids, relearn=False)
    assert out["views"]["forget"] == 30
    fresh = r2u.retrain(mlp, hf_train, "class:3", TrainConfig(epochs=1))
    assert isinstance(fresh, nn.Module)


def test_hf_converter_columns_and_errors(digits):
    datasets = pytest.importorskip("datasets")
    _, train, _ = digits
    small = train.subset(np.arange(6))
    custom = hf_digits(small, x="feats", y="target", ids="uid")
    got = from_hf_dataset(custom, x="feats", y="target", ids="uid")
    assert torch.equal(got.ids, small.ids)
    no_ids = datasets.Dataset.from_dict({"pixel_values": small.x.numpy(), "labels": small.y.numpy(), "user": [1] * 6})
    got = from_hf_dataset(no_ids, groups=["user"])
    assert got.ids.tolist() == list(range(6)) and got.groups["user"].tolist() == [1] * 6

    image = pytest.importorskip("PIL.Image")  # decoded hub images arrive as 8-bit pixels
    pics = [image.fromarray(np.full((2, 3), v, np.uint8)) for v in (0, 51, 255)]
    pixels = datasets.Dataset.from_dict({"image": pics, "label": [0, 1, 2]}).cast_column("image", datasets.Image())
    x = from_hf_dataset(pixels).x
    assert x.dtype == torch.float32 and x.shape == (3, 2, 3) and x[:, 0, 0].tolist() == pytest.approx([0, 0.2, 1])
    tokens = datasets.Dataset.from_dict({"input_ids": [[1, 2, 0], [3, 4, 5]], "label": [0, 1]})
    assert from_hf_dataset(tokens).x.dtype == torch.int64

    bad = [
        (custom, {}, "no input column found"),
        (custom, {"x": "feats", "y": "nope"}, "has no label column 'nope'"),
        (datasets.Dataset.from_dict({"x": [[1.0], [2.0]], "label": ["a", "b"]}), {}, "class_encode_column"),
        (datasets.Dataset.from_dict({"input_ids": [[1, 2], [3]], "label": [0, 1]}), {}, "different shapes"),
        (datasets.Dataset.from_dict({"x": [[1.0], [2.0]], "label": [0, 1], "id": [4, 4]}), {}, "duplicate ids"),
        (datasets.DatasetDict({"train": no_ids}), {}, "pass one split"),
    ]
    for ds, kw, match in bad:
        with pytest.raises(DataError, match=match) as err:
            from_hf_dataset(ds, **kw)
        one_line(err)


def test_missing_datasets_package_is_a_one_line_config_error(monkeypatch, digits):
    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` now raises ImportError
    with pytest.raises(ConfigError, match=r'pip install "ready2unlearn\[hf\]"') as err:
        from_hf_dataset(object())
    one_line(err)
