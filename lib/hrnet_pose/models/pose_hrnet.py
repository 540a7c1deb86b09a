"""HRNet for top-down pose estimation (Sun et al., "Deep High-Resolution Representation Learning for Human Pose
Estimation", CVPR 2019).

Input [N, 3, H, W] (H, W divisible by 4) -> heatmaps [N, K, H/4, W/4].

A stem (two 3x3/2 convs) and `layer1` (4 bottlenecks) feed stages 2-4; each stage has parallel branches at 1/4, 1/8,
1/16, 1/32 resolution and repeatedly fuses them (sum of upsampled / strided-conv'd branches). The heatmap head is a
conv on the 1/4 branch. With attention off, module names, state-dict keys and their order equal the official
`PoseHighResolutionNet`, so official checkpoints load strictly and give the same outputs.

Deliberate fixes (identical outputs wherever the official model runs):
- any input divisible by 4 runs: fusion upsamples to the exact size of the target branch instead of a fixed factor
  (the official model crashes when H or W is not divisible by 32);
- a stage that widens an existing branch takes that branch as the transition input (the official code feeds the
  lowest-resolution branch and crashes);
- `FINAL_CONV_KERNEL` may be any odd size with 'same' padding (the official padding shrinks the heatmap for k > 3).
"""

from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..config import check_fuse_method
from ..errors import ConfigError
from .attention import attention_placement
from .blocks import BN_MOMENTUM, Bottleneck, conv3x3, get_block, init_conv_bn_, make_attention


class AttentionSpec:
    """Which attention block goes where: name, kwargs, stages (1-4) and branches ([] = the block's default)."""

    def __init__(self, name: str = "", stages: Sequence[int] = (2, 3, 4), branches: Sequence[int] = (),
                 kwargs: Optional[dict] = None):
        self.name = name or ""
        self.kind = attention_placement(self.name) if self.name else ""
        bad = [s for s in stages if s not in (1, 2, 3, 4)]
        if bad:
            raise ConfigError(f"MODEL.EXTRA.ATTENTION.STAGES has {bad}; valid stage ids are 1 (layer1), 2, 3, 4")
        if 1 in stages and self.kind == "context":
            raise ConfigError("context attention blocks act on HRNet branches: use ATTENTION.STAGES within [2, 3, 4]")
        self.stages = tuple(stages)
        self.branches = tuple(branches)
        self.kwargs = dict(kwargs or {})

    def for_block(self, stage: int, branch: int) -> str:
        """Attention name for a residual block of (stage, branch), or ''."""
        if self.kind in ("", "context") or stage not in self.stages:
            return ""
        return self.name if not self.branches or branch in self.branches else ""

    def for_context(self, stage: int, branch: int) -> str:
        """Context block for a branch output: by default every branch but the 1/4 one (attention over 64x48
        positions costs ~1.2 GB per layer at batch 32)."""
        if self.kind != "context" or stage not in self.stages:
            return ""
        chosen = branch in self.branches if self.branches else branch > 0
        return self.name if chosen else ""


class UpsampleFuse(nn.Sequential):
    """1x1 conv + BN, then nearest upsampling to the target branch size (keys `.0`, `.1` as the official model)."""

    def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        x = super().forward(x)
        return F.interpolate(x, size=tuple(size), mode="nearest")


