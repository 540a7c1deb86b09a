"""Prometheus metrics of one server process (prometheus-client, text format at `GET /metrics`).

- `hrnet_pose_requests_total{route, status}`: every HTTP request, errors included (route is the route's path, or
  "other" for unknown paths so that scanners cannot blow up the label set);
- `hrnet_pose_errors_total{kind}`: error responses by `ServeError.kind` (auth, body_too_large, truncated_image, ...);
- `hrnet_pose_request_seconds{route}`: latency histogram, server side;
- `hrnet_pose_queue_depth`: images in the batcher; `hrnet_pose_batch_persons`: persons per network batch;
- `hrnet_pose_stream_frames_total` / `hrnet_pose_stream_frames_dropped_total`: WebSocket frames processed and
  dropped as stale (newest frame wins), `hrnet_pose_stream_connections`: open WebSockets.

Each app has its own registry, so several apps in one process (tests) do not collide. With `--workers N` each
worker process counts its own requests; a scrape sees the worker that answered it.
"""

import time
from typing import Any, Callable, Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServeMetrics:
    """The metrics above in their own registry; `routes` are the paths used as route labels."""

    def __init__(self, routes: Iterable[str], queue_depth: Callable[[], float]) -> None:
        self.routes = set(routes)
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("hrnet_pose_requests", "HTTP requests by route and status", ["route", "status"],
                                registry=r)
        self.errors = Counter("hrnet_pose_errors", "error responses by kind", ["kind"], registry=r)
        self.latency = Histogram("hrnet_pose_request_seconds", "request latency in the server", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("hrnet_pose_queue_depth", "images queued or in the network", registry=r)
        self.queue_depth.set_function(queue_depth)
        self.batch_persons = Histogram("hrnet_pose_batch_persons", "persons per network batch",
                                       buckets=(1, 2, 4, 8, 16, 32, 64), registry=r)
        self.stream_frames = Counter("hrnet_pose_stream_frames", "WebSocket frames processed", registry=r)
        self.frames_dropped = Counter("hrnet_pose_stream_frames_dropped",
                                      "WebSocket frames dropped because a newer one arrived", registry=r)
        self.stream_connections = Gauge("hrnet_pose_stream_connections", "open WebSocket streams", registry=r)

    def route_label(self, path: str) -> str:
        return path if path in self.routes else "other"

    def render(self) -> bytes:
        return generate_latest(self.registry)

    content_type = CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Pure ASGI middleware: counts every HTTP request by route and status and times it (outermost, so that
    requests refused by the guard are counted too)."""

    def __init__(self, app: Any, metrics: ServeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = self.metrics.route_label(scope.get("path", ""))
        status = {"code": 500}
        start = time.perf_counter()

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.requests.labels(route, str(status["code"])).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)
