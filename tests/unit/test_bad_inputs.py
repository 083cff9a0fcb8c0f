"""Bad inputs to the CLI (issue 17): each is one line on stderr, exit status 2, and writes nothing.

Every row of :data:`CASES` runs ``r2u`` in-process inside a scratch folder holding a copy of a trained
digits checkpoint (``{ckpt}``) and of an interrupted training run (``{run}``: one of two epochs done,
its ``.resume`` state left behind). The row's setup may add files; then the command must exit with 2,
print exactly one non-empty line on stderr without a traceback, and leave every file in the scratch
folder (the checkpoint and the interrupted run included) exactly as it was.

The tests run as root, for whom ``chmod`` does not make a folder unwritable; the "unwritable folder" rows
use a path under a regular file (``file/sub``, which no user can create) and a folder whose temp-file
probe is made to fail with ``PermissionError`` (monkeypatched ``tempfile.mkstemp``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from ready2unlearn.artifacts import CARD, WEIGHTS, save_checkpoint
from ready2unlearn.cli.main import main
from ready2unlearn.data.request import DeletionRequest
from ready2unlearn.engine.fit import TrainingDiverged, fit
from ready2unlearn.errors import ConfigError, RequestError
from ready2unlearn.recipes import train as train_recipe

from ..conftest import make_blobs

# The interrupted run's config, as `r2u train` flags: two epochs of a 16-unit MLP on digits.
RUN_FLAGS = ["--dataset", "digits", "--model", "mlp", "--epochs", "2", "-q"]
RUN_OVERRIDES = ["model.hidden=[16]"]


class _Crash(Exception):
    """Stands for a kill after the first epoch (not an R2UError, so the resume state is kept)."""


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> Path:
    """An ``--out`` folder holding only the ``.resume`` state of a 2-epoch run stopped after epoch 1."""
    out = tmp_path_factory.mktemp("interrupted") / "run"
    cfg, _ = train_recipe.load_config(None, ["epochs=2", *RUN_OVERRIDES], "digits", "mlp")

    def crash(row: dict[str, float]) -> None:
        raise _Crash

    with pytest.raises(_Crash):
        train_recipe.run(cfg, out, show_progress=False, on_epoch=crash)
    assert (out / ".resume" / "state.json").is_file() and not (out / CARD).exists()
    return out


@dataclass
class Ctx:
    """The scratch folder of one case and where its copies live."""

    tmp: Path
    monkeypatch: pytest.MonkeyPatch

    @property
    def ckpt(self) -> Path:
        return self.tmp / "ckpt"

    @property
    def run(self) -> Path:
        return self.tmp / "run"


def train(*flags: str, ov: tuple[str, ...] = ()) -> list[str]:
    """``r2u train`` with the interrupted run's config plus ``flags`` (overrides go last, in one block)."""
    return ["train", *RUN_FLAGS, *flags, *RUN_OVERRIDES, *ov]


def unlearn(*flags: str, request: str = "class:3") -> list[str]:
    return ["unlearn", "--checkpoint", "{ckpt}", "--request", request, "--method", "ga", "--budget", "2", "-q",
            "--out", "{out}", *flags]  # fmt: skip


