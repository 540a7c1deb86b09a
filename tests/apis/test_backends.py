"""Which runtime runs the pose network (`apis.backends.build_backend`, `backend=` of `PoseEstimator.from_config` and
`--backend` of tools/demo.py): 'auto' is onnxruntime on a CPU and PyTorch on CUDA or with PyTorch-only options; without
onnxruntime, 'auto' is PyTorch with one log line saying what that costs and an explicit 'onnxruntime' is a one-line
user error; a .onnx file runs in onnxruntime; the stream estimator runs what its estimator runs."""

import logging
import os

import pytest
import torch

from hrnet_pose.apis import backends
from hrnet_pose.apis.demo import run_demo
from hrnet_pose.apis.estimator import PoseEstimator
from hrnet_pose.apis.stream import StreamPoseEstimator
from hrnet_pose.deploy import ort_cache
from hrnet_pose.errors import ConfigError, UserError, run_cli

from testpaths import MINI, TINY_YAML


@pytest.fixture()
def no_onnxruntime(monkeypatch):
    monkeypatch.setattr(ort_cache, "missing_packages", lambda: ["onnxruntime"])


def test_auto_is_onnxruntime_on_cpu_and_pytorch_on_cuda(monkeypatch):
    assert backends.choose_backend("auto", "w.pth", "cpu") == "onnxruntime"
    assert backends.choose_backend("torch", "w.pth", "cpu") == "torch"
    assert backends.choose_backend("onnxruntime", None, "cpu") == "onnxruntime"
    assert backends.choose_backend("auto", "w.onnx", "cpu") == "onnxruntime"
    assert backends.choose_backend("auto", "w.pth", "cpu", channels_last=True) == "torch"  # a PyTorch option
    monkeypatch.setattr(backends, "resolve_device", lambda device: torch.device("cuda", 0))
    assert backends.choose_backend("auto", "w.pth", "cuda") == "torch"
    assert backends.choose_backend("onnxruntime", "w.pth", "cuda") == "onnxruntime"  # asked for: the CUDA provider


def test_wrong_backend_names_and_combinations_are_user_errors(tiny_weights):
    with pytest.raises(ConfigError, match="valid: auto, torch, onnxruntime"):
        backends.choose_backend("tensorrt", "w.pth", "cpu")
    with pytest.raises(UserError, match="ONNX file"):
        backends.choose_backend("torch", "w.onnx", "cpu")
    with pytest.raises(UserError, match="PyTorch options"):
        PoseEstimator.from_config(TINY_YAML, tiny_weights, device="cpu", backend="onnxruntime", channels_last=True)


def test_without_onnxruntime_auto_is_pytorch_with_one_line(no_onnxruntime, tiny_weights, caplog):
    with caplog.at_level(logging.INFO, logger="hrnet_pose"):
        est = PoseEstimator.from_config(TINY_YAML, tiny_weights, device="cpu")
    assert est.backend.name == "torch"
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert lines == ["onnxruntime is not installed: running the pose network in PyTorch, about 2x slower on a CPU; "
                     "pip install onnxruntime"]
    with pytest.raises(UserError, match="needs onnxruntime: pip install onnxruntime"):
        PoseEstimator.from_config(TINY_YAML, tiny_weights, device="cpu", backend="onnxruntime")


def test_demo_backend_flag(no_onnxruntime, tiny_weights, tmp_path, capsys):
    image = os.path.join(MINI, "images", "000000000785.jpg")
    common = [image, "--config", TINY_YAML, "--weights", tiny_weights, "--device", "cpu", "--det-model", "none",
              "--no-progress", "--no-save", "--out-dir", str(tmp_path)]
    assert run_cli(run_demo, common + ["--backend", "onnxruntime"]) == 2
    err = capsys.readouterr().err
    assert "needs onnxruntime" in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2
    assert run_demo(common + ["--backend", "torch"]).frames == 1


def test_stream_estimator_runs_the_default_backend(tiny_weights):
    est = PoseEstimator.from_config(TINY_YAML, tiny_weights, device="cpu")
    assert est.backend.name == "onnxruntime" and est.backend.path.startswith(ort_cache.cache_dir())
    result = StreamPoseEstimator(est).process(os.path.join(MINI, "images", "000000000785.jpg"), 0.0,
                                              boxes=[[100, 60, 400, 420]])
    assert result.keypoints.shape == (1, 17, 2)
