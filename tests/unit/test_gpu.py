"""The Python API on a CUDA model: training, unlearning, verification and retraining stay on the GPU and agree
with the CPU. Off by default (``pytest -m gpu``); skipped on machines without CUDA.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import ready2unlearn as r2u
from ready2unlearn import DataConfig, TrainConfig, fit, load_split

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def test_the_api_runs_on_the_gpu_and_agrees_with_the_cpu():
    split = load_split(DataConfig(name="digits"))
    cfg = TrainConfig(epochs=5)
    models = {}
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        models[device] = mlp().to(device)
        fit(models[device], split.train, split.test, cfg, show_progress=False)
    cpu, gpu = models["cpu"], models["cuda"]
    on_cpu = r2u.evaluate(cpu, split.train, split.test, "class:3", relearn=False)["summary"]
    on_gpu = r2u.evaluate(gpu, split.train, split.test, "class:3", relearn=False)["summary"]
    for key in ("UA", "RA", "TA"):  # same seed and batches; only the kernels' rounding differs
        assert on_gpu[key] == pytest.approx(on_cpu[key], abs=0.02)

    gold = r2u.retrain(lambda: mlp().cuda(), split.train, "class:3", cfg)
    assert next(gold.parameters()).is_cuda
    res = r2u.unlearn(gpu, split.train, "class:3", stop="forget_loss:reference", reference=gold, lr=1e-3,
                      budget=300)  # fmt: skip
    assert res.reached and next(gpu.parameters()).is_cuda
    out = r2u.evaluate(gpu, split.train, split.test, "class:3", reference=gold)
    assert out["summary"]["UA"] < 0.1 and out["summary"]["avg_gap"] < 0.1 and "relearn_reference" in out
