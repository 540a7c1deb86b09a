"""Heatmap regression losses of the official HRNet (Sun et al., CVPR 2019), vectorised over joints.

`JointsMSELoss`: 0.5 * MSE between predicted and target heatmaps, each joint averaged over B*H*W, then averaged over
joints. With `use_target_weight`, prediction and target are both multiplied by the weight, so the weight enters the
loss squared (official behaviour). `JointsOHKMMSELoss` (online hard keypoint mining, as in CPN, Chen et al.,
CVPR 2018): per sample, the mean of the `topk` largest per-joint losses, averaged over the batch.

Shapes: output, target [B,K,H,W]; target_weight [B,K,1] -> scalar tensor. Batch 1 works.
"""

import torch
from torch import nn

from ..errors import ConfigError


def _weighted_sq_error(output: torch.Tensor, target: torch.Tensor, target_weight, use_target_weight: bool):
    if output.shape != target.shape:
        raise ValueError(f"output {tuple(output.shape)} and target {tuple(target.shape)} must have the same shape")
    b, k = output.shape[:2]
    pred = output.reshape(b, k, -1)
    gt = target.reshape(b, k, -1)
    if use_target_weight:
        if target_weight is None:
            raise ValueError("use_target_weight=True needs target_weight [B, K, 1]")
        w = target_weight.reshape(b, k, 1).to(pred.dtype)
        pred, gt = pred * w, gt * w
    return (pred - gt) ** 2  # [B, K, H*W]


class JointsMSELoss(nn.Module):
    """Official JointsMSELoss: sum_j 0.5 * mean((w*p - w*g)^2) / K."""

    def __init__(self, use_target_weight: bool = True) -> None:
        super().__init__()
        self.use_target_weight = bool(use_target_weight)

    def forward(self, output: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor = None) -> torch.Tensor:
        # every joint is averaged over the same B*H*W elements, so the mean over joints is the overall mean
        return 0.5 * _weighted_sq_error(output, target, target_weight, self.use_target_weight).mean()


class JointsOHKMMSELoss(nn.Module):
    """Official JointsOHKMMSELoss: per sample, mean of the `topk` hardest joints' 0.5*MSE, then batch mean."""

    def __init__(self, use_target_weight: bool = True, topk: int = 8) -> None:
        super().__init__()
        if topk < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        self.use_target_weight = bool(use_target_weight)
        self.topk = int(topk)

    def forward(self, output: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor = None) -> torch.Tensor:
        per_joint = 0.5 * _weighted_sq_error(output, target, target_weight, self.use_target_weight).mean(dim=2)
        if self.topk > per_joint.shape[1]:
            raise ConfigError(f"LOSS.TOPK={self.topk} exceeds the number of joints ({per_joint.shape[1]})")
        hardest, _ = torch.topk(per_joint, k=self.topk, dim=1, sorted=False)
        return hardest.mean(dim=1).mean()


def build_loss(cfg) -> nn.Module:
    """JointsOHKMMSELoss when LOSS.USE_OHKM (LOSS.TOPK), else JointsMSELoss; LOSS.USE_TARGET_WEIGHT for both."""
    if cfg.LOSS.USE_OHKM:
        return JointsOHKMMSELoss(cfg.LOSS.USE_TARGET_WEIGHT, cfg.LOSS.TOPK)
    return JointsMSELoss(cfg.LOSS.USE_TARGET_WEIGHT)
