"""The demo schedule comparison runs both schedules on the same frames: the official one calls the detector on every
frame and the network once per person, ours batches persons and detects every N frames."""

import numpy as np

from hrnet_pose.benchmarks.demo import compare_demo_modes, format_demo_table, synthetic_720p_video
from hrnet_pose.apis.estimator import PoseEstimator

from testpaths import TINY_YAML


class _CountingBackend:
    """Wraps the real backend and counts forward passes and their batch sizes."""

    def __init__(self, backend):
        self.backend, self.name, self.batches = backend, backend.name, []

    def __call__(self, images):
        self.batches.append(len(images))
        return self.backend(images)


def test_schedules_differ_only_in_detector_calls_and_batching():
    frames = synthetic_720p_video(num_frames=6, num_people=3)
    assert frames.shape == (6, 720, 1280, 3)
    calls = []

    def detector(image):
        calls.append(1)
        return np.array([[100, 200, 300, 600], [500, 200, 700, 600], [900, 200, 1100, 600]], float), np.ones(3)

    est = PoseEstimator.from_config(TINY_YAML, None, device="cpu", detector=detector, flip_test=False)
    est.backend = _CountingBackend(est.backend)
    # random weights give low keypoint scores: carry boxes from every keypoint
    rows = compare_demo_modes(est, frames, det_interval=3, warmup=0, draw=False, carry_kpt_thr=0.0)
    assert [r["frames"] for r in rows] == [6, 6, 6]
    # official: 6 detector calls and 18 single-person forwards; ours: 6 calls + 6 batched forwards; then 2 calls
    assert len(calls) == 6 + 6 + 2
    assert est.backend.batches[:18] == [1] * 18 and est.backend.batches[18:24] == [3] * 6
    assert est.max_batch == 32  # restored
    assert "| official: detector every frame, 1 person per forward |" in format_demo_table(rows)
