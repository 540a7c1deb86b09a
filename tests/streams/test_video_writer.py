"""VideoWriter: the output reopens with the frames, size and fps written; no partial file under the final name."""

import os

import cv2
import numpy as np
import pytest

from hrnet_pose.streams.video_writer import VideoWriter, VideoWriterError

SIZE = (80, 48)  # (w, h)


def _frames(n):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
    base = cv2.GaussianBlur(base, (7, 7), 0)  # smooth content survives lossy coding
    frames = []
    for i in range(n):
        frame = base.copy()
        frame[:, : SIZE[0] // 2] = 25 * i  # brightness that tells the frames apart after coding
        frames.append(frame)
    return frames


def _read_back(path):
    cap = cv2.VideoCapture(path)
    assert cap.isOpened()
    fps, w, h = cap.get(cv2.CAP_PROP_FPS), cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return fps, (int(w), int(h)), frames


def _leftovers(folder):
    return [f for f in os.listdir(folder) if ".partial" in f]


@pytest.mark.parametrize("ext, fourcc", [(".mp4", "mp4v"), (".avi", "MJPG")])
def test_round_trip(tmp_path, ext, fourcc):
    path = str(tmp_path / "out" / f"clip{ext}")  # the folder is created
    frames = _frames(8)
    with VideoWriter(path, 12.5, SIZE) as writer:
        for i, frame in enumerate(frames):
            writer.write(frame)
            if i == 3:  # while writing, only the temporary file exists
                assert not os.path.exists(path) and os.path.exists(writer.tmp_path)
    assert writer.fourcc == fourcc and writer.num_frames == 8
    fps, size, back = _read_back(path)
    assert fps == pytest.approx(12.5) and size == SIZE and len(back) == 8
    left = [float(f[:, : SIZE[0] // 2].mean()) for f in back]
    assert left == pytest.approx([25 * i for i in range(8)], abs=6)
    assert _leftovers(tmp_path / "out") == []


def test_close_is_idempotent_and_keeps_frames_on_ctrl_c(tmp_path):
    path = str(tmp_path / "interrupted.mp4")
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(path, 10, SIZE) as writer:
            for frame in _frames(3):
                writer.write(frame)
            raise KeyboardInterrupt
    assert writer.close() == path and writer.close() == path  # again, after the with block closed it
    assert len(_read_back(path)[2]) == 3 and _leftovers(tmp_path) == []
    with pytest.raises(VideoWriterError, match="already closed"):
        writer.write(_frames(1)[0])


def test_error_discards_partial_file(tmp_path):
    path = str(tmp_path / "crashed.avi")
    with pytest.raises(RuntimeError):
        with VideoWriter(path, 10, SIZE) as writer:
            writer.write(_frames(1)[0])
            raise RuntimeError("inference failed")
    assert not os.path.exists(path) and os.listdir(tmp_path) == []


def test_unclosed_writer_never_shows_the_final_name(tmp_path):
    path = str(tmp_path / "killed.mp4")
    writer = VideoWriter(path, 10, SIZE)
    writer.write(_frames(1)[0])
    del writer  # as if the process died before close()
    assert not os.path.exists(path)


def test_no_frames_creates_no_file(tmp_path):
    path = str(tmp_path / "empty.mp4")
    assert VideoWriter(path, 10, SIZE).close() is None
    assert os.listdir(tmp_path) == []


def test_bad_input_is_reported(tmp_path):
    with pytest.raises(VideoWriterError, match=r"extension '\.gifx' is not supported; use one of \.mp4"):
        VideoWriter(str(tmp_path / "a.gifx"), 10, SIZE)
    with pytest.raises(VideoWriterError, match="fps > 0"):
        VideoWriter(str(tmp_path / "a.mp4"), 0, SIZE)
    with VideoWriter(str(tmp_path / "b.mp4"), 10, SIZE) as writer:
        with pytest.raises(VideoWriterError, match=r"frame 0 is uint8 \[48, 81, 3\]; every frame must be BGR uint8 "
                                                   r"\[48, 80, 3\]"):
            writer.write(np.zeros((48, 81, 3), np.uint8))
        writer.write(_frames(1)[0])
    assert len(_read_back(str(tmp_path / "b.mp4"))[2]) == 1
