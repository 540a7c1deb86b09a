"""Pose estimation over a stream of frames: the detector runs only when needed, boxes are carried from the last poses
in between, OKS-NMS removes carried duplicates, and track ids stay stable (`tracking.PoseTracker`, optional One Euro
smoothing).

When the detector runs on the whole frame:
- on the schedule, every `det_interval` frames (0, N, 2N, ...), to find people who have come into view;
- on the first frame;
- with `max_persons=1`, the way MediaPipe's pose tracker works: at the start and on every frame while nobody is
  tracked, never on a schedule; only the best-scoring person is kept.

A person is lost when its pose is unreliable (mean keypoint score under `min_pose_score`: the carried box has slid
off the person onto background, or the person is hidden) or its box cannot be carried (the box's centre has left
the frame, or no keypoint is finite). A lost person is not an error and does not bring back the full-frame detector:
when a carried box lost it, on the next frame off the schedule the detector looks once in the region around its last
box (twice the box, in the frame's shape, zoomed to the frame's size so that a detector exported per frame size is
reused and a small person gets more pixels); a person not found there, or found by the detector with a pose that
still fails, waits for the next scheduled detection, and the tracker (`max_age`) gives it its old id back.

The frames in between reuse boxes fitted around the previous frame's confident keypoints (`tracking.boxes_from_poses`),
which follow a moving person as long as it moves less than the box padding per frame. Every carried box is valid: at
least half and at most twice the width and height of the person's last detected box (`CARRY_MIN_SHARE`,
`MIN_CARRY_PX`, `CARRY_MAX_SHARE`), clipped to the frame; two confident joints on one row no longer make a box of zero
height, and a pose with fewer than two confident joints keeps the box it was found in (held). `check_boxes` stays
strict for boxes a user gives. Two carried boxes that converge on the same person (crossing people) produce
near-identical poses; OKS-NMS keeps the better one.

`StreamPoseEstimator.process(image, timestamp)` -> `PoseResult` with `track_ids` [N] (when tracking; -1 for an
unreliable pose in a carried box) and smoothed keypoints (when smoothing); `timings["detect"]` is 0 on carried frames.
`detector_calls` counts the detector's runs (`region_calls` of them on a lost person's region), `frames_processed`
the frames. A pipeline may run the detector ahead on another thread for the frames `scheduled_detection` names and
hand the boxes to `process(..., detections=..., scheduled=True)`: the results are the same.
"""

import threading
from typing import Any, Optional, Tuple

import cv2
import numpy as np

from ..evaluation.oks_nms import oks_nms
from ..streams.tracking import PoseTracker, boxes_from_poses, iou_matrix
from .images import ImageInput, as_bgr_image
from .images import timed as _timed
from .result import PoseResult

# The demo's drawing threshold: a pose with most keypoints under it is not worth carrying. Models differ in what they
# answer on background: the synthetic quickstart model gives a mean of ~0.96 on its figures and ~0.35 on background
# (its tests use 0.5), so the right value is the model's; `--min-pose-score` sets it.
DEFAULT_MIN_POSE_SCORE = 0.3

Detections = Tuple[np.ndarray, np.ndarray]

# A carried box is at least this share of the width and height of the person's last detected box (and MIN_CARRY_PX):
# the confident joints of a half-hidden person (two eyes on one row) span far less than the person.
CARRY_MIN_SHARE = 0.5
MIN_CARRY_PX = 8.0
# ... and at most this multiple of it: a box around scattered guesses would otherwise grow by the padding every frame
CARRY_MAX_SHARE = 2.0
SEARCH_SCALE = 2.0  # the region searched for a lost person: its last box scaled by this about the centre
SEARCH_IOU_THR = 0.5  # a detection in the region overlapping a carried box this much is that person, not the lost one


