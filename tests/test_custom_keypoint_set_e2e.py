"""Custom keypoint sets end to end. A 5-keypoint set defined in yaml: COCO-format json -> dataset -> codec targets ->
flip back -> decode to image coordinates -> evaluation with that set's OKS sigmas. The synthetic kites (6 keypoints,
their own file names, layout and category id), as a user runs the tools: train fine-tuned from the 17-joint quickstart
checkpoint with the log in a file, evaluate with the flip test (the set's pairs), draw the data and the predictions,
export to ONNX and run the export."""

import json
import os
import shutil

import numpy as np
import torch

from hrnet_pose.codecs.heatmap import HeatmapCodec
from hrnet_pose.datasets import CocoKeypoints
from hrnet_pose.codecs.flip import flip_back
from hrnet_pose.evaluation.coco_keypoints import CocoKeypointEvaluator
from hrnet_pose.keypoints import load_keypoint_set

from clitest import CPU_QUIET, load_tool
from testpaths import EXPERIMENTS, FIXTURES, MINI, QUICKSTART_WEIGHTS, REPO

KITES_YAML = os.path.join(EXPERIMENTS, "synthetic", "kites.yaml")

COCO_IDS = [0, 1, 2, 5, 6]  # nose, eyes, shoulders: the yaml's keypoints


def _five_keypoint_coco(tmp_path, kset):
    """Every keypoint-annotated person of the real val images, cut down to the 5 keypoints of the set."""
    src = json.load(open(os.path.join(MINI, "annotations", "person_keypoints_mini_val2017.json")))
    anns = []
    for a in src["annotations"]:
        kp = np.array(a["keypoints"], dtype=float).reshape(17, 3)[COCO_IDS]
        n = int((kp[:, 2] > 0).sum())
        if n == 0 or a["iscrowd"]:
            continue
        anns.append(dict(a, keypoints=kp.reshape(-1).tolist(), num_keypoints=n))
    cats = [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(kset.names),
             "skeleton": [[i + 1, j + 1] for i, j in kset.skeleton]}]
    used = {a["image_id"] for a in anns}
    images = [im for im in src["images"] if im["id"] in used]
    (tmp_path / "annotations").mkdir()
    ann_file = tmp_path / "annotations" / "person_keypoints_five.json"
    ann_file.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    (tmp_path / "images" / "five").mkdir(parents=True)
    for im in images:
        shutil.copy(os.path.join(MINI, "images", im["file_name"]), tmp_path / "images" / "five")
    return str(ann_file), len(anns)


def test_five_keypoint_set_end_to_end(tmp_path):
    kset = load_keypoint_set(os.path.join(FIXTURES, "keypoints_5_ds.yaml"))
    ann_file, num_persons = _five_keypoint_coco(tmp_path, kset)
    codec = HeatmapCodec(image_size=(192, 256), heatmap_size=(48, 64), sigma=2)
    ds = CocoKeypoints(root=str(tmp_path), image_set="five", is_train=False, image_size=(192, 256), codec=codec,
                       keypoint_set=kset)
    assert len(ds) == num_persons > 3

    items = [ds[i] for i in range(len(ds))]
    targets = torch.stack([it[1] for it in items])  # [N, 5, 64, 48]: the ideal network output
    assert targets.shape == (len(ds), 5, 64, 48)
    # a horizontally mirrored prediction of the mirrored crop comes back to the same heatmaps
    mirrored = flip_back(targets, kset.flip_index)
    assert not torch.equal(mirrored, targets)
    torch.testing.assert_close(flip_back(mirrored, kset.flip_index), targets)

    centers = np.stack([it[3]["center"] for it in items]).astype(np.float32)
    scales = np.stack([it[3]["scale"] for it in items]).astype(np.float32)
    preds, maxvals = codec.decode(targets.numpy(), centers, scales)
    assert preds.shape == (len(ds), 5, 2)

    ev = CocoKeypointEvaluator(ann_file, keypoint_set=kset, use_gt_bbox=True)
    ev.process(preds, maxvals, centers, scales, np.ones(len(ds)), [it[3]["image_id"] for it in items])
    stats = ev.evaluate(output_dir=str(tmp_path / "out"), name="five")
    # decoding the targets is exact up to the heatmap quantisation: near-perfect OKS with the set's sigmas
    assert stats["AP"] > 0.9
    results = json.load(open(tmp_path / "out" / "results" / "keypoints_five_results_0.json"))
    assert len(results[0]["keypoints"]) == 15


def _train_in_a_subprocess(tmp_path, root):
    """tools/train.py as a user runs it with its output going to a file: (exit status, the file's text, run folder)."""
    import subprocess
    import sys

    log = tmp_path / "train_console.log"
    args = ["--cfg", KITES_YAML, "--modelDir", str(tmp_path / "out"), "--logDir", str(tmp_path / "log"),
            "DATASET.ROOT", root, "MODEL.PRETRAINED", QUICKSTART_WEIGHTS, "TRAIN.END_EPOCH", "1",
            "TRAIN.BATCH_SIZE_PER_GPU", "8", "TEST.BATCH_SIZE_PER_GPU", "8", "PRINT_FREQ", "1", "WORKERS", "0",
            "ENGINE.DEVICE", "cpu", "ENGINE.TENSORBOARD", "False", "ENGINE.WARMUP_ITERS", "0"]
    env = {k: v for k, v in os.environ.items() if k != "HRNET_POSE_DEBUG"}
    env.update(OMP_NUM_THREADS="1")
    with open(log, "w") as f:  # ENGINE.PROGRESS_BAR stays on: a file is not a terminal, so no bar frames
        code = subprocess.run([sys.executable, os.path.join(REPO, "tools", "train.py")] + args, stdout=f,
                              stderr=subprocess.STDOUT, env=env, timeout=600).returncode
    return code, log.read_text(), str(tmp_path / "out" / "coco" / "pose_hrnet" / "kites")


