"""``r2u ready-tune``: the readiness step size measured on a standard checkpoint, printed and written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ready2unlearn.cli.main import main


def test_ready_tune_measures_alpha_on_a_standard_checkpoint(digits_ckpt, tmp_path, capsys):
    out = tmp_path / "tune.json"
    code = main(["ready-tune", "--checkpoint", str(digits_ckpt), "--ready.revocable", "class:3,5,7",
                 "ready.method.lr=0.003", "--requests", "2", "--budget", "300", "--out", str(out)])  # fmt: skip
    assert code == 0
    data = json.loads(out.read_text())
    cal = data["calibration"]
    assert cal["factor"] == 2.0  # the class default
    assert cal["alpha"] == pytest.approx(cal["factor"] * 0.003 * float(np.median(cal["steps"])))
    assert data["ready"]["alpha"] == pytest.approx(cal["alpha"]) and data["ready"]["revocable"] == "class:3,5,7"
    printed = capsys.readouterr().out
    assert f"ready.alpha={cal['alpha']:.4g}" in printed
    # The constraint check at that step: its probes, its verdict, and the same line on the console.
    pre = data["preflight"]
    assert len(pre["forget_after"]) == 8 and pre["honoured"] == sum(a >= pre["cap"] for a in pre["forget_after"])
    assert pre["alpha"] == pytest.approx(cal["alpha"]) and pre["cap"] == 5.0  # the class default
    shortfall = [max(-1.0, min(1.0, (pre["cap"] - a) / pre["cap"])) for a in pre["forget_after"]]
    assert pre["drift"] == pytest.approx(sum(shortfall) / 8) and pre["slack"] == (pre["drift"] <= 0)
    assert f"already honours {pre['honoured']}/8" in printed


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["optim.lr=0.1"], "readiness overrides only"),
        (["ready.cap=-1"], "ready.cap must be positive"),
        (["--ready.revocable", "class:42"], "42"),
    ],
)
def test_ready_tune_bad_input_is_one_line(digits_ckpt, tmp_path, capsys, argv, message):
    out = tmp_path / "tune.json"
    assert main(["ready-tune", "--checkpoint", str(digits_ckpt), *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and not out.exists()
