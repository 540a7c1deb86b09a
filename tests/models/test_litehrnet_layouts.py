"""Lite-HRNet checkpoints in MMPose 0.x (`backbone.*` + `keypoint_head.*`) and 1.x (`backbone.*` + `head.*`,
`data_preprocessor.*`) layout load strictly through the zoo entry's config and give the network's heatmaps; a
checkpoint of the wrong depth is one message naming the first key that does not fit."""

import os
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from hrnet_pose.apis import zoo
from hrnet_pose.apis.estimator import PoseEstimator, as_bgr_image
from hrnet_pose.errors import format_user_error
from hrnet_pose.models import CheckpointMismatchError, build_model, load_weights
from hrnet_pose.models.foreign_layouts import detect_layout

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGES = os.path.join(REPO, "tests", "fixtures", "coco_real_mini", "images")

pytestmark = pytest.mark.usefixtures("one_thread")


def _random_model(name: str, seed: int) -> nn.Module:
    """The entry's network with random weights and BN statistics, so every tensor affects the heatmaps."""
    torch.manual_seed(seed)
    model = build_model(zoo.entry_config(name)).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model


def _as_mmpose(sd, layout: str) -> "OrderedDict[str, torch.Tensor]":
    head = {"mmpose0": "keypoint_head.", "mmpose1": "head."}[layout]
    out = OrderedDict(((head if k.startswith("final_layer.") else "backbone.") + k, v) for k, v in sd.items())
    if layout == "mmpose1":
        out["data_preprocessor.mean"] = torch.tensor([123.675, 116.28, 103.53]).view(-1, 1, 1)
        out["data_preprocessor.std"] = torch.tensor([58.395, 57.12, 57.375]).view(-1, 1, 1)
    return out


def _save(tmp_path, sd, layout: str) -> str:
    path = str(tmp_path / f"litehrnet_{layout}.pth")
    meta = {"mmpose_version": "0.28.0" if layout == "mmpose0" else "1.3.2",
            "dataset_meta": {"sigmas": np.full(17, 0.05, np.float32)}}
    torch.save({"meta": meta, "state_dict": _as_mmpose(sd, layout)}, path)
    return path


@pytest.fixture(scope="module")
def lh18():
    return _random_model("litehrnet_18_256x192", seed=0)


@pytest.mark.parametrize("layout", ["mmpose0", "mmpose1"])
def test_mmpose_file_loads_strictly_and_gives_the_network_heatmaps(layout, lh18, tmp_path):
    path = _save(tmp_path, lh18.state_dict(), layout)
    assert detect_layout(torch.load(path, weights_only=False)["state_dict"]) == layout
    est = PoseEstimator.from_config(zoo.entry_config("litehrnet_18_256x192"), path, device="cpu", backend="torch")
    loaded = est.backend.model.state_dict()
    assert list(loaded) == list(lh18.state_dict())
    assert all(torch.equal(loaded[k], v) for k, v in lh18.state_dict().items())

    image = os.path.join(IMAGES, sorted(os.listdir(IMAGES))[0])
    centers, scales = est.center_scale(np.array([[10.0, 20.0, 110.0, 220.0], [50.0, 40.0, 150.0, 200.0]]))
    crops = est.crops(as_bgr_image(image), centers, scales)
    assert crops.shape == (2, 3, 256, 192)
    heatmaps = est.heatmaps(crops, flip_test=False)
    with torch.no_grad():
        expected = lh18(torch.from_numpy(crops)).numpy()
    # the same network, weights and input through the same CPU kernels: identical floats
    np.testing.assert_array_equal(heatmaps, expected)
    assert heatmaps.shape == (2, 17, 64, 48) and heatmaps.std() > 0


def test_own_checkpoint_is_the_official_layout_and_loads(lh18, tmp_path):
    path = str(tmp_path / "final_state.pth")
    torch.save(lh18.state_dict(), path)
    assert detect_layout(lh18.state_dict()) == "official"
    model = build_model(zoo.entry_config("litehrnet_18_256x192"))
    assert load_weights(model, path).loaded == len(lh18.state_dict())


@pytest.mark.parametrize("source,target", [("litehrnet_30_256x192", "litehrnet_18_256x192"),
                                           ("litehrnet_18_256x192", "litehrnet_30_256x192")])
def test_wrong_depth_is_one_message_naming_the_first_mismatched_key(source, target, tmp_path):
    """LH-30 has 3/8/3 modules per stage, LH-18 2/4/2: stage0.2 is the first module only LH-30 has."""
    sd = build_model(zoo.entry_config(source)).state_dict()
    theirs, ours = list(sd), list(build_model(zoo.entry_config(target)).state_dict())
    first = next(k for k in theirs if k not in ours) if len(theirs) > len(ours) else \
        next(k for k in ours if k not in theirs)
    assert first.startswith("stage0.2.")
    path = _save(tmp_path, sd, "mmpose1")
    with pytest.raises(CheckpointMismatchError) as err:
        PoseEstimator.from_config(zoo.entry_config(target), path, device="cpu")
    headline = format_user_error(err.value)[0]
    kind = "unexpected key" if len(theirs) > len(ours) else "missing key"
    assert kind in headline and first in headline and path in headline
    assert "MODEL.EXTRA.LITE_HRNET" in str(err.value)
