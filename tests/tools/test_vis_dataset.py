"""tools/vis_dataset.py end to end on real COCO images (tests/fixtures/coco_real_mini): one drawn jpg per annotated
image with the ground-truth keypoints on it, options, a custom keypoint set, and the user-error exits (status 2)."""

import importlib.util
import json
import os

import cv2
import numpy as np
import pytest

from hrnet_pose.datasets.vis_dataset import draw_annotations
from hrnet_pose.errors import run_cli
from hrnet_pose.keypoints import COCO17

from testpaths import MINI, REPO

ANN = os.path.join(MINI, "annotations", "person_keypoints_mini.json")
IMAGES = os.path.join(MINI, "images")


def _load_tool():
    spec = importlib.util.spec_from_file_location("hrnet_pose_tools_vis_dataset",
                                                  os.path.join(REPO, "tools", "vis_dataset.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _load_tool()


def _run(argv):
    return run_cli(tool.main, argv)


@pytest.fixture(scope="module")
def coco():
    with open(ANN) as f:
        return json.load(f)


def _annotated(coco):
    ids = {a["image_id"] for a in coco["annotations"] if not a["iscrowd"]}
    return {img["id"]: img["file_name"] for img in coco["images"] if img["id"] in ids}


def test_writes_one_drawn_image_per_annotated_image(tmp_path, coco):
    out = tmp_path / "vis"
    assert _run(["--ann", ANN, "--images", IMAGES, "--out-dir", str(out), "--draw-bbox"]) == 0
    expected = _annotated(coco)
    assert len(expected) < len(coco["images"])  # the fixture has an image without a usable annotation
    assert sorted(os.listdir(out)) == sorted(expected.values())
    # on one crowded image: the drawing differs from the photo at the labelled keypoints, and hardly elsewhere
    image_id = 196141
    src = cv2.imread(os.path.join(IMAGES, expected[image_id])).astype(int)
    drawn = cv2.imread(str(out / expected[image_id])).astype(int)
    assert drawn.shape == src.shape
    kp = np.array([a["keypoints"] for a in coco["annotations"] if a["image_id"] == image_id and not a["iscrowd"]],
                  dtype=np.float64).reshape(-1, 17, 3)
    xy = kp[kp[:, :, 2] > 0][:, :2].round().astype(int)
    diff = np.abs(drawn - src).max(axis=2)
    assert (diff[xy[:, 1], xy[:, 0]] > 40).mean() > 0.9, diff[xy[:, 1], xy[:, 0]]
    # a re-encoded jpg differs a little everywhere; the drawing touches a small part of the image
    assert (diff > 40).mean() < 0.1


def test_draw_annotations_exact_pixels_and_thresholds(coco):
    image = cv2.imread(os.path.join(IMAGES, "000000196141.jpg"))
    anns = [a for a in coco["annotations"] if a["image_id"] == 196141]
    kp = np.array([a["keypoints"] for a in anns], dtype=np.float64).reshape(-1, 17, 3)
    visible, occluded = kp[:, :, 2] == 2, kp[:, :, 2] == 1
    assert visible.any() and occluded.any()
    changed = (draw_annotations(image, anns, COCO17) != image).any(axis=2)
    pts = kp[:, :, :2].round().astype(int)
    assert changed[pts[visible][:, 1], pts[visible][:, 0]].all()
    assert changed[pts[occluded][:, 1], pts[occluded][:, 0]].all()
    # above 0.5 only visible (v=2) keypoints are drawn; the occluded ones that are away from other drawing stay
    only_visible = (draw_annotations(image, anns, COCO17, kpt_thr=0.75) != image).any(axis=2)
    assert only_visible[pts[visible][:, 1], pts[visible][:, 0]].all()
    assert only_visible.sum() < changed.sum()


def test_image_ids_limit_and_custom_keypoint_set(tmp_path, coco):
    out = tmp_path / "ids"
    assert _run(["--ann", ANN, "--images", IMAGES, "--out-dir", str(out), "--image-ids", "790", "785"]) == 0
    assert sorted(os.listdir(out)) == ["000000000785.jpg", "000000000790.jpg"]
    out = tmp_path / "limit"
    assert _run(["--ann", ANN, "--images", IMAGES, "--out-dir", str(out), "--limit", "3"]) == 0
    assert len(os.listdir(out)) == 3
    # a 5-keypoint dataset (nose, eyes, shoulders of COCO) drawn with its own keypoint-set yaml
    keep = [0, 1, 2, 5, 6]
    five = dict(coco)
    five["categories"] = [dict(coco["categories"][0], keypoints=[COCO17.names[i] for i in keep], skeleton=[])]
    five["annotations"] = [dict(a, keypoints=np.array(a["keypoints"]).reshape(17, 3)[keep].reshape(-1).tolist())
                           for a in coco["annotations"]]
    ann5 = tmp_path / "five.json"
    ann5.write_text(json.dumps(five))
    out = tmp_path / "five"
    kset = os.path.join(REPO, "tests", "fixtures", "keypoints_5_ds.yaml")
    assert _run(["--ann", str(ann5), "--images", IMAGES, "--out-dir", str(out), "--keypoint-set", kset,
                 "--image-ids", "196141"]) == 0
    drawn = cv2.imread(str(out / "000000196141.jpg")).astype(int)
    src = cv2.imread(os.path.join(IMAGES, "000000196141.jpg")).astype(int)
    assert (np.abs(drawn - src).max(axis=2) > 40).sum() > 50


@pytest.mark.parametrize("case, message", [
    ("missing_ann", "annotation file not found"),
    ("missing_images", "image folder not found"),
    ("wrong_set", "51 keypoint values, expected 15"),
    ("unknown_id", "image ids [123] are not in the file"),
    ("not_json", "not a json file"),
])
def test_user_errors_exit_2_with_one_message(tmp_path, capsys, case, message, coco):
    ann, images, extra = ANN, IMAGES, []
    if case == "missing_ann":
        ann = str(tmp_path / "nope.json")
    elif case == "missing_images":
        images = str(tmp_path / "no_images")
    elif case == "wrong_set":
        no_categories = dict(coco, categories=[])  # so the per-annotation check speaks, not the category one
        ann = str(tmp_path / "ann.json")
        with open(ann, "w") as f:
            json.dump(no_categories, f)
        extra = ["--keypoint-set", os.path.join(REPO, "tests", "fixtures", "keypoints_5.yaml")]
    elif case == "unknown_id":
        extra = ["--image-ids", "123"]
    elif case == "not_json":
        ann = str(tmp_path / "bad.json")
        with open(ann, "w") as f:
            f.write("{not json")
    status = _run(["--ann", ann, "--images", images, "--out-dir", str(tmp_path / "out")] + extra)
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("error: ") and message in err, err
    assert "Traceback" not in err


def test_category_keypoint_count_mismatch_names_the_set(tmp_path, capsys):
    status = _run(["--ann", ANN, "--images", IMAGES, "--out-dir", str(tmp_path / "out"), "--keypoint-set",
                   os.path.join(REPO, "tests", "fixtures", "keypoints_5.yaml")])
    err = capsys.readouterr().err
    assert status == 2
    assert "category 'person' has 17 keypoints but the keypoint set 'star5' has 5" in err
    assert "hint: pass --keypoint-set" in err


def test_official_mpii_json_is_drawn_with_the_mpii_joints(tmp_path):
    """tools/vis_dataset.py reads an official MPII annot/<set>.json: its 16 joints drawn with the MPII set."""
    from hrnet_pose.datasets.synthetic_mpii import generate_synthetic_mpii
    from hrnet_pose.datasets.vis_dataset import mpii_as_coco, visualize_coco_dataset

    root = generate_synthetic_mpii(str(tmp_path / "mpii"), num_train=1, num_val=3, seed=1, image_size=(128, 128))
    ann = os.path.join(root, "annot", "valid.json")
    with open(ann) as f:
        entries = json.load(f)
    data = mpii_as_coco(ann)
    assert len(data["annotations"]) == len(entries) and data["categories"][0]["keypoint_set"] == "mpii"
    first = np.asarray(data["annotations"][0]["keypoints"]).reshape(16, 3)
    np.testing.assert_allclose(first[:, :2], np.asarray(entries[0]["joints"]) - 1.0)  # official 1-based -> 0-based
    written = visualize_coco_dataset(ann, os.path.join(root, "images"), str(tmp_path / "vis"))
    assert len(written) == len({e["image"] for e in entries})
    src = cv2.imread(os.path.join(root, "images", entries[0]["image"]))
    drawn = cv2.imread(written[0])
    assert drawn.shape == src.shape and np.abs(drawn.astype(int) - src).mean() > 0.05  # joints and limbs were drawn
