"""`fit` under Hugging Face Accelerate with two real processes (DDP over gloo, CPU only) matches one process.

`TrainConfig.accelerate=true` makes every process take its share of each (global) batch and averages the
gradients across processes. On two processes that is the one-process update up to floating-point order,
except the last batch of an epoch, whose odd size splits unevenly (15 + 14 rows here), so the mean of the two
shares' means is not quite the batch mean. After 3 epochs on digits this moves the final accuracies by at
most a few samples and the losses by about 1e-4: the tolerances below are 0.005 in accuracy (7 of 1,437
training rows) and 2e-3 in loss.

How it is launched: `accelerate launch --cpu --num_processes 2` starts a single process unless MPI is set up
(accelerate's multi-CPU launcher is mpirun), so the test uses accelerate's torchrun launcher (`--multi_gpu`)
with ``ACCELERATE_USE_CPU=true``, which gives the same thing on a machine without GPUs: two processes in a
gloo process group. The script checks that it really is that (2 processes, MULTI_CPU, gloo, a DDP module).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
import torch
from torch import nn

from ready2unlearn import DataConfig, TrainConfig, fit, load_split
from ready2unlearn.config import from_dict

pytest.importorskip("accelerate")

SCRIPT = """
import json, sys
import torch
from torch import nn
from accelerate import PartialState
from ready2unlearn import DataConfig, TrainConfig, fit, load_split
from ready2unlearn.config import from_dict
import ready2unlearn.engine.fit as engine

wrapped = []
real_accelerator = engine._accelerator


def spy():  # records the module `fit` trains through
    accel = real_accelerator()
    prepare = accel.prepare

    def record(*objs):
        out = prepare(*objs)
        wrapped.append(type(out[0]).__name__)
        return out

    accel.prepare = record
    return accel


engine._accelerator = spy
torch.set_num_threads(1)
cfg = from_dict(TrainConfig, json.loads(sys.argv[2]))
split = load_split(DataConfig(name="digits"))
torch.manual_seed(0)
model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
result = fit(model, split.train, split.test, cfg, show_progress=False)
state = PartialState()
if state.is_main_process:
    info = {"metrics": result.metrics, "processes": state.num_processes, "type": str(state.distributed_type),
            "backend": state.backend, "module": wrapped}
    with open(sys.argv[1], "w") as f:
        json.dump(info, f)
"""

CONFIG = {"epochs": 3, "batch_size": 128, "seed": 0, "optim": {"lr": 0.003}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_process() -> dict[str, float]:
    cfg = from_dict(TrainConfig, CONFIG)
    split = load_split(DataConfig(name="digits"))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    return fit(model, split.train, split.test, cfg, show_progress=False).metrics


def test_fit_on_two_processes_matches_one(tmp_path):
    launcher = shutil.which("accelerate", path=os.path.dirname(sys.executable)) or shutil.which("accelerate")
    if launcher is None:
        pytest.skip("the accelerate command is not installed")
    script, out = tmp_path / "fit_digits.py", tmp_path / "metrics.json"
    script.write_text(SCRIPT, encoding="utf-8")
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--main_process_port", str(free_port()), "--mixed_precision", "no", "--dynamo_backend", "no",
           str(script), str(out), json.dumps({**CONFIG, "accelerate": True})]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads(out.read_text(encoding="utf-8"))
    assert two["processes"] == 2 and two["type"] == "DistributedType.MULTI_CPU" and two["backend"] == "gloo"
    assert two["module"] == ["DistributedDataParallel"]

    one = one_process()
    for key in ("train_accuracy", "test_accuracy"):
        assert two["metrics"][key] == pytest.approx(one[key], abs=0.005)
    for key in ("train_loss", "test_loss"):
        assert two["metrics"][key] == pytest.approx(one[key], abs=2e-3)
    assert one["test_accuracy"] > 0.8  # a model that learned something, so the comparison means something
