"""The demo's outputs and its summary: annotated images, `predictions.json`, a stream's `<name>.mp4` and
`<name>.jsonl`, and the lines printed at the end.

Every file goes through `hrnet_pose.fileio` (written under a temporary name beside the final one, published when
complete): a stream's outputs are published by `StreamOutputs.commit()` when the run ends normally, is stopped by the
user (q, Esc, Ctrl-C) or loses its camera (the frames until then are a whole recording), and dropped by `abort()`
when the run fails, so that no half-written file carries the final name after an error.

A stream's JSON lines hold one record per frame, `{"frame", "timestamp", "persons"}`, whose persons are the frame's
COCO results entries (`PoseResult.to_coco`, the same serialisation as predictions.json, rounded). A live source's
video is written at the rate frames were actually finished (measured on its first frames), not the camera's nominal
rate: frames dropped to stay live would otherwise make the recording play too fast.
"""

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..errors import UserError
from ..fileio import AtomicFile, atomic_path
from .result import PoseResult

__all__ = ["STAGES", "DemoSummary", "StreamOutputs", "frame_record", "write_image_atomic", "measured_rate"]

logger = logging.getLogger(__name__)

STAGES = ("read", "detect", "pose", "draw", "write")
# a live recording's frame rate is measured over its first frames: this many, or this many seconds of them
RATE_FRAMES = 16
RATE_SPAN_S = 2.0


def write_image_atomic(path: str, image: np.ndarray) -> None:
    """An annotated image under `path`, published whole; UserError naming the file when OpenCV cannot write it."""
    import cv2

    ext = os.path.splitext(path)[1]
    with atomic_path(path) as tmp:
        if not cv2.imwrite(tmp, image):
            raise UserError(f"could not write {path} (is {os.path.dirname(path) or '.'} writable, and {ext!r} an "
                            "image extension OpenCV knows?)")


def frame_record(index: int, timestamp: float, result: PoseResult) -> Dict[str, Any]:
    """One JSON line of a stream's predictions: the frame's index and timestamp and its COCO results entries
    (`PoseResult.to_coco` with image_id = the frame index, coordinates to 0.01 px, scores to 1e-4)."""
    return {"frame": int(index), "timestamp": round(float(timestamp), 4),
            "persons": result.to_coco(int(index), decimals=2)}


def measured_rate(timestamps: List[float], nominal: float) -> float:
    """Frames per second of a live recording from its frames' capture timestamps (s): the mean rate after the first
    frame (which waited for the models' first run), `nominal` when too few frames or no time passed."""
    if len(timestamps) < 3 or timestamps[-1] <= timestamps[1]:
        return nominal
    rate = (len(timestamps) - 2) / (timestamps[-1] - timestamps[1])
    return float(min(max(rate, 0.1), 1000.0))


class StreamOutputs:
    """A stream's outputs under `out_dir`: `<name>.jsonl`, one JSON line per frame, and unless `save_video` is False
    `<name>.mp4`, opened at the first frame's size (for a `live` source once its rate is measured, see the module
    docstring). Written under temporary names until `commit()` (published) or `abort()` (dropped)."""

    def __init__(self, out_dir: str, name: str, fps: float, save_video: bool, live: bool = False) -> None:
        self.jsonl_path = os.path.join(out_dir, f"{name}.jsonl")
        self.video_path = os.path.join(out_dir, f"{name}.mp4")
        self.fps, self.save_video, self.live = float(fps), save_video, live
        self.writer: Any = None
        self.video_fps: Optional[float] = None
        self._held: List[Tuple[np.ndarray, float]] = []  # a live source's first frames, until the rate is known
        self._jsonl = AtomicFile(self.jsonl_path)

    def write_record(self, record: Dict[str, Any]) -> None:
        """The frame's JSON line (`frame_record`)."""
        import json

        self._jsonl.write(json.dumps(record) + "\n")

    def write_frame(self, canvas: Optional[np.ndarray], timestamp: float = 0.0) -> None:
        """The frame's annotated image (when the video is saved); `timestamp`: its capture time, s."""
        if not self.save_video or canvas is None:
            return
        if self.writer is None and self.live:
            self._held.append((canvas, float(timestamp)))
            if len(self._held) >= RATE_FRAMES or self._held[-1][1] - self._held[0][1] >= RATE_SPAN_S:
                self._open_held()
            return
        if self.writer is None:
            self._open(canvas, self.fps)
        self.writer.write(canvas)

    def _open(self, canvas: np.ndarray, fps: float) -> None:
        from ..streams.video_writer import VideoWriter

        h, w = canvas.shape[:2]
        self.video_fps = fps
        self.writer = VideoWriter(self.video_path, fps, (w, h))

    def _open_held(self) -> None:
        """Open the writer at the measured rate and write the frames held meanwhile."""
        held, self._held = self._held, []
        if not held:
            return
        rate = round(measured_rate([t for _, t in held], self.fps), 2)
        if abs(rate - self.fps) > 0.05 * self.fps:
            logger.info("recording %s at %.2f fps, the rate frames were finished (the camera says %g fps; frames "
                        "dropped to stay live would make it play too fast)", self.video_path, rate, self.fps)
        self._open(held[0][0], rate)
        for canvas, _ in held:
            self.writer.write(canvas)

    def commit(self) -> List[str]:
        """Finish both files under their final names; returns the paths written (video first)."""
        written = []
        if self._held:
            self._open_held()
        if self.writer is not None:
            path = self.writer.close()
            if path:
                written.append(path)
        return written + [self._jsonl.commit()]

    def abort(self) -> None:
        """Drop both files: nothing appears under the final names."""
        self._held = []
        if self.writer is not None:
            self.writer.abort()
        self._jsonl.abort()


