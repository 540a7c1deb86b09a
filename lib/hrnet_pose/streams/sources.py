"""Frame sources for inference: an image, a folder or glob of images, a video file, a webcam, an RTSP/HTTP stream.

`open_source(spec)` -> a `FrameSource`: an iterable of `Frame(index, timestamp, image BGR uint8 [H, W, 3], name,
image_id)` with `kind`, `fps`, `size`, `num_frames`, `is_live`, `close()`, usable as a context manager.

Files are processed frame by frame, every frame (this module). Live sources (webcam, stream URL) are read on a
background thread that keeps only the newest frame(s), and a stream that drops is reopened (`streams.live`); the
shared pieces (`Frame`, `FrameSource`, the errors, OpenCV capture helpers) are in `streams.frames`. The public names
of all three are importable from here.

A video with undecodable frames: a few in a row are skipped; a longer damaged stretch, which OpenCV cannot tell from
the end of the file, is read through as long as the container says frames remain, and said once as a WARNING with its
frame range (`VideoSource(on_damage='stop')` raises `DamagedVideoError` instead, the demo's `--stop-on-damaged-video`).

Images are read as the COCO dataset reads them (`cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION`: EXIF rotation is
ignored, like the official HRNet loader), so results on a dataset's files match `tools/test.py`.
"""

import glob
import logging
import os
import re
import time
from typing import Any, Iterator, List, Optional, Tuple, Union

import cv2
import numpy as np

from ..datasets.coco import ImageReadError
from ..datasets.coco import read_image as read_dataset_image
from .frames import (EXIT_SOURCE_LOST, FALLBACK_FPS, Frame, FrameSource, SourceError, SourceLostError, _capture_props,
                     _quiet_capture)
from .live import (FIRST_FRAME_TIMEOUT_S, STALL_TIMEOUT_S, LatestFrameReader, LiveSource, ReconnectingCapture,
                   open_stream, open_webcam)

__all__ = ["Frame", "FrameSource", "ImageSource", "VideoSource", "PacedSource", "LiveSource", "LatestFrameReader",
           "ReconnectingCapture", "SourceError", "SourceLostError", "DamagedVideoError", "EXIT_SOURCE_LOST",
           "open_source", "is_live_spec", "is_image_path", "is_video_path", "is_url", "IMAGE_EXTENSIONS",
           "VIDEO_EXTENSIONS", "FALLBACK_FPS", "FIRST_FRAME_TIMEOUT_S", "STALL_TIMEOUT_S"]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".jp2")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts",
                    ".3gp", ".gif")
URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp")
# failed reads in a row after which a video whose length is unknown has ended: OpenCV's read() fails once per frame
# that does not decode and goes on with the next one, and fails every time at the end. Where the container gives a
# frame count, a longer run that stops short of it is a damaged stretch, read through.
MAX_UNDECODABLE_RUN = 16
ON_DAMAGE = ("skip", "stop")
_VALID = ("valid sources: an image file, a folder of images, a glob ('imgs/*.jpg'), a video file "
          f"({', '.join(VIDEO_EXTENSIONS[:5])}, ...), a webcam index (0) or an rtsp:// / http(s):// URL")


class DamagedVideoError(SourceError):
    """Frames of a video file could not be decoded and the caller asked to stop there (`on_damage='stop'`)."""


_UNKNOWN: Any = object()


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


