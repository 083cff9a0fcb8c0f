"""What readiness costs: bytes autograd keeps per training step, and the clock its time is measured on.

On a GPU, ``torch.cuda.max_memory_allocated`` answers this directly; on a CPU there is no allocator
counter, so we count what dominates training memory on either: the tensors autograd saves for backward
(activations, and for readiness the simulated parameter copies θ'_j and the inner graphs), deduplicated
by storage. Parameters and optimiser state are the same for standard and ready training and are reported
separately.
"""

from __future__ import annotations

import time
from collections.abc import Callable

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
