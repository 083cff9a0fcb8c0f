"""Shared fixtures: tiny in-memory datasets and the shared data kit location."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from ready2unlearn.data.base import ArrayDataset, DataSpec, Split

# Tests never touch the network: Hugging Face libraries must find everything locally or fail.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

KIT = Path(__file__).resolve().parents[1].parent / "shared" / "data"


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_script(relative: str) -> ModuleType:
    """A benchmark script (``benchmarks/<relative>``) imported as a module, so its functions can be tested."""
    path = BENCHMARKS / relative
    spec = importlib.util.spec_from_file_location(path.stem + "_under_test", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


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


# -- the shared toy unlearning problem: 4 Gaussian blobs, a small MLP, class 1 to forget ---------------------
TOY_SPEC = DataSpec("image", (1, 1, 8), 4)


def toy_train_config():
    from ready2unlearn.config import from_dict
    from ready2unlearn.recipes.train import TrainConfig

    return from_dict(TrainConfig, {"epochs": 8, "batch_size": 32, "optim": {"lr": 0.01}, "seed": 0})


def toy_model():
    """A freshly initialised (seed 0) MLP for the toy problem; also the retrain model factory."""
    from ready2unlearn.models import build_model

    torch.manual_seed(0)
    return build_model({"name": "mlp", "hidden": [32]}, TOY_SPEC)


def toy_ctx(seed: int = 0):
    """An unlearning context on the CPU whose retrain rebuilds :func:`toy_model`."""
    from ready2unlearn.config import to_dict
    from ready2unlearn.unlearn import ClassificationTask, Context

    return Context(ClassificationTask(4), torch.Generator().manual_seed(seed), torch.device("cpu"),
                   train_config=to_dict(toy_train_config()), model_factory=toy_model)  # fmt: skip


@pytest.fixture(scope="module")
def toy():
    """``(trained model, train, test, class-1 views)``, trained once per test module."""
    from ready2unlearn.data import DeletionRequest
    from ready2unlearn.engine.fit import fit

    train, test = make_blobs(240, seed=0), make_blobs(80, seed=1)
    model = toy_model()
    fit(model, train, test, toy_train_config(), show_progress=False)
    return model, train, test, DeletionRequest.for_classes(1).resolve(train, test, 4)


def train_digits(out: Path, epochs: int, hidden: int) -> Path:
    """Trains the digits-mlp preset (quick settings) into checkpoint directory ``out``."""
    from ready2unlearn.recipes import train as train_recipe

    cfg, _ = train_recipe.load_config("digits-mlp", [f"epochs={epochs}", f"model.hidden=[{hidden}]"])
    train_recipe.run(cfg, out, show_progress=False)
    return out


@pytest.fixture(scope="module")
def digits_ckpt(tmp_path_factory) -> Path:
    """A small trained digits checkpoint, one per test module (modules that need another size override it)."""
    return train_digits(tmp_path_factory.mktemp("ckpt") / "digits", epochs=3, hidden=32)
