"""Efficient Channel Attention gate.

Wang, Wu, Zhu, Li, Zuo, Hu, "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural Networks",
CVPR 2020, https://arxiv.org/abs/1910.03151

Global average pool, then a 1D conv of size k across the channel axis (local cross-channel interaction, no
dimensionality reduction), sigmoid, multiplied onto the input. The adaptive kernel size is
``k = |(log2(C) + b) / gamma|`` rounded down to an int and bumped to the next odd number (gamma = 2, b = 1),
giving k = 3 for C = 32..64 and k = 5 for C = 128..512.

Shapes: x [N, C, H, W] -> [N, C, H, W]. Placement: 'gate'.
"""

import math
from typing import Optional

import torch
from torch import nn

from .helpers import check_int, check_positive
from .registry import register_attention


def eca_kernel_size(channels: int, gamma: float = 2, b: float = 1) -> int:
    """Adaptive odd kernel size of ECA-Net (eq. 12 of the paper)."""
    t = int(abs((math.log2(channels) + b) / gamma))
    return max(t if t % 2 else t + 1, 1)


@register_attention("eca", placement="gate")
class EfficientChannelAttention(nn.Module):
    """ECA gate.

    Args:
        channels: input (= output) channels C.
        kernel_size: odd 1D kernel size across channels; None picks it from ``gamma`` and ``b``.
        gamma, b: parameters of the adaptive kernel-size rule.
    """

    def __init__(self, channels: int, kernel_size: Optional[int] = None, gamma: float = 2, b: float = 1) -> None:
        super().__init__()
        check_positive("gamma", gamma)
        if kernel_size is None:
            kernel_size = eca_kernel_size(channels, gamma, b)
        check_int("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"eca: kernel_size must be odd so the output keeps C channels, got {kernel_size}")
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3)).unsqueeze(1)  # [N, 1, C]: channels become the 1D "sequence"
        w = torch.sigmoid(self.conv(s))
        return x * w.view(x.shape[0], x.shape[1], 1, 1)
