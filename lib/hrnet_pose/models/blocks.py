"""Residual blocks of HRNet: BASIC and BOTTLENECK (He et al. 2016, official key names) and SOFTGATE (Bulat et al.
2020, "Toward fast and accurate human pose estimation via soft-gated skip connections").

Every block maps [N, inplanes, H, W] -> [N, planes * expansion, H / stride, W / stride] and can carry one attention
module (see `hrnet_pose.models.attention`), placed by its kind:
- 'gate': after the last BN, before the residual add;
- 'conv': replaces the 3x3 conv `conv2` (BASIC and BOTTLENECK only);
- 'skip': a gate on the identity path (the soft-gated skip connection: learnable per-channel alpha, init 1);
- 'context' blocks act on whole branches and are placed by `HighResolutionModule`, not here.
With no attention the state-dict keys are exactly the official ones.
"""

from typing import Optional

import torch
from torch import nn

from ..errors import ConfigError
from .attention import attention_placement, create_attention

BN_MOMENTUM = 0.1


def init_conv_bn_(module: nn.Module) -> None:
    """The official HRNet (and MMPose) initialisation of one module: a conv N(0, 0.001) with zero bias, a BatchNorm
    weight 1 and bias 0; other modules are left as they are."""
    if isinstance(module, nn.Conv2d):
        nn.init.normal_(module.weight, std=0.001)
        if module.bias is not None:
            nn.init.constant_(module.bias, 0)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.constant_(module.weight, 1)
        nn.init.constant_(module.bias, 0)


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def make_attention(name: str, channels: int, kwargs: Optional[dict], **extra) -> Optional[nn.Module]:
    """Build an attention module and mark it, so weight loading knows which keys may be absent from a checkpoint."""
    module = create_attention(name, channels, **extra, **(kwargs or {}))
    if module is not None:
        module.is_attention = True
    return module


class _AttentionMixin:
    """Shared wiring of the block-level attention kinds ('gate', 'conv', 'skip')."""

    def _setup_attention(self, attention: str, attention_kwargs: Optional[dict], out_channels: int) -> None:
        self.attn_kind = attention_placement(attention) if attention else ""
        if self.attn_kind == "context":
            raise ConfigError(
                f"attention '{attention}' is a context block: it acts on a whole branch (HighResolutionModule), "
                "not inside a residual block"
            )
        if self.attn_kind == "gate":
            self.attn = make_attention(attention, out_channels, attention_kwargs)
        if self.attn_kind == "skip":
            self.skip_gate = make_attention(attention, out_channels, attention_kwargs)

    def _gate(self, out: torch.Tensor) -> torch.Tensor:
        return self.attn(out) if self.attn_kind == "gate" else out

    def _skip(self, residual: torch.Tensor) -> torch.Tensor:
        return self.skip_gate(residual) if self.attn_kind == "skip" else residual

    def _conv2(self, in_planes: int, planes: int, stride: int, attention: str, kwargs: Optional[dict]) -> nn.Module:
        if attention and attention_placement(attention) == "conv":
            return make_attention(attention, in_planes, kwargs, out_channels=planes, stride=stride)
        return conv3x3(in_planes, planes, stride)


class BasicBlock(_AttentionMixin, nn.Module):
    """Two 3x3 convs with BN; expansion 1."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        attention: str = "",
        attention_kwargs: Optional[dict] = None,
    ):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = self._conv2(planes, planes, 1, attention, attention_kwargs)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.downsample = downsample
        self.stride = stride
        self._setup_attention(attention, attention_kwargs, planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self._gate(self.bn2(self.conv2(out)))
        return self.relu(out + self._skip(residual))


class Bottleneck(_AttentionMixin, nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4), each with BN."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        attention: str = "",
        attention_kwargs: Optional[dict] = None,
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = self._conv2(planes, planes, stride, attention, attention_kwargs)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride
        self._setup_attention(attention, attention_kwargs, planes * self.expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self._gate(self.bn3(self.conv3(out)))
        return self.relu(out + self._skip(residual))


class SoftGateBlock(_AttentionMixin, nn.Module):
    """Soft-gated hierarchical block of Bulat et al. (FG 2020); expansion 1.

    Three chained 3x3 convs with planes/2, planes/4 and planes/4 outputs (each conv + BN + ReLU) are concatenated back to
    `planes` channels and added to the identity path scaled by a learnable per-channel alpha [1, planes, 1, 1]
    (initialised to 1), then a ReLU. `planes` must be divisible by 4.
    """

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        attention: str = "",
        attention_kwargs: Optional[dict] = None,
    ):
        super().__init__()
        if planes % 4:
            raise ConfigError(f"SOFTGATE blocks need a channel count divisible by 4, got {planes}")
        if attention and attention_placement(attention) in ("conv", "skip"):
            raise ConfigError(
                f"attention '{attention}' ({attention_placement(attention)}) cannot be combined with SOFTGATE blocks: "
                "they have their own soft-gated skip and no single 3x3 conv to replace; use a 'gate' or 'context' block"
            )
        half, quarter = planes // 2, planes // 4
        self.conv1 = conv3x3(inplanes, half, stride)
        self.bn1 = nn.BatchNorm2d(half, momentum=BN_MOMENTUM)
        self.conv2 = conv3x3(half, quarter)
        self.bn2 = nn.BatchNorm2d(quarter, momentum=BN_MOMENTUM)
        self.conv3 = conv3x3(quarter, quarter)
        self.bn3 = nn.BatchNorm2d(quarter, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.alpha = nn.Parameter(torch.ones(1, planes, 1, 1))
        self.downsample = downsample
        self.stride = stride
        self._setup_attention(attention, attention_kwargs, planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        o1 = self.relu(self.bn1(self.conv1(x)))
        o2 = self.relu(self.bn2(self.conv2(o1)))
        o3 = self.relu(self.bn3(self.conv3(o2)))
        out = self._gate(torch.cat([o1, o2, o3], dim=1))
        return self.relu(out + self.alpha * residual)


BLOCKS = {"BASIC": BasicBlock, "BOTTLENECK": Bottleneck, "SOFTGATE": SoftGateBlock}


def get_block(name: str) -> type:
    if name not in BLOCKS:
        raise ConfigError(f"unknown block type '{name}' (STAGEx.BLOCK); valid: {sorted(BLOCKS)}")
    return BLOCKS[name]
