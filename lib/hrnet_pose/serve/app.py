"""`create_app(estimator, settings)`: the FastAPI application (routes of the package docstring).

Every error a client can cause answers JSON `{"error": {"status", "kind", "message"}}` (`problems.ServeError`);
anything unexpected is logged here with its traceback and answered 500 "internal error" without one, and the
server stays up. The page at `/` is `static/index.html` with its script and style inlined, so that one address (with
`?api_key=` when a key is set) loads all of it.
"""

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any, Dict, List

import cv2
from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from ..apis.estimator import PoseEstimator
from ..apis.result import PoseResult
from ..apis.stream import StreamPoseEstimator
from ..errors import UserError
from ..streams.tracking import PoseTracker
from .batching import PoseBatcher, QueueFull
from .guard import BodyTooLarge, GuardMiddleware
from .inputs import PoseRequest, read_pose_request
from .metrics import MetricsMiddleware, ServeMetrics
from .problems import ServeError, error_body
from .responses import image_result_json, model_json, protocol_line, timings_json
from .settings import ServeSettings
from .stream_ws import StreamSession

logger = logging.getLogger(__name__)

ROUTES = ("/", "/healthz", "/metrics", "/v1/models", "/v1/pose", "/v1/pose/batch", "/docs", "/openapi.json")
_BODY_DOC = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {
        "image": {"type": "string", "format": "binary"},
        "boxes": {"type": "string", "description": "JSON list of [x1, y1, x2, y2] person boxes (skips the detector)"},
        "flip_test": {"type": "boolean"}, "kpt_thr": {"type": "number"},
        "draw": {"type": "boolean", "description": "answer the drawn JPEG instead of JSON"}}}},
    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
    "image/png": {"schema": {"type": "string", "format": "binary"}}}}}
_BATCH_DOC = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["image"], "properties": {
        "image": {"type": "array", "items": {"type": "string", "format": "binary"}},
        "boxes": {"type": "string", "description": "JSON list, one entry per image: a list of boxes or null"},
        "flip_test": {"type": "boolean"}, "kpt_thr": {"type": "number"}}}}}}}


def page_html() -> str:
    """The webcam page: index.html with style.css and app.js inlined (static files shipped in this package)."""
    static = resources.files(__package__) / "static"
    html = (static / "index.html").read_text(encoding="utf-8")
    return (html.replace("/*STYLE*/", (static / "style.css").read_text(encoding="utf-8"))
            .replace("/*SCRIPT*/", (static / "app.js").read_text(encoding="utf-8")))


def _error_response(err: ServeError, metrics: ServeMetrics) -> JSONResponse:
    metrics.errors.labels(err.kind).inc()
    return JSONResponse(error_body(err.status, err.kind, err.message), status_code=err.status, headers=err.headers)


def _install_error_handlers(app: FastAPI, metrics: ServeMetrics) -> None:
    async def serve_error(request: Request, err: ServeError) -> JSONResponse:
        return _error_response(err, metrics)

    async def too_large(request: Request, err: BodyTooLarge) -> JSONResponse:
        return _error_response(ServeError(413, "body_too_large", str(err)), metrics)

    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        return _error_response(ServeError(422, "bad_parameter", str(err.errors())[:500]), metrics)

    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code, "http_error")
        return _error_response(ServeError(err.status_code, kind, str(err.detail), dict(err.headers or {})), metrics)

    async def internal(request: Request, err: Exception) -> JSONResponse:
        logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=err)
        return _error_response(ServeError(500, "internal", "internal error; the server log has the details"),
                               metrics)

    app.add_exception_handler(ServeError, serve_error)
    app.add_exception_handler(BodyTooLarge, too_large)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, internal)


