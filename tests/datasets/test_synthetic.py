"""The synthetic COCO-format generator: determinism, COCO validity, visibility flags, loading, build_dataset."""

import contextlib
import io
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from hrnet_pose.codecs.heatmap import HeatmapCodec
from hrnet_pose.config import get_cfg
from hrnet_pose.datasets import CocoKeypoints, build_dataloader, build_dataset, generate_synthetic_coco
from hrnet_pose.datasets.synthetic import DETECTION_FILE

from testpaths import REPO

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools mask decode on numpy 2

CODEC = HeatmapCodec(image_size=(192, 256), heatmap_size=(48, 64), sigma=2)


def _files(root):
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            path = os.path.join(dirpath, n)
            out[os.path.relpath(path, root)] = open(path, "rb").read()
    return out


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("syn"))
    return generate_synthetic_coco(root, num_train=10, num_val=8, seed=3, crowd_prob=0.3)


def test_same_seed_gives_identical_files(syn, tmp_path):
    again = generate_synthetic_coco(str(tmp_path / "a"), num_train=10, num_val=8, seed=3, crowd_prob=0.3)
    assert _files(syn) == _files(again)
    other = generate_synthetic_coco(str(tmp_path / "b"), num_train=10, num_val=8, seed=4, crowd_prob=0.3)
    a, b = _files(syn), _files(other)
    assert a.keys() == b.keys()
    assert a["annotations/person_keypoints_val.json"] != b["annotations/person_keypoints_val.json"]


def _coco(path):
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(path)


def test_pycocotools_loads_it_and_gt_as_predictions_gives_ap_1(syn):
    gt = _coco(os.path.join(syn, "annotations", "person_keypoints_val.json"))
    anns = gt.loadAnns(gt.getAnnIds())
    assert len(gt.getImgIds()) == 8 and len(anns) >= 8
    crowd = [a for a in anns if a["iscrowd"]]
    assert crowd, "expected at least one iscrowd region with crowd_prob 0.3"
    for a in crowd:
        assert gt.annToMask(a).sum() == pytest.approx(a["area"])
    for a in anns:
        if not a["iscrowd"] and a["segmentation"]:
            assert gt.annToMask(a).sum() > 0
    preds = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
             for a in anns if not a["iscrowd"] and a["num_keypoints"] > 0]
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(preds)
        ev = COCOeval(gt, dt, "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)
    assert ev.stats[5] == pytest.approx(1.0)


def test_visibility_flags_are_consistent(syn):
    for split in ("train", "val"):
        data = json.load(open(os.path.join(syn, "annotations", f"person_keypoints_{split}.json")))
        sizes = {im["id"]: (im["width"], im["height"]) for im in data["images"]}
        v_all = []
        for a in data["annotations"]:
            kp = np.array(a["keypoints"], dtype=float).reshape(17, 3)
            w, h = sizes[a["image_id"]]
            v = kp[:, 2]
            assert set(np.unique(v)) <= {0, 1, 2}
            assert np.all(kp[v == 0, :2] == 0), "v=0 keypoints must have x=y=0"
            inside = (kp[:, 0] >= 0) & (kp[:, 0] <= w - 1) & (kp[:, 1] >= 0) & (kp[:, 1] <= h - 1)
            assert np.all(inside[v > 0])
            assert a["num_keypoints"] == int((v > 0).sum())
            x, y, bw, bh = a["bbox"]
            assert bw > 0 and bh > 0 and a["area"] > 0 and a["category_id"] == 1
            v_all.append(v)
        v_all = np.concatenate(v_all)
        assert (v_all == 2).mean() > 0.5  # mostly visible, with some occluded and outside joints overall
    dets = json.load(open(os.path.join(syn, "person_detection_results", DETECTION_FILE)))
    num_people = sum(1 for a in data["annotations"] if not a["iscrowd"])
    assert len(dets) > num_people and min(d["score"] for d in dets) < 0.5
    assert {d["category_id"] for d in dets} == {1}


def test_images_match_the_annotations(syn):
    data = json.load(open(os.path.join(syn, "annotations", "person_keypoints_train.json")))
    for im in data["images"]:
        img = cv2.imread(os.path.join(syn, "images", "train", im["file_name"]))
        assert img is not None and img.shape == (im["height"], im["width"], 3)


def test_coco_keypoints_reads_train_val_and_detections(syn):
    train = CocoKeypoints(syn, "train", True, (192, 256), codec=CODEC)
    val = CocoKeypoints(syn, "val", False, (192, 256), codec=CODEC)
    det = CocoKeypoints(syn, "val", False, (192, 256), codec=CODEC, use_gt_bbox=False,
                        bbox_file=os.path.join(syn, "person_detection_results", DETECTION_FILE))
    assert len(train) > 0 and len(val) > 0 and len(det) > len(val)
    np.random.seed(0)
    for ds in (train, val, det):
        inp, target, weight, meta = ds[0]
        assert inp.shape == (3, 256, 192) and target.shape == (17, 64, 48) and weight.shape == (17, 1)
        assert torch.isfinite(inp).all()
    assert val[0][2].sum() > 0 and val[0][1].max() > 0.9


def test_build_dataset_generates_synthetic_on_first_use(tmp_path):
    cfg = get_cfg()
    cfg.defrost()
    cfg.DATASET.DATASET = "synthetic"
    cfg.DATASET.ROOT = str(tmp_path / "synthetic")
    cfg.DATASET.TRAIN_SET, cfg.DATASET.TEST_SET = "train", "val"
    cfg.DATASET.COLOR_RGB = True
    cfg.MODEL.IMAGE_SIZE = [192, 256]
    cfg.MODEL.HEATMAP_SIZE = [48, 64]
    cfg.MODEL.SIGMA = 2
    cfg.SYNTHETIC.NUM_TRAIN_IMAGES, cfg.SYNTHETIC.NUM_VAL_IMAGES = 4, 3
    cfg.WORKERS = 0
    cfg.TRAIN.BATCH_SIZE_PER_GPU = 2
    train = build_dataset(cfg, "train")
    assert os.path.isfile(os.path.join(cfg.DATASET.ROOT, "annotations", "person_keypoints_train.json"))
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".synthetic-")], "temp dir left behind"
    cfg.TEST.USE_GT_BBOX = False
    val = build_dataset(cfg, "val")  # reuses the folder, detector boxes from the generated file
    assert val.bbox_file.endswith(DETECTION_FILE) and not val.is_train
    inp, target, weight, meta = next(iter(build_dataloader(cfg, train, "train")))
    assert inp.shape == (2, 3, 256, 192) and target.shape == (2, 17, 64, 48) and meta["num_skipped"] == 0
    cfg.DATASET.DATASET = "halpe"  # crowdpose is built in now (datasets.public_sets)
    with pytest.raises(ValueError, match="coco"):
        build_dataset(cfg, "val")


def test_make_synthetic_cli(tmp_path):
    out = tmp_path / "cli"
    subprocess.run([sys.executable, os.path.join(REPO, "tools", "make_synthetic.py"), "--out", str(out),
                    "--num-train", "2", "--num-val", "1", "--seed", "5"], check=True, capture_output=True)
    ref = generate_synthetic_coco(str(tmp_path / "api"), 2, 1, seed=5)
    assert _files(str(out)) == _files(ref)
