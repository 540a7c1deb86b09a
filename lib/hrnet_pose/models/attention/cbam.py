"""Convolutional Block Attention Module gate.

Woo, Park, Lee, Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018, https://arxiv.org/abs/1807.06521

Channel attention then spatial attention, applied in sequence:
- channel: a shared MLP (1x1 conv C->h, ReLU, 1x1 conv h->C) on the global average- and max-pooled features,
  summed, sigmoid -> weights [N, C, 1, 1];
- spatial: channel-wise mean and max stacked to [N, 2, H, W], a k x k conv (k = 7) to one map, BN, sigmoid
  -> weights [N, 1, H, W].

Shapes: x [N, C, H, W] -> [N, C, H, W]. Placement: 'gate'.
"""

import torch
from torch import nn

from .helpers import check_int, reduced_channels
from .registry import register_attention


@register_attention("cbam", placement="gate")
class CBAM(nn.Module):
    """CBAM gate.

    Args:
        channels: input (= output) channels C.
        reduction: C / hidden ratio of the channel MLP (paper: 16).
        min_channels: floor on the hidden width.
        spatial_kernel: odd kernel size of the spatial conv (paper: 7).
    """

    def __init__(self, channels: int, reduction: float = 16, min_channels: int = 8, spatial_kernel: int = 7) -> None:
        super().__init__()
        check_int("spatial_kernel", spatial_kernel)
        if spatial_kernel % 2 == 0:
            raise ValueError(f"cbam: spatial_kernel must be odd to keep H x W, got {spatial_kernel}")
        hidden = reduced_channels(channels, reduction, min_channels)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.conv = nn.Conv2d(2, 1, spatial_kernel, padding=spatial_kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(1)

    def _mlp(self, s: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(s)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self._mlp(x.mean((2, 3), keepdim=True)) + self._mlp(x.amax((2, 3), keepdim=True))
        x = x * torch.sigmoid(c)
        s = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)  # [N, 2, H, W]
        return x * torch.sigmoid(self.bn(self.conv(s)))
