"""Ultralytics YOLO-pose labels <-> COCO json + keypoint-set yaml: both round trips give the same keypoints, flip_idx
becomes the set's flip pairs, and a malformed yaml or label line is one error naming the file."""

import json
import os

import cv2
import numpy as np
import pytest

from hrnet_pose.datasets.yolo_pose import YoloFormatError, coco_to_yolo, parse_labels, yolo_to_coco
from hrnet_pose.keypoints import load_keypoint_set

from testpaths import REPO

FLIP_IDX = [0, 2, 1, 3, 5, 4]
NAMES = ["head", "l_fin", "r_fin", "tail", "left_eye", "right_eye"]


def _yolo_dataset(root, dims=3, seed=0):
    """A small YOLO-pose dataset: 2 train and 1 val image of different sizes, 1-2 fish each."""
    rng = np.random.default_rng(seed)
    lines = {}
    for split, sizes in (("train", [(160, 120), (96, 128)]), ("val", [(200, 100)])):
        os.makedirs(os.path.join(root, "images", split))
        os.makedirs(os.path.join(root, "labels", split))
        for n, (w, h) in enumerate(sizes):
            cv2.imwrite(os.path.join(root, "images", split, f"f{n}.png"), np.zeros((h, w, 3), np.uint8))
            rows = []
            for _ in range(int(rng.integers(1, 3))):
                values = [0] + [round(float(v), 6) for v in rng.uniform(0.2, 0.8, 2)] + \
                         [round(float(v), 6) for v in rng.uniform(0.1, 0.3, 2)]
                for j in range(6):
                    x, y = (round(float(v), 6) for v in rng.uniform(0.05, 0.95, 2))
                    v = int(rng.choice([0, 1, 2])) if j else 2
                    if v == 0:
                        x = y = 0.0
                    values += [x, y] + ([v] if dims == 3 else [])
                rows.append(" ".join(str(v) for v in values))
            lines[(split, n)] = rows
            with open(os.path.join(root, "labels", split, f"f{n}.txt"), "w") as f:
                f.write("\n".join(rows) + "\n")
    with open(os.path.join(root, "fish-pose.yaml"), "w") as f:
        f.write(f"path: {root}\ntrain: images/train\nval: images/val\nkpt_shape: [6, {dims}]\n"
                f"flip_idx: {FLIP_IDX}\nnames:\n  0: fish\nkpt_names:\n  0: {json.dumps(NAMES)}\n")
    return os.path.join(root, "fish-pose.yaml"), lines


def test_yolo_to_coco_to_yolo_gives_the_same_labels(tmp_path):
    data_yaml, lines = _yolo_dataset(str(tmp_path / "yolo"))
    written = yolo_to_coco(data_yaml, str(tmp_path / "coco"))
    kset = load_keypoint_set(written["keypoint_set"])
    assert list(kset.names) == NAMES and kset.flip_pairs == ((1, 2), (4, 5))
    assert list(kset.flip_index) == FLIP_IDX and not kset.sigmas_given

    with open(written["train"]) as f:
        train = json.load(f)
    assert train["categories"][0]["name"] == "fish" and train["categories"][0]["keypoints"] == NAMES
    first = train["annotations"][0]
    img = {im["id"]: im for im in train["images"]}[first["image_id"]]
    expected = [float(v) for v in lines[("train", 0)][0].split()]
    assert first["keypoints"][0] == pytest.approx(expected[5] * img["width"])  # pixels, not normalised

    out = tmp_path / "back"
    for split in ("train", "val"):
        coco_to_yolo(written[split], os.path.join(str(tmp_path / "yolo"), "images", split), str(out), split,
                     keypoint_set=written["keypoint_set"])
        for (s, n), rows in lines.items():
            if s != split:
                continue
            back = parse_labels(open(out / "labels" / split / f"f{n}.txt").read(), 6)
            orig = parse_labels("\n".join(rows), 6)
            assert [c for c, _ in back] == [c for c, _ in orig]
            # 6 decimals each way: normalised values agree to the text files' rounding
            np.testing.assert_allclose([v for _, v in back], [v for _, v in orig], atol=1.5e-6)
    with open(out / "data.yaml") as f:
        import yaml
        spec = yaml.safe_load(f)
    assert spec["kpt_shape"] == [6, 3] and spec["flip_idx"] == FLIP_IDX and spec["kpt_names"] == {0: NAMES}
    assert spec["train"] == "images/train" and spec["val"] == "images/val"
    assert os.path.isfile(out / "images" / "val" / "f0.png")


def test_coco_to_yolo_to_coco_gives_the_same_keypoints(tmp_path):
    data_yaml, _ = _yolo_dataset(str(tmp_path / "yolo"), dims=2, seed=4)
    first = yolo_to_coco(data_yaml, str(tmp_path / "coco1"))
    with open(first["val"]) as f:
        coco1 = json.load(f)
    # 2-value keypoints: (0, 0) is unlabelled, anything else visible
    assert {v for a in coco1["annotations"] for v in a["keypoints"][2::3]} <= {0, 2}
    coco_to_yolo(first["val"], str(tmp_path / "yolo" / "images" / "val"), str(tmp_path / "y2"), "val",
                 keypoint_set=first["keypoint_set"])
    second = yolo_to_coco(str(tmp_path / "y2" / "data.yaml"), str(tmp_path / "coco2"))
    with open(second["val"]) as f:
        coco2 = json.load(f)
    a1, a2 = coco1["annotations"], coco2["annotations"]
    assert len(a1) == len(a2) > 0
    for x, y in zip(a1, a2):  # pixels agree to 6 decimals of the normalised text (< 0.001 px for these sizes)
        np.testing.assert_allclose(x["keypoints"], y["keypoints"], atol=1e-3)
        np.testing.assert_allclose(x["bbox"], y["bbox"], atol=1e-3)


def test_malformed_yaml_and_labels_are_one_error_naming_the_file(tmp_path, capsys):
    data_yaml, _ = _yolo_dataset(str(tmp_path / "yolo"))
    text = open(data_yaml).read()
    open(data_yaml, "w").write(text.replace(f"flip_idx: {FLIP_IDX}", "flip_idx: [0, 2, 2, 3, 5, 4]"))
    with pytest.raises(YoloFormatError, match="'flip_idx' .* must list the mirror partner"):
        yolo_to_coco(data_yaml, str(tmp_path / "c"))
    open(data_yaml, "w").write(text)
    bad = tmp_path / "yolo" / "labels" / "val" / "f0.txt"
    bad.write_text("0 0.5 0.5 0.2 0.2 0.1 0.1\n")

    import importlib.util

    spec = importlib.util.spec_from_file_location("convert_tool", os.path.join(REPO, "tools", "convert.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    from hrnet_pose.errors import run_cli

    assert run_cli(tool.main, ["yolo2coco", "--data", data_yaml, "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert f"error: {bad} line 1: 7 values, expected 23" in err and "Traceback" not in err
