"""hrnet_pose.streams.tracking: One Euro filter against the authors' ground truth and on pixel-keypoint jitter, stable
track ids on synthetic crossing / disappearing figures, boxes carried from poses."""

import os

import numpy as np
import pytest

from hrnet_pose.streams.tracking import OneEuroFilter, PoseTracker, boxes_from_poses
from hrnet_pose.keypoints import COCO_SIGMAS

from testpaths import FIXTURES

FPS = 30.0

# A standing COCO-17 person, unit height, centred on the hips' midpoint (x right, y down).
_TEMPLATE = np.array([
    [0.0, -0.85], [-0.03, -0.88], [0.03, -0.88], [-0.07, -0.86], [0.07, -0.86],
    [-0.18, -0.65], [0.18, -0.65], [-0.24, -0.38], [0.24, -0.38], [-0.27, -0.12], [0.27, -0.12],
    [-0.11, 0.0], [0.11, 0.0], [-0.12, 0.38], [0.12, 0.38], [-0.13, 0.75], [0.13, 0.75],
])


def _figure(centre, height, rng, noise=1.5):
    kpts = _TEMPLATE * height + np.asarray(centre, dtype=np.float64)
    return kpts + rng.normal(0.0, noise, kpts.shape)


def _box(kpts):
    lo, hi = kpts.min(axis=0), kpts.max(axis=0)
    pad = (hi - lo) * 0.1
    return np.concatenate([lo - pad, hi + pad])


def _frame(figures):
    """figures: list of keypoints [17,2] -> keypoints [N,17,2], scores [N,17], boxes [N,4]."""
    if not figures:
        return np.zeros((0, 17, 2)), np.zeros((0, 17)), np.zeros((0, 4))
    kpts = np.stack(figures)
    return kpts, np.full(kpts.shape[:2], 0.9), np.stack([_box(k) for k in kpts])


# ---------------------------------------------------------------- One Euro filter


def test_one_euro_matches_the_authors_ground_truth():
    # first 61 rows of casiez/OneEuroFilter groundTruth.csv: 120 Hz, mincutoff 1, beta 0.1, dcutoff 1
    data = np.genfromtxt(os.path.join(FIXTURES, "one_euro_ground_truth.csv"), delimiter=",", names=True)
    filt = OneEuroFilter(min_cutoff=1.0, beta=0.1, d_cutoff=1.0)
    out = np.array([filt(np.array(x), i / 120.0) for i, x in enumerate(data["noisy"])])
    assert out[0] == data["noisy"][0]
    # the csv prints 6 significant digits of values below 0.6: each rounded by at most 5e-7. The filtered column's
    # own rounding (5e-7) plus that of the noisy inputs it averages (a convex combination: at most 5e-7 more); the
    # inputs' rounding moves the adaptive cutoff by ~1e-5 Hz, far below 1e-7 in the output
    np.testing.assert_allclose(out, data["filtered"], atol=1.1e-6, rtol=0)


def _jitter(x):
    return np.abs(np.diff(x, axis=0)).mean()


def test_one_euro_default_reduces_static_jitter():
    # 17 keypoints x 2 coordinates, gaussian noise sigma 2 px around fixed points, 30 fps, 10 s
    rng = np.random.default_rng(0)
    truth = rng.uniform(100, 500, (17, 2))
    noisy = truth + rng.normal(0.0, 2.0, (300, 17, 2))
    filt = OneEuroFilter()
    out = np.array([filt(noisy[i], i / FPS) for i in range(len(noisy))])
    ratio = _jitter(noisy[30:]) / _jitter(out[30:])
    # measured 5.1x with the defaults (min_cutoff 1 Hz, beta 0.05)
    assert ratio > 3.5, ratio
    # smoothing must not drift away from the truth
    assert np.abs(out[30:] - truth).mean() < np.abs(noisy[30:] - truth).mean()