class VideoSource(FrameSource):
    """Every frame of a video file; timestamp = index / fps. `num_frames` is the container's count (an estimate
    for some formats; iteration reads until the decoder stops). A frame that fails to decode is skipped and counted
    in `num_skipped` (its index is kept free, so timestamps stay right), with one WARNING per damaged stretch naming
    its frame range. OpenCV fails a read per undecodable frame and fails every read at the end, so a run of failed
    reads is read through as long as the container says frames remain (else up to MAX_UNDECODABLE_RUN of them).
    `on_damage='stop'` raises `DamagedVideoError` at the first damaged stretch instead."""

    kind = "video"

    def __init__(self, spec: str, on_damage: str = "skip") -> None:
        super().__init__(spec)
        if on_damage not in ON_DAMAGE:
            raise ValueError(f"on_damage must be one of {ON_DAMAGE}, got {on_damage!r}")
        if not is_url(spec) and not os.path.isfile(spec):
            raise SourceError(f"video file {spec} does not exist; {_VALID}")
        self._cap = _quiet_capture(spec)
        if not self._cap.isOpened():
            self._cap.release()
            raise SourceError(f"video {spec} could not be opened (not a video, corrupt, or a codec that OpenCV's "
                              f"FFmpeg cannot decode); try converting it: ffmpeg -i {spec} -c:v libx264 out.mp4")
        self.fps, self.size, self.num_frames = _capture_props(self._cap, f"video {spec}", live=False)
        self.on_damage = on_damage
        self.num_skipped = 0
        self._used = False

    def _run_limit(self, index: int) -> int:
        """Failed reads in a row after which the file has ended: the frames the container still lists (a damaged
        stretch can be no longer), at least MAX_UNDECODABLE_RUN."""
        return MAX_UNDECODABLE_RUN if self.num_frames is None else max(MAX_UNDECODABLE_RUN, self.num_frames - index)

    def _damaged(self, first: int, last: int, at_end: bool) -> None:
        """Frames first..last did not decode: a WARNING (or DamagedVideoError with on_damage='stop')."""
        count = last - first + 1
        self.num_skipped += count
        where = (f"frames {first}-{last} ({count} frames)" if count > 1 else f"frame {first}") + \
            (f" of the {self.num_frames} the container lists" if at_end else "")
        if self.on_damage == "stop":
            raise DamagedVideoError(f"video {self.spec}: {where} could not be decoded", hint=(
                "without --stop-on-damaged-video such frames are skipped with a warning; to repair the file: "
                f"ffmpeg -i {self.spec} -c:v libx264 repaired.mp4"))
        logger.warning("video %s: %s could not be decoded; %s (%d skipped so far)", self.spec, where,
                       "the file ends damaged or cut short" if at_end else "skipped, the video goes on after them",
                       self.num_skipped)

    def __iter__(self) -> Iterator[Frame]:
        if self._used:
            raise SourceError(f"video {self.spec} was already read; open it again to read it twice")
        self._used = True
        index = failures = 0
        while self._cap is not None:
            ok, image = self._cap.read()
            if not ok or image is None:
                failures += 1  # a frame that does not decode, or the end: the reads after it tell which
                if failures > self._run_limit(index):
                    break
                continue
            if failures:
                self._damaged(index, index + failures - 1, at_end=False)
                index, failures = index + failures, 0
            yield Frame(index, index / self.fps, image)
            index += 1
        # more than one frame short of the container's count: the file's last frames do not decode (one frame off
        # is the count's own rounding in some containers)
        if self.num_frames is not None and self.num_frames - index > 1:
            self._damaged(index, self.num_frames - 1, at_end=True)
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


def _images_from_glob(pattern: str) -> List[str]:
    matches = sorted((p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p)), key=_natural_key)
    images = [p for p in matches if is_image_path(p)]
    if not images:
        other = f"; it matches {len(matches)} files, none with an image extension ({', '.join(IMAGE_EXTENSIONS)})" \
            if matches else "; it matches no file"
        raise SourceError(f"glob {pattern}{other}")
    return images


def is_live_spec(spec: Union[str, int, os.PathLike]) -> bool:
    """Whether `open_source(spec)` gives a live source (a webcam index or a stream URL), decided from the spec alone,
    without opening anything."""
    if isinstance(spec, bool):
        return False
    if isinstance(spec, int):
        return True
    if not isinstance(spec, (str, os.PathLike)):
        return False
    spec = os.fspath(spec)
    if spec.strip().isdigit() and not os.path.exists(spec):
        return True
    return is_url(spec) and not (spec.lower().startswith("http") and is_video_path(spec))


def open_source(spec: Union[str, int, os.PathLike], live_buffer: int = 1, on_damage: str = "skip") -> FrameSource:
    """A FrameSource for `spec` (see module docstring); SourceError naming the spec when it cannot be opened.

    Order: webcam index (int, or digits that are not a file), URL (an http(s) URL ending in a video extension is read
    as a file: every frame), folder, image file, video file, glob. live_buffer: frames kept for a slow consumer of
    a live source (1 = only the newest). on_damage: what a video file does with undecodable frames ('skip' with a
    warning, or 'stop' with `DamagedVideoError`).
    """
    if isinstance(spec, bool) or not isinstance(spec, (str, int, os.PathLike)):
        raise SourceError(f"source must be a path, a webcam index or a URL, got {type(spec).__name__}; {_VALID}")
    if isinstance(spec, int):
        return open_webcam(spec, live_buffer)
    spec = os.fspath(spec)
    if spec.strip().isdigit() and not os.path.exists(spec):
        return open_webcam(int(spec), live_buffer)
    if is_url(spec):
        return VideoSource(spec, on_damage) if spec.lower().startswith("http") and is_video_path(spec) else \
            open_stream(spec, live_buffer)
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
            return VideoSource(spec, on_damage)
        if cv2.haveImageReader(spec):  # an image with an unusual extension
            return ImageSource(spec, [spec], single=True)
        raise SourceError(f"{spec} is neither an image ({', '.join(IMAGE_EXTENSIONS)}) nor a video "
                          f"({', '.join(VIDEO_EXTENSIONS)}) by its extension, nor a decodable image")
    if any(ch in spec for ch in "*?["):
        return ImageSource(spec, _images_from_glob(spec), single=False)
    raise SourceError(f"source {spec} does not exist; {_VALID}")
