"""MMPose 0.x / 1.x checkpoint layouts convert to the official key names, load strictly and give identical outputs."""

import datetime
from collections import OrderedDict

import numpy as np
import pytest
import torch

from hrnet_pose.config import load_config
from hrnet_pose.models import CheckpointMismatchError, build_model, load_weights, read_state_dict
from hrnet_pose.models.foreign_layouts import UnknownLayoutError, detect_layout, to_official


def _mmpose_meta():
    # what an MMPose checkpoint's `meta` holds: strings, numbers and dataset info with numpy arrays and scalars
    return {"mmpose_version": "1.0.0", "cfg": "model = dict(type='TopdownPoseEstimator')", "epoch": 210,
            "dataset_meta": {"dataset_name": "coco", "flip_indices": [0, 2, 1],
                             "sigmas": np.array([0.026, 0.025, 0.025], dtype=np.float32),
                             "joint_weights": np.ones(3, dtype=np.float32), "best_ap": np.float64(0.749)}}


def _as_mmpose0(sd):
    return OrderedDict((("keypoint_head." if k.startswith("final_layer.") else "backbone.") + k, v)
                       for k, v in sd.items())


def _as_mmpose1(sd):
    out = OrderedDict((("head." if k.startswith("final_layer.") else "backbone.") + k, v) for k, v in sd.items())
    out["data_preprocessor.mean"] = torch.tensor([123.675, 116.28, 103.53]).view(-1, 1, 1)
    out["data_preprocessor.std"] = torch.tensor([58.395, 57.12, 57.375]).view(-1, 1, 1)
    return out


@pytest.mark.parametrize("layout,convert", [("mmpose0", _as_mmpose0), ("mmpose1", _as_mmpose1)])
def test_mmpose_checkpoint_loads_strictly_with_identical_outputs(layout, convert, tiny_cfg_path, tiny_official,
                                                                 tmp_path):
    official = tiny_official["state_dict"]
    foreign = convert(official)
    assert detect_layout(foreign) == layout
    path = tmp_path / f"{layout}.pth"
    torch.save({"meta": _mmpose_meta(), "state_dict": foreign}, path)

    converted = read_state_dict(str(path))
    assert list(converted) == list(official)  # official names, official order
    assert all(torch.equal(converted[k], official[k]) for k in official)

    model = build_model(load_config(tiny_cfg_path)).eval()
    report = load_weights(model, str(path))
    assert report.loaded == len(official) and not report.missing_attention
    with torch.no_grad():
        out = model(tiny_official["input"])
    # reference made on another CPU: float32 summation order of ~40 convolutions (up to 576 terms) differs with the
    # kernels, about sqrt(40 * 576) * 2^-24 = 9e-6 of the output's scale; 2e-5 of the scale (measured: 7e-7)
    torch.testing.assert_close(out, tiny_official["output"], atol=2e-5 * float(tiny_official["output"].abs().max()),
                               rtol=0)
    reference = build_model(load_config(tiny_cfg_path)).eval()
    load_weights(reference, official)
    with torch.no_grad():
        assert torch.equal(out, reference(tiny_official["input"]))


def test_official_and_module_prefixed_state_dicts_are_official(tiny_official):
    sd = tiny_official["state_dict"]
    assert detect_layout(sd) == "official"
    assert list(to_official(sd)) == list(sd)
    prefixed = OrderedDict(("module." + k, v) for k, v in _as_mmpose1(sd).items())
    assert list(read_state_dict(prefixed)) == list(sd)


def test_unknown_layout_names_the_recognised_ones(tiny_official, tiny_cfg_path):
    odd = OrderedDict(("encoder." + k, v) for k, v in tiny_official["state_dict"].items())
    assert detect_layout(odd) == "unknown"
    model = build_model(load_config(tiny_cfg_path))
    with pytest.raises(UnknownLayoutError) as err:
        load_weights(model, odd)
    msg = str(err.value)
    assert isinstance(err.value, CheckpointMismatchError)
    assert "encoder.conv1.weight" in msg
    for name, sample in (("official", "final_layer.weight"), ("mmpose0", "keypoint_head.final_layer.weight"),
                         ("mmpose1", "head.final_layer.weight")):
        assert name in msg and sample in msg
    # a backbone without any head is not guessed at either
    backbone_only = OrderedDict(("backbone." + k, v) for k, v in tiny_official["state_dict"].items()
                                if not k.startswith("final_layer."))
    assert detect_layout(backbone_only) == "unknown"


def test_mmpose_head_with_deconv_layers_is_rejected_by_name(tiny_official):
    sd = _as_mmpose0(tiny_official["state_dict"])
    sd["keypoint_head.deconv_layers.0.weight"] = torch.zeros(32, 256, 4, 4)
    with pytest.raises(CheckpointMismatchError, match="keypoint_head.deconv_layers.0.weight"):
        to_official(sd)


def test_checkpoint_pickling_other_objects_is_refused(tiny_official, tmp_path):
    path = tmp_path / "pickled.pth"
    torch.save({"state_dict": tiny_official["state_dict"], "meta": {"when": datetime.date(2020, 7, 8)}}, path)
    with pytest.raises(CheckpointMismatchError, match="weights_only") as err:
        read_state_dict(str(path))
    assert "datetime.date" in str(err.value)
