"""Fixtures of the serve tests: the synthetic quickstart model (tests/fixtures/synthetic_quickstart_hrnet.pth) in
PyTorch, images of its stick figures, and a real server on 127.0.0.1 started and stopped by each test module."""

import os
import sys

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install -e .[serve])")
pytest.importorskip("httpx", reason="httpx (the dev extra) is not installed")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from hrnet_pose.apis.estimator import PoseEstimator  # noqa: E402
from hrnet_pose.datasets.synthetic import synthetic_video  # noqa: E402

from testpaths import QUICKSTART_WEIGHTS, QUICKSTART_YAML  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


@pytest.fixture(scope="session")
def quickstart() -> PoseEstimator:
    """The quickstart model, no detector (the whole image is one person unless boxes are given)."""
    return PoseEstimator.from_config(QUICKSTART_YAML, QUICKSTART_WEIGHTS, device="cpu", backend="torch")


@pytest.fixture(scope="session")
def figures():
    """Two 256x192 frames with two stick figures each, their JPEG bytes, and each frame's figure boxes."""
    frames, kpts = synthetic_video(2, (256, 192), num_people=2, seed=5, height=0.55, spread=0.3)
    jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes() for f in frames]
    lo, hi = kpts.min(axis=2), kpts.max(axis=2)
    boxes = [np.concatenate([lo[t] - 8, hi[t] + 8], axis=1) for t in range(len(frames))]
    return frames, jpegs, boxes
