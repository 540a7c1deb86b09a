"""A live HTTP MJPEG stream that drops is reopened: a local server (http.server on 127.0.0.1, in a thread) sends
multipart/x-mixed-replace JPEG frames and closes the connection after FRAMES_PER_CONNECTION of them; the source
reopens it and the frames after the drop arrive."""

import http.server
import threading
import time

import cv2
import numpy as np
import pytest

from hrnet_pose.streams.sources import ReconnectingCapture, open_source

FRAMES_PER_CONNECTION = 8
BOUNDARY = "frameboundary"


def _jpeg(i: int) -> bytes:
    image = np.full((48, 64, 3), 40, np.uint8)
    cv2.putText(image, str(i), (4, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (255, 255, 255), 2)
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return buf.tobytes()


class _MjpegHandler(http.server.BaseHTTPRequestHandler):
    connections = 0

    def do_GET(self):
        type(self).connections += 1
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.end_headers()
        try:
            for i in range(FRAMES_PER_CONNECTION):
                data = _jpeg(i)
                self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n"
                                 .encode() + data + b"\r\n")
                self.wfile.flush()
                time.sleep(0.03)  # ~30 fps, so the latest-frame reader keeps most frames
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True  # the drop: the server ends the stream after a few frames

    def log_message(self, *args):
        pass


@pytest.fixture()
def mjpeg_url():
    _MjpegHandler.connections = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _MjpegHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="mjpeg-test-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/stream.mjpg"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_dropped_mjpeg_stream_is_reopened_and_frames_after_the_drop_arrive(mjpeg_url):
    source = open_source(mjpeg_url)
    try:
        assert source.is_live and source.kind == "stream"
        frames = []
        deadline = time.monotonic() + 15
        for frame in source:
            frames.append(frame)
            if source.reader.frames_read > FRAMES_PER_CONNECTION + 3 or time.monotonic() > deadline:
                break
    finally:
        source.close()
    assert source.reconnects >= 1 and _MjpegHandler.connections >= 2
    assert source.reader.frames_read > FRAMES_PER_CONNECTION  # frames from the second connection arrived
    assert frames[-1].index >= FRAMES_PER_CONNECTION and frames[0].image.shape == (48, 64, 3)


class _Dead:
    def read(self):
        return False, None

    def isOpened(self):
        return False

    def release(self):
        pass

    def get(self, prop):
        return 0.0


def test_reconnecting_capture_gives_up_and_cancel_ends_a_wait_at_once():
    opened = []
    cap = ReconnectingCapture(lambda: opened.append(1) or _Dead(), "stream x", _Dead(), first_wait_s=0.01,
                              max_wait_s=0.02, give_up_s=0.2)
    assert cap.read() == (False, None) and len(opened) >= 2 and cap.reconnects == 0
    waiting = ReconnectingCapture(_Dead, "stream y", _Dead(), first_wait_s=30)
    threading.Timer(0.1, waiting.cancel).start()
    start = time.monotonic()
    assert waiting.read() == (False, None) and time.monotonic() - start < 5
