"""`PoseResult`: what the inference API returns for one image, as plain numpy arrays in image pixels.

Shapes (N persons, K keypoints): keypoints [N,K,2] float32 (never zeroed for low confidence: thresholds are a drawing
or export decision), scores [N,K] float32 (heatmap maxima), boxes [N,4] float32 x1,y1,x2,y2, box_scores [N] float32,
centers / scales [N,2] float32 (the crop boxes, official convention), track_ids [N] int64 or None, heatmaps
[N,K,h,w] float32 or None (only when asked for), heatmap_to_image [N,2,3] or None, timings {stage: ms}, frame (the
source's `Frame` for results of `PoseEstimator.stream`, else None).
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

from ..evaluation.oks_nms import rescore
from ..geometry import xyxy_to_xywh
from ..keypoints import COCO17, KeypointSet


def _empty(k: int) -> Dict[str, np.ndarray]:
    return {"keypoints": np.zeros((0, k, 2), np.float32), "scores": np.zeros((0, k), np.float32),
            "boxes": np.zeros((0, 4), np.float32), "box_scores": np.zeros((0,), np.float32),
            "centers": np.zeros((0, 2), np.float32), "scales": np.zeros((0, 2), np.float32)}


@dataclass
class PoseResult:
    keypoints: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    box_scores: np.ndarray
    centers: np.ndarray
    scales: np.ndarray
    keypoint_set: KeypointSet = COCO17
    track_ids: Optional[np.ndarray] = None
    heatmaps: Optional[np.ndarray] = None
    heatmap_to_image: Optional[np.ndarray] = None
    timings: Dict[str, float] = field(default_factory=dict)
    frame: Any = None  # the `streams.sources.Frame` (index, timestamp, image) when it came from `estimator.stream`

    @classmethod
    def empty(cls, keypoint_set: KeypointSet = COCO17, timings: Optional[Dict[str, float]] = None) -> "PoseResult":
        return cls(**_empty(keypoint_set.num_keypoints), keypoint_set=keypoint_set, timings=dict(timings or {}))

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])

    def instance_scores(self, in_vis_thre: float = 0.2) -> np.ndarray:
        """Per-person score as the COCO evaluation rescores it: box score x mean keypoint score above the threshold."""
        if len(self) == 0:
            return np.zeros(0, np.float64)
        return rescore(self.box_scores, self.scores, in_vis_thre)

    def to_coco(self, image_id: Any, in_vis_thre: float = 0.2, decimals: Optional[int] = None) -> List[Dict[str, Any]]:
        """COCO keypoint results entries (`loadRes` format) for this image, one per person, no NMS: the one
        serialisation of a result, used by predictions.json and by a stream's JSON lines alike.

        keypoints: [x1, y1, s1, x2, y2, s2, ...] (COCO's flat triplets, score = heatmap maximum); score: the person
        score as COCO evaluation rescores it; bbox: the person box as COCO writes it, [x, y, w, h] (w = x2 - x1), so
        the file can be given back as `--boxes`; box_score: the detector's (or given) box score; track_id when
        tracking. `decimals` rounds coordinates to that many places and scores to two more (compact JSON lines)."""
        kpts = np.concatenate([self.keypoints, self.scores[..., None]], axis=2).astype(np.float64)
        person_scores = self.instance_scores(in_vis_thre)
        boxes = np.asarray([xyxy_to_xywh(b) for b in self.boxes], np.float64).reshape(-1, 4)
        box_scores = np.asarray(self.box_scores, np.float64)
        if decimals is not None:
            kpts[..., :2] = np.round(kpts[..., :2], decimals)
            kpts[..., 2] = np.round(kpts[..., 2], decimals + 2)
            boxes, box_scores = np.round(boxes, decimals), np.round(box_scores, decimals + 2)
            person_scores = np.round(person_scores, decimals + 2)
        flat = kpts.reshape(len(self), 3 * self.keypoints.shape[1])
        out = []
        for i in range(len(self)):
            entry = {"image_id": image_id, "category_id": 1, "keypoints": flat[i].tolist(),
                     "score": float(person_scores[i]), "bbox": boxes[i].tolist(), "box_score": float(box_scores[i])}
            if self.track_ids is not None:
                entry["track_id"] = int(self.track_ids[i])
            out.append(entry)
        return out

    def plot(self, image: np.ndarray, kpt_thr: float = 0.3, draw_bbox: bool = False, draw_heatmap: bool = False,
             **kwargs: Any) -> np.ndarray:
        """A copy of the BGR `image` with this result drawn (see `hrnet_pose.visualization.draw_poses`)."""
        from .. import visualization

        canvas = image
        if draw_heatmap and self.heatmaps is not None and len(self):
            canvas = visualization.overlay_heatmaps(canvas, self.heatmaps, self.heatmap_to_image)
        return visualization.draw_poses(
            canvas, self.keypoints, self.scores, self.keypoint_set, kpt_thr=kpt_thr, boxes=self.boxes,
            box_scores=self.box_scores, track_ids=self.track_ids, draw_bbox=draw_bbox,
            copy=canvas is image, **kwargs)

    def select(self, index: np.ndarray) -> "PoseResult":
        """The persons at `index` (a boolean mask or integer indices), timings kept."""
        def pick(a):
            return None if a is None else a[index]

        return PoseResult(self.keypoints[index], self.scores[index], self.boxes[index], self.box_scores[index],
                          self.centers[index], self.scales[index], self.keypoint_set, pick(self.track_ids),
                          pick(self.heatmaps), pick(self.heatmap_to_image), dict(self.timings), self.frame)
