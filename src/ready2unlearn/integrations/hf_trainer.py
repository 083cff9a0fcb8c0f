"""Readiness training inside a Hugging Face ``Trainer`` script (extra ``hf``).

Users with an existing Transformers training script swap ``Trainer`` for :class:`ReadyTrainer` and pass a
:class:`~ready2unlearn.readiness.ReadyConfig`; everything else (``TrainingArguments``, data collator,
callbacks, ``accelerate launch`` for several GPUs or machines) stays theirs::

    from ready2unlearn.integrations.hf_trainer import ReadyTrainer
    from ready2unlearn.readiness import ReadyConfig

    trainer = ReadyTrainer(model=model, args=args, train_dataset=train_ds, data_collator=collator,
                           ready=ReadyConfig(kind="random", method={"name": "ga"}))
    trainer.train()

The Trainer runs on Accelerate, so the same script uses one CPU, several GPUs (DDP) or several machines;
the readiness term is computed on the unwrapped module and its gradient reaches the same parameters the
task loss updates (with LoRA only the adapters, via ``functional_call(strict=False)``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from transformers import Trainer

from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.data.lm import IGNORE
from ready2unlearn.readiness.config import ReadyConfig
from ready2unlearn.readiness.objective import ReadinessObjective
from ready2unlearn.task import CausalLMTask, ClassificationTask, Task


def array_dataset(
    rows: Sequence[Mapping[str, Any]], pad_token_id: int, group_column: str | None = None
) -> tuple[ArrayDataset, Task]:
    """Packs tokenised Trainer rows into an :class:`ArrayDataset` and the matching task.

    Rows with ``labels`` of the same length as ``input_ids`` are causal-LM rows (−100 = not scored); rows with
    an integer ``label``/``labels`` are classification rows. Sequences are right-padded to the longest.

    Raises:
        ValueError: If the rows have no ``input_ids`` or labels.
    """
    if not rows or "input_ids" not in rows[0]:
        raise ValueError("readiness needs tokenised rows with 'input_ids' (tokenise the dataset first)")
    key = "labels" if "labels" in rows[0] else "label" if "label" in rows[0] else None
    if key is None:
        raise ValueError("readiness needs rows with 'labels' (causal LM) or 'label' (classification)")
    width = max(len(r["input_ids"]) for r in rows)
    x = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    for i, r in enumerate(rows):
        x[i, : len(r["input_ids"])] = torch.as_tensor(r["input_ids"])
    sequence_labels = np.ndim(rows[0][key]) == 1
    if sequence_labels:
        y = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        for i, r in enumerate(rows):
            y[i, : len(r[key])] = torch.as_tensor(r[key])
        task: Task = CausalLMTask()
    else:
        y = torch.as_tensor([int(r[key]) for r in rows], dtype=torch.long)
        task = ClassificationTask(int(y.max()) + 1)
    groups = {group_column: np.asarray([r[group_column] for r in rows])} if group_column else {}
    return ArrayDataset(x, y, torch.arange(len(rows)), groups), task


class ReadyTrainer(Trainer):
    """A ``transformers.Trainer`` that adds Ready2Unlearn's readiness term to every training step's loss.

    Args:
        *args: Passed to ``Trainer``.
        ready: Readiness settings (method that will serve requests, request kind, λ, α...).
        ready_data: The rows requests are simulated from; default the ``train_dataset`` (tokenised rows
            with ``input_ids`` and ``labels``/``label``).
        ready_task: How the model is scored; inferred from the rows when not given.
        ready_heldout: Rows the model does not train on, for ``ready.cap=heldout`` (and ``auto``, the group
            default, which measures the cap on them when there are any); default the ``eval_dataset``
            (tokenised like ``train_dataset``).
        **kwargs: Passed to ``Trainer``.
    """

    def __init__(
        self,
        *args: Any,
        ready: ReadyConfig,
        ready_data: ArrayDataset | None = None,
        ready_task: Task | None = None,
        ready_heldout: ArrayDataset | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        pad = getattr(self.processing_class, "pad_token_id", None) or 0
        if ready_data is None:
            ready_data, inferred = array_dataset(list(self.train_dataset), pad, ready.group_column)  # type: ignore[arg-type]
            ready_task = ready_task or inferred
        task = ready_task or CausalLMTask()
        if (
            ready_heldout is None
            and ready.resolved().cap in ("heldout", "auto")
            and self.eval_dataset is not None
            and not isinstance(self.eval_dataset, Mapping)
        ):  # one eval set (a dict of them is ambiguous)
            ready_heldout, _ = array_dataset(list(self.eval_dataset), pad)  # type: ignore[arg-type]
        self.ready_data = ready_data
        device = self.args.device
        self.readiness = ReadinessObjective(
            ready,
            ready_data.to(device),
            getattr(task, "num_classes", 0),
            self.args.seed,
            task=task,
            heldout=None if ready_heldout is None else ready_heldout.to(device),
        )
        self.readiness_parts: dict[str, float] = {}

    def readiness_summary(self) -> dict[str, Any]:
        """What readiness did so far: meta-steps, mean of each term, the resolved knobs, the revocable set."""
        return self.readiness.summary(self.ready_data)

    def compute_loss(
        self, model: torch.nn.Module, inputs: dict[str, Any], return_outputs: bool = False, **kwargs: Any
    ) -> Any:
        """The Trainer's task loss plus ``λ · L_ready`` on training steps."""
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, **kwargs)
        if model.training:
            module = self.accelerator.unwrap_model(model)
            extra, parts = self.readiness(module, self.state.global_step, int(self.state.epoch or 0))
            if extra is not None:
                loss = loss + extra
                self.readiness_parts = parts
        return (loss, outputs) if return_outputs else loss
