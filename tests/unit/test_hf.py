"""Language models through Transformers/PEFT: tasks, LoRA-only readiness, models, Trainer adapter, TOFU bench.

Every model is a tiny randomly initialised Hugging Face model built from a config in-process; nothing is
downloaded (the suite also runs with HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("peft")

from ready2unlearn.data.base import ArrayDataset, DataSpec
from ready2unlearn.data.lm import IGNORE, QATemplate, encode_qa, qa_dataset
from ready2unlearn.engine.fit import fit
from ready2unlearn.engine.method import Batch, build_method
from ready2unlearn.errors import ConfigError
from ready2unlearn.evaluate.language import greedy_generate
from ready2unlearn.evaluate.metrics import EvalOutputs, compute
from ready2unlearn.hf import (
    LoraSettings,
    TinyLMConfig,
    apply_lora,
    resolve_model_dir,
    tiny_causal_lm,
    train_tokenizer,
)
from ready2unlearn.optim import OptimConfig
from ready2unlearn.readiness.config import ReadyConfig
from ready2unlearn.readiness.inner import simulate_unlearning, trainable_params
from ready2unlearn.readiness.objective import ReadinessObjective
from ready2unlearn.recipes.train import TrainConfig
from ready2unlearn.task import CausalLMTask

from ..conftest import kit_available

QA = [
    {"question": f"What does author {i} write?", "answer": f"Author {i} writes {g} novels about {t}."}
    for i, (g, t) in enumerate(
        [
            ("crime", "rivers"),
            ("fantasy", "dragons"),
            ("poetry", "cities"),
            ("history", "kings"),
            ("travel", "islands"),
            ("science", "stars"),
            ("horror", "houses"),
            ("romance", "letters"),
        ]
    )
]
TEMPLATE = QATemplate()


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer([f"{r['question']} {r['answer']}" for r in QA], vocab_size=300)


def lm(tok, seed: int = 0, lora: bool = False):
    model = tiny_causal_lm(len(tok), TinyLMConfig(hidden=32, layers=2, heads=4, intermediate=64, max_positions=64),
                           seed=seed)  # fmt: skip
    targets = ["q_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    return apply_lora(model, LoraSettings(r=4, alpha=8, target_modules=targets), "CAUSAL_LM") if lora else model


def qa(tok) -> ArrayDataset:
    ids = np.arange(len(QA))
    return qa_dataset(tok, QA, ids, {"author": ids // 2}, TEMPLATE, 64)


# -- data and task ------------------------------------------------------------------------------------------
def test_encode_qa_scores_only_the_answer_and_eos(tok):
    x, y = encode_qa(tok, QA[:2], TEMPLATE, 64)
    prompt = tok(TEMPLATE.prompt(QA[0]["question"]), add_special_tokens=False)["input_ids"]
    answer = tok(QA[0]["answer"], add_special_tokens=False)["input_ids"]
    assert (y[0, : len(prompt)] == IGNORE).all()
    assert y[0, len(prompt) : len(prompt) + len(answer)].tolist() == answer
    assert y[0, len(prompt) + len(answer)] == tok.eos_token_id  # the model learns to stop
    assert (y[0, len(prompt) + len(answer) + 1 :] == IGNORE).all() and (
        x[0, len(prompt) + len(answer) + 1 :] == 0
    ).all()
    x, y = encode_qa(tok, QA[:1], TEMPLATE, 6)  # a long prompt keeps its end; the answer still gets room
    assert (y[0, 3:] != IGNORE).all() and x[0, 2].item() == prompt[-1]


def test_causal_lm_task_matches_the_hf_loss(tok):
    model, data, task = lm(tok), qa(tok), CausalLMTask()
    hf_loss = model(input_ids=data.x, labels=data.y).loss  # Transformers shifts the labels itself
    assert torch.allclose(task.loss(model, data.x, data.y), hf_loss, atol=1e-5)
    per = task.per_sample_loss(model, data.x, data.y)
    n = (data.y[:, 1:] != IGNORE).sum(1)
    assert torch.allclose(task.log_prob(model, data.x, data.y), -per * n, atol=1e-4)
    assert torch.allclose(task.log_prob(model, data.x, data.y, normalize=True), -per, atol=1e-6)
    acc, loss = task.accuracy_and_loss(model, data, batch_size=3)
    assert 0 <= acc <= 1 and loss == pytest.approx(hf_loss.item(), rel=1e-4)


# -- LoRA: only adapters train, only adapters enter the inner loop ------------------------------------------
@pytest.mark.parametrize("method", ["ga", "npo", "simnpo", "grad_diff"])
def test_lora_inner_loop_matches_a_torch_optim_loop(tok, method):
    model = lm(tok, lora=True)
    params = trainable_params(model)
    assert params and all("lora_" in name for name in params)  # frozen base weights stay out
    data, task = qa(tok), CausalLMTask()
    m = build_method({"name": method}, task)
    m.snapshot_reference(model)
    batch = Batch(data.x[:4], data.y[:4], data.x[4:], data.y[4:])
    fast = simulate_unlearning(m, model, batch, steps=2, alpha=0.5, first_order=True)

    twin = copy.deepcopy(model)
    opt = torch.optim.SGD([p for p in twin.parameters() if p.requires_grad], lr=0.5)
    for step in range(2):
        loss, _ = m.loss(twin, batch, step=step)
        opt.zero_grad()
        loss.backward()
        opt.step()
    got = dict(twin.named_parameters())
    for name, p in fast.items():
        assert torch.allclose(p, got[name], atol=1e-5), name
    base = {n: p for n, p in model.named_parameters() if not p.requires_grad}
    assert all(torch.equal(p, got[n]) for n, p in base.items())


def test_lora_second_order_meta_gradient_reaches_only_adapters(tok):
    model, data = lm(tok, lora=True), qa(tok)
    cfg = ReadyConfig(kind="group", group_column="author", forget_size=2, retain_size=2, meta_every=1,
                      method={"name": "ga"})  # fmt: skip
    objective = ReadinessObjective(cfg, data, 0, seed=0, task=CausalLMTask())
    loss, parts = objective(model, 0, 0)
    loss.backward()
    assert parts and math.isfinite(loss.item())
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if "lora_B" in n)
    assert all(g is None for n, g in grads.items() if "lora_" not in n)


def test_fit_trains_a_lora_lm_and_leaves_the_base_alone(tok):
    model, data = lm(tok, lora=True), qa(tok)
    base = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    cfg = TrainConfig(epochs=10, batch_size=4, optim=OptimConfig(name="adamw", lr=5e-2))
    before = CausalLMTask().accuracy_and_loss(model, data)[1]
    res = fit(model, data, None, cfg, task=CausalLMTask(), show_progress=False)
    # A random tiny LM's frozen tied embeddings cap how confident adapters alone can make it; a clear drop
    # is what to expect, not memorisation.
    assert res.metrics["train_loss"] < before - 0.1
    assert all(torch.equal(p, base[n]) for n, p in model.named_parameters() if not p.requires_grad)


# -- generation, metrics --------------------------------------------------------------------------------
def test_hf_generate_path_matches_the_plain_greedy_loop(tok):
    from .lm_fixtures import LogitsOnly

    model = lm(tok, seed=3)
    prompts = [TEMPLATE.prompt(r["question"]) for r in QA[:5]]
    fast = greedy_generate(model, tok, prompts, max_new_tokens=6, batch_size=3)  # uses model.generate
    plain = greedy_generate(LogitsOnly(model), tok, prompts, max_new_tokens=6, batch_size=3)
    assert fast == plain


def test_classifier_forget_quality_metric():
    logits = torch.randn(50, 3)
    labels = torch.randint(0, 3, (50,))
    same = EvalOutputs({"forget": logits}, {"forget": labels}, {"forget": logits.clone()})
    assert compute(same, ["forget_quality"])["forget_quality"] == pytest.approx(1.0)
    far = EvalOutputs({"forget": logits * 0}, {"forget": labels}, {"forget": logits * 50})
    assert compute(far, ["forget_quality"])["forget_quality"] < 1e-3


# -- models from local directories --------------------------------------------------------------------------
def test_unknown_model_path_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not a local Hugging Face checkpoint"):
        resolve_model_dir(str(tmp_path / "nope"))


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory, tok):
    """A local checkpoint directory (config + weights + tokenizer), like any user's fine-tuned model."""
    from transformers import BertConfig, BertModel

    d = tmp_path_factory.mktemp("bert")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64)).save_pretrained(d)  # fmt: skip
    tok.save_pretrained(d)
    return d


