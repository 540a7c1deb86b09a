"""Reading image files as the official loader does (OpenCV, BGR uint8, EXIF orientation ignored), at full size or
decoded at 1/2, 1/4, 1/8 in the JPEG DCT domain, and the one error for a missing or undecodable file.

Shapes: `read_image` -> uint8 [H, W, 3]; `read_image_reduced(path, f)` -> uint8 [ceil(H/f), ceil(W/f), 3] or None.
"""

import os
from typing import Optional

import cv2
import numpy as np

from ..errors import UserError

REDUCED_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                 8: cv2.IMREAD_REDUCED_COLOR_8}


class ImageReadError(OSError, UserError):
    """An image file is missing or cannot be decoded (a user error: the data, not the code)."""


def image_read_error(path: str) -> ImageReadError:
    """The error for an image that could not be read, saying whether it is missing or undecodable."""
    reason = "does not exist" if not os.path.exists(path) else "cannot be decoded (corrupt or not an image)"
    return ImageReadError(f"image {path} {reason}")


def read_image_reduced(path: str, factor: int, color_rgb: bool = False) -> Optional[np.ndarray]:
    """uint8 [ceil(H/f), ceil(W/f), 3] decoded at 1/`factor` size (BGR, RGB with `color_rgb`), EXIF orientation
    ignored as in the official reader; None when the file cannot be read."""
    if factor not in REDUCED_FLAGS:
        raise ValueError(f"reduction factor must be one of {sorted(REDUCED_FLAGS)}, got {factor}")
    image = cv2.imread(os.fspath(path), REDUCED_FLAGS[factor] | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        return None
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if color_rgb else image


def read_image(path: str, color_rgb: bool = False) -> np.ndarray:
    """Read an image file as the official loader does: uint8 [H, W, 3], EXIF orientation ignored, BGR (RGB when
    `color_rgb`). Raises ImageReadError naming the file when it is missing or cannot be decoded."""
    image = read_image_reduced(path, 1, color_rgb)
    if image is None:
        raise image_read_error(path)
    return image