class StreamPoseEstimator:
    """Wraps a `PoseEstimator` (`estimator`, whose `detector` is used when needed, see the module docstring) for videos
    and live streams. `max_persons`: keep at most this many persons per frame (1 = single-person tracking, no scheduled
    detection); `min_pose_score`: mean keypoint score under which a pose counts as lost; `detect_on_loss=False`
    drops a lost pose's box without searching its region (the detector then runs on the schedule only, and in
    single-person mode while nobody is tracked)."""

    def __init__(self, estimator: Any, det_interval: int = 1, tracker: Optional[PoseTracker] = None,
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
        self._carried: Optional[np.ndarray] = None  # [M, 4] boxes for the next frame
        self._carried_scores = np.zeros(0, np.float32)
        self._carried_ref = np.zeros((0, 2))  # [M, 2] width, height of each person's last detected box
        self._search = np.zeros((0, 4))  # last boxes of persons lost on the previous frame
        self.detector_calls = 0
        self.region_calls = 0
        if self.tracker is not None:
            self.tracker.reset()

    @property
    def frames_processed(self) -> int:
        """Frames through `process` since the last `reset()`."""
        return self._count

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

    def _carry(self, result: PoseResult, ref: np.ndarray, detected: np.ndarray, image_shape) -> None:
        """The boxes for the next frame from this frame's poses; the boxes of persons a carried box lost, for a
        region search (a person the detector has just found but whose pose fails is not searched for again there:
        it waits for the schedule, so a pose that never holds does not bring a detection on every frame)."""
        h, w = image_shape[:2]
        min_size = np.maximum(CARRY_MIN_SHARE * ref, MIN_CARRY_PX)
        boxes = boxes_from_poses(result.keypoints, result.scores, self.carry_kpt_thr, (w, h), min_size=min_size,
                                 max_size=CARRY_MAX_SHARE * ref, hold=result.boxes).astype(np.float32)
        # NaN rows (no finite keypoint, or the centre left the frame) and, defensively, anything check_boxes refuses
        ok = np.isfinite(boxes).all(axis=1) & self._reliable(result)
        ok[ok] &= (boxes[ok, 2] > boxes[ok, 0]) & (boxes[ok, 3] > boxes[ok, 1])
        lost = ~ok & ~detected
        self._search = result.boxes[lost].astype(np.float64) if self.detect_on_loss else np.zeros((0, 4))
        keep = np.flatnonzero(ok)[: self.max_carried]
        self._carried = boxes[keep]
        self._carried_scores = result.box_scores[keep]
        self._carried_ref = ref[keep]

    def _duplicates_kept(self, result: PoseResult) -> np.ndarray:
        """Indices of the poses OKS-NMS keeps (carried boxes that converged on one person)."""
        if len(result) < 2:
            return np.arange(len(result))
        kpts = np.concatenate([result.keypoints, result.scores[..., None]], axis=2)
        areas = np.prod(result.scales * 200.0, axis=1)
        keep = oks_nms(kpts, result.instance_scores(), areas, self.carry_nms_thr,
                       sigmas=self.estimator.keypoint_set.sigmas)
        return np.sort(np.asarray(keep, dtype=np.int64))

    def _best_kept(self, result: PoseResult) -> np.ndarray:
        if self.max_persons is None or len(result) <= self.max_persons:
            return np.arange(len(result))
        return np.sort(np.argsort(-result.instance_scores(), kind="stable")[: self.max_persons])

    def _detect_in_regions(self, image: np.ndarray) -> Detections:
        """The detector on the region around the lost persons' last boxes, zoomed to the frame's size; detections
        whose centre is in the region and that are not a carried person already, in frame pixels."""
        h, w = image.shape[:2]
        lo, hi = self._search[:, :2].min(axis=0), self._search[:, 2:].max(axis=0)
        centre, size = (lo + hi) / 2, (hi - lo) * SEARCH_SCALE
        rw = max(size[0], size[1] * w / h, 1.0)
        self.region_calls += 1
        if rw >= w:
            boxes, scores = self.detect(image)
            x0, y0, rw, rh = 0.0, 0.0, float(w), float(h)
        else:
            rh = rw * h / w
            x0 = float(np.clip(centre[0] - rw / 2, 0, w - rw))
            y0 = float(np.clip(centre[1] - rh / 2, 0, h - rh))
            zoom = w / rw
            warp = np.array([[zoom, 0, -zoom * x0], [0, zoom, -zoom * y0]], np.float64)
            boxes, scores = self.detect(cv2.warpAffine(image, warp, (w, h), flags=cv2.INTER_LINEAR))
            boxes = boxes / zoom + np.array([x0, y0, x0, y0])
        boxes = np.clip(boxes, 0, np.array([w, h, w, h], np.float64))
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        keep = (centres[:, 0] >= x0) & (centres[:, 0] <= x0 + rw) & (centres[:, 1] >= y0) & (centres[:, 1] <= y0 + rh)
        keep &= (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        if self._carried is not None and len(self._carried) and len(boxes):
            keep &= iou_matrix(boxes, self._carried.astype(np.float64)).max(axis=1) < SEARCH_IOU_THR
        return boxes[keep], scores[keep]

    def _boxes_now(self, image: np.ndarray, detections: Optional[Detections], scheduled: Optional[bool]):
        """(boxes, scores, reference sizes, detect ms, detected [N] or True) for this frame: the detector on the
        whole frame (or `detections` run ahead for it) when due, else the carried boxes and those found around a
        lost person. Boxes None = the whole image (no detector); reference sizes None = the boxes' own."""
        if scheduled is None:
            scheduled = self.scheduled_detection(self._count)
        nobody = self._carried is None or (self.single_person and len(self._carried) == 0)
        timings = {"detect": 0.0}
        if not (scheduled or nobody):
            boxes, scores, ref = self._carried, self._carried_scores, self._carried_ref
            detected = np.zeros(len(boxes), bool)
            if len(self._search) and self.estimator.detector is not None:
                with _timed(timings, "detect"):
                    found, found_scores = self._detect_in_regions(image)
                boxes = np.concatenate([boxes, found.astype(np.float32)])
                scores = np.concatenate([scores, found_scores])
                ref = np.concatenate([ref, found[:, 2:] - found[:, :2]])
                detected = np.concatenate([detected, np.ones(len(found), bool)])
            self._search = np.zeros((0, 4))
            return boxes, scores, ref, timings["detect"], detected
        self._search = np.zeros((0, 4))
        if self.estimator.detector is None:
            return None, None, None, 0.0, True
        if detections is None:
            with _timed(timings, "detect"):
                detections = self.detect(image)
        return detections[0], detections[1], None, timings["detect"], True

    def process(self, image: ImageInput, timestamp: float, boxes=None, box_scores=None,
                flip_test: Optional[bool] = None, return_heatmaps: bool = False,
                detections: Optional[Detections] = None, scheduled: Optional[bool] = None) -> PoseResult:
        """Poses in one frame: an array or an image path, as `PoseEstimator` takes. `boxes` (e.g. from a detection
        file) override both the detector and carried boxes; `flip_test` overrides the estimator's, as in
        `PoseEstimator.__call__`; `detections` are the detector's output for this frame when it was run ahead
        (used only when this frame is detected); `scheduled` says whether this frame is a scheduled detection
        (default: `scheduled_detection` of this stream's frame count; a pipeline that numbers frames itself says)."""
        image = as_bgr_image(image)
        ref = None
        if boxes is None:
            boxes, box_scores, ref, detect_ms, detected = self._boxes_now(image, detections, scheduled)
        else:
            detect_ms, detected = 0.0, True
        self._count += 1
        result = self.estimator(image, boxes=boxes, box_scores=box_scores, flip_test=flip_test,
                                return_heatmaps=return_heatmaps)
        result.timings["detect"] = result.timings.get("detect", 0.0) + detect_ms
        detected = np.broadcast_to(np.asarray(detected, bool), (len(result),))
        if ref is None or len(ref) != len(result):  # detected boxes (or the whole image) are their own reference
            ref = (result.boxes[:, 2:] - result.boxes[:, :2]).astype(np.float64)
        if not detected.all():
            keep = self._duplicates_kept(result)
            result, ref, detected = result.select(keep), ref[keep], detected[keep]
        keep = self._best_kept(result)
        result, ref, detected = result.select(keep), ref[keep], detected[keep]
        self._carry(result, ref, detected, image.shape)
        if self.tracker is not None:
            self._track(result, float(timestamp), detected)
        return result

    def _track(self, result: PoseResult, timestamp: float, detected: np.ndarray) -> None:
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
