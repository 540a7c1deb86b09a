"""Pose tracking for video: stable track ids, boxes carried from poses, One Euro keypoint smoothing (numpy only).

- `boxes_from_poses`: the boxes a video loop feeds to the pose model on frames where the detector does not run
  (keypoints [N,K,2], scores [N,K] -> boxes [N,4] xyxy, always of a minimum size; NaN rows for persons that cannot
  be carried).
- `PoseTracker`: greedy matching of this frame's poses to the live tracks by OKS (COCO object keypoint similarity,
  with the object area taken from the box) or by box IoU; ids start at 0, only increase and are never reused; a track
  unmatched for more than `max_age` frames is dropped. Each pose is compared with where a track would be now at its
  recent velocity, so two people who cross keep their ids; a track lost for a frame or more is also compared with
  where it was last seen (the better of the two counts), so a person who stops while hidden is still found.
- `OneEuroFilter`: the 1 euro filter of Casiez, Roussel and Vogel, "1 Euro Filter: A Simple Speed-based Low-pass
  Filter for Noisy Input in Interactive Systems", CHI 2012 (https://gery.casiez.net/1euro/), vectorised over any
  array shape; `PoseTracker(smooth=True)` keeps one per track, i.e. per track and keypoint coordinate.

Shapes: keypoints [N,K,2] image pixels, scores [N,K], boxes [N,4] x1y1x2y2, track ids [N] int64.
"""

import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

# Defaults for keypoints in image pixels at video rates (25-60 fps). Measured at 30 fps (tests/apis/test_tracking.py):
# 2 px gaussian jitter on still keypoints drops 5.1x (mean |x_t - x_t-1| 2.27 -> 0.44 px); after a 100 px jump the
# output is within 1 px 2 frames after the jump frame (a 10 px jump: 3 frames); lag at a steady 300 px/s is 2.4 px.
# beta = 0 would cut jitter more but trail a moving person by tens of pixels.
DEFAULT_MIN_CUTOFF = 1.0  # Hz: the cutoff when a joint is still; lower = less jitter, more lag when it starts moving
DEFAULT_BETA = 0.05  # Hz per (pixel/s): how fast the cutoff rises with speed; higher = less lag on fast moves
DEFAULT_D_CUTOFF = 1.0  # Hz: cutoff of the speed estimate itself (the paper's recommended 1 Hz)
_DEFAULT_RATE = 30.0  # Hz, used only until two distinct timestamps have been seen
_VELOCITY_MOMENTUM = 0.5  # weight of the previous velocity estimate of a track


def _alpha(cutoff: np.ndarray, te: float) -> np.ndarray:
    """Smoothing factor of a first-order low-pass filter: alpha = 1 / (1 + tau / Te), tau = 1 / (2 pi fc)."""
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / te)


