"""TOFU benchmark for language models: standard vs ready vs retrained, scored by forget quality and utility.

Launch: ``r2u bench tofu-forget01 --out runs/tofu01`` (presets in ``configs/lm_bench``).

Per seed it fine-tunes three models on TOFU (Maini et al. 2024): the *standard* model on the training
authors, the *ready* model on the same data with the Ready2Unlearn term (simulated requests are whole
authors drawn from the training authors: the group requests TOFU's forget splits are), and the
*retrained* model on the retain authors only (the gold standard). Every method then unlearns the forget
split from the standard and from the ready model under one stop rule — answer loss on the forget set up
to the retrained model's — and each result is scored with TOFU's metrics: forget quality (KS-test p-value
of the forget set's truth ratios against the retrained model's), model utility (harmonic mean of
probability, ROUGE-L and truth ratio on retain / real-author / world-fact questions), ROUGE-L on forget
and retain answers, sequence membership inference (forget vs unseen holdout authors) and a relearning
attack on a few forget QA pairs.

CPU presets train on a subset of the retain authors (``tofu.retain_authors``); with a GPU set it to
``null`` for the full TOFU protocol (see the presets' comments).

Resumable through the harness (:mod:`ready2unlearn.recipes.harness`): cells are cached under ``cells/<key>.json``
(unkeyed: the folder belongs to one config, which :func:`run_lm_bench` checks), and models under
``models/seed<S>/<name>`` as their trainable tensors only (for LoRA, the adapters).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ready2unlearn.artifacts import atomic_write, now_iso, versions, write_json
from ready2unlearn.attacks.relearn import RelearnConfig, relearn_attack
from ready2unlearn.config import OMIT_UNSET, check, from_dict, load_preset, to_dict
from ready2unlearn.data.base import ArrayDataset, DataSpec
from ready2unlearn.data.files import data_root
from ready2unlearn.data.lm import QATemplate, qa_dataset
from ready2unlearn.data.request import DeletionRequest, RequestViews
from ready2unlearn.data.tofu import FORGET_SPLITS, QA_PER_AUTHOR, load_tofu, load_tofu_file
from ready2unlearn.engine.fit import fit
from ready2unlearn.engine.method import Context, MethodConfig, build_method, method_config
from ready2unlearn.engine.stop import StopConfig
from ready2unlearn.engine.unlearn import unlearn_model
from ready2unlearn.engine.unlearn_config import UnlearnConfig
from ready2unlearn.evaluate.language import sequence_mia_auc
from ready2unlearn.evaluate.tofu_metrics import tofu_eval, tofu_forget_quality
from ready2unlearn.hf import load_tokenizer, train_tokenizer
from ready2unlearn.models.registry import build_model, count_parameters
from ready2unlearn.progress import progress_bar
from ready2unlearn.readiness.config import ReadyConfig
from ready2unlearn.readiness.objective import ReadinessObjective
from ready2unlearn.recipes.harness import CellCache, Report, publish, run_resumable
from ready2unlearn.recipes.lm_baselines import BASELINES, LMBaselines, train_baseline
from ready2unlearn.recipes.train import TrainConfig
from ready2unlearn.report.lm import summarise_lm, write_lm_report
from ready2unlearn.runtime import resolve_device, seed_everything
from ready2unlearn.task import CausalLMTask

HOLDOUT = {"forget01": "holdout01", "forget05": "holdout05", "forget10": "holdout10"}


@dataclass
class TofuSetup:
    """Which part of TOFU is used and how it is encoded and evaluated.

    Attributes:
        forget: ``forget01``, ``forget05`` or ``forget10`` (the last 2 / 10 / 20 authors).
        retain_authors: Train on the first N retain authors (``null`` = all 180-198, the full protocol).
            The first 20 authors hold TOFU's ``retain_perturbed`` evaluation questions, so N ≥ 20 keeps the
            model-utility questions inside the training set.
        tokenizer: ``train:N`` = a byte-level BPE of N tokens trained on the training texts (for models
            from scratch), or a local checkpoint / alias whose tokenizer to use (``smollm2-135m``).
        max_len: Tokens per QA sequence (prompt + answer + eos).
        prefix: Prompt text before the question.
        separator: Prompt text between question and answer.
        eval_rows: Questions per utility set (retain / real authors / world facts), evenly spaced;
            ``null`` = all (TOFU uses up to 300).
        utility_sets: Sets model utility is computed over (TOFU: all three). A model trained from scratch
            knows no real authors or world facts, so for it those sets only pin the harmonic mean near 0.
        max_new_tokens: Greedy decoding length for ROUGE-L.
        eval_batch_size: Sequences per forward pass in evaluation.
        heldout_authors: Retain authors no model trains on and no evaluation asks about, taken from the end
            of the retain authors: their QA pairs are the held-out rows ``ready.cap=heldout`` measures the
            level of unseen answers on (0 = none).
    """

    forget: str = "forget01"
    retain_authors: int | None = 20
    tokenizer: str = "train:2000"
    max_len: int = 128
    prefix: str = "Question: "
    separator: str = "\nAnswer: "
    eval_rows: int | None = 40
    utility_sets: list[str] = field(default_factory=lambda: ["retain", "real_authors", "world_facts"])
    max_new_tokens: int = 48
    eval_batch_size: int = 16
    # Omitted from the config's dict while unset, so the cache keys of every run made before stay valid.
    heldout_authors: int = field(default=0, metadata=OMIT_UNSET)

    def __post_init__(self) -> None:
        check(self.forget in FORGET_SPLITS, f"tofu.forget must be one of {', '.join(FORGET_SPLITS)}")
        check(self.retain_authors is None or self.retain_authors > 0, "tofu.retain_authors must be > 0 or null")
        check(self.tokenizer.startswith("train:") or bool(self.tokenizer), "tofu.tokenizer must not be empty")
        if self.tokenizer.startswith("train:"):
            size = self.tokenizer.partition(":")[2]
            check(size.isdigit() and int(size) >= 300, f"tofu.tokenizer {self.tokenizer!r}: use train:N, N ≥ 300")
        check(self.max_len > 8 and self.max_new_tokens > 0 and self.eval_batch_size > 0, "tofu sizes must be > 0")
        check(self.eval_rows is None or self.eval_rows > 1, "tofu.eval_rows must be > 1 or null")
        check(self.heldout_authors >= 0, f"tofu.heldout_authors must be ≥ 0, got {self.heldout_authors}")
        known = ("retain", "real_authors", "world_facts")
        check(bool(self.utility_sets) and set(self.utility_sets) <= set(known),
              f"tofu.utility_sets must be a non-empty subset of {', '.join(known)}")  # fmt: skip

    @property
    def template(self) -> QATemplate:
        """The prompt template."""
        return QATemplate(self.prefix, self.separator)


def _default_train() -> TrainConfig:
    return from_dict(TrainConfig, {"data": {"name": "tofu"}, "model": {"name": "tiny_lm"}, "epochs": 30,
                                   "batch_size": 16, "optim": {"name": "adamw", "lr": 2e-3}})  # fmt: skip


def _default_ready() -> ReadyConfig:
    return from_dict(ReadyConfig, {"kind": "group", "group_column": "author", "method": {"name": "ga"}})


@dataclass
class LMBenchConfig:
    """A TOFU benchmark run.

    Attributes:
        tofu: Data subset, tokenizer and evaluation sizes.
        train: Fine-tuning of every model (``data`` must be ``tofu``; ``model`` a ``qa`` model).
        ready: The readiness term of the ready model (``kind: group`` over ``author`` by default).
        methods: Unlearning methods run on the standard and the ready model.
        stop: Stop rule and budget of every unlearning run.
        relearn: Relearning attack after unlearning (also on the retrained model: the floor).
        seeds: Seeds (model initialisation, data order, requests).
        baselines: Learning-time baselines trained beside the standard and ready models and unlearned with
            the same methods (NEFTune, down-weighting, DP-SGD; :mod:`ready2unlearn.recipes.lm_baselines`).
        mia: Run sequence membership inference (forget vs holdout authors).
        device: ``auto``, ``cpu``, ``cuda``...
        data_dir: Dataset folder (sets ``train.data.data_dir``; the same key every runner has).
    """

    tofu: TofuSetup = field(default_factory=TofuSetup)
    train: TrainConfig = field(default_factory=_default_train)
    ready: ReadyConfig = field(default_factory=_default_ready)
    methods: list[MethodConfig] = field(default_factory=lambda: [method_config({"name": n}) for n in
                                                                 ("ga", "grad_diff", "npo", "simnpo")])  # fmt: skip
    stop: StopConfig = field(default_factory=lambda: StopConfig(rule="forget_loss", target="reference",
                                                                max_steps=200, eval_every=5))  # fmt: skip
    relearn: RelearnConfig = field(default_factory=lambda: RelearnConfig(sets=["forget-10"], steps=20, eval_every=5))
    seeds: list[int] = field(default_factory=lambda: [0])
    baselines: LMBaselines | None = field(default=None, metadata=OMIT_UNSET)
    mia: bool = True
    device: str = "auto"
    data_dir: str | None = field(default=None, metadata=OMIT_UNSET)

    def __post_init__(self) -> None:
        # One place for each, as in every runner: the top-level keys, carried into the training config.
        if self.data_dir is not None:
            self.train.data = dataclasses.replace(self.train.data, data_dir=self.data_dir)
        if self.device != "auto":
            self.train.device = self.device
        check(self.train.data.name == "tofu", "lm bench: train.data.name must be tofu")
        check(self.train.ready is None, "lm bench: set readiness in the top-level `ready`, not train.ready")
        check(len(self.seeds) > 0 and len(self.methods) > 0, "lm bench: seeds and methods must not be empty")
        check(self.ready.kind != "class", "lm bench: class requests do not exist for QA data; use group or random")
        # Resolved here so the saved config names the knobs the ready model gets: a folder trained under other
        # shipped defaults is then a different config, never resumed as this one.
        self.ready = self.ready.resolved()
        check(self.ready.cap != "heldout" or self.tofu.heldout_authors > 0,
              "lm bench: ready.cap=heldout measures on held-out authors: set tofu.heldout_authors")  # fmt: skip


def load_lm_bench_config(preset: str, overrides: list[str] | tuple[str, ...] = ()) -> tuple[LMBenchConfig, str]:
    """Reads an ``lm_bench`` preset (or YAML file) and applies ``key=value`` overrides."""
    return load_preset(LMBenchConfig, "lm_bench", preset, overrides)


@dataclass
class _Data:
    """Everything encoded once per run."""

    tokenizer: Any
    train: ArrayDataset
    retain: ArrayDataset
    forget: ArrayDataset
    holdout: ArrayDataset
    holdout_rows: list[dict[str, Any]]
    eval_sets: dict[str, list[dict[str, Any]]]
    spec: DataSpec
    info: dict[str, Any]
    heldout: ArrayDataset | None = None  # `tofu.heldout_authors`' rows: seen by no model and no evaluation


def _spaced(rows: list[dict[str, Any]], n: int | None) -> list[dict[str, Any]]:
    """``n`` rows evenly spaced over ``rows`` (all when ``n`` is null or larger)."""
    if n is None or n >= len(rows):
        return rows
    return [rows[i] for i in np.linspace(0, len(rows) - 1, n).round().astype(int)]


def _all_texts(*sources: list[dict[str, Any]] | dict[str, list[dict[str, Any]]]) -> list[str]:
    """Every question and answer (paraphrased and perturbed ones too) in row lists or dicts of row lists."""
    rows: list[dict[str, Any]] = []
    for src in sources:
        for part in src.values() if isinstance(src, dict) else [src]:
            rows.extend(part)
    texts: list[str] = []
    for r in rows:
        texts += [r["question"], r["answer"], r.get("paraphrased_answer", ""), *r.get("perturbed_answer", [])]
    return [t for t in texts if t]


def _tokenizer(setup: TofuSetup, texts: list[str]) -> Any:
    if setup.tokenizer.startswith("train:"):
        return train_tokenizer(texts, int(setup.tokenizer.partition(":")[2]))
    return load_tokenizer(setup.tokenizer)


class LMBenchRunner:
    """Runs an :class:`LMBenchConfig` into ``out_dir``; finished models and cells are reused on re-runs.

    Args:
        cfg: The benchmark.
        out_dir: Where models, cells, results and the report go.
        preset: Name recorded in the results.
        show_progress: Progress bars.
        report: Renders the report from the results (default: ``report.md`` and its plots).
    """

    def __init__(self, cfg: LMBenchConfig, out_dir: str | Path, preset: str = "custom", show_progress: bool = True,
                 report: Report = write_lm_report) -> None:  # fmt: skip
        self.cfg = cfg
        self.out = Path(out_dir)
        self.preset = preset
        self.show_progress = show_progress
        self.report = report
        self.device = resolve_device(cfg.train.device)  # the top-level ``device``, carried in by the config
        self.task = CausalLMTask(eval_batch_size=cfg.tofu.eval_batch_size)
        self.cells = lm_cell_cache(self.out)

    # -- data ---------------------------------------------------------------------------------------------
    def load_data(self) -> _Data:
        """Loads TOFU, picks the training authors, trains or loads the tokenizer and encodes every split."""
        s = self.cfg.tofu
        root = data_root(self.cfg.train.data.data_dir)
        full, _, splits = load_tofu(root, self.cfg.train.data.verify)
        forget_ids = splits[s.forget]
        n_retain_authors = (len(full) - len(forget_ids)) // QA_PER_AUTHOR
        keep = n_retain_authors if s.retain_authors is None else min(s.retain_authors, n_retain_authors)
        # Held-out authors come from the end, away from the trained ones and from the first 20, whose questions
        # are the retain utility set.
        first_held = n_retain_authors - s.heldout_authors
        check(s.heldout_authors == 0 or first_held >= max(keep, 20),
              f"tofu.heldout_authors={s.heldout_authors} would overlap the {keep} trained retain authors or the 20 "
              f"the utility questions ask about (there are {n_retain_authors} retain authors)")  # fmt: skip
        retain_ids = np.arange(keep * QA_PER_AUTHOR)
        train_ids = np.concatenate([retain_ids, forget_ids])
        rows = full.subset(train_ids)
        holdout_rows = load_tofu_file(root, HOLDOUT[s.forget], self.cfg.train.data.verify)
        eval_sets = {"forget": load_tofu_file(root, f"{s.forget}_perturbed", self.cfg.train.data.verify)}
        for name in s.utility_sets:
            eval_sets[name] = _spaced(load_tofu_file(root, f"{name}_perturbed", self.cfg.train.data.verify),
                                      s.eval_rows)  # fmt: skip
        # A trained tokenizer plays the part of a pretrained one: it sees every text the run will score
        # (all of TOFU's authors, the holdout authors, the evaluation answers), so no model — standard or
        # retrained — and no MIA set is favoured by having "its" words in the vocabulary.
        tok = _tokenizer(s, _all_texts(full.rows, holdout_rows, eval_sets))
        train = qa_dataset(tok, rows.rows, rows.ids, rows.groups, s.template, s.max_len)
        hold_ids = np.arange(len(holdout_rows)) + 10_000  # ids outside full's, so no request can name them
        holdout = qa_dataset(tok, holdout_rows, hold_ids, {}, s.template, s.max_len)
        heldout = None
        if s.heldout_authors:
            held = full.subset(np.arange(first_held * QA_PER_AUTHOR, n_retain_authors * QA_PER_AUTHOR))
            heldout = qa_dataset(tok, held.rows, held.ids, held.groups, s.template, s.max_len)
        views = DeletionRequest.for_samples(forget_ids).resolve(train, holdout)
        spec = DataSpec("qa", (s.max_len,), 0, vocab_size=len(tok))
        truncated = int((train.y[:, -1] != -100).sum())
        info = {"train_rows": len(train), "retain_rows": len(views.retain), "forget_rows": len(views.forget),
                "holdout_rows": len(holdout), "retain_authors": keep, "vocab_size": len(tok),
                "heldout_rows": 0 if heldout is None else len(heldout),
                "answers_truncated": truncated, "eval_rows": {k: len(v) for k, v in eval_sets.items()},
                "fingerprints": {"train": train.fingerprint(), "holdout": holdout.fingerprint()}}  # fmt: skip
        return _Data(tok, train, views.retain, views.forget, holdout, holdout_rows, eval_sets, spec, info, heldout)

    # -- models -------------------------------------------------------------------------------------------
    def _model_dir(self, seed: int, name: str) -> Path:
        return self.out / "models" / f"seed{seed}" / name

    def build(self, data: _Data, seed: int) -> nn.Module:
        """The untrained model of ``seed`` (for LoRA: the pretrained base with fresh adapters), on the device."""
        seed_everything(seed)
        return build_model(self.cfg.train.model, data.spec).to(self.device)

    def trained_model(self, data: _Data, seed: int, name: str) -> tuple[nn.Module, dict[str, Any]]:
        """The ``standard``, ``ready`` or ``retrained`` model of ``seed`` (trained once, then loaded).

        Only trainable tensors are stored (for LoRA: the adapters), so a cached model is small and its
        frozen base is rebuilt from the pretrained checkpoint.
        """
        model = self.build(data, seed)
        folder = self._model_dir(seed, name)
        trainable = {k for k, p in model.named_parameters() if p.requires_grad}
        if (folder / "info.json").is_file():
            state = load_file(str(folder / "trainable.safetensors"), device=str(self.device))
            missing = trainable - set(state)
            check(not missing, f"{folder}: cached model lacks {sorted(missing)[:3]}; delete it to retrain")
            model.load_state_dict(state, strict=False)
            return model.eval(), json.loads((folder / "info.json").read_text(encoding="utf-8"))
        train = data.retain if name == "retrained" else data.train
        cfg = copy.deepcopy(self.cfg.train)
        cfg.seed = seed
        objective, baseline = None, None
        if name in BASELINES:
            revocable = torch.from_numpy(np.flatnonzero(np.isin(train.ids.numpy(), data.forget.ids.numpy())))
            baseline = train_baseline(name, model, train, revocable, cfg, self.cfg.baselines or LMBaselines(),
                                      self.task)  # fmt: skip
            result = baseline.pop("result")
        else:
            if name == "ready":
                objective = ReadinessObjective(self.cfg.ready, train, 0, seed, task=self.task, heldout=data.heldout)
            result = fit(model, train, None, cfg, task=self.task, regularizer=objective,
                         show_progress=self.show_progress)  # fmt: skip
        info = {"name": name, "seed": seed, "seconds": result.seconds, "metrics": result.metrics,
                "history": result.history, "trainable_parameters": count_parameters(model, True),
                "parameters": count_parameters(model), "train_rows": len(train),
                "readiness": objective.summary(train) if objective is not None else None,
                **({"baseline": baseline["settings"]} if baseline is not None else {})}  # fmt: skip
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k in trainable}
        atomic_write(folder / "trainable.safetensors", lambda p: save_file(state, str(p)))
        write_json(folder / "info.json", info)
        return model.eval(), info

    # -- evaluation ---------------------------------------------------------------------------------------
    def evaluate(self, model: nn.Module, data: _Data) -> dict[str, Any]:
        """TOFU metrics, answer losses and (optionally) sequence MIA of one model."""
        s = self.cfg.tofu
        out = tofu_eval(model, data.tokenizer, data.eval_sets, s.template, s.max_len, s.max_new_tokens,
                        s.eval_batch_size)  # fmt: skip
        for name, ds in (("forget", data.forget), ("retain", data.retain), ("holdout", data.holdout)):
            out[f"{name}_token_acc"], out[f"{name}_answer_loss"] = self.task.accuracy_and_loss(model, ds)
        if self.cfg.mia:
            out["mia_auc"] = sequence_mia_auc(model, data.tokenizer, data.eval_sets["forget"],
                                              data.holdout_rows, s.template, s.max_len,
                                              batch_size=s.eval_batch_size)  # fmt: skip
        return _slim(out)

    def _views(self, data: _Data) -> RequestViews:
        return DeletionRequest.for_samples(data.forget.ids.numpy()).resolve(data.train, data.holdout)

    def relearn_floor(self, data: _Data, retrained: nn.Module) -> dict[str, Any]:
        """The relearning attack on the retrained model: the floor an unlearned model is compared with.

        The retrained model never saw the forget authors, so how far the attack brings their held-out answers
        back on it is what fine-tuning on a few of their answers does to *any* model; an unlearned model that
        recovers no more than this has nothing extra left to recover (the attack fine-tunes a copy).
        """
        return relearn_attack(retrained, self._views(data), self.cfg.relearn, task=self.task)

    def unlearn_cell(self, data: _Data, base: nn.Module, base_name: str, mcfg: MethodConfig, seed: int,
                     target: float, retrained_eval: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
        """Unlearns the forget split from a copy of ``base`` with one method and scores the result."""
        model = copy.deepcopy(base)
        ucfg = UnlearnConfig(method=mcfg, stop=self.cfg.stop, seed=seed)
        method = build_method(mcfg, self.task)
        views = self._views(data)
        ctx = Context(self.task, torch.Generator().manual_seed(seed), self.device)
        res = unlearn_model(model, views, method, ucfg, ctx, reference_value=target, show_progress=self.show_progress)
        ev = self.evaluate(model, data)
        relearn = relearn_attack(model, views, self.cfg.relearn, task=self.task)
        return {"base": base_name, "method": mcfg.name, "seed": seed, "steps": res.steps,
                "seconds": res.seconds, "reached": res.reached, "stop_reason": res.stop_reason,
                "target": target, "curve": res.curve, "forget_quality": tofu_forget_quality(ev, retrained_eval),
                "eval": ev, "relearn": relearn}  # fmt: skip

    # -- steps: each computed once, its JSON kept under cells/ for re-runs and for split runs ----------------
    def model_step(self, data: _Data, seed: int, name: str) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
        """The model ``name`` of ``seed`` (trained or loaded), its ``info.json`` and its evaluation cell."""
        model, info = self.trained_model(data, seed, name)
        return model, info, self.cells.get(cell_key(seed, name, "eval"), None, lambda: self.evaluate(model, data))

    def floor_step(self, data: _Data, seed: int, retrained: nn.Module) -> dict[str, Any]:
        """The relearning floor of ``seed`` (:meth:`relearn_floor`) on its retrained model."""
        return self.cells.get(cell_key(seed, "retrained", "relearn"), None, lambda: self.relearn_floor(data, retrained))

    def cell_step(self, data: _Data, seed: int, base_name: str, base: nn.Module, mcfg: MethodConfig,
                  retrained_eval: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
        """One unlearning cell (:meth:`unlearn_cell`), stopped at the retrained model's forget answer loss."""
        target = retrained_eval["forget_answer_loss"]
        return self.cells.get(
            cell_key(seed, base_name, mcfg.name),
            None,
            lambda: self.unlearn_cell(data, base, base_name, mcfg, seed, target, retrained_eval),
        )

    # -- driver -------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Trains, unlearns, evaluates and writes ``results.json`` and ``report.md`` (+ plots)."""
        self.out.mkdir(parents=True, exist_ok=True)
        write_json(self.out / "bench_config.json", {"config": to_dict(self.cfg), "preset": self.preset})
        data = self.load_data()
        models: dict[str, Any] = {}
        cells: list[dict[str, Any]] = []
        # The models unlearning starts from: standard, ready, then each baseline switched on.
        bases = ["standard", "ready", *(self.cfg.baselines.names if self.cfg.baselines else [])]
        with progress_bar(self.show_progress) as bar:
            total = len(self.cfg.seeds) * (len(bases) + 1 + len(bases) * len(self.cfg.methods))
            job = bar.add_task("tofu bench", total=total)
            for seed in self.cfg.seeds:
                trained = {}
                for name in (*bases, "retrained"):
                    trained[name] = self.model_step(data, seed, name)
                    bar.update(job, advance=1)
                ref_eval = trained["retrained"][2]
                relearn = self.floor_step(data, seed, trained["retrained"][0])
                models[str(seed)] = seed_models({n: i for n, (_, i, _) in trained.items()},
                                                {n: e for n, (_, _, e) in trained.items()}, relearn)  # fmt: skip
                for base_name in bases:
                    for mcfg in self.cfg.methods:
                        cells.append(self.cell_step(data, seed, base_name, trained[base_name][0], mcfg, ref_eval))
                        bar.update(job, advance=1)
        return publish_lm(self.preset, to_dict(self.cfg), data.info, models, cells, self.out, self.report)


