"""Split-attention convolution of ResNeSt (replaces a block's 3x3 conv).

Zhang, Wu, Zhang, Zhu, Lin, Zhang, Sun, He, Mueller, Manmatha, Li, Smola, "ResNeSt: Split-Attention Networks",
2020, https://arxiv.org/abs/2004.08955

- One grouped 3x3 conv C -> out * R with groups K * R (R = radix, K = cardinality), BN, ReLU, viewed as
  R splits [N, R, out, H', W'].
- Their sum is globally average pooled [N, out, 1, 1], then a grouped fc out->I + BN + ReLU
  (``I = max(C * R / reduction, min_channels)`` rounded up to a multiple of K; paper: reduction 4, floor 32) and a
  grouped fc I->out * R give one logit per (cardinal group, split, channel).
- r-softmax: softmax over the R splits inside each cardinal group (a sigmoid when R = 1); the output is the
  attention-weighted sum of the splits.

The conv is grouped (K * R >= 2 groups by default), so there is no dense [out, C, 3, 3] weight:
``replaced_conv_key = None`` and a checkpoint loader reports an official ``conv2.weight`` as replaced.

Shapes: x [N, C, H, W] -> [N, out, H / stride, W / stride]. Placement: 'conv'; the block's own BN follows it.
The BN after fc1 normalises a pooled vector; on a batch of one it uses its running statistics (`PooledBatchNorm2d`),
so training on a batch of one works.
"""

from typing import Optional

import torch
from torch import nn

from .helpers import check_int, check_positive
from .registry import register_attention
from .sk import PooledBatchNorm2d


@register_attention("splat", placement="conv")
class SplitAttention(nn.Module):
    """Split-attention conv.

    Args:
        channels: input channels C; must be divisible by ``groups * radix``.
        out_channels: output channels (default C); must be divisible by ``groups``.
        stride: stride of the 3x3 conv.
        radix: number of splits R per cardinal group.
        groups: cardinality K.
        reduction: reduction factor of the attention fc (paper: 4).
        min_channels: floor on the attention fc width (paper: 32).
    """

    replaced_conv_key: Optional[str] = None

    def __init__(self, channels: int, out_channels: Optional[int] = None, stride: int = 1, radix: int = 2,
                 groups: int = 1, reduction: float = 4, min_channels: int = 32) -> None:
        super().__init__()
        out = channels if out_channels is None else out_channels
        check_int("out_channels", out)
        check_int("stride", stride)
        check_int("radix", radix)
        check_int("groups", groups)
        check_positive("reduction", reduction)
        check_int("min_channels", min_channels)
        if channels % (groups * radix) or out % groups:
            raise ValueError(f"splat: channels={channels} must be divisible by groups*radix={groups * radix} and "
                             f"out_channels={out} by groups={groups}")
        self.radix = radix
        self.groups = groups
        self.out_channels = out
        inter = max(int(channels * radix / reduction), min_channels)
        inter = -(-inter // groups) * groups
        self.conv = nn.Conv2d(channels, out * radix, 3, stride=stride, padding=1, groups=groups * radix, bias=False)
        self.bn = nn.BatchNorm2d(out * radix)
        # fc1 feeds a BN in training, which would cancel a bias (and leave it without gradient).
        self.fc1 = nn.Conv2d(out, inter, 1, groups=groups, bias=False)
        self.bn1 = PooledBatchNorm2d(inter)
        self.fc2 = nn.Conv2d(inter, out * radix, 1, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.conv(x)))
        n, _, h, w = y.shape
        splits = y.view(n, self.radix, self.out_channels, h, w)
        s = splits.sum(1).mean((2, 3), keepdim=True)  # [N, out, 1, 1]
        logits = self.fc2(torch.relu(self.bn1(self.fc1(s))))  # [N, out * R, 1, 1], grouped by K first
        if self.radix > 1:
            a = logits.view(n, self.groups, self.radix, -1).softmax(dim=2).transpose(1, 2)  # [N, R, K, out / K]
        else:
            a = torch.sigmoid(logits)
        a = a.reshape(n, self.radix, self.out_channels, 1, 1)
        return (splits * a).sum(1)
