"""y4m clips (Chromium's fake camera format): header, frame layout, and pixels that come back through a reader."""

import cv2
import numpy as np
import pytest

from hrnet_pose.streams.y4m import write_y4m


def test_y4m_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    frames = [cv2.GaussianBlur(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), (7, 7), 2) for _ in range(3)]
    path = str(tmp_path / "clip.y4m")
    assert write_y4m(path, frames, fps=15) == (3, 64, 48)
    data = open(path, "rb").read()
    header, rest = data.split(b"\n", 1)
    assert header == b"YUV4MPEG2 W64 H48 F15:1 Ip A1:1 C420jpeg"
    plane = 64 * 48 * 3 // 2
    assert len(rest) == 3 * (len(b"FRAME\n") + plane)
    second = np.frombuffer(rest[(6 + plane) + 6:(6 + plane) * 2], np.uint8).reshape(72, 64)
    back = cv2.cvtColor(second, cv2.COLOR_YUV2BGR_I420)
    # 4:2:0 chroma subsampling of a smooth image: a few grey levels off
    assert np.abs(back.astype(int) - frames[1]).mean() < 4


def test_y4m_refuses_odd_sizes_and_nothing_is_left(tmp_path):
    path = tmp_path / "odd.y4m"
    with pytest.raises(ValueError, match="even"):
        write_y4m(str(path), [np.zeros((5, 4, 3), np.uint8)])
    assert list(tmp_path.iterdir()) == []
