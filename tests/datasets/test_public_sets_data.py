"""The public keypoint sets load their small files in the real formats (tests/fixtures/public_sets, SOURCES.md):
COCO-WholeBody's five keypoint fields as one 133-keypoint pose, CrowdPose without areas, AP-10K's species as
samples, OCHuman as COCO-17 (evaluation only); the built-in keypoint sets agree with their datasets; and
tools/test.py evaluates a 133-keypoint model on COCO-WholeBody with its part breakdown."""

import json
import os
import shutil

import numpy as np
import pytest
import torch

from hrnet_pose.codecs.heatmap import HeatmapCodec
from hrnet_pose.config import load_config
from hrnet_pose.datasets import build_dataset
from hrnet_pose.datasets.public_sets import AP10KKeypoints, CocoWholeBodyKeypoints, CrowdPoseKeypoints
from hrnet_pose.errors import ConfigError
from hrnet_pose.evaluation.public_sets import evaluate_wholebody
from hrnet_pose.keypoints import COCO17, KeypointSetError, get_keypoint_set
from hrnet_pose.models import build_model

from clitest import CPU_QUIET, load_tool
from testpaths import EXPERIMENTS, FIXTURES, MINI, TINY_YAML

HERE = os.path.join(FIXTURES, "public_sets")
IMAGES = os.path.join(MINI, "images")


def _load(name):
    with open(os.path.join(HERE, name)) as f:
        return json.load(f)


def _dataset(cls, ann, keypoint_set, **kwargs):
    return cls(root=HERE, image_set="val", is_train=False, image_size=(48, 64), keypoint_set=keypoint_set,
               codec=HeatmapCodec(image_size=(48, 64), heatmap_size=(12, 16), sigma=2), use_gt_bbox=True,
               ann_file=os.path.join(HERE, ann), image_dir=IMAGES, **kwargs)


def test_builtin_sets_are_consistent():
    wb = get_keypoint_set("coco_wholebody")
    assert (wb.num_keypoints, len(wb.sigmas), wb.small_ids) == (133, 133, tuple(range(23, 133)))
    # the whole-body set starts with COCO-17: same names, sigmas and pairs
    # (COCO's are written 0.26 / 10, the whole-body ones 0.026 as MMPose passes them to xtcocotools: 1 ulp apart)
    assert wb.names[:17] == COCO17.names and np.allclose(wb.sigmas[:17], COCO17.sigmas, rtol=1e-15, atol=0)
    assert set(COCO17.flip_pairs) <= set(wb.flip_pairs)
    assert wb.names[17:23] == ("left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe",
                               "right_heel")
    assert wb.names[91] == "left_hand_root" and wb.names[112] == "right_hand_root"
    for name, k in (("coco_wholebody", 133), ("crowdpose", 14), ("ap10k", 17), ("ochuman", 17)):
        kset = get_keypoint_set(name)
        flip = kset.flip_index
        assert kset.num_keypoints == len(kset.sigmas) == len(kset.colors) == k, name
        assert np.array_equal(flip[flip], np.arange(k)), name  # flipping twice is the identity
        for a, b in kset.flip_pairs:  # every pair swaps a left name with its right twin
            left, right = kset.names[a].lower(), kset.names[b].lower()
            twin = "right" + left[4:] if left.startswith("left") else "r_" + left[2:] if left.startswith("l_") else ""
            assert twin == right or \
                (name == "coco_wholebody" and left.startswith("face-")), (name, left, right)
    assert np.array_equal(get_keypoint_set("crowdpose").sigmas,
                          np.array([.79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89, .79, .79]) / 10)
    assert get_keypoint_set("ochuman") is COCO17
    with pytest.raises(KeypointSetError, match="coco_wholebody.*crowdpose.*ap10k"):
        get_keypoint_set("wholebody")


def test_wholebody_fields_become_one_133_keypoint_pose():
    ds = _dataset(CocoWholeBodyKeypoints, "coco_wholebody_mini.json", "coco_wholebody")
    data = _load("coco_wholebody_mini.json")
    anns = {a["id"]: a for a in data["annotations"]}
    labelled = [a for a in data["annotations"] if any(a["keypoints"][2::3]) or any(a["face_kpts"][2::3])]
    assert len(ds) == len(labelled) == 12  # the two persons without any labelled keypoint are dropped
    first = anns[labelled[0]["id"]]
    joints = ds.db[0]["joints_3d"]
    expected = np.array(first["keypoints"] + first["foot_kpts"] + first["face_kpts"] + first["lefthand_kpts"]
                        + first["righthand_kpts"]).reshape(133, 3)
    assert joints.shape == (133, 3) and np.array_equal(joints[:, :2], expected[:, :2])
    assert np.array_equal(ds.db[0]["joints_3d_vis"][:, 0], np.minimum(expected[:, 2], 1))
    inp, target, weight, meta = ds[0]
    assert target.shape == (133, 16, 12) and weight.shape == (133, 1)
    # a part whose valid flag is false has all-zero keypoints: weight 0 for those joints
    invalid = next(i for i, rec in enumerate(ds.db) if not anns[labelled[i]["id"]]["face_valid"])
    assert not ds[invalid][2][23:91].any()


