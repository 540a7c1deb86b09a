"""Writing annotated frames (BGR uint8 [H, W, 3], all of one size) to a video file with OpenCV.

The codec follows the extension (mp4v for .mp4/.m4v/.mov/.mkv, MJPG for .avi, with fallbacks), and the first one that
OpenCV's writer actually opens is used: pip's opencv builds lack some encoders (no H.264 'avc1' in
opencv-python-headless). Frames go to a temporary file in the same folder, renamed onto the final name by `close()`:
a crash or a kill never leaves a half-written video under the name the user asked for. `close()` is idempotent and
is what a Ctrl-C handler should call (the frames so far become a playable file).
"""

import logging
import os
from typing import Any, Dict, Optional, Tuple

import cv2
import numpy as np

from ..errors import UserError
from ..fileio import temp_path_beside

__all__ = ["VideoWriter", "VideoWriterError", "CODECS"]

logger = logging.getLogger(__name__)

# extension -> FourCC codes to try, in order
CODECS: Dict[str, Tuple[str, ...]] = {
    ".mp4": ("mp4v", "avc1"),
    ".m4v": ("mp4v", "avc1"),
    ".mov": ("mp4v", "avc1"),
    ".mkv": ("mp4v", "XVID", "MJPG"),
    ".avi": ("MJPG", "XVID", "mp4v"),
}


class VideoWriterError(UserError):
    """The output video cannot be created (unsupported extension, no working codec, bad frame size or fps)."""


class VideoWriter:
    """`VideoWriter(path, fps, size=(w, h))`; `write(frame)` per frame; `close()` (or a `with` block) publishes it.

    Leaving a `with` block on an exception other than KeyboardInterrupt discards the partial file; Ctrl-C keeps
    what was written. `path` is the final name; `num_frames` counts frames written; `fourcc` is the codec used.
    """

    def __init__(self, path: str, fps: float, size: Tuple[int, int]) -> None:
        self.path = os.fspath(path)
        ext = os.path.splitext(self.path)[1].lower()
        if ext not in CODECS:
            raise VideoWriterError(f"output video {self.path}: extension '{ext}' is not supported; use one of "
                                   f"{', '.join(CODECS)}")
        try:
            fps = float(fps)
            width, height = (int(v) for v in size)
        except (TypeError, ValueError) as err:
            raise VideoWriterError(f"output video {self.path}: fps {fps!r} and size {size!r} must be a number and "
                                   f"(width, height)") from err
        if not (fps > 0 and np.isfinite(fps)) or width < 1 or height < 1:
            raise VideoWriterError(f"output video {self.path}: needs fps > 0 and size (width, height) >= 1, got "
                                   f"fps={fps}, size={size}")
        self.fps, self.size = fps, (width, height)
        self.num_frames = 0
        # fileio's temporary name beside the target (the folder is created): it keeps the extension, from which
        # OpenCV picks the container, and OpenCV creates the file itself, with a new file's usual permissions
        self.tmp_path = temp_path_beside(self.path)
        self._writer: Optional[Any] = None
        self.fourcc = ""
        for code in CODECS[ext]:
            writer = cv2.VideoWriter(self.tmp_path, cv2.VideoWriter_fourcc(*code), fps, self.size)
            if writer.isOpened():
                self._writer, self.fourcc = writer, code
                break
            writer.release()
        if self._writer is None:
            self._remove_tmp()
            raise VideoWriterError(f"output video {self.path}: OpenCV could not open a writer with any of the codecs "
                                   f"{', '.join(CODECS[ext])} for '{ext}'; try another extension "
                                   f"({', '.join(e for e in CODECS if e != ext)})")
        self._closed = False
        logger.debug("writing %s (%s, %g fps, %dx%d) via %s", self.path, self.fourcc, fps, width, height,
                     self.tmp_path)

    def write(self, frame: np.ndarray) -> None:
        """Append one BGR uint8 frame of exactly `size` (OpenCV would silently drop a frame of another size)."""
        if self._closed or self._writer is None:
            raise VideoWriterError(f"output video {self.path} is already closed")
        w, h = self.size
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.shape != (h, w, 3):
            got = f"{frame.dtype} {list(frame.shape)}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise VideoWriterError(f"output video {self.path}: frame {self.num_frames} is {got}; every frame must be "
                                   f"BGR uint8 [{h}, {w}, 3], the size the writer was opened with")
        self._writer.write(np.ascontiguousarray(frame))
        self.num_frames += 1

    def close(self) -> Optional[str]:
        """Finish the file and move it onto `path`; returns `path`, or None when no frame was written (nothing is
        created). Safe to call again, also after an interrupted first call."""
        if self._closed:
            return self.path if os.path.exists(self.path) and self.num_frames else None
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.release()
        if self.num_frames == 0:
            self._remove_tmp()
            self._closed = True
            logger.warning("output video %s: no frames were written; no file created", self.path)
            return None
        if os.path.exists(self.tmp_path):
            os.replace(self.tmp_path, self.path)
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Drop the partial file; the final name is not touched."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.release()
        self._remove_tmp()
        self._closed = True

    def _remove_tmp(self) -> None:
        if os.path.exists(self.tmp_path):
            os.remove(self.tmp_path)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None or issubclass(exc_type, KeyboardInterrupt):
            self.close()
        else:
            logger.warning("output video %s discarded after %s (%d frames were written)", self.path,
                           exc_type.__name__, self.num_frames)
            self.abort()

    def __del__(self) -> None:
        # a writer dropped without close(): release the handle, keep the partial file out of the final name
        if getattr(self, "_writer", None) is not None:
            self._writer.release()
