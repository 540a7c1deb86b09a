"""Frame sources for inference: an image, a folder or glob of images, a video file, a webcam, an RTSP/HTTP stream.

`open_source(spec)` -> a `FrameSource`: an iterable of `Frame(index, timestamp, image BGR uint8 [H, W, 3], name,
image_id)` with `kind`, `fps`, `size`, `num_frames`, `is_live`, `close()`, usable as a context manager.

Files are processed frame by frame, every frame. Live sources (webcam, stream URL) are read on a background thread by
`LatestFrameReader`, which keeps only the newest frame(s): when inference is slower than the camera, frames are
skipped instead of queueing up, so the output stays current (the capture-queue latency problem of a plain read loop).
Skipped frames show as gaps in `Frame.index`, which counts captured frames. A stream URL that drops after it has
worked is reopened with backoff (`ReconnectingCapture`, counted in `LiveSource.reconnects`).

Images are read as the COCO dataset reads them (`cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION`: EXIF rotation is
ignored, like the official HRNet loader), so results on a dataset's files match `tools/test.py`.
"""

import collections
import glob
import logging
import math
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Deque, Iterator, List, Optional, Tuple, Union

import cv2
import numpy as np

from ..datasets.coco import ImageReadError
from ..datasets.coco import read_image as read_dataset_image
from ..errors import UserError

__all__ = ["Frame", "FrameSource", "ImageSource", "VideoSource", "LiveSource", "LatestFrameReader",
           "ReconnectingCapture", "SourceError",
           "open_source", "is_image_path", "is_video_path", "is_url", "IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS"]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".jp2")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts",
                    ".3gp", ".gif")
URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp")
FALLBACK_FPS = 30.0
FIRST_FRAME_TIMEOUT_S = 15.0
# FFmpeg's own defaults wait ~30 s on an unreachable stream; these make a wrong URL fail in seconds
STREAM_OPEN_TIMEOUT_MS = 10000
STREAM_READ_TIMEOUT_MS = 10000
# failed reads in a row that end a video file: OpenCV's read() fails once per frame that does not decode and goes on
# with the next one, and fails every time at the end, so a short run is a damaged frame and a long one the end
MAX_UNDECODABLE_RUN = 16
_VALID = ("valid sources: an image file, a folder of images, a glob ('imgs/*.jpg'), a video file "
          f"({', '.join(VIDEO_EXTENSIONS[:5])}, ...), a webcam index (0) or an rtsp:// / http(s):// URL")


_UNKNOWN: Any = object()


class SourceError(UserError):
    """A source that cannot be opened or read: the message names it and says what would be valid."""


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


def is_url(spec: Any) -> bool:
    return isinstance(spec, str) and re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://", spec) is not None \
        and spec.split("://", 1)[0].lower() in URL_SCHEMES


def is_image_path(path: str) -> bool:
    return os.path.splitext(str(path))[1].lower() in IMAGE_EXTENSIONS


def is_video_path(path: str) -> bool:
    """A video file name (by extension), including URLs whose path ends in one (http://host/clip.mp4)."""
    path = str(path).split("?", 1)[0] if is_url(path) else str(path)
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def _natural_key(path: str) -> List[Any]:
    # frame2.jpg before frame10.jpg, as a person would order them
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path)]


def _image_id(path: str) -> Optional[int]:
    stem = os.path.splitext(os.path.basename(path))[0]
    return int(stem) if stem.isdigit() else None


def read_image(path: str) -> np.ndarray:
    """BGR uint8 [H, W, 3] read by the dataset's own reader; SourceError naming the file when missing or
    undecodable."""
    try:
        return read_dataset_image(path, color_rgb=False)
    except ImageReadError as err:
        raise SourceError(str(err)) from err


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


