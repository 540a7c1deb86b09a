"""hrnet_pose.visualization: pixels change where joints, limbs, boxes, labels, timings and heatmaps are drawn and
nowhere else; thresholds, NaN, empty input, custom keypoint sets, size scaling, copy semantics."""

import os

import numpy as np
import pytest

from hrnet_pose.keypoints import COCO17, KeypointSet, load_keypoint_set
from hrnet_pose.visualization import (
    default_sizes, draw_poses, draw_timings, id_color, keypoint_colors, overlay_heatmaps,
)
from testpaths import FIXTURES

BACKGROUND = 90


def _canvas(h=240, w=320):
    return np.full((h, w, 3), BACKGROUND, dtype=np.uint8)


def _star():
    """One star5 person: head on top, hands left/right, feet below (fits in x 100..220, y 40..200)."""
    kpts = np.array([[[160.0, 40.0], [100.0, 100.0], [220.0, 100.0], [120.0, 200.0], [200.0, 200.0]]])
    return kpts, np.ones((1, 5))


def _changed(a, b):
    return np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 0


def test_joints_and_limbs_are_drawn_and_nothing_far_away():
    kset = load_keypoint_set(os.path.join(FIXTURES, "keypoints_5.yaml"))
    image = _canvas()
    kpts, scores = _star()
    out = draw_poses(image, kpts, scores, kset, radius=4, thickness=2)
    colors = keypoint_colors(kset)
    for j, (x, y) in enumerate(kpts[0].astype(int)):
        np.testing.assert_array_equal(out[y, x], colors[j])  # the centre of a filled joint has its exact colour
    for a, b in kset.skeleton:  # every limb's midpoint is drawn
        mx, my = ((kpts[0, a] + kpts[0, b]) / 2).round().astype(int)
        assert _changed(out, image)[my, mx]
    changed = _changed(out, image)
    ys, xs = np.nonzero(changed)
    assert xs.min() >= 100 - 6 and xs.max() <= 220 + 6 and ys.min() >= 40 - 6 and ys.max() <= 200 + 6
    assert changed.sum() > 500


def test_threshold_hides_low_score_joints_and_their_limbs():
    kset = load_keypoint_set(os.path.join(FIXTURES, "keypoints_5.yaml"))
    image = _canvas()
    kpts, scores = _star()
    scores[0, 2] = 0.2  # right hand
    out = draw_poses(image, kpts, scores, kset, kpt_thr=0.3, radius=4, thickness=2)
    changed = _changed(out, image)
    assert not changed[100, 220]
    assert not changed[70, 190]  # midpoint of head -> right hand
    assert changed[100, 100] and changed[70, 130]  # the left hand and its limb are still there
    # the threshold is inclusive
    assert _changed(draw_poses(image, kpts, scores, kset, kpt_thr=0.2), image)[100, 220]


def test_coco_left_and_right_have_their_colours_and_derived_colours_differ():
    colors = keypoint_colors(COCO17)
    names = COCO17.names
    np.testing.assert_array_equal(colors[names.index("left_wrist")], [0, 128, 255])  # orange in BGR
    np.testing.assert_array_equal(colors[names.index("right_wrist")], [255, 128, 0])  # blue in BGR
    # a custom set without colours: sides from the names, else a palette of distinct colours
    kset = load_keypoint_set(os.path.join(FIXTURES, "keypoints_5.yaml"))
    bare = KeypointSet(name="bare", names=kset.names, flip_pairs=kset.flip_pairs, sigmas=kset.sigmas,
                       skeleton=kset.skeleton, upper_body_ids=kset.upper_body_ids, colors=())
    derived = keypoint_colors(bare)
    assert not np.array_equal(derived[1], derived[2])  # left_hand vs right_hand
    np.testing.assert_array_equal(derived[1], derived[3])  # left hand and foot: same side
    anon = KeypointSet(name="anon", names=("a", "b", "c"), flip_pairs=(), sigmas=np.ones(3) * 0.1,
                       skeleton=((0, 1), (1, 2)), upper_body_ids=(0,), colors=())
    assert len({tuple(c) for c in keypoint_colors(anon).tolist()}) == 3
    kpts, scores = _star()
    out = draw_poses(_canvas(), kpts, scores, bare, radius=4)
    np.testing.assert_array_equal(out[100, 100], derived[1])


def test_empty_and_non_finite_inputs():
    image = _canvas()
    for kpts, scores in [(np.zeros((0, 17, 2)), np.zeros((0, 17))), ([], [])]:
        np.testing.assert_array_equal(draw_poses(image, kpts, scores, COCO17, boxes=np.zeros((0, 4)),
                                                 draw_bbox=True), image)
    kset = load_keypoint_set(os.path.join(FIXTURES, "keypoints_5.yaml"))
    kpts, scores = _star()
    kpts[0, 1] = np.nan  # left hand unknown
    kpts[0, 3, 0] = np.inf  # left foot off to infinity
    scores[0, 4] = np.nan  # right foot score unknown
    boxes = np.array([[np.nan, 0.0, 10.0, 10.0]])
    out = draw_poses(image, kpts, scores, kset, radius=4, boxes=boxes, box_scores=[np.nan], track_ids=[3],
                     draw_bbox=True)
    changed = _changed(out, image)
    assert changed[40, 160] and changed[70, 190]  # head and the head -> right hand limb
    assert not changed[200, 200] and not changed[150, 180]  # right foot and its limb
    assert not changed[150, 140]  # head -> left foot limb (left foot at infinity)
    huge = draw_poses(image, np.array([[[1e12, -1e12]] * 5]), np.ones((1, 5)), kset)
    assert huge.shape == image.shape


