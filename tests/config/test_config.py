import glob
import os

import pytest

from hrnet_pose.config import ConfigError, get_cfg, load_config, update_config
from hrnet_pose.config import add_official_args

OFFICIAL = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "coco", "hrnet", "*.yaml")))


def test_four_official_yamls_present_and_merge_unchanged():
    assert len(OFFICIAL) == 4
    for path in OFFICIAL:
        cfg = load_config(path)
        assert cfg.MODEL.NAME == "pose_hrnet"
        assert cfg.GPUS == (0, 1, 2, 3)
        assert cfg.TEST.USE_GT_BBOX is True
        assert cfg.MODEL.EXTRA.STAGE4.NUM_BRANCHES == 4


OFFICIAL_SHA256_PREFIX = {  # sha256 of leoxiaobin/deep-high-resolution-net.pytorch@6f69e46 experiments/coco/hrnet
    "w32_256x192_adam_lr1e-3.yaml": "887e2df7a490d0d1",
    "w32_384x288_adam_lr1e-3.yaml": "4d1878dea5c788db",
    "w48_256x192_adam_lr1e-3.yaml": "7d6abc17b085e6a3",
    "w48_384x288_adam_lr1e-3.yaml": "b39496be657f0950",
}


def test_official_yamls_are_byte_identical_copies():
    import hashlib
    digests = {os.path.basename(p): hashlib.sha256(open(p, "rb").read()).hexdigest()[:16] for p in OFFICIAL}
    assert digests == OFFICIAL_SHA256_PREFIX


def test_misspelt_extra_key_is_an_error_naming_it(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("MODEL:\n  EXTRA:\n    STAGE3:\n      NUM_BLOCK: [4, 4, 4]\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(bad))
    assert "MODEL.EXTRA.STAGE3.NUM_BLOCK" in str(err.value)
    assert "NUM_BLOCKS" in str(err.value)  # the valid spelling is offered
    with pytest.raises(ConfigError, match="FINAL_CONV_KERNL"):
        load_config(None, ["MODEL.EXTRA.FINAL_CONV_KERNL", "3"])


def test_get_cfg_returns_independent_copies():
    a, b = get_cfg(), get_cfg()
    a.MODEL.NUM_JOINTS = 5
    assert b.MODEL.NUM_JOINTS == 17


def test_update_config_official_cli_semantics(tmp_path):
    import argparse
    parser = add_official_args(argparse.ArgumentParser())
    args = parser.parse_args(["--cfg", OFFICIAL[0], "--dataDir", "/d", "--modelDir", "/m", "--logDir", "/l",
                              "TEST.MODEL_FILE", "w.pth", "TRAIN.LR", "0.01"])
    cfg = update_config(get_cfg(), args)
    assert cfg.OUTPUT_DIR == "/m" and cfg.LOG_DIR == "/l" and cfg.DATA_DIR == "/d"
    assert cfg.DATASET.ROOT == os.path.join("/d", "data/coco/")
    assert cfg.MODEL.PRETRAINED == os.path.join("/d", "models/pytorch/imagenet/hrnet_w32-36af842e.pth")
    assert cfg.TEST.MODEL_FILE == "/d/w.pth"
    assert cfg.TRAIN.LR == 0.01
    assert cfg.is_frozen()


def test_odd_override_list_is_rejected():
    with pytest.raises(ConfigError, match="KEY VALUE"):
        load_config(None, ["TRAIN.LR"])


def test_every_default_key_has_a_comment():
    src = open(os.path.join(os.path.dirname(__file__), "..", "..", "lib", "hrnet_pose", "config", "defaults.py")).read()
    lines = [l for l in src.splitlines() if l.strip().startswith(("_C.", "node.")) and "=" in l and "CN()" not in l]
    uncommented = [l for l in lines if "#" not in l]
    assert not uncommented, uncommented
