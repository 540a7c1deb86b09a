"""Live sources: a webcam or an RTSP/HTTP stream, read on a background thread that keeps only the newest frame(s).

`LatestFrameReader` reads a capture on a daemon thread: when inference is slower than the camera, frames are skipped
instead of queueing up, so the output stays current (the capture-queue latency problem of a plain read loop). Skipped
frames show as gaps in `Frame.index`, which counts captured frames. `ReconnectingCapture` reopens a stream URL that
drops after it has worked, with backoff (counted in `LiveSource.reconnects`). `LiveSource` puts them behind the
`FrameSource` interface.

A live source that stops delivering frames after it has worked (a webcam unplugged, a stream that does not come back
within its reconnect window, a camera that sends nothing for `STALL_TIMEOUT_S`) raises `SourceLostError`: a lost
camera is an error with its own message and exit status, never a quiet end of the run.
"""

import collections
import glob
import logging
import os
import re
import threading
import time
from typing import Any, Callable, Deque, Iterator, List, Optional, Tuple, Union

import cv2
import numpy as np

from .frames import Frame, FrameSource, SourceError, SourceLostError, _capture_props, _quiet_capture

__all__ = ["LatestFrameReader", "ReconnectingCapture", "LiveSource", "open_webcam", "open_stream",
           "FIRST_FRAME_TIMEOUT_S", "STALL_TIMEOUT_S"]

logger = logging.getLogger(__name__)

FIRST_FRAME_TIMEOUT_S = 15.0
# a camera that has delivered and then sends nothing for this long is lost (a webcam's frame comes every 33-100 ms;
# a stream's own reconnects give up after ReconnectingCapture.give_up_s, which this leaves room for)
STALL_TIMEOUT_S = 90.0
# FFmpeg's own defaults wait ~30 s on an unreachable stream; these make a wrong URL fail in seconds
STREAM_OPEN_TIMEOUT_MS = 10000
STREAM_READ_TIMEOUT_MS = 10000


def _natural_key(path: str) -> List[Any]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path)]


