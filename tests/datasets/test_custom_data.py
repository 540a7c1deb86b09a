"""A user's own COCO-format keypoint data: custom annotation and image paths, the file's category, the data check that
names every problem at once, and CVAT / Label Studio exports loaded as they come."""

import json
import os

import cv2
import numpy as np
import pytest

from hrnet_pose.config import load_config
from hrnet_pose.datasets.annotations import CategoryError, DataCheckError
from hrnet_pose.datasets.build import build_dataset
from hrnet_pose.datasets.synthetic_kites import KITE_NAMES, KITE_SKELETON, generate_synthetic_kites
from hrnet_pose.errors import run_cli
from hrnet_pose.evaluation.coco_keypoints import CocoKeypointEvaluator
from hrnet_pose.keypoints import DEFAULT_SIGMA, load_keypoint_set

from testpaths import EXPERIMENTS, FIXTURES, REPO

KITES_YAML = os.path.join(EXPERIMENTS, "synthetic", "kites.yaml")
KITES_SET = os.path.join(EXPERIMENTS, "synthetic", "kites_keypoints.yaml")
TOOLS = os.path.join(FIXTURES, "annotation_tools")


@pytest.fixture(scope="module")
def kites(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("kites"))
    generate_synthetic_kites(root, num_train=5, num_val=3, seed=1, image_size=(128, 128))
    return root


def _cfg(*opts):
    return load_config(KITES_YAML, ["WORKERS", "0"] + list(opts))


def test_custom_annotation_paths_and_json_image_ids(kites):
    ds = build_dataset(_cfg("DATASET.ROOT", kites), "train")
    assert ds.ann_file == os.path.join(kites, "kites_train.json")  # DATASET.TRAIN_ANNOTATIONS, under ROOT
    assert ds.image_dir == os.path.join(kites, "images", "train")
    with open(ds.ann_file) as f:
        data = json.load(f)
    names = {im["id"]: im["file_name"] for im in data["images"]}
    assert len(ds) == sum(1 for a in data["annotations"] if a["category_id"] == 3) > 0
    for rec in ds.db:  # ids are the json's (101...), never parsed from the file names (sky_train_0000.jpg)
        assert rec["image_id"] >= 101 and rec["image"] == os.path.join(ds.image_dir, names[rec["image_id"]])
    image, target, weight, meta = ds[0]
    assert tuple(image.shape) == (3, 96, 64) and tuple(target.shape) == (6, 24, 16)
    assert ds.category_id == 3 and build_dataset(_cfg("DATASET.ROOT", kites), "val").coco.getCatIds() == [3]

    # absolute paths work the same; a path that is nowhere is an error naming its key
    absolute = _cfg("DATASET.ROOT", "", "DATASET.TRAIN_ANNOTATIONS", os.path.join(kites, "kites_train.json"),
                    "DATASET.TRAIN_IMAGES", os.path.join(kites, "images", "train"))
    assert len(build_dataset(absolute, "train")) == len(ds)
    with pytest.raises(FileNotFoundError, match="DATASET.TEST_ANNOTATIONS 'nowhere.json'"):
        build_dataset(_cfg("DATASET.ROOT", kites, "DATASET.TEST_ANNOTATIONS", "nowhere.json"), "val")


def test_the_category_is_the_files_keypoint_category_or_named(kites, tmp_path):
    with open(os.path.join(kites, "kites_val.json")) as f:
        data = json.load(f)
    twin = dict(data["categories"][0], id=7, name="kite_b")
    extra = [dict(a, id=1000 + a["id"], category_id=7) for a in data["annotations"][:2]]
    both = dict(data, categories=data["categories"] + [twin], annotations=data["annotations"] + extra)
    path = tmp_path / "two.json"
    path.write_text(json.dumps(both))
    opts = ["DATASET.ROOT", kites, "DATASET.TEST_ANNOTATIONS", str(path), "DATASET.TEST_IMAGES", "images/val"]
    with pytest.raises(CategoryError, match=r"2 keypoint categories \['kite', 'kite_b'\]: set DATASET.CATEGORY"):
        build_dataset(_cfg(*opts), "val")
    ds = build_dataset(_cfg(*opts, "DATASET.CATEGORY", "kite_b"), "val")
    assert len(ds) == 2 and ds.category_id == 7 and ds.coco.getCatIds() == [7]


