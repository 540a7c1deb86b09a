"""OKS matrix, OKS-NMS, soft OKS-NMS and rescoring against the official nms.py; PCK against core.evaluate.accuracy."""

from pathlib import Path

import numpy as np
import pytest

from hrnet_pose.evaluation.oks_nms import oks_iou_matrix, oks_nms, rescore, soft_oks_nms
from hrnet_pose.evaluation.pck import accuracy
from hrnet_pose.keypoints import COCO_SIGMAS

import testpaths

FIX = Path(testpaths.FIXTURES)


@pytest.fixture(scope="module")
def ref():
    return np.load(FIX / "official_postprocess_a_sliced.npz")


def test_oks_matrix_matches_official(ref):
    kpts, areas = ref["nms_keypoints"], ref["nms_areas"]
    np.testing.assert_allclose(oks_iou_matrix(kpts, areas), ref["nms_oks_matrix"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(oks_iou_matrix(kpts, areas, COCO_SIGMAS), ref["nms_oks_matrix"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(oks_iou_matrix(kpts, areas, in_vis_thre=0.2), ref["nms_oks_matrix_invis0.2"],
                               atol=1e-5, rtol=0)


def test_in_vis_thre_mask_uses_only_the_other_detection():
    # official quirk: `list(vg > t) and list(vd > t)` == list(vd > t), so entry (i, j) masks by j's scores only
    kpts = np.zeros((2, 17, 3), np.float32)
    kpts[1, :, :2] = 5.0
    kpts[0, :, 2] = 0.9
    kpts[1, :, 2] = 0.9
    kpts[1, :8, 2] = 0.0  # detection 1 has 8 low-score keypoints
    kpts[1, :8, :2] = 0.0  # ... exactly where it agrees with detection 0
    oks = oks_iou_matrix(kpts, np.array([1000.0, 1000.0]), in_vis_thre=0.2)
    # (0, 1) counts only detection 1's 9 confident keypoints, which all disagree; (1, 0) counts all 17
    assert oks[0, 1] < oks[1, 0]
    assert not np.allclose(oks, oks.T)


@pytest.mark.parametrize("key,thresh,in_vis", [
    ("nms_keep_thr0.9", 0.9, None), ("nms_keep_thr0.5", 0.5, None), ("nms_keep_thr0.9_invis0.2", 0.9, 0.2)])
def test_oks_nms_keeps_official_indices(ref, key, thresh, in_vis):
    keep = oks_nms(ref["nms_keypoints"], ref["nms_scores"], ref["nms_areas"], thresh, in_vis_thre=in_vis)
    np.testing.assert_array_equal(keep, ref[key])


def test_soft_oks_nms_keeps_official_indices(ref):
    keep = soft_oks_nms(ref["nms_keypoints"], ref["nms_scores"], ref["nms_areas"], 0.9)
    np.testing.assert_array_equal(keep, ref["nms_soft_keep_thr0.9"])
    assert len(keep) <= 20


def test_rescoring_then_nms_matches_official(ref):
    kpts = ref["nms_keypoints"]
    scores = rescore(ref["nms_scores"], kpts[:, :, 2], 0.2)
    np.testing.assert_allclose(scores, ref["nms_rescored_scores"], atol=1e-5, rtol=0)
    keep = oks_nms(kpts, scores, ref["nms_areas"], 0.9)
    np.testing.assert_array_equal(keep, ref["nms_keep_rescored_thr0.9"])


def test_rescore_is_zero_without_confident_keypoints():
    np.testing.assert_array_equal(rescore(np.array([0.8]), np.full((1, 17), 0.1), 0.2), [0.0])


def test_nms_empty_and_custom_sigmas():
    assert oks_nms(np.zeros((0, 5, 3)), np.zeros(0), np.zeros(0), 0.9, sigmas=np.full(5, 0.1)).size == 0
    with pytest.raises(ValueError, match="one value per keypoint"):
        oks_iou_matrix(np.zeros((2, 5, 3)), np.ones(2))  # COCO sigmas do not fit 5 keypoints


def test_pck_accuracy_matches_official(ref):
    acc, avg, cnt = accuracy(ref["loss_output"], ref["loss_target"])
    np.testing.assert_allclose(acc, ref["pck_acc"], atol=1e-5)
    assert avg == pytest.approx(float(ref["pck_avg_acc"]), abs=1e-5)
    assert cnt == int(ref["pck_cnt"])
