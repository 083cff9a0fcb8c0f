"""MUSE: the loader on files in the release layout, each metric on tiny models, PrivLeak's sign and scale."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ready2unlearn.attacks.sequence_mia import text_mia_auc
from ready2unlearn.data.lm import QATemplate
from ready2unlearn.data.muse import MuseData, load_muse, load_muse_raw
from ready2unlearn.errors import ConfigError, DataError
from ready2unlearn.evaluate.muse import (
    MUSE_METRICS,
    MuseOutputs,
    MuseSettings,
    _first_answer,
    compute_muse,
    evaluate_muse,
    knowmem,
    knowmem_prompt,
    privleak,
    privleak_aucs,
    verbmem,
)
from ready2unlearn.evaluate.scorer import Scorer

from .lm_fixtures import tiny_llama, tiny_tokenizer

CORPUS = [
    "Question: Answer: who wrote the letter ? what city ? paris london rome",
    "the cat sat on the mat . a dog ran in the park . birds sing at dawn .",
    "rain fell over the hills . the river rose fast . boats left the harbour .",
    "old kings built high walls . traders crossed the sea . markets grew loud .",
]
VERBMEM = [{"prompt": "the cat sat", "gt": "on the mat ."}, {"prompt": "a dog ran", "gt": "in the park ."}]
FORGET_QA = [{"question": "what city ?", "answer": "paris"}, {"question": "who wrote the letter ?", "answer": "rome"}]
RETAIN_QA = [{"question": "what city ?", "answer": "london"}]
ICL = [{"question": "who wrote the letter ?", "answer": "the cat"}]
FORGET_DOCS = ["the cat sat on the mat .", "a dog ran in the park .", "birds sing at dawn ."]
HOLDOUT_DOCS = ["rain fell over the hills .", "the river rose fast .", "boats left the harbour ."]


def write_muse(root: Path, corpus: str = "news", jsonl: bool = False, gz: bool = False, drop: tuple[str, ...] = ()):
    """A small MUSE corpus in the release layout under ``root/muse/<corpus>/``."""
    files = {
        "verbmem/forget.json": VERBMEM, "knowmem/forget_qa.json": FORGET_QA, "knowmem/retain_qa.json": RETAIN_QA,
        "knowmem/forget_qa_icl.json": ICL, "knowmem/retain_qa_icl.json": ICL,
        "privleak/forget.json": FORGET_DOCS, "privleak/holdout.json": HOLDOUT_DOCS,
        "privleak/retain.json": [{"text": t} for t in HOLDOUT_DOCS],
    }  # fmt: skip
    for rel, records in files.items():
        if rel in drop:
            continue
        text = "\n".join(json.dumps(r) for r in records) if jsonl else json.dumps(records)
        path = root / "muse" / corpus / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if gz:
            path.with_name(path.name + ".gz").write_bytes(gzip.compress(text.encode()))
        else:
            path.write_text(text, encoding="utf-8")
    raw = root / "muse" / corpus / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "forget.txt").write_text(" ".join(FORGET_DOCS), encoding="utf-8")
    (raw / "retain1.json").write_text(json.dumps([{"text": t} for t in HOLDOUT_DOCS]), encoding="utf-8")
    return root


# --------------------------------------------------------------------------------------------- loader
@pytest.mark.parametrize(("jsonl", "gz"), [(False, False), (True, False), (False, True)])
def test_load_muse_reads_the_release_layout(tmp_path, jsonl, gz):
    data = load_muse(write_muse(tmp_path, jsonl=jsonl, gz=gz), "news")
    assert data.corpus == "news" and data.verbmem == VERBMEM
    assert data.knowmem == {"forget_qa": FORGET_QA, "retain_qa": RETAIN_QA, "forget_qa_icl": ICL, "retain_qa_icl": ICL}
    assert data.privleak == {"forget": FORGET_DOCS, "retain": HOLDOUT_DOCS, "holdout": HOLDOUT_DOCS}


def test_load_muse_other_folder_names_and_optional_files(tmp_path):
    write_muse(tmp_path, "books", drop=("knowmem/forget_qa_icl.json", "knowmem/retain_qa_icl.json",
                                        "privleak/retain.json"))  # fmt: skip
    (tmp_path / "muse" / "books").rename(tmp_path / "MUSE-Books")  # the Hugging Face repository's name
    data = load_muse(tmp_path, "books")
    assert set(data.knowmem) == {"forget_qa", "retain_qa"} and set(data.privleak) == {"forget", "holdout"}


def test_load_muse_raw_splits(tmp_path):
    write_muse(tmp_path)
    assert load_muse_raw(tmp_path, "news", "forget") == [" ".join(FORGET_DOCS)]
    assert load_muse_raw(tmp_path, "news", "retain1") == HOLDOUT_DOCS
    with pytest.raises(DataError, match=r"raw/holdout.txt' is missing \(nor .json\)"):
        load_muse_raw(tmp_path, "news", "holdout")
    with pytest.raises(DataError, match="unknown raw split 'retain3'"):
        load_muse_raw(tmp_path, "news", "retain3")


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_load_muse_errors_are_one_line(tmp_path):
    with pytest.raises(DataError) as e:
        load_muse(None, "news")
    assert "no data directory" in _one_line(e)
    with pytest.raises(DataError) as e:
        load_muse(tmp_path, "lyrics")
    assert "unknown corpus 'lyrics'; known: news, books" in _one_line(e)
    write_muse(tmp_path, drop=("privleak/holdout.json",))
    with pytest.raises(DataError) as e:
        load_muse(tmp_path, "news")
    assert "muse/news/privleak/holdout.json'[.gz] is missing" in _one_line(e)


@pytest.mark.parametrize(
    ("rel", "content", "expected"),
    [
        ("verbmem/forget.json", "{not json", "is neither JSON nor JSON Lines"),
        ("verbmem/forget.json", "[]", "holds no list of records"),
        ("verbmem/forget.json", json.dumps([{"prompt": "a"}]), "row 0 lacks a text 'prompt' or 'gt'"),
        ("knowmem/retain_qa.json", json.dumps([{"question": "q", "answer": 3}]), "row 0 lacks a text 'question'"),
        ("privleak/forget.json", json.dumps(["ok", {"body": "x"}]), "item 1 is not a non-empty text"),
    ],
)
def test_load_muse_rejects_malformed_files(tmp_path, rel, content, expected):
    write_muse(tmp_path)
    (tmp_path / "muse" / "news" / rel).write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as e:
        load_muse(tmp_path, "news")
    msg = _one_line(e)
    assert expected in msg and rel in msg


# --------------------------------------------------------------------------------------------- tiny models
@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer(CORPUS)


class Bigram(nn.Module):
    """Next-token logits depend only on the current token: generations known by hand."""

    def __init__(self, tok, pairs: dict[str, str]) -> None:
        super().__init__()
        self.register_buffer("table", torch.zeros(len(tok), len(tok)))
        for prev, nxt in pairs.items():
            self.table[tok.convert_tokens_to_ids(prev), tok.convert_tokens_to_ids(nxt)] = 8.0

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.table[input_ids]


def test_verbmem_scores_the_continuation_against_the_truth(tok):
    model = Bigram(tok, {"sat": "on", "on": "the", "the": "mat", "mat": "[EOS]", "ran": "[EOS]"})
    out = verbmem(Scorer(model, tok, max_len=32), VERBMEM, max_new_tokens=8)
    assert out["generations"] == ["on the mat", ""]
    # "on the mat" vs "on the mat ." (4 reference tokens after ROUGE's tokenizer drops "."): recall 1, F1 1;
    # the empty continuation scores 0.
    assert out["rougeL_recall_per_row"] == [pytest.approx(1.0), 0.0]
    assert out["rougeL_f1"] == pytest.approx(0.5) and out["rougeL_recall"] == pytest.approx(0.5)
    # A passage longer than the context keeps its last tokens and is still continued.
    long = [{"prompt": "birds sing at dawn . " * 10 + "the cat sat", "gt": "on the mat"}]
    assert verbmem(Scorer(model, tok, max_len=12), long, max_new_tokens=4)["generations"] == ["on the mat"]


def test_knowmem_prompt_and_answer_cut(tok):
    scorer = Scorer(Bigram(tok, {}), tok, QATemplate(), max_len=64)
    assert knowmem_prompt(scorer, "what city ?", ICL) == (
        "Question: who wrote the letter ?\nAnswer: the cat\n\nQuestion: what city ?\nAnswer: "
    )
    assert _first_answer(" paris\n\nQuestion: who", "Question: ") == "paris"
    assert _first_answer("paris Question: more", "Question: ") == "paris"
    assert _first_answer("  london  ", "Question: ") == "london"


def test_knowmem_scores_answers(tok):
    model = Bigram(tok, {":": "paris", "paris": "[EOS]"})
    out = knowmem(Scorer(model, tok, max_len=64), FORGET_QA, ICL, max_new_tokens=4)
    assert out["generations"] == ["paris", "paris"]
    assert out["rougeL_recall_per_row"] == [1.0, 0.0] and out["rougeL_f1"] == pytest.approx(0.5)


def test_scorer_text_logprobs_match_log_softmax(tok):
    model = tiny_llama(len(tok), seed=0)
    scorer = Scorer(model, tok, max_len=6)
    per_text = scorer.text_logprobs(FORGET_DOCS[:2])
    for text, lp in zip(FORGET_DOCS[:2], per_text, strict=True):
        ids = tok(text, add_special_tokens=False)["input_ids"][:6]
        with torch.no_grad():
            logp = F.log_softmax(model(torch.tensor([ids]))[0].double(), -1)
        assert lp.shape == (len(ids) - 1,)
        np.testing.assert_allclose(lp, [logp[t - 1, ids[t]].item() for t in range(1, len(ids))], atol=1e-5)


def _overfit(tok, docs: list[str], steps: int = 40) -> nn.Module:
    """A tiny Llama trained on ``docs`` until it knows them (members), seeded."""
    model = tiny_llama(len(tok), seed=4)
    x = torch.nn.utils.rnn.pad_sequence(
        [torch.tensor(tok(d, add_special_tokens=False)["input_ids"]) for d in docs], batch_first=True, padding_value=-1
    )
    y = x.clone().masked_fill(x < 0, -100)
    x = x.clamp_min(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        logits = model(x)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), y[:, 1:].reshape(-1), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_privleak_auc_is_muse_oriented_on_a_model_that_memorised_the_forget_set(tok):
    model = _overfit(tok, FORGET_DOCS)
    scorer = Scorer(model, tok, max_len=16)
    aucs = privleak_aucs(scorer, FORGET_DOCS, HOLDOUT_DOCS, k=0.4)
    usual = text_mia_auc(scorer, FORGET_DOCS, HOLDOUT_DOCS, k=0.4)
    assert usual["min_k"] == 1.0  # the forget documents are recognised...
    assert aucs == {name: pytest.approx(1 - usual[name]) for name in usual}  # ...which MUSE writes as AUC 0
    # Against a retrained model at chance, that is PrivLeak −100%: under-unlearning is negative.
    assert privleak(aucs["min_k"], 0.5) == pytest.approx(-1.0)


def test_privleak_sign_and_normalisation_on_hand_made_aucs():
    assert privleak(0.5, 0.5) == 0.0
    assert privleak(0.25, 0.5) == pytest.approx(-0.5)  # forget set still recognised: under-unlearning
    assert privleak(0.75, 0.5) == pytest.approx(0.5)  # forget set less familiar than unseen text: over-unlearning
    assert privleak(0.0, 0.4772) == pytest.approx(-1.0)  # divided by the retrained AUC, not by 0.5
    assert privleak(0.6, 0.4) == pytest.approx(0.5)
    for bad in (0.0, -0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match="retrained-model AUC"):
            privleak(0.5, bad)


def test_muse_metric_registry_and_compute():
    assert MUSE_METRICS.names() == ["knowmem_forget", "knowmem_retain", "privleak", "privleak_auc", "verbmem_forget"]
    hib = {name: m.higher_is_better for name, m in MUSE_METRICS.items()}
    assert hib == {"verbmem_forget": False, "knowmem_forget": False, "knowmem_retain": True, "privleak_auc": None,
                   "privleak": None}  # fmt: skip
    part = {"rougeL_f1": 0.4, "rougeL_recall": 0.8}
    out = MuseOutputs(rouge="recall", verbmem=part, knowmem_forget=part, knowmem_retain={**part, "rougeL_recall": 0.9},
                      privleak_aucs={"loss": 0.1, "zlib": 0.2, "min_k": 0.3}, reference_auc=0.6)  # fmt: skip
    assert compute_muse(out) == pytest.approx({"verbmem_forget": 0.8, "knowmem_forget": 0.8, "knowmem_retain": 0.9,
                                               "privleak_auc": 0.3, "privleak": -0.5})  # fmt: skip
    out.reference_auc = None
    assert "privleak" not in compute_muse(out)
    with pytest.raises(ConfigError, match="'privleak' needs privleak_aucs, reference_auc"):
        compute_muse(out, ["privleak"])
    with pytest.raises(ConfigError, match="unknown MUSE metric 'verbmem'"):
        compute_muse(out, ["verbmem"])


def test_muse_settings_validate():
    with pytest.raises(ConfigError, match=r"muse\.rouge"):
        MuseSettings(rouge="bleu")
    with pytest.raises(ConfigError, match=r"muse\.k"):
        MuseSettings(k=0.0)


def test_evaluate_muse_end_to_end_on_a_tiny_llama(tmp_path, tok):
    data = load_muse(write_muse(tmp_path), "news")
    model = tiny_llama(len(tok), seed=5)
    model.train()
    scorer = Scorer(model, tok, max_len=24, batch_size=2)
    settings = MuseSettings(verbmem_max_new_tokens=4, knowmem_max_new_tokens=3, rows=2)
    report = evaluate_muse(scorer, data, settings, reference_auc=0.5)
    assert model.training  # evaluation hands the mode back
    assert set(report.metrics) == set(MUSE_METRICS.names())
    assert all(0.0 <= report.metrics[m] <= 1.0 for m in ("verbmem_forget", "knowmem_forget", "knowmem_retain"))
    assert report.metrics["privleak"] == pytest.approx(privleak(report.metrics["privleak_auc"], 0.5))
    assert (
        len(report.details["verbmem"]["generations"]) == 2 and len(report.details["knowmem_retain"]["generations"]) == 1
    )
    assert report.details["privleak_aucs"]["min_k"] == report.metrics["privleak_auc"]
    # Without a reference PrivLeak is left out; a data set without KnowMem files skips those metrics.
    bare = MuseData("news", VERBMEM, {}, {"forget": FORGET_DOCS, "holdout": HOLDOUT_DOCS})
    assert set(evaluate_muse(scorer, bare, settings).metrics) == {"verbmem_forget", "privleak_auc"}


# --------------------------------------------------------------------------------------------- preset + recipe
def test_muse_presets_validate_and_route_to_the_muse_runner():
    from ready2unlearn.cli.bench import preset_group
    from ready2unlearn.recipes.muse_eval import load_muse_eval_config

    for name, corpus in (("muse-news", "news"), ("muse-books", "books")):
        cfg, _ = load_muse_eval_config(name)
        assert cfg.corpus == corpus and cfg.muse.k == 0.4 and cfg.max_len == 2048 and cfg.models == []
        assert preset_group(name) == "muse_eval"
    with pytest.raises(ConfigError, match="at most one model retrained"):
        load_muse_eval_config("muse-news", ["models=[{name: a, path: x, retrained: true}, "
                                            "{name: b, path: y, retrained: true}]"])  # fmt: skip


def test_run_muse_eval_on_local_checkpoints(tmp_path, tok):
    from ready2unlearn.recipes.muse_eval import run_muse_eval

    write_muse(tmp_path / "data")
    paths = {}
    for name, model in (("retrained", tiny_llama(len(tok), seed=6)), ("target", _overfit(tok, FORGET_DOCS, 30))):
        paths[name] = tmp_path / name
        model.lm.save_pretrained(paths[name])
        tok.save_pretrained(paths[name])
    overrides = [f"data_dir={tmp_path / 'data'}", "max_len=24", "batch_size=2", "muse.verbmem_max_new_tokens=4",
                 "muse.knowmem_max_new_tokens=3", "device=cpu",
                 f"models=[{{name: target, path: {paths['target']}}}, "
                 f"{{name: retrained, path: {paths['retrained']}, retrained: true}}]"]  # fmt: skip
    res = run_muse_eval("muse-news", tmp_path / "out", overrides)
    by_name = {r["name"]: r for r in res["models"]}
    assert [r["name"] for r in res["models"]] == ["retrained", "target"]  # the reference is evaluated first
    assert res["reference_auc"] == by_name["retrained"]["metrics"]["privleak_auc"]
    assert by_name["retrained"]["metrics"]["privleak"] == 0.0
    target = by_name["target"]["metrics"]
    assert target["privleak_auc"] == 0.0  # the target memorised the forget documents...
    assert target["privleak"] == pytest.approx(-1.0)  # ...so its PrivLeak is −100%, MUSE's sign
    assert (tmp_path / "out" / "results.json").is_file()
    assert "| target |" in (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    with pytest.raises(ConfigError, match="no models to evaluate"):
        run_muse_eval("muse-news", tmp_path / "out2", [f"data_dir={tmp_path / 'data'}"])
