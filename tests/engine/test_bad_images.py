"""An unreadable training image is skipped with a warning and counted; with DATASET.SKIP_BAD_IMAGES False it stops."""

import pytest

from hrnet_pose.engine.trainer import Trainer

from engine_testlib import tiny_train_cfg


def test_training_skips_and_counts_unreadable_images(root_with_bad_image, tmp_path, caplog):
    root, name = root_with_bad_image
    cfg = tiny_train_cfg(root, str(tmp_path), ["TRAIN.END_EPOCH", "1"])
    with caplog.at_level("WARNING"):
        result = Trainer(cfg, "tiny.yaml").fit()
    skipped = result["history"][0]["skipped_images"]
    assert skipped >= 1  # every person of that image is one skipped sample
    assert name in caplog.text and "unreadable training images skipped" in caplog.text


def test_training_stops_on_unreadable_image_when_asked(root_with_bad_image, tmp_path):
    root, name = root_with_bad_image
    cfg = tiny_train_cfg(root, str(tmp_path), ["TRAIN.END_EPOCH", "1", "DATASET.SKIP_BAD_IMAGES", "False"])
    with pytest.raises(Exception, match=name):
        Trainer(cfg, "tiny.yaml").fit()