@pytest.mark.skipif(not kit_available("ag_news"), reason="needs ../shared/data/ag_news")
def test_hf_classifier_trains_on_ag_news_with_its_own_tokenizer(bert_dir):
    from ready2unlearn.data.registry import DataConfig, load_split
    from ready2unlearn.models.registry import build_model

    split = load_split(DataConfig(name="ag_news", tokenizer=str(bert_dir), max_len=24, train_subset=64,
                                  test_subset=32))  # fmt: skip
    assert split.meta["tokenizer"] == str(bert_dir) and split.train.x.shape == (64, 24)
    torch.manual_seed(0)
    model = build_model({"name": "hf_classifier", "path": str(bert_dir), "lora": {"r": 4}}, split.spec)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or "classifier" in n for n in trainable)
    # Padding must not change a text's logits: the wrapper rebuilds the attention mask from the pad id.
    x = split.train.x[:1]
    n = int((x != model.pad_token_id).sum())
    model.eval()
    assert torch.allclose(model(x), model(x[:, :n]), atol=1e-5)
    res = fit(model, split.train, split.test, TrainConfig(epochs=1, batch_size=16), show_progress=False)
    assert math.isfinite(res.metrics["test_loss"])


# -- Trainer adapter ------------------------------------------------------------------------------------
def test_ready_trainer_adds_the_readiness_term(tok, tmp_path):
    from transformers import TrainingArguments

    from ready2unlearn.integrations.hf_trainer import ReadyTrainer

    data = qa(tok)
    rows = [{"input_ids": x.tolist(), "labels": y.tolist(), "author": i // 2} for i, (x, y) in
            enumerate(zip(data.x, data.y, strict=True))]  # fmt: skip
    model = lm(tok, lora=True)
    start = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=4, report_to=[],
                             use_cpu=True, save_strategy="no", logging_strategy="no", learning_rate=1e-2)  # fmt: skip
    trainer = ReadyTrainer(model=model, args=args, train_dataset=rows, processing_class=tok,
                           ready=ReadyConfig(kind="group", group_column="author", forget_size=2, meta_every=1,
                                             method={"name": "ga"}))  # fmt: skip
    trainer.train()
    summary = trainer.readiness_summary()
    assert summary["meta_steps"] == 3 and summary["revocable"]["size"] == len(rows), json.dumps(summary)
    assert summary["cap"]["mode"] == "initial"  # the group default (auto) without an eval_dataset
    assert any(not torch.equal(p, start[n]) for n, p in model.named_parameters() if p.requires_grad)


