"""CocoKeypointEvaluator: parity with the official evaluate() on real COCO data, GT = AP 1, peer results, custom sets."""

import json
import os
import sys

import numpy as np
import pytest

from hrnet_pose.evaluation import (
    STATS_NAMES,
    CocoKeypointEvaluator,
    describe_protocol,
    format_results_table,
    run_cocoeval,
)
from hrnet_pose.geometry import box_to_center_scale
from hrnet_pose.keypoints import load_keypoint_set

from coco_eval_testlib import ALL_ANN, FIX, OFFICIAL_OKS_THRE, PEER, VAL_ANN


@pytest.fixture(scope="module")
def ref():
    return np.load(FIX / "official_coco_mini_a_eval.npz")


CASES = {  # case -> (preds key, boxes key, image id key, use_gt_bbox)
    "gt_exact": ("eval_gt_exact_preds", "eval_gt_boxes", "gtdb_image_id", True),
    "gt_jitter": ("eval_gt_jitter_preds", "eval_gt_boxes", "gtdb_image_id", True),
    "det": ("eval_det_preds", "eval_det_boxes", "detdb_image_id", False),
}


def _feed(evaluator, ref, case, index=None, sample_ids=None):
    pk, bk, ik, _ = CASES[case]
    preds, boxes, ids = ref[pk], ref[bk], ref[ik]
    if index is not None:
        preds, boxes, ids = preds[index], boxes[index], ids[index]
    # validate() stores float32 centers/scales (meta from the dataset) into the float64 all_boxes
    evaluator.process(preds[:, :, :2], preds[:, :, 2:], boxes[:, :2].astype(np.float32),
                      boxes[:, 2:4].astype(np.float32), boxes[:, 5], ids, sample_ids=sample_ids)


@pytest.mark.parametrize("case", list(CASES))
def test_matches_official_evaluate(ref, case, tmp_path):
    ev = CocoKeypointEvaluator(str(VAL_ANN), use_gt_bbox=CASES[case][3], oks_thre=OFFICIAL_OKS_THRE)
    _feed(ev, ref, case)
    stats = ev.evaluate(output_dir=str(tmp_path), name="val2017")
    assert list(stats.keys()) == STATS_NAMES
    np.testing.assert_allclose(list(stats.values()), ref[f"eval_{case}_stats"], atol=1e-6, rtol=0)
    if case != "gt_exact":
        pre = f"eval_{case}_result_"
        np.testing.assert_array_equal([r["image_id"] for r in ev.results], ref[pre + "image_id"])
        np.testing.assert_allclose([r["score"] for r in ev.results], ref[pre + "score"], atol=1e-6, rtol=0)
        np.testing.assert_allclose([r["keypoints"] for r in ev.results], ref[pre + "keypoints"], atol=1e-4, rtol=0)
        if case == "det":
            np.testing.assert_allclose([r["center"] for r in ev.results], ref[pre + "center"], atol=1e-4)
    res_file = tmp_path / "results" / "keypoints_val2017_results_0.json"
    with open(res_file) as f:
        written = json.load(f)
    assert written == ev.results and all(r["category_id"] == 1 for r in written)
    assert sorted(os.listdir(tmp_path / "results")) == ["keypoints_val2017_results_0.json"]  # no temp file left


def test_distributed_merge_gives_the_same_result(ref):
    single = CocoKeypointEvaluator(str(VAL_ANN), use_gt_bbox=False, oks_thre=OFFICIAL_OKS_THRE)
    _feed(single, ref, "det", sample_ids=np.arange(118))
    expected = single.evaluate()

    # two ranks with an interleaved split and sampler padding (sample 0 and 1 seen twice)
    ranks = []
    for r in range(2):
        idx = np.concatenate([np.arange(r, 118, 2), [0]])
        ev = CocoKeypointEvaluator(str(VAL_ANN), use_gt_bbox=False, oks_thre=OFFICIAL_OKS_THRE)
        _feed(ev, ref, "det", index=idx, sample_ids=idx)
        ranks.append(ev.state())
    merged = CocoKeypointEvaluator(str(VAL_ANN), use_gt_bbox=False, oks_thre=OFFICIAL_OKS_THRE)
    merged.merge_states(ranks)
    assert len(merged) == 118
    assert merged.evaluate() == expected
    assert merged.results == single.results


def _gt_as_predictions(ann_file):
    with open(ann_file) as f:
        data = json.load(f)
    anns = [a for a in data["annotations"] if not a.get("iscrowd", 0) and a["num_keypoints"] > 0]
    kpts = np.array([a["keypoints"] for a in anns], np.float32).reshape(len(anns), -1, 3)
    centers, scales = zip(*(box_to_center_scale(a["bbox"], 192 / 256) for a in anns))
    maxvals = np.where(kpts[:, :, 2:] > 0, 0.9, 0.1).astype(np.float32)
    return kpts[:, :, :2], maxvals, np.array(centers), np.array(scales), np.array([a["image_id"] for a in anns])


