"""Tracking that keeps people (`StreamPoseEstimator`): a figure that walks out of the frame and back, a figure hidden
behind an occluder, and six figures with the detector every 5 frames. A lost person is searched for once in the
region around its last box and otherwise found by the scheduled detection; the full-frame detector does not run on
every frame while someone is missing.

The figures are the synthetic stick figures the quickstart model was trained on (tests/fixtures/SOURCES.md); the
detector for the single-figure clips looks at the pixels (`SyntheticFigureDetector`), so it also works on the zoomed
region of a search."""

import numpy as np
import pytest
import torch

from hrnet_pose.apis.estimator import PoseEstimator
from hrnet_pose.apis.stream import StreamPoseEstimator
from hrnet_pose.datasets import synthetic
from hrnet_pose.datasets.synthetic import synthetic_video
from hrnet_pose.datasets.synthetic_detector import SyntheticFigureDetector
from hrnet_pose.streams.tracking import PoseTracker

from testpaths import QUICKSTART_WEIGHTS, QUICKSTART_YAML

W, H = 640, 480  # the figure is a quarter of the height: the region searched (twice its box) is part of the frame
DET_INTERVAL = 5


@pytest.fixture(scope="module")
def figure():
    """One figure and the background it stands on: (background, figure pixels' rows, columns, colours)."""
    frames, _ = synthetic_video(1, (W, H), num_people=1, seed=3, height=0.25)
    background = synthetic._background(np.random.default_rng(3), W, H)  # the generator's own background
    ys, xs = np.nonzero((frames[0] != background).any(axis=2))
    return background, ys, xs, frames[0][ys, xs]


def _compose(figure, dx, occluder=None):
    """The figure moved `dx` pixels right (the part outside the frame cut off), optionally behind a grey occluder
    (x1, y1, x2, y2)."""
    background, ys, xs, colours = figure
    img = background.copy()
    x = xs + dx
    inside = (x >= 0) & (x < W)
    img[ys[inside], x[inside]] = colours[inside]
    if occluder is not None:
        x1, y1, x2, y2 = occluder
        img[y1:y2, x1:x2] = (128, 128, 128)
    return img


class _Counting:
    """Wraps a detector and records each call: the frame number when it saw the whole frame being processed
    (`self.frame`), "region" when it saw something else (a zoomed region)."""

    def __init__(self, detector, frames):
        self.detector, self.frames, self.frame, self.calls = detector, frames, -1, []

    def __call__(self, image):
        self.calls.append(self.frame if np.array_equal(image, self.frames[self.frame]) else "region")
        return self.detector(image)


def _run(frames, detector, **kwargs):
    est = PoseEstimator.from_config(QUICKSTART_YAML, QUICKSTART_WEIGHTS, device="cpu", detector=detector)
    # this model answers a mean keypoint score of ~0.35 on its background and ~0.95 on a figure
    stream = StreamPoseEstimator(est, det_interval=DET_INTERVAL, tracker=PoseTracker(est.keypoint_set.sigmas),
                                 min_pose_score=0.5, **kwargs)
    results = []
    for i, frame in enumerate(frames):
        detector.frame = i
        results.append(stream.process(frame, i / 25.0))
    for r in results:  # every box the stream used is one check_boxes accepts, inside the frame
        assert (r.boxes[:, 2] > r.boxes[:, 0]).all() and (r.boxes[:, 3] > r.boxes[:, 1]).all()
        assert (r.boxes >= 0).all() and (r.boxes[:, [0, 2]] <= W).all() and (r.boxes[:, [1, 3]] <= H).all()
    return stream, results


def test_a_figure_walks_out_of_the_frame_and_back(figure):
    # 20 px a frame to the right until it is gone, 6 frames away, then back the same way
    path = list(range(300, 560, 20)) + [560] * 6 + list(range(540, 299, -20))
    frames = [_compose(figure, dx) for dx in path]
    x_min, x_max = figure[2].min(), figure[2].max()
    assert x_min + 560 >= W
    detector = _Counting(SyntheticFigureDetector(), frames)
    stream, results = _run(frames, detector)
    scheduled = list(range(0, len(frames), DET_INTERVAL))
    regions = [c for c in detector.calls if c not in scheduled]
    # the pose on the carried box fails as the figure goes (its box's centre leaves the frame or the pose is
    # unreliable): one search in the region of its last box, then the schedule; never the detector on every frame
    assert [c for c in detector.calls if c in scheduled] == scheduled
    assert 1 <= len(regions) <= 3 and stream.region_calls == len(regions)
    assert stream.detector_calls == len(scheduled) + len(regions) <= 0.4 * len(frames)
    away = [i for i, dx in enumerate(path) if dx >= 560]
    assert all(len(results[i]) == 0 for i in away[1:])
    back = next(i for i, dx in enumerate(path) if i > away[-1] and x_max + dx < W)  # fully in view again
    found = next(i for i in range(back, len(frames)) if len(results[i]))
    assert found <= back + DET_INTERVAL - 1, "found again by the next scheduled detection at the latest"
    assert all(len(results[i]) == 1 for i in range(found, len(frames))), "then followed on every frame"
    assert len({int(results[i].track_ids[0]) for i in range(found, len(frames))}) == 1, "one id once back"


