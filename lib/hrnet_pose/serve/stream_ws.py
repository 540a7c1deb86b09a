"""The page's WebSocket stream (`WS /v1/stream`): JPEG frames in, tracked and smoothed poses out.

Client -> server, binary messages: a 12-byte little-endian header, uint32 frame id + float64 capture time in ms
(the client's clock; One Euro smoothing uses the gaps between them), then a JPEG (or PNG). Text messages are JSON
settings: {"kpt_thr": 0.3} (answered with the settings now in force).

Server -> client, JSON text: {"type": "pose", "frame": id, "t": capture ms, "width", "height", "persons": [...
with track_id], "timings_ms", "dropped": total so far} for every frame processed; {"type": "dropped", "frame": id}
for a frame replaced by a newer one before the model got to it; {"type": "error", ...} for a frame that could not be
decoded (the stream goes on).

Per connection: a `NewestFrameSlot` holding at most one pending frame (the newest wins: a frame arriving while the
model is busy replaces the pending one, which is counted as dropped and never decoded), and its own
`StreamPoseEstimator` (detection on the stream schedule, carried boxes, `PoseTracker` ids, One Euro smoothing) over
the server's one `PoseEstimator`, run on a worker thread one frame at a time.
"""

import asyncio
import json
import logging
import struct
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from ..apis.stream import StreamPoseEstimator
from .images import decode_image
from .problems import ServeError
from .responses import persons_json, timings_json

logger = logging.getLogger(__name__)

HEADER = struct.Struct("<Id")


@dataclass
class Frame:
    id: int
    t_ms: float
    data: bytes
    received: float


def parse_frame(message: bytes) -> Frame:
    if len(message) <= HEADER.size:
        raise ServeError(400, "bad_frame", f"frame message of {len(message)} bytes; expected a {HEADER.size}-byte "
                                           "header (uint32 id, float64 capture ms, little-endian) and a JPEG")
    frame_id, t_ms = HEADER.unpack_from(message)
    return Frame(frame_id, t_ms, message[HEADER.size:], time.perf_counter())


class NewestFrameSlot:
    """A buffer of one frame for asyncio code: `put` replaces a pending frame (returned, counted in `dropped`);
    `take` waits for a frame and empties the slot."""

    def __init__(self) -> None:
        self._item: Optional[Frame] = None
        self._event = asyncio.Event()
        self.dropped = 0

    def put(self, item: Frame) -> Optional[Frame]:
        old, self._item = self._item, item
        if old is not None:
            self.dropped += 1
        self._event.set()
        return old

    async def take(self) -> Frame:
        await self._event.wait()
        self._event.clear()
        item, self._item = self._item, None
        return item


class StreamSession:
    """One WebSocket connection's loop (module docstring). `make_stream()` builds its StreamPoseEstimator;
    `metrics` (ServeMetrics) counts frames and drops."""

    def __init__(self, websocket: Any, make_stream: Callable[[], StreamPoseEstimator], max_pixels: int,
                 kpt_thr: float, metrics: Any) -> None:
        self.ws = websocket
        self.stream = make_stream()
        self.max_pixels = max_pixels
        self.kpt_thr = kpt_thr
        self.metrics = metrics
        self.slot = NewestFrameSlot()
        self.processed = 0

    async def run(self) -> None:
        worker = asyncio.create_task(self._process_loop())
        try:
            await self._receive_loop()
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)

    async def _receive_loop(self) -> None:
        from starlette.websockets import WebSocketDisconnect

        try:
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("text") is not None:
                    await self._settings(message["text"])
                    continue
                try:
                    frame = parse_frame(message.get("bytes") or b"")
                except ServeError as err:
                    await self.ws.send_json({"type": "error", "kind": err.kind, "message": err.message})
                    continue
                old = self.slot.put(frame)
                if old is not None:
                    self.metrics.frames_dropped.inc()
                    await self.ws.send_json({"type": "dropped", "frame": old.id, "dropped": self.slot.dropped})
        except WebSocketDisconnect:
            return

    async def _settings(self, text: str) -> None:
        try:
            settings = json.loads(text)
            self.kpt_thr = float(settings.get("kpt_thr", self.kpt_thr))
            await self.ws.send_json({"type": "settings", "kpt_thr": self.kpt_thr})
        except (ValueError, TypeError, AttributeError) as err:
            await self.ws.send_json({"type": "error", "kind": "bad_settings",
                                     "message": f"settings must be a JSON object such as {{\"kpt_thr\": 0.3}}: {err}"})

    def _process(self, frame: Frame) -> dict:
        """Decode and run one frame (worker thread); the reply message."""
        image = decode_image(frame.data, self.max_pixels, f"frame {frame.id}")
        start = time.perf_counter()
        result = self.stream.process(image, frame.t_ms / 1000.0)
        timings = dict(result.timings, server_total=(time.perf_counter() - frame.received) * 1000.0,
                       model=(time.perf_counter() - start) * 1000.0)
        return {"type": "pose", "frame": frame.id, "t": frame.t_ms, "width": int(image.shape[1]),
                "height": int(image.shape[0]), "persons": persons_json(result, self.kpt_thr, digits=1),
                "timings_ms": timings_json(timings), "dropped": self.slot.dropped}

    async def _process_loop(self) -> None:
        while True:
            frame = await self.slot.take()
            try:
                reply = await asyncio.to_thread(self._process, frame)
                self.processed += 1
                self.metrics.stream_frames.inc()
            except ServeError as err:
                reply = {"type": "error", "frame": frame.id, "kind": err.kind, "message": err.message}
            except Exception:  # the stream goes on; the client hears one line, the log has the traceback
                logger.exception("stream frame %d failed", frame.id)
                reply = {"type": "error", "frame": frame.id, "kind": "internal", "message": "internal error"}
            await self.ws.send_json(reply)
