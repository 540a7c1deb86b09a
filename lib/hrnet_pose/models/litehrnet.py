"""Lite-HRNet for top-down pose estimation (Yu et al., CVPR 2021, "Lite-HRNet: A Lightweight High-Resolution
Network"), as MMPose builds and trains it (`LiteHRNet` backbone + `HeatmapHead` with one 1x1 conv).

Input [N, 3, H, W] with H and W multiples of 4 * 2^(B-1) for B branches in the last stage (32 for the released
4-branch models) -> heatmaps [N, K, H/4, W/4].

A stem (`litehrnet_blocks.Stem`, /4) feeds `num_stages` stages of parallel branches at 1/4, 1/8, 1/16, 1/32 resolution,
like HRNet's stages 2-4, with cheap blocks: LITE (conditional channel weighting) or NAIVE (ShuffleNet v2 units).
After each module the branches are fused (sum of nearest-upsampled 1x1 convs and of strided depthwise-separable
convs). With `with_head`, MMPose's `IterativeHead` refines the branches top-down; the heatmaps are a conv on the 1/4
branch (`final_layer`).

State-dict keys are MMPose's with the `backbone.` prefix dropped (``stem.*``, ``transition0.*``, ``stage0.*``,
``head_layer.*``) and the head's ``final_layer.*``, so MMPose 0.x (``keypoint_head.``) and 1.x (``head.``) files load
strictly through `models.foreign_layouts`.

The released weights were trained with a quirk of MMPose's fusion that is reproduced here (it is in the original
Lite-HRNet code too, noted there as "`y = 0` will lead to decreased accuracy"): the sum for output branch 0 starts
from branch 0 and adds it once more, and it is accumulated in place into branch 0's tensor, so every lower output
branch i > 0 downsamples the (pre-ReLU) fused branch 0, not the block output, and adds that term twice:
    y_0 = 2 x_0 + sum_{j>0} up_0j(x_j)
    y_i = 2 down_i0(y_0) + sum_{j>0, j!=i} f_ij(x_j) + x_i      (i > 0)
followed by a ReLU. In training mode `down_i0` runs twice, as in MMPose, so its BatchNorm statistics update twice.
"""

from typing import List, Optional, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from .blocks import init_conv_bn_
from .litehrnet_blocks import ConditionalChannelWeighting, IterativeHead, ShuffleUnit, Stem

MODULE_TYPES = ("LITE", "NAIVE")


def _dw_separable(in_channels: int, out_channels: int, stride: int, relu: bool) -> nn.Sequential:
    """MMPose's transition / fusion downsampler: 3x3 depthwise conv, BN, 1x1 conv, BN (, ReLU); keys .0 .. .3."""
    layers = [nn.Conv2d(in_channels, in_channels, 3, stride, 1, groups=in_channels, bias=False),
              nn.BatchNorm2d(in_channels), nn.Conv2d(in_channels, out_channels, 1, 1, 0, bias=False),
              nn.BatchNorm2d(out_channels)]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class LiteHRModule(nn.Module):
    """Blocks on every branch, then MMPose's fusion (module docstring): list of B [N, C_b, H/2^b, W/2^b] tensors ->
    the same shapes."""

    def __init__(self, num_branches: int, num_blocks: int, in_channels: Sequence[int], reduce_ratio: int,
                 module_type: str, with_fuse: bool = True):
        super().__init__()
        self.in_channels = [int(c) for c in in_channels]
        self.num_branches = int(num_branches)
        self.module_type = module_type.upper()
        if self.module_type not in MODULE_TYPES:
            raise ConfigError(f"Lite-HRNet module type {module_type!r} (MODEL.EXTRA.LITE_HRNET.STAGES.MODULE_TYPE); "
                             f"valid: {list(MODULE_TYPES)}")
        self.with_fuse = bool(with_fuse)
        if self.module_type == "LITE":
            self.layers = nn.Sequential(
                *[ConditionalChannelWeighting(self.in_channels, reduce_ratio) for _ in range(num_blocks)])
        else:
            self.layers = nn.ModuleList(
                [nn.Sequential(*[ShuffleUnit(c) for _ in range(num_blocks)]) for c in self.in_channels])
        if self.with_fuse:
            self.fuse_layers = self._make_fuse_layers()
            self.relu = nn.ReLU()

    def _make_fuse_layers(self) -> nn.ModuleList:
        c = self.in_channels
        rows = []
        for i in range(self.num_branches):
            row: List[Optional[nn.Module]] = []
            for j in range(self.num_branches):
                if j > i:
                    row.append(nn.Sequential(nn.Conv2d(c[j], c[i], 1, 1, 0, bias=False), nn.BatchNorm2d(c[i]),
                                             nn.Upsample(scale_factor=2 ** (j - i), mode="nearest")))
                elif j == i:
                    row.append(None)
                else:
                    row.append(nn.Sequential(*[
                        _dw_separable(c[j], c[i] if k == i - j - 1 else c[j], 2, relu=k != i - j - 1)
                        for k in range(i - j)]))
            rows.append(nn.ModuleList(row))
        return nn.ModuleList(rows)

    def forward(self, x: List[torch.Tensor]) -> List[torch.Tensor]:
        if self.module_type == "LITE":
            out = self.layers(x)
        else:
            out = [branch(s) for branch, s in zip(self.layers, x)]
        if not self.with_fuse:
            return out
        # MMPose's summation order, term by term, so that float results are identical (see module docstring)
        y0 = out[0] + out[0]
        for j in range(1, self.num_branches):
            y0 = y0 + self.fuse_layers[0][j](out[j])
        fused = [self.relu(y0)]
        for i in range(1, self.num_branches):
            down = self.fuse_layers[i][0]
            if self.training:
                y = down(y0) + down(y0)  # two BN statistics updates, as MMPose's training did
            else:
                term = down(y0)
                y = term + term
            for j in range(1, self.num_branches):
                y = y + (out[j] if j == i else self.fuse_layers[i][j](out[j]))
            fused.append(self.relu(y))
        return fused