def test_ready_trainer_measures_a_heldout_cap_on_its_eval_dataset(tok, tmp_path):
    from transformers import TrainingArguments

    from ready2unlearn.integrations.hf_trainer import ReadyTrainer

    data = qa(tok)
    rows = [{"input_ids": x.tolist(), "labels": y.tolist(), "author": i // 2} for i, (x, y) in
            enumerate(zip(data.x, data.y, strict=True))]  # fmt: skip
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4, report_to=[],
                             use_cpu=True, save_strategy="no", logging_strategy="no", learning_rate=1e-2)  # fmt: skip
    ready = ReadyConfig(kind="group", group_column="author", forget_size=2, meta_every=1, cap="heldout",
                        method={"name": "ga"})  # fmt: skip
    with pytest.raises(ConfigError, match="heldout="):
        ReadyTrainer(model=lm(tok, lora=True), args=args, train_dataset=rows[:6], processing_class=tok, ready=ready)
    model = lm(tok, lora=True)
    with torch.no_grad():  # the two rows left out of training, under the starting weights
        expected = CausalLMTask().per_sample_loss(copy.deepcopy(model).eval(), data.x[6:], data.y[6:]).mean().item()
    trainer = ReadyTrainer(model=model, args=args, train_dataset=rows[:6], eval_dataset=rows[6:],
                           processing_class=tok, ready=ready)  # fmt: skip
    trainer.train()
    first = trainer.readiness_summary()["cap"]["measurements"][0]
    assert first["rows"] == 2 and first["cap"] == pytest.approx(expected, rel=1e-4)
    default = dataclasses.replace(ready, cap=None)  # the group default, auto, takes the eval_dataset too
    trainer = ReadyTrainer(model=lm(tok, lora=True), args=args, train_dataset=rows[:6], eval_dataset=rows[6:],
                           processing_class=tok, ready=default)  # fmt: skip
    trainer.train()
    cap = trainer.readiness_summary()["cap"]
    assert cap["mode"] == "heldout" and cap["requested"] == "auto" and cap["measurements"][0]["rows"] == 2


