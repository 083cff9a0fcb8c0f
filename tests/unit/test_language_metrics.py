"""Language-model metrics: answer scores, greedy decoding, ROUGE/EM, TOFU aggregates and sequence MIAs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ready2unlearn.data.lm import QATemplate, encode_pair
from ready2unlearn.evaluate.language import (
    answer_logprobs,
    exact_match,
    generation_scores,
    greedy_generate,
    mia_auc,
    min_k_percent,
    normalize_answer,
    qa_loss,
    rouge_l_recall,
    sequence_mia_auc,
    sequence_mia_scores,
    token_logprobs,
    zlib_length,
)
from ready2unlearn.evaluate.tofu_metrics import (
    answer_probability,
    forget_quality,
    model_utility,
    tofu_eval,
    tofu_forget_quality,
    truth_ratio,
    truth_ratio_score,
)

from .lm_fixtures import tiny_llama, tiny_tokenizer

TEMPLATE = QATemplate()
MAX_LEN = 32
CORPUS = [
    "Question: Answer: who is alice ? where was bob born ? what does carol write ?",
    "alice is a cat . bob was born in paris . carol writes poems .",
    "alice is a dog . bob was born in london . carol writes novels . rome the mat sat on",
    "dave likes tea . erin likes jazz . frank likes chess . gina likes rain .",
]


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer(CORPUS)


class Bigram(nn.Module):
    """A 'causal LM' whose next-token logits depend only on the current token: probabilities known by hand."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.register_buffer("table", torch.zeros(vocab_size, vocab_size))

    def set(self, tok, prev: str, nxt: str, logit: float) -> None:
        self.table[tok.convert_tokens_to_ids(prev), tok.convert_tokens_to_ids(nxt)] = logit

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.table[input_ids]


ROWS = [
    {"question": "who is alice ?", "answer": "alice is a cat .", "paraphrased_answer": "alice is a cat",
     "perturbed_answer": ["alice is a dog .", "bob is a cat", "carol writes poems ."]},
    {"question": "where was bob born ?", "answer": "bob was born in paris .", "paraphrased_answer": "in paris",
     "perturbed_answer": ["bob was born in london .", "in rome", "bob was born in rome ."]},
    {"question": "what does carol write ?", "answer": "carol writes poems .", "paraphrased_answer": "poems",
     "perturbed_answer": ["novels", "carol writes novels .", "the mat"]},
]  # fmt: skip
FACTS = [{k: v for k, v in r.items() if k != "paraphrased_answer"} for r in ROWS]


# --------------------------------------------------------------------------------------------- answer scores
def test_answer_logprobs_match_direct_log_softmax(tok):
    model = tiny_llama(len(tok), seed=0)
    model.train()  # the scorer must switch to eval and hand the mode back
    q, a = [r["question"] for r in ROWS], [r["answer"] for r in ROWS]
    sums, counts = answer_logprobs(model, tok, q, a, TEMPLATE, MAX_LEN, batch_size=2)
    assert model.training
    for i, (qi, ai) in enumerate(zip(q, a, strict=True)):
        ids, start = encode_pair(tok, qi, ai, TEMPLATE, MAX_LEN)
        with torch.no_grad():
            logp = F.log_softmax(model.eval()(torch.tensor([ids]))[0].double(), -1)
        expected = sum(logp[t - 1, ids[t]].item() for t in range(start, len(ids)))
        assert counts[i] == len(ids) - start == len(tok(ai, add_special_tokens=False)["input_ids"]) + 1
        assert sums[i] == pytest.approx(expected, abs=1e-4)
    per_token = token_logprobs(model, tok, q, a, TEMPLATE, MAX_LEN, batch_size=3)
    np.testing.assert_allclose([t.sum() for t in per_token], sums, atol=1e-5)


