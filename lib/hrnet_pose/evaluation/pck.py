"""PCK on heatmaps: the "Accuracy" of the official HRNet train/val logs (`core.evaluate.accuracy`). Logs only.

Both prediction and target heatmaps are decoded by argmax; a joint counts where the target argmax is > 1 in both x
and y (so targets at pixel 0 or 1 and empty targets are ignored). Distances are normalised by (h/10, w/10) applied to
(x, y): the axes are swapped in the official code and this reproduces it. A joint is correct below `thr` (0.5).

Shapes: output, target [N,K,h,w] (numpy or torch) -> (acc [K+1] with acc[0] the mean over joints that have a valid
target and -1 for joints without one, avg_acc float, cnt int). `accuracy_torch` is the same on a device, for the
training loop.
"""

from typing import Tuple

import numpy as np
import torch

from ..codecs.heatmap import get_max_preds


def accuracy(output, target, hm_type: str = "gaussian", thr: float = 0.5) -> Tuple[np.ndarray, float, int]:
    """Official `accuracy(output, target)` (see module docstring)."""
    if hm_type != "gaussian":
        raise ValueError(f"accuracy supports hm_type 'gaussian' only, got {hm_type!r}")
    pred, _ = get_max_preds(output)
    gt, _ = get_max_preds(target)
    n, k = pred.shape[:2]
    h, w = np.shape(output)[2], np.shape(output)[3]
    norm = np.array([h, w], dtype=np.float64) / 10  # applied to (x, y): official axis swap
    valid = (gt[..., 0] > 1) & (gt[..., 1] > 1)  # [N, K]
    dists = np.linalg.norm(pred / norm - gt / norm, axis=-1)
    num_valid = valid.sum(axis=0)  # per joint
    correct = ((dists < thr) & valid).sum(axis=0)
    per_joint = np.where(num_valid > 0, correct / np.maximum(num_valid, 1), -1.0)
    acc = np.zeros(k + 1)
    acc[1:] = per_joint
    has = per_joint >= 0
    cnt = int(has.sum())
    avg_acc = float(per_joint[has].mean()) if cnt else 0.0
    if cnt:
        acc[0] = avg_acc
    return acc, avg_acc, cnt


def accuracy_torch(output: torch.Tensor, target: torch.Tensor, thr: float = 0.5
                   ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`accuracy` on the tensors' own device, without a host synchronisation: the training loop reads the result only
    every PRINT_FREQ iterations instead of copying every heatmap batch to the CPU.

    The same arithmetic as the numpy version (first argmax in row-major order, coordinates zeroed where the max is
    <= 0, the official (h, w)/10 normalisation applied to (x, y)), in float64 so the results are equal, not close.
    Shapes: output, target [N,K,h,w] -> (acc [K+1] float64 as in `accuracy`, avg_acc 0-dim float64, cnt 0-dim int64).
    """
    if output.dim() != 4 or output.shape != target.shape:
        raise ValueError(f"accuracy_torch needs output and target of one shape [N,K,h,w], got "
                         f"{tuple(output.shape)} and {tuple(target.shape)}")
    h, w = output.shape[2], output.shape[3]

    def argmax_xy(heatmaps: torch.Tensor) -> torch.Tensor:
        flat = heatmaps.detach().float().flatten(2)
        maxval, idx = flat.max(dim=2)  # torch returns the first maximal index, as np.argmax
        xy = torch.stack([idx % w, torch.div(idx, w, rounding_mode="floor")], dim=-1).to(torch.float64)
        return xy * (maxval > 0).unsqueeze(-1)

    pred, gt = argmax_xy(output), argmax_xy(target)
    # numpy: float32 coords / float64 norm -> float64 (the float32 coords are small integers, exact in both)
    norm = torch.tensor([h / 10, w / 10], dtype=torch.float64, device=output.device)
    valid = (gt[..., 0] > 1) & (gt[..., 1] > 1)  # [N, K]
    dists = torch.linalg.vector_norm(pred / norm - gt / norm, dim=-1)
    num_valid = valid.sum(dim=0)
    correct = ((dists < thr) & valid).sum(dim=0)
    per_joint = torch.where(num_valid > 0, correct.double() / num_valid.clamp(min=1).double(), torch.full_like(dists[0], -1.0))
    has = per_joint >= 0
    cnt = has.sum()
    avg_acc = torch.where(has, per_joint, torch.zeros_like(per_joint)).sum() / cnt.clamp(min=1)
    acc = torch.cat([avg_acc.reshape(1), per_joint])
    return acc, avg_acc, cnt