def test_cap_initial_on_a_lora_model_is_the_base_models_loss_and_drives_the_term(tok):
    """LoRA starts as the base model (B = 0): ``cap=initial`` is the pretrained loss of the revocable rows."""
    data, task = qa(tok), CausalLMTask()
    base, model = lm(tok), lm(tok, lora=True)
    with torch.no_grad():
        expected = task.per_sample_loss(base.eval(), data.x, data.y).mean().item()
    cfg = ReadyConfig(kind="group", group_column="author", forget_size=2, meta_every=1, cap="initial",
                      method={"name": "ga"})  # fmt: skip
    obj = ReadinessObjective(cfg, data, 0, seed=0, task=task)
    loss, parts = obj(model, 0, 0)
    assert obj.cap.measurements == [{"epoch": 0, "cap": pytest.approx(expected, rel=1e-5), "rows": len(QA)}]
    assert loss is not None and parts["cap_saturated"] == float(parts["forget_after"] >= expected)


# -- TOFU bench end to end --------------------------------------------------------------------------------
@pytest.mark.skipif(not kit_available("tofu"), reason="needs ../shared/data/tofu")
def test_tofu_bench_runs_end_to_end_and_resumes(tmp_path):
    from ready2unlearn.recipes.lm_bench import run_lm_bench

    overrides = ["tofu.retain_authors=1", "tofu.eval_rows=2", "tofu.max_new_tokens=4", "tofu.max_len=64",
                 "tofu.tokenizer=train:400", "train.epochs=1", "train.model.hidden=16", "train.model.layers=1",
                 "train.model.intermediate=32", "train.model.max_positions=64", "methods=[{name: ga}]",
                 "stop.max_steps=2", "stop.eval_every=1", "relearn.steps=2", "relearn.eval_every=1"]  # fmt: skip
    res = run_lm_bench("tofu-forget01", tmp_path, overrides, show_progress=False)
    assert res["data"]["train_rows"] == 60 and res["data"]["forget_rows"] == 40
    table = {(r["model"], r["method"]): r for r in res["summary"]["table"]}
    assert {("standard", "ga"), ("ready", "ga"), ("retrained", "—")} <= set(table)
    for row in table.values():
        assert 0 <= row["forget quality"] <= 1 and row["model utility"] >= 0
    assert (tmp_path / "report.md").is_file() and (tmp_path / "quality_utility.png").is_file()
    again = run_lm_bench("tofu-forget01", tmp_path, overrides, show_progress=False)  # cached models and cells
    assert again["summary"]["table"] == res["summary"]["table"]
    with pytest.raises(ConfigError, match="different config"):
        run_lm_bench("tofu-forget01", tmp_path, [*overrides[:-1], "relearn.eval_every=2"], show_progress=False)