class OneEuroFilter:
    """Casiez et al. (CHI 2012) 1 euro filter on arrays of any shape, one independent filter per element.

    Per call with sampling period Te (from the timestamps): dx = (x - x_hat_prev) / Te, dx_hat = low-pass(dx, d_cutoff),
    fc = min_cutoff + beta * |dx_hat|, x_hat = low-pass(x, fc), where low-pass(v, fc) = alpha v + (1 - alpha) v_prev.
    The speed is taken against the previous *filtered* value and starts at 0, as in the authors' reference
    implementation (github.com/casiez/OneEuroFilter, checked against its groundTruth.csv in the tests).

    The first call returns `x` unchanged. Elements where `x` is NaN or inf are returned as given and leave that
    element's state untouched, so a keypoint that is briefly missing resumes smoothly. If a timestamp does not
    increase, the last sampling period is reused (30 fps before any is known).
    """

    def __init__(self, min_cutoff: float = DEFAULT_MIN_CUTOFF, beta: float = DEFAULT_BETA,
                 d_cutoff: float = DEFAULT_D_CUTOFF):
        if not min_cutoff > 0:
            raise ValueError(f"OneEuroFilter: min_cutoff must be > 0 Hz, got {min_cutoff}")
        if not d_cutoff > 0:
            raise ValueError(f"OneEuroFilter: d_cutoff must be > 0 Hz, got {d_cutoff}")
        if not beta >= 0:
            raise ValueError(f"OneEuroFilter: beta must be >= 0, got {beta}")
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        self._x_hat: Optional[np.ndarray] = None
        self._dx_hat: Optional[np.ndarray] = None
        self._t: Optional[float] = None
        self._te = 1.0 / _DEFAULT_RATE

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self._x_hat is not None and self._x_hat.shape != x.shape:
            raise ValueError(f"OneEuroFilter: got shape {x.shape} after {self._x_hat.shape}; use one filter per "
                             "signal, or reset() it")
        t = float(t)
        if self._t is not None and t > self._t:
            self._te = t - self._t
        self._t = t
        if self._x_hat is None:
            # NaN state until an element is first seen; the first finite value passes through
            self._x_hat = np.where(np.isfinite(x), x, np.nan)
            self._dx_hat = np.zeros_like(x)
            return x.copy()
        finite = np.isfinite(x)
        seen = np.isfinite(self._x_hat)
        update = finite & seen
        dx = np.where(update, (x - np.where(seen, self._x_hat, 0.0)) / self._te, 0.0)
        dx_hat = self._dx_hat + _alpha(self.d_cutoff, self._te) * (dx - self._dx_hat)
        cutoff = self.min_cutoff + self.beta * np.abs(dx_hat)
        x_hat = np.where(seen, self._x_hat, 0.0)
        x_hat = x_hat + _alpha(cutoff, self._te) * (np.where(finite, x, 0.0) - x_hat)
        # first sighting of an element: pass it through, like the first call
        x_hat = np.where(update, x_hat, np.where(finite, x, self._x_hat))
        self._dx_hat = np.where(update, dx_hat, self._dx_hat)
        self._x_hat = x_hat
        return np.where(finite, x_hat, x)


