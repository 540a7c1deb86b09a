"""One source of defaults: a class built from its constructor and the same class built from `get_cfg()` follow the
same protocol, and knobs without a config default are required (a TypeError when missing). `load_config` is the one
way to build a config, for every caller."""

import os

import numpy as np
import pytest

from hrnet_pose.apis.backends import TorchBackend
from hrnet_pose.apis.estimator import PoseEstimator
from hrnet_pose.codecs.heatmap import HeatmapCodec, build_codec
from hrnet_pose.config import ConfigError, default, get_cfg, load_config
from hrnet_pose.datasets.build import augmentation_config
from hrnet_pose.datasets.transforms import AugmentationConfig
from hrnet_pose.engine.validate import build_evaluator
from hrnet_pose.evaluation.coco_keypoints import CocoKeypointEvaluator
from hrnet_pose.keypoints import COCO17
from hrnet_pose.models import build_model

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")
VAL_ANN = os.path.join(FIXTURES, "coco_real_mini", "annotations", "person_keypoints_mini_val2017.json")

CODEC_PROTOCOL = ("use_udp", "decoder", "post_process", "dark_blur_kernel", "use_different_joints_weight",
                  "shift_heatmap", "flip_shift", "unbiased_encoding", "sigma")
EVALUATOR_PROTOCOL = ("use_gt_bbox", "in_vis_thre", "oks_thre", "soft_nms", "backend", "boxes_source_label")


def test_codec_from_constructor_equals_codec_from_defaults():
    cfg = get_cfg()
    from_cfg = build_codec(cfg)
    plain = HeatmapCodec(tuple(cfg.MODEL.IMAGE_SIZE), tuple(cfg.MODEL.HEATMAP_SIZE), cfg.MODEL.SIGMA)
    assert {k: getattr(plain, k) for k in CODEC_PROTOCOL} == {k: getattr(from_cfg, k) for k in CODEC_PROTOCOL}
    with pytest.raises(TypeError):
        HeatmapCodec((192, 256), (48, 64))  # sigma has no default: it is in every config


def test_augmentation_from_constructor_equals_augmentation_from_defaults():
    assert AugmentationConfig() == augmentation_config(get_cfg())
    assert (AugmentationConfig().scale_factor, AugmentationConfig().rot_factor, AugmentationConfig().prob_half_body) \
        == (default("DATASET.SCALE_FACTOR"), default("DATASET.ROT_FACTOR"), default("DATASET.PROB_HALF_BODY"))


def test_evaluator_from_constructor_equals_evaluator_from_defaults():
    cfg = get_cfg()
    plain = CocoKeypointEvaluator(VAL_ANN)
    from_cfg = build_evaluator(cfg, VAL_ANN, COCO17, use_gt_bbox=bool(cfg.TEST.USE_GT_BBOX))
    assert {k: getattr(plain, k) for k in EVALUATOR_PROTOCOL} == {k: getattr(from_cfg, k) for k in EVALUATOR_PROTOCOL}
    assert plain.oks_thre == 0.5 and plain.backend == "numpy"


def test_estimator_needs_the_colour_order_and_flip_test_that_change_its_keypoints(tiny_cfg_path):
    cfg = load_config(tiny_cfg_path)
    backend = TorchBackend(build_model(cfg), "cpu")
    with pytest.raises(TypeError):
        PoseEstimator(backend, build_codec(cfg), COCO17)
    est = PoseEstimator(backend, build_codec(cfg), COCO17, color_rgb=bool(cfg.DATASET.COLOR_RGB),
                        flip_test=bool(cfg.TEST.FLIP_TEST))
    from_cfg = PoseEstimator.from_config(cfg)
    assert (est.color_rgb, est.flip_test, est.codec.flip_shift, est.codec.post_process) == \
        (from_cfg.color_rgb, from_cfg.flip_test, from_cfg.codec.flip_shift, from_cfg.codec.post_process)


def test_load_config_joins_data_dir_for_every_caller(tiny_cfg_path, tmp_path):
    cfg = load_config(tiny_cfg_path, ["DATA_DIR", str(tmp_path), "DATASET.ROOT", "data/coco",
                                      "TEST.MODEL_FILE", "models/w.pth"])
    assert cfg.DATASET.ROOT == os.path.join(str(tmp_path), "data/coco")
    assert cfg.TEST.MODEL_FILE == os.path.join(str(tmp_path), "models/w.pth")
    # a resolved config given back is not joined twice
    assert load_config(cfg).DATASET.ROOT == cfg.DATASET.ROOT
    assert load_config(tiny_cfg_path, data_dir="/data").DATASET.ROOT == os.path.join("/data", "")


def test_estimator_from_a_config_node_runs_the_config_checks(tiny_cfg_path):
    cfg = get_cfg()
    cfg.merge_from_file(tiny_cfg_path)
    cfg.MODEL.EXTRA.STAGE2.FUSE_METHOD = "CAT"  # a value the official yaml may spell but no code builds
    with pytest.raises(ConfigError, match="FUSE_METHOD"):
        PoseEstimator.from_config(cfg)
    cfg.MODEL.EXTRA.STAGE2.FUSE_METHOD = "SUM"
    est = PoseEstimator.from_config(cfg)
    out = est(np.zeros((96, 64, 3), np.uint8))
    assert out.keypoints.shape == (1, 17, 2)
