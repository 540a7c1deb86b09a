"""A^2 double attention block, a context block on an HRNet branch output.

Chen, Kalantidis, Li, Yan, Feng, "A^2-Nets: Double Attention Networks", NeurIPS 2018,
https://arxiv.org/abs/1810.11579

Three 1x1 convs from X [N, C, HW]: A = features [N, c_m, HW], B = attention maps [N, c_n, HW] (softmax over
positions), V = attention vectors [N, c_n, HW] (softmax over the c_n descriptors at each position).
- Gather: G = A B^T [N, c_m, c_n], c_n global descriptors, each a B-weighted pooling of A.
- Distribute: Z = G V [N, c_m, HW], each position picks its own mixture of descriptors.
- Reconstruct: a 1x1 conv c_m->C, zero-initialised, added to the input: ``out = x + W Z``, so the block is exactly
  the identity at init.
conv_b has no bias: a per-map constant cancels in the softmax over positions, so it could not learn.

Gradient note: at init only the reconstruction conv gets gradient (the rest is multiplied by its zero weight);
after one optimiser step its weight is non-zero and every parameter does.

Shapes: x [N, C, H, W] -> [N, C, H, W]. Placement: 'context'.
"""

from typing import Optional

import torch
from torch import nn

from .helpers import check_int
from .registry import register_attention


@register_attention("a2", placement="context")
class DoubleAttention(nn.Module):
    """A^2 double attention with its own residual, identity at init.

    Args:
        channels: input (= output) channels C.
        c_m: width of the gathered features (default max(C // 4, 1)).
        c_n: number of global descriptors (default max(C // 4, 1)).
    """

    def __init__(self, channels: int, c_m: Optional[int] = None, c_n: Optional[int] = None) -> None:
        super().__init__()
        c_m = max(channels // 4, 1) if c_m is None else c_m
        c_n = max(channels // 4, 1) if c_n is None else c_n
        check_int("c_m", c_m)
        check_int("c_n", c_n)
        self.conv_a = nn.Conv2d(channels, c_m, 1)
        self.conv_b = nn.Conv2d(channels, c_n, 1, bias=False)
        self.conv_v = nn.Conv2d(channels, c_n, 1)
        self.proj = nn.Conv2d(c_m, channels, 1, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.proj.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        a = self.conv_a(x).flatten(2)  # [N, c_m, HW]
        b = self.conv_b(x).flatten(2).softmax(dim=-1)  # [N, c_n, HW]
        v = self.conv_v(x).flatten(2).softmax(dim=1)  # [N, c_n, HW]
        g = torch.bmm(a, b.transpose(1, 2))  # [N, c_m, c_n]
        z = torch.bmm(g, v).view(n, -1, h, w)  # [N, c_m, H, W]
        return x + self.proj(z)
