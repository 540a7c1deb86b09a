"""Config adapter for the model: `build_model(cfg)` reads MODEL.* and returns a `PoseHighResolutionNet`
(MODEL.NAME pose_hrnet) or a `LiteHRNet` (MODEL.NAME lite_hrnet)."""

import logging
import os

from torch import nn

from ..errors import ConfigError
from ..keypoints import get_keypoint_set
from .litehrnet import LiteHRNet
from .pose_hrnet import AttentionSpec, PoseHighResolutionNet
from .weights import load_pretrained

logger = logging.getLogger(__name__)

MODEL_NAMES = ("pose_hrnet", "lite_hrnet")


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


def build_lite_hrnet(cfg) -> LiteHRNet:
    """Lite-HRNet from MODEL.EXTRA.LITE_HRNET, MODEL.EXTRA.FINAL_CONV_KERNEL and MODEL.NUM_JOINTS; a ValueError
    naming MODEL.IMAGE_SIZE when the input is not a multiple of what the branches need (32 for 4 branches)."""
    node = cfg.MODEL.EXTRA.LITE_HRNET
    stages = node.STAGES
    model = LiteHRNet(
        num_joints=int(cfg.MODEL.NUM_JOINTS), stem_channels=int(node.STEM.STEM_CHANNELS),
        stem_out_channels=int(node.STEM.OUT_CHANNELS), stem_expand_ratio=float(node.STEM.EXPAND_RATIO),
        num_modules=[int(v) for v in stages.NUM_MODULES], num_branches=[int(v) for v in stages.NUM_BRANCHES],
        num_blocks=[int(v) for v in stages.NUM_BLOCKS], module_type=[str(v) for v in stages.MODULE_TYPE],
        with_fuse=[bool(v) for v in stages.WITH_FUSE], reduce_ratios=[int(v) for v in stages.REDUCE_RATIOS],
        num_channels=[[int(c) for c in row] for row in stages.NUM_CHANNELS], with_head=bool(node.WITH_HEAD),
        final_conv_kernel=int(cfg.MODEL.EXTRA.FINAL_CONV_KERNEL))
    d = model.input_divisor
    w, h = (int(v) for v in cfg.MODEL.IMAGE_SIZE)
    if w % d or h % d:
        raise ConfigError(
            f"MODEL.IMAGE_SIZE {[w, h]} does not fit Lite-HRNet: width and height must be multiples of {d} (its "
            f"lowest branch is 1/{d} of the input), e.g. {[max(w // d, 1) * d, max(h // d, 1) * d]}")
    if cfg.MODEL.EXTRA.ATTENTION.NAME:
        raise ConfigError(f"MODEL.EXTRA.ATTENTION.NAME is {cfg.MODEL.EXTRA.ATTENTION.NAME!r}, but attention blocks are "
                         "built into HRNet only (MODEL.NAME pose_hrnet); set it to '' for lite_hrnet")
    return model


def build_model(cfg, is_train: bool = False) -> nn.Module:
    """HRNet from MODEL.EXTRA (or Lite-HRNet from MODEL.EXTRA.LITE_HRNET). With `is_train` and MODEL.INIT_WEIGHTS,
    apply the official initialisation (MMPose's for Lite-HRNet: the same N(0, 0.001) convs) and load
    MODEL.PRETRAINED filtered by MODEL.EXTRA.PRETRAINED_LAYERS (an error if the file is named but missing)."""
    if cfg.MODEL.NAME not in MODEL_NAMES:
        raise ConfigError(f"MODEL.NAME '{cfg.MODEL.NAME}' is not supported; valid: {list(MODEL_NAMES)}")
    kps = get_keypoint_set(cfg.DATASET.KEYPOINT_SET)
    if cfg.MODEL.NUM_JOINTS != kps.num_keypoints:
        raise ConfigError(
            f"MODEL.NUM_JOINTS={cfg.MODEL.NUM_JOINTS} but the keypoint set '{kps.name}' "
            f"(DATASET.KEYPOINT_SET={cfg.DATASET.KEYPOINT_SET!r}) has {kps.num_keypoints} keypoints"
        )
    extra = cfg.MODEL.EXTRA
    if cfg.MODEL.NAME == "lite_hrnet":
        model = build_lite_hrnet(cfg)
    else:
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
