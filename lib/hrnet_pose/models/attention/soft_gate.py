"""Soft-gated skip connection.

Bulat, Kossaifi, Tzimiropoulos, Pantic, "Toward fast and accurate human pose estimation via soft-gated skip
connections", FG 2020, https://arxiv.org/abs/2002.11098

A learnable per-channel scale ``alpha`` [1, C, 1, 1] on the identity path of a residual block, so the network can
learn how much of each channel to pass unchanged: ``out = alpha * identity + F(x)``. ``alpha`` starts at 1, so the
block is exactly the plain residual block at init (and an official checkpoint behaves as before).

Shapes: identity [N, C, H, W] -> [N, C, H, W]. Placement: 'skip'.
"""

import torch
from torch import nn

from .registry import register_attention


@register_attention("softgate", placement="skip")
class SoftGate(nn.Module):
    """Per-channel learnable scale of the identity path.

    Args:
        channels: channels C of the identity path.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1, 1))

    def reset_parameters(self) -> None:
        nn.init.ones_(self.alpha)

    def forward(self, identity: torch.Tensor) -> torch.Tensor:
        return identity * self.alpha
