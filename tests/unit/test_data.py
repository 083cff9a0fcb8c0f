import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ready2unlearn.data import DATASETS, DataConfig, load_qa, load_split
from ready2unlearn.data.augment import crop_flip
from ready2unlearn.data.files import data_root, manifest
from ready2unlearn.data.request import DeletionRequest
from ready2unlearn.data.text import PAD, UNK, build_vocab, encode, tokenize
from ready2unlearn.errors import ConfigError, DataError

from ..conftest import requires_kit


def test_registry_lists_every_dataset_of_the_kit():
    assert set(DATASETS.names()) >= {"digits", "mnist", "fashion_mnist", "cifar10", "ag_news", "sms_spam", "tofu"}
    with pytest.raises(ConfigError, match="unknown dataset"):
        DataConfig(name="imagenet")


def test_digits_split_is_deterministic_stratified_and_disjoint():
    a = load_split(DataConfig(name="digits"))
    b = load_split(DataConfig(name="digits"))
    assert a.fingerprints() == b.fingerprints()
    assert len(a.train) == 1437 and len(a.test) == 360
    assert a.train.x.shape[1:] == (1, 8, 8) and a.train.x.dtype == torch.float32
    assert set(a.train.ids.tolist()).isdisjoint(a.test.ids.tolist())
    counts = np.bincount(a.test.labels, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified
    c = load_split(DataConfig(name="digits", split_seed=1))
    assert c.fingerprints() != a.fingerprints()
    # standardised with train statistics
    assert abs(a.train.x.mean().item()) < 1e-4 and abs(a.train.x.std().item() - 1) < 1e-2


def test_subsets_are_class_balanced_and_deterministic():
    s = load_split(DataConfig(name="digits", train_subset=200, test_subset=50))
    assert len(s.train) == 200 and len(s.test) == 50
    assert np.bincount(s.train.labels).min() >= 19
    assert s.fingerprints() == load_split(DataConfig(name="digits", train_subset=200, test_subset=50)).fingerprints()


def test_validation_rows_are_carved_out_of_the_training_part():
    full = load_split(DataConfig(name="digits", train_subset=400))
    s = load_split(DataConfig(name="digits", train_subset=400, validation=100))
    assert len(s.train) == 300 and s.val is not None and len(s.val) == 100 and s.meta["validation_size"] == 100
    assert set(s.train.ids.tolist()).isdisjoint(s.val.ids.tolist())
    assert set(s.train.ids.tolist()) | set(s.val.ids.tolist()) == set(full.train.ids.tolist())
    assert np.bincount(s.val.labels).min() >= 9  # class-balanced
    assert s.fingerprints()["test"] == full.fingerprints()["test"] and "val" in s.fingerprints()
    assert full.val is None and "val" not in full.fingerprints()
    assert s.fingerprints() == load_split(DataConfig(name="digits", train_subset=400, validation=100)).fingerprints()
    with pytest.raises(DataError, match="nothing to train on"):
        load_split(DataConfig(name="digits", train_subset=400, validation=400))
    with pytest.raises(ConfigError, match=r"data\.validation"):
        DataConfig(name="digits", validation=0)


def test_batches_cover_everything_once_and_shuffle_is_seeded(blobs_split):
    ds = blobs_split.train
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    ys1 = torch.cat([y for _, y in ds.batches(50, shuffle=True, generator=g1)])
    ys2 = torch.cat([y for _, y in ds.batches(50, shuffle=True, generator=g2)])
    assert torch.equal(ys1, ys2) and len(ys1) == len(ds)
    assert sorted(ys1.tolist()) == sorted(ds.y.tolist())


def test_text_tokenizer_vocab_and_padding():
    assert tokenize("Hello, World! it's 2024") == ["hello", "world", "it's", "2024"]
    vocab = build_vocab(["b a a", "c a b"], max_size=4)
    assert vocab == {"a": 2, "b": 3}  # most frequent first, alphabetical ties, capped at max_size
    ids = encode(["a b zzz", ""], vocab, max_len=4)
    assert ids.tolist() == [[2, 3, UNK, PAD], [PAD] * 4]


def test_crop_flip_keeps_shape_and_is_seeded():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    a = crop_flip(x, torch.Generator().manual_seed(0), pad=1)
    b = crop_flip(x, torch.Generator().manual_seed(0), pad=1)
    assert a.shape == x.shape and torch.equal(a, b)
    assert torch.equal(crop_flip(x, torch.Generator().manual_seed(0), pad=0).sort(-1).values, x.sort(-1).values)


def test_manifest_covers_every_kit_file():
    m = manifest()
    for key in (
        "mnist/train-images-idx3-ubyte",
        "fashion-mnist/t10k-labels-idx1-ubyte",
        "cifar10/data_batch_1.bin",
        "ag_news/train.csv",
        "tofu/full.jsonl",
    ):
        assert len(m[key]["sha256"]) == 64


def test_data_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("R2U_DATA_DIR", str(tmp_path))
    assert data_root() == tmp_path.resolve()
    other = tmp_path / "other"
    other.mkdir()
    assert data_root(str(other)) == other.resolve()
    with pytest.raises(DataError, match="does not exist"):
        data_root(str(tmp_path / "nope"))


def test_missing_file_gives_one_line_naming_file(tmp_path):
    with pytest.raises(DataError) as e:
        load_split(DataConfig(name="mnist", data_dir=str(tmp_path)))
    msg = str(e.value)
    assert "train-images-idx3-ubyte" in msg and "--data-dir" in msg and "\n" not in msg


def test_tofu_is_not_a_classification_dataset():
    with pytest.raises(DataError, match="language models"):
        load_split(DataConfig(name="tofu"))


def _copy_mnist(kit: Path, dst: Path) -> Path:
    d = dst / "mnist"
    d.mkdir(parents=True)
    for f in (kit / "mnist").glob("*idx*"):
        shutil.copy(f, d / f.name)
    return d


@requires_kit
def test_mnist_loads_complete_and_matches_official_counts(kit_dir):
    s = load_split(DataConfig(name="mnist", data_dir=str(kit_dir)))
    assert s.train.x.shape == (60000, 1, 28, 28) and s.test.x.shape == (10000, 1, 28, 28)
    assert np.bincount(s.test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert s.meta["verified"] is True


@requires_kit
def test_corrupt_and_truncated_files_are_detected(kit_dir, tmp_path):
    d = _copy_mnist(kit_dir, tmp_path)
    labels = d / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(labels.read_bytes()))
    raw[100] ^= 1  # one flipped label
    labels.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz.*sha256"):
        load_split(DataConfig(name="mnist", data_dir=str(tmp_path)))
    # verify=False skips the checksum, but structural checks still run
    load_split(DataConfig(name="mnist", data_dir=str(tmp_path), verify=False))
    labels.write_bytes(labels.read_bytes()[:50])  # truncated gzip stream
    with pytest.raises(DataError, match="corrupt or unreadable"):
        load_split(DataConfig(name="mnist", data_dir=str(tmp_path)))


@requires_kit
def test_uncompressed_files_in_torchvision_layout_pass_the_checksum(kit_dir, tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (kit_dir / "mnist").glob("*idx*.gz"):
        (raw / f.name[:-3]).write_bytes(gzip.decompress(f.read_bytes()))
    s = load_split(DataConfig(name="mnist", data_dir=str(tmp_path)))
    assert len(s.train) == 60000


@requires_kit
def test_fashion_cifar_text_and_tofu_load(kit_dir):
    f = load_split(DataConfig(name="fashion_mnist", data_dir=str(kit_dir), test_subset=100))
    assert f.spec.class_names[9] == "ankle boot" and len(f.test) == 100
    c = load_split(DataConfig(name="cifar10", data_dir=str(kit_dir)))
    assert c.train.x.shape == (10000, 3, 32, 32) and len(c.test) == 10000
    assert np.bincount(c.train.labels).tolist()[:3] == [1005, 974, 1032]
    a = load_split(DataConfig(name="ag_news", data_dir=str(kit_dir)))
    assert a.train.x.shape == (5000, 64) and a.spec.vocab_size > 1000 and a.spec.num_classes == 4
    sms = load_split(DataConfig(name="sms_spam", data_dir=str(kit_dir)))
    assert len(sms.train) + len(sms.test) == 5574 and int(sms.train.y.sum() + sms.test.y.sum()) == 747
    train, test, splits = load_qa(DataConfig(name="tofu", data_dir=str(kit_dir)))
    assert len(train) == 4000 and len(splits["forget01"]) == 40 and splits["forget10"][0] == 3600
    assert train.groups["author"][-1] == 199 and len(test) == 400


@requires_kit
def test_cifar_uses_every_batch_present_with_global_ids(kit_dir, tmp_path):
    d = tmp_path / "cifar10"
    d.mkdir()
    shutil.copy(kit_dir / "cifar10" / "test_batch.bin.gz", d)
    batch = gzip.decompress((kit_dir / "cifar10" / "data_batch_1.bin.gz").read_bytes())
    (d / "data_batch_1.bin").write_bytes(batch[: 3073 * 20])  # wrong checksum: verify=False
    (d / "data_batch_3.bin").write_bytes(batch[: 3073 * 10])
    s = load_split(DataConfig(name="cifar10", data_dir=str(tmp_path), verify=False))
    assert len(s.train) == 30 and s.train.ids[-1].item() == 20009
    (d / "data_batch_3.bin").write_bytes(batch[:100])
    with pytest.raises(DataError, match="binary layout"):
        load_split(DataConfig(name="cifar10", data_dir=str(tmp_path), verify=False))


def test_a_long_inline_id_list_is_read_as_ids_not_as_a_path():
    # 400 ids make a string longer than any file name: it used to reach stat() and raise OSError.
    ids = list(range(400))
    assert DeletionRequest.parse("samples:" + ",".join(map(str, ids))).to_dict()["sample_ids"] == ids
