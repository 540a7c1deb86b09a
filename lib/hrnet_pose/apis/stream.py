"""Pose estimation over a stream of frames: the detector runs only when needed, boxes are carried from the last poses
in between, OKS-NMS removes carried duplicates, and track ids stay stable (`tracking.PoseTracker`, optional One Euro
smoothing).

When the detector runs:
- on the schedule, every `det_interval` frames (0, N, 2N, ...), to find people who have come into view;
- on the frame after a person was lost: a pose whose mean keypoint score is under `min_pose_score` (the carried box
  has slid off the person onto background) or whose box has left the frame is not carried on, and the next frame
  is detected so that the person is found again;
- whenever nobody is carried.
With `max_persons=1` the stream tracks one person the way MediaPipe's pose tracker does: the detector runs at the
start and when the track is lost, never on a schedule, and only the best-scoring person is kept.

The frames in between reuse boxes fitted around the previous frame's confident keypoints (`tracking.boxes_from_poses`),
which follow a moving person as long as it moves less than the box padding per frame. Two carried boxes that converge
on the same person (crossing people) produce near-identical poses; OKS-NMS keeps the better one.

`StreamPoseEstimator.process(image, timestamp)` -> `PoseResult` with `track_ids` [N] (when tracking; -1 for an
unreliable pose in a carried box) and smoothed keypoints (when smoothing); `timings["detect"]` is 0 on carried frames.
`detector_calls` counts the detector's runs. A pipeline may run the detector ahead on another thread for the frames
`scheduled_detection` names and hand the boxes to `process(..., detections=...)`: the results are the same.
"""

import threading
from typing import Optional, Tuple

import numpy as np

from ..evaluation.oks_nms import oks_nms
from ..streams.tracking import PoseTracker, boxes_from_poses
from .estimator import ImageInput, PoseEstimator, _timed, as_bgr_image
from .result import PoseResult

# The demo's drawing threshold: a pose with most keypoints under it is not worth carrying. Models differ in what they
# answer on background: the synthetic quickstart model gives a mean of ~0.96 on its figures and ~0.35 on background
# (its tests use 0.5), so the right value is the model's; `--min-pose-score` sets it.
DEFAULT_MIN_POSE_SCORE = 0.3

Detections = Tuple[np.ndarray, np.ndarray]


