"""Config adapter for the model: `build_model(cfg)` reads MODEL.* and returns a `PoseHighResolutionNet`."""

import logging
import os

from torch import nn

from ..keypoints import get_keypoint_set
from .pose_hrnet import AttentionSpec, PoseHighResolutionNet
from .weights import load_pretrained

logger = logging.getLogger(__name__)


def _stage_spec(node) -> dict:
    """The keyword arguments of one HRNet stage from its MODEL.EXTRA.STAGE<i> node."""
    return {
        "num_modules": int(node.NUM_MODULES),
        "num_branches": int(node.NUM_BRANCHES),
        "block": str(node.BLOCK),
        "num_blocks": [int(v) for v in node.NUM_BLOCKS],
        "num_channels": [int(v) for v in node.NUM_CHANNELS],
        "fuse_method": str(node.FUSE_METHOD),
    }


def attention_spec_from_cfg(cfg) -> AttentionSpec:
    node = cfg.MODEL.EXTRA.ATTENTION
    return AttentionSpec(
        name=node.NAME,
        stages=[int(s) for s in node.STAGES],
        branches=[int(b) for b in node.BRANCHES],
        kwargs={k.lower() if k.isupper() else k: v for k, v in dict(node.KWARGS).items()},
    )


def build_model(cfg, is_train: bool = False) -> nn.Module:
    """HRNet from MODEL.EXTRA. With `is_train` and MODEL.INIT_WEIGHTS, apply the official initialisation and load
    MODEL.PRETRAINED filtered by MODEL.EXTRA.PRETRAINED_LAYERS (an error if the file is named but missing)."""
    if cfg.MODEL.NAME != "pose_hrnet":
        raise ValueError(f"MODEL.NAME '{cfg.MODEL.NAME}' is not supported; valid: ['pose_hrnet']")
    kps = get_keypoint_set(cfg.DATASET.KEYPOINT_SET)
    if cfg.MODEL.NUM_JOINTS != kps.num_keypoints:
        raise ValueError(
            f"MODEL.NUM_JOINTS={cfg.MODEL.NUM_JOINTS} but the keypoint set '{kps.name}' "
            f"(DATASET.KEYPOINT_SET={cfg.DATASET.KEYPOINT_SET!r}) has {kps.num_keypoints} keypoints"
        )
    extra = cfg.MODEL.EXTRA
    stages = [_stage_spec(extra[f"STAGE{i}"]) for i in (2, 3, 4)]
    model = PoseHighResolutionNet(stages, cfg.MODEL.NUM_JOINTS, int(extra.FINAL_CONV_KERNEL),
                                  attention_spec_from_cfg(cfg))
    if is_train and cfg.MODEL.INIT_WEIGHTS:
        model.init_weights()
        pretrained = cfg.MODEL.PRETRAINED
        if pretrained and os.path.isfile(pretrained):
            load_pretrained(model, pretrained, list(extra.PRETRAINED_LAYERS))
        elif pretrained and not os.path.isdir(pretrained):
            raise FileNotFoundError(
                f"MODEL.PRETRAINED={pretrained} does not exist: download the ImageNet HRNet weights there "
                "(official layout models/pytorch/imagenet/hrnet_w32-36af842e.pth) or set MODEL.PRETRAINED ''"
            )
    return model
