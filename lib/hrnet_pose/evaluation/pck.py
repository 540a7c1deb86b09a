"""PCK on heatmaps: the "Accuracy" of the official HRNet train/val logs (`core.evaluate.accuracy`). Logs only.

Both prediction and target heatmaps are decoded by argmax; a joint counts where the target argmax is > 1 in both x
and y (so targets at pixel 0 or 1 and empty targets are ignored). Distances are normalised by (h/10, w/10) applied to
(x, y): the axes are swapped in the official code and this reproduces it. A joint is correct below `thr` (0.5).

Shapes: output, target [N,K,h,w] (numpy or torch) -> (acc [K+1] with acc[0] the mean over joints that have a valid
target and -1 for joints without one, avg_acc float, cnt int).
"""

from typing import Tuple

import numpy as np

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