class HighResolutionModule(nn.Module):
    """Parallel branches then multi-resolution fusion: [N, C_b, H_b, W_b] x B -> the same (or only branch 0 when
    `multi_scale_output` is False, as in the last module of the official stage 4)."""

    def __init__(self, num_branches: int, block: type, num_blocks: Sequence[int], num_inchannels: List[int],
                 num_channels: Sequence[int], multi_scale_output: bool = True, stage: int = 0,
                 attention: Optional[AttentionSpec] = None):
        super().__init__()
        if not (len(num_blocks) == len(num_channels) == len(num_inchannels) == num_branches):
            raise ConfigError(
                f"stage {stage}: NUM_BRANCHES={num_branches} but NUM_BLOCKS has {len(num_blocks)} and NUM_CHANNELS "
                f"{len(num_channels)} entries; each needs one per branch"
            )
        attention = attention or AttentionSpec()
        self.num_inchannels = list(num_inchannels)
        self.num_branches = num_branches
        self.multi_scale_output = multi_scale_output
        self.branches = nn.ModuleList(
            [self._make_one_branch(i, block, num_blocks, num_channels, stage, attention) for i in range(num_branches)]
        )
        self.fuse_layers = self._make_fuse_layers()
        self.relu = nn.ReLU(True)
        if attention.kind == "context":
            blocks = [attention.for_context(stage, i) for i in range(num_branches)]
            if any(blocks):
                self.context_blocks = nn.ModuleList(
                    [make_attention(n, self.num_inchannels[i], attention.kwargs) if n else None
                     for i, n in enumerate(blocks)]
                )

    def _make_one_branch(self, i: int, block: type, num_blocks, num_channels, stage: int,
                         attention: AttentionSpec) -> nn.Sequential:
        out_channels = num_channels[i] * block.expansion
        downsample = None
        if self.num_inchannels[i] != out_channels:
            downsample = nn.Sequential(
                nn.Conv2d(self.num_inchannels[i], out_channels, kernel_size=1, stride=1, bias=False),
                nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM),
            )
        attn = attention.for_block(stage, i)
        layers = [block(self.num_inchannels[i], num_channels[i], 1, downsample, attn, attention.kwargs)]
        self.num_inchannels[i] = out_channels
        for _ in range(1, num_blocks[i]):
            layers.append(block(out_channels, num_channels[i], 1, None, attn, attention.kwargs))
        return nn.Sequential(*layers)

    def _make_fuse_layers(self) -> Optional[nn.ModuleList]:
        if self.num_branches == 1:
            return None
        c = self.num_inchannels
        fuse_layers = []
        for i in range(self.num_branches if self.multi_scale_output else 1):
            row = []
            for j in range(self.num_branches):
                if j > i:
                    row.append(UpsampleFuse(nn.Conv2d(c[j], c[i], 1, 1, 0, bias=False), nn.BatchNorm2d(c[i])))
                elif j == i:
                    row.append(None)
                else:
                    convs = []
                    for k in range(i - j):
                        last = k == i - j - 1
                        out = c[i] if last else c[j]
                        layers = [conv3x3(c[j], out, 2), nn.BatchNorm2d(out)]
                        if not last:
                            layers.append(nn.ReLU(True))
                        convs.append(nn.Sequential(*layers))
                    row.append(nn.Sequential(*convs))
            fuse_layers.append(nn.ModuleList(row))
        return nn.ModuleList(fuse_layers)

    def get_num_inchannels(self) -> List[int]:
        return self.num_inchannels

    def forward(self, x: List[torch.Tensor]) -> List[torch.Tensor]:
        x = [branch(xi) for branch, xi in zip(self.branches, x)]
        context = getattr(self, "context_blocks", None)
        if context is not None:
            x = [xi if blk is None else blk(xi) for blk, xi in zip(context, x)]
        if self.num_branches == 1:
            return x
        out = []
        for i, row in enumerate(self.fuse_layers):
            size = x[i].shape[-2:]
            y = None
            for j, layer in enumerate(row):
                if j == i:
                    term = x[j]
                elif j > i:
                    term = layer(x[j], size)
                else:
                    term = layer(x[j])
                y = term if y is None else y + term
            out.append(self.relu(y))
        return out


