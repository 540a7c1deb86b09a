"""Images as the inference API takes them: a path or an array -> contiguous BGR uint8 [H, W, 3]; and the per-stage
timer of `PoseResult.timings`. Below `estimator` and `stream`, which both use them."""

import os
import time
from contextlib import contextmanager
from typing import Dict, Iterator, Union

import cv2
import numpy as np

from ..datasets.coco import read_image
from ..errors import UserError

ImageInput = Union[np.ndarray, str, os.PathLike]


@contextmanager
def timed(timings: Dict[str, float], stage: str) -> Iterator[None]:
    """Adds the block's wall time in ms to `timings[stage]`."""
    start = time.perf_counter()
    yield
    timings[stage] = timings.get(stage, 0.0) + (time.perf_counter() - start) * 1000.0


def as_bgr_image(image: ImageInput) -> np.ndarray:
    """A path (read like the dataset: EXIF orientation ignored) or an array -> contiguous BGR uint8 [H, W, 3]."""
    if isinstance(image, (str, os.PathLike)):
        return read_image(os.fspath(image), color_rgb=False)
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise UserError(f"image must be uint8 (OpenCV BGR), got dtype {arr.dtype}; convert with "
                        "np.clip(img, 0, 255).astype(np.uint8)")
    if arr.ndim == 2:
        return cv2.cvtColor(arr, cv2.COLOR_GRAY2BGR)
    if arr.ndim == 3 and arr.shape[2] == 4:
        return cv2.cvtColor(arr, cv2.COLOR_BGRA2BGR)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise UserError(f"image must be [H, W, 3] BGR (or [H, W] grey, [H, W, 4] BGRA), got shape {arr.shape}")
    return np.ascontiguousarray(arr)