def test_uniform_model_gives_log_vocab_loss_and_prob(tok):
    v = len(tok)
    model = Bigram(v)  # all-zero logits: every token has probability 1/V
    out = qa_loss(model, tok, ROWS, TEMPLATE, MAX_LEN)
    assert out["loss"] == pytest.approx(math.log(v))
    assert out["perplexity"] == pytest.approx(v)
    np.testing.assert_allclose(truth_ratio(model, tok, ROWS, TEMPLATE, MAX_LEN), 1.0)
    # Length normalisation makes every answer equally likely, whatever its length: share = 1 / (1 + 3).
    res = tofu_eval(model, tok, {"world_facts": FACTS, "retain": ROWS}, TEMPLATE, MAX_LEN, max_new_tokens=2)
    assert res["world_facts"]["prob"] == pytest.approx(0.25)
    assert res["retain"]["prob"] == pytest.approx(1 / v)


# --------------------------------------------------------------------------------------------- truth ratio
def _capital_model(tok, a: float) -> Bigram:
    """After ':' the logit of 'paris' is a (others 0); every city is followed by eos with the same probability."""
    m = Bigram(len(tok))
    m.set(tok, ":", "paris", a)
    for city in ("paris", "london", "rome"):
        m.set(tok, city, "[EOS]", 3.0)
    return m


def test_truth_ratio_known_value(tok):
    # Normalised P(paris)=sqrt(e^a·q), P(london)=P(rome)=sqrt(1·q) over the same denominators, so
    # R = sqrt(e^-a) = 1/4 for a = 2 ln 4.
    model = _capital_model(tok, 2 * math.log(4))
    row = {"question": "where was bob born ?", "answer": "bob was born in paris .", "paraphrased_answer": "paris",
           "perturbed_answer": ["london", "rome"]}  # fmt: skip
    r = truth_ratio(model, tok, [row], TEMPLATE, MAX_LEN)
    assert r[0] == pytest.approx(0.25)
    assert truth_ratio_score(r, forget=False) == pytest.approx(0.75)
    assert truth_ratio_score(r, forget=True) == pytest.approx(0.25)
    # Without a paraphrase the answer itself is the base, and the relative probability is 4 / (4 + 1 + 1).
    fact = {"question": "where was bob born ?", "answer": "paris", "perturbed_answer": ["london", "rome"]}
    assert truth_ratio(model, tok, [fact], TEMPLATE, MAX_LEN)[0] == pytest.approx(0.25)
    res = tofu_eval(model, tok, {"real_authors": [fact]}, TEMPLATE, MAX_LEN, max_new_tokens=3)
    assert res["real_authors"]["prob"] == pytest.approx(2 / 3)
    assert res["real_authors"]["truth_ratios"] == [pytest.approx(0.25)]


def test_truth_ratio_uses_geometric_mean_over_perturbed():
    # Perturbed normalised log-probs -1 and -3, base -2: geometric mean gives exp(-2 - -2) = 1 exactly.
    from ready2unlearn.evaluate.tofu_metrics import truth_ratios_from_logprobs

    r = truth_ratios_from_logprobs(np.array([-2.0, -2.0]), np.array([[-1.0, -3.0], [-1.0, np.nan]]))
    np.testing.assert_allclose(r, [1.0, math.e])


def test_relative_probability_is_stable_for_tiny_probabilities():
    p = answer_probability(np.array([-2000.0]), np.array([[-2000.0, np.nan]]))
    assert p[0] == pytest.approx(0.5)


# --------------------------------------------------------------------------------------------- generation
def test_greedy_generate_follows_argmax_and_stops_at_eos(tok):
    m = Bigram(len(tok))
    for prev, nxt in ((":", "the"), ("the", "cat"), ("cat", "[EOS]")):
        m.set(tok, prev, nxt, 5.0)
    prompts = [TEMPLATE.prompt("who is alice ?"), TEMPLATE.prompt("where was bob born ?")]
    assert greedy_generate(m, tok, prompts, max_new_tokens=10) == ["the cat", "the cat"]
    assert greedy_generate(m, tok, prompts, max_new_tokens=1) == ["the", "the"]
    assert greedy_generate(m, tok, prompts, max_new_tokens=10, max_len=10) == ["the cat", "the"]  # 8/9-token prompts
    out = generation_scores(m, tok, [{"question": "who is alice ?", "answer": "The cat!"},
                                     {"question": "who is alice ?", "answer": "the cat sat on the mat"}],
                            TEMPLATE, MAX_LEN, max_new_tokens=10)  # fmt: skip
    assert out["generations"] == ["the cat", "the cat"]
    assert out["exact_match"] == pytest.approx(0.5)
    assert out["rougeL_recall"] == pytest.approx((1.0 + 2 / 6) / 2)


