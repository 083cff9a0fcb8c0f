"""What readiness costs: the memory of one training step, and the clock its time is measured on.

Two memory measures:

- :func:`peak_allocated_bytes`, the true peak of what a step allocates on top of what was live before it:
  ``torch.cuda.max_memory_allocated`` on a GPU; on a CPU, which has no allocator counter, the PyTorch
  profiler's allocation records (``profile_memory=True``), each of which carries the running total.
- :func:`saved_tensor_bytes`, what autograd saves for backward (activations, and for readiness the simulated
  parameter copies θ'_j and the inner graphs), deduplicated by storage: an upper bound that keeps every saved
  tensor alive, kept for comparison with earlier reports.

Parameters and optimiser state are the same for standard and ready training and are reported separately.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn


def saved_tensor_bytes(step: Callable[[], torch.Tensor]) -> int:
    """Bytes of distinct storages autograd saves while ``step()`` builds its loss (the loss is backpropagated).

    Every storage saved during the step counts once, including those of a graph freed before the step ends
    (the readiness inner step's): an upper bound on the peak. Storages are told apart by address, so each is
    kept alive until the count is done; otherwise a freed one's address could be reused and two merge.

    A saved tensor counts with its whole storage, so give ``step`` a batch that owns its storage (indexed or
    cloned): a slice ``data.x[:64]`` of the training set would count the whole training set.
    """
    storages: dict[int, int] = {}
    alive: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        storages[s.data_ptr()] = max(storages.get(s.data_ptr(), 0), s.nbytes())
        alive.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = step()
    loss.backward()
    total = sum(storages.values())
    alive.clear()
    return total


def peak_allocated_bytes(step: Callable[[], torch.Tensor], device: torch.device | str = "cpu") -> int | None:
    """Peak bytes allocated while ``step()`` builds its loss and the loss is backpropagated, above the start.

    Unlike :func:`saved_tensor_bytes` this is a real peak: a graph freed halfway through the step (the
    readiness inner step's) gives its memory back. What was live before the step (parameters, data, earlier
    gradients) is not counted; gradients the backward pass allocates are, so clear them
    (``model.zero_grad(set_to_none=True)``) before comparing steps. On a CPU, a block allocated before the step
    and freed during it is not subtracted (the profiler never saw its size), so there the peak can only err high.

    Returns:
        The peak in bytes, or ``None`` where this PyTorch build's profiler exposes no allocation records.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step().backward()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - start)
    from torch.profiler import ProfilerActivity, profile

    # Kineto prints a start and a stop line per profiling session unless told otherwise; it reads this when the
    # first session starts, and a user's own setting wins.
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")

    # With profile_memory the CPU allocator reports every allocation and free made while profiling, each with
    # a running total of live bytes. That total carries over from earlier profiling sessions (blocks freed
    # unprofiled are never subtracted), so the step's peak is measured from the total before its first record.
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step().backward()
    try:  # the event tree is the profiler's only route to the per-allocation totals; it is marked experimental
        roots = prof.profiler.kineto_results.experimental_event_tree()  # type: ignore[union-attr]
    except AttributeError:
        return None
    records, stack = [], list(roots)
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        fields = node.extra_fields
        if hasattr(fields, "total_allocated") and torch.device(fields.device).type == "cpu":
            records.append((node.start_time_ns, int(fields.alloc_size), int(fields.total_allocated)))
    if not records:
        return 0
    records.sort()
    start = records[0][2] - records[0][1]
    return max(0, max(total for _, _, total in records) - start)


def step_memory(model: nn.Module, steps: Mapping[str, Callable[[], torch.Tensor]], device: torch.device | str = "cpu",
                saved: bool = True) -> dict[str, Any]:  # fmt: skip
    """Both memory measures of each named step of ``model``, every one from cleared gradients.

    Args:
        model: The model the steps train; its gradients are cleared before each measurement and after the last.
        steps: Name → a function that builds the step's loss (it is backpropagated here).
        device: Where the steps run.
        saved: Also count autograd's saved bytes (:func:`saved_tensor_bytes`). That bound keeps every saved
            tensor alive, which on a large model can need far more memory than the step itself.

    Returns:
        ``{"peak": {name: bytes or None}, "saved": {name: bytes} or None}``.
    """
    peak: dict[str, int | None] = {}
    kept: dict[str, int] | None = {} if saved else None
    for name, step in steps.items():
        model.zero_grad(set_to_none=True)
        peak[name] = peak_allocated_bytes(step, device)
        if kept is not None:
            kept[name] = saved_tensor_bytes(step)
    model.zero_grad(set_to_none=True)
    return {"peak": peak, "saved": kept}


def state_bytes(model: nn.Module) -> int:
    """Bytes of the model's parameters and buffers."""
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


def probe_clock(device: torch.device) -> Callable[[], float]:
    """The probes' clock: this process's CPU time on a CPU, synchronised wall-clock on a GPU.

    Other processes' load does not inflate CPU time; on a GPU it would miss the kernels.
    """
    if device.type != "cuda":
        return time.process_time

    def wall() -> float:
        torch.cuda.synchronize(device)
        return time.perf_counter()

    return wall
