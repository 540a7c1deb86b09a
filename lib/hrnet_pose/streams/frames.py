"""What every frame source shares: `Frame` (one frame and where it came from), the `FrameSource` base class, the
errors a source raises, and the OpenCV capture helpers that files and live sources both use (a capture opened with
OpenCV's and FFmpeg's own warnings silenced; fps, size and frame count read from it with a fallback).

`SourceError` is a user error (a source that cannot be opened or read: exit status 2 in the tools); `SourceLostError`
is a live source that stopped delivering frames mid-run (an unplugged camera, a stream that did not come back): its
own exit status, `EXIT_SOURCE_LOST`, and its own message, so a script can tell it from a wrong argument.
"""

import logging
import math
import os
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Tuple

import cv2
import numpy as np

from ..errors import UserError

__all__ = ["Frame", "FrameSource", "SourceError", "SourceLostError", "EXIT_SOURCE_LOST", "FALLBACK_FPS"]

logger = logging.getLogger(__name__)

FALLBACK_FPS = 30.0
EXIT_SOURCE_LOST = 3  # 2 is a wrong argument (argparse's and run_cli's), 130 is Ctrl-C


class SourceError(UserError):
    """A source that cannot be opened or read: the message names it and says what would be valid."""


class SourceLostError(SourceError):
    """A live source (webcam, stream) that delivered frames and then stopped: unplugged, taken by another program, or
    a stream that did not come back within its reconnect window. What was processed until then is kept."""

    exit_status = EXIT_SOURCE_LOST


@dataclass
class Frame:
    """One frame. index: position in the file (or capture count for live sources, gaps = skipped frames);
    timestamp: seconds (video position for files, wall clock since opening for live sources, 0 for images);
    image: BGR uint8 [H, W, 3]; name: the image's path ('' for videos and streams); image_id: the number of a
    COCO-style numeric file name (000000000785.jpg -> 785), else None; captured: `time.monotonic()` when a live
    source's camera thread got it (None for files), the start of its frame-to-result latency."""

    index: int
    timestamp: float
    image: np.ndarray
    name: str = ""
    image_id: Optional[int] = None
    captured: Optional[float] = None


class FrameSource:
    """Base: an iterable of `Frame`s with `kind`, `fps`, `size` ((w, h) or None), `num_frames` (None when unknown),
    `is_live`; `close()` releases it, and so does leaving a `with` block."""

    kind: str = ""
    is_live: bool = False

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.fps: Optional[float] = None
        self.size: Optional[Tuple[int, int]] = None
        self.num_frames: Optional[int] = None

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.spec!r}, kind={self.kind!r}, fps={self.fps}, size={self.size}, "
                f"num_frames={self.num_frames})")


def _capture_props(cap: Any, name: str, live: bool) -> Tuple[Optional[float], Optional[Tuple[int, int]],
                                                                Optional[int]]:
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    if not math.isfinite(fps) or fps <= 0 or fps > 1000:
        logger.warning("%s reports %s frames per second; using %g", name, fps, FALLBACK_FPS)
        fps = FALLBACK_FPS
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    return fps, ((w, h) if w > 0 and h > 0 else None), (count if count > 0 and not live else None)


def _quiet_capture(*args: Any) -> "cv2.VideoCapture":
    """cv2.VideoCapture with OpenCV's and FFmpeg's own warnings silenced: a failure is reported once, by our message.

    OPENCV_FFMPEG_LOGLEVEL is read when OpenCV first initialises FFmpeg; a user's own setting wins.
    """
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        return cv2.VideoCapture(*args)
    finally:
        cv2.utils.logging.setLogLevel(level)
