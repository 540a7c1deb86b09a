"""PoseEstimator on real COCO images with the official tiny weights: the same keypoints as tools/test.py for the same
boxes (flip on and off), batching invariance, empty images, boxes outside the image, invalid boxes."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from hrnet_pose.apis.estimator import InvalidBoxError, PoseEstimator
from hrnet_pose.config import load_config
from hrnet_pose.datasets.coco import _clean_gt_boxes
from hrnet_pose.errors import UserError

from testpaths import REPO, TINY_YAML


# Other batch compositions (test.py's batches, one person alone, chunks) may let the conv kernels sum in another order:
# about 2e-5 of the heatmaps' scale over the tiny net's ~40 convolutions (see tests/models/test_pose_hrnet.py); its
# heatmaps stay below 0.7, so 1.5e-5 absolute (measured: 2e-7).
HEATMAP_ATOL = 1.5e-5
# Keypoints come from an argmax: where two heatmap pixels lie within that rounding, the argmax may flip and move the
# joint by whole heatmap pixels. Equal keypoints to 1e-4 px are required for all joints but such near-ties, at most
# 1 joint in 50 (the heatmaps and scores are still compared tightly).
KEYPOINT_ATOL = 1e-4
MAX_FLIP_SHARE = 0.02


def _assert_same_keypoints(a: np.ndarray, b: np.ndarray) -> None:
    """Keypoints [..., K, 2] equal to KEYPOINT_ATOL except for at most MAX_FLIP_SHARE of the joints."""
    diff = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max(-1)
    assert float(np.mean(diff > KEYPOINT_ATOL)) <= MAX_FLIP_SHARE, f"{int((diff > KEYPOINT_ATOL).sum())} of " \
        f"{diff.size} joints differ by more than {KEYPOINT_ATOL} px (max {diff.max():.3g} px)"


def _gt_boxes(coco_root):
    """Per image: the GT boxes the dataset evaluates (official cleaning), as x1, y1, x2, y2."""
    with open(os.path.join(coco_root, "annotations", "person_keypoints_val2017.json")) as f:
        data = json.load(f)
    images = {im["id"]: im for im in data["images"]}
    per_image = {}
    for ann in data["annotations"]:
        if ann.get("iscrowd") or ann["category_id"] != 1 or max(ann["keypoints"]) <= 0 or ann.get("area", 0) <= 0:
            continue
        im = images[ann["image_id"]]
        clean, ok = _clean_gt_boxes(np.array([ann["bbox"]], np.float64), im["width"], im["height"])
        if ok[0]:
            x, y, w, h = clean[0]
            per_image.setdefault(ann["image_id"], []).append([x, y, x + w, y + h])
    return images, {k: np.array(v) for k, v in per_image.items()}


def _run_test_py(coco_root, weights, out, flip):
    cmd = [sys.executable, os.path.join(REPO, "tools", "test.py"), "--cfg", TINY_YAML, "--modelDir", out,
           "DATASET.ROOT", coco_root, "TEST.MODEL_FILE", weights, "TEST.FLIP_TEST", str(flip),
           "ENGINE.DEVICE", "cpu", "ENGINE.PROGRESS_BAR", "False", "WORKERS", "0"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    path = os.path.join(out, "coco", "pose_hrnet", "official_hrnet_tiny_a", "results",
                        "keypoints_val2017_results_0.json")
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def estimator(tiny_weights):
    # compared with tools/test.py's PyTorch keypoints to 1e-4 px: the same runtime
    return PoseEstimator.from_config(TINY_YAML, tiny_weights, device="cpu", backend="torch")


@pytest.mark.parametrize("flip", [True, False])
def test_api_equals_test_py_results(coco_val_root, tiny_weights, estimator, tmp_path, flip):
    results = _run_test_py(coco_val_root, tiny_weights, str(tmp_path / "out"), flip)
    images, boxes = _gt_boxes(coco_val_root)
    matched, got, want = 0, [], []
    for image_id, image_boxes in boxes.items():
        path = os.path.join(coco_val_root, "images", "val2017", images[image_id]["file_name"])
        res = estimator(path, boxes=image_boxes, flip_test=flip)
        for entry in (r for r in results if r["image_id"] == image_id):
            # the results json keeps the crop box of each person: find the same person in the API result
            same = np.flatnonzero(np.all(res.centers == np.float32(entry["center"]), axis=1)
                                  & np.all(res.scales == np.float32(entry["scale"]), axis=1))
            assert len(same) == 1, (image_id, entry["center"])
            expected = np.array(entry["keypoints"], np.float64).reshape(-1, 3)
            got.append(res.keypoints[same[0]])
            want.append(expected[:, :2])
            # tools/test.py batches other persons together than the API: the kernels may sum in another order, about
            # 2e-5 of the heatmaps' scale (~40 convolutions, see tests/models/test_pose_hrnet.py), whose maxima (the
            # scores) are <= 0.7 here: 1.5e-5 (measured: 2e-7)
            np.testing.assert_allclose(res.scores[same[0]], expected[:, 2], atol=1.5e-5, rtol=0)
            matched += 1
    assert matched == len(results) and matched >= 10
    _assert_same_keypoints(np.stack(got), np.stack(want))  # test.py batches persons of other images together


def test_batched_equals_per_person_and_chunks(coco_val_root, estimator):
    images, boxes = _gt_boxes(coco_val_root)
    image_id = max(boxes, key=lambda k: len(boxes[k]))
    path = os.path.join(coco_val_root, "images", "val2017", images[image_id]["file_name"])
    assert len(boxes[image_id]) >= 3
    together = estimator(path, boxes=boxes[image_id], return_heatmaps=True)
    alone_keypoints = []
    for i, box in enumerate(boxes[image_id]):
        alone = estimator(path, boxes=box[None], return_heatmaps=True)
        np.testing.assert_allclose(alone.heatmaps[0], together.heatmaps[i], atol=HEATMAP_ATOL, rtol=0)
        alone_keypoints.append(alone.keypoints[0])
        # batch 2 vs 2N through the network: as in test_api_equals_test_py_results (measured: 0)
        np.testing.assert_allclose(alone.scores[0], together.scores[i], atol=1.5e-5)
    _assert_same_keypoints(np.stack(alone_keypoints), together.keypoints)
    estimator.max_batch = 2  # chunked: the mirrored crops travel with their chunk
    try:
        chunked = estimator(path, boxes=boxes[image_id], return_heatmaps=True)
    finally:
        estimator.max_batch = 32
    np.testing.assert_allclose(chunked.heatmaps, together.heatmaps, atol=HEATMAP_ATOL, rtol=0)
    _assert_same_keypoints(chunked.keypoints, together.keypoints)
    assert together.timings.keys() >= {"read", "detect", "preprocess", "pose", "decode"}


def test_result_is_in_image_pixels_and_to_coco_loads(coco_val_root, estimator):
    from pycocotools.coco import COCO

    images, boxes = _gt_boxes(coco_val_root)
    image_id = next(iter(boxes))
    image = images[image_id]
    res = estimator(os.path.join(coco_val_root, "images", "val2017", image["file_name"]), boxes=boxes[image_id])
    assert res.keypoints.dtype == np.float32 and res.keypoints.shape == (len(boxes[image_id]), 17, 2)
    assert res.scores.shape == (len(boxes[image_id]), 17) and res.track_ids is None
    np.testing.assert_allclose(res.boxes, boxes[image_id], atol=1e-3)
    entries = res.to_coco(image_id)
    coco = COCO(os.path.join(coco_val_root, "annotations", "person_keypoints_val2017.json"))
    dt = coco.loadRes(entries)
    assert len(dt.getAnnIds()) == len(boxes[image_id])


def test_no_person_gives_empty_result(coco_val_root, tiny_weights):
    est = PoseEstimator.from_config(TINY_YAML, tiny_weights, device="cpu",
                                    detector=lambda image: (np.zeros((0, 4)), np.zeros(0)))
    image = np.full((120, 160, 3), 127, np.uint8)
    res = est(image)
    assert len(res) == 0 and res.keypoints.shape == (0, 17, 2) and res.scores.shape == (0, 17)
    assert res.to_coco(1) == [] and res.plot(image).shape == image.shape


def test_whole_image_without_detector_and_boxes_outside(estimator):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (96, 80, 3), dtype=np.uint8)
    whole = estimator(image)
    assert len(whole) == 1
    np.testing.assert_allclose(whole.centers[0], [39.5, 47.5])
    outside = estimator(image, boxes=[[-40, -30, 60, 200], [70, 80, 400, 300]])
    assert len(outside) == 2 and np.isfinite(outside.keypoints).all()


@pytest.mark.parametrize("box, match", [
    ([[10, 10, 10, 50]], "zero or negative area"),
    ([[10, 10, 50, np.nan]], "not finite"),
    ([[1, 2, 3]], r"\[N, 4\]"),
])
def test_invalid_boxes_are_clear_errors(estimator, box, match):
    with pytest.raises(InvalidBoxError, match=match):
        estimator(np.zeros((64, 64, 3), np.uint8), boxes=box)
    assert issubclass(InvalidBoxError, UserError)


def test_bad_images_and_weights_are_user_errors(estimator, tmp_path, tiny_weights):
    with pytest.raises(UserError, match="does not exist"):
        estimator(str(tmp_path / "missing.jpg"))
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(UserError, match="cannot be decoded"):
        estimator(str(tmp_path / "bad.jpg"))
    with pytest.raises(UserError, match="uint8"):
        estimator(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(UserError, match="not found"):
        PoseEstimator.from_config(TINY_YAML, str(tmp_path / "nope.pth"))
    cfg = load_config(TINY_YAML, ["MODEL.EXTRA.STAGE4.NUM_CHANNELS", "[16, 32, 64, 64]"])
    with pytest.raises(UserError, match="does not match the model"):
        PoseEstimator.from_config(cfg, tiny_weights)


def _udp_heatmap_to_image(box, input_wh, heatmap_wh):
    """UDP's inverse crop by hand: the box grown to the input's aspect ratio, times 1.25 (the official padding);
    heatmap pixel 0 lands on the crop's first edge and pixel W-1 on its last (the official map puts pixel W there)."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    aspect = input_wh[0] / input_wh[1]
    w, h = (h * aspect, h) if w < aspect * h else (w, w / aspect)
    w, h = 1.25 * w, 1.25 * h
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return np.array([[w / (heatmap_wh[0] - 1), 0, cx - w / 2], [0, h / (heatmap_wh[1] - 1), cy - h / 2]])


