"""Spatial Group-wise Enhance gate.

Li, Hu, Yang, "Spatial Group-wise Enhance: Improving Semantic Feature Learning in Convolutional Networks",
2019, https://arxiv.org/abs/1905.09646

Channels are split into G groups of C / G. In each group, the similarity of every position's feature vector to
the group's global average feature, ``c = sum_k x_k * mean_hw(x_k)`` [N, G, H, W], is normalised over the
positions (zero mean, unit std), scaled and shifted by a learnable per-group ``weight`` and ``bias``
(initialised to 0 and 1 as in the paper), and a sigmoid of it gates every channel of the group.
Only 2G parameters.

Shapes: x [N, C, H, W] -> [N, C, H, W]. Placement: 'gate'.
"""

from typing import Optional

import torch
from torch import nn

from .helpers import check_int
from .registry import register_attention

DEFAULT_GROUPS = 8


def default_sge_groups(channels: int, preferred: int = DEFAULT_GROUPS) -> int:
    """The largest divisor of ``channels`` that is <= ``preferred`` (8 for every HRNet width)."""
    return max(g for g in range(1, min(preferred, channels) + 1) if channels % g == 0)


@register_attention("sge", placement="gate")
class SpatialGroupEnhance(nn.Module):
    """SGE gate.

    Args:
        channels: input (= output) channels C.
        groups: number of groups G; must divide C. None uses 8, or the largest divisor of C below 8 when C is
            not a multiple of 8.
        eps: added to the variance before the square root (keeps the gradient finite on 1x1 maps).
    """

    def __init__(self, channels: int, groups: Optional[int] = None, eps: float = 1e-5) -> None:
        super().__init__()
        if groups is None:
            groups = default_sge_groups(channels)
        check_int("groups", groups)
        if groups > channels or channels % groups:
            divisors = [g for g in range(1, min(channels, 64) + 1) if channels % g == 0]
            raise ValueError(f"sge: groups={groups} must divide channels={channels} (each group gets C / G "
                             f"channels); valid choices include {divisors}, or leave groups unset to use "
                             f"{default_sge_groups(channels)}")
        self.groups = groups
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(1, groups, 1, 1))
        self.bias = nn.Parameter(torch.ones(1, groups, 1, 1))

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.weight)
        nn.init.ones_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        xg = x.reshape(n, self.groups, c // self.groups, h, w)
        sim = (xg * xg.mean((3, 4), keepdim=True)).sum(2)  # [N, G, H, W]
        mean = sim.mean((2, 3), keepdim=True)
        var = sim.var((2, 3), keepdim=True, unbiased=False)
        t = (sim - mean) / torch.sqrt(var + self.eps)
        gate = torch.sigmoid(t * self.weight + self.bias)
        return (xg * gate.unsqueeze(2)).reshape(n, c, h, w)
