"""MODEL.PRETRAINED onto another keypoint set: a 17-joint checkpoint fine-tunes a 6-keypoint model, loading all but
the head and saying so; MODEL.EXTRA.PRETRAINED_LAYERS keeps its official meaning; other mismatches stay errors."""

import logging
import os

import pytest
import torch

from hrnet_pose.config import load_config
from hrnet_pose.errors import CheckpointMismatchError
from hrnet_pose.models import build_model, load_pretrained
from hrnet_pose.models.weights import read_state_dict

from testpaths import EXPERIMENTS, QUICKSTART_WEIGHTS, QUICKSTART_YAML

KITES_YAML = os.path.join(EXPERIMENTS, "synthetic", "kites.yaml")


def _fresh(cfg):
    torch.manual_seed(0)
    model = build_model(cfg)
    model.init_weights()
    return model


def test_17_to_6_keypoints_loads_all_but_the_head_and_says_so(caplog):
    model = _fresh(load_config(KITES_YAML))
    head_before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("final_layer.")}
    with caplog.at_level(logging.INFO, logger="hrnet_pose.models.weights"):
        report = load_pretrained(model, QUICKSTART_WEIGHTS, ["*"])
    ckpt = read_state_dict(QUICKSTART_WEIGHTS)
    state = model.state_dict()
    assert report.reinitialised == ["final_layer.weight", "final_layer.bias"]
    assert report.loaded == len(state) - 2 and report.ignored == []
    for key, value in state.items():
        if key.startswith("final_layer."):
            assert ckpt[key].shape[0] == 17 and value.shape[0] == 6
            assert torch.equal(value, head_before[key])  # the fresh initialisation, untouched
        else:
            assert torch.equal(value, ckpt[key]), key
    text = caplog.text
    assert f"loaded {len(state) - 2} of the model's {len(state)} tensors" in text
    assert ("re-initialised 2 (final_layer.weight, final_layer.bias: the checkpoint's head has 17 keypoints, the "
            "model's 6)") in text
    assert "skipped 0 checkpoint entries" in text and "entries unused" not in text


def test_pretrained_layers_keep_their_official_meaning(caplog):
    model = _fresh(load_config(KITES_YAML))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with caplog.at_level(logging.INFO, logger="hrnet_pose.models.weights"):
        report = load_pretrained(model, QUICKSTART_WEIGHTS, ["conv1", "bn1", "layer1"])
    ckpt = read_state_dict(QUICKSTART_WEIGHTS)
    for key, value in model.state_dict().items():
        taken = key.split(".")[0] in ("conv1", "bn1", "layer1")
        assert torch.equal(value, ckpt[key] if taken else before[key]), key
    assert report.reinitialised == [] and "not taken (MODEL.EXTRA.PRETRAINED_LAYERS" in caplog.text


def test_a_checkpoint_of_another_width_is_still_an_error():
    cfg = load_config(KITES_YAML, ["MODEL.EXTRA.STAGE2.NUM_CHANNELS", "[8, 32]"])
    with pytest.raises(CheckpointMismatchError, match=r"shape mismatch"):
        load_pretrained(_fresh(cfg), QUICKSTART_WEIGHTS, ["*"])


def test_same_keypoints_load_the_head_too():
    model = _fresh(load_config(QUICKSTART_YAML))
    report = load_pretrained(model, QUICKSTART_WEIGHTS, ["*"])
    assert report.reinitialised == [] and report.loaded == len(model.state_dict())
    ckpt = read_state_dict(QUICKSTART_WEIGHTS)
    assert torch.equal(model.state_dict()["final_layer.weight"], ckpt["final_layer.weight"])


def test_a_zoo_name_in_model_pretrained_is_its_downloaded_checkpoint(tmp_path, monkeypatch):
    """tools/train.py resolves MODEL.PRETRAINED zoo names (here from the download cache, no network)."""
    import shutil

    from hrnet_pose.apis import zoo

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    name = next(n for n, e in sorted(zoo.ZOO.items()) if e.url)
    cached = os.path.join(zoo.checkpoint_dir(), zoo.get_entry(name).filename)
    os.makedirs(os.path.dirname(cached))
    shutil.copy(QUICKSTART_WEIGHTS, cached)
    cfg = zoo.apply_zoo_pretrained(load_config(KITES_YAML, ["MODEL.PRETRAINED", name]))
    assert cfg.MODEL.PRETRAINED == cached
    plain = load_config(KITES_YAML, ["MODEL.PRETRAINED", QUICKSTART_WEIGHTS])
    assert zoo.apply_zoo_pretrained(plain) is plain  # a file passes unchanged
