"""Image classification datasets: digits (embedded), MNIST, Fashion-MNIST, CIFAR-10 (binary layout).

Images become float32 ``[N, C, H, W]`` tensors standardised with the *training* part's mean and std (per
channel), which keeps every dataset on the same footing for the same optimiser settings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ready2unlearn.data.base import ArrayDataset, DataSpec, Split, standardize
from ready2unlearn.data.files import find_file, read_verified
from ready2unlearn.errors import DataError

FASHION_CLASSES = (
    "t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot",
)  # fmt: skip
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _image_split(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    class_names: tuple[str, ...],
    ids_train: np.ndarray | None = None,
    ids_test: np.ndarray | None = None,
    meta: dict | None = None,
) -> Split:
    """Builds a :class:`Split` from uint8/float ``[N, C, H, W]`` arrays."""
    xtr, xte = standardize(x_train.astype(np.float32), x_test.astype(np.float32), axis=(0, 2, 3))
    ids_train = np.arange(len(y_train)) if ids_train is None else ids_train
    ids_test = np.arange(len(y_test)) if ids_test is None else ids_test

    def ds(x: np.ndarray, y: np.ndarray, ids: np.ndarray) -> ArrayDataset:
        return ArrayDataset(torch.from_numpy(x), torch.as_tensor(y, dtype=torch.int64), torch.as_tensor(ids))

    spec = DataSpec("image", tuple(xtr.shape[1:]), len(class_names), class_names)
    return Split(name, ds(xtr, y_train, ids_train), ds(xte, y_test, ids_test), spec, meta or {})


def load_digits_split(test_fraction: float = 0.2, split_seed: int = 0) -> Split:
    """scikit-learn's bundled 8×8 digits (1,797 images), stratified train/test split.

    Sample ids are row indices in ``sklearn.datasets.load_digits()``, so they are stable across splits.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = d.images.astype(np.float32)[:, None] / 16.0  # [1797, 1, 8, 8], pixel values 0..16
    y = d.target.astype(np.int64)
    idx_tr, idx_te = train_test_split(np.arange(len(y)), test_size=test_fraction, stratify=y, random_state=split_seed)
    idx_tr, idx_te = np.sort(idx_tr), np.sort(idx_te)
    meta = {"source": "sklearn.datasets.load_digits", "test_fraction": test_fraction, "split_seed": split_seed}
    return _image_split(
        "digits", x[idx_tr], y[idx_tr], x[idx_te], y[idx_te], tuple(str(i) for i in range(10)),
        ids_train=idx_tr, ids_test=idx_te, meta=meta,
    )  # fmt: skip


def _read_idx(path: Path, dataset: str, key: str, verify: bool, ndim: int) -> np.ndarray:
    """Parses an IDX file (magic ``0x0000 08 ndim``, big-endian dims, uint8 payload)."""
    data = read_verified(path, dataset, key, verify)
    header = 4 + 4 * ndim
    if len(data) < header or data[:3] != b"\x00\x00\x08" or data[3] != ndim:
        raise DataError(f"{dataset}: file {str(path)!r} is not an IDX{ndim} uint8 file; replace it")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    arr = np.frombuffer(data, np.uint8, offset=header)
    if arr.size != int(np.prod(dims)):
        raise DataError(f"{dataset}: file {str(path)!r} is truncated ({arr.size} of {np.prod(dims)} values)")
    return arr.reshape(dims)


def _load_idx_dataset(
    name: str, root: Path | None, dirs: tuple[str, ...], key_dir: str, class_names: tuple[str, ...], verify: bool
) -> Split:
    parts = {}
    files = {}
    for part, prefix in (("train", "train"), ("test", "t10k")):
        img_rel, lab_rel = f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"
        img_path = find_file(root, name, img_rel, dirs)
        lab_path = find_file(root, name, lab_rel, dirs)
        x = _read_idx(img_path, name, f"{key_dir}/{img_rel}", verify, ndim=3)
        y = _read_idx(lab_path, name, f"{key_dir}/{lab_rel}", verify, ndim=1)
        if len(x) != len(y) or y.max() >= len(class_names):
            raise DataError(f"{name}: {img_path.name} and {lab_path.name} do not belong together; replace them")
        parts[part] = (x[:, None].astype(np.float32) / 255.0, y.astype(np.int64))
        files[part] = [str(img_path), str(lab_path)]
    meta = {"files": files, "verified": verify}
    return _image_split(name, *parts["train"], *parts["test"], class_names, meta=meta)


def load_mnist(root: Path | None, verify: bool = True) -> Split:
    """MNIST from the four official IDX files (60k train / 10k test)."""
    return _load_idx_dataset(
        "mnist", root, ("mnist", "MNIST/raw", "MNIST"), "mnist", tuple(str(i) for i in range(10)), verify
    )


def load_fashion_mnist(root: Path | None, verify: bool = True) -> Split:
    """Fashion-MNIST from the four official IDX files (60k train / 10k test)."""
    dirs = ("fashion-mnist", "fashion_mnist", "FashionMNIST/raw", "FashionMNIST")
    return _load_idx_dataset("fashion_mnist", root, dirs, "fashion-mnist", FASHION_CLASSES, verify)


_CIFAR_DIRS = ("cifar10", "cifar-10-batches-bin", "cifar10/cifar-10-batches-bin")
_CIFAR_RECORD = 1 + 3 * 32 * 32


def _read_cifar_batch(path: Path, verify: bool) -> tuple[np.ndarray, np.ndarray]:
    key = f"cifar10/{path.name.removesuffix('.gz')}"
    data = read_verified(path, "cifar10", key, verify)
    if len(data) == 0 or len(data) % _CIFAR_RECORD:
        raise DataError(f"cifar10: file {str(path)!r} is not in the CIFAR-10 binary layout (truncated?); replace it")
    rec = np.frombuffer(data, np.uint8).reshape(-1, _CIFAR_RECORD)
    y = rec[:, 0].astype(np.int64)
    if y.max() > 9:
        raise DataError(f"cifar10: file {str(path)!r} has labels above 9: not a CIFAR-10 binary batch")
    return rec[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0, y


def load_cifar10(root: Path | None, verify: bool = True) -> Split:
    """CIFAR-10 in the official *binary* layout (``data_batch_{1..5}.bin``, ``test_batch.bin``).

    Every training batch present is used (the data kit holds batch 1 only; a full download holds five).
    Sample ids are global positions ``(batch - 1) * 10000 + row``, so they stay stable when more batches
    are added. The pickled "python version" is deliberately not read: unpickling runs arbitrary code.
    """
    test_path = find_file(root, "cifar10", "test_batch.bin", _CIFAR_DIRS)
    xs, ys, ids, used = [], [], [], []
    for b in range(1, 6):
        try:
            p = find_file(root, "cifar10", f"data_batch_{b}.bin", _CIFAR_DIRS)
        except DataError:
            continue
        x, y = _read_cifar_batch(p, verify)
        xs.append(x)
        ys.append(y)
        ids.append((b - 1) * 10000 + np.arange(len(y)))
        used.append(str(p))
    if not xs:
        find_file(root, "cifar10", "data_batch_1.bin", _CIFAR_DIRS)  # raises the standard message
    x_te, y_te = _read_cifar_batch(test_path, verify)
    meta = {"files": {"train": used, "test": [str(test_path)]}, "verified": verify}
    return _image_split(
        "cifar10", np.concatenate(xs), np.concatenate(ys), x_te, y_te, CIFAR10_CLASSES,
        ids_train=np.concatenate(ids), meta=meta,
    )  # fmt: skip
