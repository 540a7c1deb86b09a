"""Config keys that used to be read and then ignored: FUSE_METHOD, DATASET.DATA_FORMAT, DATASET.SELECT_DATA.

SELECT_DATA follows the official `JointsDataset.select_data`: keep a training sample when
exp(-d^2 / (2 * 0.2^2 * area)) > 0.2/16 * (num_visible - 1) + 0.45, d the distance from the visible joints' mean to the
box centre, area = prod(scale) * 200^2. The expected sets below are worked out by hand from that formula.
"""

import json

import numpy as np
import pytest

from hrnet_pose.config import ConfigError, load_config
from hrnet_pose.datasets.build import build_dataset, select_data
from hrnet_pose.models import PoseHighResolutionNet

from testpaths import TINY_YAML


def test_fuse_method_other_than_sum_is_an_error_naming_the_key():
    assert load_config(TINY_YAML, ["MODEL.EXTRA.STAGE3.FUSE_METHOD", "sum"]).MODEL.NAME == "pose_hrnet"
    with pytest.raises(ConfigError, match=r"MODEL\.EXTRA\.STAGE3\.FUSE_METHOD is 'CAT'; valid: \['SUM'\]"):
        load_config(TINY_YAML, ["MODEL.EXTRA.STAGE3.FUSE_METHOD", "CAT"])


def test_model_refuses_a_fuse_method_it_does_not_build():
    stage = {"num_modules": 1, "num_branches": 2, "block": "BASIC", "num_blocks": [1, 1], "num_channels": [8, 16]}
    stages = [stage, dict(stage, num_branches=3, num_blocks=[1] * 3, num_channels=[8, 16, 32]),
              dict(stage, num_branches=4, num_blocks=[1] * 4, num_channels=[8, 16, 32, 64], fuse_method="CONCAT")]
    with pytest.raises(ValueError, match=r"STAGE4\.FUSE_METHOD is 'CONCAT'"):
        PoseHighResolutionNet(stages, num_joints=17)
    stages[2]["fuse_method"] = "SUM"
    assert PoseHighResolutionNet(stages, num_joints=17).num_joints == 17


def test_data_format_zip_is_an_error_naming_the_valid_values():
    assert load_config(TINY_YAML, ["DATASET.DATA_FORMAT", "jpg"]).DATASET.DATA_FORMAT == "jpg"
    with pytest.raises(ConfigError, match=r"DATASET\.DATA_FORMAT is 'zip'.*extract images/<set>\.zip.*'jpg'"):
        load_config(TINY_YAML, ["DATASET.DATA_FORMAT", "zip"])
    with pytest.raises(ConfigError, match=r"DATASET\.DATA_FORMAT is 'tar'; valid: \['jpg', 'jpeg', 'png'\]"):
        load_config(TINY_YAML, ["DATASET.DATA_FORMAT", "tar"])


def test_build_dataset_checks_configs_not_made_by_load_config(tmp_path):
    cfg = load_config(TINY_YAML, ["DATASET.ROOT", str(tmp_path)], freeze=False)
    cfg.DATASET.DATA_FORMAT = "zip"  # set after load_config's check
    with pytest.raises(ConfigError, match="DATA_FORMAT"):
        build_dataset(cfg, "train")


def _person(keypoints):
    """A person with box [0, 0, 100, 100] and the given (x, y) keypoints visible (the rest unlabelled)."""
    flat = [0] * 51
    for j, (x, y) in enumerate(keypoints):
        flat[3 * j: 3 * j + 3] = [x, y, 2]
    return {"bbox": [0, 0, 100, 100], "area": 10000, "iscrowd": 0, "category_id": 1, "keypoints": flat,
            "num_keypoints": len(keypoints)}


@pytest.fixture()
def selection_root(tmp_path):
    """Four persons with the same box: the sanitised box is 99x99, centre (49.5, 49.5); at aspect 0.75 the scale is
    (99, 132) / 200 * 1.25, so area = 123.75 * 165 = 20418.75 and 2 * 0.2^2 * area = 1633.5.

    - id 1: one joint at the centre: ks = 1 > 0.45, kept;
    - id 2: one joint at the box corner: d^2 = 4900.5, ks = exp(-3.0) = 0.050 < 0.45, dropped;
    - id 3: 17 joints 10 px right of the centre: ks = exp(-100 / 1633.5) = 0.941 > 0.65, kept;
    - id 4: 17 joints 30 px right: ks = exp(-900 / 1633.5) = 0.576 < 0.65, dropped (one such joint would be kept).
    """
    persons = [_person([(49.5, 49.5)]), _person([(0, 0)]), _person([(59.5, 49.5)] * 17), _person([(79.5, 49.5)] * 17)]
    for i, p in enumerate(persons):
        p.update(id=i + 1, image_id=7)
    coco = {"images": [{"id": 7, "file_name": "000000000007.jpg", "width": 200, "height": 200}],
            "annotations": persons, "categories": [{"id": 1, "name": "person"}]}
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "annotations" / f"person_keypoints_{split}.json").write_text(json.dumps(coco))
    return str(root)


def _cfg(root, select):
    return load_config(TINY_YAML, ["DATASET.ROOT", root, "DATASET.TRAIN_SET", "train", "DATASET.TEST_SET", "val",
                                   "MODEL.IMAGE_SIZE", "[192, 256]", "MODEL.HEATMAP_SIZE", "[48, 64]",
                                   "DATASET.SELECT_DATA", str(select)])


def test_select_data_keeps_what_the_official_rule_keeps(selection_root):
    assert len(build_dataset(_cfg(selection_root, False), "train")) == 4
    selected = build_dataset(_cfg(selection_root, True), "train")
    kept_centres = [float(np.mean(rec["joints_3d"][rec["joints_3d_vis"][:, 0] > 0, 0])) for rec in selected.db]
    assert kept_centres == [49.5, 59.5]  # persons 1 and 3
    assert len(build_dataset(_cfg(selection_root, True), "val")) == 4  # evaluation never selects


def test_select_data_drops_samples_without_visible_joints():
    rec = {"joints_3d": np.zeros((17, 3)), "joints_3d_vis": np.zeros((17, 3)), "center": np.array([50.0, 50.0]),
           "scale": np.array([0.5, 0.5])}
    visible = dict(rec, joints_3d=np.tile([50.0, 50.0, 0.0], (17, 1)), joints_3d_vis=np.ones((17, 3)))
    assert select_data([rec, visible]) == [visible]
    assert select_data([]) == []