def test_kites_train_finetune_evaluate_draw_and_export(tmp_path, one_thread, monkeypatch):
    from hrnet_pose.datasets.synthetic_kites import generate_synthetic_kites

    root = str(tmp_path / "kites")
    generate_synthetic_kites(root, num_train=8, num_val=4, seed=0, image_size=(128, 128))
    code, console, out_dir = _train_in_a_subprocess(tmp_path, root)
    assert code == 0, console[-3000:]
    assert "\r" not in console and "Epoch: [0][0/" in console
    assert ("re-initialised 2 (final_layer.weight, final_layer.bias: the checkpoint's head has 17 keypoints, the "
            "model's 6)") in console
    assert "PCK@0.2 " in console and " px; " in console

    # evaluate with the flip test: the set's pairs (left_wing <-> right_wing) swap the mirrored heatmaps
    tested = load_tool("test").main(["--cfg", KITES_YAML, "--modelDir", str(tmp_path / "out"), "--logDir",
                                          str(tmp_path / "log"), "DATASET.ROOT", root, "TEST.FLIP_TEST", "True"]
                                         + CPU_QUIET)
    assert tested["flip_test"] and tested["model_file"] == os.path.join(out_dir, "final_state.pth")
    with open(os.path.join(out_dir, "metrics.json")) as f:
        metrics = json.load(f)
    assert {"AP", "PCK", "EPE"} <= set(metrics) and metrics["pck_threshold"] == 0.2
    assert metrics["keypoint_set"] == "kite" and metrics["flip_pairs"] == [[1, 2]]
    with open(os.path.join(out_dir, "results", "keypoints_val_results_0.json")) as f:
        results = json.load(f)
    assert {r["category_id"] for r in results} == {3} and {len(r["keypoints"]) for r in results} == {18}

    # draw the data with its set, and the model's predictions with the demo
    load_tool("vis_dataset").main(["--ann", os.path.join(root, "kites_val.json"), "--images",
                                   os.path.join(root, "images", "val"), "--out-dir", str(tmp_path / "vis"),
                                   "--keypoint-set", os.path.join(EXPERIMENTS, "synthetic", "kites_keypoints.yaml")])
    assert len(os.listdir(tmp_path / "vis")) == 4
    image = os.path.join(root, "images", "val", "sky_val_0000.jpg")
    demo_args = [image, "--config", KITES_YAML, "--weights", os.path.join(out_dir, "final_state.pth"), "--device",
                 "cpu", "--det-model", "none", "--out-dir", str(tmp_path / "demo"), "--no-progress"]
    load_tool("demo").main(demo_args)
    with open(tmp_path / "demo" / "predictions.json") as f:
        (pred,) = json.load(f)
    assert len(pred["keypoints"]) == 6 * 3 and os.path.isfile(tmp_path / "demo" / "sky_val_0000.jpg")

    # export, then run the .onnx alone (its config and keypoint set travel inside it)
    onnx_path = str(tmp_path / "kites.onnx")
    diff = load_tool("export").main(["--cfg", KITES_YAML, "--weights", os.path.join(out_dir, "final_state.pth"),
                                     "--out", onnx_path, "--batch", "1", "DATASET.ROOT", root])
    assert diff < 1e-3
    monkeypatch.chdir(tmp_path)  # the config's relative KEYPOINT_SET path is not here: the file's own copy is used
    load_tool("demo").main([image, "--weights", onnx_path, "--device", "cpu", "--det-model", "none", "--out-dir",
                            str(tmp_path / "demo_onnx"), "--no-progress"])
    with open(tmp_path / "demo_onnx" / "predictions.json") as f:
        (pred_onnx,) = json.load(f)
    np.testing.assert_allclose(pred_onnx["keypoints"], pred["keypoints"], atol=0.05)  # onnxruntime vs torch kernels


def test_flip_test_uses_the_sets_pairs():
    from hrnet_pose.keypoints import load_keypoint_set
    from hrnet_pose.models.inference import heatmaps_with_flip

    kset = load_keypoint_set(os.path.join(EXPERIMENTS, "synthetic", "kites_keypoints.yaml"))
    assert list(kset.flip_index) == [0, 2, 1, 3, 4, 5]
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.AvgPool2d(4)).eval()
    images = torch.randn(2, 3, 32, 24)
    with torch.no_grad():
        merged = heatmaps_with_flip(net, images, kset.flip_index, True, False)
        plain, mirrored = net(images), net(images.flip(3)).flip(3)
    swapped = mirrored[:, [0, 2, 1, 3, 4, 5]]  # by hand: the mirror's left wing is the right wing
    torch.testing.assert_close(merged, (plain + swapped) / 2)
    assert not torch.allclose(merged, (plain + mirrored) / 2)