class ImageSource(FrameSource):
    """Image files in order. A single named image must be readable (checked at open); in a folder or glob an
    unreadable file is skipped with a warning and counted in `num_skipped`."""

    kind = "images"

    def __init__(self, spec: str, paths: List[str], single: bool) -> None:
        super().__init__(spec)
        self.paths = paths
        self.single = single
        self.num_frames = len(paths)
        self.num_skipped = 0
        self._first: Optional[np.ndarray] = read_image(paths[0]) if single else None

    @property
    def size(self) -> Optional[Tuple[int, int]]:
        """(w, h) shared by every image, None when they differ; looked up on first use (a header read per file)."""
        if self._size is _UNKNOWN:
            self._size = (self._first.shape[1], self._first.shape[0]) if self._first is not None else \
                _common_image_size(self.paths)
        return self._size

    @size.setter
    def size(self, value: Optional[Tuple[int, int]]) -> None:
        self._size = _UNKNOWN if value is None else value

    def __iter__(self) -> Iterator[Frame]:
        self.num_skipped = 0
        for index, path in enumerate(self.paths):
            if self._first is not None and index == 0:
                image = self._first
            else:
                try:
                    image = read_image(path)
                except SourceError as err:
                    if self.single:
                        raise
                    self.num_skipped += 1
                    logger.warning("skipping %s (%d skipped so far)", err, self.num_skipped)
                    continue
            yield Frame(index, 0.0, image, path, _image_id(path))


def _common_image_size(paths: List[str]) -> Optional[Tuple[int, int]]:
    """(w, h) shared by all images, else None. Reads headers only (PIL opens lazily); None when PIL is missing."""
    try:
        from PIL import Image
    except ImportError:
        return None
    sizes = set()
    for path in paths:
        try:
            with Image.open(path) as im:
                sizes.add(im.size)  # raw size: orientation is ignored, like our cv2 reading
        except Exception:  # noqa: BLE001 - an unreadable file is reported (and skipped) when it is read
            continue
        if len(sizes) > 1:
            return None
    return sizes.pop() if len(sizes) == 1 else None


def _capture_props(cap: Any, name: str, live: bool) -> Tuple[Optional[float], Optional[Tuple[int, int]],
                                                                Optional[int]]:
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    if not math.isfinite(fps) or fps <= 0 or fps > 1000:
        logger.warning("%s reports %s frames per second; using %g", name, fps, FALLBACK_FPS)
        fps = FALLBACK_FPS
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    return fps, ((w, h) if w > 0 and h > 0 else None), (count if count > 0 and not live else None)


class VideoSource(FrameSource):
    """Every frame of a video file; timestamp = index / fps. `num_frames` is the container's count (an estimate
    for some formats; iteration reads until the decoder stops). A frame that fails to decode is skipped and counted
    in `num_skipped` (its index is kept free, so timestamps stay right); more than MAX_UNDECODABLE_RUN failed reads
    in a row are the end of the file."""

    kind = "video"

    def __init__(self, spec: str) -> None:
        super().__init__(spec)
        if not is_url(spec) and not os.path.isfile(spec):
            raise SourceError(f"video file {spec} does not exist; {_VALID}")
        self._cap = _quiet_capture(spec)
        if not self._cap.isOpened():
            self._cap.release()
            raise SourceError(f"video {spec} could not be opened (not a video, corrupt, or a codec that OpenCV's "
                              f"FFmpeg cannot decode); try converting it: ffmpeg -i {spec} -c:v libx264 out.mp4")
        self.fps, self.size, self.num_frames = _capture_props(self._cap, f"video {spec}", live=False)
        self.num_skipped = 0
        self._used = False

    def __iter__(self) -> Iterator[Frame]:
        if self._used:
            raise SourceError(f"video {self.spec} was already read; open it again to read it twice")
        self._used = True
        index = failures = 0
        while self._cap is not None and failures <= MAX_UNDECODABLE_RUN:
            ok, image = self._cap.read()
            if not ok or image is None:
                failures += 1  # a frame that does not decode, or the end: the reads after it tell which
                continue
            if failures:
                self.num_skipped += failures
                logger.warning("video %s: %d frame(s) before frame %d could not be decoded; skipped (%d so far)",
                               self.spec, failures, index + failures, self.num_skipped)
                index, failures = index + failures, 0
            yield Frame(index, index / self.fps, image)
            index += 1
        if self.num_frames is not None and index != self.num_frames:
            logger.info("video %s: read %d frames, the container said %d", self.spec, index, self.num_frames)
        self.close()

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class PacedSource(FrameSource):
    """A video file played as a camera would deliver it: frames released at the file's frame rate (or `fps`), stamped
    with their release time as `captured`, and `is_live`, so a pipeline keeps the newest and drops the stale ones.
    For measuring live behaviour (latency, drops) reproducibly from a file."""

    kind = "paced video"
    is_live = True

    def __init__(self, source: FrameSource, fps: Optional[float] = None) -> None:
        super().__init__(source.spec)
        self.source = source
        self.fps = float(fps or source.fps or FALLBACK_FPS)
        self.size, self.num_frames = source.size, source.num_frames

    def __iter__(self) -> Iterator[Frame]:
        start = time.monotonic()
        for i, frame in enumerate(self.source):
            delay = start + i / self.fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            frame.captured = time.monotonic()
            yield frame

    def close(self) -> None:
        self.source.close()


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
    """A webcam or stream URL read by a `LatestFrameReader` (see module docstring). timestamp: seconds since open."""

    is_live = True

    def __init__(self, spec: Union[str, int], capture: Any, kind: str, buffer: int = 1) -> None:
        super().__init__(str(spec))
        self.kind = kind
        label = f"webcam {spec}" if kind == "webcam" else f"stream {spec}"
        self.fps, self.size, self.num_frames = _capture_props(capture, label, live=True)
        self.reader = LatestFrameReader(capture, label, buffer)

    def __iter__(self) -> Iterator[Frame]:
        frame = self.reader.read(FIRST_FRAME_TIMEOUT_S)
        while frame is not None:
            yield frame
            frame = self.reader.read()

    @property
    def dropped(self) -> int:
        return self.reader.dropped

    @property
    def reconnects(self) -> int:
        """Times a dropped stream was reopened (`ReconnectingCapture`); 0 for webcams."""
        return int(getattr(self.reader.capture, "reconnects", 0))

    def close(self) -> None:
        cancel = getattr(self.reader.capture, "cancel", None)
        if cancel is not None:  # a reader waiting to reopen the stream stops now, not after its backoff
            cancel()
        self.reader.close()


