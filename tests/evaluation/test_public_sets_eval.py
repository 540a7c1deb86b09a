"""Scoring of the public keypoint sets: COCO-WholeBody parts equal xtcocotools', CrowdPose (with easy / medium /
hard) equals crowdposetools', AP-10K equals pycocotools over all species plus the mean AP of each family; ground
truth as predictions scores 1.0 through each evaluator, whose results file is in its dataset's own format."""

import contextlib
import io
import json
import os

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from hrnet_pose.evaluation.public_sets import (
    AP10KEvaluator,
    CocoWholeBodyEvaluator,
    CrowdPoseEvaluator,
    crowd_index,
    crowdpose_levels,
    evaluate_ap10k,
    evaluate_crowdpose,
    evaluate_wholebody,
)
from hrnet_pose.keypoints import get_keypoint_set

from testpaths import FIXTURES

HERE = os.path.join(FIXTURES, "public_sets")
PARTS = ("body", "foot", "face", "lefthand", "righthand")


def _load(name):
    with open(os.path.join(HERE, name)) as f:
        return json.load(f)


REFERENCE = _load("reference_stats.json")  # xtcocotools 1.14.3 / crowdposetools on these files (SOURCES.md)


def _wholebody_arrays(rows):
    kpts = [r["keypoints"] + r["foot_kpts"] + r["face_kpts"] + r["lefthand_kpts"] + r["righthand_kpts"] for r in rows]
    return ([r["image_id"] for r in rows], np.array(kpts, np.float64).reshape(len(rows), 133, 3),
            [r["score"] for r in rows])


def test_wholebody_parts_equal_xtcocotools():
    gt = _load("coco_wholebody_mini.json")
    stats = evaluate_wholebody(gt, *_wholebody_arrays(_load("coco_wholebody_mini_preds.json")),
                               get_keypoint_set("coco_wholebody").sigmas)
    ref = REFERENCE["coco_wholebody"]
    # same operations in the same order as xtcocotools: equal to the last bit
    assert list(stats.values())[:10] == ref["wholebody"]
    for part in PARTS:
        assert (stats[f"{part} AP"], stats[f"{part} AR"]) == (ref[part][0], ref[part][5]), part
    # the fixture exercises what differs from pycocotools: parts left unlabelled (valid false) ignore their gt, and a
    # result with no positive score in a part is left out of that part only
    assert len({stats[f"{p} AP"] for p in PARTS}) == 5 and 0 < stats["AP"] < 1


def test_crowdpose_equals_crowdposetools_with_crowd_levels():
    gt = _load("crowdpose_mini.json")
    preds = _load("crowdpose_mini_preds.json")
    stats = evaluate_crowdpose(gt, [r["image_id"] for r in preds],
                               np.array([r["keypoints"] for r in preds]).reshape(-1, 14, 3),
                               [r["score"] for r in preds], get_keypoint_set("crowdpose").sigmas)
    ref = REFERENCE["crowdpose"]  # crowdposetools' stats: AP, .5, .75, (0, 0), AR, .5, .75, easy, medium, hard
    assert list(stats.values()) == ref[:3] + ref[5:]
    assert list(stats)[-3:] == ["AP (easy)", "AP (medium)", "AP (hard)"]
    # the fixture's crowd indexes 0.05, 0.3, 0.55, 0.85, 0.19 against crowdposetools' thresholds 0.2 and 0.8
    ids = [img["id"] for img in gt["images"]]
    assert crowdpose_levels(gt) == {"easy": [ids[0], ids[4]], "medium": [ids[1], ids[2]], "hard": [ids[3]]}


def test_crowd_index_from_the_paper_where_the_file_has_none():
    """Two persons of 4 labelled joints each: 2 of B's joints lie in A's box, none of A's in B's -> (2/4 + 0) / 2."""
    a = [10, 10, 2, 20, 10, 2, 10, 20, 2, 20, 20, 2]
    b = [18, 18, 2, 19, 19, 2, 60, 60, 2, 70, 70, 2]
    dataset = {"images": [{"id": 1}, {"id": 2, "crowdIndex": 0.9}],
               "annotations": [{"id": 1, "image_id": 1, "bbox": [5, 5, 20, 20], "keypoints": a},
                               {"id": 2, "image_id": 1, "bbox": [50, 50, 25, 25], "keypoints": b}]}
    assert crowd_index(dataset) == {1: 0.25, 2: 0.9}


