"""PCK on heatmaps: the "Accuracy" of the official HRNet train/val logs (`core.evaluate.accuracy`), logs only; and
PCK of the box size + EPE on image keypoints (`box_pck_epe`), reported beside AP for every keypoint set.

Both prediction and target heatmaps are decoded by argmax; a joint counts where the target argmax is > 1 in both x
and y (so targets at pixel 0 or 1 and empty targets are ignored). Distances are normalised by (h/10, w/10) applied to
(x, y): the axes are swapped in the official code and this reproduces it. A joint is correct below `thr` (0.5).

Shapes: output, target [N,K,h,w] (numpy or torch) -> (acc [K+1] with acc[0] the mean over joints that have a valid
target and -1 for joints without one, avg_acc float, cnt int). `accuracy_torch` is the same on a device, for the
training loop.
"""

from typing import Dict, Tuple

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


def box_pck_epe(gt_keypoints: np.ndarray, gt_boxes: np.ndarray, gt_image_ids: np.ndarray, pred_keypoints: np.ndarray,
                pred_image_ids: np.ndarray, thr: float = 0.2) -> Dict[str, float]:
    """PCK at `thr` of the box size and EPE, for any keypoint set (MMPose's `PCKAccuracy(norm_item='bbox')` and
    `EPE` for data without OKS sigmas).

    gt_keypoints [G, K, 3] (v > 0 labelled), gt_boxes [G, 4] xywh (size = max(w, h)), gt_image_ids [G];
    pred_keypoints [N, K, >=2], pred_image_ids [N]. In each image, predictions and ground-truth persons are paired
    one to one, closest first (mean box-normalised distance over the person's labelled keypoints), so the numbers
    hold for detector boxes too; a person left without a prediction counts its keypoints as wrong for PCK and is left
    out of EPE. PCK is the mean over keypoints of each keypoint's share of correct labelled instances (keypoints never
    labelled are left out, as MMPose); EPE is the mean pixel distance over all paired labelled keypoints.
    Returns {'PCK', 'EPE', 'matched', 'persons'}; NaN where nothing was labelled or paired.
    """
    gt_kpts = np.asarray(gt_keypoints, np.float64)
    k = gt_kpts.shape[1] if gt_kpts.ndim == 3 else 0
    pred = np.asarray(pred_keypoints, np.float64)[..., :2].reshape(-1, k, 2)
    sizes = np.max(np.asarray(gt_boxes, np.float64).reshape(-1, 4)[:, 2:], axis=1)
    labelled = gt_kpts[..., 2] > 0  # [G, K]
    correct = np.zeros_like(labelled)
    dist_px = np.full(labelled.shape, np.nan)
    gt_image_ids, pred_image_ids = np.asarray(gt_image_ids).reshape(-1), np.asarray(pred_image_ids).reshape(-1)
    for image in np.unique(gt_image_ids):
        g = np.flatnonzero(gt_image_ids == image)
        d = np.flatnonzero(pred_image_ids == image)
        if not len(d):
            continue
        # [G_i, D_i, K] pixel distances; [G_i, D_i] mean normalised distance over each person's labelled keypoints
        dist = np.linalg.norm(gt_kpts[g, None, :, :2] - pred[None, d], axis=-1)
        mask = labelled[g, None, :]
        norm = dist / np.maximum(sizes[g], 1e-9)[:, None, None]
        cost = np.where(mask, norm, 0.0).sum(-1) / np.maximum(mask.sum(-1), 1)
        cost[~labelled[g].any(-1)] = np.inf  # persons without a labelled keypoint are not paired
        used_g, used_d = set(), set()
        for flat in np.argsort(cost, axis=None, kind="stable"):
            gi, di = divmod(int(flat), len(d))
            if gi in used_g or di in used_d or not np.isfinite(cost[gi, di]):
                continue
            used_g.add(gi)
            used_d.add(di)
            dist_px[g[gi]] = dist[gi, di]
            correct[g[gi]] = norm[gi, di] < thr
    per_kpt_labelled = labelled.sum(axis=0)
    has = per_kpt_labelled > 0
    per_kpt = (correct & labelled).sum(axis=0)[has] / per_kpt_labelled[has]
    paired = labelled & np.isfinite(dist_px)
    return {"PCK": float(per_kpt.mean()) if has.any() else float("nan"),
            "EPE": float(dist_px[paired].mean()) if paired.any() else float("nan"),
            "matched": int(np.isfinite(dist_px).any(axis=1).sum()), "persons": int(labelled.any(axis=1).sum())}
