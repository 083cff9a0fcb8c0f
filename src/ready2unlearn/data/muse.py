"""MUSE (Shi et al. 2024, "MUSE: Machine Unlearning Six-Way Evaluation for Language Models", arXiv 2407.06460).

Two corpora, ``news`` (BBC articles, MUSE-News) and ``books`` (the Harry Potter novels, MUSE-Books), each in
the layout of the authors' release (GitHub ``swj0419/muse_bench``, ``data/<corpus>/``; the same subsets and
splits as the Hugging Face datasets ``muse-bench/MUSE-News`` and ``muse-bench/MUSE-Books``)::

    <corpus>/raw/forget.txt  retain1.txt  retain2.txt  holdout.txt   one running text per split (training)
    <corpus>/verbmem/forget.json             [{"prompt", "gt"}]: a forget-set passage and its true continuation
    <corpus>/knowmem/forget_qa.json          [{"question", "answer"}] about the forget set
    <corpus>/knowmem/retain_qa.json          [{"question", "answer"}] about the retain set (utility)
    <corpus>/knowmem/forget_qa_icl.json      few-shot examples for the prompts above (optional)
    <corpus>/knowmem/retain_qa_icl.json
    <corpus>/privleak/forget.json  retain.json  holdout.json    ["document", ...] for membership inference

A ``.json`` file may be a JSON array (the release) or JSON Lines (what ``datasets``' ``to_json`` writes), and a
corpus or privacy-leak file may hold strings or ``{"text": ...}`` records; a raw split may be ``.json`` instead
of ``.txt``; every file may be gzipped. ``<corpus>`` is looked up under the data root as ``muse/news`` (or
``MUSE-News``, or ``news``). Nothing is shipped or downloaded: every problem is a one-line
:class:`~ready2unlearn.errors.DataError` naming the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ready2unlearn.data.files import ENV_VAR, find_file, read_verified
from ready2unlearn.errors import DataError

CORPORA = ("news", "books")
RAW_SPLITS = ("forget", "retain1", "retain2", "holdout")
KNOWMEM_FILES = ("forget_qa", "retain_qa", "forget_qa_icl", "retain_qa_icl")
PRIVLEAK_SPLITS = ("forget", "retain", "holdout")
HF_NAMES = {"news": "MUSE-News", "books": "MUSE-Books"}


def corpus_dirs(corpus: str) -> tuple[str, ...]:
    """Folders under the data root that may hold ``corpus`` (first = the one named in messages)."""
    if corpus not in CORPORA:
        raise DataError(f"muse: unknown corpus {corpus!r}; known: {', '.join(CORPORA)}")
    return f"muse/{corpus}", HF_NAMES[corpus], corpus


@dataclass(frozen=True)
class MuseData:
    """The evaluation files of one MUSE corpus.

    Attributes:
        corpus: ``news`` or ``books``.
        verbmem: ``{"prompt", "gt"}`` rows (VerbMem).
        knowmem: ``forget_qa`` / ``retain_qa`` (and, when present, ``*_icl``) → ``{"question", "answer"}`` rows.
        privleak: ``forget`` / ``holdout`` (and, when present, ``retain``) → documents.
    """

    corpus: str
    verbmem: list[dict[str, str]]
    knowmem: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    privleak: dict[str, list[str]] = field(default_factory=dict)


def _locate(root: Path | None, corpus: str, rel: str, required: bool) -> Path | None:
    """The file ``rel`` of ``corpus`` (``.gz`` allowed), or ``None`` when optional and absent."""
    dirs = corpus_dirs(corpus)
    if required or root is None:
        return find_file(root, "muse", rel, dirs)
    for d in dirs:
        for name in (rel, rel + ".gz"):
            if (root / d / name).is_file():
                return root / d / name
    return None


def read_records(path: Path) -> list[Any]:
    """The records of a JSON array or JSON Lines file (possibly gzipped).

    Raises:
        DataError: If the file is unreadable, neither form of JSON, or holds no records.
    """
    text = read_verified(path, "muse", None).decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as e:
            raise DataError(
                f"muse: file {str(path)!r} is neither JSON nor JSON Lines ({e.msg}, line {e.lineno}); "
                "replace it with the official file"
            ) from None
    if isinstance(data, dict):  # JSON Lines with a single record parses as one JSON object
        data = [data]
    if not isinstance(data, list) or not data:
        raise DataError(f"muse: file {str(path)!r} holds no list of records; replace it with the official file")
    return data


def _rows(path: Path, keys: tuple[str, str]) -> list[dict[str, str]]:
    """Records that each carry the string fields ``keys``."""
    rows = read_records(path)
    for i, r in enumerate(rows):
        if not isinstance(r, dict) or any(not isinstance(r.get(k), str) for k in keys):
            raise DataError(
                f"muse: file {str(path)!r} row {i} lacks a text {' or '.join(repr(k) for k in keys)}; "
                f"every row needs {' and '.join(repr(k) for k in keys)}"
            )
    return [{k: r[k] for k in keys} for r in rows]


def _documents(path: Path) -> list[str]:
    """Strings, or ``{"text": ...}`` records, as a list of documents."""
    docs = []
    for i, r in enumerate(read_records(path)):
        text = r.get("text") if isinstance(r, dict) else r
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"muse: file {str(path)!r} item {i} is not a non-empty text or {{'text': ...}} record")
        docs.append(text)
    return docs


def load_muse(root: Path | None, corpus: str) -> MuseData:
    """Loads the VerbMem, KnowMem and PrivLeak files of ``corpus`` from a data root.

    Required: ``verbmem/forget.json``, ``knowmem/forget_qa.json``, ``knowmem/retain_qa.json``,
    ``privleak/forget.json`` and ``privleak/holdout.json``; the few-shot files and ``privleak/retain.json`` are
    read when present.

    Raises:
        DataError: If no data root is set, a required file is missing, or any file is malformed.
    """
    verbmem = _rows(_locate(root, corpus, "verbmem/forget.json", True), ("prompt", "gt"))  # type: ignore[arg-type]
    knowmem, privleak = {}, {}
    for name in KNOWMEM_FILES:
        path = _locate(root, corpus, f"knowmem/{name}.json", required=not name.endswith("_icl"))
        if path is not None:
            knowmem[name] = _rows(path, ("question", "answer"))
    for split in PRIVLEAK_SPLITS:
        path = _locate(root, corpus, f"privleak/{split}.json", required=split != "retain")
        if path is not None:
            privleak[split] = _documents(path)
    return MuseData(corpus, verbmem, knowmem, privleak)


def load_muse_raw(root: Path | None, corpus: str, split: str) -> list[str]:
    """The raw text of a training split (``forget``, ``retain1``, ``retain2``, ``holdout``) as documents.

    A ``.txt`` split is one running text (the release's form: the authors cut it into fixed-length token
    windows for training), returned as a one-item list; a ``.json`` split is its list of documents.

    Raises:
        DataError: If the split is unknown, its file is missing (as ``.txt`` and as ``.json``) or empty.
    """
    if split not in RAW_SPLITS:
        raise DataError(f"muse: unknown raw split {split!r}; known: {', '.join(RAW_SPLITS)}")
    txt = _locate(root, corpus, f"raw/{split}.txt", required=False)
    if txt is not None:
        text = read_verified(txt, "muse", None).decode("utf-8", "replace")
        if not text.strip():
            raise DataError(f"muse: file {str(txt)!r} is empty; replace it with the official file")
        return [text]
    js = _locate(root, corpus, f"raw/{split}.json", required=False)
    if js is not None:
        return _documents(js)
    where = f"{corpus_dirs(corpus)[0]}/raw/{split}.txt"
    raise DataError(
        f"muse: file {str(root / where) if root else where!r} is missing (nor .json); copy the official file "
        f"there, or point --data-dir / ${ENV_VAR} at a directory that has {where}"
    )
