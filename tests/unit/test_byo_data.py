"""Bring your own data: csv:, parquet:, npz:, imagefolder:, hf: sources, on the CLI and in Python."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ready2unlearn.cli.main import main
from ready2unlearn.config import to_dict
from ready2unlearn.data import DataConfig, DeletionRequest, load_split
from ready2unlearn.data.source import fingerprint
from ready2unlearn.errors import ConfigError, DataError

CLASSES = ("cat", "dog", "eel")


def write_csv(path: Path, n: int = 60, header: str = "pid,a,b,user,label", rows: list[str] | None = None) -> Path:
    """``n`` rows: ids 100.., two numeric features, user u0..u4, string labels cycling over CLASSES."""
    rng = np.random.default_rng(0)
    if rows is None:
        rows = [f"{100 + i},{rng.normal() + i % 3:.4f},{rng.normal():.4f},u{i % 5},{CLASSES[i % 3]}" for i in range(n)]
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def write_pathmnist(path: Path, n_train: int = 60, n_test: int = 20, classes: int = 9) -> Path:
    """A file in the MedMNIST layout of the official pathmnist.npz (uint8 [N,28,28,3], labels [N,1])."""
    rng = np.random.default_rng(0)

    def part(n: int) -> tuple[np.ndarray, np.ndarray]:
        return rng.integers(0, 256, (n, 28, 28, 3), dtype=np.uint8), (np.arange(n) % classes).reshape(n, 1)

    (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = part(n_train), part(10), part(n_test)
    np.savez(path, train_images=tr_x, train_labels=tr_y, val_images=va_x, val_labels=va_y,
             test_images=te_x, test_labels=te_y)  # fmt: skip
    return path


def write_images(root: Path, classes: dict[str, int], size: tuple[int, int] = (6, 5), gray: bool = False) -> Path:
    """``count`` random PNGs of ``size`` (width, height) per class folder, RGB or grayscale."""
    from PIL import Image

    rng = np.random.default_rng(0)
    shape = (size[1], size[0]) if gray else (size[1], size[0], 3)
    for name, count in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(root / name / f"{i:02d}.png")
    return root


# --- each format round-trips ------------------------------------------------------------------------------


def test_csv_round_trip_with_ids_groups_and_string_labels(tmp_path, monkeypatch):
    write_csv(tmp_path / "d.csv")
    monkeypatch.chdir(tmp_path)
    cfg = DataConfig(name="csv:d.csv", id_col="pid", group_col="user")
    assert cfg.name == f"csv:{tmp_path / 'd.csv'}"  # absolute: the card names the file wherever r2u runs
    s = load_split(cfg)
    assert s.spec.kind == "tabular" and s.spec.input_shape == (2,) and s.spec.class_names == CLASSES
    assert len(s.train) == 48 and len(s.test) == 12
    assert np.bincount(s.test.labels).tolist() == [4, 4, 4]  # stratified
    ids = torch.cat([s.train.ids, s.test.ids]).sort().values
    assert ids.tolist() == list(range(100, 160))
    rows = (s.train.ids - 100).tolist()  # file row i has label CLASSES[i % 3] and user u{i % 5}
    assert s.train.y.tolist() == [i % 3 for i in rows]
    assert s.train.groups["user"].tolist() == [f"u{i % 5}" for i in rows]
    assert abs(float(s.train.x.mean())) < 1e-5  # standardised with the training part's statistics
    meta = s.meta["source"]
    assert meta["format"] == "csv" and len(meta["sha256"]) == 64 and s.meta["features"] == ["a", "b"]
    views = DeletionRequest.parse("group:user=u2").resolve(s.train, s.test, s.spec.num_classes)
    assert len(views.forget) + len(views.test_forget) == 12 and set(views.forget.groups["user"]) == {"u2"}
    assert load_split(cfg).fingerprints() == s.fingerprints()
    reseeded = DataConfig(name="csv:d.csv", id_col="pid", group_col="user", split_seed=1)
    assert load_split(reseeded).fingerprints() != s.fingerprints()


def test_csv_without_id_column_uses_row_numbers_and_integer_labels_as_classes(tmp_path):
    rows = [f"{i % 4},{i * 0.5},{i % 2}" for i in range(40)]
    write_csv(tmp_path / "d.csv", header="y,f1,f2", rows=rows)
    s = load_split(DataConfig(name=f"csv:{tmp_path / 'd.csv'}", label_col="y", test_fraction=0.25))
    assert s.spec.num_classes == 4 and s.spec.class_names == ("0", "1", "2", "3")
    assert sorted(torch.cat([s.train.ids, s.test.ids]).tolist()) == list(range(40))
    assert all(int(s.train.y[i]) == int(s.train.ids[i]) % 4 for i in range(len(s.train)))


def test_parquet_round_trip(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    n = 30
    table = pa.table({"x1": np.arange(n, dtype=np.float32), "x2": np.arange(n) % 7, "uid": np.arange(n) + 5,
                      "team": np.arange(n) % 3, "label": [CLASSES[i % 2] for i in range(n)]})  # fmt: skip
    pq.write_table(table, tmp_path / "d.parquet")
    s = load_split(DataConfig(name=f"parquet:{tmp_path / 'd.parquet'}", id_col="uid", group_col="team"))
    assert s.spec.input_shape == (2,) and s.spec.class_names == ("cat", "dog")
    assert len(s.train) + len(s.test) == n and s.train.groups["team"].dtype.kind == "i"
    assert sorted(torch.cat([s.train.ids, s.test.ids]).tolist()) == list(range(5, 35))
    views = DeletionRequest.parse("group:team=1").resolve(s.train, s.test, 2)
    assert set(views.forget.groups["team"].tolist()) == {1}


def test_pathmnist_layout_npz_keeps_its_split_and_scales_to_unit_range(tmp_path):
    s = load_split(DataConfig(name=f"npz:{write_pathmnist(tmp_path / 'pathmnist.npz')}"))
    assert s.spec.kind == "image" and s.spec.input_shape == (3, 28, 28) and s.spec.num_classes == 9
    assert len(s.train) == 60 and len(s.test) == 20
    assert s.train.ids.tolist() == list(range(60)) and s.test.ids.tolist() == list(range(20))
    assert float(s.train.x.min()) >= 0.0 and float(s.train.x.max()) <= 1.0 and s.train.x.dtype == torch.float32
    raw = np.load(tmp_path / "pathmnist.npz", allow_pickle=False)
    assert torch.allclose(s.train.x[3], torch.from_numpy(raw["train_images"][3].transpose(2, 0, 1) / 255.0).float())
    assert s.meta["ignored_keys"] == ["val_images", "val_labels"] and s.meta["split"] == "the file's own train/test"


def test_npz_without_a_split_is_split_stratified(tmp_path):
    x = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    np.savez(tmp_path / "t.npz", x=x, y=np.arange(50) % 2, owner=np.arange(50) // 10)
    s = load_split(DataConfig(name=f"npz:{tmp_path / 't.npz'}", group_col="owner"))
    assert s.spec.kind == "tabular" and len(s.train) == 40 and len(s.test) == 10
    assert set(s.train.groups["owner"].tolist()) == {0, 1, 2, 3, 4}


def test_imagefolder_with_and_without_its_own_split(tmp_path):
    write_images(tmp_path / "flat", {"b_dog": 5, "a_cat": 5})
    s = load_split(DataConfig(name=f"imagefolder:{tmp_path / 'flat'}", test_fraction=0.4))
    assert s.spec.class_names == ("a_cat", "b_dog") and s.spec.input_shape == (3, 5, 6)
    assert len(s.train) == 6 and len(s.test) == 4 and float(s.train.x.max()) <= 1.0
    write_images(tmp_path / "split" / "train", {"cat": 4, "dog": 3}, gray=True)
    write_images(tmp_path / "split" / "test", {"cat": 2, "dog": 2}, gray=True)
    s = load_split(DataConfig(name=f"imagefolder:{tmp_path / 'split'}"))
    assert s.spec.input_shape == (1, 5, 6)  # all grayscale: one channel
    assert (len(s.train), len(s.test)) == (7, 4) and s.train.labels.tolist() == [0, 0, 0, 0, 1, 1, 1]
    write_images(tmp_path / "split" / "train", {"cow": 2})  # one colour class: everything becomes RGB
    assert load_split(DataConfig(name=f"imagefolder:{tmp_path / 'split'}")).spec.input_shape == (3, 5, 6)


def test_hf_folder_datasetdict_and_plain_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    rng = np.random.default_rng(0)
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["no", "yes"]),
                               "uid": datasets.Value("int64")})  # fmt: skip

    def images(n: int, offset: int) -> datasets.Dataset:
        from PIL import Image

        imgs = [Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)) for _ in range(n)]
        return datasets.Dataset.from_dict({"image": imgs, "label": [i % 2 for i in range(n)],
                                           "uid": list(range(offset, offset + n))}, features=feats)  # fmt: skip

    datasets.DatasetDict({"train": images(12, 0), "test": images(6, 100)}).save_to_disk(tmp_path / "dd")
    s = load_split(DataConfig(name=f"hf:{tmp_path / 'dd'}", id_col="uid"))
    assert s.meta["source"]["sha256"] == fingerprint(tmp_path / "dd")  # loading wrote nothing into the folder
    assert s.spec.input_shape == (3, 8, 8) and s.spec.class_names == ("no", "yes")
    assert s.test.ids.tolist() == list(range(100, 106)) and len(s.train) == 12
    table = {"f": rng.normal(size=30).tolist(), "g": list(range(30)), "label": [CLASSES[i % 3] for i in range(30)]}
    datasets.Dataset.from_dict(table).save_to_disk(tmp_path / "flat")
    s = load_split(DataConfig(name=f"hf:{tmp_path / 'flat'}"))
    assert s.spec.kind == "tabular" and s.spec.input_shape == (2,) and len(s.train) + len(s.test) == 30


# --- the CLI: train on your file, then serve requests on it -----------------------------------------------


def test_cli_trains_on_a_csv_then_unlearns_a_class_and_a_group(tmp_path, capsys):
    data = write_csv(tmp_path / "d.csv", n=90)
    run = tmp_path / "run"
    base = ["train", "--dataset", f"csv:{data}", "--model", "mlp", "--epochs", "1", "-q", "--out", str(run)]
    assert main([*base, "--id-col", "pid", "--group-col", "user", "model.hidden=[16]"]) == 0
    card = json.loads((run / "card.json").read_text())
    assert card["data"]["meta"]["source"]["sha256"] and card["config"]["data"]["group_col"] == "user"
    assert card["data"]["spec"]["class_names"] == list(CLASSES)
    common = ["unlearn", "--checkpoint", str(run), "--method", "ga", "--budget", "5", "-q"]
    assert main([*common, "--request", "class:1", "--out", str(tmp_path / "u1")]) == 0
    assert main([*common, "--request", "group:user=u3", "--out", str(tmp_path / "u2")]) == 0
    forgot = json.loads((tmp_path / "u2" / "card.json").read_text())["lineage"]["forgotten_ids"]
    assert forgot and all((i - 100) % 5 == 3 for i in forgot)
    capsys.readouterr()
    # the file changes under the checkpoint: refused in one line, nothing written
    data.write_text(data.read_text().replace("u3,", "u4,", 1))
    assert main([*common, "--request", "class:1", "--out", str(tmp_path / "u3")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "changed since the checkpoint was trained" in err[0]
    assert not (tmp_path / "u3").exists()
    data.unlink()
    assert main([*common, "--request", "class:1", "--out", str(tmp_path / "u4")]) == 2
    assert "no longer exists" in capsys.readouterr().err


def test_cli_trains_a_cnn_on_a_pathmnist_layout_npz(tmp_path):
    data = write_pathmnist(tmp_path / "pathmnist.npz")
    out = tmp_path / "run"
    assert main(["train", "--dataset", f"npz:{data}", "--model", "cnn", "--epochs", "1", "-q", "--out", str(out),
                 "model.channels=[8]", "model.hidden=16"]) == 0  # fmt: skip
    card = json.loads((out / "card.json").read_text())
    assert card["data"]["spec"]["input_shape"] == [3, 28, 28] and card["data"]["spec"]["num_classes"] == 9


def test_ls_datasets_lists_the_bring_your_own_forms(capsys):
    assert main(["ls", "datasets"]) == 0
    out = capsys.readouterr().out
    assert all(form in out for form in ("csv:PATH", "parquet:PATH", "npz:PATH", "imagefolder:DIR", "hf:DIR"))


# --- bad files: one line each ------------------------------------------------------------------------------


def _npz_object(p: Path) -> str:
    np.savez(p / "o.npz", images=np.array([{"a": 1}], dtype=object), labels=np.array([0]))
    return f"npz:{p / 'o.npz'}"


def _unreadable_image(p: Path) -> str:
    write_images(p / "im", {"a": 2, "b": 2})
    (p / "im" / "b" / "01.png").write_bytes(b"not a png")
    return f"imagefolder:{p / 'im'}"


def _odd_size(p: Path) -> str:
    write_images(p / "im", {"a": 2, "b": 2})
    write_images(p / "im", {"c": 1}, size=(7, 7))
    return f"imagefolder:{p / 'im'}"


def _csv(p: Path, text: str) -> str:
    (p / "d.csv").write_text(text, encoding="utf-8")
    return f"csv:{p / 'd.csv'}"


def _npz(p: Path, **arrays: np.ndarray) -> str:
    np.savez(p / "k.npz", **arrays)
    return f"npz:{p / 'k.npz'}"


# fmt: off
BAD = [
    ("missing-file", lambda p: f"csv:{p / 'nope.csv'}", {}, "does not exist"),
    ("empty-file", lambda p: _csv(p, ""), {}, "is empty"),
    ("blank-file", lambda p: _csv(p, "\n\n"), {}, "is empty"),
    ("header-only", lambda p: _csv(p, "a,label\n"), {}, "no rows"),
    ("no-label-column", lambda p: _csv(p, "a,b\n1,2\n3,4\n"), {}, "no column 'label' (it has: a, b)"),
    ("missing-id-column", lambda p: str(write_csv(p / "d.csv")), {"id_col": "uid"}, "no column 'uid'"),
    ("missing-group-column", lambda p: str(write_csv(p / "d.csv")), {"group_col": "team"}, "(it has: pid, a, b"),
    ("duplicate-ids", lambda p: _csv(p, "id,a,label\n1,0.5,x\n1,0.7,y\n"), {"id_col": "id"}, "duplicate sample ids"),
    ("text-ids", lambda p: _csv(p, "id,a,label\nq,0.5,x\nr,0.7,y\n"), {"id_col": "id"}, "integer sample ids"),
    ("ragged-row", lambda p: _csv(p, "a,b,label\n1,2,x\n3,y\n"), {}, "line 3 has 2 fields but the header has 3"),
    ("text-feature", lambda p: _csv(p, "a,colour,label\n1,red,x\n2,blue,y\n"), {}, "'colour' is not numeric"),
    ("missing-value", lambda p: _csv(p, "a,b,label\n1,,x\n2,3,y\n"), {}, "missing value in data row 1"),
    ("one-class", lambda p: _csv(p, "a,label\n1,x\n2,x\n"), {}, "at least two classes"),
    ("negative-label", lambda p: _csv(p, "a,label\n1,-1\n2,0\n"), {}, "label -1 is negative"),
    ("fractional-label", lambda p: _csv(p, "a,label\n1,0.5\n2,1\n"), {}, "label 0.5 is not an integer"),
    ("binary-csv", lambda p: (p / "d.csv").write_bytes(b"\xff\xfe\x00a") and f"csv:{p / 'd.csv'}", {}, "UTF-8"),
    ("npz-keys", lambda p: _npz(p, data=np.zeros(3)), {}, "expected images"),
    ("npz-half-split", lambda p: _npz(p, train_images=np.zeros((2, 4, 4)), train_labels=np.arange(2)), {},
     "no array 'test_images'"),
    ("npz-pickle", _npz_object, {}, "never unpickled"),
    ("npz-not-zip", lambda p: (p / "z.npz").write_bytes(b"hello") and f"npz:{p / 'z.npz'}", {}, "not a readable"),
    ("npz-label-count", lambda p: _npz(p, images=np.zeros((3, 4, 4)), labels=np.arange(2)), {}, "one label per row"),
    ("one-image-class", lambda p: f"imagefolder:{write_images(p / 'im', {'only': 3})}", {}, "one class folder"),
    ("unreadable-image", _unreadable_image, {}, "cannot read image"),
    ("odd-image-size", _odd_size, {}, "is 7x7 but"),
    ("imagefolder-is-file", lambda p: _csv(p, "a").replace("csv:", "imagefolder:"), {}, "takes a folder"),
    ("hf-not-saved", lambda p: (p / "h").mkdir() or f"hf:{p / 'h'}", {}, "not a dataset saved with save_to_disk"),
]
# fmt: on


@pytest.mark.parametrize(("make", "extra", "match"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_data_is_a_one_line_data_error(tmp_path, make, extra, match):
    name = make(tmp_path)
    name = name if ":" in name else f"csv:{name}"
    with pytest.raises(DataError) as e:
        load_split(DataConfig(name=name, **extra))
    assert match in str(e.value) and "\n" not in str(e.value)


def test_bad_data_on_the_cli_is_one_line_exit_2(tmp_path, capsys):
    data = tmp_path / "d.csv"
    data.write_text("a,colour,label\n1,red,x\n2,blue,y\n")
    assert main(["train", "--dataset", f"csv:{data}", "-q", "--out", str(tmp_path / "r")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "'colour' is not numeric" in err[0] and not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"name": "tsv:x.tsv"}, "unknown data format 'tsv'"), ({"name": "csv:"}, "names no path"),
     ({"name": "digits", "label_col": "y"}, "only applies to your own data")],
)  # fmt: skip
def test_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        DataConfig(**kwargs)


def test_missing_optional_library_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "d.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # import fails as if pyarrow were not installed
    with pytest.raises(ConfigError, match=r'pip install "ready2unlearn\[data\]"'):
        load_split(DataConfig(name=f"parquet:{tmp_path / 'd.parquet'}"))


def test_unset_column_keys_stay_out_of_configs_so_old_cards_and_cache_keys_match():
    assert {"label_col", "id_col", "group_col"}.isdisjoint(to_dict(DataConfig()))
    assert to_dict(DataConfig(name="csv:/x.csv", label_col="y"))["label_col"] == "y"


def test_folder_fingerprint_sees_renames_and_ignores_hidden_files(tmp_path):
    root = write_images(tmp_path / "im", {"a": 2, "b": 2})
    before = fingerprint(root)
    (root / ".DS_Store").write_bytes(b"finder")
    assert fingerprint(root) == before
    (root / "a" / "00.png").rename(root / "b" / "99.png")
    assert fingerprint(root) != before