class LiteHRNet(nn.Module):
    """Lite-HRNet pose network (module docstring); plain keyword arguments (see `build_model` for the config
    adapter). Per-stage sequences (`num_modules`, `num_branches`, `num_blocks`, `module_type`, `with_fuse`,
    `reduce_ratios`, `num_channels`) have one entry per stage; the defaults are Lite-HRNet-18."""

    def __init__(self, num_joints: int, stem_channels: int = 32, stem_out_channels: int = 32,
                 stem_expand_ratio: float = 1.0, num_modules: Sequence[int] = (2, 4, 2),
                 num_branches: Sequence[int] = (2, 3, 4), num_blocks: Sequence[int] = (2, 2, 2),
                 module_type: Sequence[str] = ("LITE", "LITE", "LITE"), with_fuse: Sequence[bool] = (True, True, True),
                 reduce_ratios: Sequence[int] = (8, 8, 8),
                 num_channels: Sequence[Sequence[int]] = ((40, 80), (40, 80, 160), (40, 80, 160, 320)),
                 with_head: bool = True, final_conv_kernel: int = 1, in_channels: int = 3):
        super().__init__()
        _check_spec(stem_channels, stem_out_channels, num_modules, num_branches, num_blocks, module_type, with_fuse,
                    reduce_ratios, num_channels, final_conv_kernel)
        self.num_stages = len(num_branches)
        self.num_joints = int(num_joints)
        self.stem = Stem(in_channels, int(stem_channels), int(stem_out_channels), float(stem_expand_ratio))
        pre = [int(stem_out_channels)]
        for s in range(self.num_stages):
            channels = [int(c) for c in num_channels[s]]
            setattr(self, f"transition{s}", self._make_transition(pre, channels))
            setattr(self, f"stage{s}", nn.Sequential(*[
                LiteHRModule(num_branches[s], num_blocks[s], channels, reduce_ratios[s], module_type[s],
                             with_fuse[s]) for _ in range(num_modules[s])]))
            pre = channels
        self.with_head = bool(with_head)
        if self.with_head:
            self.head_layer = IterativeHead(pre)
        self.final_layer = nn.Conv2d(pre[0], self.num_joints, final_conv_kernel, 1, final_conv_kernel // 2)
        self.input_divisor = 4 * 2 ** (max(int(b) for b in num_branches) - 1)

    @staticmethod
    def _make_transition(pre: List[int], cur: List[int]) -> nn.ModuleList:
        layers: List[Optional[nn.Module]] = []
        for i, c in enumerate(cur):
            if i < len(pre):
                layers.append(None if c == pre[i] else _dw_separable(pre[i], c, 1, relu=True))
            else:
                layers.append(nn.Sequential(*[
                    _dw_separable(pre[-1], c if j == i - len(pre) else pre[-1], 2, relu=True)
                    for j in range(i + 1 - len(pre))]))
        return nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.input_divisor
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] % d or x.shape[3] % d:
            raise ValueError(f"expected images [N, 3, H, W] with H and W multiples of {d} (Lite-HRNet pools every "
                             f"branch to the 1/{d} one), got {tuple(x.shape)}")
        y = [self.stem(x)]
        for s in range(self.num_stages):
            inputs = []
            for j, layer in enumerate(getattr(self, f"transition{s}")):
                source = y[j] if j < len(y) else y[-1]  # a new branch comes from the lowest-resolution one
                inputs.append(source if layer is None else layer(source))
            y = getattr(self, f"stage{s}")(inputs)
        if self.with_head:
            y = self.head_layer(y)
        return self.final_layer(y[0])

    def init_weights(self) -> None:
        """MMPose's initialisation: convs N(0, 0.001) with zero bias, BN weight 1 and bias 0."""
        for m in self.modules():
            init_conv_bn_(m)


