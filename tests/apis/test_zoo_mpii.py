"""MPII zoo entries: each builds offline as the official MPII yaml's 16-joint network with its decoder; the reported
numbers and sources are the published ones; the official file is looked for in the official pose_mpii folder; a
cached MMPose 0.x MPII file runs through PoseEstimator.from_pretrained with the MPII keypoint set."""

import os
import re

import numpy as np
import pytest
import torch

from hrnet_pose.apis import zoo
from hrnet_pose.codecs.heatmap import build_codec
from hrnet_pose.config import load_config
from hrnet_pose.keypoints import MPII16
from hrnet_pose.models import build_model

from testpaths import REPO
from zoo_testlib import cache_mmpose_checkpoint

MPII_NAMES = sorted(n for n, e in zoo.ZOO.items() if e.dataset == "mpii")
# (Mean, Mean@0.1) as published: MMPose 0.x hrnet_mpii.md / hrnet_dark_mpii.md (fractions there), official README
REPORTED = {"hrnet_w32_mpii_256x256": (90.0, 33.4), "hrnet_w48_mpii_256x256": (90.1, 33.7),
            "hrnet_w32_mpii_256x256_dark": (90.4, 35.4), "hrnet_w48_mpii_256x256_dark": (90.5, 36.0),
            "hrnet_w32_mpii_256x256_official": (90.3, 37.7)}
PARAMS = {32: 28_536_113 - 33, 48: 63_595_745 - 49}  # official 17-joint counts less one output channel (C + bias)


def test_entries_and_reported_numbers():
    assert {n: (zoo.ZOO[n].reported_ap, zoo.ZOO[n].reported_mean_at_01) for n in MPII_NAMES} == REPORTED
    for name in MPII_NAMES:
        entry = zoo.ZOO[name]
        if name.endswith("_official"):
            assert entry.url == "" and entry.filename == "pose_hrnet_w32_256x256.pth"
            assert "pose_mpii" in entry.source and "MPII" in entry.ap_source.upper()
        else:
            assert entry.url.startswith("https://download.openmmlab.com/mmpose/top_down/hrnet/")
            assert re.fullmatch(r"[0-9a-f]{8}", entry.hash_prefix) and f"-{entry.hash_prefix}" in entry.filename
            assert "_mpii_256x256" in entry.filename and "/mpii/hrnet_" in entry.ap_source
    assert "mpii" not in zoo.markdown_table() and zoo.markdown_table_mpii().count("| `hrnet_w") == len(REPORTED)


@pytest.mark.parametrize("name", MPII_NAMES)
def test_entry_builds_offline_as_the_official_mpii_yaml(name):
    entry = zoo.get_entry(name)
    cfg = zoo.entry_config(name)
    width = name.split("_")[1]  # hrnet_w32_mpii_... -> w32
    ref = load_config(os.path.join(REPO, "experiments", "mpii", "hrnet", f"{width}_256x256_adam_lr1e-3.yaml"))
    for key in ("STAGE2", "STAGE3", "STAGE4", "FINAL_CONV_KERNEL"):
        assert cfg.MODEL.EXTRA[key] == ref.MODEL.EXTRA[key], key
    for key in ("NUM_JOINTS", "IMAGE_SIZE", "HEATMAP_SIZE", "SIGMA"):
        assert cfg.MODEL[key] == ref.MODEL[key], key
    assert cfg.DATASET.KEYPOINT_SET == ref.DATASET.KEYPOINT_SET == "mpii"
    assert cfg.DATASET.COLOR_RGB and cfg.TEST.FLIP_TEST and cfg.TEST.SHIFT_HEATMAP
    codec = build_codec(cfg)
    assert codec.refinement == ("dark" if name.endswith("_dark") else "quarter_offset")
    width = int(re.search(r"_w(\d+)_", name).group(1))
    assert sum(p.numel() for p in build_model(cfg).parameters()) == PARAMS[width]


def test_official_mpii_file_is_looked_for_in_pose_mpii(hub, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(zoo.ZooDownloadError, match="pose_hrnet_w32_256x256.pth") as err:
        zoo.resolve_weights("hrnet_w32_mpii_256x256_official")
    assert os.path.join("models", "pytorch", "pose_mpii") in err.value.hint
    official = tmp_path / "models" / "pytorch" / "pose_mpii" / "pose_hrnet_w32_256x256.pth"
    official.parent.mkdir(parents=True)
    official.write_bytes(b"x")
    assert os.path.samefile(zoo.resolve_weights("hrnet_w32_mpii_256x256_official"), official)


def test_from_pretrained_runs_a_cached_mmpose_0x_mpii_checkpoint(hub):
    name = "hrnet_w32_mpii_256x256"
    # the MMPose 0.x TopDown layout: backbone.* and keypoint_head.final_layer.*
    model = cache_mmpose_checkpoint(hub, name, "keypoint_head.", {})
    from hrnet_pose.apis.estimator import PoseEstimator

    est = PoseEstimator.from_pretrained(name, device="cpu", backend="torch")  # its state dict is compared below
    assert est.keypoint_set is MPII16
    loaded = est.backend.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())
    image = np.full((240, 320, 3), 100, np.uint8)
    result = est(image, boxes=[[10, 20, 110, 220]])
    assert result.keypoints.shape == (1, 16, 2) and np.isfinite(result.keypoints).all()
