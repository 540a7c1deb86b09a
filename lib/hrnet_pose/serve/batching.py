"""`PoseBatcher`: concurrent requests batched into one network call, behind a bounded queue.

Two worker threads, so that on two cores the detector of one request overlaps the pose network of another:
- the prepare thread takes jobs in arrival order and runs, per image, the person boxes step (given boxes, the
  estimator's detector, or the whole image, exactly as `PoseEstimator.__call__` does) and the crops;
- the pose thread takes the first prepared job, waits at most `window_ms` for more until `max_batch` persons are
  gathered, runs all their crops through `PoseEstimator.heatmaps` at once (one call per flip-test setting; the
  estimator splits it at its own `max_batch`), decodes each image's heatmaps and completes each job's future with
  one `PoseResult` per image.

A job is one request (one image, or the images of a batch request, which always go through together). `submit`
refuses a job with `QueueFull` when the images in flight (queued, being prepared, waiting or in the network) would
exceed `max_queue`: the caller answers 503 with Retry-After instead of growing memory without bound.

Timings per image (ms): queue (submit to prepare), detect, preprocess, wait (prepared to the batch's start), pose
(the whole batch's network time), decode; `batch_persons` and `batch_images` say what shared the network call.
"""

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..apis.estimator import PoseEstimator, check_boxes
from ..apis.result import PoseResult

logger = logging.getLogger(__name__)


class QueueFull(Exception):
    """The batcher already holds `max_queue` images."""


@dataclass
class _Prepared:
    image_shape: tuple
    boxes: np.ndarray
    box_scores: np.ndarray
    centers: np.ndarray
    scales: np.ndarray
    inputs: Optional[np.ndarray]
    timings: Dict[str, float]


@dataclass
class PoseJob:
    images: List[np.ndarray]
    boxes: List[Optional[np.ndarray]]
    flip_test: Optional[bool]
    future: Future
    submitted: float = field(default_factory=time.perf_counter)
    prepared: List[_Prepared] = field(default_factory=list)
    ready_at: float = 0.0

    @property
    def persons(self) -> int:
        return sum(len(p.boxes) for p in self.prepared)


def _ms(start: float, end: float) -> float:
    return (end - start) * 1000.0


