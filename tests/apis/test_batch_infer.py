"""Batch inference (`tools/infer.py`, `hrnet_pose.apis.batch_infer`) on synthetic images with the quickstart model:
the demo's predictions for the same folder, every input kind (folder, glob, list file with paths and URLs, COCO json
with its boxes, one image), every output (results.json, results.jsonl, drawn images, shards + manifest), the errors
file, and resuming (finished shards kept, a changed config refused)."""

import http.server
import importlib.util
import os
import shutil
import threading

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from hrnet_pose.apis.batch_infer import EXIT_SOME_FAILED, run_infer
from hrnet_pose.apis.batch_outputs import ResumeMismatchError
from hrnet_pose.apis.demo import run_demo
from hrnet_pose.errors import UserError

from batch_infer_data import infer_args, load, make_synthetic, model_args
from testpaths import REPO

# infer.py batches the persons of several images into one network call, the demo those of one image: onnxruntime's
# kernels may sum in another order per batch size, ~1e-6 of the heatmaps (measured here: equal). Keypoints are compared
# to 1e-3 px and scores to 1e-5: a decoded joint moves by the heatmap change times the DARK step (< 1 px per unit).
KEYPOINT_ATOL = 1e-3
SCORE_ATOL = 1e-5


def _tool():
    spec = importlib.util.spec_from_file_location("hrnet_pose_tools_infer", os.path.join(REPO, "tools", "infer.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_synthetic(str(tmp_path_factory.mktemp("synthetic")))


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """One uninterrupted run on the folder with every output: its folder and summary."""
    out = tmp_path_factory.mktemp("reference")
    summary = run_infer(infer_args(data, out, "--jsonl", "--draw"))
    return str(out), summary


def _by_image(entries):
    grouped = {}
    for e in entries:
        grouped.setdefault(e["image_id"], []).append(e)
    return grouped


def _assert_same_entries(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g["image_id"] == w["image_id"] and g["category_id"] == w["category_id"] == 1
        np.testing.assert_allclose(g["bbox"], w["bbox"], atol=1e-4)  # float32 boxes, the same in both
        k_got, k_want = np.reshape(g["keypoints"], (-1, 3)), np.reshape(w["keypoints"], (-1, 3))
        np.testing.assert_allclose(k_got[:, :2], k_want[:, :2], atol=KEYPOINT_ATOL, rtol=0)
        np.testing.assert_allclose(k_got[:, 2], k_want[:, 2], atol=SCORE_ATOL, rtol=0)
        np.testing.assert_allclose(g["score"], w["score"], atol=SCORE_ATOL, rtol=0)


def test_results_equal_the_demo_predictions(data, reference, tmp_path):
    out, summary = reference
    run_demo([data["images"], "--boxes", data["dets"], "--out-dir", str(tmp_path), "--no-save"] + model_args())
    demo = load(str(tmp_path / "predictions.json"))
    results = load(os.path.join(out, "results.json"))
    assert len(results) >= 14 and summary.persons == len(results) and summary.failed == 0
    _assert_same_entries(results, demo)  # the same entries in the same order (the folder's natural order)
    assert summary.processed == summary.total == len(os.listdir(data["images"]))
    coco = COCO(data["ann"])  # the ids are the COCO ids of the numeric file names
    assert len(coco.loadRes(results).getAnnIds()) == len(results)


def test_outputs_jsonl_drawn_images_shards_and_manifest(data, reference):
    out, summary = reference
    results = load(os.path.join(out, "results.json"))
    lines = load(os.path.join(out, "results.jsonl"))
    names = sorted(os.listdir(data["images"]))
    assert [os.path.basename(line["file"]) for line in lines] == names
    grouped = _by_image(results)
    for line in lines:
        image = cv2.imread(line["file"])
        assert (line["height"], line["width"]) == image.shape[:2]
        entries = grouped.get(line["image_id"], [])
        assert len(line["persons"]) == len(entries)
        for person, entry in zip(line["persons"], entries):
            assert person["bbox"] == entry["bbox"] and person["score"] == entry["score"]
            assert np.reshape(person["keypoints"], -1).tolist() == entry["keypoints"]
        drawn = cv2.imread(os.path.join(out, "vis", os.path.basename(line["file"])))
        assert drawn is not None and drawn.shape == image.shape
        if entries:  # a drawn skeleton changes the picture
            assert np.abs(drawn.astype(int) - image).mean() > 0.05
    manifest = load(os.path.join(out, "manifest.json"))
    assert manifest["num_inputs"] == len(names) and manifest["num_shards"] == 4  # 14 images, 4 per shard
    assert sorted(os.listdir(os.path.join(out, "shards"))) == [f"{s:06d}.jsonl" for s in range(4)]
    assert os.path.getsize(os.path.join(out, "errors.jsonl")) == 0
    assert not [p for _, _, files in os.walk(out) for p in files if ".partial" in p]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture()
def http_root(data):
    """The synthetic images served on a local port (URL inputs, offline)."""
    handler = lambda *a, **kw: _QuietHandler(*a, directory=data["images"], **kw)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_every_input_kind_gives_the_folder_results(data, reference, tmp_path, http_root):
    want = _by_image(load(os.path.join(reference[0], "results.json")))
    names = sorted(os.listdir(data["images"]))
    # a list file: a relative path, an absolute path, an http URL, a file:// URL, a comment and a blank line
    sub = tmp_path / "lists"
    sub.mkdir()
    shutil.copy(os.path.join(data["images"], names[0]), sub / names[0])
    (sub / "inputs.txt").write_text(f"# images\n{names[0]}\n\n{os.path.join(data['images'], names[1])}\n"
                                    f"{http_root}/{names[2]}\nfile://{os.path.join(data['images'], names[3])}\n")
    kinds = {
        "glob": ([os.path.join(data["images"], "*0[0-4].jpg")], []),
        "list": ([str(sub / "inputs.txt")], []),
        "coco": ([data["ann"]], ["--image-root", data["images"]]),
        "image": ([os.path.join(data["images"], names[5])], []),
    }
    for kind, (inputs, extra) in kinds.items():
        out = tmp_path / kind
        argv = inputs + infer_args(data, out)[1:] + extra
        summary = run_infer(argv)
        got = _by_image(load(str(out / "results.json")))
        assert summary.failed == 0 and summary.processed == summary.total > 0, kind
        assert got and set(got) <= set(want), kind
        for image_id, entries in got.items():
            _assert_same_entries(entries, want[image_id])
    assert len(_by_image(load(str(tmp_path / "list" / "results.json")))) == 4
    # the COCO json gave every image of the annotation file
    assert len(load(str(tmp_path / "coco" / "results.json"))) == len(load(os.path.join(reference[0],
                                                                                        "results.json")))


def test_coco_json_with_its_own_boxes(data, tmp_path):
    """--gt-boxes: the annotations' person boxes replace the detector; every non-crowd person gets a pose."""
    out = tmp_path / "gt"
    run_infer([data["ann"], "--gt-boxes", "--image-root", data["images"], "--out-dir", str(out)] + model_args())
    ann = load(data["ann"])
    persons = [a for a in ann["annotations"] if not a.get("iscrowd") and a["bbox"][2] > 0 and a["bbox"][3] > 0]
    results = load(str(out / "results.json"))
    assert len(results) == len(persons)
    assert sorted(tuple(np.round(r["bbox"], 2)) for r in results) == \
        sorted(tuple(np.round(np.float32(p["bbox"]), 2)) for p in persons)


def test_errors_file_lists_bad_inputs_and_the_run_goes_on(data, tmp_path):
    folder = tmp_path / "mixed"
    shutil.copytree(data["images"], folder)
    names = sorted(os.listdir(folder))
    full = (folder / names[0]).read_bytes()
    (folder / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (folder / "notes.jpg").write_text("not an image")
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join([str(folder / names[1]), str(folder / "missing.jpg")]) + "\n")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as stop:
        _tool().main([str(folder), str(listing)] + infer_args(data, out)[1:])
    assert stop.value.code == EXIT_SOME_FAILED
    errors = {os.path.basename(e["file"]): e["reason"] for e in load(str(out / "errors.jsonl"))}
    assert set(errors) == {"truncated.jpg", "notes.jpg", "missing.jpg"}
    assert "truncated JPEG" in errors["truncated.jpg"]
    assert "cannot be decoded" in errors["notes.jpg"]
    assert "does not exist" in errors["missing.jpg"]
    results = load(str(out / "results.json"))
    assert {r["image_id"] for r in results} >= {int(os.path.splitext(n)[0]) for n in names[2:]}


def test_resume_keeps_finished_shards_and_refuses_another_run(data, reference, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference[0], out)
    os.remove(out / "shards" / "000002.jsonl")  # as if the run had stopped in shard 2
    os.remove(out / "results.json")
    with pytest.raises(UserError, match="--resume"):
        run_infer(infer_args(data, out))
    summary = run_infer(infer_args(data, out, "--resume"))
    assert summary.resumed_shards == 3 and summary.processed == 4  # only shard 2's images again
    assert (out / "results.json").read_bytes() == open(os.path.join(reference[0], "results.json"), "rb").read()
    with pytest.raises(ResumeMismatchError, match="config"):
        run_infer(infer_args(data, out, "--resume", "TEST.SHIFT_HEATMAP", "False"))
    with pytest.raises(ResumeMismatchError, match="flip_test"):
        run_infer(infer_args(data, out, "--resume", "--flip-test"))
    with pytest.raises(ResumeMismatchError, match="weights"):
        run_infer(infer_args(data, out, "--resume", "--weights", "none"))


def test_bad_arguments_are_one_clear_error(data, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        run_infer([str(tmp_path / "nowhere")] + model_args())
    with pytest.raises(UserError, match="--gt-boxes"):
        run_infer([data["images"], "--gt-boxes", "--out-dir", str(tmp_path / "o")] + model_args())
    with pytest.raises(UserError, match="--shard-size"):
        run_infer([data["images"], "--shard-size", "0", "--out-dir", str(tmp_path / "o")] + model_args())


def test_detector_path_gives_the_boxes_path_results(data):
    """Without boxes the chunk waits for the detector in the pose process (here a callable that returns the
    detections file's boxes): the same entries as when the boxes come from the file."""
    from hrnet_pose.apis.batch_data import Chunk, pose_chunk, prepare_chunk, preprocessor
    from hrnet_pose.apis.batch_inputs import collect_inputs
    from hrnet_pose.apis.demo import load_boxes_file
    from hrnet_pose.apis.estimator import PoseEstimator
    from hrnet_pose.config import load_config

    from testpaths import QUICKSTART_WEIGHTS, QUICKSTART_YAML

    cfg = load_config(QUICKSTART_YAML)
    items = collect_inputs([data["images"]])[:5]
    table = load_boxes_file(data["dets"], 0.5)
    estimator = PoseEstimator.from_config(cfg, QUICKSTART_WEIGHTS, device="cpu", backend="torch")
    pre, chunk = preprocessor(cfg), Chunk(0, 0, len(items))
    with_boxes, _ = pose_chunk(estimator, items, prepare_chunk(pre, items, chunk, table, False, False))
    order = iter(items)
    estimator.detector = lambda image: table.get(next(order).image_id, (np.zeros((0, 4)), np.zeros(0)))
    waiting = prepare_chunk(pre, items, chunk, None, True, False)
    assert all(r["inputs"] is None and r["image"] is not None for r in waiting)
    detected, _ = pose_chunk(estimator, items, waiting)
    assert detected == with_boxes and sum(len(line["persons"]) for line in detected) > 5
