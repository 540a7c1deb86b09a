"""A pipelined stream: reading, detection, pose+decode, and drawing+writing as stages on their own threads, joined by
bounded queues, so that decoding the next frame and running the detector overlap the pose network.

    read (thread) -> detect (thread) -> pose + decode (thread) -> finish (the calling thread: draw, write, show)

The finish stage runs on the thread that calls `run()`: OpenCV windows must be driven from the main thread on most
GUI back ends, and Ctrl-C arrives there. The pose stage is the `StreamPoseEstimator` itself, so carried boxes,
tracking and the detect-when-needed rules are unchanged; the detect stage runs the detector ahead for the frames the
stream detects on its schedule (`StreamPoseEstimator.scheduled_detection`) and the pose stage runs it inline only
for the unscheduled ones (a lost track). Results are therefore the same as calling `process` frame by frame.

Files: every frame, in order (a full queue makes the reader wait). Live sources (`FrameSource.is_live`): the newest
frame wins; when the first queue is full its oldest frame is dropped and counted (the source's own latest-frame reader
drops and counts the frames that never left the camera thread). Latency: from the frame's capture (`Frame.captured`,
`time.monotonic()`; the moment the reader got it for files) to the end of the finish stage.

Any stage's exception stops every stage and is re-raised by `run()`; so is Ctrl-C. Threads are daemons and are
joined on the way out, so neither an error nor an interrupt leaves one running behind the caller.
"""

import collections
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Optional, Tuple

import numpy as np

from ..streams.sources import Frame, FrameSource
from .result import PoseResult
from .stream import Detections, StreamPoseEstimator

__all__ = ["PipelineItem", "PipelineStats", "StreamPipeline"]

logger = logging.getLogger(__name__)

_END = object()  # end of stream, passed down the queues
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


@dataclass
class PipelineStats:
    """What a run did: frames finished, stale live frames dropped, stream reconnects, undecodable frames skipped, and
    the frame-to-result latency (mean and max over the run, and the last 1000 values for percentiles; bounded, so a
    long stream does not grow it)."""

    frames: int = 0
    dropped: int = 0
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
    (None, None) gives per-frame boxes that replace the detector; `queue_size` bounds each queue (frames in flight
    per stage)."""

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
        self._queues = [queue.Queue(maxsize=queue_size) for _ in range(3)]
        self._stop = threading.Event()
        self._error: Optional[BaseException] = None
        self._threads: list = []
        self._detect_count = 0
        self._closed = False
        self.stats = PipelineStats()

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

    def _put_latest(self, q: "queue.Queue", item: Any) -> None:
        """Live sources: never wait; a full queue loses its oldest frame to the new one."""
        while not self._stop.is_set():
            try:
                q.put_nowait(item)
                return
            except queue.Full:
                try:
                    q.get_nowait()
                    self.stats.dropped += 1
                except queue.Empty:  # the next stage took it meanwhile
                    pass

    # ------------------------------------------------------------------ stages
    def _read(self, out: "queue.Queue") -> None:
        frames = iter(self.source)
        while not self._stop.is_set():
            start = time.perf_counter()
            frame = next(frames, None)
            if frame is None:
                return
            captured = frame.captured if frame.captured is not None else time.monotonic()
            item = PipelineItem(frame, captured, (time.perf_counter() - start) * 1000)
            (self._put_latest if self.live else self._put)(out, item)

    def _detect(self, item: PipelineItem) -> PipelineItem:
        number, self._detect_count = self._detect_count, self._detect_count + 1
        if self.boxes_for is not None:
            item.boxes, item.box_scores = self.boxes_for(item.frame)
        if item.boxes is None and self.stream.estimator.detector is not None \
                and self.stream.scheduled_detection(number):
            start = time.perf_counter()
            item.detections = self.stream.detect(item.frame.image)
            item.detect_ms = (time.perf_counter() - start) * 1000
        return item

    def _pose(self, item: PipelineItem) -> PipelineItem:
        item.result = self.stream.process(item.frame.image, item.frame.timestamp, boxes=item.boxes,
                                          box_scores=item.box_scores, flip_test=self.flip_test,
                                          return_heatmaps=self.return_heatmaps, detections=item.detections)
        item.result.timings["detect"] += item.detect_ms
        return item

    def _worker(self, stage: Callable[..., Any], src: Optional["queue.Queue"], dst: "queue.Queue") -> None:
        """One stage's thread: items from `src` through `stage` into `dst` (the read stage has no `src`); any error
        stops the pipeline and is kept for `run()` to raise. _END always goes on, so the next stage finishes."""
        try:
            if src is None:
                stage(dst)
            else:
                item = self._get(src)
                while item is not _END:
                    self._put(dst, stage(item))
                    item = self._get(src)
        except BaseException as err:  # noqa: BLE001 - re-raised on the caller's thread by run()
            self._error = self._error or err
            self._stop.set()
        finally:
            self._put(dst, _END)

    # ------------------------------------------------------------------ running
    def _start(self) -> None:
        q0, q1, q2 = self._queues
        for name, stage, src, dst in (("read", self._read, None, q0), ("detect", self._detect, q0, q1),
                                      ("pose", self._pose, q1, q2)):
            thread = threading.Thread(target=self._worker, args=(stage, src, dst), name=f"pipeline-{name}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    def run(self, finish: Callable[[PipelineItem], bool]) -> PipelineStats:
        """Process the whole source; `finish(item)` runs on this thread for every frame in order (draw, write, show)
        and returns True to stop early. Returns the stats; re-raises a stage's error (and Ctrl-C) after stopping
        every stage."""
        self._start()
        try:
            item = self._get(self._queues[2])
            while item is not _END:
                stop = finish(item)
                self.stats.frames += 1
                self.stats.add_latency((time.monotonic() - item.captured) * 1000)
                if stop:
                    break
                item = self._get(self._queues[2])
        finally:
            self.close()
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
        self.stats.dropped += int(getattr(self.source, "dropped", 0) or 0)
        self.stats.reconnects = int(getattr(self.source, "reconnects", 0) or 0)
        self.stats.skipped = int(getattr(self.source, "num_skipped", 0) or 0)