class LatestFrameReader:
    """Reads a capture (anything with read() -> (ok, image), isOpened(), release()) on a daemon thread and keeps only
    the newest `buffer` frames, so a slow consumer gets recent frames instead of an ever older backlog.

    `read(timeout)` returns the oldest kept frame not yet returned (with buffer=1: the newest frame), waiting for one;
    None once the capture has ended and every kept frame was returned. `dropped` counts frames never returned. The
    thread stops at end of stream (a failed read) or on `close()`, and releases the capture itself.
    """

    def __init__(self, capture: Any, name: str = "stream", buffer: int = 1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if int(buffer) < 1:
            raise ValueError(f"live_buffer must be >= 1 (frames kept for a slow consumer), got {buffer}")
        self.capture = capture
        self.name = name
        self._frames: Deque[Frame] = collections.deque(maxlen=int(buffer))
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._clock = clock
        self._start = clock()
        self.frames_read = 0
        self.dropped = 0
        self.ended = False
        self.error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name=f"LatestFrameReader({name})", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                ok, image = self.capture.read()
                if not ok or image is None:
                    break
                frame = Frame(self.frames_read, self._clock() - self._start, image, captured=time.monotonic())
                with self._cond:
                    if len(self._frames) == self._frames.maxlen:
                        self.dropped += 1
                    self._frames.append(frame)
                    self.frames_read += 1
                    self._cond.notify_all()
        except Exception as err:  # noqa: BLE001 - handed to the consumer, whose read() re-raises it
            self.error = err
        finally:
            self.capture.release()
            with self._cond:
                self.ended = True
                self._cond.notify_all()

    def read(self, timeout: Optional[float] = None) -> Optional[Frame]:
        """The next kept frame; None at end of stream. SourceError after `timeout` seconds without a frame."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._frames or self.ended, timeout):
                raise SourceError(f"{self.name}: no frame arrived within {timeout:g} s (camera busy, or the stream "
                                  f"is not sending)")
            if self._frames:
                return self._frames.popleft()
        if self.error is not None:
            raise SourceError(f"{self.name}: reading failed: {self.error}") from self.error
        return None

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def close(self, timeout: float = 2.0) -> None:
        """Stop the thread (it finishes the read in progress) and wait up to `timeout` s for it."""
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        if self._thread.is_alive():
            logger.warning("%s: capture thread still blocked in read(); it releases the capture when read returns",
                           self.name)


class ReconnectingCapture:
    """A stream's capture that reopens the stream when it drops (a failed read: the server closed the connection, the
    network went away), waiting `first_wait_s`, then twice as long each failed try up to `max_wait_s`, and giving up
    (end of stream) after `give_up_s` without a frame. `reconnects` counts successful reopenings. Frame counting,
    dropping and timestamps stay with the `LatestFrameReader` that reads it, so they run on across a reconnect.
    `cancel()` ends a wait at once (closing the source)."""

    def __init__(self, open_capture: Callable[[], Any], name: str, capture: Any, first_wait_s: float = 0.25,
                 max_wait_s: float = 8.0, give_up_s: float = 60.0) -> None:
        self._open = open_capture
        self.name = name
        self._cap: Any = capture
        self.first_wait_s, self.max_wait_s, self.give_up_s = first_wait_s, max_wait_s, give_up_s
        self.reconnects = 0
        self._cancel = threading.Event()

    def read(self) -> Tuple[bool, Optional[np.ndarray]]:
        ok, image = self._cap.read() if self._cap is not None else (False, None)
        if ok and image is not None:
            return True, image
        return self._reconnect()

    def _reconnect(self) -> Tuple[bool, Optional[np.ndarray]]:
        deadline, wait = time.monotonic() + self.give_up_s, self.first_wait_s
        while not self._cancel.is_set() and time.monotonic() < deadline:
            self._release_capture()
            logger.warning("%s dropped; reopening in %g s", self.name, wait)
            if self._cancel.wait(wait):
                break
            cap = self._open()
            ok, image = cap.read() if cap.isOpened() else (False, None)
            if ok and image is not None:
                self._cap = cap
                self.reconnects += 1
                logger.warning("%s reopened (reconnect %d)", self.name, self.reconnects)
                return True, image
            cap.release()
            wait = min(2 * wait, self.max_wait_s)
        if not self._cancel.is_set():
            logger.warning("%s: no frame for %g s of reopening; ending the stream", self.name, self.give_up_s)
        return False, None

    def get(self, prop: int) -> float:
        return self._cap.get(prop) if self._cap is not None else 0.0

    def isOpened(self) -> bool:
        return self._cap is not None and self._cap.isOpened()

    def cancel(self) -> None:
        self._cancel.set()

    def _release_capture(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()

    def release(self) -> None:
        self.cancel()
        self._release_capture()


class LiveSource(FrameSource):
    """A webcam or stream URL read by a `LatestFrameReader` (see module docstring). timestamp: seconds since open.

    A webcam never ends by itself: when its reads fail (unplugged, taken by another program, the driver gone) or it
    sends nothing for `stall_timeout_s`, iteration raises `SourceLostError` after the frames it delivered. A stream
    that drops is reopened by its `ReconnectingCapture`, which says so at WARNING and ends the stream after its
    give-up window (a broadcast may end); a stream's reading error is also a `SourceLostError`."""

    is_live = True

    def __init__(self, spec: Union[str, int], capture: Any, kind: str, buffer: int = 1,
                 stall_timeout_s: Optional[float] = None) -> None:
        super().__init__(str(spec))
        self.kind = kind
        self.label = f"webcam {spec}" if kind == "webcam" else f"stream {spec}"
        self.fps, self.size, self.num_frames = _capture_props(capture, self.label, live=True)
        self.stall_timeout_s = stall_timeout_s if stall_timeout_s is not None else (
            STALL_TIMEOUT_S if kind == "webcam" else None)
        self._closing = False
        self.reader = LatestFrameReader(capture, self.label, buffer)

    def __iter__(self) -> Iterator[Frame]:
        frame = self.reader.read(FIRST_FRAME_TIMEOUT_S)
        while frame is not None:
            yield frame
            try:
                frame = self.reader.read(self.stall_timeout_s)
            except SourceError as err:
                if self._closing:
                    return
                raise SourceLostError(f"{self.label} stopped after {self.reader.frames_read} frames: {err}",
                                      hint=self._lost_hint()) from err
        if self.kind == "webcam" and not self._closing:
            raise SourceLostError(f"{self.label} stopped delivering frames after {self.reader.frames_read} frames "
                                  "(unplugged, taken by another program, or its driver stopped)",
                                  hint=self._lost_hint())

    def _lost_hint(self) -> str:
        return "what was processed until then is kept; reconnect the camera and start again"

    @property
    def dropped(self) -> int:
        return self.reader.dropped

    @property
    def reconnects(self) -> int:
        """Times a dropped stream was reopened (`ReconnectingCapture`); 0 for webcams."""
        return int(getattr(self.reader.capture, "reconnects", 0))

    def close(self) -> None:
        self._closing = True  # the reader's end from here on is ours, not a lost camera
        cancel = getattr(self.reader.capture, "cancel", None)
        if cancel is not None:  # a reader waiting to reopen the stream stops now, not after its backoff
            cancel()
        self.reader.close()


def _video_devices() -> List[str]:
    return sorted(glob.glob("/dev/video*"), key=_natural_key)


def open_webcam(index: int, buffer: int) -> LiveSource:
    cap = _quiet_capture(index)
    if not cap.isOpened():
        cap.release()
        devices = _video_devices()
        found = (f"video devices present: {', '.join(devices)}" if devices else
                 "no /dev/video* device exists" if os.path.isdir("/dev") and os.name == "posix" else
                 "check the camera is connected and not in use by another program")
        raise SourceError(f"webcam {index} could not be opened ({found}); give another index, or a video file, "
                          f"image or URL")
    # fewer frames waiting in the driver's queue: less latency before our own latest-frame reader
    cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
    return LiveSource(index, cap, "webcam", buffer)


def open_stream(url: str, buffer: int) -> LiveSource:
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_OPEN_TIMEOUT_MS,
              cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_READ_TIMEOUT_MS]
    cap = _quiet_capture(url, cv2.CAP_ANY, params)
    if not cap.isOpened():
        cap.release()
        raise SourceError(f"stream {url} could not be opened (wrong address, credentials or network, no answer "
                          f"within {STREAM_OPEN_TIMEOUT_MS / 1000:g} s, or a protocol OpenCV's FFmpeg does not read)")
    # a wrong address fails at once (above); a stream that worked and then drops is reopened
    reopening = ReconnectingCapture(lambda: _quiet_capture(url, cv2.CAP_ANY, params), f"stream {url}", cap)
    return LiveSource(url, reopening, "stream", buffer)


