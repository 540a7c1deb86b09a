"""The fast evaluation path gives exactly the plain one's results: vectorised COCOeval ('numpy') against pycocotools,
all-images OKS-NMS against the per-image function, the results file with and without orjson."""

import contextlib
import io
import json
import sys

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from hrnet_pose.evaluation import CocoKeypointEvaluator, run_cocoeval
from hrnet_pose.evaluation.coco_keypoints import write_results_file
from hrnet_pose.evaluation.fast_cocoeval import KeypointGroundTruth, evaluate_keypoints
from hrnet_pose.evaluation.oks_nms import oks_nms, oks_nms_grouped, rescore
from hrnet_pose.evaluation.synthetic_eval import make_synthetic_eval
from hrnet_pose.keypoints import COCO17, load_keypoint_set

from coco_eval_testlib import ALL_ANN, FIX, OFFICIAL_OKS_THRE, PEER, VAL_ANN


def _coco(dataset):
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = json.loads(json.dumps(dataset))  # pycocotools adds keys to the annotations: own copy
        coco.createIndex()
    return coco


def _pycocotools_stats(coco, results, sigmas, img_ids=None):
    with contextlib.redirect_stdout(io.StringIO()):
        coco_eval = COCOeval(coco, coco.loadRes([dict(r) for r in results]), "keypoints")
        coco_eval.params.kpt_oks_sigmas = np.asarray(sigmas, np.float64)
        if img_ids is not None:
            coco_eval.params.imgIds = sorted(img_ids)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return coco_eval.stats[:10]


def _as_results(image_ids, kpts, scores):
    return [{"image_id": int(i), "category_id": 1, "keypoints": [float(v) for v in k.reshape(-1)], "score": float(s)}
            for i, k, s in zip(image_ids, kpts, scores)]


@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic_eval(num_images=300, num_predictions=6000, seed=3)


def test_synthetic_generator_shapes(synthetic):
    gt, preds = synthetic
    n = len(preds["image_ids"])
    assert 5500 <= n <= 6500
    assert preds["preds"].shape == (n, 17, 2) and preds["maxvals"].shape == (n, 17, 1)
    assert set(preds["image_ids"].tolist()) <= {img["id"] for img in gt["images"]}
    anns = gt["annotations"]
    areas = np.array([a["area"] for a in anns])
    assert (areas < 32 ** 2).any() and ((areas > 32 ** 2) & (areas < 96 ** 2)).any() and (areas > 96 ** 2).any()
    assert any(a["num_keypoints"] == 0 for a in anns) and any(a["iscrowd"] for a in anns)
    again, _ = make_synthetic_eval(num_images=300, num_predictions=6000, seed=3)
    assert again == gt  # seeded


def test_vectorised_cocoeval_equals_pycocotools_on_synthetic(synthetic):
    """Every prediction, no NMS: up to 20 per image compete for each person (crowd and keypoint-less ones too)."""
    gt, p = synthetic
    kpts = np.concatenate([p["preds"], p["maxvals"]], axis=2)
    scores = p["box_scores"] * p["maxvals"][:, :, 0].mean(axis=1)
    expected = _pycocotools_stats(_coco(gt), _as_results(p["image_ids"], kpts, scores), COCO17.sigmas)
    got = evaluate_keypoints(KeypointGroundTruth.from_coco(gt), p["image_ids"], kpts, scores, COCO17.sigmas)
    np.testing.assert_array_equal(got, expected)  # bit for bit
    # a subset of images, as params.imgIds
    some = sorted({img["id"] for img in gt["images"]})[::3]
    expected = _pycocotools_stats(_coco(gt), _as_results(p["image_ids"], kpts, scores), COCO17.sigmas, some)
    got = evaluate_keypoints(KeypointGroundTruth.from_coco(gt), p["image_ids"], kpts, scores, COCO17.sigmas, some)
    np.testing.assert_array_equal(got, expected)


