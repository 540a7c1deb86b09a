"""Checkpoint I/O: atomic saves survive failures and kills, RNG states round-trip, official key names."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torch.nn as nn

from hrnet_pose.engine import checkpoint as ckpt_io


class _Unpicklable:
    def __reduce__(self):
        raise RuntimeError("disk full (simulated)")


def test_atomic_save_failure_keeps_previous(tmp_path):
    path = str(tmp_path / "checkpoint.pth")
    ckpt_io.atomic_save({"epoch": 1, "w": torch.ones(3)}, path)
    with pytest.raises(RuntimeError, match="disk full"):
        ckpt_io.atomic_save({"epoch": 2, "w": torch.zeros(3), "bad": _Unpicklable()}, path)
    loaded = torch.load(path, weights_only=True)
    assert loaded["epoch"] == 1 and torch.equal(loaded["w"], torch.ones(3))
    assert os.listdir(tmp_path) == ["checkpoint.pth"]  # no temporary file left behind


_WRITER = r"""
import torch
from hrnet_pose.engine.checkpoint import atomic_save
big = torch.arange(4_000_000, dtype=torch.float64)  # 32 MB: a save takes a while
print("ready", flush=True)
epoch = 1
while True:
    epoch += 1
    atomic_save({{"epoch": epoch, "w": big + epoch}}, {path!r})
"""


def test_kill_during_save_leaves_loadable_checkpoint(tmp_path):
    path = str(tmp_path / "checkpoint.pth")
    ckpt_io.atomic_save({"epoch": 1, "w": torch.arange(4_000_000, dtype=torch.float64) + 1}, path)
    proc = subprocess.Popen([sys.executable, "-c", _WRITER.format(path=path)], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"ready"
    time.sleep(1.0)  # several saves are under way; the kill lands at an arbitrary point of one
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    loaded = torch.load(path, weights_only=True)
    assert loaded["epoch"] >= 1
    assert torch.equal(loaded["w"], torch.arange(4_000_000, dtype=torch.float64) + loaded["epoch"])


def test_rng_state_round_trip_through_file(tmp_path):
    torch.manual_seed(1)
    np.random.seed(2)
    import random

    random.seed(3)
    random.gauss(0, 1)  # leaves a cached gaussian in python's state
    np.random.randn()
    state = ckpt_io.capture_rng_state()
    ckpt_io.atomic_save({"rng": state}, str(tmp_path / "rng.pth"))
    first = (torch.rand(3), np.random.rand(3), np.random.randn(), random.random(), random.gauss(0, 1))
    ckpt_io.restore_rng_state(torch.load(str(tmp_path / "rng.pth"), weights_only=True)["rng"])
    second = (torch.rand(3), np.random.rand(3), np.random.randn(), random.random(), random.gauss(0, 1))
    assert torch.equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    assert first[2:] == second[2:]


def test_bare_state_dict_strips_wrappers():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    wrapped = nn.DataParallel(model)
    assert list(wrapped.state_dict())[0].startswith("module.")
    bare = ckpt_io.bare_state_dict(wrapped)
    assert list(bare) == list(model.state_dict())
    assert list(ckpt_io.bare_state_dict(wrapped.state_dict())) == list(model.state_dict())
    bare["0.weight"].fill_(0)  # a copy: the model is untouched
    assert model[0].weight.abs().sum() > 0


def test_state_is_finite():
    state = {"a": torch.ones(2), "n": torch.tensor(3)}
    assert ckpt_io.state_is_finite(state)
    state["a"][1] = float("nan")
    assert not ckpt_io.state_is_finite(state)


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        ckpt_io.load_checkpoint(str(tmp_path / "missing.pth"))
    plain = str(tmp_path / "plain.pth")
    torch.save({"conv.weight": torch.ones(1)}, plain)
    with pytest.raises(ValueError, match="not a training checkpoint"):
        ckpt_io.load_checkpoint(plain)
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a zip file")
    with pytest.raises(RuntimeError, match="could not read checkpoint"):
        ckpt_io.load_checkpoint(str(broken))
