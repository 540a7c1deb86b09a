"""Non-local block (embedded Gaussian), a context block on an HRNet branch output.

Wang, Girshick, Gupta, He, "Non-local Neural Networks", CVPR 2018, https://arxiv.org/abs/1711.07971

``y_i = sum_j softmax_j(theta(x_i) . phi(x_j)) g(x_j)``, ``z = x + BN(W_z y)`` with theta, phi, g 1x1 convs
C->C_i (``C_i = C / reduction``, paper: 2) and W_z a 1x1 conv C_i->C. With ``sub_sample`` phi(x) and g(x) are
max-pooled 2x2 (ceil mode, so odd sizes keep their last row/column), quartering the attention map.
The BN's gamma and beta start at 0 (as in the paper), so the block is exactly the identity at init.
phi and g have no bias: a phi bias adds ``theta_i . b`` to every logit of row i and cancels in the softmax; a g
bias passes through the (row-stochastic) attention as a per-channel constant that the training-mode BN removes.
Neither could learn.

Gradient note: at init only the output BN's weight and bias get gradient (everything before it is multiplied by
gamma = 0); after one optimiser step gamma != 0 and every parameter does.

Cost: the attention map is [N, HW, HW/4]; at 256x192 the 64x48 branch would hold a 3072 x 768 map per image,
so use it on the low-resolution branches. Computed with ``scaled_dot_product_attention`` (memory-efficient kernels
on GPU).

Shapes: x [N, C, H, W] -> [N, C, H, W]. Placement: 'context'.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .helpers import check_positive
from .registry import register_attention


@register_attention("non_local", placement="context")
class NonLocal(nn.Module):
    """Embedded-Gaussian non-local block with its own residual, identity at init.

    Args:
        channels: input (= output) channels C.
        reduction: C / C_i ratio of the inner embedding (paper: 2).
        sub_sample: max-pool phi(x) and g(x) by 2 (paper: True).
        use_scale: divide the logits by sqrt(C_i) (not in the paper; steadier softmax for wide embeddings).
    """

    def __init__(self, channels: int, reduction: float = 2, sub_sample: bool = True, use_scale: bool = False) -> None:
        super().__init__()
        check_positive("reduction", reduction)
        inner = max(int(channels / reduction), 1)
        self.scale = inner ** -0.5 if use_scale else 1.0
        self.theta = nn.Conv2d(channels, inner, 1)
        self.phi = nn.Conv2d(channels, inner, 1, bias=False)
        self.g = nn.Conv2d(channels, inner, 1, bias=False)
        self.pool = nn.MaxPool2d(2, ceil_mode=True) if sub_sample else nn.Identity()
        self.proj = nn.Conv2d(inner, channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        q = self.theta(x).flatten(2).transpose(1, 2)  # [N, HW, C_i]
        k = self.pool(self.phi(x)).flatten(2).transpose(1, 2)  # [N, HW', C_i]
        v = self.pool(self.g(x)).flatten(2).transpose(1, 2)  # [N, HW', C_i]
        y = F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1), scale=self.scale)
        y = y.squeeze(1).transpose(1, 2).reshape(n, -1, h, w)  # [N, C_i, H, W]
        return x + self.bn(self.proj(y))
