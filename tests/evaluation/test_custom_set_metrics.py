"""Metrics of a custom keypoint set: OKS AP with the set's own sigmas (equal to pycocotools given them), PCK of the
box size and EPE against a case computed by hand."""

import contextlib
import io
import os

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from hrnet_pose.datasets.synthetic_kites import generate_synthetic_kites
from hrnet_pose.evaluation.coco_keypoints import CocoKeypointEvaluator
from hrnet_pose.evaluation.pck import box_pck_epe
from hrnet_pose.keypoints import DEFAULT_SIGMA, load_keypoint_set

from testpaths import EXPERIMENTS

KITES_SET = os.path.join(EXPERIMENTS, "synthetic", "kites_keypoints.yaml")


def test_pck_and_epe_of_a_hand_computed_case():
    gt = np.array([
        [[10, 10, 2], [20, 20, 2], [30, 30, 2]],  # A, image 1, box size 100
        [[210, 10, 2], [220, 20, 0], [230, 30, 1]],  # B, image 1, box size 80, keypoint 1 unlabelled
        [[5, 5, 2], [6, 6, 2], [7, 7, 2]],  # C, image 2: no prediction there
    ], float)
    boxes = [[0, 0, 100, 50], [200, 0, 40, 80], [0, 0, 50, 50]]
    preds = np.array([
        [[218, 10], [0, 0], [230, 50]],  # B's: 8 px, (ignored), 20 px -> 0.1, 0.25 of 80
        [[20, 10], [20, 50], [30, 30]],  # A's: 10, 30, 0 px -> 0.1, 0.3, 0 of 100
    ], float)
    out = box_pck_epe(gt, boxes, [1, 1, 2], preds, [1, 1], thr=0.2)
    # keypoint 0: A, B right, C wrong -> 2/3; keypoint 1: A, C wrong -> 0/2; keypoint 2: A right, B, C wrong -> 1/3
    assert out["PCK"] == pytest.approx((2 / 3 + 0 + 1 / 3) / 3)
    assert out["EPE"] == pytest.approx((10 + 30 + 0 + 8 + 20) / 5)
    assert (out["matched"], out["persons"]) == (2, 3)
    # the threshold is a fraction of the box size: at 0.3, B's 0.25 counts (A's 0.3 does not: correct is < thr)
    assert box_pck_epe(gt, boxes, [1, 1, 2], preds, [1, 1], thr=0.3)["PCK"] == pytest.approx((2 / 3 + 0 + 2 / 3) / 3)


@pytest.fixture(scope="module")
def kites_val(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("kites"))
    return generate_synthetic_kites(root, num_train=0, num_val=12, seed=3, image_size=(160, 160))["val"]


def _noisy_predictions(ann_file, seed=0):
    coco = COCO(ann_file)
    rng = np.random.default_rng(seed)
    anns = coco.loadAnns(coco.getAnnIds())
    kpts = np.array([a["keypoints"] for a in anns], float).reshape(len(anns), -1, 3)
    size = np.array([max(a["bbox"][2:]) for a in anns])
    preds = kpts[:, :, :2] + rng.normal(0, 1, kpts[:, :, :2].shape) * size[:, None, None] * 0.04
    centers = np.array([[a["bbox"][0] + a["bbox"][2] / 2, a["bbox"][1] + a["bbox"][3] / 2] for a in anns])
    scales = np.array([[a["bbox"][2], a["bbox"][3]] for a in anns]) * 1.25 / 200
    return preds, centers, scales, [a["image_id"] for a in anns]


@pytest.mark.parametrize("backend", ["numpy", "pycocotools"])
def test_ap_uses_the_sets_sigmas_as_pycocotools_does(kites_val, backend):
    kset = load_keypoint_set(KITES_SET)
    preds, centers, scales, image_ids = _noisy_predictions(kites_val)
    n = len(preds)
    ev = CocoKeypointEvaluator(kites_val, keypoint_set=kset, use_gt_bbox=True, backend=backend)
    ev.process(preds, np.full((n, 6, 1), 0.9), centers, scales, np.ones(n), image_ids)
    ap = ev.evaluate()["AP"]
    assert all(r["category_id"] == 3 for r in ev.results)  # the kites' own category, not COCO's person

    gt = COCO(kites_val)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_eval = COCOeval(gt, gt.loadRes([dict(r) for r in ev.results]), "keypoints")
        coco_eval.params.kpt_oks_sigmas = np.array([0.05, 0.06, 0.06, 0.05, 0.04, 0.09])  # the yaml's
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    assert ap == pytest.approx(coco_eval.stats[0], abs=1e-12)  # numpy backend: the same numbers bit for bit
    assert 0.1 < ap < 0.99  # noisy enough for the sigmas to matter

    # the same predictions scored with the default sigma give another AP: the set's sigmas were used
    plain = load_keypoint_set(KITES_SET)
    plain = type(plain)(**{**plain.__dict__, "sigmas": np.full(6, DEFAULT_SIGMA), "sigmas_given": False})
    other = CocoKeypointEvaluator(kites_val, keypoint_set=plain, use_gt_bbox=True, backend=backend)
    other.process(preds, np.full((n, 6, 1), 0.9), centers, scales, np.ones(n), image_ids)
    assert abs(other.evaluate()["AP"] - ap) > 1e-3
    errors = ev.keypoint_errors(0.2)
    assert errors["matched"] == errors["persons"] == n and 0 < errors["EPE"] < 10