def _video_devices() -> List[str]:
    return sorted(glob.glob("/dev/video*"), key=_natural_key)


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


def _open_webcam(index: int, buffer: int) -> LiveSource:
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


def _open_stream(url: str, buffer: int) -> LiveSource:
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


def _images_from_glob(pattern: str) -> List[str]:
    matches = sorted((p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p)), key=_natural_key)
    images = [p for p in matches if is_image_path(p)]
    if not images:
        other = f"; it matches {len(matches)} files, none with an image extension ({', '.join(IMAGE_EXTENSIONS)})" \
            if matches else "; it matches no file"
        raise SourceError(f"glob {pattern}{other}")
    return images


def open_source(spec: Union[str, int, os.PathLike], live_buffer: int = 1) -> FrameSource:
    """A FrameSource for `spec` (see module docstring); SourceError naming the spec when it cannot be opened.

    Order: webcam index (int, or digits that are not a file), URL (an http(s) URL ending in a video extension is read
    as a file: every frame), folder, image file, video file, glob. live_buffer: frames kept for a slow consumer of
    a live source (1 = only the newest).
    """
    if isinstance(spec, bool) or not isinstance(spec, (str, int, os.PathLike)):
        raise SourceError(f"source must be a path, a webcam index or a URL, got {type(spec).__name__}; {_VALID}")
    if isinstance(spec, int):
        return _open_webcam(spec, live_buffer)
    spec = os.fspath(spec)
    if spec.strip().isdigit() and not os.path.exists(spec):
        return _open_webcam(int(spec), live_buffer)
    if is_url(spec):
        return VideoSource(spec) if spec.lower().startswith("http") and is_video_path(spec) else \
            _open_stream(spec, live_buffer)
    if os.path.isdir(spec):
        files = sorted((os.path.join(spec, f) for f in os.listdir(spec)), key=_natural_key)
        images = [p for p in files if os.path.isfile(p) and is_image_path(p)]
        if not images:
            videos = [os.path.basename(p) for p in files if is_video_path(p)]
            hint = f" (it has videos: {', '.join(videos[:3])}; give one of them as the source)" if videos else ""
            raise SourceError(f"folder {spec} has no images with extensions {', '.join(IMAGE_EXTENSIONS)}{hint}")
        return ImageSource(spec, images, single=False)
    if os.path.isfile(spec):
        if is_image_path(spec):
            return ImageSource(spec, [spec], single=True)
        if is_video_path(spec):
            return VideoSource(spec)
        if cv2.haveImageReader(spec):  # an image with an unusual extension
            return ImageSource(spec, [spec], single=True)
        raise SourceError(f"{spec} is neither an image ({', '.join(IMAGE_EXTENSIONS)}) nor a video "
                          f"({', '.join(VIDEO_EXTENSIONS)}) by its extension, nor a decodable image")
    if any(ch in spec for ch in "*?["):
        return ImageSource(spec, _images_from_glob(spec), single=False)
    raise SourceError(f"source {spec} does not exist; {_VALID}")
