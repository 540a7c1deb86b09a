"""Pose as a service: an HTTP API (FastAPI on uvicorn) over one `PoseEstimator`, a browser webcam page and a
WebSocket stream with per-connection tracking.

Routes (`app.create_app`): `POST /v1/pose` (one image -> persons as JSON, or the drawn image), `POST /v1/pose/batch`
(several images through the network in one batch), `GET /v1/models`, `GET /healthz`, `GET /metrics` (Prometheus),
`GET /` (the webcam page, static files shipped in this package) and `WS /v1/stream` (JPEG frames in, tracked and
smoothed poses out, newest frame wins). Concurrent requests are batched (`batching.PoseBatcher`) behind a bounded
queue (503 with Retry-After when full); `guard.GuardMiddleware` checks the API key and the body size.

This room sits above `apis` and is imported only by `tools/serve.py` (and its console script `hrnet-pose-serve`).
It needs the `serve` extra: `pip install -e .[serve]`.
"""