def test_one_euro_default_follows_a_step_quickly():
    # a 100 px jump: the output is within 1 px of the new value 2 frames after the step frame (default parameters)
    x = np.zeros((60, 17, 2))
    x[20:] = 100.0
    filt = OneEuroFilter()
    out = np.array([filt(x[i], i / FPS) for i in range(len(x))])
    np.testing.assert_array_equal(out[:20], 0.0)
    err = np.abs(out[20:] - 100.0).max(axis=(1, 2))
    settled = int(np.argmax(err <= 1.0))
    assert err[settled:].max() <= 1.0
    assert settled <= 4, settled  # measured: 2
    # and a small 10 px move is followed too: within 10% of it 3 frames after the step frame (measured)
    x[20:] = 10.0
    filt = OneEuroFilter()
    out = np.array([filt(x[i], i / FPS) for i in range(len(x))])
    assert np.abs(out[20 + 5:] - 10.0).max() <= 1.0


def test_one_euro_nan_elements_pass_through_and_keep_state():
    filt = OneEuroFilter()
    first = filt(np.array([1.0, np.nan]), 0.0)
    np.testing.assert_array_equal(first, [1.0, np.nan])
    second = filt(np.array([np.inf, 5.0]), 1 / FPS)
    assert second[0] == np.inf and second[1] == 5.0  # 5.0: first sighting of element 1 passes through
    third = filt(np.array([1.0, 5.0]), 2 / FPS)
    np.testing.assert_allclose(third, [1.0, 5.0])


def test_one_euro_rejects_bad_parameters_and_shape_change():
    with pytest.raises(ValueError, match="min_cutoff"):
        OneEuroFilter(min_cutoff=0.0)
    with pytest.raises(ValueError, match="beta"):
        OneEuroFilter(beta=-1.0)
    filt = OneEuroFilter()
    filt(np.zeros(3), 0.0)
    with pytest.raises(ValueError, match="shape"):
        filt(np.zeros(4), 1.0)


# ---------------------------------------------------------------- tracker


def _crossing_sequence(rng, frames=60):
    """Two people of the same height walking towards each other along the same line (they pass at frame 30.25, when
    only their motion tells them apart) and a child walking up across the first one's path at frame 15."""
    seq = []
    for f in range(frames):
        a = _figure((100 + 10 * f, 300), 200, rng)
        b = _figure((705 - 10 * f, 303), 200, rng)
        c = _figure((250, 600 - 20 * f), 150, rng)
        seq.append([a, b, c])
    return seq


@pytest.mark.parametrize("metric", ["oks", "iou"])
def test_ids_stay_stable_through_a_crossing(metric):
    rng = np.random.default_rng(1)
    tracker = PoseTracker(COCO_SIGMAS, metric=metric)
    for f, figures in enumerate(_crossing_sequence(rng)):
        order = [[0, 1, 2], [2, 1, 0], [1, 2, 0]][f % 3]  # detector order must not matter
        kpts, scores, boxes = _frame([figures[i] for i in order])
        ids, out = tracker.update(kpts, scores, boxes, f / FPS)
        np.testing.assert_array_equal(out, kpts)  # smooth=False returns the input
        assert ids.dtype == np.int64
        by_figure = dict(zip(order, ids.tolist()))
        assert by_figure == {0: 0, 1: 1, 2: 2}, (f, by_figure)


def _run_with_gap(max_age, gap, stop_while_hidden=False):
    """Figure 0 walks steadily; figure 1 walks down (12 px a frame) and is missing for `gap` frames from frame 10,
    optionally standing still while hidden."""
    rng = np.random.default_rng(2)
    tracker = PoseTracker(COCO_SIGMAS, max_age=max_age)
    history = []
    for f in range(10 + gap + 10):
        moved = f if not stop_while_hidden else min(f, 10) + max(0, f - 10 - gap)
        figures = {0: _figure((100 + 5 * f, 300), 200, rng), 1: _figure((600, 200 + 12 * moved), 180, rng)}
        present = [0] if 10 <= f < 10 + gap else [0, 1]
        ids, _ = tracker.update(*_frame([figures[i] for i in present]), f / FPS)
        history.append(dict(zip(present, ids.tolist())))
    return history


