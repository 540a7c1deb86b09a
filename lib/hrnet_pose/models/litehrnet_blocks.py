"""Building blocks of Lite-HRNet (Yu et al., CVPR 2021, "Lite-HRNet: A Lightweight High-Resolution Network").

Module and parameter names are those of MMPose's `LiteHRNet` backbone (mmpose/models/backbones/litehrnet.py, the
same in 0.x and 1.x), so that its released checkpoints load strictly: an mmcv `ConvModule` becomes an nn.Sequential
with children ``conv``, ``bn`` (if normalised) and ``activate`` (if activated), whose state-dict keys are the same
(``conv.weight``, ``bn.running_mean``...). Being a Sequential of an adjacent conv and BN, it is also folded by
`models.fuse.fold_batchnorm`.

Shapes (N batch, C channels, H x W one branch's resolution):
- `channel_shuffle`: [N, C, H, W] -> [N, C, H, W] with the channels of `groups` groups interleaved (ShuffleNet).
- `Stem`: [N, 3, H, W] -> [N, out_channels, H/4, W/4] (a 3x3/2 conv, then a ShuffleNet-v2 style 2-branch unit with
  stride 2).
- `ConditionalChannelWeighting` (the LITE block): list of B branches [N, C_b, H_b, W_b] -> the same shapes. Half of
  each branch's channels pass unchanged; the other half is gated by cross-resolution weights (all branches pooled to
  the smallest resolution, 1x1 convs, sigmoid, upsampled back), a 3x3 depthwise conv and spatial weights (SE, Hu et
  al. 2018, per branch); then the halves are concatenated and shuffled.
- `ShuffleUnit` (the NAIVE block, stride 1): [N, C, H, W] -> [N, C, H, W] (ShuffleNet v2, Ma et al. 2018).
- `IterativeHead`: list of B branches -> the same shapes; from the lowest resolution up, each branch adds the
  bilinearly upsampled output of the one below and passes through a depthwise-separable conv.

The pooling to the smallest branch is an average pool with a fixed kernel (2^(B-1-b) for branch b), not MMPose's
`adaptive_avg_pool2d(x, size_of_last_branch)`: with the input a multiple of 4 * 2^(B-1) (checked when the network
is built) both give the same numbers, and a fixed kernel exports to ONNX with a dynamic batch.
"""

from collections import OrderedDict
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

_ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid}


