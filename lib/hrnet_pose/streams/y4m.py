"""YUV4MPEG2 (.y4m) clips: the raw format Chromium's fake camera plays (`--use-file-for-fake-video-capture`), so a
browser test or benchmark can show the page a known video as its webcam.

Frames: BGR uint8 [H, W, 3] with even H and W (4:2:0 chroma halves both). Written through the atomic-write helper.
"""

from typing import Iterable, Tuple

import cv2
import numpy as np

from ..fileio import AtomicFile


def write_y4m(path: str, frames: Iterable[np.ndarray], fps: int = 30) -> Tuple[int, int, int]:
    """Write the frames as 4:2:0 y4m at `fps`; returns (frames, width, height). The first frame fixes the size."""
    count, size = 0, None
    with AtomicFile(path, binary=True, fsync=False) as out:
        for frame in frames:
            h, w = frame.shape[:2]
            if size is None:
                if h % 2 or w % 2:
                    raise ValueError(f"y4m 4:2:0 frames need an even width and height, got {w}x{h}")
                size = (w, h)
                out.write(f"YUV4MPEG2 W{w} H{h} F{int(fps)}:1 Ip A1:1 C420jpeg\n".encode("ascii"))
            elif (w, h) != size:
                raise ValueError(f"frame {count} is {w}x{h}, the clip is {size[0]}x{size[1]}")
            out.write(b"FRAME\n")
            out.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_BGR2YUV_I420).tobytes())
            count += 1
        if size is None:
            raise ValueError("write_y4m: no frames")
    return count, size[0], size[1]