def test_default_sizes_scale_with_the_image():
    assert default_sizes((1080, 1920, 3)) == (6, 4)
    assert default_sizes((240, 320)) == (2, 1)
    assert default_sizes((480, 640, 3)) == (3, 2)
    assert default_sizes((1920, 1080)) == (6, 4)  # portrait: the shorter side decides
    r4k, t4k = default_sizes((2160, 3840, 3))
    assert r4k > 5 and t4k > 3
    with pytest.raises(ValueError, match="image shape"):
        default_sizes((0, 10))
    # the defaults are what draw_poses uses: a 1080p joint is a filled disc of radius 6
    big = np.zeros((1080, 1920, 3), dtype=np.uint8)
    out = draw_poses(big, np.array([[[500.0, 500.0]] * 17]), np.ones((1, 17)) * np.eye(17)[0], COCO17)
    ys, xs = np.nonzero(out.max(axis=2) > 0)
    assert 11 <= xs.max() - xs.min() + 1 <= 15


def test_boxes_track_ids_and_copy_semantics():
    image = _canvas()
    before = image.copy()
    kpts, scores = _star()
    kset = load_keypoint_set(os.path.join(FIXTURES, "keypoints_5.yaml"))
    box = np.array([[90.0, 30.0, 230.0, 210.0]])
    out = draw_poses(image, kpts, scores, kset, boxes=box, track_ids=np.array([7]), draw_bbox=True, thickness=3)
    np.testing.assert_array_equal(image, before)  # copy=True leaves the input alone
    assert out is not image
    np.testing.assert_array_equal(out[120, 230], id_color(7))  # right edge, away from the label
    assert id_color(7) != id_color(8)
    moved = draw_poses(image, kpts + 20, scores, kset, boxes=box + 20, track_ids=np.array([7]), draw_bbox=True,
                       thickness=3)
    np.testing.assert_array_equal(moved[140, 250], id_color(7))  # same id, same colour
    # the label sits above the box corner; without a box drawn it is still there
    label_area = _changed(draw_poses(image, kpts, scores, kset, boxes=box, track_ids=[7]), image)[:30, 90:160]
    assert label_area.any()
    in_place = draw_poses(image, kpts, scores, kset, copy=False)
    assert in_place is image and _changed(image, before).any()
    with pytest.raises(ValueError, match="5 keypoints"):
        draw_poses(_canvas(), np.zeros((1, 17, 2)), np.ones((1, 17)), kset)
    with pytest.raises(ValueError, match="track_ids"):
        draw_poses(_canvas(), kpts, scores, kset, track_ids=[1, 2])
    with pytest.raises(ValueError, match="BGR uint8"):
        draw_poses(np.zeros((10, 10), np.float32), kpts, scores, kset)


def test_draw_timings_panel_top_left():
    image = np.full((480, 640, 3), 255, dtype=np.uint8)
    before = image.copy()
    out = draw_timings(image, {"detector": 12.3, "pose": 8.0, "draw": 0.4}, fps=29.7, copy=True)
    np.testing.assert_array_equal(image, before)
    changed = _changed(out, before)
    ys, xs = np.nonzero(changed)
    assert ys.max() < 240 and xs.max() < 320
    # dark panel with light text: both present, so it reads on white (and on black, below)
    assert (out[:ys.max(), :xs.max()].max(axis=2) < 128).mean() > 0.5
    assert (out[:ys.max(), :xs.max()].min(axis=2) > 200).any()
    dark = np.zeros((480, 640, 3), dtype=np.uint8)
    assert draw_timings(dark, {"pose": 1.0}) is dark and (dark.max(axis=2) > 200).any()
    np.testing.assert_array_equal(draw_timings(before.copy(), {}), before)


def test_overlay_heatmaps_colours_the_peak_region():
    h, w = 16, 12
    yy, xx = np.mgrid[0:h, 0:w]
    heatmaps = np.zeros((2, 3, h, w), dtype=np.float32)
    heatmaps[0, 1] = np.exp(-((xx - 6) ** 2 + (yy - 4) ** 2) / 2)  # person 0, one joint at heatmap (6, 4)
    heatmaps[1, 2] = np.exp(-((xx - 2) ** 2 + (yy - 12) ** 2) / 2) * 0.8  # person 1, elsewhere
    # heatmap pixel -> image: scale 4, offsets (100, 40) and (20, 20)
    mats = np.array([[[4.0, 0, 100], [0, 4.0, 40]], [[4.0, 0, 20], [0, 4.0, 20]]])
    image = _canvas()
    out = overlay_heatmaps(image, heatmaps, mats, alpha=0.6)
    np.testing.assert_array_equal(image, _canvas())
    changed = _changed(out, image)
    peak0 = (40 + 4 * 4, 100 + 4 * 6)
    peak1 = (20 + 4 * 12, 20 + 4 * 2)
    assert changed[peak0] and changed[peak1]
    assert out[peak0][2] > out[peak0][0]  # JET is red at the maximum
    ys, xs = np.nonzero(changed)
    assert ys.min() >= 20 and xs.max() <= 100 + 4 * w  # nothing outside the two footprints
    assert not changed[200:, 200:].any()
    # persons combine by maximum: adding a weak copy over person 0 changes nothing at its peak
    weak = np.concatenate([heatmaps, heatmaps[:1] * 0.3])
    out3 = overlay_heatmaps(image, weak, np.concatenate([mats, mats[:1]]), alpha=0.6)
    np.testing.assert_array_equal(out3, out)
    with pytest.raises(ValueError, match=r"\[N,2,3\]"):
        overlay_heatmaps(image, heatmaps, mats[:1])
