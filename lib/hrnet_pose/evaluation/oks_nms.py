"""OKS-based non-maximum suppression of pose instances, pure numpy (no compiled code).

Object keypoint similarity (OKS) is the COCO keypoint metric: mean over keypoints of exp(-d^2 / (2 * s^2 * (2k)^2))
with s^2 the object area. These are the official HRNet `oks_iou`, `oks_nms` and `soft_oks_nms` (lib/nms/nms.py),
with the pairwise OKS computed as one [N,N] matrix instead of a loop.

Official details kept: `vars = (2 * sigma)^2`, the area term is the mean of both areas plus eps, and with
`in_vis_thre` the official mask `list(vg > t) and list(vd > t)` evaluates to `list(vd > t)`: only the *other*
detection's (column's) keypoint scores decide which keypoints count. So `oks_iou_matrix(..., in_vis_thre)` is not
symmetric. Detections are ordered by `argsort()[::-1]` of the scores (ties go to the later index).

Shapes: keypoints [N,K,3] (x, y, score), scores [N], areas [N]; kept indices [M] int64 in keep order.
`oks_nms_grouped` runs the same NMS for every image of a whole evaluation at once (images padded into batches
[B,n,n] of OKS), with the per-image function's exact keep order, so evaluation needs no loop over images.
"""

from typing import Optional

import numpy as np

from ..keypoints import COCO_SIGMAS

SOFT_NMS_MAX_DETS = 20  # the official soft_oks_nms keeps at most 20 instances per image


def oks_iou_matrix(
    keypoints: np.ndarray,
    areas: np.ndarray,
    sigmas: Optional[np.ndarray] = None,
    in_vis_thre: Optional[float] = None,
) -> np.ndarray:
    """OKS [N,N] float64: entry (i, j) = official `oks_iou(kpts[i], kpts[j], areas[i], areas[j])`."""
    kpts = np.asarray(keypoints)
    if kpts.ndim != 3 or kpts.shape[2] != 3:
        raise ValueError(f"keypoints must be [N, K, 3] (x, y, score), got shape {kpts.shape}")
    n, k, _ = kpts.shape
    sigmas = COCO_SIGMAS if sigmas is None else np.asarray(sigmas, dtype=np.float64)
    if sigmas.shape != (k,):
        raise ValueError(f"sigmas must have one value per keypoint ({k}), got shape {sigmas.shape}")
    areas = np.asarray(areas, dtype=np.float64).reshape(n)
    return _oks_batch(kpts, areas, sigmas, in_vis_thre)


def _oks_batch(kpts: np.ndarray, areas: np.ndarray, sigmas: np.ndarray, in_vis_thre: Optional[float]) -> np.ndarray:
    """OKS of keypoints [..., N, K, 3] with areas [..., N] -> [..., N, N]; every entry is computed with the same
    operations in the same order whatever the batch shape, so batched and per-image NMS see identical values."""
    variances = (sigmas * 2) ** 2
    # the official code subtracts in the keypoints' own dtype (float32) before promoting
    dx = kpts[..., None, :, :, 0] - kpts[..., :, None, :, 0]
    dy = kpts[..., None, :, :, 1] - kpts[..., :, None, :, 1]
    denom = (areas[..., :, None] + areas[..., None, :]) / 2 + np.spacing(1)
    e = (dx ** 2 + dy ** 2) / variances / denom[..., None] / 2
    if in_vis_thre is None:
        return np.exp(-e).mean(axis=-1)
    mask = np.broadcast_to(kpts[..., None, :, :, 2] > in_vis_thre, e.shape)
    count = mask.sum(axis=-1)
    total = np.where(mask, np.exp(-e), 0.0).sum(axis=-1)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def _check(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray):
    kpts = np.asarray(keypoints)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    areas = np.asarray(areas, dtype=np.float64).reshape(-1)
    if kpts.ndim != 3 or not (kpts.shape[0] == scores.shape[0] == areas.shape[0]):
        raise ValueError(f"keypoints [N,K,3], scores [N] and areas [N] must agree: {kpts.shape}, "
                         f"{scores.shape}, {areas.shape}")
    return kpts, scores, areas


def oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    thresh: float,
    sigmas: Optional[np.ndarray] = None,
    in_vis_thre: Optional[float] = None,
) -> np.ndarray:
    """Greedy NMS: keep the best-scored instance, drop those with OKS > `thresh` to it, repeat. Kept indices [M]."""
    kpts, scores, areas = _check(keypoints, scores, areas)
    if len(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    oks = oks_iou_matrix(kpts, areas, sigmas, in_vis_thre)
    order = _descending(scores)
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        order = rest[oks[i, rest] <= thresh]
    return np.asarray(keep, dtype=np.int64)


def soft_oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    thresh: float,
    sigmas: Optional[np.ndarray] = None,
    in_vis_thre: Optional[float] = None,
    max_dets: int = SOFT_NMS_MAX_DETS,
) -> np.ndarray:
    """Official soft OKS-NMS: gaussian rescoring `s *= exp(-oks^2 / thresh)`, at most `max_dets` kept, in keep order.

    The rescored values only decide the order; the caller's scores are not changed (as in the official code).
    """
    kpts, scores, areas = _check(keypoints, scores, areas)
    if len(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    oks = oks_iou_matrix(kpts, areas, sigmas, in_vis_thre)
    order = scores.argsort()[::-1]
    current = scores[order]
    keep = []
    while order.size > 0 and len(keep) < max_dets:
        i = order[0]
        keep.append(i)
        order, current = order[1:], current[1:] * np.exp(-oks[i, order[1:]] ** 2 / thresh)
        resort = current.argsort()[::-1]
        order, current = order[resort], current[resort]
    return np.asarray(keep, dtype=np.int64)


def _descending(scores: np.ndarray) -> np.ndarray:
    """The official visiting order `argsort()[::-1]`."""
    return scores.argsort()[::-1]


def oks_nms_grouped(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    groups: np.ndarray,
    thresh: float,
    sigmas: Optional[np.ndarray] = None,
    in_vis_thre: Optional[float] = None,
    max_elements: int = 1 << 21,
) -> np.ndarray:
    """`oks_nms` within each group (image) of `groups` [N], all groups at once -> kept indices [M] into N.

    The result is the concatenation, over groups in order of first appearance, of
    `idx[oks_nms(keypoints[idx], scores[idx], areas[idx], ...)]` with idx the group's members in input order.
    Groups are padded into batches of at most `max_elements` OKS terms; the greedy pass steps through rank
    positions for the whole batch.
    """
    kpts, scores, areas = _check(keypoints, scores, areas)
    groups = np.asarray(groups).reshape(-1)
    if len(groups) != len(scores):
        raise ValueError(f"groups must be [N] with N={len(scores)}, got shape {groups.shape}")
    if len(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    k = kpts.shape[1]
    sigmas = COCO_SIGMAS if sigmas is None else np.asarray(sigmas, dtype=np.float64)
    if sigmas.shape != (k,):
        raise ValueError(f"sigmas must have one value per keypoint ({k}), got shape {sigmas.shape}")
    _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))[inverse.reshape(-1)]  # group rank by first appearance
    # members by group, each group by descending score; for untied scores any sort gives the official order
    members = np.lexsort((-scores, rank))
    size = np.bincount(rank)
    start = np.concatenate([[0], np.cumsum(size)[:-1]])
    sorted_scores, sorted_rank = scores[members], rank[members]
    same = (sorted_scores[1:] == sorted_scores[:-1]) | np.isnan(sorted_scores[1:]) | np.isnan(sorted_scores[:-1])
    tied = np.unique(sorted_rank[1:][same & (sorted_rank[1:] == sorted_rank[:-1])])
    for g in tied:  # ties: the official argsort()[::-1] decides, so call it on the group itself
        idx = np.sort(members[start[g]:start[g] + size[g]])
        members[start[g]:start[g] + size[g]] = idx[_descending(scores[idx])]
    kept = np.zeros(len(members), dtype=bool)
    kept[start[size == 1]] = True  # a lone instance is always kept
    for n in np.unique(size[size > 1]):
        same = np.flatnonzero(size == n)  # groups of equal size batch without padding
        n = int(n)
        per_batch = max(1, max_elements // (n * n * k))
        for b in range(0, len(same), per_batch):
            pos = start[same[b:b + per_batch]][:, None] + np.arange(n)[None, :]  # [B, n] member positions
            idx = members[pos]
            oks = _oks_batch(kpts[idx], areas[idx], sigmas, in_vis_thre)
            alive = np.ones(pos.shape, dtype=bool)
            for j in range(n - 1):
                # official: the rest survive only where oks <= thresh (so a NaN OKS suppresses)
                alive[:, j + 1:] &= ~(alive[:, j, None] & ~(oks[:, j, j + 1:] <= thresh))
            kept[pos[alive]] = True
    return members[kept]


def rescore(box_scores: np.ndarray, maxvals: np.ndarray, in_vis_thre: float) -> np.ndarray:
    """Official evaluate() rescoring: box score x mean of the keypoint scores > `in_vis_thre` (0 if none).

    box_scores [N], maxvals [N,K] or [N,K,1] -> [N] float64.
    """
    vals = np.asarray(maxvals, dtype=np.float32).reshape(len(box_scores), -1)
    valid = vals > in_vis_thre
    count = valid.sum(axis=1).astype(np.float32)
    # the official loop adds float32 scores one by one in float32; cumsum reproduces that order and precision
    total = np.cumsum(np.where(valid, vals, np.float32(0)), axis=1, dtype=np.float32)[:, -1] if vals.shape[1] else \
        np.zeros(len(vals), np.float32)
    mean = np.where(count > 0, total / np.maximum(count, np.float32(1)), np.float32(0))
    return np.asarray(box_scores, dtype=np.float64) * mean.astype(np.float64)
