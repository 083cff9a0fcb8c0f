"""Shared fixtures: tiny in-memory datasets and the shared data kit location."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ready2unlearn.data.base import ArrayDataset, DataSpec, Split

KIT = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def kit_available(*parts: str) -> bool:
    return (KIT.joinpath(*parts)).exists()


requires_kit = pytest.mark.skipif(not kit_available("mnist"), reason="../shared/data (the data kit) is not present")


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """The test models are tiny: extra intra-op threads only spin, and crawl on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def kit_dir() -> Path:
    if not KIT.is_dir():
        pytest.skip("../shared/data is not present")
    return KIT


def make_blobs(n: int = 240, classes: int = 4, dim: int = 8, seed: int = 0) -> ArrayDataset:
    """Linearly separable Gaussian blobs, ids offset by 1000 to catch id/position mix-ups."""
    g = np.random.default_rng(seed)
    y = np.arange(n) % classes
    centers = g.normal(0, 3, size=(classes, dim))
    x = centers[y] + g.normal(0, 1, size=(n, dim))
    return ArrayDataset(
        torch.tensor(x, dtype=torch.float32).view(n, 1, 1, dim),
        torch.tensor(y),
        torch.arange(1000, 1000 + n),
        {"user": np.arange(n) // 10},
    )


@pytest.fixture
def blobs_split() -> Split:
    train, test = make_blobs(240, seed=0), make_blobs(80, seed=0)
    test = ArrayDataset(test.x, test.y, torch.arange(len(test)), {"user": np.full(len(test), 999)})
    spec = DataSpec("image", (1, 1, 8), 4, ("a", "b", "c", "d"))
    return Split("blobs", train, test, spec, {})
