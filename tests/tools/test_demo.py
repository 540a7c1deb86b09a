"""tools/demo.py end to end with the official tiny weights on real COCO images, a folder, a video the test writes,
--boxes, --show without a display, and every bad input ending in one message with exit status 2."""

import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from pycocotools.coco import COCO

from hrnet_pose.apis.demo import run_demo
from hrnet_pose.errors import run_cli

from testpaths import FIXTURES, MINI, MINI_DETS, MINI_VAL_ANN, REPO, TINY_YAML


pytestmark = pytest.mark.usefixtures("one_thread")


def _demo_tool():
    """tools/demo.py as a module: its main() runs the demo and prints the summary."""
    spec = importlib.util.spec_from_file_location("hrnet_pose_tools_demo", os.path.join(REPO, "tools", "demo.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("w") / "tiny.pth")
    torch.save(torch.load(os.path.join(FIXTURES, "official_hrnet_tiny_a.pt"), weights_only=True)["state_dict"], path)
    return path


@pytest.fixture(scope="module")
def val_images(tmp_path_factory):
    """The val2017 images of the mini fixture in a folder of their own."""
    folder = tmp_path_factory.mktemp("val2017")
    with open(MINI_VAL_ANN) as f:
        for image in json.load(f)["images"]:
            shutil.copy(os.path.join(MINI, "images", image["file_name"]), folder)
    return str(folder)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """12 frames of a real COCO image panning sideways, written with cv2.VideoWriter at 12.5 fps, 160x120."""
    path = str(tmp_path_factory.mktemp("vid") / "pan.avi")
    image = cv2.imread(os.path.join(MINI, "images", "000000000785.jpg"))
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 12.5, (160, 120))
    assert writer.isOpened()
    for i in range(12):
        writer.write(cv2.resize(image[:, 4 * i: 4 * i + 400], (160, 120)))
    writer.release()
    return path


def _base(weights, out):
    return ["--config", TINY_YAML, "--weights", weights, "--device", "cpu", "--out-dir", str(out), "--no-progress"]


def test_demo_images_with_boxes_file_give_loadable_predictions(val_images, weights, tmp_path, capsys):
    out = tmp_path / "out"
    summary = _demo_tool().main([val_images] + _base(weights, out) + ["--boxes", MINI_DETS, "--bbox-thr", "0.3",
                                                                      "--draw-bbox"])
    names = sorted(os.listdir(val_images))
    for name in names:  # one annotated image per input, same size, visibly drawn on
        src, drawn = cv2.imread(os.path.join(val_images, name)), cv2.imread(str(out / name))
        assert drawn is not None and drawn.shape == src.shape and np.abs(drawn.astype(int) - src).mean() > 0.05
    with open(out / "predictions.json") as f:
        predictions = json.load(f)
    with open(MINI_DETS) as f:
        expected = sum(1 for d in json.load(f) if d["score"] >= 0.3 and d["category_id"] == 1)
    assert len(predictions) == expected == summary.persons and summary.frames == len(names)
    coco = COCO(MINI_VAL_ANN)
    dt = coco.loadRes(predictions)  # pycocotools accepts them: ids are the COCO image ids
    assert len(dt.getAnnIds()) == expected
    printed = capsys.readouterr().out
    assert f"{len(names)} frames, {expected} persons" in printed and "FPS" in printed
    assert not [p for p in os.listdir(out) if ".partial" in p]


def test_demo_predictions_feed_back_as_boxes(val_images, weights, tmp_path):
    """predictions.json writes COCO's bbox [x, y, w, h], which --boxes reads: a second run on the first run's output
    finds the same persons in the same boxes."""
    first, second = tmp_path / "first", tmp_path / "second"
    run_demo([val_images] + _base(weights, first) + ["--boxes", MINI_DETS, "--bbox-thr", "0.3"])
    with open(first / "predictions.json") as f:
        predictions = json.load(f)
    assert predictions and all(len(p["bbox"]) == 4 and "box" not in p for p in predictions)
    # the file's score is the rescored person score, so keep every entry when reading it back
    run_demo([val_images] + _base(weights, second) + ["--boxes", str(first / "predictions.json"), "--bbox-thr", "0"])
    with open(second / "predictions.json") as f:
        again = json.load(f)
    assert len(again) == len(predictions)
    order = lambda ps: sorted(ps, key=lambda p: (str(p["image_id"]), p["bbox"]))  # noqa: E731
    assert [p["image_id"] for p in order(again)] == [p["image_id"] for p in order(predictions)]
    # float32 corners -> [x, y, w, h] -> corners: rounding of coordinates < 1000 px in float32 (6e-5)
    np.testing.assert_allclose([p["bbox"] for p in order(again)], [p["bbox"] for p in order(predictions)], atol=1e-4)


def test_demo_flags_mean_what_they_mean_in_every_tool(weights, tmp_path):
    """Trailing KEY VALUE overrides (as train/test/export/benchmark take them), --weights none for random weights,
    the person cap of the detectors and the API."""
    from hrnet_pose.apis.demo import parse_args
    from hrnet_pose.apis.detectors import MAX_PERSONS
    from hrnet_pose.config import ConfigError

    image = os.path.join(MINI, "images", "000000000785.jpg")
    args = parse_args([image, "--config", TINY_YAML, "--weights", "none", "TEST.FLIP_TEST", "True"])
    assert args.weights == "" and args.opts == ["TEST.FLIP_TEST", "True"] and args.max_persons == MAX_PERSONS
    with pytest.raises(ConfigError, match="TEST.FLIP_TST"):  # the trailing pair reaches the config
        run_demo([image] + _base(weights, tmp_path / "bad") + ["--det-model", "none", "TEST.FLIP_TST", "True"])
    summary = run_demo([image] + _base("none", tmp_path / "random") + ["--det-model", "none", "TEST.FLIP_TEST",
                                                                       "False"])
    assert summary.frames == 1 and summary.persons == 1


def test_demo_single_image_without_detector(weights, tmp_path):
    image = os.path.join(MINI, "images", "000000000785.jpg")
    out = tmp_path / "single"
    summary = run_demo([image] + _base(weights, out) + ["--det-model", "none", "--draw-heatmap"])
    assert summary.frames == 1 and summary.persons == 1  # the whole image is one person
    assert cv2.imread(str(out / "000000000785.jpg")).shape == cv2.imread(image).shape
    with open(out / "predictions.json") as f:
        (pred,) = json.load(f)
    assert pred["image_id"] == 785 and len(pred["keypoints"]) == 51


def test_demo_video_keeps_frames_size_fps_and_writes_json_lines(video, weights, tmp_path):
    out = tmp_path / "vid_out"
    summary = run_demo([video] + _base(weights, out) + ["--det-model", "none", "--track", "--smooth"])
    assert summary.frames == 12 and not summary.interrupted
    cap = cv2.VideoCapture(str(out / "pan.mp4"))
    assert cap.isOpened()
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (160, 120)
    assert abs(cap.get(cv2.CAP_PROP_FPS) - 12.5) < 0.01
    cap.release()
    lines = (out / "pan.jsonl").read_text().splitlines()
    assert len(lines) == 12
    records = [json.loads(line) for line in lines]
    assert [r["frame"] for r in records] == list(range(12))
    np.testing.assert_allclose([r["timestamp"] for r in records], np.arange(12) / 12.5, atol=1e-3)
    for r in records:
        (person,) = r["persons"]  # the frame's COCO results entries, as predictions.json writes them
        assert person["track_id"] == 0 and len(person["keypoints"]) == 17 * 3 and person["image_id"] == r["frame"]
        assert len(person["bbox"]) == 4 and person["category_id"] == 1


def test_demo_show_without_display_says_why(weights, tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    image = os.path.join(MINI, "images", "000000000785.jpg")
    with caplog.at_level(logging.WARNING):
        summary = run_demo([image] + _base(weights, tmp_path / "o") + ["--det-model", "none", "--show"])
    err = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert summary.frames == 1 and "--show: no display here" in err and len(err.strip().splitlines()) == 1


def test_demo_stream_window_shows_frames_and_q_stops(video, weights, tmp_path, monkeypatch):
    """--show on a stream: every frame goes to the window, q stops the stream after writing that frame's outputs,
    and the outputs are complete files under their final names."""
    import hrnet_pose.apis.demo as demo

    shown = []
    monkeypatch.setattr(demo, "gui_unavailable_reason", lambda: None)
    monkeypatch.setattr(demo.cv2, "imshow", lambda name, image: shown.append(image.shape))
    monkeypatch.setattr(demo.cv2, "waitKey", lambda delay: ord("q") if len(shown) == 3 else -1)
    monkeypatch.setattr(demo.cv2, "destroyAllWindows", lambda: None)
    out = tmp_path / "shown"
    summary = run_demo([video] + _base(weights, out) + ["--det-model", "none", "--show"])
    assert len(shown) == 3 and shown[0] == (120, 160, 3)
    assert summary.frames == 2 and not summary.interrupted  # the frame that stopped it is not counted
    assert len((out / "pan.jsonl").read_text().splitlines()) == 3
    cap = cv2.VideoCapture(str(out / "pan.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    cap.release()
    assert sorted(os.listdir(out)) == ["pan.jsonl", "pan.mp4"]


@pytest.mark.parametrize("case, match", [
    ("missing_image", "missing.jpg"),
    ("corrupt_image", "corrupt.jpg"),
    ("bad_video", "broken.mp4"),
    ("webcam", "webcam"),
    ("mismatched_checkpoint", "does not match the model"),
    ("detector_offline", "--det-model none"),
])
def test_demo_bad_input_is_one_message_exit_2(case, match, weights, tmp_path, capsys):
    image = os.path.join(MINI, "images", "000000000785.jpg")
    args = {"missing_image": [str(tmp_path / "missing.jpg")],
            "corrupt_image": [str(tmp_path / "corrupt.jpg")],
            "bad_video": [str(tmp_path / "broken.mp4")],
            "webcam": ["9"],
            "mismatched_checkpoint": [image, "--opts", "MODEL.EXTRA.STAGE4.NUM_CHANNELS", "[16, 32, 64, 64]"],
            "detector_offline": [image, "--det-model", "fasterrcnn"]}[case]
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 1000)
    if case != "detector_offline":
        args = args + ["--det-model", "none"]
    status = run_cli(run_demo, args + _base(weights, tmp_path / "o"))
    err = capsys.readouterr().err
    assert status == 2, err
    assert match in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2


def test_demo_subprocess_debug_shows_traceback(tmp_path):
    cmd = [sys.executable, os.path.join(REPO, "tools", "demo.py"), str(tmp_path / "nothing.png"),
           "--config", TINY_YAML, "--det-model", "none", "--out-dir", str(tmp_path)]
    plain = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert plain.returncode == 2 and "nothing.png" in plain.stderr and "Traceback" not in plain.stderr
    debug = subprocess.run(cmd + ["--debug"], capture_output=True, text=True, timeout=120)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_demo_runs_an_exported_onnx_file_without_config(weights, tmp_path):
    """tools/export.py stores the config in the .onnx file; the demo then needs no --config, and gives the
    keypoints of the .pth it came from."""
    from hrnet_pose.deploy.export import export_onnx
    from hrnet_pose.deploy.onnx_backend import CONFIG_KEY
    from hrnet_pose.config import load_config
    from hrnet_pose.models import build_model, load_weights

    cfg = load_config(TINY_YAML)
    model = build_model(cfg)
    load_weights(model, weights)
    onnx_path = str(tmp_path / "tiny.onnx")
    export_onnx(model.eval(), onnx_path, (64, 96), metadata={CONFIG_KEY: cfg.dump()})
    image = os.path.join(MINI, "images", "000000000785.jpg")
    common = ["--device", "cpu", "--no-progress", "--boxes", MINI_DETS, "--no-save"]
    run_demo([image, "--weights", onnx_path, "--out-dir", str(tmp_path / "onnx")] + common)
    run_demo([image, "--config", TINY_YAML, "--weights", weights, "--backend", "torch", "--out-dir",
              str(tmp_path / "pth")] + common)
    with open(tmp_path / "onnx" / "predictions.json") as f:
        from_onnx = json.load(f)
    with open(tmp_path / "pth" / "predictions.json") as f:
        from_pth = json.load(f)
    assert len(from_onnx) == len(from_pth) > 0
    for a, b in zip(from_onnx, from_pth):
        np.testing.assert_allclose(np.reshape(a["keypoints"], (-1, 3))[:, :2], np.reshape(b["keypoints"], (-1, 3))[:, :2],
                                   atol=0.01)


def test_demo_stream_summary_states_flip_test_latency_and_single_person_mode(video, weights, tmp_path):
    from hrnet_pose.apis.demo import flip_test_setting

    summary = run_demo([video] + _base(weights, tmp_path / "o") + ["--det-model", "none", "--max-persons", "1"])
    text = summary.format()
    assert summary.frames == 12 and summary.stream.frames == 12 and summary.stream.dropped == 0
    assert "flip test" in text and "the config's TEST.FLIP_TEST" in text
    assert "latency capture to drawn frame" in text and "0 reconnects" in text
    # live sources: flip test off unless asked; an explicit choice wins everywhere
    assert flip_test_setting(None, live=True) == (False, "live source default; --flip-test turns it on")
    assert flip_test_setting(True, live=True)[0] is True and flip_test_setting(None, live=False)[0] is None