def test_crowdpose_boxes_without_area_and_ap10k_species():
    cp = _dataset(CrowdPoseKeypoints, "crowdpose_mini.json", "crowdpose")
    data = _load("crowdpose_mini.json")
    assert "area" not in data["annotations"][0]
    assert len(cp) == sum(a["num_keypoints"] > 0 for a in data["annotations"]) == 12
    assert cp.db[0]["joints_3d"].shape == (14, 3)

    ap = _dataset(AP10KKeypoints, "ap10k_mini.json", "ap10k")
    data = _load("ap10k_mini.json")
    assert [r["category_id"] for r in ap.db] == [a["category_id"] for a in data["annotations"]]
    assert len({r["category_id"] for r in ap.db}) > 1  # animals of every species are samples, not only id 1


def _layout(tmp_path, files):
    for src, dst in files:
        os.makedirs(os.path.dirname(tmp_path / dst), exist_ok=True)
        shutil.copy(os.path.join(HERE, src), tmp_path / dst)
    return tmp_path


def test_config_names_build_each_set_from_its_layout(tmp_path):
    root = _layout(tmp_path, [("crowdpose_mini.json", "cp/annotations/crowdpose_test.json"),
                              ("ochuman_coco_format_val_range_0.00_1.00.json",
                               "oc/annotations/ochuman_coco_format_val_range_0.00_1.00.json")])
    os.symlink(IMAGES, root / "cp" / "images")
    os.symlink(IMAGES, root / "oc" / "images")
    cfg = load_config(TINY_YAML, ["DATASET.DATASET", "crowdpose", "DATASET.ROOT", str(root / "cp"),
                                  "DATASET.TEST_SET", "test", "MODEL.NUM_JOINTS", "14", "TEST.USE_GT_BBOX", "True"])
    assert cfg.DATASET.KEYPOINT_SET == "crowdpose"  # the dataset's own set unless the config names one
    ds = build_dataset(cfg, "val")
    assert isinstance(ds, CrowdPoseKeypoints) and ds.num_joints == 14
    cfg = load_config(TINY_YAML, ["DATASET.DATASET", "ochuman", "DATASET.ROOT", str(root / "oc"),
                                  "DATASET.TEST_SET", "val", "TEST.USE_GT_BBOX", "True"])
    assert build_dataset(cfg, "val").keypoint_set is COCO17
    with pytest.raises(ConfigError, match="ochuman.*no training split"):
        build_dataset(cfg, "train")
    cfg = load_config(TINY_YAML, ["DATASET.DATASET", "coco_wholebody", "DATASET.ROOT", str(root / "missing"),
                                  "DATASET.TEST_SET", "val2017", "MODEL.NUM_JOINTS", "133"])
    with pytest.raises(FileNotFoundError, match=r"coco_wholebody_val_v1.0.json[\s\S]*images/\{train2017,val2017\}"):
        build_dataset(cfg, "val")


test_tool = load_tool("test")


@pytest.mark.usefixtures("one_thread")
def test_test_py_scores_a_133_keypoint_model_on_coco_wholebody(tmp_path):
    root = _layout(tmp_path, [("coco_wholebody_mini.json", "wb/annotations/coco_wholebody_val_v1.0.json")])
    os.makedirs(root / "wb" / "images")
    os.symlink(IMAGES, root / "wb" / "images" / "val2017")
    opts = ["DATASET.DATASET", "coco_wholebody", "DATASET.ROOT", str(root / "wb"), "DATASET.TEST_SET", "val2017",
            "MODEL.NUM_JOINTS", "133", "TEST.USE_GT_BBOX", "True"]
    torch.manual_seed(0)
    weights = str(tmp_path / "wb133.pth")
    torch.save(build_model(load_config(TINY_YAML, opts)).state_dict(), weights)
    result = test_tool.main(["--cfg", TINY_YAML, "--modelDir", str(tmp_path / "out"), "TEST.MODEL_FILE", weights]
                            + opts + CPU_QUIET)
    out = os.path.join(str(tmp_path / "out"), "coco_wholebody", "pose_hrnet", "official_hrnet_tiny_a")
    with open(os.path.join(out, "results", "keypoints_val2017_results_0.json")) as f:
        rows = json.load(f)
    assert rows and len(rows[0]["face_kpts"]) == 204 and len(rows[0]["keypoints"]) == 51
    kpts = np.array([r["keypoints"] + r["foot_kpts"] + r["face_kpts"] + r["lefthand_kpts"] + r["righthand_kpts"]
                     for r in rows]).reshape(len(rows), 133, 3)
    expected = evaluate_wholebody(_load("coco_wholebody_mini.json"), [r["image_id"] for r in rows], kpts,
                                  [r["score"] for r in rows], get_keypoint_set("coco_wholebody").sigmas)
    with open(os.path.join(out, "metrics.json")) as f:
        metrics = json.load(f)
    for key, value in expected.items():  # the metrics are the whole-body scoring of the file the run wrote
        assert metrics[key] == result[key] == value, key
    assert {"body AP", "foot AP", "face AP", "lefthand AP", "righthand AP"} <= set(metrics)
    assert metrics["protocol"].endswith("COCO-WholeBody scoring as xtcocotools (per part, its own sigmas)")


