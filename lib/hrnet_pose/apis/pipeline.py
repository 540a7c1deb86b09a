"""A pipelined stream: reading, detection, pose+decode, and drawing+writing as stages on their own threads, joined by
bounded queues, so that decoding the next frame and running the detector overlap the pose network.

    read (thread) -> detect (thread) -> pose + decode (thread) -> finish (the caller: draw, write, show)

The finish stage is the caller: `for item in pipeline` yields every finished frame (`PipelineItem`: frame, result,
capture time) on the iterating thread, and `run(finish)` calls `finish(item)` for each. OpenCV windows must be driven
from the main thread on most GUI back ends, and Ctrl-C arrives there. The pose stage is the `StreamPoseEstimator`
itself, so carried boxes, tracking and the detect-when-needed rules are unchanged; the detect stage numbers the frames
it passes on and runs the detector ahead for the ones the stream detects on its schedule
(`StreamPoseEstimator.scheduled_detection`), telling the pose stage which frames those are; the pose stage runs the
detector inline only off the schedule (a lost person's region, single-person mode).

Files: every frame, in order (a full queue makes the stage before it wait), so the results are the same as calling
`process` frame by frame. Live sources (`FrameSource.is_live`): the schedule counts the frames the pose stage
processes (not the camera's), and the newest frame wins at every stage's input: each
queue holds one frame, and a new frame replaces one still waiting there (counted per stage in
`PipelineStats.stale`), so a frame never waits behind stale ones and the latency stays about one frame's processing.
A frame carrying a scheduled detection that is replaced at the pose stage's input hands its detection to the newer
frame, so the schedule holds and no detector run is wasted. The source's own latest-frame reader drops and counts
the frames that never left the camera thread. Latency: from the frame's capture (`Frame.captured`,
`time.monotonic()`; the moment the reader got it for files) to the end of the finish stage (the caller asking for
the next frame).

Any stage's exception stops every stage and is re-raised to the caller; so is Ctrl-C. Threads are daemons and are
joined on the way out (also when the caller stops iterating early), so neither an error nor an interrupt leaves one
running behind the caller.
"""

import collections
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, Iterator, Optional, Tuple

import numpy as np

from ..streams.sources import Frame, FrameSource, open_source
from .result import PoseResult
from .stream import DEFAULT_MIN_POSE_SCORE, Detections, StreamPoseEstimator

__all__ = ["PipelineItem", "PipelineStats", "StreamPipeline", "ResultStream"]

logger = logging.getLogger(__name__)

_END = object()  # end of stream, passed down the queues
STAGES = ("detect", "pose", "finish")  # the stages with an input queue, in order
_POLL_S = 0.1  # how often a waiting stage looks at the stop flag
_JOIN_S = 5.0
BoxesFor = Callable[[Frame], Tuple[Optional[np.ndarray], Optional[np.ndarray]]]


@dataclass
class PipelineItem:
    """One frame on its way through the stages: the frame, when it was captured (time.monotonic()), how long reading
    it took, the boxes given for it (a detection file), the detector's output when run ahead, and the result."""

    frame: Frame
    captured: float
    read_ms: float
    boxes: Optional[np.ndarray] = None
    box_scores: Optional[np.ndarray] = None
    detections: Optional[Detections] = None
    detect_ms: float = 0.0
    result: Optional[PoseResult] = None
    scheduled: bool = False  # a scheduled detection (the detect stage's numbering)


