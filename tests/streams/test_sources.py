"""Frame sources: images, folders, globs, a real video written here, the latest-frame reader, and the errors."""

import os
import shutil
import threading
import time

import cv2
import numpy as np
import pytest

from hrnet_pose.streams.sources import (Frame, LatestFrameReader, SourceError, is_video_path, open_source)
from hrnet_pose.errors import UserError

from testpaths import MINI

IMAGES = os.path.join(MINI, "images")
IMAGE_A, IMAGE_B = "000000000785.jpg", "000000000790.jpg"


def _imread(path):
    return cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)


@pytest.fixture()
def image_dir(tmp_path):
    """Two real images (names that sort differently as text and as numbers), a text file and a sub-folder."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    shutil.copy(os.path.join(IMAGES, IMAGE_A), folder / "frame10.jpg")
    shutil.copy(os.path.join(IMAGES, IMAGE_B), folder / "frame2.JPG")
    (folder / "notes.txt").write_text("not an image")
    (folder / "sub").mkdir()
    return folder


def test_single_image(tmp_path):
    path = os.path.join(IMAGES, IMAGE_A)
    with open_source(path) as source:
        frames = list(source)
    expected = _imread(path)
    assert source.kind == "images" and not source.is_live and source.fps is None and source.num_frames == 1
    assert source.size == (expected.shape[1], expected.shape[0])
    assert len(frames) == 1 and isinstance(frames[0], Frame)
    frame = frames[0]
    assert frame.index == 0 and frame.timestamp == 0.0 and frame.name == path and frame.image_id == 785
    assert frame.image.dtype == np.uint8 and np.array_equal(frame.image, expected)


def test_folder_is_naturally_sorted_and_skips_non_images(image_dir):
    source = open_source(str(image_dir))
    names = [os.path.basename(f.name) for f in source]
    assert names == ["frame2.JPG", "frame10.jpg"]
    assert source.num_frames == 2 and source.kind == "images"
    assert source.size is None  # the two COCO images differ in size
    frames = list(source)  # an image source can be iterated again
    assert np.array_equal(frames[1].image, _imread(os.path.join(IMAGES, IMAGE_A)))
    assert [f.index for f in frames] == [0, 1] and frames[0].image_id is None


def test_unreadable_image_in_folder_is_skipped_and_counted(image_dir, caplog):
    (image_dir / "frame5.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    source = open_source(str(image_dir))
    with caplog.at_level("WARNING"):
        names = [os.path.basename(f.name) for f in source]
    assert names == ["frame2.JPG", "frame10.jpg"] and source.num_skipped == 1
    assert "frame5.jpg" in caplog.text


def test_glob(image_dir):
    source = open_source(str(image_dir / "*.jpg"))  # glob is case-sensitive: frame2.JPG is not matched
    assert [os.path.basename(f.name) for f in source] == ["frame10.jpg"]
    assert source.size == (640, 425)
    with pytest.raises(SourceError, match=r"matches 1 files, none with an image extension"):
        open_source(str(image_dir / "*.txt"))
    with pytest.raises(SourceError, match="matches no file"):
        open_source(str(image_dir / "*.png"))


def _write_video(path, fourcc, n, fps, size):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert writer.isOpened()
    base = cv2.resize(_imread(os.path.join(IMAGES, IMAGE_A)), size)
    for i in range(n):
        frame = base.copy()
        frame[:16, :] = i * 20  # a brightness band that tells the frames apart after lossy coding
        writer.write(frame)
    writer.release()


@pytest.mark.parametrize("ext, fourcc", [(".avi", "MJPG"), (".mp4", "mp4v")])
def test_video_file_every_frame(tmp_path, ext, fourcc):
    path = tmp_path / f"clip{ext}"
    _write_video(path, fourcc, n=9, fps=12.5, size=(96, 64))
    with open_source(str(path)) as source:
        assert source.kind == "video" and not source.is_live
        assert source.fps == pytest.approx(12.5) and source.size == (96, 64) and source.num_frames == 9
        frames = list(source)
    assert [f.index for f in frames] == list(range(9))
    assert [f.timestamp for f in frames] == pytest.approx([i / 12.5 for i in range(9)])
    assert all(f.image.shape == (64, 96, 3) and f.image.dtype == np.uint8 and f.name == "" for f in frames)
    band = [float(f.image[:16].mean()) for f in frames]
    assert band == pytest.approx([i * 20 for i in range(9)], abs=6)


def test_frame_that_fails_to_decode_is_skipped_and_counted(tmp_path, caplog):
    """An MJPG .avi whose fifth JPEG is wiped: that frame is skipped (counted, its index and timestamp left free),
    the frames after it still come, and the end of the file is still the end."""
    path = tmp_path / "damaged.avi"
    _write_video(path, "MJPG", n=9, fps=12.5, size=(96, 64))
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]  # JPEG start markers
    assert len(starts) == 9
    data[starts[4]:starts[5] - 8] = bytes(starts[5] - 8 - starts[4])  # up to the next frame's chunk header
    path.write_bytes(bytes(data))
    with caplog.at_level("WARNING"):
        with open_source(str(path)) as source:
            frames = list(source)
    assert [f.index for f in frames] == [0, 1, 2, 3, 5, 6, 7, 8] and source.num_skipped == 1
    assert frames[4].timestamp == pytest.approx(5 / 12.5)
    assert float(frames[4].image[:16].mean()) == pytest.approx(100, abs=6)
    assert "could not be decoded" in caplog.text


def _refused(path, match: str) -> None:
    """open_source(path) raises a SourceError whose message matches `match`."""
    with pytest.raises(SourceError, match=match):
        open_source(str(path))


def test_errors_are_clear(tmp_path):
    _refused(tmp_path / "missing.jpg", r"image .*missing\.jpg does not exist|source .*missing\.jpg does not exist")
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"this is not a jpeg")
    _refused(corrupt, r"corrupt\.jpg cannot be decoded")
    fake = tmp_path / "fake.mp4"
    fake.write_text("a text file with a video extension")
    _refused(fake, r"video .*fake\.mp4 could not be opened")
    (tmp_path / "empty").mkdir()
    _refused(tmp_path / "empty", r"folder .*empty has no images")
    other = tmp_path / "data.bin"
    other.write_bytes(b"\x00\x01")
    _refused(other, r"neither an image .* nor a video")
    assert issubclass(SourceError, UserError)


def test_missing_webcam_fails_fast():
    start = time.monotonic()
    for spec in (9, "9"):
        with pytest.raises(SourceError, match=r"webcam 9 could not be opened"):
            open_source(spec)
    assert time.monotonic() - start < 30  # a guard against hanging, not a speed test


def test_helpers():
    assert is_video_path("a/b.MP4") and is_video_path("http://host/clip.mov?token=1")
    assert not is_video_path("a/b.jpg") and not is_video_path("rtsp://cam/stream")


class NumberedCapture:
    """Stands in for cv2.VideoCapture: read() gives frames whose pixels hold their number; a frame is released to
    the reader either by `allow(n)` (gated) or after `period` seconds (free-running); ends after `total` frames."""

    def __init__(self, total, period=None):
        self.total, self.period = total, period
        self.produced = 0
        self.released = False
        self._gate = threading.Semaphore(0)

    def allow(self, n):
        for _ in range(n):
            self._gate.release()

    def isOpened(self):
        return not self.released

    def read(self):
        if self.produced >= self.total:
            return False, None
        if self.period is None:
            self._gate.acquire()
        else:
            time.sleep(self.period)
        image = np.full((4, 4, 3), self.produced % 256, np.uint8)
        self.produced += 1
        return True, image

    def get(self, prop):
        return 0.0

    def release(self):
        self.released = True


def _wait_until(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.005)


def test_latest_frame_reader_keeps_only_the_newest_frame():
    cap = NumberedCapture(total=10)
    reader = LatestFrameReader(cap, "fake camera")
    cap.allow(5)
    _wait_until(lambda: reader.frames_read == 5)
    frame = reader.read(timeout=5)
    assert frame.index == 4 and int(frame.image[0, 0, 0]) == 4  # frames 0-3 were dropped, not queued
    assert reader.dropped == 4
    cap.allow(3)
    _wait_until(lambda: reader.frames_read == 8)
    assert reader.read(timeout=5).index == 7
    with pytest.raises(SourceError, match="no frame arrived within"):
        reader.read(timeout=0.05)
    cap.allow(2)
    _wait_until(lambda: reader.ended)  # the capture's end stops the thread, which releases the capture
    assert reader.read(timeout=5).index == 9
    assert reader.read(timeout=5) is None
    assert cap.released and not reader.running
    reader.close()  # after the end: harmless


def test_latest_frame_reader_with_buffer_keeps_the_newest_n():
    cap = NumberedCapture(total=6)
    reader = LatestFrameReader(cap, "fake camera", buffer=3)
    cap.allow(6)
    _wait_until(lambda: reader.ended)
    assert [reader.read().index for _ in range(3)] == [3, 4, 5] and reader.read() is None


def test_slow_consumer_skips_frames_instead_of_lagging():
    cap = NumberedCapture(total=60, period=0.002)
    reader = LatestFrameReader(cap, "fake camera")
    seen = []
    while True:
        frame = reader.read(timeout=10)
        if frame is None:
            break
        assert int(frame.image[0, 0, 0]) == frame.index
        seen.append(frame.index)
        time.sleep(0.02)  # inference ten times slower than the camera
    assert seen == sorted(set(seen)) and seen[-1] == 59  # in order, and it ends on the newest frame
    assert len(seen) < 60 and reader.dropped == 60 - len(seen)


def test_close_stops_a_running_reader():
    cap = NumberedCapture(total=10 ** 9, period=0.001)
    reader = LatestFrameReader(cap, "endless camera")
    assert reader.read(timeout=10) is not None
    reader.close(timeout=5)
    assert not reader.running and cap.released
