"""Pose estimation over a stream of frames: detection every N frames, boxes carried from the last poses in between,
OKS-NMS of carried duplicates, stable track ids and optional One Euro smoothing (`tracking.PoseTracker`).

The official demo runs the detector on every frame; here the detector runs on frames 0, N, 2N, ... and the frames in
between reuse boxes fitted around the previous frame's confident keypoints (`tracking.boxes_from_poses`), which
follow a moving person as long as it moves less than the box padding per frame. Two carried boxes that converge on
the same person (crossing people) produce near-identical poses; OKS-NMS keeps the better one.

`StreamPoseEstimator.process(image, timestamp)` -> `PoseResult` with `track_ids` [N] (when tracking) and smoothed
keypoints (when smoothing); timings gain no new stages (detection time is 0 on carried frames).
"""

from typing import Optional

import numpy as np

from ..evaluation.oks_nms import oks_nms
from ..streams.tracking import PoseTracker, boxes_from_poses
from .estimator import ImageInput, PoseEstimator, as_bgr_image
from .result import PoseResult


class StreamPoseEstimator:
    """Wraps a `PoseEstimator` (whose `detector` is used every `det_interval` frames) for videos and live streams."""

    def __init__(self, estimator: PoseEstimator, det_interval: int = 1, tracker: Optional[PoseTracker] = None,
                 carry_kpt_thr: float = 0.3, carry_nms_thr: float = 0.9, max_carried: int = 100) -> None:
        if det_interval < 1:
            raise ValueError(f"det_interval must be >= 1 (1 = detect on every frame), got {det_interval}")
        self.estimator = estimator
        self.det_interval = int(det_interval)
        self.tracker = tracker
        self.carry_kpt_thr = float(carry_kpt_thr)
        self.carry_nms_thr = float(carry_nms_thr)
        self.max_carried = int(max_carried)
        self.reset()

    def reset(self) -> None:
        self._count = 0
        self._carried: Optional[np.ndarray] = None
        self._carried_scores: Optional[np.ndarray] = None
        if self.tracker is not None:
            self.tracker.reset()

    def _carry(self, result: PoseResult, image_shape) -> None:
        h, w = image_shape[:2]
        boxes = boxes_from_poses(result.keypoints, result.scores, self.carry_kpt_thr, (w, h))
        ok = np.isfinite(boxes).all(axis=1)
        self._carried = boxes[ok][: self.max_carried].astype(np.float32)
        self._carried_scores = result.box_scores[ok][: self.max_carried]

    def _suppress_duplicates(self, result: PoseResult) -> PoseResult:
        if len(result) < 2:
            return result
        kpts = np.concatenate([result.keypoints, result.scores[..., None]], axis=2)
        areas = np.prod(result.scales * 200.0, axis=1)
        keep = oks_nms(kpts, result.instance_scores(), areas, self.carry_nms_thr,
                       sigmas=self.estimator.keypoint_set.sigmas)
        return result.select(np.sort(np.asarray(keep, dtype=np.int64)))

    def process(self, image: ImageInput, timestamp: float, boxes=None, box_scores=None,
                flip_test: Optional[bool] = None, return_heatmaps: bool = False) -> PoseResult:
        """Poses in one frame: an array or an image path, as `PoseEstimator` takes. `boxes` (e.g. from a detection
        file) override both the detector and carried boxes; `flip_test` overrides the estimator's, as in
        `PoseEstimator.__call__`."""
        image = as_bgr_image(image)
        detect_now = self._count % self.det_interval == 0 or self._carried is None or len(self._carried) == 0
        self._count += 1
        if boxes is not None or detect_now:
            result = self.estimator(image, boxes=boxes, box_scores=box_scores, flip_test=flip_test,
                                    return_heatmaps=return_heatmaps)
        else:
            result = self.estimator(image, boxes=self._carried, box_scores=self._carried_scores,
                                    flip_test=flip_test, return_heatmaps=return_heatmaps)
            result.timings["detect"] = 0.0
            result = self._suppress_duplicates(result)
        self._carry(result, image.shape)
        if self.tracker is not None:  # also with no person, so lost tracks age
            ids, kpts = self.tracker.update(result.keypoints, result.scores, result.boxes, float(timestamp))
            result.track_ids = np.asarray(ids, dtype=np.int64)
            result.keypoints = np.asarray(kpts, dtype=np.float32)
        return result
