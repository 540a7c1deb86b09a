"""Mixed Pooling Module (MPM), a context block on an HRNet branch output.

Hou, Zhang, Cheng, Feng, "Strip Pooling: Rethinking Spatial Pooling for Scene Parsing", CVPR 2020 (SPNet),
https://arxiv.org/abs/2003.13328 (section 3.3; the strip-pooling gate of the same paper is the 'strip' block)

Two 1x1 conv + BN + ReLU reductions C -> C_r (C_r = C / reduction, paper: 4) feed two sub-modules:
- short-range (pyramid pooling): ``a = K0(u) + Up(K1(AvgPool_{p1}(u))) + Up(K2(AvgPool_{p2}(u)))`` with square
  adaptive pools to p1 x p1 and p2 x p2 (SPNet: 20 and 12), each K a 3x3 conv + BN; then 3x3 conv + BN + ReLU of
  ReLU(a);
- long-range (strip pooling): ``b = Up(K_w(mean_H(v))) + Up(K_h(mean_W(v)))`` with a 1x3 conv + BN on the
  1 x W strip and a 3x1 conv + BN on the H x 1 strip; then 3x3 conv + BN + ReLU of ReLU(b);
concatenated (2 C_r) and projected back by a 1x1 conv + BN to C, added to the input. Up is bilinear with aligned
corners, as in SPNet.

Identity at init: the projection's BN starts at gamma = beta = 0, as every context block here, so the block is
exactly the identity until it learns. SPNet ends with ReLU(x + out); inside HRNet the branch output it receives has
just passed a ReLU and the fusion that follows ends in one, so the default leaves that ReLU out (which keeps the
identity exact on any input); ``final_relu=True`` gives SPNet's form.
Adaptive pools whose size does not divide the map (20 on a 64x48 branch) are exported to ONNX as two averaging
matrices (``helpers.adaptive_avg_pool``).

Shapes: x [N, C, H, W] -> [N, C, H, W]. Placement: 'context' (default: every branch but the 1/4 one).
"""

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .helpers import adaptive_avg_pool, check_int, check_positive
from .registry import register_attention
from .sk import PooledBatchNorm2d


def _conv_bn(cin: int, cout: int, kernel, relu: bool = False) -> nn.Sequential:
    k = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
    # PooledBatchNorm2d: plain BN, except that a single value per channel (a 1x1 map in a batch of one) trains too
    layers = [nn.Conv2d(cin, cout, k, padding=(k[0] // 2, k[1] // 2), bias=False), PooledBatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)


@register_attention("mpm", placement="context")
class MixedPooling(nn.Module):
    """Mixed Pooling Module with its own residual, identity at init.

    Args:
        channels: input (= output) channels C.
        pool_sizes: the two square grids of the pyramid-pooling branch (SPNet: (20, 12)).
        reduction: C / C_r of both sub-modules (SPNet: 4); C_r has a floor of 1.
        final_relu: ReLU after the residual add, as SPNet (see the module docstring).
    """

    def __init__(self, channels: int, pool_sizes: Sequence[int] = (20, 12), reduction: float = 4,
                 final_relu: bool = False) -> None:
        super().__init__()
        check_positive("reduction", reduction)
        sizes = tuple(pool_sizes) if isinstance(pool_sizes, (list, tuple)) else ()
        if len(sizes) != 2:
            raise ValueError(f"mpm: pool_sizes must be two grid sizes such as (20, 12), got {pool_sizes!r}")
        for s in sizes:
            check_int("pool_sizes[i]", s)
        self.pool_sizes, self.final_relu = sizes, bool(final_relu)
        inner = max(int(channels / reduction), 1)
        self.reduce_short = _conv_bn(channels, inner, 1, relu=True)
        self.reduce_long = _conv_bn(channels, inner, 1, relu=True)
        self.local = _conv_bn(inner, inner, 3)
        self.pool_convs = nn.ModuleList(_conv_bn(inner, inner, 3) for _ in sizes)
        self.strip_w = _conv_bn(inner, inner, (1, 3))  # on the 1 x W strip
        self.strip_h = _conv_bn(inner, inner, (3, 1))  # on the H x 1 strip
        self.fuse_short = _conv_bn(inner, inner, 3, relu=True)
        self.fuse_long = _conv_bn(inner, inner, 3, relu=True)
        self.proj = _conv_bn(2 * inner, channels, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.proj[1].weight)
        nn.init.zeros_(self.proj[1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]

        def up(t: torch.Tensor) -> torch.Tensor:
            return F.interpolate(t, size=size, mode="bilinear", align_corners=True)

        u, v = self.reduce_short(x), self.reduce_long(x)
        a = self.local(u)
        for s, conv in zip(self.pool_sizes, self.pool_convs):
            a = a + up(conv(adaptive_avg_pool(u, (s, s))))
        b = up(self.strip_w(v.mean(2, keepdim=True))) + up(self.strip_h(v.mean(3, keepdim=True)))
        out = x + self.proj(torch.cat([self.fuse_short(torch.relu(a)), self.fuse_long(torch.relu(b))], dim=1))
        return torch.relu(out) if self.final_relu else out
