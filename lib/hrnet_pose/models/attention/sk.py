"""Selective Kernel convolution (replaces a block's 3x3 conv).

Li, Wang, Hu, Yang, "Selective Kernel Networks", CVPR 2019, https://arxiv.org/abs/1903.06586

- Split: M branches, branch m a 3x3 conv with dilation m + 1 (receptive fields 3, 5, 7, ...; the paper's 5x5
  branch is a dilated 3x3), each conv + BN + ReLU -> U_m [N, out, H', W'].
- Fuse: U = sum_m U_m, global average pool -> s [N, out], fc out->d + BN + ReLU -> z [N, d],
  ``d = max(out / reduction, min_dim)`` (paper: r = 16, L = 32).
- Select: a per-branch fc d->out (one 1x1 conv d->M*out), softmax over the M branches -> a_m [N, out];
  output ``sum_m a_m * U_m``.

Branch 0 is a plain dense (groups=1) 3x3 dilation-1 conv, so ``replaced_conv_key = 'branches.0.conv.weight'``
[out, C, 3, 3] can take an official ``conv2.weight``. With ``groups > 1`` there is no such conv and the instance
sets ``replaced_conv_key = None``.

Shapes: x [N, C, H, W] -> [N, out, H / stride, W / stride] (H' = floor((H - 1) / stride) + 1).
Placement: 'conv'; the block's own BN follows it. The fc BN normalises a pooled vector, which has one value per
channel on a batch of one: there it uses its running statistics (see `PooledBatchNorm2d`), so a last partial batch
of one, or a batch left with one readable image, trains instead of failing.
"""

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .helpers import check_int, check_positive
from .registry import register_attention


class PooledBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d for pooled [N, C, 1, 1] vectors that also trains on N = 1.

    With one value per channel the batch variance is undefined (torch raises "Expected more than 1 value per
    channel"). Such a batch is normalised with the running statistics instead, which it leaves unchanged; the affine
    weight and bias still get gradients. Any other input is plain BatchNorm2d; the state-dict keys are the same.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] * x.shape[2] * x.shape[3] == 1 and self.track_running_stats:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


class ConvBnReLU(nn.Module):
    """3x3 conv (no bias) + BN + ReLU; keys ``conv.weight``, ``bn.*``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=dilation, dilation=dilation,
                              groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


@register_attention("sk", placement="conv")
class SelectiveKernel(nn.Module):
    """SK convolution.

    Args:
        channels: input channels C.
        out_channels: output channels (default C).
        stride: stride of every branch conv.
        branches: number of branches M (>= 2 for a selection to happen; paper: 2).
        reduction: out / d ratio of the fuse fc (paper: 16).
        min_dim: floor L on d (paper: 32).
        groups: groups of the branch convs (paper uses 32 in ResNeXt bodies; 1 keeps branch 0 a dense conv).
    """

    replaced_conv_key: Optional[str] = "branches.0.conv.weight"

    def __init__(self, channels: int, out_channels: Optional[int] = None, stride: int = 1, branches: int = 2,
                 reduction: float = 16, min_dim: int = 32, groups: int = 1) -> None:
        super().__init__()
        out = channels if out_channels is None else out_channels
        check_int("out_channels", out)
        check_int("stride", stride)
        check_int("branches", branches, minimum=2)
        check_positive("reduction", reduction)
        check_int("min_dim", min_dim)
        check_int("groups", groups)
        if channels % groups or out % groups:
            raise ValueError(f"sk: groups={groups} must divide channels={channels} and out_channels={out}")
        if groups != 1:
            self.replaced_conv_key = None
        self.out_channels = out
        d = max(int(out / reduction), min_dim)
        self.branches = nn.ModuleList(
            ConvBnReLU(channels, out, stride=stride, dilation=m + 1, groups=groups) for m in range(branches))
        self.fc = nn.Conv2d(out, d, 1, bias=False)
        self.fc_bn = PooledBatchNorm2d(d)
        self.select = nn.Conv2d(d, out * branches, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = torch.stack([b(x) for b in self.branches], dim=1)  # [N, M, out, H', W']
        n, m = u.shape[:2]
        s = u.sum(1).mean((2, 3), keepdim=True)  # [N, out, 1, 1]
        z = torch.relu(self.fc_bn(self.fc(s)))  # [N, d, 1, 1]
        a = self.select(z).view(n, m, self.out_channels, 1, 1).softmax(dim=1)
        return (u * a).sum(1)
