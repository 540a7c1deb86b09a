"""`PoseEstimator([images])`: a list of images is one batch (the persons of all images share the network batches) and
gives one PoseResult per image, equal to calling the estimator on each image alone, on real COCO images with the
official tiny weights; boxes, detector, whole image and images without persons in the same batch."""

import json
import os

import numpy as np
import pytest

from hrnet_pose.apis.estimator import PoseEstimator
from hrnet_pose.apis.result import PoseResult
from hrnet_pose.errors import UserError

from testpaths import MINI, MINI_VAL_ANN, TINY_YAML

# The batch puts persons of several images into one network call: the conv kernels may sum in another order than for
# one image's persons, ~2e-5 of the heatmaps' scale over the tiny net's ~40 convolutions (tests/apis/test_estimator.py
# measures 2e-7); its heatmaps stay below 0.7, so 1.5e-5 absolute for heatmaps and scores.
HEATMAP_ATOL = 1.5e-5
# keypoints come from an argmax: a near-tie within that rounding may move a joint by whole heatmap pixels, so at most
# 1 joint in 50 may differ by more than 1e-4 px (the heatmaps are still compared tightly)
KEYPOINT_ATOL = 1e-4
MAX_FLIP_SHARE = 0.02


@pytest.fixture(scope="module")
def estimator(tiny_weights):
    return PoseEstimator.from_config(TINY_YAML, tiny_weights, device="cpu", backend="torch", max_batch=8)


@pytest.fixture(scope="module")
def images_and_boxes():
    """Paths of the mini val images and their GT person boxes (x1, y1, x2, y2); an image without persons gets []."""
    with open(MINI_VAL_ANN) as f:
        data = json.load(f)
    boxes = {im["id"]: [] for im in data["images"]}
    for ann in data["annotations"]:
        if ann["category_id"] == 1 and not ann.get("iscrowd") and ann["bbox"][2] > 1 and ann["bbox"][3] > 1:
            x, y, w, h = ann["bbox"]
            boxes[ann["image_id"]].append([x, y, x + w, y + h])
    ids = sorted(boxes)
    paths = [os.path.join(MINI, "images", im["file_name"]) for im in sorted(data["images"], key=lambda i: i["id"])]
    return paths, [np.array(boxes[i], np.float64).reshape(-1, 4) for i in ids]


def _assert_same(batched: PoseResult, alone: PoseResult) -> None:
    assert len(batched) == len(alone)
    np.testing.assert_array_equal(batched.boxes, alone.boxes)
    np.testing.assert_array_equal(batched.centers, alone.centers)
    np.testing.assert_allclose(batched.scores, alone.scores, atol=HEATMAP_ATOL, rtol=0)
    if len(alone):
        np.testing.assert_allclose(batched.heatmaps, alone.heatmaps, atol=HEATMAP_ATOL, rtol=0)
        diff = np.abs(batched.keypoints.astype(np.float64) - alone.keypoints).max(-1)
        assert float(np.mean(diff > KEYPOINT_ATOL)) <= MAX_FLIP_SHARE, diff.max()


@pytest.mark.parametrize("flip", [False, True])
def test_list_of_images_equals_one_call_per_image(estimator, images_and_boxes, flip):
    paths, boxes = images_and_boxes
    boxes = boxes[:4] + [np.zeros((0, 4))]  # images without persons (000000000802 has none) in the batch
    paths = paths[:5]
    assert sum(len(b) for b in boxes) > estimator.max_batch  # more persons than one network batch
    batched = estimator(paths, boxes=boxes, flip_test=flip, return_heatmaps=True)
    assert isinstance(batched, list) and len(batched) == len(paths)
    for path, b, result in zip(paths, boxes, batched):
        alone = estimator(path, boxes=b, flip_test=flip, return_heatmaps=True)
        _assert_same(result, alone)
        assert result.timings.keys() >= {"read", "detect", "preprocess"}
    assert len(batched[-1]) == 0
    coco = [e for i, r in enumerate(batched) for e in r.to_coco(i)]
    assert len(coco) == sum(len(b) for b in boxes)


def test_list_with_detector_and_whole_image(estimator, images_and_boxes):
    """Without boxes the detector runs per image (here a callable giving each image's GT boxes); without a detector
    each image is one person."""
    paths, boxes = images_and_boxes
    calls = []

    def detector(image):
        calls.append(image.shape)
        box = boxes[len(calls) - 1]
        return box, np.full(len(box), 0.9, np.float32)

    estimator.detector = detector
    try:
        batched = estimator(paths[:4])
    finally:
        estimator.detector = None
    assert len(calls) == 4
    for p, b, result in zip(paths[:4], boxes[:4], batched):
        alone = estimator(p, boxes=b, box_scores=np.full(len(b), 0.9, np.float32))
        np.testing.assert_array_equal(result.box_scores, alone.box_scores)
        np.testing.assert_allclose(result.scores, alone.scores, atol=HEATMAP_ATOL, rtol=0)
    whole = estimator(paths[:3])
    assert [len(r) for r in whole] == [1, 1, 1]
    for p, r in zip(paths[:3], whole):
        np.testing.assert_allclose(r.scores, estimator(p).scores, atol=HEATMAP_ATOL, rtol=0)


def test_list_with_wrong_number_of_boxes_is_a_clear_error(estimator, images_and_boxes):
    paths, boxes = images_and_boxes
    with pytest.raises(UserError, match="one entry per image"):
        estimator(paths[:3], boxes=boxes[:2])
    assert estimator([]) == []
