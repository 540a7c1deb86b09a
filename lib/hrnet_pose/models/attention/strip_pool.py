"""Strip pooling gate.

Hou, Zhang, Cheng, Feng, "Strip Pooling: Rethinking Spatial Pooling for Scene Parsing", CVPR 2020,
https://arxiv.org/abs/2003.13328 (the strip pooling module, SPM)

Long, narrow pooling windows capture context along one axis at a time, which suits elongated structures such as
limbs:
- H-strip: average over W -> [N, C, H, 1] -> 3x1 conv C->M + BN -> [N, M, H, 1];
- W-strip: average over H -> [N, C, 1, W] -> 1x3 conv C->M + BN -> [N, M, 1, W];
both are expanded to H x W by broadcasting and summed, then ReLU (so the strip convs and the fuse conv do not
collapse into one linear map), 1x1 conv M->C, sigmoid, multiplied onto the input.
``M = C`` by default (``reduction=1``) as in the paper.

Shapes: x [N, C, H, W] -> [N, C, H, W]. Placement: 'gate'.
"""

import torch
from torch import nn

from .helpers import reduced_channels
from .registry import register_attention


@register_attention("strip", placement="gate")
class StripPooling(nn.Module):
    """Strip pooling gate.

    Args:
        channels: input (= output) channels C.
        reduction: C / M ratio for the strip convs (1 keeps M = C; >1 makes the gate cheaper on wide branches).
        min_channels: floor on M when ``reduction > 1``.
    """

    def __init__(self, channels: int, reduction: float = 1, min_channels: int = 8) -> None:
        super().__init__()
        mid = reduced_channels(channels, reduction, min_channels)
        self.conv_h = nn.Conv2d(channels, mid, (3, 1), padding=(1, 0), bias=False)
        self.bn_h = nn.BatchNorm2d(mid)
        self.conv_w = nn.Conv2d(channels, mid, (1, 3), padding=(0, 1), bias=False)
        self.bn_w = nn.BatchNorm2d(mid)
        self.fuse = nn.Conv2d(mid, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        yh = self.bn_h(self.conv_h(x.mean(3, keepdim=True)))  # [N, M, H, 1]
        yw = self.bn_w(self.conv_w(x.mean(2, keepdim=True)))  # [N, M, 1, W]
        return x * torch.sigmoid(self.fuse(torch.relu(yh + yw)))  # yh + yw broadcasts to [N, M, H, W]
