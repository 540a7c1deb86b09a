"""A real browser on the webcam page: Debian's Chromium, headless, with a fake camera playing a y4m clip of a walking
stick figure, opens `/`, streams over the WebSocket to a real server (quickstart model), and the test reads from the
page's own state that poses arrived and were drawn (frames with persons, the overlay's non-empty pixels) and the FPS
and latency it shows; then the upload tab sends an image to /v1/pose and draws the answer.

Uses the SYSTEM browser through Playwright's Python client (`executable_path`; no browser download at run time).
Skipped with the reason where no chromium is installed; `.ci/run` installs it."""

import shutil

import cv2
import pytest

from hrnet_pose.datasets.synthetic import synthetic_video
from hrnet_pose.serve.app import create_app
from hrnet_pose.serve.settings import ServeSettings
from hrnet_pose.streams.y4m import write_y4m

from servertest import running_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install -y chromium; "
                                                         ".ci/run installs it)")
FRAMES_TO_DRAW = 12


def chromium_args(clip: str):
    return ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={clip}", "--autoplay-policy=no-user-gesture-required"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 240x320 (portrait) clip: one figure walking across, the camera the page will see; and one frame as JPEG."""
    frames, _ = synthetic_video(30, (240, 320), num_people=1, seed=2, height=0.6)
    folder = tmp_path_factory.mktemp("clip")
    write_y4m(str(folder / "walk.y4m"), frames, fps=15)
    cv2.imwrite(str(folder / "still.jpg"), frames[10])
    return str(folder / "walk.y4m"), str(folder / "still.jpg")


def test_webcam_page_streams_and_draws_poses_in_chromium(quickstart, clip):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python client is not installed")
    y4m, still = clip
    app = create_app(quickstart, ServeSettings(model_name="quickstart", api_key="page-key"))
    errors = []
    with running_server(app) as url, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=chromium_args(y4m))
        try:
            page = browser.new_page()
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.goto(f"{url}/?api_key=page-key&autostart=1&width=240")
            try:
                page.wait_for_function(f"window.poseStats && window.poseStats.framesDrawn >= {FRAMES_TO_DRAW}",
                                       timeout=90_000)
            except sync_api.TimeoutError:
                pytest.fail(f"the page drew too few frames: status {page.inner_text('#status')!r}, stats "
                            f"{page.evaluate('JSON.stringify(window.poseStats)')[:400]}, page errors {errors}")
            stats = page.evaluate("window.poseStats")
            overlay_pixels = page.evaluate("window.overlayPixels()")
            shown_fps = float(page.inner_text("#fps"))
            shown_latency = float(page.inner_text("#latency"))
            model_line = page.inner_text("#model")
            page.click("#stop")
            page.click("#tab-upload")
            page.set_input_files("#file", still)
            page.click("#send-file")
            page.wait_for_function("window.lastUpload !== undefined", timeout=60_000)
            upload = page.evaluate("window.lastUpload")
            upload_status = page.inner_text("#upload-status")
        finally:
            browser.close()
    print(f"page: {stats['framesDrawn']} frames drawn, {stats['fps']:.1f} FPS, capture to drawn mean "
          f"{stats['latencyMeanMs']:.0f} ms; overlay {overlay_pixels} px")
    assert not errors and not stats["errors"], (errors, stats["errors"])
    assert stats["framesSent"] >= stats["framesDrawn"] >= FRAMES_TO_DRAW
    assert stats["framesWithPersons"] >= FRAMES_TO_DRAW  # no detector: the whole frame is the person
    assert stats["posesDrawn"] > 5 * FRAMES_TO_DRAW  # keypoints over the threshold were drawn, frame after frame
    assert overlay_pixels > 200  # the skeleton is on the overlay now
    assert len(stats["trackIds"]) == 1
    assert shown_fps > 0 and shown_latency > 0 and stats["latencyMeanMs"] > 0
    assert "quickstart" in model_line and "torch" in model_line
    assert len(upload["persons"]) == 1 and "1 persons" in upload_status