def boxes_from_poses(
    keypoints: np.ndarray,
    scores: np.ndarray,
    kpt_thr: float = 0.3,
    image_size: Optional[Tuple[int, int]] = None,
    padding: float = 1.25,
    min_size: Union[float, np.ndarray] = 1.0,
    max_size: Optional[Union[float, np.ndarray]] = None,
    hold: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Boxes [N,4] xyxy (float64) a video loop carries to the next frame: around each person's confident keypoints
    (score >= kpt_thr, finite), or around all its finite keypoints (the keypoint set's extent) when fewer than 2 are
    confident; each side scaled by `padding` about the centre, then grown about the centre to at least `min_size`
    pixels (a number, [N] or [N, 2] as (width, height): the stream passes a share of the person's last detected
    box) and shrunk to at most `max_size` (same forms; never under `min_size`), then clipped to `image_size` =
    (width, height) when given. `hold` [N, 4]: boxes kept as they are for persons with fewer than 2 confident
    keypoints (the stream holds the box the pose was found in, instead of a box around unconfident guesses).

    Every finite row is a valid box (finite, x2 > x1, y2 > y1): two confident joints on one row no longer give a box
    of zero height. A NaN row means the pose cannot be carried (no finite keypoint, or the box's centre lies outside
    the image: the person is leaving the frame); the caller counts it as lost.
    """
    kpts = np.asarray(keypoints, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if kpts.ndim != 3 or kpts.shape[2] != 2 or scores.shape != kpts.shape[:2]:
        raise ValueError(f"boxes_from_poses: expected keypoints [N,K,2] and scores [N,K], got {kpts.shape} and "
                         f"{scores.shape}")
    if not padding > 0:
        raise ValueError(f"boxes_from_poses: padding must be > 0, got {padding}")
    n = kpts.shape[0]
    floor = _sizes(min_size, n, "min_size")
    ceiling = np.full((n, 2), np.inf) if max_size is None else np.maximum(_sizes(max_size, n, "max_size"), floor)
    finite = np.isfinite(kpts).all(axis=2)
    confident = (scores >= kpt_thr) & finite & np.isfinite(scores)
    use = np.where((confident.sum(axis=1) >= 2)[:, None], confident, finite)
    lo = np.where(use[..., None], kpts, np.inf).min(axis=1) if n else np.zeros((0, 2))
    hi = np.where(use[..., None], kpts, -np.inf).max(axis=1) if n else np.zeros((0, 2))
    with np.errstate(invalid="ignore"):
        centre = (lo + hi) / 2
        half = np.minimum(np.maximum((hi - lo) / 2 * padding, floor / 2), ceiling / 2)
        boxes = np.concatenate([centre - half, centre + half], axis=1)
    lost = ~use.any(axis=1)
    if hold is not None:
        few = confident.sum(axis=1) < 2
        boxes[few] = np.asarray(hold, dtype=np.float64).reshape(-1, 4)[few]
        centre[few] = (boxes[few, :2] + boxes[few, 2:]) / 2
        lost[few] = ~np.isfinite(boxes[few]).all(axis=1)
    if image_size is not None:
        w, h = image_size
        lost |= ~((centre[:, 0] >= 0) & (centre[:, 0] < w) & (centre[:, 1] >= 0) & (centre[:, 1] < h))
        boxes = np.clip(boxes, 0.0, np.array([w, h, w, h], dtype=np.float64))
    # a centre inside the image and a side of at least min_size > 0 leave a box of positive area after clipping
    boxes[lost | ~((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))] = np.nan
    return boxes


def _sizes(value: Union[float, np.ndarray], n: int, name: str) -> np.ndarray:
    """A size in pixels as a number, [N] or [N, 2] -> [N, 2] (width, height); ValueError unless finite and > 0."""
    arr = np.asarray(value, dtype=np.float64)
    sizes = np.broadcast_to(arr.reshape(-1, 1) if arr.ndim == 1 else arr, (n, 2))
    if not (np.isfinite(sizes).all() and (sizes > 0).all()):
        raise ValueError(f"boxes_from_poses: {name} must be finite and > 0 pixels, got {value}")
    return sizes


def oks_matrix(kpts_a: np.ndarray, scores_a: np.ndarray, areas_a: np.ndarray, kpts_b: np.ndarray,
               scores_b: np.ndarray, areas_b: np.ndarray, sigmas: np.ndarray, kpt_thr: float) -> np.ndarray:
    """OKS [A,B] between two pose sets: exp(-d^2 / (2 s^2 (2 sigma)^2)) averaged over the keypoints confident in
    both, s^2 = mean of the two areas (as the official HRNet oks_iou); 0 where no keypoint is confident in both."""
    variances = (2.0 * sigmas) ** 2
    d2 = ((kpts_a[:, None] - kpts_b[None]) ** 2).sum(axis=3)
    area = (areas_a[:, None] + areas_b[None]) / 2 + np.spacing(1)
    e = d2 / variances / area[:, :, None] / 2
    ok_a = (scores_a >= kpt_thr) & np.isfinite(kpts_a).all(axis=2)
    ok_b = (scores_b >= kpt_thr) & np.isfinite(kpts_b).all(axis=2)
    mask = ok_a[:, None] & ok_b[None]
    count = mask.sum(axis=2)
    total = np.where(mask, np.exp(-np.where(mask, e, 0.0)), 0.0).sum(axis=2)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def iou_matrix(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """IoU [A,B] of xyxy boxes; 0 for empty or NaN boxes."""
    lt = np.maximum(boxes_a[:, None, :2], boxes_b[None, :, :2])
    rb = np.minimum(boxes_a[:, None, 2:], boxes_b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = np.clip(boxes_a[:, 2:] - boxes_a[:, :2], 0, None).prod(axis=1)
    area_b = np.clip(boxes_b[:, 2:] - boxes_b[:, :2], 0, None).prod(axis=1)
    union = area_a[:, None] + area_b[None] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / union
    return np.where(np.isfinite(iou) & (union > 0), iou, 0.0)


def greedy_match(similarity: np.ndarray, threshold: float) -> List[Tuple[int, int]]:
    """Pairs (row, col) taken highest similarity first, each row and column at most once, similarity >= threshold."""
    rows, cols = np.nonzero(similarity >= threshold)
    order = np.argsort(-similarity[rows, cols], kind="stable")
    used_r, used_c, pairs = set(), set(), []
    for r, c in zip(rows[order].tolist(), cols[order].tolist()):
        if r not in used_r and c not in used_c:
            used_r.add(r)
            used_c.add(c)
            pairs.append((r, c))
    return pairs


def _box_areas(boxes: np.ndarray) -> np.ndarray:
    wh = np.clip(boxes[:, 2:] - boxes[:, :2], 0, None)
    area = wh[:, 0] * wh[:, 1]
    return np.where(np.isfinite(area), area, 0.0)


class _Track:
    """State of one track: last observation, velocity for prediction, frames since matched, optional filter."""

    __slots__ = ("track_id", "keypoints", "scores", "box", "velocity", "box_velocity", "moving", "t", "age",
                 "filter")

    def __init__(self, track_id: int, keypoints: np.ndarray, scores: np.ndarray, box: np.ndarray, t: float,
                 filt: Optional[OneEuroFilter]):
        self.track_id = track_id
        self.keypoints, self.scores, self.box, self.t = keypoints, scores, box, t
        self.velocity = np.zeros_like(keypoints)
        self.box_velocity = np.zeros_like(box)
        self.moving = False
        self.age = 0
        self.filter = filt

    def observe(self, keypoints: np.ndarray, scores: np.ndarray, box: np.ndarray, t: float) -> None:
        dt = t - self.t
        if dt > 0:
            v = (keypoints - self.keypoints) / dt
            bv = (box - self.box) / dt
            # averaging with the previous estimate halves the keypoint noise in the velocity, which matters most
            # when two people cross and their predicted positions are a few pixels apart
            w = _VELOCITY_MOMENTUM if self.moving else 0.0
            self.velocity = w * self.velocity + (1 - w) * np.where(np.isfinite(v), v, 0.0)
            self.box_velocity = w * self.box_velocity + (1 - w) * np.where(np.isfinite(bv), bv, 0.0)
            self.moving = True
        self.keypoints, self.scores, self.box, self.t = keypoints, scores, box, t
        self.age = 0


class PoseTracker:
    """Assigns stable track ids to the poses of consecutive frames and optionally smooths their keypoints.

    Args:
        sigmas: [K] OKS sigmas of the keypoint set (`KeypointSet.sigmas`); used by the 'oks' metric.
        metric: 'oks' (keypoint similarity, robust when people overlap) or 'iou' (box overlap).
        match_thr: minimum similarity for a pose to continue a track; below it the pose starts a new track.
        max_age: frames a track may go unmatched (occlusion, missed detection) and still be resumed.
        smooth: run a One Euro filter per track and keypoint coordinate (off by default: it adds a little lag).
        min_cutoff, beta: One Euro parameters (see `OneEuroFilter`; the defaults suit pixel keypoints at video rates).
        kpt_thr: keypoints below this score do not count in OKS.
    """

    def __init__(self, sigmas: Sequence[float], metric: str = "oks", match_thr: float = 0.3, max_age: int = 30,
                 smooth: bool = False, min_cutoff: float = DEFAULT_MIN_CUTOFF, beta: float = DEFAULT_BETA,
                 kpt_thr: float = 0.3):
        self.sigmas = np.asarray(sigmas, dtype=np.float64).reshape(-1)
        if self.sigmas.size == 0 or not np.all(self.sigmas > 0):
            raise ValueError(f"PoseTracker: sigmas must be one positive number per keypoint, got {sigmas}")
        if metric not in ("oks", "iou"):
            raise ValueError(f"PoseTracker: metric must be 'oks' or 'iou', got {metric!r}")
        if isinstance(max_age, bool) or int(max_age) != max_age or max_age < 0:
            raise ValueError(f"PoseTracker: max_age must be an integer >= 0 (frames), got {max_age!r}")
        self.metric = metric
        self.match_thr = float(match_thr)
        self.max_age = int(max_age)
        self.smooth = bool(smooth)
        self.kpt_thr = float(kpt_thr)
        # validate the filter parameters now rather than at the first person
        OneEuroFilter(min_cutoff, beta)
        self.min_cutoff, self.beta = float(min_cutoff), float(beta)
        self.reset()

    def reset(self) -> None:
        """Forget all tracks; ids restart at 0 (use between unrelated videos)."""
        self._tracks: List[_Track] = []
        self._next_id = 0

    @property
    def num_tracks(self) -> int:
        return len(self._tracks)

    def _similarity(self, kpts: np.ndarray, scores: np.ndarray, boxes: np.ndarray, t: float) -> np.ndarray:
        """[N, T] similarity of this frame's poses to the tracks at their constant-velocity positions; a track lost
        for a frame or more may also match where it was last seen (people often stop while hidden)."""
        tr = self._tracks
        lost = np.array([x.age > 0 for x in tr])
        if self.metric == "iou":
            last = np.stack([x.box for x in tr])
            moved = last + np.stack([x.box_velocity * (t - x.t) for x in tr])
            sim_moved, sim_last = iou_matrix(boxes, moved), iou_matrix(boxes, last)
        else:
            last = np.stack([x.keypoints for x in tr])
            moved = last + np.stack([x.velocity * (t - x.t) for x in tr])
            t_scores = np.stack([x.scores for x in tr])
            t_areas = _box_areas(np.stack([x.box for x in tr]))
            areas = _box_areas(boxes)
            sim_moved = oks_matrix(kpts, scores, areas, moved, t_scores, t_areas, self.sigmas, self.kpt_thr)
            sim_last = oks_matrix(kpts, scores, areas, last, t_scores, t_areas, self.sigmas, self.kpt_thr)
        return np.where(lost[None], np.maximum(sim_moved, sim_last), sim_moved)

    def update(self, keypoints: np.ndarray, scores: np.ndarray, boxes: np.ndarray,
               timestamp: float) -> Tuple[np.ndarray, np.ndarray]:
        """One frame: poses [N,K,2], scores [N,K], boxes [N,4] xyxy, timestamp in seconds ->
        (track_ids [N] int64, keypoints [N,K,2]: smoothed when `smooth`, else the input values)."""
        kpts = np.asarray(keypoints, dtype=np.float64)
        scores = np.asarray(scores, dtype=np.float64)
        boxes = np.asarray(boxes, dtype=np.float64)
        k = self.sigmas.shape[0]
        if kpts.ndim != 3 or kpts.shape[1:] != (k, 2) or scores.shape != kpts.shape[:2] \
                or boxes.shape != (kpts.shape[0], 4):
            raise ValueError(f"PoseTracker.update: expected keypoints [N,{k},2], scores [N,{k}] and boxes [N,4] "
                             f"(K from the sigmas), got {kpts.shape}, {scores.shape} and {boxes.shape}")
        t = float(timestamp)
        n = kpts.shape[0]
        ids = np.full(n, -1, dtype=np.int64)
        matched_tracks = set()
        if n and self._tracks:
            for det, ti in greedy_match(self._similarity(kpts, scores, boxes, t), self.match_thr):
                track = self._tracks[ti]
                track.observe(kpts[det], scores[det], boxes[det], t)
                ids[det] = track.track_id
                matched_tracks.add(ti)
        # age and drop first, so new tracks below start fresh
        kept = []
        for ti, track in enumerate(self._tracks):
            if ti not in matched_tracks:
                track.age += 1
            if track.age <= self.max_age:
                kept.append(track)
        self._tracks = kept
        by_id: Dict[int, _Track] = {x.track_id: x for x in kept}
        for det in np.nonzero(ids < 0)[0].tolist():
            filt = OneEuroFilter(self.min_cutoff, self.beta) if self.smooth else None
            track = _Track(self._next_id, kpts[det], scores[det], boxes[det], t, filt)
            self._next_id += 1
            self._tracks.append(track)
            by_id[track.track_id] = track
            ids[det] = track.track_id
        in_dtype = np.asarray(keypoints).dtype
        out = kpts.astype(in_dtype if np.issubdtype(in_dtype, np.floating) else np.float64)
        if self.smooth:
            for det in range(n):
                out[det] = by_id[int(ids[det])].filter(kpts[det], t)
        return ids, out
