"""A custom 5-keypoint set defined in yaml, end to end: COCO-format json -> dataset -> codec targets -> flip back
-> decode to image coordinates -> evaluation with that set's OKS sigmas."""

import json
import os
import shutil

import numpy as np
import torch

from hrnet_pose.codecs.heatmap import HeatmapCodec
from hrnet_pose.datasets import CocoKeypoints
from hrnet_pose.codecs.flip import flip_back
from hrnet_pose.evaluation.coco_keypoints import CocoKeypointEvaluator
from hrnet_pose.keypoints import load_keypoint_set

from testpaths import FIXTURES, MINI

COCO_IDS = [0, 1, 2, 5, 6]  # nose, eyes, shoulders: the yaml's keypoints


def _five_keypoint_coco(tmp_path, kset):
    """Every keypoint-annotated person of the real val images, cut down to the 5 keypoints of the set."""
    src = json.load(open(os.path.join(MINI, "annotations", "person_keypoints_mini_val2017.json")))
    anns = []
    for a in src["annotations"]:
        kp = np.array(a["keypoints"], dtype=float).reshape(17, 3)[COCO_IDS]
        n = int((kp[:, 2] > 0).sum())
        if n == 0 or a["iscrowd"]:
            continue
        anns.append(dict(a, keypoints=kp.reshape(-1).tolist(), num_keypoints=n))
    cats = [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(kset.names),
             "skeleton": [[i + 1, j + 1] for i, j in kset.skeleton]}]
    used = {a["image_id"] for a in anns}
    images = [im for im in src["images"] if im["id"] in used]
    (tmp_path / "annotations").mkdir()
    ann_file = tmp_path / "annotations" / "person_keypoints_five.json"
    ann_file.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    (tmp_path / "images" / "five").mkdir(parents=True)
    for im in images:
        shutil.copy(os.path.join(MINI, "images", im["file_name"]), tmp_path / "images" / "five")
    return str(ann_file), len(anns)


def test_five_keypoint_set_end_to_end(tmp_path):
    kset = load_keypoint_set(os.path.join(FIXTURES, "keypoints_5_ds.yaml"))
    ann_file, num_persons = _five_keypoint_coco(tmp_path, kset)
    codec = HeatmapCodec(image_size=(192, 256), heatmap_size=(48, 64), sigma=2)
    ds = CocoKeypoints(root=str(tmp_path), image_set="five", is_train=False, image_size=(192, 256), codec=codec,
                       keypoint_set=kset)
    assert len(ds) == num_persons > 3

    items = [ds[i] for i in range(len(ds))]
    targets = torch.stack([it[1] for it in items])  # [N, 5, 64, 48]: the ideal network output
    assert targets.shape == (len(ds), 5, 64, 48)
    # a horizontally mirrored prediction of the mirrored crop comes back to the same heatmaps
    mirrored = flip_back(targets, kset.flip_index)
    assert not torch.equal(mirrored, targets)
    torch.testing.assert_close(flip_back(mirrored, kset.flip_index), targets)

    centers = np.stack([it[3]["center"] for it in items]).astype(np.float32)
    scales = np.stack([it[3]["scale"] for it in items]).astype(np.float32)
    preds, maxvals = codec.decode(targets.numpy(), centers, scales)
    assert preds.shape == (len(ds), 5, 2)

    ev = CocoKeypointEvaluator(ann_file, keypoint_set=kset, use_gt_bbox=True)
    ev.process(preds, maxvals, centers, scales, np.ones(len(ds)), [it[3]["image_id"] for it in items])
    stats = ev.evaluate(output_dir=str(tmp_path / "out"), name="five")
    # decoding the targets is exact up to the heatmap quantisation: near-perfect OKS with the set's sigmas
    assert stats["AP"] > 0.9
    results = json.load(open(tmp_path / "out" / "results" / "keypoints_five_results_0.json"))
    assert len(results[0]["keypoints"]) == 15