def test_an_occluded_figure_is_found_again_with_its_id(figure):
    # walking slowly right; hidden behind a grey board on frames 12-21 (lost off the schedule, on a carried frame)
    path = [4 * i for i in range(40)]
    hidden = range(12, 22)
    board = (0, figure[1].min() - 10, W, figure[1].max() + 10)
    frames = [_compose(figure, dx, board if i in hidden else None) for i, dx in enumerate(path)]
    detector = _Counting(SyntheticFigureDetector(), frames)
    stream, results = _run(frames, detector)
    scheduled = list(range(0, len(frames), DET_INTERVAL))
    # one search in the lost figure's region on frame 13 (a zoomed region: not a whole frame), nothing there
    assert detector.calls == scheduled[:3] + ["region"] + scheduled[3:]
    assert stream.region_calls == 1 and stream.detector_calls == len(scheduled) + 1
    assert all(len(results[i]) == 0 for i in hidden if i > 12)
    # visible again on frame 22, found by the scheduled detection on 25, with the id it had before
    assert all(len(results[i]) == 1 for i in list(range(12)) + list(range(25, 40)))
    assert {int(results[i].track_ids[0]) for i in list(range(12)) + list(range(25, 40))} == {0}


def test_a_region_search_finds_a_figure_the_carried_box_lost(figure):
    """The figure jumps 150 px between two frames (a dropped stretch of a live stream): the carried box is left on
    background, and the search around it finds the figure on the next frame, before the schedule would."""
    path = [100] * 6 + [250] * 4
    frames = [_compose(figure, dx) for dx in path]
    detector = _Counting(SyntheticFigureDetector(), frames)
    stream, results = _run(frames, detector)
    assert detector.calls == [0, 5, "region"]  # 6: the carried box misses; 7: the region search finds it
    # frame 6: the pose in the left-behind box is unreliable (reported with id -1, not carried on)
    assert results[6].track_ids.tolist() == [-1] and all(len(r) == 1 for r in results[7:])
    assert len({int(r.track_ids[0]) for r in results[7:]}) == 1 and results[7].track_ids[0] >= 0


@pytest.mark.parametrize("weights", ["trained", "random"])
def test_six_people_detector_on_a_fifth_of_the_frames(weights):
    """Goal of the issue: 6 persons, detector every 5 frames, nobody leaves -> the detector runs on <= 25% of the
    frames. With random weights (`--min-pose-score 0`, as the issue measured it) the confident joints are scattered
    or missing: the carried box is held or kept within twice the detected size instead of being dropped, so the
    detector no longer runs on every frame (it did on 30 of 30 frames of this clip before)."""
    frames, gt = synthetic_video(20, (640, 480), num_people=6, seed=1, height=0.3, spread=0.12)

    def perfect(image):  # the figures' own boxes (a user-supplied detector callable, as the API allows)
        i = keys.get(np.ascontiguousarray(image).tobytes())
        if i is None:
            return np.zeros((0, 4)), np.zeros(0)
        lo, hi = gt[i].min(axis=1), gt[i].max(axis=1)
        return np.concatenate([lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo)], axis=1), np.ones(len(gt[i]))

    keys = {f.tobytes(): i for i, f in enumerate(frames)}
    torch.manual_seed(0)
    est = PoseEstimator.from_config(QUICKSTART_YAML, QUICKSTART_WEIGHTS if weights == "trained" else None,
                                    device="cpu", detector=perfect)
    stream = StreamPoseEstimator(est, det_interval=DET_INTERVAL, tracker=PoseTracker(est.keypoint_set.sigmas),
                                 min_pose_score=0.5 if weights == "trained" else 0.0)
    results = [stream.process(frame, i / 30.0) for i, frame in enumerate(frames)]
    assert stream.detector_calls / len(frames) <= 0.25, stream.detector_calls
    assert all(len(r) == 6 for r in results)
    if weights == "trained":
        assert all(sorted(r.track_ids.tolist()) == list(range(6)) for r in results)


def test_a_pose_that_never_holds_waits_for_the_schedule(figure):
    """Random weights: every pose fails (mean keypoint score far under 0.3) although the detector finds the figure.
    A person the detector has just found is not searched for again on the next frame, so the detector runs on the
    schedule only, not on every frame (the long-run check saw 1000 detector runs in 1000 frames before)."""
    frames = [_compose(figure, 300 + 4 * i) for i in range(15)]
    torch.manual_seed(0)
    est = PoseEstimator.from_config(QUICKSTART_YAML, None, device="cpu", detector=SyntheticFigureDetector())
    stream = StreamPoseEstimator(est, det_interval=DET_INTERVAL, tracker=PoseTracker(est.keypoint_set.sigmas))
    results = [stream.process(frame, i / 25.0) for i, frame in enumerate(frames)]
    assert all(r.scores.mean() < 0.3 for r in results if len(r))
    assert stream.detector_calls == 3 and stream.region_calls == 0