class PoseService:
    """The model side of the routes: the batcher, the stream sessions' estimators, the answers."""

    def __init__(self, estimator: PoseEstimator, settings: ServeSettings) -> None:
        self.estimator = estimator
        self.settings = settings
        self.batcher = PoseBatcher(estimator, settings.max_batch, settings.batch_window_ms, settings.max_queue)
        self.metrics = ServeMetrics(ROUTES, lambda: self.batcher.depth)

    async def run(self, req: PoseRequest) -> List[PoseResult]:
        """The request's images through the batcher; 503 with Retry-After when its queue is full."""
        if len(req.images) > self.settings.max_queue:  # would never fit: retrying cannot help
            raise ServeError(413, "batch_too_large", f"{len(req.images)} images in one request; the server takes at "
                                                     f"most {self.settings.max_queue} at once (--max-queue)")
        try:
            future = self.batcher.submit(req.images, req.boxes, req.flip_test)
        except QueueFull as err:
            raise ServeError(503, "queue_full", f"server busy ({err}); retry after {self.settings.retry_after_s} s",
                             {"Retry-After": str(self.settings.retry_after_s)}) from None
        try:
            results = await asyncio.wrap_future(future)
        except UserError as err:
            raise ServeError(422, "bad_request", str(err)) from None
        for r in results:
            self.metrics.batch_persons.observe(r.timings.get("batch_persons", 0.0))
        return results

    def one_json(self, req: PoseRequest, index: int, result: PoseResult, start: float) -> Dict[str, Any]:
        out = image_result_json(result, self.estimator, self.settings.model_name, req.images[index].shape,
                                req.kpt_thr, req.flip_test, req.boxes[index] is not None)
        out["timings_ms"]["image_decode"] = round(req.decode_ms, 3)
        out["timings_ms"]["server_total"] = round((time.perf_counter() - start) * 1000.0, 3)
        return out

    def drawn_jpeg(self, req: PoseRequest, result: PoseResult) -> bytes:
        ok, buf = cv2.imencode(".jpg", result.plot(req.images[0], kpt_thr=req.kpt_thr), [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            raise ServeError(500, "encode_failed", "could not encode the drawn image as JPEG")
        return buf.tobytes()

    def make_stream(self) -> StreamPoseEstimator:
        s = self.settings
        smooth_kw = {k: v for k, v in (("min_cutoff", s.smooth_min_cutoff), ("beta", s.smooth_beta)) if v is not None}
        tracker = PoseTracker(self.estimator.keypoint_set.sigmas, smooth=s.smooth, **smooth_kw)
        return StreamPoseEstimator(self.estimator, det_interval=s.det_interval, tracker=tracker,
                                   min_pose_score=s.min_pose_score, max_persons=s.max_persons,
                                   detect_on_loss=s.detect_on_loss)


def _middleware(service: PoseService) -> List[Middleware]:
    """Outermost first: metrics (counts every refusal too), CORS (answers preflights, which carry no key), guard."""
    s, metrics = service.settings, service.metrics
    stack = [Middleware(MetricsMiddleware, metrics=metrics)]
    if s.cors_origin:
        stack.append(Middleware(CORSMiddleware, allow_origins=[s.cors_origin], allow_methods=["GET", "POST"],
                                allow_headers=["Authorization", "X-API-Key", "Content-Type"]))
    stack.append(Middleware(GuardMiddleware, api_key=s.api_key, max_body=s.max_body_bytes,
                            on_error=lambda kind: metrics.errors.labels(kind).inc()))
    return stack


def create_app(estimator: PoseEstimator, settings: ServeSettings) -> FastAPI:
    """The application over one estimator (see module docstring); the batcher's threads stop with the app."""
    service = PoseService(estimator, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        service.batcher.close()

    app = FastAPI(title="hrnet_pose", description="Top-down HRNet pose estimation as a service", version="1",
                  middleware=_middleware(service), lifespan=lifespan)
    app.state.service = service
    _install_error_handlers(app, service.metrics)
    _add_pose_routes(app, service)
    _add_info_routes(app, service)
    return app


def _add_pose_routes(app: FastAPI, service: PoseService) -> None:
    s = service.settings

    @app.post("/v1/pose", openapi_extra=_BODY_DOC, summary="Poses of every person in one image")
    async def pose(request: Request) -> Response:
        start = time.perf_counter()
        req = await read_pose_request(request, s.max_pixels, s.kpt_thr)
        result = (await service.run(req))[0]
        if req.draw or request.headers.get("accept", "").split(",")[0].strip() == "image/jpeg":
            return Response(await run_in_threadpool(service.drawn_jpeg, req, result), media_type="image/jpeg")
        return JSONResponse(service.one_json(req, 0, result, start))

    @app.post("/v1/pose/batch", openapi_extra=_BATCH_DOC, summary="Several images through the network in one batch")
    async def pose_batch(request: Request) -> Response:
        start = time.perf_counter()
        req = await read_pose_request(request, s.max_pixels, s.kpt_thr, batch=True)
        if req.draw:
            raise ServeError(422, "bad_parameter", "draw is for POST /v1/pose (one image); a batch answers JSON")
        results = await service.run(req)
        items = [service.one_json(req, i, r, start) for i, r in enumerate(results)]
        return JSONResponse({"model": s.model_name, "protocol": protocol_line(service.estimator, s.model_name, req.flip_test, False),
                             "keypoint_names": items[0]["keypoint_names"],
                             "results": [{k: v for k, v in it.items() if k in ("image", "persons", "timings_ms",
                                                                                 "protocol")} for it in items],
                             "timings_ms": timings_json({"server_total": (time.perf_counter() - start) * 1000.0})})

    @app.websocket("/v1/stream")
    async def stream(websocket: WebSocket) -> None:
        await websocket.accept()
        service.metrics.stream_connections.inc()
        try:
            await StreamSession(websocket, service.make_stream, s.max_pixels, s.kpt_thr, service.metrics).run()
        finally:
            service.metrics.stream_connections.dec()


def _add_info_routes(app: FastAPI, service: PoseService) -> None:
    s = service.settings
    html = page_html()

    @app.get("/", response_class=HTMLResponse, summary="The browser webcam page")
    async def page() -> HTMLResponse:
        return HTMLResponse(html)

    @app.get("/healthz", summary="Liveness (needs no key)")
    async def healthz() -> Dict[str, Any]:
        return {"status": "ok", "model": s.model_name, "queue_depth": service.batcher.depth}

    @app.get("/v1/models", summary="The loaded model and its keypoint set")
    async def models() -> Dict[str, Any]:
        return {"models": [model_json(service.estimator, s.model_name, s.model_source)]}

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=service.metrics.content_type)