def test_unknown_names_without_a_keypoint_set_stop_with_the_command(kites):
    with pytest.raises(DataCheckError) as err:
        build_dataset(_cfg("DATASET.ROOT", kites, "DATASET.KEYPOINT_SET", "", "MODEL.NUM_JOINTS", "17"), "train")
    (line,) = err.value.problems
    assert "DATASET.KEYPOINT_SET is empty, so the 17 COCO keypoints are assumed" in line
    assert f"python tools/make_keypoint_set.py {os.path.join(kites, 'kites_train.json')} > kite.yaml" in line
    assert "DATASET.KEYPOINT_SET kite.yaml and MODEL.NUM_JOINTS 6" in line


def test_make_keypoint_set_writes_names_skeleton_guessed_flips_and_no_sigmas(kites, tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_keypoint_set", os.path.join(REPO, "tools",
                                                                                    "make_keypoint_set.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main([os.path.join(kites, "kites_train.json")]) == 0
    text = capsys.readouterr().out
    assert f"default {DEFAULT_SIGMA:.4f}" in text
    path = tmp_path / "kite.yaml"
    path.write_text(text)
    kset = load_keypoint_set(str(path))
    assert kset.names == KITE_NAMES and kset.skeleton == KITE_SKELETON and kset.flip_pairs == ((1, 2),)
    assert not kset.sigmas_given and np.all(kset.sigmas == DEFAULT_SIGMA)


def test_a_set_without_sigmas_warns_that_ap_is_a_convention(kites, tmp_path, caplog):
    text = open(KITES_SET).read()
    (tmp_path / "no_sigmas.yaml").write_text("\n".join(line for line in text.splitlines()
                                                      if not line.startswith("sigmas:")))
    with caplog.at_level("WARNING", logger="hrnet_pose.datasets.build"):
        build_dataset(_cfg("DATASET.ROOT", kites, "DATASET.KEYPOINT_SET", str(tmp_path / "no_sigmas.yaml")), "val")
    assert f"gives no OKS sigmas: every keypoint uses {DEFAULT_SIGMA:.4f}" in caplog.text
    assert "its AP is a convention; compare PCK@0.2 and EPE" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="hrnet_pose.datasets.build"):
        build_dataset(_cfg("DATASET.ROOT", kites), "val")  # the kites' own yaml has sigmas
    assert "sigmas" not in caplog.text


def _broken(kites, tmp_path):
    """A yaml and a json with one instance of every problem the data check names."""
    (tmp_path / "bad.yaml").write_text(
        "name: kite\nkeypoints: [top, left_wing, right_wing, bottom, centre, tail]\n"
        "flip_pairs: [[left_wing, right_wing], [3, 9], [left_wing, centre]]\n"
        "sigmas: [0.05, 0.05, 0.05]\njoints_weight: [1.0, 1.0]\n")
    with open(os.path.join(kites, "kites_train.json")) as f:
        data = json.load(f)
    anns = data["annotations"]
    anns[0]["keypoints"] = anns[0]["keypoints"][:15]
    anns[1]["keypoints"][2] = 3
    del anns[2]["bbox"]
    anns[3]["bbox"][2] = 0
    (tmp_path / "bad.json").write_text(json.dumps(data))
    ids = [a["id"] for a in anns[:4]]
    return str(tmp_path / "bad.yaml"), str(tmp_path / "bad.json"), ids


