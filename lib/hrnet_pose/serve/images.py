"""Uploaded image bytes -> BGR uint8 [H, W, 3], checked before decoding.

Order of checks, cheapest first, so that no upload can make the server decode something huge: empty body (400),
the format read from the header by Pillow without decoding (415 for anything but JPEG, PNG, WebP, BMP), the pixel
count from the same header against `max_pixels` (413: a PNG whose header claims 60000x60000 is refused before a
byte of it is inflated), a missing end marker for JPEG (EOI) and PNG (IEND) (400 truncated: OpenCV would decode a
cut JPEG into a grey lower half without complaint), then OpenCV decodes it (400 when it cannot), EXIF orientation
ignored as the dataset reader and `PoseEstimator` on a file path do, so a file sent here gives the same keypoints.
"""

import io
import warnings
from typing import Tuple

import cv2
import numpy as np

from .problems import ServeError

FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "BMP": "image/bmp"}
_END_MARKERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND"}
_TAIL = 1024  # end markers may be followed by a little padding, never by more than this
_MAGIC = {"JPEG": (b"\xff\xd8\xff",), "PNG": (b"\x89PNG\r\n\x1a\n",), "BMP": (b"BM",)}


def sniff_format(data: bytes) -> str:
    """The format its first bytes announce ('' when none of ours): a file cut inside its header still says what it
    was meant to be, so it is a damaged image (400), not a wrong type (415)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((fmt for fmt, magics in _MAGIC.items() if data.startswith(magics)), "")


def image_header(data: bytes, where: str) -> Tuple[str, int, int]:
    """(format, width, height) from the header alone; ServeError 400/415/413 naming `where`."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ServeError(400, "empty_image", f"{where} is empty; send a JPEG, PNG, WebP or BMP image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                fmt, (w, h) = im.format, im.size
    except Image.DecompressionBombError as err:
        raise ServeError(413, "image_too_large", f"{where}: {err}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        meant = sniff_format(data)
        if meant:
            raise ServeError(400, "truncated_image", f"{where} starts like a {meant} but its header cannot be read "
                                                     f"({len(data)} bytes): truncated or damaged") from None
        raise ServeError(415, "not_an_image", f"{where} is not an image (first bytes {data[:8]!r}); send a JPEG, "
                                              "PNG, WebP or BMP image") from None
    if fmt not in FORMATS:
        raise ServeError(415, "unsupported_image_format", f"{where} is a {fmt} image; send JPEG, PNG, WebP or BMP")
    return fmt, int(w), int(h)


def decode_image(data: bytes, max_pixels: int, where: str = "image") -> np.ndarray:
    """The checks of the module docstring, then the BGR image; ServeError naming `where` on any problem."""
    fmt, w, h = image_header(data, where)
    if w * h > max_pixels:
        raise ServeError(413, "image_too_large", f"{where} is {w}x{h} = {w * h} pixels (from its header); the "
                                                 f"server takes at most {max_pixels} pixels (--max-pixels)")
    marker = _END_MARKERS.get(fmt)
    if marker is not None and marker not in data[-_TAIL:]:
        raise ServeError(400, "truncated_image", f"{where} is a truncated {fmt} ({len(data)} bytes, no end marker); "
                                                 "send the whole file")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None or image.size == 0:
        raise ServeError(400, "undecodable_image", f"{where} ({fmt}, {w}x{h}) could not be decoded; is the file "
                                                   "damaged?")
    return image
