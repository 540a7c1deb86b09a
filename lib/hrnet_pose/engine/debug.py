"""Debug images of the official training loop (`DEBUG.*`): batch crops with GT / predicted joints and heatmap panels.

For a batch prefix P (e.g. OUTPUT/.../train_100) the official names are written: P_gt.jpg and P_pred.jpg (crops
with joints, 8 per row) and P_hm_gt.jpg and P_hm_pred.jpg (one row per sample: the crop, then each joint's heatmap
blended over it with its maximum circled). The same images go to TensorBoard when a writer is given.

Inputs: normalised crops [N,3,H,W] (ImageNet mean/std, RGB or BGR as DATASET.COLOR_RGB), joints [N,K,2|3] in crop
pixels, visibility [N,K,1|3] or [N,K], heatmaps [N,K,h,w].
"""

import math
import os
from typing import Any, Dict, Optional

import cv2
import numpy as np
import torch

from ..codecs.heatmap import get_max_preds
from ..datasets.transforms import IMAGENET_MEAN, IMAGENET_STD

_MAX_IMAGES = 16  # a debug grid of a 32-batch at 256x192 is already ~1.5k px wide


def to_uint8_bgr(images: torch.Tensor, color_rgb: bool) -> np.ndarray:
    """Normalised crops [N,3,H,W] -> uint8 [N,H,W,3] in BGR (OpenCV's order)."""
    x = images.detach().float().cpu().numpy().transpose(0, 2, 3, 1)
    x = np.clip((x * IMAGENET_STD + IMAGENET_MEAN) * 255.0, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(x[..., ::-1]) if color_rgb else x


def batch_image_with_joints(images_bgr: np.ndarray, joints: np.ndarray, joints_vis: np.ndarray,
                            nrow: int = 8, padding: int = 2) -> np.ndarray:
    """Grid of crops with visible joints drawn as red dots -> uint8 [H', W', 3] BGR."""
    n, h, w, _ = images_bgr.shape
    ncol = min(n, nrow)
    nrows = int(math.ceil(n / ncol))
    cell_h, cell_w = h + padding, w + padding
    grid = np.zeros((nrows * cell_h + padding, ncol * cell_w + padding, 3), dtype=np.uint8)
    vis = np.asarray(joints_vis).reshape(n, joints.shape[1], -1)[..., 0] > 0
    for i in range(n):
        r, c = divmod(i, ncol)
        y0, x0 = r * cell_h + padding, c * cell_w + padding
        tile = images_bgr[i].copy()
        for (x, y), v in zip(joints[i, :, :2], vis[i]):
            if v:
                cv2.circle(tile, (int(x), int(y)), 2, (0, 0, 255), -1)
        grid[y0:y0 + h, x0:x0 + w] = tile
    return grid


def batch_heatmaps(images_bgr: np.ndarray, heatmaps: np.ndarray) -> np.ndarray:
    """One row per sample: the crop resized to the heatmap size, then each joint's heatmap over it -> uint8 BGR."""
    n, k, hh, hw = heatmaps.shape
    coords, _ = get_max_preds(heatmaps)
    grid = np.zeros((n * hh, (k + 1) * hw, 3), dtype=np.uint8)
    maps = (np.clip(heatmaps, 0.0, 1.0) * 255).astype(np.uint8)
    for i in range(n):
        small = cv2.resize(images_bgr[i], (hw, hh))
        row = slice(i * hh, (i + 1) * hh)
        grid[row, :hw] = small
        for j in range(k):
            colored = cv2.applyColorMap(maps[i, j], cv2.COLORMAP_JET)
            panel = (colored * 0.7 + small * 0.3).astype(np.uint8)
            cv2.circle(panel, (int(coords[i, j, 0]), int(coords[i, j, 1])), 1, (0, 0, 255), 1)
            grid[row, (j + 1) * hw:(j + 2) * hw] = panel
    return grid


def save_debug_images(debug_cfg: Any, images: torch.Tensor, meta: Dict[str, Any], target: torch.Tensor,
                      output: torch.Tensor, prefix: str, color_rgb: bool, tensorboard: Optional[Any] = None,
                      step: int = 0, tag: str = "train") -> None:
    """Write the images that DEBUG.SAVE_* ask for (files named after `prefix`, and TensorBoard under `tag/`)."""
    if not debug_cfg.DEBUG:
        return
    n = min(images.shape[0], _MAX_IMAGES)
    bgr = to_uint8_bgr(images[:n], color_rgb)
    out = output[:n].detach().float().cpu().numpy()
    tgt = target[:n].detach().float().cpu().numpy()
    stride = np.array([images.shape[3] / out.shape[3], images.shape[2] / out.shape[2]], dtype=np.float32)
    pred, maxvals = get_max_preds(out)
    pred = pred * stride
    gt_joints = as_numpy(meta["joints"])[:n]
    gt_vis = as_numpy(meta["joints_vis"])[:n]
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    wanted = {
        "gt": (debug_cfg.SAVE_BATCH_IMAGES_GT, lambda: batch_image_with_joints(bgr, gt_joints, gt_vis)),
        "pred": (debug_cfg.SAVE_BATCH_IMAGES_PRED, lambda: batch_image_with_joints(bgr, pred, gt_vis)),
        "hm_gt": (debug_cfg.SAVE_HEATMAPS_GT, lambda: batch_heatmaps(bgr, tgt)),
        "hm_pred": (debug_cfg.SAVE_HEATMAPS_PRED, lambda: batch_heatmaps(bgr, out)),
    }
    for suffix, (enabled, make) in wanted.items():
        if not enabled:
            continue
        image = make()
        cv2.imwrite(f"{prefix}_{suffix}.jpg", image)
        if tensorboard is not None:
            tensorboard.image(f"{tag}/{suffix}", image[..., ::-1].copy(), step)


def as_numpy(x: Any) -> np.ndarray:
    """A tensor (any device) or array-like as a numpy array."""
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