@pytest.mark.parametrize("stop_while_hidden", [False, True])
def test_a_figure_back_within_max_age_keeps_its_id(stop_while_hidden):
    history = _run_with_gap(max_age=5, gap=5, stop_while_hidden=stop_while_hidden)
    # unmatched for exactly max_age frames: still alive
    assert all(h[0] == 0 for h in history)
    assert all(h[1] == 1 for h in history if 1 in h)


def test_a_figure_back_after_max_age_gets_a_new_id():
    history = _run_with_gap(max_age=5, gap=6)
    assert all(h[0] == 0 for h in history)
    assert [h[1] for h in history[:10]] == [1] * 10
    assert [h[1] for h in history[16:]] == [2] * 10  # new id, never a reused one


def test_reset_and_empty_frames():
    rng = np.random.default_rng(3)
    tracker = PoseTracker(COCO_SIGMAS, max_age=1)
    fig = _figure((300, 300), 200, rng)
    assert tracker.update(*_frame([fig]), 0.0)[0].tolist() == [0]
    ids, out = tracker.update(*_frame([]), 1 / FPS)
    assert ids.shape == (0,) and out.shape == (0, 17, 2)
    assert tracker.update(*_frame([fig]), 2 / FPS)[0].tolist() == [0]
    tracker.reset()
    assert tracker.num_tracks == 0
    assert tracker.update(*_frame([fig]), 3 / FPS)[0].tolist() == [0]


def test_smoothing_is_per_track():
    rng = np.random.default_rng(4)
    tracker = PoseTracker(COCO_SIGMAS, smooth=True)
    raw, smoothed = [], []
    for f in range(90):
        kpts, scores, boxes = _frame([_figure((200, 300), 200, rng, noise=2.0),
                                      _figure((500, 300), 200, rng, noise=2.0)])
        ids, out = tracker.update(kpts, scores, boxes, f / FPS)
        assert ids.tolist() == [0, 1]
        raw.append(kpts)
        smoothed.append(out)
    raw, smoothed = np.array(raw), np.array(smoothed)
    np.testing.assert_array_equal(smoothed[0], raw[0])
    assert _jitter(raw[30:]) / _jitter(smoothed[30:]) > 3.0
    # each person's smoothed pose stays on that person (no state shared between tracks)
    for person, cx in enumerate([200, 500]):
        assert abs(smoothed[30:, person, :, 0].mean() - cx) < 3.0


def test_tracker_rejects_bad_input():
    with pytest.raises(ValueError, match="metric"):
        PoseTracker(COCO_SIGMAS, metric="euclid")
    with pytest.raises(ValueError, match="max_age"):
        PoseTracker(COCO_SIGMAS, max_age=-1)
    tracker = PoseTracker(COCO_SIGMAS)
    with pytest.raises(ValueError, match=r"\[N,17,2\]"):
        tracker.update(np.zeros((1, 5, 2)), np.zeros((1, 5)), np.zeros((1, 4)), 0.0)


# ---------------------------------------------------------------- boxes from poses


def test_boxes_from_poses_pads_and_clips():
    kpts = np.array([[[10.0, 20.0], [30.0, 60.0], [1000.0, 1000.0]]])
    scores = np.array([[0.9, 0.8, 0.1]])  # the far point is not confident: ignored
    box = boxes_from_poses(kpts, scores, kpt_thr=0.3, padding=1.5)
    np.testing.assert_allclose(box, [[5.0, 10.0, 35.0, 70.0]])
    clipped = boxes_from_poses(kpts, scores, kpt_thr=0.3, image_size=(32, 64), padding=1.5)
    np.testing.assert_allclose(clipped, [[5.0, 10.0, 32.0, 64.0]])


