"""Security and bad input on a real server: the API key on every route but /healthz, each bad upload answered with
its status and a JSON error (never a traceback) and a good request right after still served, 503 + Retry-After
when the queue is full."""

import json
import struct
import threading
import zlib

import httpx
import pytest

from hrnet_pose.serve.app import create_app
from hrnet_pose.serve.settings import ServeSettings

from servertest import running_server, with_detector

KEY = "s3cret-key"


@pytest.fixture(scope="module")
def keyed(quickstart):
    settings = ServeSettings(model_name="quickstart", api_key=KEY, max_body_bytes=200_000, max_pixels=1_000_000)
    with running_server(create_app(quickstart, settings)) as url:
        with httpx.Client(base_url=url, timeout=60) as c:
            yield c


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk claiming width x height, then a tiny IDAT and IEND: a decompression bomb's
    header (inflating it would need width x height x 3 bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.mark.parametrize("route", ["/v1/models", "/metrics", "/", "/docs", "/openapi.json"])
def test_every_route_but_healthz_needs_the_key(keyed, route):
    assert keyed.get("/healthz").status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong"}, {"Authorization": KEY}):
        r = keyed.get(route, headers=headers)
        assert r.status_code == 401, (route, headers, r.status_code)
        assert r.json()["error"]["kind"] == "unauthorized"
    for headers, params in ((AUTH, {}), ({"X-API-Key": KEY}, {}), ({}, {"api_key": KEY})):
        assert keyed.get(route, headers=headers, params=params).status_code == 200, (route, headers, params)


def test_pose_needs_the_key(keyed, figures):
    _, jpegs, _ = figures
    files = {"image": ("f.jpg", jpegs[0], "image/jpeg")}
    assert keyed.post("/v1/pose", files=files).status_code == 401
    assert keyed.post("/v1/pose/batch", files=files, headers={"X-API-Key": "nope"}).status_code == 401
    assert keyed.post("/v1/pose", files=files, headers=AUTH).status_code == 200


def _bad_inputs(jpeg: bytes):
    """(name, request kwargs, status, error kind) for each bad input the issue lists."""
    def upload(body, ctype="image/jpeg", **extra):
        return {"files": {"image": ("upload", body, ctype)}, **extra}

    return [
        ("truncated jpeg", upload(jpeg[: len(jpeg) // 2]), 400, "truncated_image"),
        ("jpeg cut inside its header", upload(jpeg[:300]), 400, "truncated_image"),
        ("png claiming 60000x60000", upload(_png_header_only(60000, 60000), "image/png"), 413, "image_too_large"),
        ("png over --max-pixels", upload(_png_header_only(2000, 1000), "image/png"), 413, "image_too_large"),
        ("text file", upload(b"name,score\nalice,3\n" * 20, "text/plain"), 415, "not_an_image"),
        ("empty body", {"content": b"", "headers": {"content-type": "image/jpeg"}}, 400, "empty_image"),
        ("body over the limit", {"content": b"\xff" * 300_000, "headers": {"content-type": "image/jpeg"}}, 413,
         "body_too_large"),
        ("chunked body over the limit", {"content": iter([b"\xff" * 100_000] * 3),
                                         "headers": {"content-type": "image/jpeg"}}, 413, "body_too_large"),
        ("json body", {"json": {"image": "x"}}, 415, "unsupported_media_type"),
        ("no image field", {"data": {"boxes": "[]"}, "files": {"other": ("a", b"x", "text/plain")}}, 422,
         "missing_image"),
        ("boxes not json", upload(jpeg, data={"boxes": "[[1, 2, 3"}), 422, "bad_boxes"),
        ("boxes of 3 numbers", upload(jpeg, data={"boxes": "[[1, 2, 3]]"}), 422, "bad_boxes"),
        ("boxes with x2 < x1", upload(jpeg, data={"boxes": "[[50, 10, 20, 80]]"}), 422, "bad_boxes"),
        ("boxes with text", upload(jpeg, data={"boxes": '[["a", 1, 2, 3]]'}), 422, "bad_boxes"),
        ("flip_test not a bool", upload(jpeg, data={"flip_test": "maybe"}), 422, "bad_parameter"),
        ("kpt_thr not a number", upload(jpeg, data={"kpt_thr": "high"}), 422, "bad_parameter"),
    ]


def test_each_bad_input_gets_its_status_and_a_good_request_after_still_works(keyed, figures):
    _, jpegs, boxes = figures
    for name, kwargs, status, kind in _bad_inputs(jpegs[0]):
        r = keyed.post("/v1/pose", headers={**AUTH, **kwargs.pop("headers", {})}, **kwargs)
        assert r.status_code == status, (name, r.status_code, r.text)
        body = r.json()
        assert body["error"]["kind"] == kind and body["error"]["status"] == status, (name, body)
        assert "Traceback" not in r.text and len(body["error"]["message"]) > 10
        good = keyed.post("/v1/pose", headers=AUTH, files={"image": ("f.jpg", jpegs[0], "image/jpeg")},
                          data={"boxes": json.dumps(boxes[0].tolist())})
        assert good.status_code == 200 and len(good.json()["persons"]) == 2, name
    errors = keyed.get("/metrics", headers=AUTH).text
    assert 'hrnet_pose_errors_total{kind="truncated_image"} 2.0' in errors
    assert 'hrnet_pose_errors_total{kind="unauthorized"}' in errors


def test_batch_boxes_must_match_the_images(keyed, figures):
    _, jpegs, _ = figures
    files = [("image", ("a.jpg", jpegs[0], "image/jpeg")), ("image", ("b.jpg", jpegs[1], "image/jpeg"))]
    r = keyed.post("/v1/pose/batch", headers=AUTH, files=files, data={"boxes": "[null]"})
    assert r.status_code == 422 and r.json()["error"]["kind"] == "bad_boxes"
    assert keyed.post("/v1/pose/batch", headers=AUTH, files=files).status_code == 200


def test_full_queue_answers_503_with_retry_after(quickstart, figures):
    """A detector that holds its image until released keeps one request in the queue (max_queue=1): the next is
    refused with 503 + Retry-After at once, and once released both the held request and later ones succeed."""
    _, jpegs, _ = figures
    entered, release = threading.Event(), threading.Event()

    def held_detector(image):
        entered.set()
        release.wait(30)
        h, w = image.shape[:2]
        return [[0, 0, w - 1, h - 1]], [1.0]

    estimator = with_detector(quickstart, held_detector)
    app = create_app(estimator, ServeSettings(max_queue=1, retry_after_s=2))
    files = {"image": ("f.jpg", jpegs[0], "image/jpeg")}
    with running_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        held = {}
        thread = threading.Thread(target=lambda: held.update(r=client.post("/v1/pose", files=files)))
        thread.start()
        assert entered.wait(30)
        busy = client.post("/v1/pose", files=files)
        assert busy.status_code == 503 and busy.headers["retry-after"] == "2"
        assert busy.json()["error"]["kind"] == "queue_full"
        assert client.get("/healthz").json()["queue_depth"] == 1
        release.set()
        thread.join(60)
        assert held["r"].status_code == 200 and len(held["r"].json()["persons"]) == 1
        assert client.post("/v1/pose", files=files).status_code == 200
        # a batch that could never fit the queue is not told to retry
        too_many = client.post("/v1/pose/batch", files=[("image", ("a.jpg", jpegs[0], "image/jpeg"))] * 2)
        assert too_many.status_code == 413 and too_many.json()["error"]["kind"] == "batch_too_large"
