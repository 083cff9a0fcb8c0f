"""MUSE evaluation of local checkpoints: VerbMem, KnowMem (forget / retain) and PrivLeak against retraining.

Launch: ``r2u bench muse-news --out runs/muse-news 'models=[{name: target, path: DIR}, ...]'`` (presets in
``configs/muse_eval``; data and checkpoints are local: see ``benchmarks/muse/README.md``).

Shi et al. 2024 (arXiv 2407.06460) judge an unlearned model by four numbers on the corpus's evaluation files
(:mod:`ready2unlearn.evaluate.muse`). This recipe loads each listed checkpoint in turn, scores it with one
:class:`~ready2unlearn.evaluate.scorer.Scorer`, and writes ``results.json`` and ``report.md``. PrivLeak needs
the retrained model's attack AUC: the model marked ``retrained: true`` is evaluated first and gives it;
otherwise ``retrain_auc`` (e.g. the authors' published value for their own retrained Llama-2, see
:data:`~ready2unlearn.evaluate.muse.MUSE_RETRAIN_AUC`) does; without either PrivLeak is left out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ready2unlearn.artifacts import atomic_write, now_iso, versions, write_json
from ready2unlearn.config import check, load_preset, to_dict
from ready2unlearn.data.files import data_root
from ready2unlearn.data.lm import QATemplate
from ready2unlearn.data.muse import CORPORA, load_muse
from ready2unlearn.errors import ConfigError
from ready2unlearn.evaluate.muse import MUSE_METRICS, MuseSettings, evaluate_muse
from ready2unlearn.evaluate.scorer import Scorer
from ready2unlearn.hf import load_causal_lm, load_tokenizer
from ready2unlearn.runtime import resolve_device


@dataclass
class MuseModelSpec:
    """One checkpoint to evaluate.

    Attributes:
        name: Row label in the report.
        path: Local Hugging Face checkpoint directory (or a known alias); never downloaded.
        retrained: This is the model retrained without the forget set: its AUC is PrivLeak's reference.
    """

    name: str
    path: str
    retrained: bool = False


@dataclass
class MuseEvalConfig:
    """A MUSE evaluation run.

    Attributes:
        corpus: ``news`` or ``books``.
        data_dir: Data root holding ``muse/<corpus>/`` (default: ``$R2U_DATA_DIR`` or ``--data-dir``).
        models: Checkpoints to evaluate, at most one marked ``retrained``.
        tokenizer: Tokenizer checkpoint (default: the first model's).
        max_len: Context length: prompts longer than it minus the generation keep their last tokens, and
            privacy-leak documents are scored on their first ``max_len`` tokens (MUSE: 2048).
        batch_size: Sequences per forward pass.
        prefix: KnowMem prompt text before a question (MUSE: ``"Question: "``).
        separator: KnowMem prompt text between question and answer (MUSE: newline + ``"Answer: "``).
        retrain_auc: PrivLeak reference when no model is marked ``retrained``.
        muse: Generation lengths, Min-K% fraction, ROUGE form, row limit.
        device: ``auto``, ``cpu``, ``cuda``...
    """

    corpus: str = "news"
    data_dir: str | None = None
    models: list[MuseModelSpec] = field(default_factory=list)
    tokenizer: str | None = None
    max_len: int = 2048
    batch_size: int = 8
    prefix: str = "Question: "
    separator: str = "\nAnswer: "
    retrain_auc: float | None = None
    muse: MuseSettings = field(default_factory=MuseSettings)
    device: str = "auto"

    def __post_init__(self) -> None:
        check(self.corpus in CORPORA, f"muse eval: corpus must be one of {', '.join(CORPORA)}")
        check(self.max_len > self.muse.verbmem_max_new_tokens, "muse eval: max_len must exceed the VerbMem length")
        check(self.batch_size > 0, "muse eval: batch_size must be > 0")
        check(sum(m.retrained for m in self.models) <= 1, "muse eval: mark at most one model retrained")
        check(len({m.name for m in self.models}) == len(self.models), "muse eval: model names must be unique")
        check(self.retrain_auc is None or 0 < self.retrain_auc <= 1, "muse eval: retrain_auc must be in (0, 1]")


def load_muse_eval_config(preset: str, overrides: list[str] | tuple[str, ...] = ()) -> tuple[MuseEvalConfig, str]:
    """Reads a ``muse_eval`` preset (or YAML file) and applies ``key=value`` overrides."""
    return load_preset(MuseEvalConfig, "muse_eval", preset, overrides)


def _report_md(results: dict[str, Any]) -> str:
    """A Markdown table: one row per model, one column per MUSE metric."""
    names = MUSE_METRICS.names()
    lines = [f"# MUSE-{results['corpus']} evaluation", "", "| model | " + " | ".join(names) + " |",
             "|---|" + "---|" * len(names)]  # fmt: skip
    for row in results["models"]:
        cells = [f"{row['metrics'][n]:.4g}" if n in row["metrics"] else "—" for n in names]
        lines.append(f"| {row['name']} | " + " | ".join(cells) + " |")
    lines += ["", "VerbMem / KnowMem: ROUGE-L (" + results["config"]["muse"]["rouge"] + "), fractions (MUSE reports "
              "×100). PrivLeak: (AUC − AUC_retrained) / AUC_retrained of Min-K% forget vs holdout; 0 = as retrained, "
              "< 0 = forget set still recognised. Reference AUC: " + str(results["reference_auc"]), ""]  # fmt: skip
    return "\n".join(lines)


def run_muse_eval(preset: str, out_dir: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Evaluates every listed checkpoint on MUSE and writes ``results.json`` and ``report.md`` into ``out_dir``.

    Raises:
        ConfigError: If no model is listed.
        DataError: If a MUSE file is missing or malformed.
    """
    cfg, path = load_muse_eval_config(preset, overrides)
    if not cfg.models:
        raise ConfigError("muse eval: no models to evaluate; add models=[{name: target, path: DIR}]")
    t0 = time.perf_counter()
    data = load_muse(data_root(cfg.data_dir), cfg.corpus)
    tokenizer = load_tokenizer(cfg.tokenizer or cfg.models[0].path)
    device = resolve_device(cfg.device)
    template = QATemplate(cfg.prefix, cfg.separator)
    reference_auc = cfg.retrain_auc
    rows = []
    # The retrained model goes first: its attack AUC is every other model's PrivLeak reference.
    for spec in sorted(cfg.models, key=lambda m: not m.retrained):
        model = load_causal_lm(spec.path).to(device)
        scorer = Scorer(model, tokenizer, template, cfg.max_len, cfg.batch_size)
        report = evaluate_muse(scorer, data, cfg.muse, reference_auc)
        if spec.retrained and report.details["privleak_aucs"] is not None:
            reference_auc = report.details["privleak_aucs"]["min_k"]
            report.metrics["privleak"] = 0.0  # by definition: the reference against itself
        rows.append({"name": spec.name, "path": spec.path, "retrained": spec.retrained, "metrics": report.metrics,
                     "details": report.details})  # fmt: skip
        del model, scorer
    results = {"preset": path, "corpus": cfg.corpus, "config": to_dict(cfg), "reference_auc": reference_auc,
               "models": rows, "versions": versions(), "created": now_iso(),
               "wall_seconds": time.perf_counter() - t0}  # fmt: skip
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", results)
    atomic_write(out / "report.md", lambda p: p.write_text(_report_md(results), encoding="utf-8"))
    return results