def test_boxes_from_poses_are_valid_or_nan():
    kpts = np.array([
        [[10.0, 10.0], [20.0, 20.0], [30.0, 30.0]],  # fine
        [[10.0, 10.0], [20.0, 20.0], [30.0, 30.0]],  # one confident keypoint: the extent of all keypoints
        [[np.nan, 1.0], [np.inf, 2.0], [5.0, 5.0]],  # one finite keypoint: a min_size box around it
        [[7.0, 7.0], [7.0, 7.0], [7.0, 7.0]],  # no extent: min_size
        [[-90.0, 10.0], [-50.0, 20.0], [-60.0, 30.0]],  # entirely left of the image
        [[10.0, 10.0], [10.0, 40.0], [0.0, 0.0]],  # a vertical line: widened to min_size
        [[284.9, 50.75], [296.92, 50.75], [0.0, 0.0]],  # the flat pose (two joints on one row)
        [[-30.0, 50.0], [20.0, 60.0], [0.0, 0.0]],  # crossing the left border, centre outside: leaving
        [[np.nan, np.nan], [np.nan, 1.0], [np.inf, 0.0]],  # no finite keypoint: cannot be carried
    ])
    scores = np.array([[0.9] * 3, [0.9, 0.1, 0.1], [0.9] * 3, [0.9] * 3, [0.9] * 3, [0.9, 0.9, 0.0],
                       [0.9, 0.9, 0.0], [0.9, 0.9, 0.0], [0.9] * 3])
    boxes = boxes_from_poses(kpts, scores, image_size=(400, 100), min_size=4.0)
    np.testing.assert_allclose(boxes[0], [7.5, 7.5, 32.5, 32.5])
    np.testing.assert_allclose(boxes[1], [7.5, 7.5, 32.5, 32.5])
    np.testing.assert_allclose(boxes[2], [3.0, 3.0, 7.0, 7.0])
    np.testing.assert_allclose(boxes[3], [5.0, 5.0, 9.0, 9.0])
    np.testing.assert_allclose(boxes[5], [8.0, 6.25, 12.0, 43.75])
    np.testing.assert_allclose(boxes[6], [283.3975, 48.75, 298.4225, 52.75])
    assert np.isnan(boxes[[4, 7, 8]]).all()
    finite = np.isfinite(boxes).all(axis=1)
    assert (boxes[finite, 2] > boxes[finite, 0]).all() and (boxes[finite, 3] > boxes[finite, 1]).all()
    # per person (width, height) floors, e.g. half of each person's last detected box
    sized = boxes_from_poses(kpts[[6]], scores[[6]], image_size=(400, 100), min_size=np.array([[40.0, 60.0]]))
    np.testing.assert_allclose(sized, [[270.91, 20.75, 310.91, 80.75]])
    with pytest.raises(ValueError, match="min_size"):
        boxes_from_poses(kpts, scores, min_size=0.0)
    assert boxes_from_poses(np.zeros((0, 17, 2)), np.zeros((0, 17))).shape == (0, 4)
    with pytest.raises(ValueError, match=r"\[N,K,2\]"):
        boxes_from_poses(np.zeros((2, 17, 3)), np.zeros((2, 17)))


def test_boxes_from_poses_hold_and_max_size():
    kpts = np.array([[[10.0, 10.0], [90.0, 90.0], [50.0, 50.0]],  # two confident joints far apart
                     [[10.0, 10.0], [90.0, 90.0], [50.0, 50.0]]])  # one confident joint: the held box
    scores = np.array([[0.9, 0.9, 0.1], [0.9, 0.1, 0.1]])
    hold = np.array([[0.0, 0.0, 1.0, 1.0], [20.0, 30.0, 60.0, 90.0]])
    boxes = boxes_from_poses(kpts, scores, image_size=(200, 200), min_size=4.0, max_size=40.0, hold=hold)
    np.testing.assert_allclose(boxes, [[30.0, 30.0, 70.0, 70.0], [20.0, 30.0, 60.0, 90.0]])
