"""COCO-WholeBody zoo entries: MMPose's HRNet W32/W48 whole-body files (plain and DARK) with their published numbers;
every architecture has MMPose's keys and shapes, files in the MMPose 0.x and 1.x layouts load strictly, the outputs
equal MMPose 1.3.2's own `inference_topdown` on real COCO images (tests/fixtures/mmpose_wholebody, SOURCES.md), and
the demo draws all 133 keypoints, face and hands small."""

import hashlib
import json
import os
import re

import numpy as np
import pytest
import torch

from hrnet_pose.apis import zoo
from hrnet_pose.apis.demo import run_demo
from hrnet_pose.apis.estimator import PoseEstimator
from hrnet_pose.codecs.heatmap import build_codec
from hrnet_pose.keypoints import get_keypoint_set
from hrnet_pose.models import build_model
from hrnet_pose.visualization import draw_poses

from testpaths import FIXTURES, MINI, REPO
from zoo_testlib import seeded_mmpose_state

REF = dict(np.load(os.path.join(FIXTURES, "mmpose_wholebody", "mmpose_wholebody_reference.npz")))
NAMES = sorted(n for n, e in zoo.ZOO.items() if e.dataset == "coco_wholebody")
# (whole-body, body, foot, face, hand) AP x100 of MMPose 1.x's model zoo pages (hrnet{,_dark}_coco-wholebody.md)
REPORTED = {"hrnet_w32_wholebody_256x192": (53.6, 67.8, 54.3, 63.0, 46.7),
            "hrnet_w32_wholebody_384x288": (58.6, 70.0, 58.5, 72.6, 51.5),
            "hrnet_w48_wholebody_256x192": (57.9, 70.1, 67.5, 65.6, 53.5),
            "hrnet_w48_wholebody_384x288": (63.2, 72.2, 69.6, 77.6, 58.7),
            "hrnet_w32_wholebody_256x192_dark": (58.2, 69.3, 56.4, 73.7, 50.3),
            "hrnet_w48_wholebody_384x288_dark": (66.1, 74.2, 70.7, 84.1, 60.2)}


def test_entries_and_reported_numbers():
    assert {n: (zoo.ZOO[n].reported_ap,) + tuple(v for _, v in zoo.ZOO[n].reported_parts) for n in NAMES} == REPORTED
    for name in NAMES:
        entry, cfg = zoo.ZOO[name], zoo.entry_config(name)
        assert entry.url == "https://download.openmmlab.com/mmpose/top_down/hrnet/" + entry.filename
        assert re.fullmatch(r"[0-9a-f]{8}", entry.hash_prefix) and f"-{entry.hash_prefix}_" in entry.filename
        assert "coco_wholebody" in entry.filename and "coco-wholebody" in entry.ap_source
        assert cfg.MODEL.NUM_JOINTS == 133 and cfg.DATASET.KEYPOINT_SET == "coco_wholebody"
        assert cfg.TEST.FLIP_TEST and cfg.TEST.SHIFT_HEATMAP and cfg.TEST.OKS_THRE == 0.9 and cfg.DATASET.COLOR_RGB
        codec = build_codec(cfg)
        assert codec.refinement == ("dark" if name.endswith("_dark") else "quarter_offset_mmpose") and not codec.use_udp
        width, size = re.match(r"hrnet_w(\d+)_wholebody_(\d+x\d+)", name).groups()
        assert f"{entry.input_size[1]}x{entry.input_size[0]}" == size and cfg.MODEL.SIGMA == (2 if size == "256x192"
                                                                                                   else 3)
        assert cfg.MODEL.EXTRA.STAGE4.NUM_CHANNELS[0] == int(width)
    assert zoo.markdown_table_wholebody().count("| `hrnet_w") == len(REPORTED)
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        assert zoo.markdown_table_wholebody() in f.read()


@pytest.mark.parametrize("arch", ["w32_256x192", "w32_384x288", "w48_256x192", "w48_384x288"])
def test_network_has_mmpose_keys_and_shapes(arch):
    """Our network's state dict, renamed to MMPose 1.x's layout, has exactly MMPose's keys, order and shapes."""
    width, size = arch.split("_")
    model = build_model(zoo.entry_config(f"hrnet_{width}_wholebody_{size}"))
    lines = "".join(f"{('head.' if k.startswith('final_layer.') else 'backbone.') + k} {tuple(v.shape)}\n"
                    for k, v in model.state_dict().items())
    assert lines.count("\n") == int(REF[f"keys/{arch}/count"])
    assert hashlib.sha256(lines.encode()).hexdigest() == str(REF[f"keys/{arch}/sha256"])
    assert sum(p.numel() for p in model.parameters()) == int(REF[f"keys/{arch}/params"])


