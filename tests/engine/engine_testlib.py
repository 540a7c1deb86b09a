"""Helpers shared by the engine and CLI tests: the tiny training config on a synthetic dataset."""

import os
from typing import Sequence

from hrnet_pose.config import load_config

from testpaths import TINY_YAML


def tiny_train_cfg(root: str, out_dir: str, opts: Sequence[str] = ()):
    """The official tiny HRNet (64x96 input) on the synthetic data, CPU, deterministic, no progress bars."""
    base = [
        "DATASET.DATASET", "synthetic", "DATASET.ROOT", root, "DATASET.TRAIN_SET", "train",
        "DATASET.TEST_SET", "val", "SYNTHETIC.IMAGE_SIZE", "[128, 128]",
        "OUTPUT_DIR", os.path.join(out_dir, "output"), "LOG_DIR", os.path.join(out_dir, "log"),
        "MODEL.INIT_WEIGHTS", "True", "MODEL.PRETRAINED", "", "TRAIN.BATCH_SIZE_PER_GPU", "8",
        "TRAIN.END_EPOCH", "3", "TRAIN.LR", "0.001", "TRAIN.LR_STEP", "[2]", "TEST.BATCH_SIZE_PER_GPU", "8",
        "ENGINE.DEVICE", "cpu", "ENGINE.DETERMINISTIC", "True", "ENGINE.PROGRESS_BAR", "False",
        "ENGINE.TENSORBOARD", "False", "WORKERS", "0", "PRINT_FREQ", "100",
    ]
    return load_config(TINY_YAML, base + list(opts))