# -- setups: each gets the case's Ctx and may add files before the command runs -------------------------
def _file(name: str, data: bytes = b"not a folder\n") -> Callable[[Ctx], None]:
    def setup(c: Ctx) -> None:
        (c.tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (c.tmp / name).write_bytes(data)

    return setup


def _folder(name: str) -> Callable[[Ctx], None]:
    return lambda c: (c.tmp / name).mkdir(parents=True)


def _locked(c: Ctx) -> None:
    """``{tmp}/locked`` exists but refuses new files (what a read-only folder does to a non-root user)."""
    (c.tmp / "locked").mkdir()
    real = tempfile.mkstemp

    def mkstemp(*args, **kwargs):
        if Path(kwargs.get("dir") or (args[2] if len(args) > 2 else ".")).resolve() == (c.tmp / "locked").resolve():
            raise PermissionError(13, "Permission denied")
        return real(*args, **kwargs)

    c.monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def _card_bytes(data: bytes) -> Callable[[Ctx], None]:
    def setup(c: Ctx) -> None:
        shutil.copytree(c.ckpt, c.tmp / "bad")
        (c.tmp / "bad" / CARD).write_bytes(data)

    return setup


def _card_config(section: str, key: str, value: object) -> Callable[[Ctx], None]:
    """A checkpoint whose card records another config than its weights were trained with."""

    def setup(c: Ctx) -> None:
        shutil.copytree(c.ckpt, c.tmp / "bad")
        card = json.loads((c.tmp / "bad" / CARD).read_text())
        card["config"][section][key] = value
        (c.tmp / "bad" / CARD).write_text(json.dumps(card))

    return setup


def _state(mutate: Callable[[Path], None]) -> Callable[[Ctx], None]:
    return lambda c: mutate(c.run / ".resume")


def _truncate_tensors(d: Path) -> None:
    (f,) = d.glob("state-*.safetensors")
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def _copy_ckpt_to_out(c: Ctx) -> None:
    shutil.copytree(c.ckpt, c.tmp / "out")


# fmt: off
CASES = [
    # --- 4. training must not write NaN models --------------------------------------------------------------
    pytest.param(train("--out", "{out}", ov=("optim.lr=inf",)), "training diverged at epoch 1 step", None,
                 id="train-lr-inf-diverges"),
    pytest.param(train("--out", "{tmp}/new/deep/run", ov=("optim.lr=1e30",)), "lower optim.lr (now 1e+30)", None,
                 id="train-diverges-removes-new-parents"),
    pytest.param(["unlearn", "--checkpoint", "{tmp}/bad", "--request", "class:3", "--method", "retrain", "-q",
                  "--out", "{out}"], "training diverged", _card_config("optim", "lr", 1e30),
                 id="unlearn-retrain-diverges"),
    # --- 6. epochs that are not a usable number ------------------------------------------------------------
    pytest.param(train("--epochs", "inf", "--out", "{out}"), "--epochs: invalid int value", None,
                 id="train-epochs-inf"),
    pytest.param(train("--epochs", "nan", "--out", "{out}"), "--epochs: invalid int value", None,
                 id="train-epochs-nan"),
    pytest.param(train("--epochs", "-3", "--out", "{out}"), "epochs must be positive", None, id="train-epochs-neg"),
    pytest.param(train("--out", "{out}", ov=("epochs=.inf",)), "epochs must be an integer", None,
                 id="train-epochs-inf-override"),
    pytest.param(train("--out", "{out}", ov=("epochs=1.0e300",)), "epochs must be an integer", None,
                 id="train-epochs-huge-float"),
    pytest.param(unlearn("--epochs", "inf"), "stop.epochs must be", None, id="unlearn-epochs-inf"),
    pytest.param(unlearn("--epochs", "nan"), "stop.epochs must be", None, id="unlearn-epochs-nan"),
    pytest.param(unlearn("--epochs", "-1"), "stop.epochs must be", None, id="unlearn-epochs-neg"),
    pytest.param(unlearn("--epochs", "1e308"), "stop.epochs must be", None, id="unlearn-epochs-huge"),
    pytest.param(["train", "--bogus", "--out", "{out}"], "unrecognized arguments: --bogus", None, id="usage-error"),
    # --- 6. --out that cannot be written, checked before any compute ----------------------------------------
    pytest.param(train("--out", "{tmp}/file"), "is a file, not a folder", _file("file"), id="train-out-is-file"),
    pytest.param(train("--out", "{tmp}/file/sub"), "is a file, not a folder", _file("file"), id="train-out-under-file"),
    pytest.param(train("--out", "{tmp}/locked/run"), "cannot write into", _locked, id="train-out-unwritable"),
    pytest.param(unlearn(), "is a file, not a folder", _file("out"), id="unlearn-out-is-file"),
    pytest.param(["unlearn", "--checkpoint", "{ckpt}", "--request", "class:3", "-q", "--out", "{tmp}/locked/u"],
                 "cannot write into", _locked, id="unlearn-out-unwritable"),
    pytest.param(["eval", "--checkpoint", "{ckpt}", "--request", "class:3", "--out", "{tmp}/dir"],
                 "is a folder, not a file", _folder("dir"), id="eval-out-is-folder"),
    pytest.param(["eval", "--checkpoint", "{ckpt}", "--request", "class:3", "--out", "{tmp}/file/m.json"],
                 "is a file, not a folder", _file("file"), id="eval-out-under-file"),
    pytest.param(["eval", "--checkpoint", "{ckpt}", "--request", "class:3", "--out", "{tmp}/locked/m.json"],
                 "cannot write into", _locked, id="eval-out-unwritable"),
    pytest.param(["bench", "digits-quick", "--out", "{tmp}/file", "-q"], "is a file, not a folder", _file("file"),
                 id="bench-out-is-file"),
    # --- 8. a non-empty --out is refused without --overwrite -------------------------------------------------
    pytest.param(train("--out", "{out}"), "already holds", _file("out/notes.txt"), id="train-out-not-empty"),
    pytest.param(train("--out", "{out}"), "already holds", _copy_ckpt_to_out, id="train-out-finished"),
    pytest.param(train("--out", "{out}", "--resume"), "nothing to resume", _copy_ckpt_to_out,
                 id="train-resume-finished"),
    pytest.param(train("--out", "{run}", "--resume", "--overwrite"), "pass one of them", None,
                 id="train-resume-and-overwrite"),
    pytest.param(unlearn(), "already holds", _file("out/notes.txt"), id="unlearn-out-not-empty"),
    pytest.param(unlearn(), "already holds", _copy_ckpt_to_out, id="unlearn-out-finished"),
    pytest.param(["unlearn", "--checkpoint", "{ckpt}", "--request", "class:3", "-q", "--out", "{ckpt}", "--overwrite"],
                 "is the --checkpoint", None, id="unlearn-out-is-checkpoint"),
    # --- 2. --resume refuses a changed config ----------------------------------------------------------------
    pytest.param(train("--out", "{run}", "--resume", "--lr", "0.01"),
                 "cannot resume: the config changed (optim.lr: 0.001 → 0.01)", None, id="train-resume-lr"),
    pytest.param(train("--out", "{run}", "--resume", "--seed", "1", "--epochs", "3"),
                 "(epochs: 2 → 3; seed: 0 → 1); rerun with --overwrite", None, id="train-resume-seed-epochs"),
    pytest.param(train("--out", "{run}", "--resume", "--epochs", "3"), "or pass --allow-extend to train more epochs",
                 None, id="train-resume-epochs-hint"),
    pytest.param(train("--out", "{run}", "--resume", ov=("model.hidden=[64]",)), "model.hidden: [16] → [64]", None,
                 id="train-resume-architecture"),
    pytest.param(train("--out", "{run}", "--resume", "--allow-extend", "--epochs", "3", "--lr", "0.01"),
                 "optim.lr: 0.001 → 0.01", None, id="train-extend-other-key"),
    pytest.param(train("--out", "{run}", "--resume", "--allow-extend", "--epochs", "1"), "epochs: 2 → 1", None,
                 id="train-extend-shrink"),
    pytest.param(train("--out", "{out}", "--allow-extend"), "--allow-extend only applies with --resume", None,
                 id="train-extend-without-resume"),
    # --- 6. a corrupt resume state ---------------------------------------------------------------------------
    pytest.param(train("--out", "{run}", "--resume"), "cannot resume: the saved state in", _state(_truncate_tensors),
                 id="train-resume-truncated"),
    pytest.param(train("--out", "{run}", "--resume"), "is corrupt",
                 _state(lambda d: (d / "state.json").write_text("[]")), id="train-resume-state-list"),
    pytest.param(train("--out", "{run}", "--resume"), "is corrupt",
                 _state(lambda d: (d / "state.json").write_bytes(b"\xff\xfe{")), id="train-resume-state-not-utf8"),
    pytest.param(train("--out", "{run}", "--resume"), "is corrupt",
                 _state(lambda d: (d / "state.json").write_text('{"epoch": "x"}')), id="train-resume-state-fields"),
    # --- 6. checkpoints whose card is not a card ------------------------------------------------------------
    pytest.param(["unlearn", "--checkpoint", "{tmp}/bad", "--request", "class:3", "-q", "--out", "{out}"],
                 "is not a checkpoint card (a JSON list", _card_bytes(b"[1, 2]"), id="unlearn-card-list"),
    pytest.param(["unlearn", "--checkpoint", "{tmp}/bad", "--request", "class:3", "-q", "--out", "{out}"],
                 "is not UTF-8", _card_bytes(b'{"a": "\xff"}'), id="unlearn-card-not-utf8"),
    pytest.param(["eval", "--checkpoint", "{tmp}/bad", "--request", "class:3"], "is not a checkpoint card",
                 _card_bytes(b"[]"), id="eval-card-list"),
    pytest.param(["eval", "--checkpoint", "{tmp}/bad", "--request", "class:3"], "is not UTF-8",
                 _card_bytes(b"\xff\xff"), id="eval-card-not-utf8"),
    pytest.param(["eval", "--checkpoint", "{ckpt}", "--reference", "{tmp}/bad", "--request", "class:3"],
                 "is not a checkpoint card", _card_bytes(b'"card"'), id="eval-reference-card-string"),
    pytest.param(["unlearn", "--checkpoint", "{tmp}/bad", "--request", "class:3", "-q", "--out", "{out}"],
                 "card.json has no usable", _card_bytes(b'{"config": [1]}'), id="unlearn-card-config-list"),
    # --- 8. misleading messages: a file where a folder is expected and vice versa ---------------------------
    pytest.param(["unlearn", "--checkpoint", "{ckpt}/model.safetensors", "--request", "class:3", "-q", "--out",
                  "{out}"], "is a file, not a checkpoint folder", None, id="unlearn-checkpoint-is-file"),
    pytest.param(["unlearn", "--checkpoint", "{tmp}/none", "--request", "class:3", "-q", "--out", "{out}"],
                 "the folder does not exist", None, id="unlearn-checkpoint-missing"),
    pytest.param(["unlearn", "--checkpoint", "{tmp}/bad", "--request", "class:3", "-q", "--out", "{out}"],
                 "card.json is a folder, not a file", lambda c: (c.tmp / "bad" / CARD).mkdir(parents=True),
                 id="unlearn-card-is-folder"),
    pytest.param(unlearn(request="samples:{tmp}/ids"), "is a folder, not a file of ids", _folder("ids"),
                 id="samples-file-is-folder"),
    pytest.param(train("--config", "{tmp}/conf.yaml", "--out", "{out}"), "is a folder, not a YAML file",
                 _folder("conf.yaml"), id="config-is-folder"),
    pytest.param(train("--config", "{tmp}/conf.yaml", "--out", "{out}"), "is not UTF-8",
                 _file("conf.yaml", b"epochs: \xff\n"), id="config-not-utf8"),
    pytest.param(["train", "--dataset", "mnist", "--data-dir", "{tmp}/file", "--out", "{out}"],
                 "is a file, not a folder", _file("file"), id="data-dir-is-file"),
    pytest.param(["unlearn", "--checkpoint", "{tmp}/bad", "--request", "class:3", "-q", "--out", "{out}"],
                 "weights do not match the model: 3 shape mismatches (first: 1.weight [32, 64] in the file vs "
                 "[64, 64] in the model)",
                 _card_config("model", "hidden", [64]), id="weights-shape-mismatch"),
    pytest.param(["unlearn", "--checkpoint", "{tmp}/bad", "--request", "class:3", "-q", "--out", "{out}"],
                 "weights do not match the model: missing 2 keys (7.bias, 7.weight)",
                 _card_config("model", "hidden", [32, 32]), id="weights-missing-keys"),
    # --- 6. sample ids that are not ids ----------------------------------------------------------------------
    pytest.param(unlearn(request="samples:9223372036854775808"), "sample id 9223372036854775808 is out of range",
                 None, id="sample-id-2-63"),
    pytest.param(unlearn(request="samples:-9223372036854775809"), "is out of range", None, id="sample-id-neg-huge"),
    pytest.param(unlearn(request="samples:{tmp}/ids.json"), "true is not a sample id",
                 _file("ids.json", b"[true, 5]"), id="sample-id-json-true"),
    pytest.param(unlearn(request="samples:true"), "true is not a sample id", None, id="sample-id-inline-true"),
    # A name longer than the file system allows: stat() raised OSError (a traceback) before.
    pytest.param(
        unlearn(request="samples:" + "a" * 400),
        "cannot be read (File name too long)",
        None,
        id="sample-id-file-name-too-long",
    ),
    pytest.param(unlearn(request="class:99999999999999999999"), "class 99999999999999999999 is out of range", None,
                 id="class-huge"),
    # --- 3. user text is not rich markup, and :-1: is not an emoji -------------------------------------------
    pytest.param(unlearn(request="class:[/b]"), "request 'class:[/b]'", None, id="markup-request"),
    pytest.param(unlearn(request="class:-1"), "request class:-1: unknown class -1", None, id="emoji-request"),
    pytest.param(train("--out", "{tmp}/a[/]b"), "a[/]b", _file("a["), id="markup-out"),
    pytest.param(["train", "--dataset", "[bold]x[/]", "--out", "{out}"], "unknown dataset '[bold]x[/]'", None,
                 id="markup-dataset"),
    pytest.param(train("--out", "{out}", ov=("optim.lr=[red]",)), "optim.lr must be a number, got ['red']", None,
                 id="markup-override"),
]
# fmt: on


def _tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` with a hash of its content (``dir`` for folders)."""
    out = {}
    for p in sorted(root.rglob("*")):
        out[str(p.relative_to(root))] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.mark.parametrize(("argv", "match", "setup"), CASES)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(argv, match, setup, digits_ckpt, interrupted, tmp_path,
                                                         monkeypatch, capsys):  # fmt: skip
    shutil.copytree(digits_ckpt, tmp_path / "ckpt")
    shutil.copytree(interrupted, tmp_path / "run")
    ctx = Ctx(tmp_path, monkeypatch)
    if setup is not None:
        setup(ctx)
    before = _tree(tmp_path)
    capsys.readouterr()

    args = [a.format(tmp=tmp_path, ckpt=ctx.ckpt, run=ctx.run, out=tmp_path / "out") for a in argv]
    rc = main(args)

    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert match in lines[0], lines[0]
    assert "👎" not in err  # :-1: stays text
    assert _tree(tmp_path) == before  # nothing written, nothing removed, no stray temp files


def test_fuzz_suite_size():
    assert len(CASES) >= 60


# -- the same defects, checked where a command succeeds ----------------------------------------------------
def test_markup_in_out_path_is_printed_literally(tmp_path, capsys):
    out = tmp_path / "a[/]b [bold]:-1:"
    assert main(train("--epochs", "1", "--out", str(out))) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out / WEIGHTS}" in printed.replace("\n", "") and "👎" not in printed
    assert (out / CARD).is_file()


def test_ledger_rows_with_markup_list_and_show(digits_ckpt, tmp_path, capsys):
    db = str(tmp_path / "ledger.db")
    # rejected on submission (unknown class), and recorded with its target and reason as typed
    assert main(["request", "add", "--ledger", db, "--checkpoint", str(digits_ckpt), "--kind", "class",
                 "--target", "[/]", "--reason", "[bold]GDPR[/] :-1:"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert main(["request", "add", "--ledger", db, "--kind", "class", "--target", "3", "--reason", "[/]:-1:[red]",
                 "--submitter", "[i]eve[/i]"]) == 0  # fmt: skip
    for argv in (["request", "list", "--ledger", db], ["request", "show", "--ledger", db, "1"],
                 ["request", "show", "--ledger", db, "2"]):  # fmt: skip
        assert main(argv) == 0, argv
        printed = capsys.readouterr().out
        assert "👎" not in printed
    assert main(["request", "list", "--ledger", db]) == 0
    printed = capsys.readouterr().out
    assert "[/]" in printed and "[i]eve[/i]" in printed


def test_resume_without_state_says_so_and_trains(tmp_path, capsys):
    out = tmp_path / "fresh"
    assert main(train("--epochs", "1", "--out", str(out), "--resume")) == 0
    err = capsys.readouterr().err
    assert err.strip() == f"no saved state in {out / '.resume'}: starting from scratch"
    assert (out / CARD).is_file()


def test_resume_with_the_same_config_finishes_the_run(interrupted, tmp_path, capsys):
    run = shutil.copytree(interrupted, tmp_path / "run")
    assert main(train("--out", str(run), "--resume", "--device", "cpu")) == 0  # the device may change
    card = json.loads((run / CARD).read_text())
    assert [h["epoch"] for h in card["history"]] == [1, 2] and card["config"]["epochs"] == 2
    assert sorted(p.name for p in run.iterdir()) == [CARD, WEIGHTS]


def test_allow_extend_trains_more_epochs(interrupted, tmp_path):
    run = shutil.copytree(interrupted, tmp_path / "run")
    assert main(train("--out", str(run), "--resume", "--allow-extend", "--epochs", "3")) == 0
    card = json.loads((run / CARD).read_text())
    assert [h["epoch"] for h in card["history"]] == [1, 2, 3] and card["config"]["epochs"] == 3


def test_resume_state_records_the_config(interrupted):
    meta = json.loads((interrupted / ".resume" / "state.json").read_text())
    assert meta["extra"]["config"]["model"]["hidden"] == [16] and meta["extra"]["config"]["epochs"] == 2


def test_overwrite_replaces_the_old_run(digits_ckpt, tmp_path):
    out = shutil.copytree(digits_ckpt, tmp_path / "out")
    (out / "metrics.json").write_text("{}")  # written by `r2u eval` into the old checkpoint
    (out / "req-01").mkdir()
    (out / "req-01" / CARD).write_text("{}")
    (out / f".{CARD}.abc123.tmp").write_text("half a card")  # a save killed half-way
    (out / "notes.txt").write_text("mine")  # not the run's: kept
    old_hash = json.loads((out / CARD).read_text())["weights_sha256"]
    assert main(train("--epochs", "1", "--out", str(out), "--overwrite")) == 0
    assert sorted(p.name for p in out.iterdir()) == [CARD, WEIGHTS, "notes.txt"]
    assert json.loads((out / CARD).read_text())["weights_sha256"] != old_hash
    # unlearn with --overwrite replaces its own earlier result the same way
    child = tmp_path / "child"
    assert main(["unlearn", "--checkpoint", str(out), "--request", "class:3", "--budget", "2", "-q", "--out",
                 str(child), "--request", "class:4"]) == 0  # fmt: skip
    assert sorted(p.name for p in child.iterdir()) == ["req-01", "req-02"]
    assert main(["unlearn", "--checkpoint", str(out), "--request", "class:3", "--budget", "2", "-q", "--out",
                 str(child), "--overwrite"]) == 0  # fmt: skip
    assert sorted(p.name for p in child.iterdir()) == [CARD, WEIGHTS]


def test_divergence_in_an_existing_empty_folder_leaves_it_empty(tmp_path, capsys):
    out = tmp_path / "empty"
    out.mkdir()
    assert main(train("--out", str(out), ov=("optim.lr=inf",))) == 2
    assert "lower optim.lr" in capsys.readouterr().err
    assert list(out.iterdir()) == []


def test_a_failed_run_removes_only_its_own_new_folders(tmp_path):
    from ready2unlearn.artifacts import prepare_out_dir, remove_created

    out = tmp_path / "runs" / "a"
    created = prepare_out_dir(out)
    assert created == tmp_path / "runs" and not created.exists()  # nothing is created by the check
    out.mkdir(parents=True)
    (out / WEIGHTS).write_bytes(b"x")
    (tmp_path / "runs" / "b").mkdir()  # another run, started meanwhile, writes beside it
    remove_created(out, created)
    assert not out.exists() and (tmp_path / "runs" / "b").is_dir()
    remove_created(tmp_path / "runs" / "b", created)
    assert not (tmp_path / "runs").exists()


def test_fit_stops_on_a_non_finite_loss_before_stepping(tmp_path):
    from ready2unlearn.config import from_dict

    data = make_blobs()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 4))
    cfg = from_dict(train_recipe.TrainConfig, {"epochs": 2, "batch_size": 32, "optim": {"lr": float("inf")}})
    with pytest.raises(TrainingDiverged, match=r"training diverged at epoch 1 step \d+: loss is nan"):
        fit(model, data, None, cfg, state_dir=tmp_path / "state", show_progress=False)
    assert not (tmp_path / "state").exists()  # no epoch finished, so no state was saved


def test_failed_write_leaves_no_temp_file_and_final_save_cleans_stray_ones(tmp_path, monkeypatch):
    from ready2unlearn import artifacts

    model = torch.nn.Linear(2, 2)
    out = tmp_path / "ckpt"
    out.mkdir()
    (out / f".{WEIGHTS}.dead1.tmp").write_bytes(b"left by a kill")
    (out / f".{CARD}.dead2.tmp").write_text("{")

    real = artifacts.save_model

    def dies_half_way(m, path, metadata=None):
        Path(path).write_bytes(b"half a model")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(artifacts, "save_model", dies_half_way)
    with pytest.raises(OSError):
        save_checkpoint(model, out, {})
    assert sorted(p.name for p in out.iterdir()) == [f".{CARD}.dead2.tmp", f".{WEIGHTS}.dead1.tmp"]

    monkeypatch.setattr(artifacts, "save_model", real)
    save_checkpoint(model, out, {})
    assert sorted(p.name for p in out.iterdir()) == [CARD, WEIGHTS]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: DeletionRequest.for_samples([True, 5]), "true is not a sample id"),
        (lambda: DeletionRequest.from_dict({"kind": "samples", "sample_ids": [False]}), "false is not a sample id"),
        (lambda: DeletionRequest.from_dict({"kind": "class", "classes": [True]}), "true is not a class"),
        (lambda: DeletionRequest.for_samples([2**63]), "out of range"),
        (lambda: DeletionRequest.for_samples([1.5]), "1.5 is not a sample id"),
        (lambda: DeletionRequest.parse("samples:false"), "false is not a sample id"),
    ],
)
def test_request_ids_are_integers(make, match):
    with pytest.raises(RequestError, match=match):
        make()


def test_numpy_ids_still_work():
    import numpy as np

    assert DeletionRequest.for_samples(np.array([3, 4])).sample_ids == (3, 4)


def test_usage_errors_are_config_errors_of_one_line():
    from ready2unlearn.cli.main import build_parser

    with pytest.raises(ConfigError, match="invalid int value"):
        build_parser().parse_args(["train", "--out", "x", "--epochs", "x"])
