"""Inference-time conv + BatchNorm folding for HRNet (and any model built from Sequential conv/BN pairs).

In eval mode BatchNorm is the affine map y = (x - mean) / sqrt(var + eps) * gamma + beta, so a convolution followed
directly by it equals one convolution with weights w * s and bias (b - mean) * s + beta, s = gamma / sqrt(var + eps)
(Ioffe & Szegedy, ICML 2015; the folding every inference runtime does). `fold_batchnorm(model)` returns a copy with
every such pair folded (the BN replaced by Identity), which removes ~200 memory-bound passes from an HRNet-W32
forward. The folded weights are computed in float64 and stored in the conv's dtype; outputs agree with the unfolded
model to float32 rounding (~1e-5 on heatmaps).

Pairs folded: adjacent (Conv2d, BatchNorm2d) in an nn.Sequential, and the named pairs of the blocks whose forward
applies `bn_i(conv_i(x))` (HRNet stem, BasicBlock, Bottleneck, SoftGateBlock); a conv replaced by an attention
module (SK, split attention) is left alone, as is anything in training mode. Shapes are unchanged:
images [N, 3, H, W] -> heatmaps [N, K, H/4, W/4].
"""

import copy
from typing import Dict, List, Tuple, Type

import torch
from torch import nn

from .blocks import BasicBlock, Bottleneck, SoftGateBlock
from .pose_hrnet import PoseHighResolutionNet

# modules whose forward applies these BNs directly to these convs' outputs
NAMED_PAIRS: Dict[Type[nn.Module], List[Tuple[str, str]]] = {
    PoseHighResolutionNet: [("conv1", "bn1"), ("conv2", "bn2")],
    BasicBlock: [("conv1", "bn1"), ("conv2", "bn2")],
    Bottleneck: [("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")],
    SoftGateBlock: [("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")],
}


@torch.no_grad()
def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """One Conv2d equal to `bn(conv(x))` in eval mode (a new module; the inputs are not changed)."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a BatchNorm2d without running statistics (track_running_stats=False)")
    if conv.out_channels != bn.num_features:
        raise ValueError(f"conv has {conv.out_channels} output channels, the BatchNorm {bn.num_features}")
    scale = bn.running_var.double().add(bn.eps).rsqrt()
    if bn.weight is not None:
        scale = scale * bn.weight.double()
    shift = -bn.running_mean.double() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.double()
    if conv.bias is not None:
        shift = shift + conv.bias.double() * scale
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode,
                      device=conv.weight.device, dtype=conv.weight.dtype)
    shape = (-1,) + (1,) * (conv.weight.dim() - 1)
    fused.weight.copy_(conv.weight.double() * scale.reshape(shape))
    fused.bias.copy_(shift)
    return fused


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    return (type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d and not bn.training
            and bn.track_running_stats and conv.out_channels == bn.num_features)


def fold_batchnorm(model: nn.Module, inplace: bool = False) -> nn.Module:
    """A copy of `model` (or `model` itself with `inplace`) with every conv + BN pair folded; returns it in eval mode.

    Returns the model; `model.folded_pairs` says how many pairs were folded.
    """
    model = model if inplace else copy.deepcopy(model)
    model.eval()
    count = 0
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            children = list(module._modules.items())
            for (name_a, a), (name_b, b) in zip(children, children[1:]):
                if _foldable(a, b):
                    setattr(module, name_a, fold_conv_bn(a, b))
                    setattr(module, name_b, nn.Identity())
                    count += 1
        for conv_name, bn_name in NAMED_PAIRS.get(type(module), []):
            conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
            if _foldable(conv, bn):
                setattr(module, conv_name, fold_conv_bn(conv, bn))
                setattr(module, bn_name, nn.Identity())
                count += 1
    model.folded_pairs = count
    return model