def _cache(hub, name, head_prefix):
    os.makedirs(hub, exist_ok=True)
    state = seeded_mmpose_state(name, head_prefix)
    torch.save({"meta": {"dataset_meta": {"dataset_name": "coco_wholebody"}}, "state_dict": state},
               os.path.join(hub, zoo.get_entry(name).filename))
    return state


@pytest.mark.parametrize("name,head_prefix", [("hrnet_w32_wholebody_256x192", "keypoint_head."),
                                              ("hrnet_w32_wholebody_256x192_dark", "head.")])
def test_outputs_equal_mmpose_inference_topdown(hub, name, head_prefix):
    """The released files are MMPose 0.x ones (keypoint_head.*), MMPose 1.x saves head.*: both load strictly, and on
    real images and boxes the keypoints and scores are MMPose's own `inference_topdown`'s."""
    state = _cache(hub, name, head_prefix)
    est = PoseEstimator.from_pretrained(name, device="cpu", backend="torch")
    loaded = est.backend.model.state_dict()
    assert len(loaded) == len(state) and all(torch.equal(loaded[k.split(".", 1)[1] if not k.startswith(
        head_prefix) else k[len(head_prefix):]], v) for k, v in state.items())
    assert est.keypoint_set.num_keypoints == 133
    kpts, scores = [], []
    for image in dict.fromkeys(REF["image_names"].tolist()):
        boxes = REF["boxes"][REF["image_names"] == image]
        result = est(os.path.join(MINI, "images", image), boxes=boxes)
        kpts.append(result.keypoints)
        scores.append(result.scores)
    kpts, scores = np.concatenate(kpts), np.concatenate(scores)
    ref_k, ref_s = REF[f"{name}/keypoints"], REF[f"{name}/scores"]
    # the same float32 network and decoding on both sides: what may differ is summation order (MMPose's fusion and
    # flip-averaging order, another CPU's kernels), ~1e-6 of the heatmap values (scores ~4: 1e-4 is ample)
    assert np.abs(scores - ref_s).max() < 1e-4
    err = np.abs(kpts - ref_k).max(axis=-1)
    if not name.endswith("_dark"):
        assert err.max() < 1e-2, err.max()  # argmax + quarter offset: equal up to float rounding of the affine
    else:
        # DARK's Newton step on these random-weight heatmaps (smooth, not peaked) is ill-conditioned at a few
        # keypoints, where a 1e-6 change of the heatmap moves the step by a large amount (measured: 18 of 665
        # keypoints move > 1e-3 heatmap px under a 1e-6 relative perturbation); everywhere else it agrees
        assert np.median(err) < 1e-3 and np.mean(err < 0.05) > 0.95, (np.median(err), np.mean(err < 0.05))


def test_demo_draws_all_133_keypoints_with_face_and_hands_small(hub, tmp_path):
    name = "hrnet_w32_wholebody_256x192"
    _cache(hub, name, "keypoint_head.")
    image = os.path.join(MINI, "images", "000000000785.jpg")
    summary = run_demo([image, "--weights", name, "--device", "cpu", "--backend", "torch", "--det-model", "none",
                        "--out-dir", str(tmp_path), "--no-progress", "--kpt-thr", "0"])
    assert summary.frames == 1 and summary.persons == 1
    with open(tmp_path / "predictions.json") as f:
        (pred,) = json.load(f)
    assert len(pred["keypoints"]) == 133 * 3
    # drawing: each keypoint alone on a blank canvas; face and hand dots cover about a quarter of a body dot
    kset = get_keypoint_set("coco_wholebody")
    canvas = np.zeros((200, 200, 3), np.uint8)
    painted = []
    for j in range(133):
        scores = np.zeros((1, 133))
        scores[0, j] = 1.0
        drawn = draw_poses(canvas, np.full((1, 133, 2), 100.0), scores, kset, radius=8, thickness=4)
        painted.append(np.count_nonzero(drawn.any(axis=2)))
    painted = np.array(painted)
    assert (painted > 0).all()  # every one of the 133 keypoints is drawn
    assert painted[:23].min() > 3 * painted[23:].max()  # body and feet full size, face and hands small