@dataclass
class PipelineStats:
    """What a run did: frames finished, stale live frames dropped (the source's and the stages' together), stream
    reconnects, undecodable frames skipped, the stale frames replaced at each stage's input (`stale`: detect, pose,
    finish), and the capture-to-finished latency (mean and max over the run, and the last 1000 values for
    percentiles; bounded, so a long stream does not grow it)."""

    frames: int = 0
    dropped: int = 0
    stale: Dict[str, int] = field(default_factory=lambda: {stage: 0 for stage in STAGES})
    reconnects: int = 0
    skipped: int = 0
    latency_sum_ms: float = 0.0
    latency_max_ms: float = 0.0
    recent_latency_ms: Deque[float] = field(default_factory=lambda: collections.deque(maxlen=1000))

    def add_latency(self, ms: float) -> None:
        self.latency_sum_ms += ms
        self.latency_max_ms = max(self.latency_max_ms, ms)
        self.recent_latency_ms.append(ms)

    @property
    def mean_latency_ms(self) -> float:
        return self.latency_sum_ms / self.frames if self.frames else float("nan")

    def latency_percentile(self, q: float) -> float:
        """The q-th percentile (0-100) of the recent latencies, ms."""
        return float(np.percentile(self.recent_latency_ms, q)) if self.recent_latency_ms else float("nan")