def test_data_check_names_every_problem_on_its_own_line(kites, tmp_path, capsys):
    yaml_path, json_path, ids = _broken(kites, tmp_path)
    expected = [
        f"{yaml_path}: 'sigmas' has 3 values, expected 6 (one per keypoint)",
        f"{yaml_path}: 'joints_weight' has 2 values, expected 6 (one per keypoint)",
        f"{yaml_path}: 'flip_pairs' entry [3, 9] is out of range: ids go from 0 to 5",
        f"{yaml_path}: 'flip_pairs' uses keypoint 'left_wing' in 2 pairs: the left/right swap is not symmetric",
        "MODEL.NUM_JOINTS is 7 but the keypoint set 'kite'",
        f"{json_path}: category 'kite' names 6 keypoints, the keypoint set 'kite' 6; they differ at 5: json "
        "'tail_end' vs set 'tail'",
        f"{json_path}: annotation id {ids[0]}: 'keypoints' has 15 values, expected 18",
        f"{json_path}: annotation id {ids[1]}: visibility values ['3'] outside 0/1/2",
        f"{json_path}: annotation id {ids[2]}: 'bbox' is missing",
        f"{json_path}: annotation id {ids[3]}: 'bbox' [",
    ]
    opts = ["DATASET.ROOT", kites, "DATASET.KEYPOINT_SET", yaml_path, "MODEL.NUM_JOINTS", "7",
            "DATASET.TRAIN_ANNOTATIONS", json_path]
    with pytest.raises(DataCheckError) as err:
        build_dataset(_cfg(*opts), "train")
    problems = err.value.problems
    assert len(problems) == len(expected)
    for text, line in zip(expected, problems):
        assert line.startswith(text), (text, line)
    assert problems[-1].endswith("is empty (width and height must be > 0)")

    # tools/train.py: status 2, each problem its own `error:` line, no traceback
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_tool", os.path.join(REPO, "tools", "train.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    capsys.readouterr()
    code = run_cli(tool.main, ["--cfg", KITES_YAML, "--modelDir", str(tmp_path / "out"), "--logDir",
                               str(tmp_path / "log")] + opts + ["WORKERS", "0"])
    err_text = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err_text
    lines = [line[len("error: "):] for line in err_text.splitlines() if line.startswith("error: ")]
    # the evaluation json's problems too, in the same check (its names differ from the broken yaml's as well)
    assert lines[0].startswith(f"the data check found {len(expected) + 1} problems")
    assert lines[1:-1] == problems
    assert lines[-1].startswith(f"{os.path.join(kites, 'kites_val.json')}: category 'kite' names 6 keypoints")


def _draw_images(data, folder):
    for im in data["images"]:
        path = os.path.join(folder, os.path.basename(im["file_name"]))
        cv2.imwrite(path, np.full((im["height"], im["width"], 3), 127, np.uint8))


@pytest.mark.parametrize("name, count", [("cvat_coco_keypoints_1.0.json", 3), ("label_studio_coco.json", 2)])
def test_annotation_tool_exports_load_directly_and_evaluate(name, count, tmp_path):
    ann = os.path.join(TOOLS, name)
    with open(ann) as f:
        data = json.load(f)
    images = tmp_path / "images"
    images.mkdir()
    _draw_images(data, str(images))
    cfg = _cfg("DATASET.ROOT", "", "DATASET.TEST_ANNOTATIONS", ann, "DATASET.TEST_IMAGES", str(images),
               "TEST.USE_GT_BBOX", "True")
    ds = build_dataset(cfg, "val")
    assert len(ds) == count and all(os.path.isfile(r["image"]) for r in ds.db)
    assert ds[0][0].shape == (3, 96, 64)
    # ground truth as predictions: AP 1.0 (Label Studio's annotation id 0 is renumbered, else COCOeval would read
    # its match as "unmatched" and count a false positive)
    ev = CocoKeypointEvaluator(ds.coco, keypoint_set=load_keypoint_set(KITES_SET), use_gt_bbox=True)
    joints = np.stack([r["joints_3d"][:, :2] for r in ds.db])
    ev.process(joints, np.ones((len(ds), 6, 1)), np.stack([r["center"] for r in ds.db]),
               np.stack([r["scale"] for r in ds.db]), np.ones(len(ds)), [r["image_id"] for r in ds.db])
    assert ev.evaluate()["AP"] == pytest.approx(1.0)
    errors = ev.keypoint_errors()
    assert errors["PCK"] == 1.0 and errors["EPE"] < 1e-4  # the evaluator keeps keypoints in float32 (~1e-6 px)