@pytest.mark.parametrize("ann_file", [VAL_ANN, ALL_ANN])
def test_ground_truth_as_predictions_gives_ap_1(ann_file):
    preds, maxvals, centers, scales, ids = _gt_as_predictions(ann_file)
    ev = CocoKeypointEvaluator(str(ann_file), use_gt_bbox=True, oks_thre=OFFICIAL_OKS_THRE)
    ev.process(preds, maxvals, centers, scales, np.ones(len(ids)), ids)
    stats = ev.evaluate()
    assert stats["AP"] == pytest.approx(1.0) and stats["AR"] == pytest.approx(1.0)
    assert len(ev.results) == len(ids)


@pytest.mark.parametrize("res_file,ann_file,img_ids,expected", [
    ("mediapipe_pose_full_gtbox_mini.json", ALL_ANN, None, (0.3079, 0.5842, 0.3045, 0.3788)),
    ("mediapipe_pose_full_wholeimage_mini.json", ALL_ANN, None, (0.1153, 0.2475, 0.1030, 0.1303)),
    ("mediapipe_pose_full_detbox_mini_val2017.json", VAL_ANN, [785, 40083, 196141, 197388],
     (0.4409, 0.8317, 0.5123, 0.4917)),
])
def test_peer_results_reproduce_readme_numbers(res_file, ann_file, img_ids, expected):
    stats = run_cocoeval(str(ann_file), str(PEER / res_file), img_ids=img_ids)
    got = (stats["AP"], stats["Ap .5"], stats["AP .75"], stats["AR"])
    np.testing.assert_allclose(got, expected, atol=6e-5)


def test_img_ids_restriction(ref):
    ev = CocoKeypointEvaluator(str(VAL_ANN), use_gt_bbox=False, oks_thre=OFFICIAL_OKS_THRE, img_ids=[785])
    _feed(ev, ref, "det")
    restricted = ev.evaluate()
    only_785 = [r for r in ev.results if r["image_id"] == 785]
    assert restricted == run_cocoeval(str(VAL_ANN), only_785, img_ids=[785])
    assert restricted != run_cocoeval(str(VAL_ANN), ev.results)


def _tiny_coco(tmp_path, kset):
    """Two images, three persons, five keypoints (all labelled)."""
    persons = [
        (1, [[50, 20], [30, 50], [70, 50], [40, 95], [60, 95]]),
        (1, [[150, 30], [128, 60], [172, 60], [140, 110], [160, 110]]),
        (2, [[80, 40], [55, 80], [105, 80], [70, 150], [90, 150]]),
    ]
    anns = []
    for i, (img, pts) in enumerate(persons):
        pts = np.array(pts, float)
        x0, y0 = pts.min(0) - 5
        w, h = pts.max(0) - pts.min(0) + 10
        anns.append({"id": i + 1, "image_id": img, "category_id": 1, "iscrowd": 0, "num_keypoints": 5,
                     "keypoints": np.c_[pts, np.full(5, 2)].reshape(-1).tolist(), "bbox": [x0, y0, w, h],
                     "area": float(w * h)})
    data = {"images": [{"id": 1, "width": 200, "height": 160, "file_name": "1.jpg"},
                       {"id": 2, "width": 160, "height": 200, "file_name": "2.jpg"}],
            "annotations": anns,
            "categories": [{"id": 1, "name": "person", "keypoints": list(kset.names),
                            "skeleton": [[a + 1, b + 1] for a, b in kset.skeleton]}]}
    path = tmp_path / "tiny_star5.json"
    path.write_text(json.dumps(data))
    return path, anns


