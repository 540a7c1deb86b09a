"""A person detector for the synthetic stick-figure scenes (`datasets.synthetic`), for tests and long runs that need
a detector which looks at the pixels (a zoomed region, an occluded figure) without downloading detector weights.

The figures' limbs are drawn in saturated colours (channel spread max - min of 150-255) on a muted background (spread
under ~70, see `synthetic._background`), so: pixels with a spread over `spread_thr` -> closed with a kernel of `join`
x the image height to join a figure's limbs across its unsaturated torso (a figure spans about half the frame in the
scenes it is used on, and about as much of a region zoomed to the frame's size) -> connected components of at least
`min_area` pixels -> their bounding boxes, padded by `pad` of their size (the head and torso are not saturated). Two
figures that touch give one box.

Contract as every detector: `detector(image BGR uint8 [H, W, 3]) -> (boxes float32 [N, 4] x1, y1, x2, y2,
scores float32 [N])`, largest first; the score is the share of saturated pixels in the box, in (0, 1].
"""

from typing import Tuple

import cv2
import numpy as np


class SyntheticFigureDetector:
    """Boxes around the saturated limbs of the synthetic figures (see module docstring)."""

    def __init__(self, spread_thr: int = 110, join: float = 0.2, min_area: int = 40, pad: float = 0.15) -> None:
        self.spread_thr, self.join, self.min_area, self.pad = int(spread_thr), float(join), int(min_area), pad

    def __call__(self, image: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        img = np.asarray(image)
        spread = img.max(axis=2).astype(np.int16) - img.min(axis=2)
        h, w = img.shape[:2]
        # joined at a quarter of the resolution: the closing kernel is a sixth of the frame, slow at full size
        mask = cv2.resize((spread > self.spread_thr).astype(np.uint8), (max(1, w // 4), max(1, h // 4)),
                          interpolation=cv2.INTER_AREA)
        k = max(3, int(round(self.join * h / 4)) | 1)
        mask = cv2.morphologyEx((mask > 0).astype(np.uint8), cv2.MORPH_CLOSE, np.ones((k, k), np.uint8))
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        stats = stats.astype(np.float64) * np.array([w / mask.shape[1], h / mask.shape[0]] * 2 + [16.0])
        boxes, scores = [], []
        for x, y, bw, bh, area in stats[1:count]:
            if area < self.min_area:
                continue
            px, py = self.pad * bw, self.pad * bh
            boxes.append([max(x - px, 0), max(y - py, 0), min(x + bw + px, w), min(y + bh + py, h)])
            scores.append(min(1.0, area / (bw * bh)))
        if not boxes:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        boxes_arr, scores_arr = np.asarray(boxes, np.float32), np.asarray(scores, np.float32)
        order = np.argsort(-(boxes_arr[:, 2] - boxes_arr[:, 0]) * (boxes_arr[:, 3] - boxes_arr[:, 1]), kind="stable")
        return boxes_arr[order], scores_arr[order]
