"""Sources that fail are said, never a quiet end (issue 25): a damaged stretch of a video is a WARNING with its frame
range and the frames after it are read (or, asked for, an error naming the range); a webcam that stops delivering
frames mid-run, or stalls, is a `SourceLostError` with its own exit status; the split of the module keeps every
public name importable from `streams.sources`."""

import logging
import re
import threading

import cv2
import numpy as np
import pytest

from hrnet_pose.errors import EXIT_USER_ERROR, run_cli
from hrnet_pose.streams import sources
from hrnet_pose.streams.sources import (EXIT_SOURCE_LOST, DamagedVideoError, LiveSource, SourceLostError,
                                        is_live_spec, open_source)

FRAMES = 100


def _damaged_video(path, damaged):
    """An MJPG video of FRAMES numbered frames (each frame an independent JPEG, as a camera's MJPG stream) whose
    frames in `damaged` have their JPEG data zeroed, as a bad sector or a cut transfer leaves them."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    assert writer.isOpened()
    for i in range(FRAMES):
        image = np.full((48, 64, 3), 2 * i, np.uint8)
        cv2.putText(image, str(i), (4, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
        writer.write(image)
    writer.release()
    data = bytearray(path.read_bytes())
    starts = [m.start() for m in re.finditer(b"\xff\xd8\xff", bytes(data))]  # JPEG start-of-image markers
    assert len(starts) == FRAMES
    for k in damaged:
        data[starts[k]: starts[k] + 200] = bytes(200)
    path.write_bytes(bytes(data))
    return str(path)


def _read(source):
    return [frame.index for frame in source]


def test_a_damaged_stretch_in_the_middle_is_a_warning_with_its_range_and_the_rest_is_read(tmp_path, caplog):
    path = _damaged_video(tmp_path / "mid.avi", range(10, 40))  # 30 frames in a row: more than MAX_UNDECODABLE_RUN
    source = open_source(path)
    with caplog.at_level(logging.WARNING, logger="hrnet_pose"):
        indices = _read(source)
    assert indices == list(range(10)) + list(range(40, FRAMES))
    assert source.num_skipped == 30
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "frames 10-39 (30 frames) could not be decoded" in warning and path in warning


def test_a_damaged_end_is_a_warning_with_its_range(tmp_path, caplog):
    path = _damaged_video(tmp_path / "end.avi", range(80, FRAMES))
    with caplog.at_level(logging.WARNING, logger="hrnet_pose"):
        indices = _read(open_source(path))
    assert indices == list(range(80))
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"frames 80-99 (20 frames) of the {FRAMES} the container lists" in warning


def test_stop_on_damage_is_an_error_naming_the_range(tmp_path):
    path = _damaged_video(tmp_path / "mid.avi", range(10, 40))
    seen = []
    with pytest.raises(DamagedVideoError, match="frames 10-39"):
        for frame in open_source(path, on_damage="stop"):
            seen.append(frame.index)
    assert seen == list(range(10))


class _Camera:
    """Stands in for cv2.VideoCapture on a webcam: `frames` frames, then either reads that fail (unplugged) or a
    read that blocks until `unblock` is set (a camera that hangs)."""

    def __init__(self, frames, hang=False):
        self.frames, self.hang = frames, hang
        self.read_count = 0
        self.unblock = threading.Event()
        self.released = False

    def read(self):
        if self.read_count >= self.frames:
            if self.hang:
                self.unblock.wait(30)
            return False, None
        self.read_count += 1
        return True, np.full((8, 8, 3), self.read_count, np.uint8)

    def isOpened(self):
        return not self.released

    def get(self, prop):
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self):
        self.released = True


def test_an_unplugged_webcam_is_a_lost_source_after_its_frames():
    camera = _Camera(5)
    source = LiveSource(0, camera, "webcam", buffer=10)
    seen = []
    with pytest.raises(SourceLostError, match="webcam 0 stopped delivering frames after 5 frames") as caught:
        for frame in source:
            seen.append(frame.index)
    assert seen == [0, 1, 2, 3, 4] and camera.released
    assert caught.value.exit_status == EXIT_SOURCE_LOST != EXIT_USER_ERROR


def test_a_webcam_that_hangs_is_a_lost_source():
    camera = _Camera(3, hang=True)
    source = LiveSource(0, camera, "webcam", buffer=10, stall_timeout_s=0.3)
    try:
        with pytest.raises(SourceLostError, match="webcam 0 stopped after 3 frames"):
            list(source)
    finally:
        camera.unblock.set()
        source.close()


def test_closing_a_webcam_is_not_a_lost_source():
    camera = _Camera(1000)
    source = LiveSource(0, camera, "webcam")
    frames = iter(source)
    next(frames)
    source.close()
    assert len(list(frames)) <= 1  # at most the frame already kept; the end is ours, not an error


def test_the_cli_exits_with_the_lost_source_status(capsys):
    def main(argv):
        list(LiveSource(0, _Camera(2), "webcam", buffer=10))

    assert run_cli(main, []) == EXIT_SOURCE_LOST
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error: webcam 0 stopped delivering frames") and "Traceback" not in "\n".join(err)


def test_live_specs_are_told_without_opening_them(tmp_path):
    (tmp_path / "3").write_bytes(b"")
    assert is_live_spec(0) and is_live_spec("1") and is_live_spec("rtsp://cam/stream")
    assert not is_live_spec(str(tmp_path / "3")) and not is_live_spec("http://host/clip.mp4")
    assert not is_live_spec("clip.mp4") and not is_live_spec("imgs/*.jpg") and not is_live_spec(True)


def test_public_names_stay_importable_from_sources():
    for name in ("Frame", "FrameSource", "ImageSource", "VideoSource", "PacedSource", "LiveSource", "LatestFrameReader",
                 "ReconnectingCapture", "SourceError", "open_source", "is_url", "is_video_path", "is_image_path"):
        assert hasattr(sources, name), name