def test_custom_keypoint_set_and_udp(tmp_path):
    """Any keypoint set the config defines; UDP crops and decoding through the same path (random weights)."""
    kset = os.path.join(os.path.dirname(TINY_YAML), "keypoints_5.yaml")
    torch.manual_seed(0)
    est = PoseEstimator.from_config(TINY_YAML, None, device="cpu", backend="torch",  # edits the torch model below
                                    opts=["DATASET.KEYPOINT_SET", kset, "MODEL.NUM_JOINTS", "5", "CODEC.UDP", "True"])
    res = est(np.zeros((100, 100, 3), np.uint8), boxes=[[10, 10, 60, 90]], return_heatmaps=True)
    assert res.keypoints.shape == (1, 5, 2) and res.heatmaps.shape == (1, 5, 24, 16)
    assert res.heatmap_to_image.shape == (1, 2, 3)
    # float64 matrices from float32 centre/scale: agree to float32 rounding of ~100 px values (~1e-5)
    np.testing.assert_allclose(res.heatmap_to_image[0], _udp_heatmap_to_image([10, 10, 60, 90], (64, 96), (16, 24)),
                               atol=1e-4, rtol=0)
    # UDP with the default decoder adds no sub-pixel step: each keypoint is its heatmap's argmax through that map.
    # An untrained head's maxima are <= 0 (decoded as (0, 0)); a raised bias gives positive peaks at many places.
    with torch.no_grad():
        est.backend.model.final_layer.bias += 1.0
    image = cv2.imread(os.path.join(os.path.dirname(TINY_YAML), "coco_real_mini", "images", "000000000785.jpg"))
    box = [100, 60, 400, 420]
    res = est(image, boxes=[box], return_heatmaps=True)
    hm = res.heatmaps[0].reshape(5, -1)
    assert (hm.max(1) > 0).all()
    peak = np.stack([hm.argmax(1) % 16, hm.argmax(1) // 16], axis=1).astype(np.float64)
    assert len({tuple(p) for p in peak}) > 1  # not one place for all joints: the check below sees the map's slopes
    mat = _udp_heatmap_to_image(box, (64, 96), (16, 24))
    # float32 keypoints of up to ~600 px: rounding ~6e-5 px
    np.testing.assert_allclose(res.keypoints[0], peak @ mat[:, :2].T + mat[:, 2], atol=1e-3, rtol=0)