class PoseBatcher:
    """See the module docstring. `max_batch`: persons gathered before the batch runs without waiting out the
    window; `window_ms`: how long the first prepared job waits for company; `max_queue`: images in flight."""

    def __init__(self, estimator: PoseEstimator, max_batch: int = 32, window_ms: float = 5.0,
                 max_queue: int = 64) -> None:
        if max_batch < 1 or max_queue < 1 or window_ms < 0:
            raise ValueError(f"max_batch and max_queue must be >= 1 and window_ms >= 0, got {max_batch}, "
                             f"{max_queue}, {window_ms}")
        self.estimator = estimator
        self.max_batch, self.window_ms, self.max_queue = int(max_batch), float(window_ms), int(max_queue)
        self._incoming: "queue.Queue[Optional[PoseJob]]" = queue.Queue()
        self._prepared: "queue.Queue[Optional[PoseJob]]" = queue.Queue()
        self._lock = threading.Lock()
        self._in_flight = 0
        self.batches = 0  # network batches run (several jobs may share one)
        self._threads = [threading.Thread(target=self._prepare_loop, name="pose-prepare", daemon=True),
                         threading.Thread(target=self._pose_loop, name="pose-network", daemon=True)]
        for t in self._threads:
            t.start()

    @property
    def depth(self) -> int:
        """Images in flight (queued, being prepared, waiting for the network, in it)."""
        return self._in_flight

    def submit(self, images: Sequence[np.ndarray], boxes: Optional[Sequence[Optional[np.ndarray]]] = None,
               flip_test: Optional[bool] = None) -> "Future[List[PoseResult]]":
        """Queue the images (boxes per image, None = the detector or the whole image) as one job; the future gives
        one PoseResult per image. Raises QueueFull when the queue cannot take them all."""
        boxes = list(boxes) if boxes is not None else [None] * len(images)
        with self._lock:
            if self._in_flight + len(images) > self.max_queue:
                raise QueueFull(f"{self._in_flight} images in flight, at most {self.max_queue}")
            self._in_flight += len(images)
        job = PoseJob(list(images), boxes, flip_test, Future())
        self._incoming.put(job)
        return job.future

    def close(self) -> None:
        """Stop both threads after the jobs already queued."""
        self._incoming.put(None)
        for t in self._threads:
            t.join(timeout=10)

    def _finish(self, job: PoseJob, result: Any = None, error: Optional[BaseException] = None) -> None:
        with self._lock:
            self._in_flight -= len(job.images)
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)

    # ------------------------------------------------------------------ prepare thread
    def _prepare_one(self, image: np.ndarray, boxes: Optional[np.ndarray], queued_ms: float) -> _Prepared:
        est = self.estimator
        timings = {"queue": queued_ms}
        t0 = time.perf_counter()
        if boxes is None:
            # the estimator's own rule (detector, or the whole image), so REST gives PoseEstimator's keypoints
            person_boxes, scores = est._person_boxes(image, None, None)
        else:
            person_boxes, scores = check_boxes(boxes)
        t1 = time.perf_counter()
        timings["detect"] = _ms(t0, t1)
        inputs, centers, scales = None, np.zeros((0, 2)), np.zeros((0, 2))
        if len(person_boxes):
            centers, scales = est.center_scale(person_boxes)
            inputs = est.crops(image, centers, scales)
        timings["preprocess"] = _ms(t1, time.perf_counter())
        return _Prepared(image.shape, person_boxes, scores, centers, scales, inputs, timings)

    def _prepare_loop(self) -> None:
        while True:
            job = self._incoming.get()
            if job is None:
                self._prepared.put(None)
                return
            try:
                start = time.perf_counter()
                job.prepared = [self._prepare_one(img, b, _ms(job.submitted, start))
                                for img, b in zip(job.images, job.boxes)]
            except Exception as err:  # a detector failure belongs to this job only
                self._finish(job, error=err)
                continue
            job.ready_at = time.perf_counter()
            self._prepared.put(job)

    # ------------------------------------------------------------------ pose thread
    def _gather(self, first: PoseJob) -> List[PoseJob]:
        """The first job and whatever else is prepared within the window, up to max_batch persons."""
        jobs, persons = [first], first.persons
        deadline = time.perf_counter() + self.window_ms / 1000.0
        while persons < self.max_batch:
            remaining = deadline - time.perf_counter()
            try:
                job = self._prepared.get(timeout=remaining) if remaining > 0 else self._prepared.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self._prepared.put(None)  # seen again by the loop after this batch
                break
            jobs.append(job)
            persons += job.persons
        return jobs

    def _run_batch(self, jobs: List[PoseJob]) -> None:
        start = time.perf_counter()
        items = [p for job in jobs for p in job.prepared]
        persons = sum(len(p.boxes) for p in items)
        flips = {job.flip_test for job in jobs}
        heatmaps: Dict[Optional[bool], Dict[int, np.ndarray]] = {}
        for flip in flips:  # one network call per flip setting (usually one)
            group = [p for job in jobs if job.flip_test == flip for p in job.prepared if p.inputs is not None]
            if group:
                maps = self.estimator.heatmaps(np.concatenate([p.inputs for p in group]), flip)
                bounds = np.cumsum([0] + [len(p.inputs) for p in group])
                heatmaps[flip] = {id(p): maps[a:b] for p, a, b in zip(group, bounds[:-1], bounds[1:])}
        pose_ms = _ms(start, time.perf_counter())
        self.batches += 1
        for job in jobs:
            results = [self._decode(p, heatmaps.get(job.flip_test, {}).get(id(p)), pose_ms, start - job.ready_at,
                                    persons, len(items)) for p in job.prepared]
            self._finish(job, results)

    def _decode(self, prep: _Prepared, maps: Optional[np.ndarray], pose_ms: float, waited_s: float, persons: int,
                images: int) -> PoseResult:
        est = self.estimator
        timings = dict(prep.timings, wait=max(waited_s, 0.0) * 1000.0, pose=pose_ms, batch_persons=float(persons),
                       batch_images=float(images))
        if maps is None:
            return PoseResult.empty(est.keypoint_set, timings)
        t0 = time.perf_counter()
        preds, maxvals = est.codec.decode(maps, prep.centers, prep.scales)
        timings["decode"] = _ms(t0, time.perf_counter())
        return PoseResult(keypoints=preds.astype(np.float32), scores=maxvals[..., 0].astype(np.float32),
                          boxes=prep.boxes.astype(np.float32), box_scores=prep.box_scores, centers=prep.centers,
                          scales=prep.scales, keypoint_set=est.keypoint_set, timings=timings)

    def _pose_loop(self) -> None:
        while True:
            first = self._prepared.get()
            if first is None:
                return
            jobs = self._gather(first)
            try:
                self._run_batch(jobs)
            except Exception as err:  # the network failed for this batch: its jobs hear it, the server stays up
                logger.exception("pose batch of %d jobs failed", len(jobs))
                for job in jobs:
                    if not job.future.done():
                        self._finish(job, error=err)
