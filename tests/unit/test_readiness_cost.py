"""readiness/cost.py: the true peak a training step allocates, against the saved-tensor upper bound."""

from __future__ import annotations

import pytest
import torch

from ready2unlearn.readiness import ReadinessObjective, ReadyConfig
from ready2unlearn.readiness.cost import peak_allocated_bytes, saved_tensor_bytes
from tests.conftest import make_blobs, toy_model

MiB = 2**20


def test_peak_is_the_largest_moment_not_the_sum():
    """Two 4 MiB temporaries, the first freed before the second exists: the peak holds one, not two."""
    w = torch.zeros(1, requires_grad=True)

    def step() -> torch.Tensor:
        for _ in range(2):
            tmp = torch.ones(MiB)  # 4 MiB of float32, freed by the del before the next one exists
            del tmp
        return (w * 2).sum()

    peak = peak_allocated_bytes(step)
    assert peak is not None
    assert 4 * MiB <= peak < 5 * MiB


def test_peak_counts_from_the_start_of_each_step():
    """The profiler's running total carries over between sessions; repeated measurements must not drift."""
    model = torch.nn.Linear(256, 256)
    x = torch.randn(64, 256)
    peaks = []
    for _ in range(3):
        model.zero_grad(set_to_none=True)  # gradients freed outside profiling never leave the running total
        peaks.append(peak_allocated_bytes(lambda: model(x).square().mean()))
    assert peaks[0] is not None and peaks[0] > 0
    assert peaks == [peaks[0]] * 3
    # The step's own gradients are part of its peak: weight and bias grads alone are this large.
    assert peaks[0] >= sum(p.numel() * p.element_size() for p in model.parameters())


def test_ready_step_peaks_above_plain_and_below_the_saved_bound():
    train = make_blobs(240, seed=0)
    model = toy_model()
    x, y = train.x[:32].clone(), train.y[:32].clone()
    obj = ReadinessObjective(ReadyConfig(alpha=0.01), train, 4, seed=0)

    def plain() -> torch.Tensor:
        return torch.nn.functional.cross_entropy(model(x), y)

    def ready() -> torch.Tensor:
        return plain() + obj(model, 0, 0)[0]

    model.zero_grad(set_to_none=True)
    plain_peak = peak_allocated_bytes(plain)
    model.zero_grad(set_to_none=True)
    ready_peak = peak_allocated_bytes(ready)
    assert plain_peak is not None and ready_peak is not None
    assert ready_peak > plain_peak > 0
    # The inner step's graph is freed before the outer backward ends, so the true peak of the ready step stays
    # under the bound that keeps every saved tensor, give or take a few parameter-sized buffers that bound leaves
    # out (the gradients, the simulated parameters θ').
    grads = sum(p.numel() * p.element_size() for p in model.parameters())
    model.zero_grad(set_to_none=True)
    assert ready_peak <= saved_tensor_bytes(ready) + 4 * grads


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_peak_on_a_gpu_reads_the_allocator():
    w = torch.zeros(1, device="cuda", requires_grad=True)

    def step() -> torch.Tensor:
        tmp = torch.ones(MiB, device="cuda")  # 4 MiB
        return (w * 2).sum() + tmp.sum() * 0

    peak = peak_allocated_bytes(step, "cuda")
    assert peak is not None and peak >= 4 * MiB