def test_custom_keypoint_set_uses_its_sigmas(tmp_path):
    kset = load_keypoint_set(str(FIX / "keypoints_5.yaml"))
    ann_file, anns = _tiny_coco(tmp_path, kset)
    gt = np.array([a["keypoints"] for a in anns], np.float32).reshape(3, 5, 3)[:, :, :2]
    centers = np.array([[50, 55], [150, 70], [80, 95]], np.float32)
    scales = np.full((3, 2), 0.6, np.float32)
    ev = CocoKeypointEvaluator(str(ann_file), keypoint_set=kset, use_gt_bbox=True)
    ev.process(gt, np.full((3, 5, 1), 0.9), centers, scales, np.ones(3), [1, 1, 2])
    assert ev.evaluate()["AP"] == pytest.approx(1.0)

    # move person 3's keypoints by 8 px: the OKS by hand with the set's sigmas fixes at how many of the 10 OKS
    # thresholds it still matches, hence the recall averaged over thresholds (AR)
    shift = 8.0
    preds = gt.copy()
    preds[2] += np.array([shift, 0.0], np.float32)
    ev.reset()
    ev.process(preds, np.full((3, 5, 1), 0.9), centers, scales, np.ones(3), [1, 1, 2])
    stats = ev.evaluate()
    e = shift ** 2 / (2 * kset.sigmas) ** 2 / anns[2]["area"] / 2
    oks = np.exp(-e).mean()
    assert 0.5 < oks < 0.95
    thresholds = np.linspace(0.5, 0.95, 10)
    expected_ar = np.mean([1.0 if oks >= t else 2 / 3 for t in thresholds])  # persons 1 and 2 always match
    assert stats["AR"] == pytest.approx(expected_ar, abs=1e-6)
    assert stats["AR"] < 1.0


def test_missing_annotation_file_names_the_path(tmp_path):
    missing = tmp_path / "nope" / "person_keypoints_val2017.json"
    with pytest.raises(FileNotFoundError, match="person_keypoints_val2017.json"):
        CocoKeypointEvaluator(str(missing))


def test_evaluate_without_predictions_is_an_error():
    ev = CocoKeypointEvaluator(str(VAL_ANN))
    with pytest.raises(RuntimeError, match="process"):
        ev.evaluate()


def test_unknown_backend_and_missing_faster_coco_eval(monkeypatch):
    with pytest.raises(ValueError, match="pycocotools"):
        CocoKeypointEvaluator(str(VAL_ANN), backend="detectron2")
    monkeypatch.setitem(sys.modules, "faster_coco_eval", None)  # as if it were not installed
    with pytest.raises(ImportError, match="pip install faster-coco-eval"):
        CocoKeypointEvaluator(str(VAL_ANN), backend="faster_coco_eval")


def test_faster_coco_eval_backend_gives_identical_numbers(ref):
    pytest.importorskip("faster_coco_eval", reason="faster-coco-eval is not installed (optional backend)")
    stats = {}
    for backend in ("pycocotools", "faster_coco_eval"):
        ev = CocoKeypointEvaluator(str(VAL_ANN), use_gt_bbox=False, oks_thre=OFFICIAL_OKS_THRE, backend=backend)
        _feed(ev, ref, "det")
        stats[backend] = ev.evaluate()
    np.testing.assert_allclose(list(stats["faster_coco_eval"].values()), list(stats["pycocotools"].values()),
                               atol=1e-6)
    np.testing.assert_allclose(list(stats["pycocotools"].values()), ref["eval_det_stats"], atol=1e-6)


def test_results_table_and_protocol_line():
    values = dict(zip(STATS_NAMES, [0.7444, 0.9051, 0.8193, 0.7081, 0.8102, 0.7983, 0.9421, 0.8651, 0.7572,
                                    0.8583]))
    table = format_results_table(values, "pose_hrnet").splitlines()
    assert table[0] == "| Arch | AP | Ap .5 | AP .75 | AP (M) | AP (L) | AR | AR .5 | AR .75 | AR (M) | AR (L) |"
    assert table[1] == "|---" * 11 + "|"
    assert table[2].startswith("| pose_hrnet | 0.744 | 0.905 | 0.819 |")
    assert format_results_table(values, "a_very_long_architecture_name").splitlines()[2].startswith("| a_very_l...")
    line = describe_protocol(False, "dets.json", True, "dark", (192, 256))
    assert line == "detector boxes from dets.json, flip test on, decoder dark, input 192x256 (WxH)"
    assert describe_protocol(True, None, False, "default", (288, 384)).startswith("GT boxes, flip test off")


def test_protocol_line_names_alignment_refinement_precision_and_backend():
    line = describe_protocol(True, None, True, "dark", (192, 256), udp=True, flip_alignment="exact (UDP), not shifted",
                             refinement="DARK-UDP", forward_precision="bf16", backend="faster_coco_eval")
    assert line == ("GT boxes, flip test on, decoder dark, input 192x256 (WxH); UDP on; flip: exact (UDP), not shifted; "
                    "refinement: DARK-UDP; forward bf16 autocast, heatmaps decoded in float32; "
                    "COCO eval: faster_coco_eval")
    # no flip test: no flip alignment; fp32 is said plainly
    line = describe_protocol(False, "d.json", False, "default", (192, 256), udp=False, flip_alignment="not shifted",
                             refinement="argmax only", forward_precision="", backend="pycocotools")
    assert line == ("detector boxes from d.json, flip test off, decoder default, input 192x256 (WxH); UDP off; "
                    "refinement: argmax only; forward fp32; COCO eval: pycocotools")