@pytest.mark.skipif(not kit_available("tofu"), reason="needs ../shared/data/tofu")
def test_tofu_heldout_authors_are_seen_by_no_model_and_no_evaluation(tmp_path):
    from ready2unlearn.data.files import data_root
    from ready2unlearn.data.tofu import load_tofu
    from ready2unlearn.recipes.lm_bench import LMBenchRunner, load_lm_bench_config

    base = ["tofu.retain_authors=2", "tofu.tokenizer=train:400", "tofu.eval_rows=4", "tofu.max_len=64"]
    with pytest.raises(ConfigError, match=r"set tofu\.heldout_authors"):
        load_lm_bench_config("tofu-forget01", [*base, "ready.cap=heldout"])
    cfg, _ = load_lm_bench_config("tofu-forget01", [*base, "ready.cap=heldout", "tofu.heldout_authors=3"])
    data = LMBenchRunner(cfg, tmp_path, show_progress=False).load_data()
    assert data.heldout is not None and len(data.heldout) == 60 and data.info["heldout_rows"] == 60
    held = set(data.heldout.ids.tolist())
    assert held == set(range(195 * 20, 198 * 20))  # the last 3 of forget01's 198 retain authors
    assert not held & set(data.train.ids.tolist()) and not held & set(data.holdout.ids.tolist())
    full, _, _ = load_tofu(data_root(None), verify=False)
    asked = {r["question"] for rows in data.eval_sets.values() for r in rows}
    assert not {full.rows[i]["question"] for i in held} & asked  # no utility or forget question about them
    with pytest.raises(ConfigError, match="would overlap"):
        bad, _ = load_lm_bench_config("tofu-forget01", [*base, "tofu.heldout_authors=190"])
        LMBenchRunner(bad, tmp_path / "bad", show_progress=False).load_data()


@pytest.mark.skipif(not kit_available("tofu"), reason="needs ../shared/data/tofu")
def test_tofu_bench_trains_the_language_baselines_and_unlearns_them_alike(tmp_path):
    """NEFTune, down-weighting and DP-SGD: trained beside standard/ready, unlearned with the same methods."""
    pytest.importorskip("opacus")
    from ready2unlearn.recipes.lm_bench import run_lm_bench

    overrides = ["tofu.retain_authors=1", "tofu.eval_rows=2", "tofu.max_new_tokens=4", "tofu.max_len=64",
                 "tofu.tokenizer=train:400", "train.epochs=1", "train.model.hidden=16", "train.model.layers=1",
                 "train.model.intermediate=32", "train.model.max_positions=64", "methods=[{name: ga}]",
                 "stop.max_steps=2", "stop.eval_every=1", "relearn.steps=2", "relearn.eval_every=1", "mia=false",
                 "baselines={neftune: 5.0, downweight: 0.1, dp: {noise_multiplier: 1.0, max_grad_norm: 1.0}}",
                 ]  # fmt: skip
    res = run_lm_bench("tofu-forget01", tmp_path, overrides, show_progress=False)
    models = res["models"]["0"]
    assert set(models) == {"standard", "ready", "neftune", "downweight", "dp", "retrained"}
    assert models["neftune"]["info"]["baseline"] == {"alpha": 5.0}
    assert models["downweight"]["info"]["baseline"] == {"weight": 0.1, "rows": 40}  # the forget authors' rows
    assert models["dp"]["info"]["baseline"]["epsilon"] > 0
    compare = {(r["model"], r["method"]): r for r in res["summary"]["compare"]}
    assert set(compare) == {("ready", "ga"), ("neftune", "ga"), ("downweight", "ga"), ("dp", "ga")}
    assert models["retrained"]["relearn"]["forget-10"]["curve"]  # the relearning floor
    row = compare[("dp", "ga")]
    assert row["seeds"] == 1 and row["steps, model / standard"]["target"] == "<= 0.5"
    assert math.isfinite(row["relearning gap closed"]["mean"])  # measured against the retrained floor
    assert set(res["summary"]["train_time_ratios"]) == {"standard", "ready", "neftune", "downweight", "dp"}
    assert "neftune" in (tmp_path / "report.md").read_text()