@dataclass
class DemoSummary:
    """What a demo run did, for the console (`format()`); `interrupted` (Ctrl-C) and `source_lost` (the camera's
    error) say why it ended early, with the outputs kept; `raise_for_status()` re-raises them for the exit status."""

    frames: int = 0
    persons: int = 0
    stage_ms: Dict[str, float] = field(default_factory=lambda: {s: 0.0 for s in STAGES})
    wall_s: float = 0.0
    outputs: List[str] = field(default_factory=list)
    interrupted: bool = False
    source_lost: Optional[BaseException] = None
    flip_test: str = ""  # on/off and why, e.g. "flip test off (live source; --flip-test turns it on)"
    stream: Any = None  # streams: the pipeline's PipelineStats (latency, dropped, reconnects, skipped)
    detector_calls: Optional[int] = None
    warmup_dropped: int = 0  # live frames the camera thread dropped before the first frame was finished
    video_fps: Optional[float] = None

    def add(self, result: PoseResult, read_ms: float, draw_ms: float, write_ms: float) -> None:
        self.frames += 1
        self.persons += len(result)
        t = result.timings
        self.stage_ms["read"] += read_ms + t.get("read", 0.0)
        self.stage_ms["detect"] += t.get("detect", 0.0)
        self.stage_ms["pose"] += t.get("preprocess", 0.0) + t.get("pose", 0.0) + t.get("decode", 0.0)
        self.stage_ms["draw"] += draw_ms
        self.stage_ms["write"] += write_ms

    def mean_ms(self) -> Dict[str, float]:
        return {k: v / max(self.frames, 1) for k, v in self.stage_ms.items()}

    @property
    def fps(self) -> float:
        """Frames finished per second of the run, end to end (reading to writing, pipelining included)."""
        return self.frames / self.wall_s if self.wall_s > 0 else float("nan")

    def format(self) -> str:
        stages = ", ".join(f"{k} {v:.1f}" for k, v in self.mean_ms().items())
        why = "stopped by Ctrl-C: " if self.interrupted else "camera lost: " if self.source_lost else ""
        overlap = " (stages overlap when pipelined)" if self.stream is not None else ""
        lines = [f"{why}{self.frames} frames, {self.persons} persons in {self.wall_s:.1f} s: {self.fps:.1f} FPS end "
                 f"to end; mean ms per frame by stage{overlap}: {stages}"]
        if self.stream is not None:
            lines.append(self._stream_line())
        if self.flip_test:
            lines.append(self.flip_test)
        lines += [f"wrote {p}" for p in self.outputs]
        return "\n".join(lines)

    def _stream_line(self) -> str:
        st = self.stream
        det = f"; detector on {self.detector_calls} frames" if self.detector_calls is not None else ""
        stale = max(0, int(st.dropped) - self.warmup_dropped)
        warmup = f" (and {self.warmup_dropped} while the models started)" if self.warmup_dropped else ""
        return (f"latency capture to drawn frame mean {st.mean_latency_ms:.1f} ms, p95 {st.latency_percentile(95):.1f} "
                f"ms, max {st.latency_max_ms:.1f} ms; {stale} stale frames dropped{_stale(st)}{warmup}, {st.reconnects} "
                f"reconnects, {st.skipped} undecodable frames skipped{det}")

    def raise_for_status(self) -> None:
        """Re-raise what ended the run early (KeyboardInterrupt, the lost camera's error) after the outputs were
        closed, so that the command line's exit status says it (130, 3); nothing after a normal end."""
        if self.source_lost is not None:
            raise self.source_lost
        if self.interrupted:
            raise KeyboardInterrupt


def _stale(stats: Any) -> str:
    """' (stale at detect N, pose N, finish N)' for a live stream's stages, '' when none was replaced."""
    stale = getattr(stats, "stale", {})
    return f" (stale at {', '.join(f'{k} {v}' for k, v in stale.items())})" if any(stale.values()) else ""