def conv_module(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1,
                norm: bool = True, act: Optional[str] = "relu") -> nn.Sequential:
    """mmcv `ConvModule` (conv -> BN -> activation; the conv has a bias only without BN) under its key names."""
    layers: "OrderedDict[str, nn.Module]" = OrderedDict()
    layers["conv"] = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups,
                               bias=not norm)
    if norm:
        layers["bn"] = nn.BatchNorm2d(out_channels)
    if act is not None:
        layers["activate"] = _ACTIVATIONS[act]()
    return nn.Sequential(layers)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, H, W], channel g * (C / groups) + i moved to i * groups + g."""
    _, channels, height, width = x.shape
    x = x.reshape(-1, groups, channels // groups, height, width).transpose(1, 2)
    return x.reshape(-1, channels, height, width)


class SpatialWeighting(nn.Module):
    """SE gate of one branch: global average -> 1x1 conv (C -> C/ratio, bias, ReLU) -> 1x1 conv (-> C, bias,
    sigmoid) -> x * gate. [N, C, H, W] -> [N, C, H, W]."""

    def __init__(self, channels: int, ratio: int = 4):
        super().__init__()
        hidden = int(channels / ratio)
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.conv1 = conv_module(channels, hidden, 1, norm=False, act="relu")
        self.conv2 = conv_module(hidden, channels, 1, norm=False, act="sigmoid")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv2(self.conv1(self.global_avgpool(x)))


class CrossResolutionWeighting(nn.Module):
    """Gates computed from all branches at the lowest resolution: list of [N, C_b, H_b, W_b] -> the same shapes.

    Branch b (of B) is average-pooled by 2^(B-1-b) to the last branch's size, all are concatenated, passed through
    1x1 conv + BN + ReLU (sum C / ratio channels) and 1x1 conv + BN + sigmoid, split back per branch, upsampled by
    nearest neighbour to each branch's size and multiplied onto it.
    """

    def __init__(self, channels: Sequence[int], ratio: int):
        super().__init__()
        self.channels = [int(c) for c in channels]
        total = sum(self.channels)
        self.pool_factors = [2 ** (len(self.channels) - 1 - b) for b in range(len(self.channels))]
        self.conv1 = conv_module(total, int(total / ratio), 1, act="relu")
        self.conv2 = conv_module(int(total / ratio), total, 1, act="sigmoid")

    def forward(self, x: List[torch.Tensor]) -> List[torch.Tensor]:
        pooled = [s if f == 1 else F.avg_pool2d(s, f, f) for s, f in zip(x, self.pool_factors)]
        gates = torch.split(self.conv2(self.conv1(torch.cat(pooled, dim=1))), self.channels, dim=1)
        # nearest upsampling by the pool factor: each gate covers the block of pixels it was pooled from
        return [s * (g if f == 1 else F.interpolate(g, scale_factor=float(f), mode="nearest"))
                for s, g, f in zip(x, gates, self.pool_factors)]


class ConditionalChannelWeighting(nn.Module):
    """The LITE block (see module docstring): list of [N, C_b, H_b, W_b] -> the same shapes. C_b must be even."""

    def __init__(self, in_channels: Sequence[int], reduce_ratio: int):
        super().__init__()
        branch_channels = [int(c) // 2 for c in in_channels]
        self.cross_resolution_weighting = CrossResolutionWeighting(branch_channels, ratio=reduce_ratio)
        self.depthwise_convs = nn.ModuleList(
            [conv_module(c, c, 3, groups=c, act=None) for c in branch_channels])
        self.spatial_weighting = nn.ModuleList([SpatialWeighting(c, ratio=4) for c in branch_channels])

    def forward(self, x: List[torch.Tensor]) -> List[torch.Tensor]:
        halves = [s.chunk(2, dim=1) for s in x]
        weighted = self.cross_resolution_weighting([h[1] for h in halves])
        weighted = [sw(dw(s)) for s, dw, sw in zip(weighted, self.depthwise_convs, self.spatial_weighting)]
        return [channel_shuffle(torch.cat([h[0], w], dim=1), 2) for h, w in zip(halves, weighted)]


class ShuffleUnit(nn.Module):
    """The NAIVE block, ShuffleNet v2's stride-1 unit: half the channels pass, the other half goes through 1x1 conv
    + BN + ReLU, 3x3 depthwise + BN, 1x1 + BN + ReLU; concatenate, shuffle. [N, C, H, W] -> [N, C, H, W], C even."""

    def __init__(self, channels: int):
        super().__init__()
        half = channels // 2
        self.branch2 = nn.Sequential(
            conv_module(half, half, 1), conv_module(half, half, 3, groups=half, act=None), conv_module(half, half, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x.chunk(2, dim=1)
        return channel_shuffle(torch.cat((x1, self.branch2(x2)), dim=1), 2)


class Stem(nn.Module):
    """[N, in_channels, H, W] -> [N, out_channels, H/4, W/4] (module docstring). As in MMPose, the second branch
    expands to round(stem_channels * expand_ratio) channels and the first keeps out_channels minus the second's."""

    def __init__(self, in_channels: int, stem_channels: int, out_channels: int, expand_ratio: float):
        super().__init__()
        self.out_channels = out_channels
        mid = int(round(stem_channels * expand_ratio))
        half = stem_channels // 2
        same = stem_channels == out_channels
        inc = out_channels - half if same else out_channels - stem_channels
        self.conv1 = conv_module(in_channels, stem_channels, 3, stride=2)
        self.branch1 = nn.Sequential(conv_module(half, half, 3, stride=2, groups=half, act=None),
                                     conv_module(half, inc, 1))
        self.expand_conv = conv_module(half, mid, 1)
        self.depthwise_conv = conv_module(mid, mid, 3, stride=2, groups=mid, act=None)
        self.linear_conv = conv_module(mid, half if same else stem_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.conv1(x).chunk(2, dim=1)
        x2 = self.linear_conv(self.depthwise_conv(self.expand_conv(x2)))
        return channel_shuffle(torch.cat((self.branch1(x1), x2), dim=1), 2)


class DepthwiseSeparableConv(nn.Module):
    """mmcv `DepthwiseSeparableConvModule` as IterativeHead builds it: 3x3 depthwise + BN (no activation), then
    1x1 + BN + ReLU. [N, C_in, H, W] -> [N, C_out, H, W]."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.depthwise_conv = conv_module(in_channels, in_channels, 3, groups=in_channels, act=None)
        self.pointwise_conv = conv_module(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


class IterativeHead(nn.Module):
    """Top-down refinement of the branch outputs (module docstring); `in_channels` high to low resolution. Branch b
    (counted from the lowest resolution) maps to the next higher branch's width, the highest keeps its own."""

    def __init__(self, in_channels: Sequence[int]):
        super().__init__()
        rev = [int(c) for c in in_channels][::-1]
        self.projects = nn.ModuleList(
            [DepthwiseSeparableConv(c, rev[i + 1] if i + 1 < len(rev) else c) for i, c in enumerate(rev)])

    def forward(self, x: List[torch.Tensor]) -> List[torch.Tensor]:
        out: List[torch.Tensor] = []
        last: Optional[torch.Tensor] = None
        for s, project in zip(x[::-1], self.projects):
            if last is not None:
                s = s + F.interpolate(last, size=s.shape[-2:], mode="bilinear", align_corners=True)
            last = project(s)
            out.append(last)
        return out[::-1]