def _argmax_decode(model, tok, prompt: str, max_new_tokens: int) -> str:
    """Greedy decoding by hand: one full forward pass per token, stop at eos."""
    ids = list(tok(prompt, add_special_tokens=False)["input_ids"])
    out: list[int] = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            nxt = int(model(torch.tensor([ids + out]))[0, -1].argmax())
            if nxt == tok.eos_token_id:
                break
            out.append(nxt)
    return tok.decode(out, skip_special_tokens=True)


def test_greedy_generate_matches_argmax_decoding_and_is_batch_independent(tok):
    model = tiny_llama(len(tok), seed=1)
    prompts = [TEMPLATE.prompt(r["question"]) for r in ROWS] + [TEMPLATE.prompt("who is alice ?")]
    batched = greedy_generate(model, tok, prompts, max_new_tokens=5, batch_size=4)
    assert batched == [_argmax_decode(model, tok, p, 5) for p in prompts]
    assert batched == [greedy_generate(model, tok, [p], max_new_tokens=5)[0] for p in prompts]
    assert any(batched)  # a random model still says something: the comparison is not between empty strings


# --------------------------------------------------------------------------------------------- text metrics
@pytest.mark.parametrize(
    ("pred", "ref", "expected"),
    [("the cat sat", "the cat sat on the mat", 0.5), ("the cat sat on the mat", "the cat sat", 1.0),
     ("cats running", "cat run", 1.0), ("dog", "the cat", 0.0), ("mat the on", "the cat sat on the mat", 2 / 6)],
)  # fmt: skip
def test_rouge_l_recall_known_values(pred, ref, expected):
    assert rouge_l_recall(pred, ref) == pytest.approx(expected)


def test_exact_match_normalisation():
    assert normalize_answer("  The  Cat, sat!  ") == "cat sat"
    assert exact_match("The cat.", "cat") == 1.0
    assert exact_match("an apple", "Apple!") == 1.0
    assert exact_match("cat", "dog") == 0.0
    assert exact_match("theatre", "atre") == 0.0  # articles go only as whole words


# --------------------------------------------------------------------------------------------- aggregates
def test_forget_quality_identical_vs_shifted():
    rng = np.random.default_rng(0)
    a = rng.lognormal(0, 0.3, 200)
    assert forget_quality(a, a.copy()) == pytest.approx(1.0)
    assert forget_quality(a, rng.lognormal(1.0, 0.3, 200)) < 0.05
    b = rng.lognormal(0.1, 0.3, 150)
    # TOFU's code tests 1/R; the KS p-value does not change under that monotone map.
    assert forget_quality(a, b) == pytest.approx(forget_quality(1 / a, 1 / b))


def test_model_utility_harmonic_mean():
    assert model_utility({"a": 1.0, "b": 0.5}) == pytest.approx(2 / 3)
    assert model_utility({f"m{i}": 0.5 for i in range(9)}) == pytest.approx(0.5)
    assert model_utility({"a": 1.0, "b": 0.0}) == 0.0
    with pytest.raises(ValueError):
        model_utility({})
    with pytest.raises(ValueError):
        model_utility({"a": -0.1})


