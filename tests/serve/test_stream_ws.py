"""The page's WebSocket (`/v1/stream`) on a real server: tracked poses per frame, and the newest frame wins: a client
sending faster than the model gets its stale frames dropped (answered "dropped", never queued), so the frame it gets
an answer for next is its newest."""

import json
import struct
import threading

import httpx
import pytest

from hrnet_pose.serve.app import create_app
from hrnet_pose.serve.settings import ServeSettings

from servertest import running_server, with_detector

ws_client = pytest.importorskip("websockets.sync.client", reason="the websockets client is not installed")


def _frame(frame_id: int, jpeg: bytes, t_ms: float) -> bytes:
    return struct.pack("<Id", frame_id, t_ms) + jpeg


def _replies(ws, until_frame: int, limit: int = 100):
    out = []
    for _ in range(limit):
        msg = json.loads(ws.recv(timeout=60))
        out.append(msg)
        if msg.get("type") == "pose" and msg["frame"] == until_frame:
            return out
    raise AssertionError(f"no pose for frame {until_frame} in {limit} replies: {out[-3:]}")


def test_stream_returns_tracked_poses(quickstart, figures):
    _, jpegs, boxes = figures
    estimator = with_detector(quickstart, lambda image: (boxes[0], [1.0] * len(boxes[0])))
    with running_server(create_app(estimator, ServeSettings(det_interval=5))) as url:
        with ws_client.connect(url.replace("http", "ws") + "/v1/stream") as ws:
            ids = []
            for i in range(1, 4):  # one frame at a time: nothing to drop
                ws.send(_frame(i, jpegs[0], 40.0 * i))
                reply = _replies(ws, i)[-1]
                assert len(reply["persons"]) == 2 and reply["width"] == 256 and reply["t"] == 40.0 * i
                ids.append(sorted(p["track_id"] for p in reply["persons"]))
            assert ids[0] == ids[1] == ids[2] and ids[0][0] != ids[0][1] and min(ids[0]) >= 0
            ws.send(b"\x01\x02")  # a broken message: one error reply, the stream goes on
            assert json.loads(ws.recv(timeout=60))["kind"] == "bad_frame"
            ws.send(json.dumps({"kpt_thr": 0.5}))
            assert json.loads(ws.recv(timeout=60)) == {"type": "settings", "kpt_thr": 0.5}
            ws.send(_frame(9, jpegs[0], 400.0))
            assert _replies(ws, 9)[-1]["type"] == "pose"


def test_stale_frames_are_dropped_not_queued(quickstart, figures):
    """Frame 1 is held inside the model (its detector waits) while frames 2..20 arrive: each replaces the pending one,
    so 2..19 are dropped unseen and frame 20, the newest, is the next one processed."""
    _, jpegs, boxes = figures
    entered, release = threading.Event(), threading.Event()

    def held_detector(image):
        entered.set()
        release.wait(30)
        return boxes[0], [1.0] * len(boxes[0])

    app = create_app(with_detector(quickstart, held_detector), ServeSettings(det_interval=1000))
    with running_server(app) as url:
        with ws_client.connect(url.replace("http", "ws") + "/v1/stream") as ws:
            ws.send(_frame(1, jpegs[0], 0.0))
            assert entered.wait(30)
            for i in range(2, 21):
                ws.send(_frame(i, jpegs[1], 33.0 * i))
            dropped = [json.loads(ws.recv(timeout=60)) for _ in range(18)]  # answered while frame 1 is held
            release.set()
            replies = _replies(ws, 20)
        metrics = httpx.get(url + "/metrics").text
    assert [m["type"] for m in dropped] == ["dropped"] * 18
    assert [m["frame"] for m in dropped] == list(range(2, 20)) and dropped[-1]["dropped"] == 18
    poses = [m["frame"] for m in replies if m["type"] == "pose"]
    assert poses == [1, 20]  # nothing stale was processed between the held frame and the newest one
    assert replies[-1]["dropped"] == 18 and len(replies[-1]["persons"]) == 2
    assert "hrnet_pose_stream_frames_dropped_total 18.0" in metrics
    assert "hrnet_pose_stream_frames_total 2.0" in metrics


def test_stream_needs_the_key_when_one_is_set(quickstart, figures):
    _, jpegs, _ = figures
    with running_server(create_app(quickstart, ServeSettings(api_key="k"))) as url:
        base = url.replace("http", "ws") + "/v1/stream"
        from websockets.exceptions import InvalidStatus

        with pytest.raises(InvalidStatus) as refused:  # closed before the handshake completes: HTTP 403
            ws_client.connect(base)
        assert refused.value.response.status_code == 403
        with ws_client.connect(base + "?api_key=k") as ws:
            ws.send(_frame(1, jpegs[0], 0.0))
            assert _replies(ws, 1)[-1]["type"] == "pose"
