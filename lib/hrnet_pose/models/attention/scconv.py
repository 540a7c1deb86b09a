"""Self-calibrated convolution (replaces a block's 3x3 conv).

Liu, Hou, Cheng, Wang, Feng, "Improving Convolutional Networks with Self-Calibrated Convolutions", CVPR 2020,
http://mmcheng.net/scconv/

The input X [N, C, H, W] is split along channels into X1 (the first C/2) and X2 (the rest):
- X2 takes an ordinary 3x3 conv: ``Y2 = K1 * X2``;
- X1 is calibrated by a down-sampled view of itself: ``T1 = AvgPool_r(X1)``, ``X1' = Up(K2 * T1)``,
  ``Y1' = (K3 * X1) . sigmoid(X1 + X1')``, ``Y1 = K4 * Y1'``;
- ``Y = [Y1, Y2]`` along channels.
K2 and K3 are 3x3 conv + BN as in the authors' code (the BN sets the gate's operating point); K1 and K4 are plain 3x3
convs carrying the stride, since the residual block's own BN follows the concatenation (a per-channel BN over [Y1, Y2]
is the per-half BN of the authors' code). Up is nearest upsampling back to H x W, as in the authors' code.
Pooling by r (paper: 4) on a map whose size r does not divide pools to ceil(H / r) x ceil(W / r) adaptive bins
(HRNet's low-resolution branches are as small as 2x2), where the authors' AvgPool2d(r) would drop rows or fail.

No dense [out, C, 3, 3] conv: ``replaced_conv_key = None``; an official ``conv2.weight`` is reported as replaced.
Shapes: x [N, C, H, W] -> [N, out, H / stride, W / stride] (out / 2 from Y1, the rest from Y2). Placement: 'conv'.
"""

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .helpers import adaptive_avg_pool, check_int
from .registry import register_attention
from .sk import PooledBatchNorm2d


class ConvBn(nn.Sequential):
    """3x3 conv (no bias) + BN; keys ``0.weight``, ``1.*``. The BN trains on a single value per channel too (K2 sees
    a 1x1 pooled map on the smallest branch; with a last batch of one that is one value), see `PooledBatchNorm2d`."""

    def __init__(self, channels: int) -> None:
        super().__init__(nn.Conv2d(channels, channels, 3, padding=1, bias=False), PooledBatchNorm2d(channels))


@register_attention("scconv", placement="conv")
class SelfCalibratedConv(nn.Module):
    """SCConv.

    Args:
        channels: input channels C (>= 2; the first C // 2 go through the self-calibrated path).
        out_channels: output channels (default C; >= 2).
        stride: stride of K1 and K4.
        pooling_r: down-sampling rate r of the calibration path (paper: 4).
    """

    replaced_conv_key: Optional[str] = None

    def __init__(self, channels: int, out_channels: Optional[int] = None, stride: int = 1, pooling_r: int = 4) -> None:
        super().__init__()
        out = channels if out_channels is None else out_channels
        check_int("channels", channels, minimum=2)
        check_int("out_channels", out, minimum=2)
        check_int("stride", stride)
        check_int("pooling_r", pooling_r)
        self.split, self.pooling_r = channels // 2, pooling_r
        c1, c2, o1 = channels // 2, channels - channels // 2, out // 2
        self.k1 = nn.Conv2d(c2, out - o1, 3, stride=stride, padding=1, bias=False)
        self.k2 = ConvBn(c1)
        self.k3 = ConvBn(c1)
        self.k4 = nn.Conv2d(c1, o1, 3, stride=stride, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x[:, :self.split], x[:, self.split:]
        h, w = int(x.shape[-2]), int(x.shape[-1])
        r = self.pooling_r
        t1 = adaptive_avg_pool(x1, (-(-h // r), -(-w // r)))
        x1_cal = F.interpolate(self.k2(t1), size=(h, w), mode="nearest")
        y1 = self.k4(self.k3(x1) * torch.sigmoid(x1 + x1_cal))
        return torch.cat([y1, self.k1(x2)], dim=1)