def _check_spec(stem_channels, stem_out_channels, num_modules, num_branches, num_blocks, module_type, with_fuse,
                reduce_ratios, num_channels, final_conv_kernel) -> None:
    """ConfigErrors naming the MODEL.EXTRA.LITE_HRNET key at fault and what is valid."""
    key = "MODEL.EXTRA.LITE_HRNET"
    n = len(num_branches)
    if n < 1:
        raise ConfigError(f"{key}.STAGES.NUM_BRANCHES is empty; give one entry per stage")
    per_stage = {"NUM_MODULES": num_modules, "NUM_BLOCKS": num_blocks, "MODULE_TYPE": module_type,
                 "WITH_FUSE": with_fuse, "REDUCE_RATIOS": reduce_ratios, "NUM_CHANNELS": num_channels}
    for name, values in per_stage.items():
        if len(values) != n:
            raise ConfigError(f"{key}.STAGES.{name} has {len(values)} entries but NUM_BRANCHES has {n} (one per stage)")
    if stem_channels < 2 or stem_channels % 2:
        raise ConfigError(f"{key}.STEM.STEM_CHANNELS is {stem_channels}; it must be even (the stem splits it in two)")
    stem_first = stem_out_channels - (stem_channels // 2 if stem_channels == stem_out_channels else stem_channels)
    if stem_first < 1:
        raise ConfigError(f"{key}.STEM.OUT_CHANNELS is {stem_out_channels}; with STEM_CHANNELS {stem_channels} it "
                         f"must be {stem_channels} or more than {stem_channels}")
    previous = 1
    for s in range(n):
        b = int(num_branches[s])
        channels = list(num_channels[s])
        where = f"{key}.STAGES (stage {s})"
        if b < 2 or b < previous:
            raise ConfigError(f"{where}: NUM_BRANCHES {b}; each stage needs at least 2 branches and no fewer than "
                             f"the stage before ({previous})")
        previous = b
        if len(channels) != b:
            raise ConfigError(f"{where}: NUM_CHANNELS {channels} has {len(channels)} entries for NUM_BRANCHES {b}")
        if str(module_type[s]).upper() not in MODULE_TYPES:
            raise ConfigError(f"{where}: MODULE_TYPE {module_type[s]!r}; valid: {list(MODULE_TYPES)}")
        if int(num_modules[s]) < 1 or int(num_blocks[s]) < 1:
            raise ConfigError(f"{where}: NUM_MODULES {num_modules[s]} and NUM_BLOCKS {num_blocks[s]} must be >= 1")
        if any(int(c) < 2 or int(c) % 2 for c in channels):
            raise ConfigError(f"{where}: NUM_CHANNELS {channels} must all be even (blocks split channels in two)")
        if str(module_type[s]).upper() == "LITE":
            half = [int(c) // 2 for c in channels]
            if int(sum(half) / int(reduce_ratios[s])) < 1 or min(half) < 4:
                raise ConfigError(f"{where}: NUM_CHANNELS {channels} with REDUCE_RATIOS {reduce_ratios[s]} leave a "
                                 "weighting layer without channels: each width must be >= 8 and half their sum "
                                 ">= the reduce ratio")
    if final_conv_kernel < 1 or final_conv_kernel % 2 == 0:
        raise ConfigError(f"MODEL.EXTRA.FINAL_CONV_KERNEL must be a positive odd number to keep the heatmap size, "
                         f"got {final_conv_kernel}")