def test_ap10k_equals_pycocotools_over_species_and_families():
    gt = _load("ap10k_mini.json")
    preds = _load("ap10k_mini_preds.json")
    sigmas = get_keypoint_set("ap10k").sigmas
    stats = evaluate_ap10k(gt, [r["image_id"] for r in preds], np.array([r["keypoints"] for r in preds]).reshape(
        -1, 17, 3), [r["score"] for r in preds], sigmas, np.array([r["category_id"] for r in preds]))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(os.path.join(HERE, "ap10k_mini.json"))
        ev = COCOeval(coco, coco.loadRes([dict(r) for r in preds]), "keypoints")
        ev.params.kpt_oks_sigmas = sigmas
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert list(stats.values())[:10] == [float(v) for v in ev.stats]
    cats = sorted(coco.getCatIds())
    families = {}
    for c in coco.loadCats(cats):
        families.setdefault(c["supercategory"], []).append(cats.index(c["id"]))
    for family, cols in families.items():
        s = ev.eval["precision"][:, :, cols, 0, 0]
        assert stats[f"AP {family}"] == pytest.approx(np.mean(s[s > -1]), abs=1e-12)  # same mean, same elements
    assert {k for k in stats if k.startswith("AP ") and k[3].isupper()} == {"AP Bovidae", "AP Felidae", "AP Canidae"}


def _gt_instances(dataset, k, fields=None):
    """Every labelled, non-crowd gt as a perfect prediction: keypoints [N,K,3] (score 1), centers, scales, ids."""
    anns = [a for a in dataset["annotations"] if not a.get("iscrowd")]
    rows = []
    for a in anns:
        values = sum((a.get(f) or [0.0] * 3 * n for f, n in fields), []) if fields else a["keypoints"]
        rows.append(np.array(values, np.float64).reshape(k, 3))
    kp = np.stack(rows)
    keep = (kp[:, :, 2] > 0).any(axis=1)
    kp, anns = kp[keep], [a for a, kept in zip(anns, keep) if kept]
    n = len(anns)
    centers = np.array([[a["bbox"][0] + a["bbox"][2] / 2, a["bbox"][1] + a["bbox"][3] / 2] for a in anns])
    # unlabelled keypoints predicted at the box centre, not all at (0, 0) (which OKS-NMS would see as one pose)
    kp[:, :, :2] = np.where(kp[:, :, 2:] > 0, kp[:, :, :2], centers[:, None, :])
    scales = np.array([[a["bbox"][2] / 200, a["bbox"][3] / 200] for a in anns])
    return kp[:, :, :2], np.ones((n, k, 1)), centers, scales, np.ones(n), [a["image_id"] for a in anns], anns


WB_FIELDS = (("keypoints", 17), ("foot_kpts", 6), ("face_kpts", 68), ("lefthand_kpts", 21), ("righthand_kpts", 21))


def test_evaluators_score_ground_truth_one_and_write_their_formats(tmp_path):
    wb = _load("coco_wholebody_mini.json")
    *arrays, anns = _gt_instances(wb, 133, WB_FIELDS)
    ev = CocoWholeBodyEvaluator(os.path.join(HERE, "coco_wholebody_mini.json"), keypoint_set="coco_wholebody")
    ev.process(*arrays)
    stats = ev.evaluate(str(tmp_path / "wb"), name="val2017")
    assert stats["AP"] == 1.0 and all(stats[f"{p} AP"] == 1.0 for p in PARTS)
    with open(tmp_path / "wb" / "results" / "keypoints_val2017_results_0.json") as f:
        row = json.load(f)[0]
    assert {k: len(v) for k, v in row.items() if k.endswith("kpts") or k == "keypoints"} == {
        "keypoints": 51, "foot_kpts": 18, "face_kpts": 204, "lefthand_kpts": 63, "righthand_kpts": 63}

    cp = _load("crowdpose_mini.json")
    *arrays, _ = _gt_instances(cp, 14)
    ev = CrowdPoseEvaluator(os.path.join(HERE, "crowdpose_mini.json"), keypoint_set="crowdpose")
    ev.process(*arrays)
    stats = ev.evaluate()
    assert stats["AP"] == 1.0 and stats["AP (easy)"] == stats["AP (medium)"] == stats["AP (hard)"] == 1.0

    ap = _load("ap10k_mini.json")
    *arrays, anns = _gt_instances(ap, 17)
    ev = AP10KEvaluator(os.path.join(HERE, "ap10k_mini.json"), keypoint_set="ap10k",
                        sample_categories=[a["category_id"] for a in anns])
    ev.process(*arrays, sample_ids=np.arange(len(anns)))
    stats = ev.evaluate(str(tmp_path / "ap"), name="val-split1")
    # precision tp / (tp + fp + eps) is 1 - 2e-16 at small counts, as in pycocotools
    assert stats["AP"] == pytest.approx(1.0, abs=1e-12) and stats["AP Felidae"] == pytest.approx(1.0, abs=1e-12)
    with open(tmp_path / "ap" / "results" / "keypoints_val-split1_results_0.json") as f:
        assert [r["category_id"] for r in json.load(f)] != [1] * len(anns)  # each animal's own species
    # the same animals all filed under the first species: the other species have no match
    wrong = AP10KEvaluator(os.path.join(HERE, "ap10k_mini.json"), keypoint_set="ap10k",
                           sample_categories=[ap["categories"][0]["id"]] * len(anns))
    wrong.process(*arrays, sample_ids=np.arange(len(anns)))
    assert wrong.evaluate()["AP"] < 0.5
