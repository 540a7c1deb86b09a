"""Streams end to end with a trained model: figures that walk across each other, detection every 5 frames with boxes
carried from the poses in between, greedy OKS tracking. Uses the quickstart model trained on the synthetic figures
(tests/fixtures/synthetic_quickstart_hrnet.pth, see SOURCES.md)."""

import numpy as np
import pytest

from hrnet_pose.apis.estimator import PoseEstimator
from hrnet_pose.apis.stream import StreamPoseEstimator
from hrnet_pose.streams.tracking import PoseTracker
from hrnet_pose.datasets.synthetic import synthetic_video

from testpaths import QUICKSTART_WEIGHTS, QUICKSTART_YAML

NUM_FRAMES = 40


@pytest.fixture(scope="module")
def video():
    # the two figures pass each other 0.25 image heights apart: their boxes overlap by about half mid-sequence
    return synthetic_video(NUM_FRAMES, (320, 240), num_people=2, seed=3, height=0.5, spread=0.25)


def _gt_boxes(kpts):
    lo, hi = kpts.min(axis=1), kpts.max(axis=1)
    pad = 0.1 * (hi - lo)
    return np.concatenate([lo - pad, hi + pad], axis=1)


def _run(video, det_interval):
    frames, gt = video
    calls = []

    def detector(image):
        # a perfect person detector for this synthetic video (a user-supplied callable, as the API allows)
        index = next(i for i in range(NUM_FRAMES) if np.array_equal(frames[i], image))
        calls.append(index)
        return _gt_boxes(gt[index]), np.ones(len(gt[index]))

    estimator = PoseEstimator.from_config(QUICKSTART_YAML, QUICKSTART_WEIGHTS, device="cpu", detector=detector)
    stream = StreamPoseEstimator(estimator, det_interval=det_interval,
                                 tracker=PoseTracker(estimator.keypoint_set.sigmas))
    results = [stream.process(frame, i / 25.0) for i, frame in enumerate(frames)]
    return results, gt, calls


def _errors(result, gt_frame):
    """[P, N] mean keypoint distance between ground-truth person p and predicted person n."""
    d = np.linalg.norm(gt_frame[:, None] - result.keypoints[None], axis=-1)
    return d.mean(axis=-1)


@pytest.mark.parametrize("det_interval", [1, 5])
def test_track_ids_stable_and_poses_follow_between_detections(video, det_interval):
    results, gt, calls = _run(video, det_interval)
    assert calls == list(range(0, NUM_FRAMES, det_interval))
    height = np.ptp(gt[0, 0, :, 1])
    ids_of = {0: set(), 1: set()}
    errors = []
    for i, result in enumerate(results):
        assert len(result) == 2, f"frame {i}: {len(result)} persons"
        err = _errors(result, gt[i])
        match = err.argmin(axis=1)
        assert match[0] != match[1], f"frame {i}: both figures matched the same pose"
        for p in (0, 1):
            ids_of[p].add(int(result.track_ids[match[p]]))
            errors.append(err[p, match[p]] / height)
    # one id per figure over the whole sequence, crossing included, and different ids for the two figures
    assert len(ids_of[0]) == 1 and len(ids_of[1]) == 1 and ids_of[0] != ids_of[1]
    # the poses follow the figures on carried frames too: per person and frame, the mean keypoint error stays a small
    # fraction of the figure's height (a box left behind by a walking figure would give errors near 1)
    print(f"det_interval {det_interval}: keypoint error / figure height: mean {np.mean(errors):.3f}, "
          f"max {np.max(errors):.3f}")
    assert np.mean(errors) < 0.06 and np.max(errors) < 0.2, (np.mean(errors), np.max(errors))


def test_process_takes_what_the_estimator_takes(tmp_path):
    """A frame given as a path equals the same frame as an array, and `flip_test` overrides the estimator's setting
    exactly as `PoseEstimator.__call__` does."""
    import cv2

    frame = synthetic_video(1, (320, 240), num_people=1, seed=5, height=0.6)[0][0]
    path = str(tmp_path / "frame.png")  # lossless, so the file holds the array's pixels
    assert cv2.imwrite(path, frame)
    est = PoseEstimator.from_config(QUICKSTART_YAML, QUICKSTART_WEIGHTS, device="cpu", flip_test=True)
    box = np.array([[60, 20, 260, 220]], np.float32)
    from_path = StreamPoseEstimator(est).process(path, 0.0, boxes=box, flip_test=False)
    from_array = StreamPoseEstimator(est).process(frame, 0.0, boxes=box, flip_test=False)
    np.testing.assert_array_equal(from_path.keypoints, from_array.keypoints)
    np.testing.assert_array_equal(from_array.keypoints, est(frame, boxes=box, flip_test=False).keypoints)
    flipped = StreamPoseEstimator(est).process(frame, 0.0, boxes=box)  # the estimator's own setting: flip test on
    np.testing.assert_array_equal(flipped.keypoints, est(frame, boxes=box).keypoints)
    assert not np.array_equal(flipped.scores, from_array.scores)  # the override changed what ran
