"""Res2Net hierarchical 3x3 convolution (replaces a block's 3x3 conv).

Gao, Cheng, Zhao, Zhang, Yang, Torr, "Res2Net: A New Multi-scale Backbone Architecture", TPAMI 2021,
https://arxiv.org/abs/1904.01169

The input [N, C, H, W] is split along channels into s groups x_1..x_s of width w = C / s (paper: s = 4) and
    y_1 = x_1,   y_2 = K_2(x_2),   y_i = K_i(x_i + y_{i-1}) for 2 < i <= s,
concatenated back to C channels, so group i sees receptive fields of 3, 5, ..., 2i - 1 pixels inside one block.
Each K_i is a 3x3 conv + BN + ReLU, as in the authors' code. (Their code leaves the last group unconvolved instead of
the first; the same block up to a permutation of channels.) The residual block's own BN follows the concatenation.

With a stride or a width change (no hierarchy can add maps of different sizes or widths) every group is a 3x3 conv
C/s -> out/s with the stride and no additions, the authors' "stage" form with the first group convolved too, since a
pooled identity cannot change width. HRNet's branches never stride or widen their 3x3 convs: there it is always the
hierarchical form.

No dense [out, C, 3, 3] conv: ``replaced_conv_key = None``; an official ``conv2.weight`` is reported as replaced.
Shapes: x [N, C, H, W] -> [N, out, H / stride, W / stride]. Placement: 'conv'.
"""

from typing import Optional

import torch
from torch import nn

from .helpers import check_int
from .registry import register_attention
from .sk import ConvBnReLU


@register_attention("res2net", placement="conv")
class Res2NetConv(nn.Module):
    """Res2Net's hierarchy of s 3x3 convs of width C / s.

    Args:
        channels: input channels C (divisible by ``scale``).
        out_channels: output channels (default C; divisible by ``scale``).
        stride: stride (> 1, or out != C, selects the non-hierarchical "stage" form).
        scale: number of groups s (paper: 4; 1 is a plain 3x3 conv + BN + ReLU).
    """

    replaced_conv_key: Optional[str] = None

    def __init__(self, channels: int, out_channels: Optional[int] = None, stride: int = 1, scale: int = 4) -> None:
        super().__init__()
        out = channels if out_channels is None else out_channels
        check_int("out_channels", out)
        check_int("stride", stride)
        check_int("scale", scale)
        if channels % scale or out % scale:
            raise ValueError(f"res2net: scale={scale} must divide channels={channels} and out_channels={out}")
        self.scale, self.width = scale, channels // scale
        self.hierarchical = stride == 1 and out == channels and scale > 1
        n_convs = scale - 1 if self.hierarchical else scale
        self.convs = nn.ModuleList(
            ConvBnReLU(channels // scale, out // scale, stride=stride) for _ in range(n_convs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = torch.split(x, self.width, dim=1)
        if not self.hierarchical:
            return torch.cat([conv(xi) for conv, xi in zip(self.convs, xs)], dim=1)
        ys = [xs[0]]
        for i, conv in enumerate(self.convs, start=1):
            ys.append(conv(xs[i] if i == 1 else xs[i] + ys[-1]))
        return torch.cat(ys, dim=1)