def test_tofu_eval_end_to_end(tok):
    model = tiny_llama(len(tok), seed=2)
    sets = {"forget": ROWS[:2], "retain": ROWS[1:], "real_authors": FACTS, "world_facts": FACTS[:2]}
    res = tofu_eval(model, tok, sets, TEMPLATE, MAX_LEN, max_new_tokens=3, batch_size=4)
    nine = {f"{s}/{m}": res[s][m] for s in ("retain", "real_authors", "world_facts")
            for m in ("prob", "rougeL_recall", "truth_ratio")}  # fmt: skip
    assert len(nine) == 9 and res["model_utility"] == pytest.approx(model_utility(nine))
    for name, rows in sets.items():
        r = np.array(res[name]["truth_ratios"])
        np.testing.assert_allclose(r, truth_ratio(model, tok, rows, TEMPLATE, MAX_LEN), rtol=1e-6)
        assert res[name]["truth_ratio"] == pytest.approx(truth_ratio_score(r, forget=name == "forget"))
        assert len(res[name]["generations"]) == len(rows)
        assert 0 < res[name]["prob"] < 1 and res[name]["loss"] > 0
    # Forget quality compares the *forget* truth ratios of two runs (KS test), and nothing else.
    low, high = list(np.linspace(0.1, 0.2, 20)), list(np.linspace(5.0, 6.0, 20))
    unlearned = {"forget": {"truth_ratios": low}, "retain": {"truth_ratios": high}}
    assert tofu_forget_quality(unlearned, {"forget": {"truth_ratios": high}, "retain": {"truth_ratios": low}}) < 1e-6
    assert tofu_forget_quality(unlearned, {"forget": {"truth_ratios": low[::-1]}}) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="differ in size"):
        tofu_forget_quality(unlearned, {"forget": {"truth_ratios": low[:5]}})
    only_forget = tofu_eval(model, tok, {"forget": ROWS}, TEMPLATE, MAX_LEN, max_new_tokens=1)
    assert "model_utility" not in only_forget
    with pytest.raises(ValueError, match="unknown"):
        tofu_eval(model, tok, {"holdout": ROWS}, TEMPLATE, MAX_LEN, max_new_tokens=1)


# --------------------------------------------------------------------------------------------- MIA
def test_min_k_percent_known_values():
    lp = -np.arange(1.0, 11.0)  # -1 .. -10
    assert min_k_percent(lp, 0.2) == pytest.approx(-9.5)
    assert min_k_percent(lp, 1.0) == pytest.approx(-5.5)
    assert min_k_percent(np.array([-0.5, -4.0, -1.0]), 0.2) == pytest.approx(-4.0)  # at least one token
    with pytest.raises(ValueError):
        min_k_percent(lp, 0.0)


def test_mia_auc_on_constructed_scores():
    members = {"loss": np.array([-0.1, -0.2, -0.3]), "zlib": np.array([1.0, 0.0, 0.5])}
    non_members = {"loss": np.array([-1.0, -2.0]), "zlib": np.array([0.2, 0.7])}
    auc = mia_auc(members, non_members)
    assert auc["loss"] == 1.0
    assert auc["zlib"] == pytest.approx(3 / 6)


def test_sequence_mia_separates_overfit_members(tok):
    members = [{"question": "who is alice ?", "answer": "dave likes tea ."},
               {"question": "where was bob born ?", "answer": "erin likes jazz ."}]  # fmt: skip
    non_members = [{"question": "who is alice ?", "answer": "frank likes chess ."},
                   {"question": "where was bob born ?", "answer": "gina likes rain ."}]  # fmt: skip
    model = tiny_llama(len(tok), seed=3)
    from ready2unlearn.data.lm import encode_qa

    x, y = encode_qa(tok, members, TEMPLATE, 16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(30):
        logits = model(x)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), y[:, 1:].reshape(-1), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
    scores = sequence_mia_scores(model, tok, members, TEMPLATE, 16)
    assert set(scores) == {"loss", "zlib", "min_k"} and all(s.shape == (2,) for s in scores.values())
    np.testing.assert_allclose(
        scores["zlib"],
        [scores["loss"][i] * 5 / zlib_length(r["answer"]) for i, r in enumerate(members)],  # 4 words + eos
    )
    auc = sequence_mia_auc(model, tok, members, non_members, TEMPLATE, 16)
    assert auc == {"loss": 1.0, "zlib": 1.0, "min_k": 1.0}
    assert model.training