def test_neftune_noise_is_on_only_while_training(tok):
    """The NEFTune hook perturbs embeddings in training mode only and is gone after fitting."""
    from ready2unlearn.readiness.baselines import fit_neftune

    model = tiny_causal_lm(len(tok), TinyLMConfig(hidden=16, layers=1, heads=2, intermediate=32, max_positions=32))
    emb = model.get_input_embeddings()
    seen = []
    handle = emb.register_forward_hook(lambda m, i, o: seen.append(hasattr(m, "neftune_noise_alpha")))
    ids = torch.randint(0, len(tok), (4, 12))
    train = ArrayDataset(ids, ids.clone(), torch.arange(4))
    cfg = TrainConfig(epochs=1, batch_size=4)
    fit_neftune(model, train, None, cfg, alpha=5.0, task=CausalLMTask())
    handle.remove()
    assert seen and all(seen)  # the noise scale was set on the embedding during training
    assert not hasattr(emb, "neftune_noise_alpha") and not emb._forward_hooks  # removed afterwards
    model.train()
    with torch.no_grad():
        a, b = emb(ids), emb(ids)
    assert torch.equal(a, b)  # no noise left, even in training mode
    with pytest.raises(ValueError, match="positive"):
        fit_neftune(model, train, None, cfg, alpha=0.0)


def test_bench_verb_dispatches_by_preset_group():
    from ready2unlearn.cli.bench import preset_group

    assert preset_group("tofu-forget01") == "lm_bench"
    assert preset_group("text-class") == "ready_bench"
    assert preset_group("digits-quick") == "bench"


def test_tiny_lm_is_registered_for_qa_data(tok):
    from ready2unlearn.models.registry import build_model

    m = build_model({"name": "tiny_lm", "hidden": 16, "layers": 1, "intermediate": 32}, DataSpec("qa", (8,), 0,
                    vocab_size=len(tok)))  # fmt: skip
    assert m(torch.zeros(2, 8, dtype=torch.long)).logits.shape == (2, 8, len(tok))
    with pytest.raises(ConfigError, match="divisible"):
        build_model({"name": "tiny_lm", "hidden": 30, "heads": 4}, DataSpec("qa", (8,), 0, vocab_size=10))


def test_fit_through_accelerate_matches_the_plain_loop():
    """One process: the Accelerate path must be the plain loop, step for step (multi-GPU runs use the same code)."""
    pytest.importorskip("accelerate")
    from ready2unlearn.data.registry import DataConfig, load_split
    from ready2unlearn.models.registry import build_model

    split = load_split(DataConfig(name="digits", train_subset=256))
    out = []
    for accelerate in (False, True):
        torch.manual_seed(0)
        model = build_model({"name": "mlp"}, split.spec)
        cfg = TrainConfig(epochs=2, batch_size=32, accelerate=accelerate)
        out.append((model, fit(model, split.train, split.test, cfg, show_progress=False)))
    (plain, a), (accel, b) = out
    assert a.metrics == b.metrics
    assert all(torch.equal(p, q) for p, q in zip(plain.parameters(), accel.parameters(), strict=True))