class PoseHighResolutionNet(nn.Module):
    """HRNet pose network; constructor takes plain values (see `build_model` for the config adapter).

    `stages`: STAGE2..STAGE4 as dicts of num_modules, num_branches, block, num_blocks, num_channels and optionally
    fuse_method (only 'SUM' is built).
    """

    def __init__(self, stages: Sequence[dict], num_joints: int, final_conv_kernel: int = 1,
                 attention: Optional[AttentionSpec] = None):
        super().__init__()
        if len(stages) != 3:
            raise ValueError(f"HRNet needs exactly 3 stage configs (STAGE2..STAGE4), got {len(stages)}")
        if final_conv_kernel < 1 or final_conv_kernel % 2 == 0:
            raise ConfigError(
                f"MODEL.EXTRA.FINAL_CONV_KERNEL must be a positive odd number to keep the heatmap size, "
                f"got {final_conv_kernel}"
            )
        attention = attention or AttentionSpec()
        self.attention = attention
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(64, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer1(attention.for_block(1, 0), attention.kwargs)

        pre_channels = [64 * Bottleneck.expansion]
        for index, spec in enumerate(stages):
            stage_id = index + 2
            block = get_block(spec["block"])
            channels = [c * block.expansion for c in spec["num_channels"]]
            if len(channels) != spec["num_branches"]:
                raise ValueError(
                    f"STAGE{stage_id}: NUM_BRANCHES={spec['num_branches']} but NUM_CHANNELS={list(spec['num_channels'])}"
                )
            if len(channels) < len(pre_channels):
                raise ValueError(f"STAGE{stage_id} has fewer branches than the stage before it")
            check_fuse_method(f"STAGE{stage_id}", spec.get("fuse_method", "SUM"))
            setattr(self, f"transition{index + 1}", self._make_transition_layer(pre_channels, channels))
            stage, pre_channels = self._make_stage(spec, channels, block, stage_id, attention,
                                                   multi_scale_output=stage_id != 4)
            setattr(self, f"stage{stage_id}", stage)
        self.final_layer = nn.Conv2d(pre_channels[0], num_joints, kernel_size=final_conv_kernel, stride=1,
                                     padding=final_conv_kernel // 2)
        self.num_joints = num_joints

    def _make_layer1(self, attn: str, attn_kwargs: dict) -> nn.Sequential:
        downsample = nn.Sequential(
            nn.Conv2d(64, 64 * Bottleneck.expansion, kernel_size=1, stride=1, bias=False),
            nn.BatchNorm2d(64 * Bottleneck.expansion, momentum=BN_MOMENTUM),
        )
        layers = [Bottleneck(64, 64, 1, downsample, attn, attn_kwargs)]
        layers += [Bottleneck(256, 64, 1, None, attn, attn_kwargs) for _ in range(3)]
        return nn.Sequential(*layers)

    @staticmethod
    def _make_transition_layer(pre: List[int], cur: List[int]) -> nn.ModuleList:
        layers = []
        for i, c in enumerate(cur):
            if i < len(pre):
                layers.append(
                    None if c == pre[i] else
                    nn.Sequential(conv3x3(pre[i], c), nn.BatchNorm2d(c), nn.ReLU(inplace=True))
                )
            else:
                convs = []
                for j in range(i + 1 - len(pre)):
                    out = c if j == i - len(pre) else pre[-1]
                    convs.append(nn.Sequential(conv3x3(pre[-1], out, 2), nn.BatchNorm2d(out), nn.ReLU(inplace=True)))
                layers.append(nn.Sequential(*convs))
        return nn.ModuleList(layers)

    @staticmethod
    def _make_stage(spec: dict, in_channels: List[int], block: type, stage_id: int, attention: AttentionSpec,
                    multi_scale_output: bool):
        modules = []
        for m in range(spec["num_modules"]):
            multi = multi_scale_output or m != spec["num_modules"] - 1
            module = HighResolutionModule(spec["num_branches"], block, spec["num_blocks"], in_channels,
                                          spec["num_channels"], multi, stage_id, attention)
            modules.append(module)
            in_channels = module.get_num_inchannels()
        return nn.Sequential(*modules), in_channels

    @staticmethod
    def _transition(transition: nn.ModuleList, y_list: List[torch.Tensor]) -> List[torch.Tensor]:
        out = []
        for i, layer in enumerate(transition):
            source = y_list[i] if i < len(y_list) else y_list[-1]
            out.append(source if layer is None else layer(source))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] % 4 or x.shape[3] % 4:
            raise ValueError(f"expected images [N, 3, H, W] with H and W divisible by 4, got {tuple(x.shape)}")
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        y = [self.layer1(x)]
        y = self.stage2(self._transition(self.transition1, y))
        y = self.stage3(self._transition(self.transition2, y))
        y = self.stage4(self._transition(self.transition3, y))
        return self.final_layer(y[0])

    def attention_prefixes(self) -> List[str]:
        """State-dict prefixes of attention/gating modules (absent from official checkpoints)."""
        return [name + "." for name, m in self.named_modules() if getattr(m, "is_attention", False)]

    def init_weights(self) -> None:
        """Official initialisation: convs N(0, 0.001) with zero bias, BN weight 1 and bias 0. Attention modules keep
        their own initialisation (zero-initialised context blocks must start as the identity)."""
        skip = tuple(self.attention_prefixes())
        for name, m in self.named_modules():
            if not (skip and (name + ".").startswith(skip)):
                init_conv_bn_(m)
