"""HRNet and Lite-HRNet pose models: `build_model(cfg)`, the strict checkpoint loader and the attention block
library."""

from .build import attention_spec_from_cfg, build_model
from .litehrnet import LiteHRNet
from .pose_hrnet import AttentionSpec, HighResolutionModule, PoseHighResolutionNet
from .weights import CheckpointMismatchError, LoadReport, load_pretrained, load_weights, read_state_dict

__all__ = [
    "AttentionSpec", "CheckpointMismatchError", "HighResolutionModule", "LiteHRNet", "LoadReport",
    "PoseHighResolutionNet", "attention_spec_from_cfg", "build_model", "load_pretrained", "load_weights",
    "read_state_dict",
]
