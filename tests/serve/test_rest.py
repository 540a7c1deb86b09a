"""The REST routes end to end on a real server (127.0.0.1) with the quickstart model: every route's success path,
the keypoints equal `PoseEstimator`'s on the same image and boxes, a batch equals its images sent one by one."""

import json

import cv2
import httpx
import numpy as np
import pytest

from hrnet_pose.serve.app import create_app
from hrnet_pose.serve.settings import ServeSettings

from servertest import running_server


@pytest.fixture(scope="module")
def client(quickstart):
    with running_server(create_app(quickstart, ServeSettings(model_name="quickstart"))) as url:
        with httpx.Client(base_url=url, timeout=60) as c:
            yield c


def _kpts(body):
    return np.array([p["keypoints"] for p in body["persons"]], np.float64).reshape(-1, 17, 3)


def _expected(estimator, image, boxes=None):
    r = estimator(image, boxes=boxes)
    return np.concatenate([r.keypoints, r.scores[..., None]], axis=2), r


def test_pose_equals_the_estimator_on_the_same_image_and_boxes(client, quickstart, figures, tmp_path):
    frames, jpegs, boxes = figures
    path = tmp_path / "frame.jpg"
    path.write_bytes(jpegs[0])  # the estimator reads the same file the client sends
    r = client.post("/v1/pose", files={"image": ("frame.jpg", jpegs[0], "image/jpeg")},
                    data={"boxes": json.dumps(boxes[0].tolist())})
    assert r.status_code == 200, r.text
    body = r.json()
    want, result = _expected(quickstart, str(path), boxes[0])
    # the same crops through the same network in a batch of the same size: equal up to float32 printing
    np.testing.assert_allclose(_kpts(body), want, rtol=0, atol=1e-4)
    xywh = np.concatenate([result.boxes[:, :2], result.boxes[:, 2:] - result.boxes[:, :2]], axis=1)
    np.testing.assert_allclose([p["bbox"] for p in body["persons"]], xywh, rtol=0, atol=1e-3)
    assert body["keypoint_names"][0] == "nose" and body["model"] == "quickstart"
    assert "boxes given by the client" in body["protocol"] and "flip test off" in body["protocol"]
    assert body["image"] == {"width": 256, "height": 192}
    assert {"queue", "detect", "preprocess", "pose", "decode", "server_total"} <= set(body["timings_ms"])
    # the trained model finds the figures: most keypoints over the threshold
    assert np.mean([v for p in body["persons"] for v in p["visible"]]) > 0.8


def test_raw_body_without_boxes_is_the_whole_image(client, quickstart, figures):
    frames, jpegs, _ = figures
    r = client.post("/v1/pose", content=jpegs[1], headers={"content-type": "image/jpeg"})
    assert r.status_code == 200, r.text
    decoded = cv2.imdecode(np.frombuffer(jpegs[1], np.uint8), cv2.IMREAD_COLOR)
    want, _ = _expected(quickstart, decoded)
    np.testing.assert_allclose(_kpts(r.json()), want, rtol=0, atol=1e-4)
    assert r.json()["persons"][0]["bbox"] == [0.0, 0.0, 255.0, 191.0]


def test_png_upload_and_flip_and_threshold_parameters(client, quickstart, figures):
    frames, _, boxes = figures
    png = cv2.imencode(".png", frames[0])[1].tobytes()
    r = client.post("/v1/pose", params={"flip_test": "true", "kpt_thr": "0.99"},
                    files={"image": ("f.png", png, "image/png")}, data={"boxes": json.dumps(boxes[0].tolist())})
    assert r.status_code == 200, r.text
    r_est = quickstart(frames[0], boxes=boxes[0], flip_test=True)
    np.testing.assert_allclose(_kpts(r.json())[..., :2], r_est.keypoints, rtol=0, atol=1e-4)
    assert "flip test on" in r.json()["protocol"]
    visible = np.array([p["visible"] for p in r.json()["persons"]])
    np.testing.assert_array_equal(visible, r_est.scores >= 0.99)


def test_draw_returns_the_drawn_jpeg(client, figures):
    frames, jpegs, boxes = figures
    for kwargs in ({"params": {"draw": "1"}}, {"headers": {"accept": "image/jpeg"}}):
        r = client.post("/v1/pose", files={"image": ("f.jpg", jpegs[0], "image/jpeg")}, **kwargs)
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        drawn = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
        plain = cv2.imdecode(np.frombuffer(jpegs[0], np.uint8), cv2.IMREAD_COLOR)
        assert drawn.shape == plain.shape
        assert (np.abs(drawn.astype(int) - plain).max(axis=2) > 60).sum() > 200  # the skeleton is there


def test_batch_equals_single(client, figures):
    frames, jpegs, boxes = figures
    files = [("image", (f"f{i}.jpg", j, "image/jpeg")) for i, j in enumerate(jpegs)]
    r = client.post("/v1/pose/batch", files=files, data={"boxes": json.dumps([boxes[0].tolist(), None])})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(results) == 2 and len(results[0]["persons"]) == 2 and len(results[1]["persons"]) == 1
    # both images' persons went through the network in one call
    assert results[0]["timings_ms"]["batch_persons"] == 3 and results[0]["timings_ms"]["batch_images"] == 2
    singles = [client.post("/v1/pose", files={"image": ("f.jpg", jpegs[0], "image/jpeg")},
                           data={"boxes": json.dumps(boxes[0].tolist())}).json(),
               client.post("/v1/pose", files={"image": ("f.jpg", jpegs[1], "image/jpeg")}).json()]
    for got, want in zip(results, singles):
        # batch composition changes the convolution's summation order: equal to ~1e-3 px, not bit for bit
        np.testing.assert_allclose(_kpts(got), _kpts(want), rtol=0, atol=2e-3)


def test_info_routes(client):
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    model = client.get("/v1/models").json()["models"][0]
    assert model["name"] == "quickstart" and model["backend"] == "torch"
    assert model["input_size"] == {"width": 64, "height": 96}
    assert len(model["keypoint_set"]["names"]) == 17 and [15, 13] in model["keypoint_set"]["skeleton"]
    page = client.get("/")
    assert page.status_code == 200 and "getUserMedia" in page.text and "/*SCRIPT*/" not in page.text
    assert "<script src=" not in page.text  # no CDN: everything inline, works offline
    assert client.get("/openapi.json").json()["paths"]["/v1/pose"]["post"]["requestBody"]
    assert client.get("/docs").status_code == 200
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'hrnet_pose_requests_total{route="/healthz",status="200"}' in text
    for name in ("hrnet_pose_request_seconds_bucket", "hrnet_pose_queue_depth", "hrnet_pose_stream_frames_dropped_total",
                 "hrnet_pose_errors_total", "hrnet_pose_batch_persons_bucket"):
        assert name in text, name
