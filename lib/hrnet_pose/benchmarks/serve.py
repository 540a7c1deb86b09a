"""The pose service measured against the in-process API, side by side in one run (`tools/benchmark.py --mode serve`).

Rows (`run_serve_benchmark`), all on 1280x720 JPEGs of synthetic walking figures, the pose network in onnxruntime
and the person detector (SSDlite by default) with random weights saved to local files, so that the server process
and this one load the same weights; the detector's score threshold is 0 and `max_persons` is the image's person
count, so every call poses exactly that many boxes (random weights find no real people; the compute is the same):
- in-process: `PoseEstimator` on the decoded image, and decode + call (what the server does per request);
- REST, 1 client, sequential: end-to-end latency (client to client) and the server's own time (`server_total`);
- REST, 1 client vs N concurrent clients on 6-person images: throughput (batching, and the detector of one request
  overlapping the pose network of another), p95, failed requests, and the server's resident memory after the
  warm-up, after the first tenth of the requests and at the end (flat = no growth per request);
- the webcam page in headless Chromium (system browser, Playwright client) with a fake camera playing a 720p clip of
  one figure at 30 fps: FPS of drawn frames and mean capture-to-drawn latency, read from the page itself.

The server runs as its own process (`python -m hrnet_pose.serve`), started and stopped here, on 127.0.0.1.
"""

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional, Sequence

import cv2
import numpy as np
import torch

from ..apis.detectors import PersonDetector
from ..apis.estimator import PoseEstimator
from ..config import load_config
from ..datasets.synthetic import synthetic_video
from ..models import build_model
from ..streams.y4m import write_y4m

logger = logging.getLogger(__name__)
SIZE = (1280, 720)