@pytest.mark.parametrize("path,dataset,k", [
    ("coco_wholebody/hrnet/w32_256x192_adam_lr1e-3.yaml", "coco_wholebody", 133),
    ("coco_wholebody/hrnet/w48_384x288_adam_lr1e-3.yaml", "coco_wholebody", 133),
    ("crowdpose/hrnet/w32_256x192_adam_lr1e-3.yaml", "crowdpose", 14),
    ("ap10k/hrnet/w32_256x256_adam_lr1e-3.yaml", "ap10k", 17),
    ("ochuman/hrnet/w32_256x192_test.yaml", "ochuman", 17)])
def test_experiment_yamls_name_their_set(path, dataset, k):
    cfg = load_config(os.path.join(EXPERIMENTS, path))
    assert cfg.DATASET.DATASET == cfg.DATASET.KEYPOINT_SET == dataset
    assert cfg.MODEL.NUM_JOINTS == get_keypoint_set(dataset).num_keypoints == k
    assert cfg.MODEL.HEATMAP_SIZE == [s // 4 for s in cfg.MODEL.IMAGE_SIZE]


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name,k,ann,keys", [
    ("crowdpose", 14, "annotations/crowdpose_test.json", ["AP (easy)", "AP (medium)", "AP (hard)"]),
    ("ap10k", 17, "annotations/ap10k-test.json", ["AP Bovidae", "AP Felidae", "AP Canidae"])])
def test_test_py_scores_crowdpose_and_ap10k_their_way(tmp_path, name, k, ann, keys):
    from hrnet_pose.evaluation.public_sets import evaluate_ap10k, evaluate_crowdpose

    root = _layout(tmp_path, [(f"{name}_mini.json", f"d/{ann}")])
    os.symlink(IMAGES, root / "d" / ("images" if name == "crowdpose" else "data"))
    opts = ["DATASET.DATASET", name, "DATASET.ROOT", str(root / "d"), "DATASET.TEST_SET", "test",
            "MODEL.NUM_JOINTS", str(k), "TEST.USE_GT_BBOX", "True"]
    torch.manual_seed(1)
    weights = str(tmp_path / "w.pth")
    torch.save(build_model(load_config(TINY_YAML, opts)).state_dict(), weights)
    result = test_tool.main(["--cfg", TINY_YAML, "--modelDir", str(tmp_path / "out"), "TEST.MODEL_FILE", weights]
                            + opts + CPU_QUIET)
    out = os.path.join(str(tmp_path / "out"), name, "pose_hrnet", "official_hrnet_tiny_a")
    with open(os.path.join(out, "results", "keypoints_test_results_0.json")) as f:
        rows = json.load(f)
    gt = _load(f"{name}_mini.json")
    args = (gt, [r["image_id"] for r in rows], np.array([r["keypoints"] for r in rows]).reshape(len(rows), k, 3),
            [r["score"] for r in rows], get_keypoint_set(name).sigmas)
    expected = evaluate_crowdpose(*args) if name == "crowdpose" else \
        evaluate_ap10k(*args, np.array([r["category_id"] for r in rows]))
    for key, value in expected.items():  # the run's numbers are its dataset's scoring of the file it wrote
        assert result[key] == value, key
    assert set(keys) <= set(result)
    if name == "ap10k":  # each result carries its box's species
        assert sorted({r["category_id"] for r in rows}) == sorted({a["category_id"] for a in gt["annotations"]})


def test_vis_dataset_draws_coco_wholebody_files(tmp_path):
    import cv2

    from hrnet_pose.datasets.vis_dataset import visualize_coco_dataset

    data = _load("coco_wholebody_mini.json")
    first = min(a["image_id"] for a in data["annotations"] if a["lefthand_valid"])
    (written,) = visualize_coco_dataset(os.path.join(HERE, "coco_wholebody_mini.json"), IMAGES, str(tmp_path),
                                        image_ids=[first], kpt_thr=0.0)
    image = next(i for i in data["images"] if i["id"] == first)
    before = cv2.imread(os.path.join(IMAGES, image["file_name"])).astype(int)
    after = cv2.imread(written).astype(int)
    # the five keypoint fields are drawn as one 133-keypoint set: a hand point is painted
    hand = next(a for a in data["annotations"] if a["image_id"] == first and a["lefthand_valid"])
    x, y = (int(round(v)) for v in hand["lefthand_kpts"][:2])
    assert np.abs(after[y - 1:y + 2, x - 1:x + 2] - before[y - 1:y + 2, x - 1:x + 2]).max() > 40
