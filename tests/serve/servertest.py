"""Helpers of the serve tests (a uniquely named module, importable from every test here): a real server, uvicorn on
127.0.0.1 on a socket this process binds to a free port, in a thread of the test process, stopped by the test itself
(`running_server`); the quickstart network with a detector callable (`with_detector`)."""

import socket
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

import uvicorn

from hrnet_pose.apis.estimator import PoseEstimator


@contextmanager
def running_server(app: Any, start_timeout: float = 30.0) -> Iterator[str]:
    """Serve `app` on 127.0.0.1:<free port>; yields the base URL; stops the server on exit."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def with_detector(base: PoseEstimator, detector: Any) -> PoseEstimator:
    """The same network with a user-supplied detector callable (the API takes any image -> (boxes, scores))."""
    return PoseEstimator(base.backend, base.codec, base.keypoint_set, color_rgb=base.color_rgb,
                         flip_test=base.flip_test, detector=detector, max_batch=base.max_batch)