class StreamPipeline:
    """Runs `stream` over `source` in stages (see the module docstring). `boxes_for(frame)` -> (boxes, scores) or
    (None, None) gives per-frame boxes that replace the detector; `queue_size` bounds each queue for files (frames in
    flight per stage; live sources always keep one, the newest). Iterate it once, or call `run(finish)`."""

    def __init__(self, stream: StreamPoseEstimator, source: FrameSource, boxes_for: Optional[BoxesFor] = None,
                 flip_test: Optional[bool] = None, return_heatmaps: bool = False, queue_size: int = 2) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.stream = stream
        self.source = source
        self.boxes_for = boxes_for
        self.flip_test = flip_test
        self.return_heatmaps = return_heatmaps
        self.live = bool(getattr(source, "is_live", False))
        self._queues = [queue.Queue(maxsize=1 if self.live else queue_size) for _ in STAGES]
        self._stop = threading.Event()
        self._error: Optional[BaseException] = None
        self._threads: list = []
        self._detect_count = 0
        self._scheduled_at: Optional[int] = None  # live: the pose stage's frame count of the last scheduled frame
        self._pose_busy = False
        self._started = False
        self._closed = False
        self.stats = PipelineStats()

    def pending(self) -> Dict[str, int]:
        """Frames waiting at each stage's input now (at most 1 each for a live source)."""
        return {stage: q.qsize() for stage, q in zip(STAGES, self._queues)}

    # ------------------------------------------------------------------ queue helpers
    def _get(self, q: "queue.Queue") -> Any:
        """The next item, or _END once stopped."""
        while not self._stop.is_set():
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                continue
        return _END

    def _put(self, q: "queue.Queue", item: Any) -> None:
        while not self._stop.is_set():
            try:
                q.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def _put_latest(self, stage: str, q: "queue.Queue", item: Any) -> None:
        """Live sources: never wait; a frame still waiting at `stage`'s input is replaced by the new one (counted).
        A replaced scheduled detection passes to the new frame."""
        while not self._stop.is_set():
            try:
                q.put_nowait(item)
                return
            except queue.Full:
                try:
                    old = q.get_nowait()
                except queue.Empty:  # the stage took it meanwhile
                    continue
                self.stats.stale[stage] += 1
                if old.scheduled and not item.scheduled:
                    item.scheduled, item.detections, item.detect_ms = True, old.detections, old.detect_ms

    def _send(self, stage: str, q: "queue.Queue", item: Any) -> None:
        if self.live and item is not _END:
            self._put_latest(stage, q, item)
        else:
            self._put(q, item)

    # ------------------------------------------------------------------ stages
    def _read(self, out: "queue.Queue") -> None:
        frames = iter(self.source)
        while not self._stop.is_set():
            start = time.perf_counter()
            frame = next(frames, None)
            if frame is None:
                return
            captured = frame.captured if frame.captured is not None else time.monotonic()
            self._send("detect", out, PipelineItem(frame, captured, (time.perf_counter() - start) * 1000))

    def _is_scheduled(self) -> bool:
        """Whether the frame the detect stage passes on now is a scheduled detection. Files: the stream's schedule
        over the frame numbers (every frame is processed). Live: counted in frames the pose stage processes (most
        frames of a fast camera never reach it): due when `det_interval` frames have been processed since the last
        scheduled one, and not while a scheduled frame still waits at the pose stage's input (if it is replaced,
        its detection passes to the newer frame)."""
        number, self._detect_count = self._detect_count, self._detect_count + 1
        if not self.live:
            return self.stream.scheduled_detection(number)
        if self.stream.single_person:
            return False
        q = self._queues[1]
        with q.mutex:
            if any(x is not _END and x.scheduled for x in q.queue):
                return False
        position = self.stream.frames_processed + int(self._pose_busy)
        if self._scheduled_at is not None and position - self._scheduled_at < self.stream.det_interval:
            return False
        self._scheduled_at = position
        return True

    def _detect(self, item: PipelineItem) -> PipelineItem:
        if self.boxes_for is not None:
            item.boxes, item.box_scores = self.boxes_for(item.frame)
        item.scheduled = self._is_scheduled()
        if item.boxes is None and item.scheduled and self.stream.estimator.detector is not None:
            start = time.perf_counter()
            item.detections = self.stream.detect(item.frame.image)
            item.detect_ms = (time.perf_counter() - start) * 1000
        return item

    def _pose(self, item: PipelineItem) -> PipelineItem:
        self._pose_busy = True
        try:
            item.result = self.stream.process(item.frame.image, item.frame.timestamp, boxes=item.boxes,
                                              box_scores=item.box_scores, flip_test=self.flip_test,
                                              return_heatmaps=self.return_heatmaps, detections=item.detections,
                                              scheduled=item.scheduled)
        finally:
            self._pose_busy = False
        item.result.timings["detect"] += item.detect_ms
        return item

    def _worker(self, stage: Callable[..., Any], src: Optional["queue.Queue"], dst: "queue.Queue",
                dst_stage: str) -> None:
        """One stage's thread: items from `src` through `stage` into `dst` (the read stage has no `src`); any error
        stops the pipeline and is kept for the caller. _END always goes on, so the next stage finishes."""
        try:
            if src is None:
                stage(dst)
            else:
                item = self._get(src)
                while item is not _END:
                    self._send(dst_stage, dst, stage(item))
                    item = self._get(src)
        except BaseException as err:  # noqa: BLE001 - re-raised on the caller's thread
            self._error = self._error or err
            self._stop.set()
        finally:
            self._put(dst, _END)

    # ------------------------------------------------------------------ running
    def _start(self) -> None:
        if self._started:
            raise RuntimeError("a StreamPipeline runs once; make a new one (and a new source) for another run")
        self._started = True
        q_detect, q_pose, q_finish = self._queues
        for name, stage, src, dst, dst_stage in (("read", self._read, None, q_detect, "detect"),
                                                 ("detect", self._detect, q_detect, q_pose, "pose"),
                                                 ("pose", self._pose, q_pose, q_finish, "finish")):
            thread = threading.Thread(target=self._worker, args=(stage, src, dst, dst_stage),
                                      name=f"pipeline-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def __iter__(self) -> Iterator[PipelineItem]:
        """Every finished frame in order, on the iterating thread (the finish stage). A frame counts as finished, and
        its latency is taken, when the caller asks for the next one (or stops). Stopping early (break, an exception,
        closing the iterator) stops every stage; a stage's error is raised here after all stages have stopped."""
        self._start()
        try:
            item = self._get(self._queues[2])
            while item is not _END:
                try:
                    yield item
                finally:
                    self.stats.frames += 1
                    self.stats.add_latency((time.monotonic() - item.captured) * 1000)
                item = self._get(self._queues[2])
        finally:
            self.close()
        if self._error is not None:
            raise self._error

    def run(self, finish: Callable[[PipelineItem], bool]) -> PipelineStats:
        """Process the whole source; `finish(item)` runs on this thread for every frame in order (draw, write, show)
        and returns True to stop early. Returns the stats; re-raises a stage's error (and Ctrl-C) after stopping
        every stage."""
        items = iter(self)
        try:
            for item in items:
                if finish(item):
                    break
        finally:
            items.close()
        if self._error is not None:
            raise self._error
        return self.stats

    def close(self) -> None:
        """Stop every stage and wait for the threads (a read blocked in a camera returns when it gets a frame)."""
        self._stop.set()
        if self._closed:
            return
        self._closed = True
        for thread in self._threads:
            thread.join(_JOIN_S)
            if thread.is_alive():
                logger.warning("%s still busy after %g s; it stops when its current call returns", thread.name,
                               _JOIN_S)
        self.stats.dropped = sum(self.stats.stale.values()) + int(getattr(self.source, "dropped", 0) or 0)
        self.stats.reconnects = int(getattr(self.source, "reconnects", 0) or 0)
        self.stats.skipped = int(getattr(self.source, "num_skipped", 0) or 0)


class ResultStream:
    """`PoseEstimator.stream(source, **options)`: the pipelined stream as an iterator of `PoseResult`s, each with its
    `frame` (index, timestamp, image), in the way of MMPose's inferencer and Ultralytics' `predict(stream=True)`.

        for result in estimator.stream("walk.mp4", det_interval=5, track=True):
            cv2.imshow("pose", result.plot(result.frame.image))

    `source`: a path, glob, video, webcam index or URL (`streams.sources.open_source`; opened now, so a wrong one
    fails at the call, and closed when the iteration ends) or an open `FrameSource` (left open). Options:
    det_interval, max_persons (1 = single-person tracking), min_pose_score as `StreamPoseEstimator`; track / smooth:
    a `PoseTracker` with track ids / One Euro smoothing (or `tracker=` your own); flip_test (None: the estimator's),
    return_heatmaps, boxes_for(frame) -> (boxes, scores) replacing the detector, queue_size. Live sources keep the
    newest frame at every stage (see the module docstring). `stats` is the pipeline's `PipelineStats`; `stream` the
    `StreamPoseEstimator` (detector_calls). Iterate once; `close()` (or a `with` block) stops early."""

    def __init__(self, estimator: Any, source: Any, *, det_interval: int = 1, max_persons: Optional[int] = None,
                 min_pose_score: float = DEFAULT_MIN_POSE_SCORE, track: bool = False, smooth: bool = False,
                 tracker: Any = None, flip_test: Optional[bool] = None, return_heatmaps: bool = False,
                 boxes_for: Optional[BoxesFor] = None, queue_size: int = 2) -> None:
        if tracker is None and (track or smooth):
            from ..streams.tracking import PoseTracker

            tracker = PoseTracker(estimator.keypoint_set.sigmas, smooth=smooth)
        self.stream = StreamPoseEstimator(estimator, det_interval=det_interval, tracker=tracker,
                                          max_persons=max_persons, min_pose_score=min_pose_score)
        self._own_source = not isinstance(source, FrameSource)
        self.source = open_source(source) if self._own_source else source
        self.pipeline = StreamPipeline(self.stream, self.source, boxes_for=boxes_for, flip_test=flip_test,
                                       return_heatmaps=return_heatmaps, queue_size=queue_size)

    @property
    def stats(self) -> PipelineStats:
        return self.pipeline.stats

    def __iter__(self) -> Iterator[PoseResult]:
        try:
            for item in self.pipeline:
                item.result.frame = item.frame
                yield item.result
        finally:
            self.close()

    def close(self) -> None:
        """Stop the pipeline and close the source when this stream opened it."""
        self.pipeline.close()
        if self._own_source:
            self.source.close()

    def __enter__(self) -> "ResultStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
