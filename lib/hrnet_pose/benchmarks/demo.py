"""Side-by-side timing of the video demo: the official HRNet demo's way against ours, on the same frames, same run.

The official `demo/inference.py` runs Faster R-CNN on every frame and the pose network on one person at a time.
Ours batches every person of a frame into one forward pass and, with `det_interval` N > 1, runs the detector every N
frames and carries boxes from the poses in between (`apis.stream`). Both modes share the detector, the pose model,
the crop and the decoder, so the difference is the schedule alone. Per mode: mean ms per frame of detect, pose
(crop + network + decode), draw, and the resulting FPS.

`synthetic_720p_video(num_frames, num_people)` makes a 1280x720 clip of walking stick figures when no video is given.
"""

import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from ..apis.estimator import PoseEstimator
from ..apis.stream import StreamPoseEstimator
from ..streams.tracking import PoseTracker


def synthetic_720p_video(num_frames: int = 30, num_people: int = 6, seed: int = 0) -> np.ndarray:
    """[T, 720, 1280, 3] uint8 frames of `num_people` figures walking across each other."""
    from ..datasets.synthetic import synthetic_video

    frames, _ = synthetic_video(num_frames, (1280, 720), num_people=num_people, seed=seed, height=0.45)
    return frames


def _run_mode(estimator: PoseEstimator, frames: Sequence[np.ndarray], det_interval: int, track: bool,
              draw: Optional[Callable[[Any, np.ndarray], np.ndarray]], carry_kpt_thr: float) -> Dict[str, float]:
    tracker = PoseTracker(estimator.keypoint_set.sigmas) if track else None
    # this benchmark times the det_interval schedule itself: random weights give low (even negative) keypoint scores
    # and degenerate poses, which would count as lost and bring extra detections
    stream = StreamPoseEstimator(estimator, det_interval=det_interval, tracker=tracker, carry_kpt_thr=carry_kpt_thr,
                                 min_pose_score=float("-inf"), detect_on_loss=False)
    totals = {"detect": 0.0, "pose": 0.0, "draw": 0.0}
    persons = 0
    start = time.perf_counter()
    for i, frame in enumerate(frames):
        result = stream.process(frame, i / 30.0)
        t = result.timings
        totals["detect"] += t.get("detect", 0.0)
        totals["pose"] += t.get("preprocess", 0.0) + t.get("pose", 0.0) + t.get("decode", 0.0)
        if draw is not None:
            t0 = time.perf_counter()
            draw(result, frame)
            totals["draw"] += (time.perf_counter() - t0) * 1000
        persons += len(result)
    wall = time.perf_counter() - start
    out = {k: v / len(frames) for k, v in totals.items()}
    out.update(persons_per_frame=persons / len(frames), fps=len(frames) / wall, frames=len(frames))
    return out


def compare_demo_modes(estimator: PoseEstimator, frames: Sequence[np.ndarray], det_interval: int = 5,
                       warmup: int = 2, draw: bool = True, carry_kpt_thr: float = 0.3) -> List[Dict[str, Any]]:
    """Time the official schedule and ours on `frames` (the estimator's detector is used by both).

    Rows: 'official (detector every frame, 1 person per forward)', 'ours, detector every frame (batched persons)',
    'ours, detector every N frames (batched, tracked)'. The first `warmup` frames of each mode are run untimed.
    """
    if estimator.detector is None:
        raise ValueError("compare_demo_modes needs an estimator with a detector (both schedules run it)")

    def plot(result, frame):
        return result.plot(frame)

    painter = plot if draw else None
    modes = [("official: detector every frame, 1 person per forward", 1, 1, False),
             ("ours: detector every frame, persons batched", estimator.max_batch, 1, False),
             (f"ours: detector every {det_interval} frames, persons batched, tracking", estimator.max_batch,
              det_interval, True)]
    rows = []
    saved = estimator.max_batch
    try:
        for name, max_batch, interval, track in modes:
            estimator.max_batch = max_batch
            if warmup:
                _run_mode(estimator, frames[:warmup], interval, track, None, carry_kpt_thr)
            row = _run_mode(estimator, frames, interval, track, painter, carry_kpt_thr)
            row["mode"] = name
            rows.append(row)
    finally:
        estimator.max_batch = saved
    return rows


def format_demo_table(rows: List[Dict[str, Any]]) -> str:
    lines = ["| mode | detect ms | pose ms | draw ms | persons/frame | FPS |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['mode']} | {r['detect']:.0f} | {r['pose']:.0f} | {r['draw']:.1f} | "
                     f"{r['persons_per_frame']:.1f} | {r['fps']:.2f} |")
    return "\n".join(lines)


class ClipBoxes:
    """A detector stand-in for timing: runs the real detector network on the frame (random weights cost what trained
    ones cost), then returns the clip's known boxes for that frame, found by a few of its pixels: `frames` are the
    clip's frames as the caller will pass them (for a video file, decoded from it ahead), so both schedules see the
    same persons."""

    def __init__(self, detector: Any, frames: Sequence[np.ndarray], boxes: Sequence[np.ndarray]) -> None:
        self.detector = detector
        self.index = {self._key(f): i for i, f in enumerate(frames)}
        self.boxes = boxes

    @staticmethod
    def _key(image: np.ndarray) -> bytes:
        return np.ascontiguousarray(image[::37, ::41]).tobytes()

    def __call__(self, image: np.ndarray):
        self.detector(image)
        boxes = self.boxes[self.index[self._key(image)]]
        return boxes, np.ones(len(boxes), np.float32)


def run_demo_benchmark(cfg: Any, det_model: str = "fasterrcnn", num_frames: int = 12, num_people: int = 6,
                       det_interval: int = 5, device: str = "cpu", flip_test: bool = False) -> List[Dict[str, Any]]:
    """The three schedules on a synthetic 720p clip with `num_people` walking figures: random pose weights (timing
    only), the torchvision detector `det_model` with random weights, the clip's ground-truth boxes."""
    from ..datasets.synthetic import synthetic_video
    from ..apis.detectors import PersonDetector

    frames, kpts = synthetic_video(num_frames, (1280, 720), num_people=num_people, seed=0, height=0.45, spread=0.08)
    lo, hi = kpts.min(axis=2), kpts.max(axis=2)
    boxes = [np.concatenate([lo[t] - 10, hi[t] + 10], axis=1) for t in range(num_frames)]
    frame_list = list(frames)
    detector = ClipBoxes(PersonDetector(det_model, device=device, pretrained=False), frame_list, boxes)
    estimator = PoseEstimator.from_config(cfg, None, device=device, detector=detector, flip_test=flip_test)
    return compare_demo_modes(estimator, frame_list, det_interval=det_interval, carry_kpt_thr=0.0)