class StreamPoseEstimator:
    """Wraps a `PoseEstimator` (whose `detector` is used when needed, see the module docstring) for videos and live
    streams. `max_persons`: keep at most this many persons per frame (1 = single-person tracking, no scheduled
    detection); `min_pose_score`: mean keypoint score under which a pose counts as lost; `detect_on_loss=False`
    drops a lost pose's box without an extra detection (the detector then runs on the schedule only, and when nobody
    is left to carry)."""

    def __init__(self, estimator: PoseEstimator, det_interval: int = 1, tracker: Optional[PoseTracker] = None,
                 carry_kpt_thr: float = 0.3, carry_nms_thr: float = 0.9, max_carried: int = 100,
                 min_pose_score: float = DEFAULT_MIN_POSE_SCORE, max_persons: Optional[int] = None,
                 detect_on_loss: bool = True) -> None:
        if det_interval < 1:
            raise ValueError(f"det_interval must be >= 1 (1 = detect on every frame), got {det_interval}")
        if max_persons is not None and max_persons < 1:
            raise ValueError(f"max_persons must be >= 1 (1 = single-person tracking) or None, got {max_persons}")
        self.estimator = estimator
        self.det_interval = int(det_interval)
        self.tracker = tracker
        self.carry_kpt_thr = float(carry_kpt_thr)
        self.carry_nms_thr = float(carry_nms_thr)
        self.max_persons = None if max_persons is None else int(max_persons)
        self.max_carried = int(max_carried) if max_persons is None else min(int(max_carried), self.max_persons)
        self.min_pose_score = float(min_pose_score)
        self.detect_on_loss = bool(detect_on_loss)
        self._calls_lock = threading.Lock()  # a pipeline's detect thread and the pose thread both count
        self.reset()

    @property
    def single_person(self) -> bool:
        return self.max_persons == 1

    def reset(self) -> None:
        self._count = 0
        self._carried: Optional[np.ndarray] = None
        self._carried_scores: Optional[np.ndarray] = None
        self._lost = False
        self.detector_calls = 0
        if self.tracker is not None:
            self.tracker.reset()

    def scheduled_detection(self, frame_number: int) -> bool:
        """Whether frame `frame_number` (0-based count of processed frames) is detected on the schedule; a pipeline
        may run the detector for these frames ahead of time. Single-person mode has no schedule."""
        return not self.single_person and frame_number % self.det_interval == 0

    def detect(self, image: np.ndarray) -> Detections:
        """The estimator's detector on one BGR image -> (boxes [N, 4] xyxy, scores [N]); counted in
        `detector_calls`; safe to call from another thread than `process`."""
        with self._calls_lock:
            self.detector_calls += 1
        boxes, scores = self.estimator.detector(image)
        return np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float32).reshape(-1)

    def _reliable(self, result: PoseResult) -> np.ndarray:
        """[N] bool: poses good enough to carry on and to update a track."""
        return result.scores.mean(axis=1) >= self.min_pose_score if len(result) else np.zeros(0, bool)

    def _carry(self, result: PoseResult, image_shape) -> None:
        h, w = image_shape[:2]
        boxes = boxes_from_poses(result.keypoints, result.scores, self.carry_kpt_thr, (w, h))
        # NaN rows: fewer than 2 confident keypoints, or the box lies outside the frame
        ok = np.isfinite(boxes).all(axis=1) & self._reliable(result)
        if len(result):
            centres = (result.keypoints.min(axis=1) + result.keypoints.max(axis=1)) / 2
            ok &= (centres >= 0).all(axis=1) & (centres[:, 0] < w) & (centres[:, 1] < h)  # leaving the frame
        self._lost = self.detect_on_loss and bool((~ok).any())
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

    def _keep_best(self, result: PoseResult) -> PoseResult:
        if self.max_persons is None or len(result) <= self.max_persons:
            return result
        order = np.argsort(-result.instance_scores(), kind="stable")[: self.max_persons]
        return result.select(np.sort(order))

    def _boxes_now(self, image: np.ndarray, detections: Optional[Detections]):
        """(boxes, scores, detect ms, detected) for this frame: detector (or `detections` run ahead for it) when
        needed, else the carried boxes. Boxes None = the whole image (no detector)."""
        detect_now = self.scheduled_detection(self._count) or self._lost or self._carried is None \
            or len(self._carried) == 0
        if not detect_now:
            return self._carried, self._carried_scores, 0.0, False
        if self.estimator.detector is None:
            return None, None, 0.0, True
        timings = {"detect": 0.0}
        if detections is None:
            with _timed(timings, "detect"):
                detections = self.detect(image)
        return detections[0], detections[1], timings["detect"], True

    def process(self, image: ImageInput, timestamp: float, boxes=None, box_scores=None,
                flip_test: Optional[bool] = None, return_heatmaps: bool = False,
                detections: Optional[Detections] = None) -> PoseResult:
        """Poses in one frame: an array or an image path, as `PoseEstimator` takes. `boxes` (e.g. from a detection
        file) override both the detector and carried boxes; `flip_test` overrides the estimator's, as in
        `PoseEstimator.__call__`; `detections` are the detector's output for this frame when it was run ahead
        (used only when this frame is detected, see `scheduled_detection`)."""
        image = as_bgr_image(image)
        if boxes is None:
            boxes, box_scores, detect_ms, detected = self._boxes_now(image, detections)
        else:
            detect_ms, detected = 0.0, True
        self._count += 1
        result = self.estimator(image, boxes=boxes, box_scores=box_scores, flip_test=flip_test,
                                return_heatmaps=return_heatmaps)
        result.timings["detect"] = result.timings.get("detect", 0.0) + detect_ms
        if not detected:
            result = self._suppress_duplicates(result)
        result = self._keep_best(result)
        self._carry(result, image.shape)
        if self.tracker is not None:
            self._track(result, float(timestamp), detected)
        return result

    def _track(self, result: PoseResult, timestamp: float, detected: bool) -> None:
        """Track ids (and smoothed keypoints) for detected and reliable poses; an unreliable pose in a carried box (the
        box has slid onto background) gets id -1 and leaves the tracks as they were, so it cannot drag a track away.
        Runs with no person too, so lost tracks age."""
        ok = self._reliable(result) | detected
        ids = np.full(len(result), -1, dtype=np.int64)
        kpts = result.keypoints.copy()
        got_ids, got_kpts = self.tracker.update(result.keypoints[ok], result.scores[ok], result.boxes[ok], timestamp)
        ids[ok] = got_ids
        kpts[ok] = got_kpts
        result.track_ids = ids
        result.keypoints = np.asarray(kpts, dtype=np.float32)
