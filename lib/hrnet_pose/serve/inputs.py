"""What a pose request carries: images (a multipart field `image` / several for a batch, or a raw image body) and
the optional parameters `boxes`, `flip_test`, `kpt_thr`, `draw` (form fields or query parameters), each checked
with one clear error: 415 for a body that is neither multipart nor an image type, 422 for a malformed parameter,
400/413/415 from `images.decode_image` for a bad image."""

import json
import time
from dataclasses import dataclass
from typing import Any, List, Optional

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request

from ..apis.estimator import check_boxes
from ..errors import UserError
from .images import decode_image
from .problems import ServeError

RAW_TYPES = ("image/", "application/octet-stream")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
MAX_FORM_FILES = 64


@dataclass
class PoseRequest:
    images: List[np.ndarray]
    boxes: List[Optional[np.ndarray]]
    flip_test: Optional[bool]
    kpt_thr: float
    draw: bool
    decode_ms: float = 0.0


def parse_bool(value: Optional[str], name: str) -> Optional[bool]:
    if value is None or value == "":
        return None
    v = str(value).strip().lower()
    if v in _TRUE or v in _FALSE:
        return v in _TRUE
    raise ServeError(422, "bad_parameter", f"{name}={value!r}; expected one of {_TRUE + _FALSE}")


def parse_float(value: Optional[str], name: str, default: float) -> float:
    if value is None or value == "":
        return default
    try:
        out = float(value)
    except ValueError:
        out = float("nan")
    if not np.isfinite(out):
        raise ServeError(422, "bad_parameter", f"{name}={value!r}; expected a number such as 0.3")
    return out


def parse_boxes(text: Any, where: str = "boxes") -> np.ndarray:
    """A JSON list of [x1, y1, x2, y2] -> [N, 4]; ServeError 422 naming the fault."""
    try:
        value = json.loads(text) if isinstance(text, (str, bytes)) else text
    except ValueError as err:
        raise ServeError(422, "bad_boxes", f"{where} is not valid JSON ({err}); expected a list of [x1, y1, x2, y2]"
                                           ", e.g. [[10, 20, 110, 300]]") from None
    if not isinstance(value, list) or not all(isinstance(b, list) and len(b) == 4 and
                                              all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in b)
                                              for b in value):
        raise ServeError(422, "bad_boxes", f"{where} = {str(text)[:200]!r}; expected a JSON list of [x1, y1, x2, y2] "
                                           "number lists, e.g. [[10, 20, 110, 300]]")
    try:
        return check_boxes(value)[0]
    except UserError as err:
        raise ServeError(422, "bad_boxes", f"{where}: {err}") from None


def _batch_boxes(text: Optional[str], count: int) -> List[Optional[np.ndarray]]:
    """Batch requests: `boxes` is a JSON list with one entry per image (null = the detector)."""
    if text is None or text == "":
        return [None] * count
    try:
        value = json.loads(text)
    except ValueError as err:
        raise ServeError(422, "bad_boxes", f"boxes is not valid JSON ({err}); for a batch give one entry per image: "
                                           "[[[x1, y1, x2, y2], ...] or null, ...]") from None
    if not isinstance(value, list) or len(value) != count:
        raise ServeError(422, "bad_boxes", f"boxes must be a JSON list with one entry per image ({count}), each a "
                                           "list of [x1, y1, x2, y2] or null")
    return [None if v is None else parse_boxes(v, f"boxes[{i}]") for i, v in enumerate(value)]


async def _raw_or_form(request: Request, batch: bool) -> tuple:
    """(list of (bytes, where), parameters dict) from a multipart form or a raw image body."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    params = dict(request.query_params)
    if ctype == "multipart/form-data":
        form = await request.form(max_files=MAX_FORM_FILES)
        uploads = [v for k in (("image", "images") if batch else ("image",)) for v in form.getlist(k)]
        files = []
        for i, up in enumerate(uploads):
            if not isinstance(up, UploadFile):
                raise ServeError(422, "bad_image_field", f"form field 'image' #{i} is text, not a file upload")
            files.append((await up.read(), f"image #{i} ({up.filename or 'unnamed'})"))
        params.update({k: v for k, v in form.items() if not isinstance(v, UploadFile)})
        if not files:
            raise ServeError(422, "missing_image", "multipart request without a file field 'image'"
                                                   + (" (or 'images')" if batch else ""))
        return files, params
    if ctype.startswith(RAW_TYPES):
        if batch:
            raise ServeError(415, "unsupported_media_type", "a batch takes multipart/form-data with one 'image' "
                                                            "file field per image")
        return [(await request.body(), "request body")], params
    raise ServeError(415, "unsupported_media_type", f"Content-Type {ctype or '(none)'!r}; send multipart/form-data "
                                                    "with a file field 'image', or a raw image/jpeg or image/png body")


async def read_pose_request(request: Request, max_pixels: int, default_kpt_thr: float,
                            batch: bool = False) -> PoseRequest:
    """The request's images (decoded off the event loop) and checked parameters."""
    files, params = await _raw_or_form(request, batch)
    flip = parse_bool(params.get("flip_test"), "flip_test")
    kpt_thr = parse_float(params.get("kpt_thr"), "kpt_thr", default_kpt_thr)
    draw = bool(parse_bool(params.get("draw"), "draw"))
    if batch:
        boxes = _batch_boxes(params.get("boxes"), len(files))
    else:
        boxes = [None if not params.get("boxes") else parse_boxes(params["boxes"])]
    start = time.perf_counter()
    images = [await run_in_threadpool(decode_image, data, max_pixels, where) for data, where in files]
    return PoseRequest(images, boxes, flip, kpt_thr, draw, (time.perf_counter() - start) * 1000.0)
