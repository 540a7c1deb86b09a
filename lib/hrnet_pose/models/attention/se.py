"""Squeeze-and-Excitation gate.

Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018, https://arxiv.org/abs/1709.01507

Global average pool -> 1x1 conv C->h -> ReLU -> 1x1 conv h->C -> sigmoid, multiplied onto the input channels.
``h = max(min(min_channels, C), round(C / reduction))``.

Shapes: x [N, C, H, W] -> [N, C, H, W]. Placement: 'gate'.
"""

import torch
from torch import nn

from .helpers import reduced_channels
from .registry import register_attention


@register_attention("se", placement="gate")
class SqueezeExcite(nn.Module):
    """SE gate: per-channel sigmoid weights from globally pooled features.

    Args:
        channels: input (= output) channels C.
        reduction: C / hidden ratio (paper: 16).
        min_channels: floor on the hidden width.
    """

    def __init__(self, channels: int, reduction: float = 16, min_channels: int = 8) -> None:
        super().__init__()
        hidden = reduced_channels(channels, reduction, min_channels)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))