def frame_jpeg(persons: int, seed: int = 0) -> bytes:
    frames, _ = synthetic_video(1, SIZE, num_people=persons, seed=seed, height=0.45, spread=0.12)
    return cv2.imencode(".jpg", frames[0], [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def save_random_weights(cfg_path: str, opts: Sequence[str], det_model: str, folder: str) -> Dict[str, str]:
    """Random pose and detector weights as local .pth files (the server process loads the same ones)."""
    torch.manual_seed(0)
    pose = os.path.join(folder, "pose_random.pth")
    torch.save(build_model(load_config(cfg_path, list(opts))).state_dict(), pose)
    det = os.path.join(folder, f"{det_model}_random.pth")
    torch.save(PersonDetector(det_model, pretrained=False, runtime="torch").model.state_dict(), det)
    return {"pose": pose, "det": det}


def _percentiles(ms: Sequence[float]) -> Dict[str, float]:
    a = np.asarray(ms, np.float64)
    return {"p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)), "mean_ms": float(a.mean())}


def in_process_row(cfg_path: str, opts: Sequence[str], weights: Dict[str, str], det_model: str, jpeg: bytes,
                   persons: int, iters: int) -> Dict[str, Any]:
    """PoseEstimator in this process: the call alone, and JPEG decode + call."""
    from ..apis.detectors import build_detector

    detector = build_detector(det_model, weights=weights["det"], score_thr=0.0, max_persons=persons)
    est = PoseEstimator.from_config(cfg_path, weights["pose"], device="cpu", detector=detector, flip_test=False,
                                    opts=list(opts), backend="onnxruntime")
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    for _ in range(2):
        est(image)
    call, total, stages = [], [], []
    for _ in range(iters):
        t0 = time.perf_counter()
        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        t1 = time.perf_counter()
        result = est(img)
        t2 = time.perf_counter()
        call.append((t2 - t1) * 1000)
        total.append((t2 - t0) * 1000)
        stages.append(result.timings)
    return {"row": "in-process PoseEstimator", "persons": persons, "clients": 1, "requests": iters,
            **_percentiles(total), "server_ms": float(np.median(call)), "throughput": 1000.0 / float(np.mean(total)),
            "failed": 0, "found": len(result), "backend": est.backend.name, **_stage_medians(stages)}


def _stage_medians(timings: Sequence[Dict[str, float]]) -> Dict[str, float]:
    return {f"{k}_ms": float(np.median([t.get(k, 0.0) for t in timings])) for k in ("detect", "pose")}


class ServerProcess:
    """`python -m hrnet_pose.serve` on 127.0.0.1:<free port> with the benchmark's model; a context manager."""

    def __init__(self, cfg_path: str, opts: Sequence[str], weights: Dict[str, str], det_model: str, persons: int,
                 log_path: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.cmd = [sys.executable, "-m", "hrnet_pose.serve", "--cfg", cfg_path, "--weights", weights["pose"],
                    "--backend", "onnxruntime", "--det-model", det_model, "--det-weights", weights["det"],
                    "--bbox-thr", "0", "--max-persons", str(persons), "--no-flip-test", "--port", str(self.port),
                    "--min-pose-score=-inf", "--no-detect-on-loss", "--max-queue", "256", "--log-level", "warning",
                    *(["--opts", *opts] if opts else [])]
        self.log_path = log_path
        self.proc: Optional[subprocess.Popen] = None

    def __enter__(self) -> "ServerProcess":
        import httpx

        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.cmd, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}; log: {self.log_path}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.5)
        raise RuntimeError(f"the server did not start in 600 s; log: {self.log_path}")

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024.0

    def __exit__(self, *exc: Any) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


def _post(client: Any, jpeg: bytes) -> Dict[str, Any]:
    r = client.post("/v1/pose", content=jpeg, headers={"content-type": "image/jpeg"})
    r.raise_for_status()
    return r.json()


def http_sequential(url: str, jpeg: bytes, persons: int, iters: int) -> Dict[str, Any]:
    """One client, one request after the other: end-to-end and server latency."""
    import httpx

    with httpx.Client(base_url=url, timeout=120) as client:
        for _ in range(3):
            _post(client, jpeg)
        e2e, server, found, stages = [], [], 0, []
        for _ in range(iters):
            t0 = time.perf_counter()
            body = _post(client, jpeg)
            e2e.append((time.perf_counter() - t0) * 1000)
            server.append(body["timings_ms"]["server_total"])
            stages.append(body["timings_ms"])
            found = len(body["persons"])
    return {"row": "REST POST /v1/pose, sequential", "persons": persons, "clients": 1, "requests": iters,
            **_percentiles(e2e), "server_ms": float(np.median(server)), "throughput": 1000.0 / float(np.mean(e2e)),
            "failed": 0, "found": found, **_stage_medians(stages)}


def http_concurrent(server: ServerProcess, jpeg: bytes, persons: int, clients: int,
                    requests: int) -> Dict[str, Any]:
    """`clients` threads, each its own connection, `requests` in all: throughput, latency, failures, server RSS."""
    import httpx

    lock = threading.Lock()
    state = {"left": requests, "done": 0, "failed": 0, "rss_tenth": None}
    latencies: List[float] = []

    def worker() -> None:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            while True:
                with lock:
                    if state["left"] == 0:
                        return
                    state["left"] -= 1
                t0 = time.perf_counter()
                try:
                    _post(client, jpeg)
                    ok = True
                except httpx.HTTPError:
                    ok = False
                with lock:
                    latencies.append((time.perf_counter() - t0) * 1000)
                    state["done"] += 1
                    state["failed"] += 0 if ok else 1
                    if state["done"] == max(requests // 10, 1):
                        state["rss_tenth"] = server.rss_mb()

    rss_start = server.rss_mb()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {"row": f"REST POST /v1/pose, {clients} concurrent clients", "persons": persons, "clients": clients,
            "requests": requests, **_percentiles(latencies), "server_ms": float("nan"),
            "throughput": requests / wall, "failed": state["failed"], "rss_start_mb": rss_start,
            "rss_tenth_mb": state["rss_tenth"], "rss_end_mb": server.rss_mb()}


def chromium_path() -> Optional[str]:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _page_stats(page: Any) -> Dict[str, Any]:
    return page.evaluate("({drawn: window.poseStats.framesDrawn, lat: window.poseStats.latencies.slice(), "
                         "persons: window.poseStats.framesWithPersons, dropped: window.poseStats.dropped})")


def page_row(url: str, folder: str, seconds: float, warmup_s: float = 5.0,
             fps: int = 30) -> Optional[Dict[str, Any]]:
    """The webcam page in headless Chromium with a 720p fake camera; None (logged) without chromium/playwright."""
    browser_path = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        browser_path = None
    if browser_path is None:
        logger.warning("page row skipped: needs the system chromium and the playwright Python client")
        return None
    frames, _ = synthetic_video(fps, SIZE, num_people=1, seed=1, height=0.6)
    clip = os.path.join(folder, "walk_720p.y4m")
    write_y4m(clip, frames, fps=fps)
    args = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={clip}"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=browser_path, headless=True, args=args)
        try:
            page = browser.new_page()
            page.goto(url + "/?autostart=1")
            page.wait_for_function("window.poseStats && window.poseStats.framesDrawn > 0", timeout=120_000)
            time.sleep(warmup_s)
            before, t0 = _page_stats(page), time.perf_counter()
            time.sleep(seconds)
            after, t1 = _page_stats(page), time.perf_counter()
            width = page.evaluate("document.getElementById('video').videoWidth")
        finally:
            browser.close()
    drawn = after["drawn"] - before["drawn"]
    lat = after["lat"][len(before["lat"]):]
    return {"row": f"webcam page (headless Chromium, fake camera {width} px wide at {fps} fps, sends 640 wide)",
            "persons": 1, "clients": 1, "requests": drawn, **_percentiles(lat or [float("nan")]),
            "server_ms": float("nan"), "throughput": drawn / (t1 - t0), "failed": 0,
            "dropped_by_server": after["dropped"] - before["dropped"]}


def run_serve_benchmark(cfg_path: str, opts: Sequence[str] = (), iters: int = 20, clients: int = 8,
                        concurrent_requests: int = 400, page_seconds: float = 10.0,
                        det_model: str = "ssdlite") -> List[Dict[str, Any]]:
    """All rows of the module docstring, in one run (temporary weights, clips and server logs)."""
    rows: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hrnet_pose_serve_bench_") as tmp:
        weights = save_random_weights(cfg_path, opts, det_model, tmp)
        one, six = frame_jpeg(1), frame_jpeg(6)
        rows.append(in_process_row(cfg_path, opts, weights, det_model, one, 1, iters))
        with ServerProcess(cfg_path, opts, weights, det_model, 1, os.path.join(tmp, "server1.log")) as server:
            rows.append(http_sequential(server.url, one, 1, iters))
            page = page_row(server.url, tmp, page_seconds) if page_seconds > 0 else None
        rows.append(in_process_row(cfg_path, opts, weights, det_model, six, 6, iters))
        with ServerProcess(cfg_path, opts, weights, det_model, 6, os.path.join(tmp, "server6.log")) as server:
            rows.append(http_sequential(server.url, six, 6, iters))
            rows.append(http_concurrent(server, six, 6, clients, concurrent_requests))
        if page is not None:
            rows.append(page)
    return rows


def _num(v: Any, fmt: str = ".1f") -> str:
    return "-" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, fmt)


def format_serve_table(rows: Sequence[Dict[str, Any]]) -> str:
    """Markdown table, then the Goals' ratios."""
    lines = ["| measurement | persons | clients | requests | p50 ms | p95 ms | server ms (median) | req/s (page: FPS) "
             "| failed | notes |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        notes = ""
        if "rss_end_mb" in r:
            notes = (f"server RSS {r['rss_start_mb']:.0f} MB after warm-up, {_num(r['rss_tenth_mb'], '.0f')} MB "
                     f"after {r['requests'] // 10}, {r['rss_end_mb']:.0f} MB after {r['requests']}")
        elif "dropped_by_server" in r:
            notes = f"mean capture-to-drawn {r['mean_ms']:.0f} ms; {r['dropped_by_server']} stale frames dropped"
        elif "detect_ms" in r:
            notes = (f"median detect {r['detect_ms']:.0f} ms, pose {r['pose_ms']:.0f} ms"
                     + ("; p50 = decode + call, server ms = the call alone" if r["row"].startswith("in-") else ""))
        lines.append(f"| {r['row']} | {r['persons']} | {r['clients']} | {r['requests']} | {_num(r['p50_ms'])} | "
                     f"{_num(r['p95_ms'])} | {_num(r['server_ms'])} | {_num(r['throughput'], '.2f')} | {r['failed']} | "
                     f"{notes} |")
    by = {(r["row"].split(",")[0], r["persons"], r["clients"]): r for r in rows}
    ip, rest = by.get(("in-process PoseEstimator", 1, 1)), by.get(("REST POST /v1/pose", 1, 1))
    if ip and rest:
        lines.append(f"\n1 person: server time / in-process (decode + call) = {rest['server_ms'] / ip['p50_ms']:.2f}; "
                     f"REST p50 end to end / in-process = {rest['p50_ms'] / ip['p50_ms']:.2f}")
    one = by.get(("REST POST /v1/pose", 6, 1))
    many = [r for r in rows if r["persons"] == 6 and r["clients"] > 1]
    if one and many:
        lines.append(f"6 persons: {many[0]['clients']} clients / 1 client throughput = "
                     f"{many[0]['throughput'] / one['throughput']:.2f}")
    return "\n".join(lines)
