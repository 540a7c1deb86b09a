"""Every way a demo run can end is said, with its own exit status, and leaves only complete files under final names
(issue 25, "every failure said"): a failure mid-stream or mid-folder publishes nothing; a lost webcam exits 3 with
the recording so far; Ctrl-C exits 130 after closing the outputs; a --boxes file that matches no frame and a value
out of range on the command line are one line and exit 2; a camera is opened only once the models are built; the
summary gives one frame rate; a live recording plays at the rate its frames were finished; the tool logs at INFO."""

import importlib.util
import json
import logging
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from hrnet_pose.apis.demo import build_estimator, parse_args, run_demo
from hrnet_pose.apis.demo_args import build_parser, log_level
from hrnet_pose.apis.demo_outputs import StreamOutputs, measured_rate
from hrnet_pose.errors import run_cli

from testpaths import FIXTURES, MINI, MINI_VAL_ANN, REPO, TINY_YAML

pytestmark = pytest.mark.usefixtures("one_thread")

FRAMES = 20
IMAGE = os.path.join(MINI, "images", "000000000785.jpg")


def _demo_tool():
    spec = importlib.util.spec_from_file_location("hrnet_pose_tools_demo_f", os.path.join(REPO, "tools", "demo.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("w") / "tiny.pth")
    torch.save(torch.load(os.path.join(FIXTURES, "official_hrnet_tiny_a.pt"), weights_only=True)["state_dict"], path)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """20 frames of a real COCO image panning sideways, 160x120 at 10 fps."""
    path = str(tmp_path_factory.mktemp("clip") / "clip.avi")
    image = cv2.imread(IMAGE)
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for i in range(FRAMES):
        writer.write(cv2.resize(image[:, 3 * i: 3 * i + 400], (160, 120)))
    writer.release()
    return path


def _base(weights, out):
    return ["--config", TINY_YAML, "--weights", weights, "--device", "cpu", "--out-dir", str(out), "--no-progress",
            "--backend", "torch"]


def _boxes_file(path, entries):
    with open(path, "w") as f:
        json.dump([{"image_id": k, "bbox": box, "score": 0.9, "category_id": 1} for k, box in entries], f)
    return str(path)


def test_a_failure_at_frame_8_of_20_leaves_no_output_under_its_final_name(clip, weights, tmp_path, capsys):
    # a real failure inside the pipeline's pose stage: the --boxes file gives frame 8 a box of zero width
    boxes = _boxes_file(tmp_path / "boxes.json", [(i, [20, 10, 0 if i == 8 else 80, 100]) for i in range(FRAMES)])
    out = tmp_path / "out"
    status = run_cli(_demo_tool().main, [clip] + _base(weights, out) + ["--boxes", boxes])
    err = capsys.readouterr().err
    assert status == 2 and "zero or negative area" in err
    assert os.listdir(out) == []  # neither clip.mp4 nor clip.jsonl, nor a temporary file


def test_a_failure_in_a_folder_writes_no_predictions_json(weights, tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    with open(MINI_VAL_ANN) as f:
        names = sorted(im["file_name"] for im in json.load(f)["images"])[:3]
    for name in names:
        os.symlink(os.path.join(MINI, "images", name), folder / name)
    entries = [(int(os.path.splitext(n)[0]), [10, 10, 0 if i == 1 else 50, 80]) for i, n in enumerate(names)]
    out = tmp_path / "out"
    status = run_cli(run_demo, [str(folder)] + _base(weights, out) + ["--boxes", _boxes_file(tmp_path / "b.json",
                                                                                            entries)])
    assert status == 2 and "zero or negative area" in capsys.readouterr().err
    assert "predictions.json" not in os.listdir(out) and not [p for p in os.listdir(out) if ".partial" in p]


class _Camera:
    """Stands in for cv2.VideoCapture(0): `frames` frames of a real image, one every 20 ms, then reads that fail
    (the camera was unplugged)."""

    opened = 0

    def __init__(self, frames=8):
        _Camera.opened += 1
        self.left = frames
        self.image = cv2.resize(cv2.imread(IMAGE), (160, 120))

    def read(self):
        import time

        if self.left <= 0:
            return False, None
        self.left -= 1
        time.sleep(0.02)
        return True, self.image.copy()

    def isOpened(self):
        return True

    def set(self, prop, value):
        return True

    def get(self, prop):
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self):
        pass


@pytest.fixture()
def camera(monkeypatch):
    from hrnet_pose.streams import live

    _Camera.opened = 0
    monkeypatch.setattr(live, "_quiet_capture", lambda *args: _Camera())
    return _Camera


def test_a_lost_webcam_exits_3_with_its_own_message_and_keeps_the_recording(camera, weights, tmp_path, capsys):
    out = tmp_path / "out"
    status = run_cli(_demo_tool().main, ["0"] + _base(weights, out) + ["--det-model", "none"])
    captured = capsys.readouterr()
    assert status == 3
    assert captured.err.strip().splitlines()[0].startswith("error: webcam 0 stopped delivering frames")
    assert "camera lost:" in captured.out
    jsonl = [p for p in os.listdir(out) if p.endswith(".jsonl")]
    videos = [p for p in os.listdir(out) if p.endswith(".mp4")]
    assert len(jsonl) == 1 and len(videos) == 1 and not [p for p in os.listdir(out) if ".partial" in p]
    assert len((out / jsonl[0]).read_text().splitlines()) >= 1


def test_the_camera_opens_only_after_the_models_are_built(camera, weights, tmp_path):
    from hrnet_pose.config import ConfigError

    with pytest.raises(ConfigError):
        run_demo(["0"] + _base(weights, tmp_path / "o") + ["--det-model", "none", "TEST.FLIP_TST", "True"])
    assert camera.opened == 0  # nothing held open, and no frame dropped while the models loaded


def test_boxes_that_match_no_frame_name_their_ids_and_the_frames_expected(clip, weights, tmp_path, capsys):
    boxes = _boxes_file(tmp_path / "b.json", [("000000000785.jpg", [1, 1, 30, 40]), (500, [1, 1, 30, 40])])
    status = run_cli(run_demo, [clip] + _base(weights, tmp_path / "o") + ["--boxes", boxes])
    err = capsys.readouterr().err
    assert status == 2 and "'000000000785.jpg', 500" in err and "frame indices 0-19" in err
    assert len(err.strip().splitlines()) <= 2


@pytest.mark.parametrize("option, value", [("--bbox-thr", "1.5"), ("--max-persons", "0"), ("--max-batch", "0"),
                                           ("--det-interval", "0"), ("--kpt-thr", "-0.1"), ("--nms-thr", "0"),
                                           ("--min-pose-score", "2"), ("--radius", "0"), ("--max-persons", "two"),
                                           ("--smooth-min-cutoff", "0"), ("--track-max-age", "-1")])
def test_a_value_out_of_range_is_one_line_and_exit_2(option, value, capsys):
    with pytest.raises(SystemExit) as stop:
        parse_args([IMAGE, option, value])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and option in err[0] and value in err[0]


def test_ctrl_c_exits_130_after_closing_the_outputs(clip, weights, tmp_path, monkeypatch, capsys):
    import hrnet_pose.apis.demo as demo

    shown = []

    def wait_key(delay):
        if len(shown) == 3:
            raise KeyboardInterrupt
        return -1

    monkeypatch.setattr(demo, "gui_unavailable_reason", lambda: None)
    monkeypatch.setattr(demo.cv2, "imshow", lambda name, image: shown.append(image.shape))
    monkeypatch.setattr(demo.cv2, "waitKey", wait_key)
    monkeypatch.setattr(demo.cv2, "destroyAllWindows", lambda: None)
    out = tmp_path / "out"
    status = run_cli(_demo_tool().main, [clip] + _base(weights, out) + ["--det-model", "none", "--show"])
    captured = capsys.readouterr()
    assert status == 130 and "stopped by Ctrl-C" in captured.out
    assert sorted(os.listdir(out)) == ["clip.jsonl", "clip.mp4"]
    assert len((out / "clip.jsonl").read_text().splitlines()) == 3
    cap = cv2.VideoCapture(str(out / "clip.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    cap.release()


def test_the_summary_gives_one_frame_rate(clip, weights, tmp_path):
    summary = run_demo([clip] + _base(weights, tmp_path / "o") + ["--det-model", "none"])
    text = summary.format()
    assert text.count("FPS") == 1 and f"{summary.frames / summary.wall_s:.1f} FPS end to end" in text


def test_a_live_recording_plays_at_the_rate_its_frames_were_finished(tmp_path):
    """A camera that says 30 fps while the pipeline finished 5 frames a second (the rest dropped to stay live): the
    video plays at 5 fps, so it lasts as long as the scene did."""
    outputs = StreamOutputs(str(tmp_path), "live", fps=30.0, save_video=True, live=True)
    canvas = np.zeros((48, 64, 3), np.uint8)
    stamps = [0.0] + [1.5 + 0.2 * i for i in range(24)]  # the first frame waited for the models' first run
    for i, t in enumerate(stamps):
        outputs.write_record({"frame": i})
        outputs.write_frame(canvas, t)
    video, _ = outputs.commit()
    cap = cv2.VideoCapture(video)
    assert abs(cap.get(cv2.CAP_PROP_FPS) - 5.0) < 0.01 and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == len(stamps)
    cap.release()
    assert measured_rate([0.0, 0.0], 30.0) == 30.0  # too few frames to measure: the camera's own figure


def test_a_file_recording_keeps_the_file_rate(tmp_path):
    outputs = StreamOutputs(str(tmp_path), "file", fps=12.5, save_video=True, live=False)
    for i in range(3):
        outputs.write_frame(np.zeros((48, 64, 3), np.uint8), i * 7.0)
    video, _ = outputs.commit()
    cap = cv2.VideoCapture(video)
    assert abs(cap.get(cv2.CAP_PROP_FPS) - 12.5) < 0.01
    cap.release()


def test_demo_logs_at_info_unless_quiet_and_lists_debug_in_help():
    assert log_level([]) == logging.INFO and log_level(["x.jpg", "--quiet"]) == logging.WARNING
    assert log_level(["--debug"]) == logging.DEBUG
    text = build_parser().format_help()
    assert "--debug" in text and "--quiet" in text and "--stop-on-damaged-video" in text and "130" in text


def test_the_tool_logs_at_info_by_default(tmp_path):
    """tools/demo.py configures logging: what the library says at INFO (which network runs where, and on a first run
    "exporting the pose network ... (a one-time pause)", tests/deploy/test_ort_cache_trust.py) reaches the user."""
    cmd = [sys.executable, os.path.join(REPO, "tools", "demo.py"), IMAGE, "--config", TINY_YAML, "--det-model",
           "none", "--out-dir", str(tmp_path / "o"), "--no-progress", "--device", "cpu", "--backend", "torch"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "INFO" in run.stderr and "pose network: torch" in run.stderr


def test_detector_and_pose_sessions_split_the_cores_on_a_stream(clip, tmp_path, monkeypatch):
    from hrnet_pose.apis.detectors import PersonDetector
    from hrnet_pose.deploy.onnx_backend import physical_cores

    monkeypatch.setenv("HRNET_POSE_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    det_weights = str(tmp_path / "ssdlite.pth")
    torch.save(PersonDetector("ssdlite", pretrained=False, runtime="torch").model.state_dict(), det_weights)
    args = parse_args([clip, "--config", TINY_YAML, "--device", "cpu", "--det-model", "ssdlite", "--det-weights",
                       det_weights, "--det-runtime", "onnxruntime", "--backend", "onnxruntime"])
    streaming = build_estimator(args, concurrent=True)
    cores = physical_cores()
    pose, det = streaming.backend.num_threads, streaming.detector.onnx.num_threads
    assert (pose + det == cores) if cores >= 2 else (pose, det) == (1, 1)
    one_by_one = build_estimator(args, concurrent=False)
    assert one_by_one.backend.num_threads == one_by_one.detector.onnx.num_threads == cores


def test_frames_dropped_while_the_models_started_are_not_counted_as_stale():
    from hrnet_pose.apis.demo_outputs import DemoSummary
    from hrnet_pose.apis.pipeline import PipelineStats

    summary = DemoSummary(frames=10, wall_s=2.0, stream=PipelineStats(frames=10, dropped=25), warmup_dropped=20)
    text = summary.format()
    assert "5 stale frames dropped (and 20 while the models started)" in text and "5.0 FPS end to end" in text