def cell_key(seed: int, model: str, what: str) -> str:
    """A TOFU bench cell's name: ``what`` (``eval``, ``relearn`` or a method) of ``model`` for ``seed``.

    Also the file stem under ``cells/``, which tools that read a run's cells directly rely on.
    """
    return f"seed{seed}-{model}-{what}"


def lm_cell_cache(root: str | Path, folder: str = "cells") -> CellCache:
    """The cells of a TOFU bench run under ``root/folder``, each named by its :func:`cell_key` alone.

    TOFU cells carry no config hash in their name (``cells/seed0-standard-ga.json``), as this runner always
    wrote them; ``folder=""`` reads cells copied straight into ``root`` (``split_seed.py merge``).
    """
    return CellCache(Path(root), folder, name=lambda key: key)


def seed_models(infos: dict[str, dict[str, Any]], evals: dict[str, dict[str, Any]],
                relearn: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """One seed's ``models`` record in the results: each model's info (without its loss history) and evaluation.

    Args:
        infos: Per model name (``standard``, ``ready``, ..., ``retrained``), its ``info.json``.
        evals: Per model name, its evaluation cell; every model's but the retrained one gains its TOFU forget
            quality against the retrained model's (in place, as the cells passed on to unlearning see it).
        relearn: The relearning attack on the retrained model (the floor), kept under ``retrained``.

    Returns:
        ``{name: {"info", "eval"}}``, the retrained model's with ``relearn`` too.
    """
    for name, ev in evals.items():
        if name != "retrained":
            ev["forget_quality"] = tofu_forget_quality(ev, evals["retrained"])
    out = {name: {"info": _info(infos[name]), "eval": ev} for name, ev in evals.items()}
    out["retrained"]["relearn"] = relearn
    return out


def publish_lm(preset: str, config: dict[str, Any], data_info: dict[str, Any], models: dict[str, Any],
               cells: list[dict[str, Any]], out_dir: Path,
               report: Report | None = write_lm_report) -> dict[str, Any]:  # fmt: skip
    """Assembles the results of a TOFU bench, summarises them and writes ``results.json`` and the report.

    Shared by :meth:`LMBenchRunner.run` and by tools that merge seeds run in separate folders
    (``benchmarks/tofu/split_seed.py``), so a merged report is the report one run would have written.
    """
    results = {"preset": preset, "config": config, "data": data_info, "models": models, "cells": cells,
               "versions": versions(), "created": now_iso()}  # fmt: skip
    results["summary"] = summarise_lm(results)
    return publish(results, out_dir, report)


def _slim(ev: dict[str, Any], examples: int = 3) -> dict[str, Any]:
    """Keeps the first few generated answers per set (examples for the report) and every number."""
    out = {}
    for k, v in ev.items():
        if isinstance(v, dict) and "generations" in v:
            v = {**v, "generations": v["generations"][:examples]}
        out[k] = v
    return out


def _info(info: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in info.items() if k != "history"}


def run_lm_bench(preset: str, out_dir: str | Path, overrides: list[str] | tuple[str, ...] = (),
                 show_progress: bool = True) -> dict[str, Any]:  # fmt: skip
    """Loads an ``lm_bench`` preset and runs it into ``out_dir`` (finished models and cells are reused).

    Raises:
        ConfigError: If ``out_dir`` holds a run of a different config.
    """
    cfg, path = load_lm_bench_config(preset, overrides)
    return run_resumable(LMBenchRunner, cfg, path, out_dir, show_progress)