def test_vectorised_cocoeval_with_another_keypoint_set():
    kset = load_keypoint_set(str(FIX / "keypoints_5.yaml"))
    gt, p = make_synthetic_eval(num_images=120, num_predictions=2500, seed=5, keypoint_set=kset)
    kpts = np.concatenate([p["preds"], p["maxvals"]], axis=2)
    expected = _pycocotools_stats(_coco(gt), _as_results(p["image_ids"], kpts, p["box_scores"]), kset.sigmas)
    got = evaluate_keypoints(KeypointGroundTruth.from_coco(gt), p["image_ids"], kpts, p["box_scores"], kset.sigmas)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("res_file,ann_file,img_ids", [
    ("mediapipe_pose_full_gtbox_mini.json", ALL_ANN, None),
    ("mediapipe_pose_full_wholeimage_mini.json", ALL_ANN, None),
    ("mediapipe_pose_full_detbox_mini_val2017.json", VAL_ANN, [785, 40083, 196141, 197388]),
])
def test_numpy_backend_equals_pycocotools_on_real_results(res_file, ann_file, img_ids):
    plain = run_cocoeval(str(ann_file), str(PEER / res_file), img_ids=img_ids, backend="pycocotools")
    fast = run_cocoeval(str(ann_file), str(PEER / res_file), img_ids=img_ids, backend="numpy")
    assert fast == plain


def test_evaluator_numpy_backend_equals_pycocotools_on_real_fixture():
    ref = np.load(FIX / "official_coco_mini_a_eval.npz")
    stats, results = {}, {}
    for backend in ("numpy", "pycocotools"):
        ev = CocoKeypointEvaluator(str(VAL_ANN), use_gt_bbox=False, oks_thre=OFFICIAL_OKS_THRE, backend=backend)
        boxes = ref["eval_det_boxes"]
        ev.process(ref["eval_det_preds"][:, :, :2], ref["eval_det_preds"][:, :, 2:], boxes[:, :2].astype(np.float32),
                   boxes[:, 2:4].astype(np.float32), boxes[:, 5], ref["detdb_image_id"])
        stats[backend], results[backend] = ev.evaluate(), ev.results
    assert stats["numpy"] == stats["pycocotools"]
    assert results["numpy"] == results["pycocotools"]


def _per_image_nms(kpts, scores, areas, image_ids, thresh, in_vis_thre=None):
    """The plain path: the official per-image loop, images in order of first appearance."""
    uniq, first = np.unique(image_ids, return_index=True)
    keep = []
    for img in uniq[np.argsort(first)]:
        idx = np.flatnonzero(image_ids == img)
        keep.append(idx[oks_nms(kpts[idx], scores[idx], areas[idx], thresh, in_vis_thre=in_vis_thre)])
    return np.concatenate(keep)


@pytest.mark.parametrize("thresh,in_vis", [(0.9, None), (0.5, None), (0.9, 0.2)])
def test_grouped_nms_equals_per_image_nms(synthetic, thresh, in_vis):
    _, p = synthetic
    kpts = np.concatenate([p["preds"], p["maxvals"]], axis=2)
    areas = np.prod(p["scales"] * np.float32(200), axis=1).astype(np.float64)
    scores = rescore(p["box_scores"], p["maxvals"], 0.2)
    # ties decide the order through argsort: give some images equal scores, shuffle the image order
    scores[1::7] = scores[:-1:7][:len(scores[1::7])]
    scores[p["image_ids"] % 5 == 0] = 0.5
    order = np.random.default_rng(0).permutation(len(scores))
    args = (kpts[order], scores[order], areas[order], p["image_ids"][order], thresh)
    expected = _per_image_nms(*args, in_vis_thre=in_vis)
    np.testing.assert_array_equal(oks_nms_grouped(*args, in_vis_thre=in_vis), expected)
    np.testing.assert_array_equal(oks_nms_grouped(*args, in_vis_thre=in_vis, max_elements=1), expected)


def test_results_file_is_the_same_with_and_without_orjson(tmp_path, monkeypatch):
    gt, p = make_synthetic_eval(num_images=40, num_predictions=500, seed=1)
    ev = CocoKeypointEvaluator(_coco(gt), use_gt_bbox=False, oks_thre=OFFICIAL_OKS_THRE)
    ev.process(**p)
    ev.evaluate(output_dir=str(tmp_path / "a"))
    monkeypatch.setitem(sys.modules, "orjson", None)  # as if it were not installed
    ev.evaluate(output_dir=str(tmp_path / "b"))
    files = [tmp_path / d / "results" / "keypoints_val2017_results_0.json" for d in "ab"]
    loaded = [json.loads(f.read_text()) for f in files]
    assert loaded[0] == loaded[1] == ev.results
    # NaN keypoints are written by json (NaN), not as null
    p["preds"][p["image_ids"] == p["image_ids"][0], 0, 0] = np.nan
    ev.reset()
    ev.process(**p)
    monkeypatch.delitem(sys.modules, "orjson")
    ev.evaluate(output_dir=str(tmp_path / "c"))
    assert "NaN" in (tmp_path / "c" / "results" / "keypoints_val2017_results_0.json").read_text()
