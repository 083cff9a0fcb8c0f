"""Text classification datasets (AG News, SMS Spam) as fixed-length token-id tensors.

Tokenisation is deliberately simple and dependency-free: lower-case word pieces, a vocabulary of the
most frequent training tokens (ties broken alphabetically, so it is deterministic), id 0 = padding,
id 1 = unknown. The vocabulary depends only on the training part, so a checkpoint's card (dataset name +
split fingerprint) is enough to rebuild it. Pretrained tokenisers arrive with the Hugging Face extra.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ready2unlearn.data.base import ArrayDataset, DataSpec, Split
from ready2unlearn.data.files import find_file, read_verified
from ready2unlearn.errors import DataError
from ready2unlearn.hf import load_tokenizer

PAD, UNK = 0, 1
_TOKEN = re.compile(r"[a-z0-9']+")
AG_NEWS_CLASSES = ("world", "sports", "business", "sci/tech")


def tokenize(text: str) -> list[str]:
    """Lower-cased alphanumeric word tokens."""
    return _TOKEN.findall(text.lower())


def build_vocab(texts: Sequence[str], max_size: int) -> dict[str, int]:
    """Maps the ``max_size - 2`` most frequent tokens to ids 2.. (0 = pad, 1 = unknown)."""
    counts = Counter(tok for t in texts for tok in tokenize(t))
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: max(0, max_size - 2)]
    return {tok: i + 2 for i, (tok, _) in enumerate(ranked)}


def encode(texts: Sequence[str], vocab: dict[str, int], max_len: int) -> torch.Tensor:
    """Token ids ``[N, max_len]``, truncated and right-padded with :data:`PAD`."""
    out = np.zeros((len(texts), max_len), dtype=np.int64)
    for i, t in enumerate(texts):
        ids = [vocab.get(tok, UNK) for tok in tokenize(t)][:max_len]
        out[i, : len(ids)] = ids
    return torch.from_numpy(out)


def options(cfg: Any) -> dict[str, Any]:
    """Loader keyword arguments from a ``DataConfig`` (tokenizer and length, when set)."""
    out: dict[str, Any] = {"tokenizer": cfg.tokenizer}
    if cfg.max_len is not None:
        out["max_len"] = cfg.max_len
    return out


def hf_encode(texts: Sequence[str], tokenizer: Any, max_len: int) -> torch.Tensor:
    """Token ids ``[N, max_len]`` from a Hugging Face tokenizer (special tokens added, right-padded)."""
    enc = tokenizer(list(texts), padding="max_length", truncation=True, max_length=max_len)
    return torch.as_tensor(enc["input_ids"], dtype=torch.int64)


def text_split(
    name: str,
    train: tuple[list[str], np.ndarray, np.ndarray],
    test: tuple[list[str], np.ndarray, np.ndarray],
    class_names: tuple[str, ...],
    vocab_size: int,
    max_len: int,
    meta: dict,
    tokenizer: str | None = None,
) -> Split:
    """Builds a token-id :class:`Split` from ``(texts, labels, ids)`` parts.

    With ``tokenizer`` (a local Hugging Face checkpoint or alias) the texts are encoded by it, for a
    pretrained model; otherwise by a word vocabulary built from the training texts.
    """
    if tokenizer is not None:
        tok = load_tokenizer(tokenizer)
        size = len(tok)
        meta = {**meta, "tokenizer": tokenizer, "pad_token_id": tok.pad_token_id}

        def enc(texts: list[str]) -> torch.Tensor:
            return hf_encode(texts, tok, max_len)
    else:
        vocab = build_vocab(train[0], vocab_size)
        size = len(vocab) + 2

        def enc(texts: list[str]) -> torch.Tensor:
            return encode(texts, vocab, max_len)

    def ds(texts: list[str], y: np.ndarray, ids: np.ndarray) -> ArrayDataset:
        return ArrayDataset(enc(texts), torch.as_tensor(y, dtype=torch.int64), torch.as_tensor(ids))

    spec = DataSpec("text", (max_len,), len(class_names), class_names, vocab_size=size)
    return Split(name, ds(*train), ds(*test), spec, {**meta, "vocab_size": size, "max_len": max_len})


def _csv_rows(path: Path, dataset: str, key: str | None, verify: bool) -> list[list[str]]:
    data = read_verified(path, dataset, key, verify)
    try:
        return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{dataset}: file {str(path)!r} is not UTF-8 CSV ({e}); replace it") from None


def _ag_rows(path: Path, key: str, verify: bool) -> tuple[list[str], np.ndarray]:
    """Reads either layout: the kit's ``text,label(0-3)`` or the official ``label(1-4),title,description``."""
    rows = _csv_rows(path, "ag_news", key, verify)
    try:
        if rows and len(rows[0]) == 2:
            texts, labels = [r[0] for r in rows], [int(r[1]) for r in rows]
        else:
            texts, labels = [f"{r[1]} {r[2]}" for r in rows], [int(r[0]) - 1 for r in rows]
    except (IndexError, ValueError):
        raise DataError(f"ag_news: file {str(path)!r} has malformed rows; replace it") from None
    y = np.asarray(labels, dtype=np.int64)
    if len(y) == 0 or y.min() < 0 or y.max() > 3:
        raise DataError(f"ag_news: file {str(path)!r} has labels outside 0-3; replace it")
    return texts, y


