"""The dataset registry and :func:`load_split`, the one entry point recipes use to get data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ready2unlearn.config import OMIT_UNSET, check
from ready2unlearn.data import byo, text, tofu, vision
from ready2unlearn.data.base import ArrayDataset, Kind, Split, stratified_subset
from ready2unlearn.data.files import data_root, find_file
from ready2unlearn.errors import DataError
from ready2unlearn.registry import Registry


@dataclass
class DataConfig:
    """Which dataset to load and how to split it.

    Attributes:
        name: Registered dataset name (``r2u ls datasets``), or your own data as ``csv:PATH``,
            ``parquet:PATH``, ``npz:PATH``, ``imagefolder:DIR`` or ``hf:DIR`` (see
            :mod:`ready2unlearn.data.byo`); the path is made absolute, relative to the working directory.
        data_dir: Directory holding the dataset folders; default ``$R2U_DATA_DIR`` or ``../shared/data``.
        verify: Check file checksums against the shipped manifest.
        test_fraction: Held-out share, for datasets without an official test split (digits, sms_spam).
        split_seed: Seed of that split (kept apart from the training seed so seeds share one split).
        train_subset: Keep a class-balanced subset of this many training rows (quick runs); ``None`` = all.
        test_subset: Likewise for the test part.
        validation: Carve a class-balanced validation split of this many rows out of the training part (after
            ``train_subset``; seeded by ``split_seed``): rows no model trains on, for measurements that must not
            read the test part, such as ``ready.cap=heldout``. ``None`` = no validation split.
        tokenizer: Text data only: encode with this Hugging Face tokenizer (local directory or alias such as
            ``minilm``; extra ``hf``) instead of the built-in word vocabulary. Pair it with the same
            checkpoint in ``model.path``.
        max_len: Text data only: tokens per text (``null`` = the dataset's default).
        label_col: Your own data only: the label column (or npz key); default ``label`` (npz: ``labels``/``y``).
        id_col: Your own data only: a column of unique integer sample ids; default the row numbers.
        group_col: Your own data only: a column kept as a group, for ``group:COLUMN=VALUE`` requests.
    """

    name: str = "digits"
    data_dir: str | None = None
    verify: bool = True
    test_fraction: float = 0.2
    split_seed: int = 0
    train_subset: int | None = None
    test_subset: int | None = None
    tokenizer: str | None = None
    max_len: int | None = None
    label_col: str | None = field(default=None, metadata=OMIT_UNSET)
    id_col: str | None = field(default=None, metadata=OMIT_UNSET)
    group_col: str | None = field(default=None, metadata=OMIT_UNSET)
    # Omitted from the config's dict while unset, so the cache keys of every model trained before stay valid.
    validation: int | None = field(default=None, metadata=OMIT_UNSET)

    def __post_init__(self) -> None:
        if byo.is_byo(self.name):
            self.name = byo.normalize(self.name)  # unknown formats fail here, listing the known ones
        else:
            DATASETS.get(self.name)  # unknown names fail here, with a did-you-mean
            for key in ("label_col", "id_col", "group_col"):
                check(getattr(self, key) is None, f"data.{key} only applies to your own data (csv:PATH, "
                      f"parquet:PATH, npz:PATH, hf:DIR), not to the built-in dataset {self.name!r}")  # fmt: skip
        check(0.0 < self.test_fraction < 1.0, f"data.test_fraction must be in (0, 1), got {self.test_fraction}")
        for key in ("train_subset", "test_subset", "max_len", "validation"):
            v = getattr(self, key)
            check(v is None or v > 0, f"data.{key} must be a positive integer or null, got {v}")


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset.

    Attributes:
        name: Registry key.
        kind: ``image``, ``text`` or ``qa``.
        num_classes: Number of labels (0 for QA).
        summary: One line for ``r2u ls datasets``.
        probe: ``(relative file, folders)`` whose presence means the dataset is available; ``None`` = embedded.
        load: ``(root, config) -> Split`` for classification data.
    """

    name: str
    kind: Kind
    num_classes: int
    summary: str
    probe: tuple[str, tuple[str, ...]] | None
    load: Callable[[Path | None, DataConfig], Split] | None

    def location(self, data_dir: str | None = None) -> str:
        """Where the data would be read from: ``embedded``, a path, or ``missing``."""
        if self.probe is None:
            return "embedded (scikit-learn)"
        try:
            return str(find_file(data_root(data_dir), self.name, *self.probe).parent)
        except DataError:
            return "missing"


DATASETS: Registry[DatasetInfo] = Registry("dataset")


def _reg(info: DatasetInfo) -> None:
    DATASETS.register(info.name, info)


_reg(DatasetInfo(
    "digits", "image", 10, "scikit-learn 8x8 handwritten digits, 1,797 images (embedded, no files needed)",
    None, lambda root, c: vision.load_digits_split(c.test_fraction, c.split_seed),
))  # fmt: skip
_reg(DatasetInfo(
    "mnist", "image", 10, "MNIST 28x28 digits, 60k/10k, official IDX files",
    ("train-images-idx3-ubyte", ("mnist", "MNIST/raw")), lambda root, c: vision.load_mnist(root, c.verify),
))  # fmt: skip
_reg(DatasetInfo(
    "fashion_mnist", "image", 10, "Fashion-MNIST 28x28 clothing, 60k/10k, official IDX files",
    ("train-images-idx3-ubyte", ("fashion-mnist", "fashion_mnist", "FashionMNIST/raw")),
    lambda root, c: vision.load_fashion_mnist(root, c.verify),
))  # fmt: skip
_reg(DatasetInfo(
    "cifar10", "image", 10, "CIFAR-10 32x32 colour, binary layout; every data_batch_N.bin present + test",
    ("test_batch.bin", ("cifar10", "cifar-10-batches-bin")), lambda root, c: vision.load_cifar10(root, c.verify),
))  # fmt: skip
_reg(DatasetInfo(
    "ag_news", "text", 4, "AG News topics (world/sports/business/tech): train.csv + test.csv",
    ("train.csv", ("ag_news",)), lambda root, c: text.load_ag_news(root, c.verify, **text.options(c)),
))  # fmt: skip
_reg(DatasetInfo(
    "sms_spam", "text", 2, "SMS Spam Collection v.1, 5,574 messages (ham/spam)",
    ("SMSSpamCollection.tsv", ("sms_spam",)),
    lambda root, c: text.load_sms_spam(root, c.verify, c.test_fraction, c.split_seed, **text.options(c)),
))  # fmt: skip
_reg(DatasetInfo(
    "tofu", "qa", 0, "TOFU fictitious-author QA (4,000 pairs, forget01/05/10 splits) for language models",
    ("full.jsonl", ("tofu", "TOFU")), None,
))  # fmt: skip


def load_split(cfg: DataConfig) -> Split:
    """Loads the classification dataset ``cfg.name`` (registered, or your own file) with its train/test split.

    Raises:
        ConfigError: If your own data's format needs an optional library that is not installed.
        DataError: If files are missing, corrupt or malformed, or the dataset is not a classification dataset.
    """
    split = byo.load(cfg) if byo.is_byo(cfg.name) else _load_registered(cfg)
    train, test = split.train, split.test
    if cfg.train_subset is not None:
        train = train.subset(stratified_subset(train.labels, cfg.train_subset, cfg.split_seed))
    if cfg.test_subset is not None:
        test = test.subset(stratified_subset(test.labels, cfg.test_subset, cfg.split_seed))
    val = None
    if cfg.validation is not None:
        if cfg.validation >= len(train):
            raise DataError(f"{cfg.name}: data.validation={cfg.validation} rows would leave nothing to train on "
                            f"(the training part has {len(train)})")  # fmt: skip
        held = stratified_subset(train.labels, cfg.validation, cfg.split_seed)
        val = train.subset(held)
        train = train.subset(np.setdiff1d(np.arange(len(train)), held))
    _check_labels(cfg.name, train, split.spec.num_classes)
    meta = {**split.meta, "train_size": len(train), "test_size": len(test)}
    if val is not None:
        meta["validation_size"] = len(val)
    return Split(split.name, train, test, split.spec, meta, val)


def _load_registered(cfg: DataConfig) -> Split:
    info = DATASETS.get(cfg.name)
    if info.load is None:
        raise DataError(
            f"{cfg.name} is a {info.kind.upper()} dataset for language models; classification recipes "
            f"cannot train on it (load it with ready2unlearn.data.tofu.load_tofu)"
        )
    return info.load(data_root(cfg.data_dir) if info.probe else None, cfg)


def _check_labels(name: str, ds: ArrayDataset, num_classes: int) -> None:
    present = np.unique(ds.labels)
    if len(present) and (present.min() < 0 or present.max() >= num_classes):
        raise DataError(f"{name}: labels outside 0..{num_classes - 1}; the files are not this dataset")


def load_qa(cfg: DataConfig) -> tuple[tofu.QADataset, tofu.QADataset, dict[str, np.ndarray]]:
    """Loads a QA dataset (TOFU) as ``(train, test, named forget splits)``."""
    if cfg.name != "tofu":
        raise DataError(f"{cfg.name} is not a QA dataset; use load_split")
    return tofu.load_tofu(data_root(cfg.data_dir), cfg.verify)