def load_ag_news(
    root: Path | None, verify: bool = True, vocab_size: int = 20000, max_len: int = 64, tokenizer: str | None = None
) -> Split:
    """AG News, 4 topics. Uses ``train.csv`` + ``test.csv`` from the directory.

    With the data kit these are its 5,000/1,000-row ready split; a directory holding the official
    120,000-row ``train.csv`` (``label,title,description``) is read the same way.
    """
    train_p = find_file(root, "ag_news", "train.csv", ("ag_news",))
    test_p = find_file(root, "ag_news", "test.csv", ("ag_news",))
    xtr, ytr = _ag_rows(train_p, "ag_news/train.csv", verify)
    xte, yte = _ag_rows(test_p, "ag_news/test.csv", verify)
    meta = {"files": {"train": [str(train_p)], "test": [str(test_p)]}, "verified": verify}
    return text_split(
        "ag_news", (xtr, ytr, np.arange(len(ytr))), (xte, yte, np.arange(len(yte))),
        AG_NEWS_CLASSES, vocab_size, max_len, meta, tokenizer,
    )  # fmt: skip


def load_sms_spam(
    root: Path | None,
    verify: bool = True,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    vocab_size: int = 10000,
    max_len: int = 48,
    tokenizer: str | None = None,
) -> Split:
    """SMS Spam Collection v.1 (5,574 messages, ham=0 / spam=1), stratified train/test split.

    Sample ids are line numbers in ``SMSSpamCollection.tsv``.
    """
    from sklearn.model_selection import train_test_split

    try:
        path = find_file(root, "sms_spam", "SMSSpamCollection.tsv", ("sms_spam",))
    except DataError:
        # The UCI zip unpacks to smsspamcollection/SMSSpamCollection (no suffix); accept that too.
        try:
            path = find_file(root, "sms_spam", "SMSSpamCollection", ("sms_spam", "smsspamcollection"))
        except DataError:
            raise DataError(
                f"sms_spam: file {str((root or Path('.')) / 'sms_spam/SMSSpamCollection.tsv')!r} is missing; "
                "copy the UCI file there, or point --data-dir / $R2U_DATA_DIR at a directory that has it"
            ) from None
    text = read_verified(path, "sms_spam", "sms_spam/SMSSpamCollection.tsv", verify).decode("utf-8", "replace")
    rows = [line.split("\t", 1) for line in text.splitlines() if line]
    if not rows or any(len(r) != 2 or r[0] not in ("ham", "spam") for r in rows):
        raise DataError(f"sms_spam: file {str(path)!r} is not 'ham|spam<TAB>text' lines; replace it")
    texts = [r[1] for r in rows]
    y = np.asarray([int(r[0] == "spam") for r in rows], dtype=np.int64)
    tr, te = train_test_split(np.arange(len(y)), test_size=test_fraction, stratify=y, random_state=split_seed)
    tr, te = np.sort(tr), np.sort(te)
    meta = {"files": [str(path)], "verified": verify, "test_fraction": test_fraction, "split_seed": split_seed}
    return text_split(
        "sms_spam", ([texts[i] for i in tr], y[tr], tr), ([texts[i] for i in te], y[te], te),
        ("ham", "spam"), vocab_size, max_len, meta, tokenizer,
    )  # fmt: skip
