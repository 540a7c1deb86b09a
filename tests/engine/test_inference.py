"""Flip test: flip_back / SHIFT_HEATMAP parity, flip twice = identity, batched flip = official two-forward average."""

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from hrnet_pose.codecs import HeatmapCodec
from hrnet_pose.engine.inference import flip_back, inference_with_flip, predict_keypoints, shift_heatmap_right
from hrnet_pose.keypoints import COCO17, load_keypoint_set

FIX = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def ref():
    return np.load(FIX / "official_postprocess_a_sliced.npz")


def test_flip_back_and_shift_match_official(ref):
    for flip in (ref["flip_pairs"], COCO17.flip_index):
        out = flip_back(ref["flip_in"], flip)
        np.testing.assert_array_equal(out, ref["flip_out"])
        np.testing.assert_array_equal(shift_heatmap_right(out), ref["flip_out_shifted"])
    out_t = flip_back(torch.from_numpy(ref["flip_in"]), ref["flip_pairs"])
    assert isinstance(out_t, torch.Tensor)
    np.testing.assert_array_equal(out_t.numpy(), ref["flip_out"])
    np.testing.assert_array_equal(shift_heatmap_right(out_t).numpy(), ref["flip_out_shifted"])


def test_flip_back_twice_is_identity():
    x = np.random.default_rng(0).normal(size=(2, 17, 8, 6)).astype(np.float32)
    np.testing.assert_array_equal(flip_back(flip_back(x, COCO17.flip_index), COCO17.flip_index), x)
    k5 = load_keypoint_set(str(FIX / "keypoints_5.yaml"))
    y = torch.randn(3, 5, 8, 6)
    once = flip_back(y, k5.flip_pairs)
    assert torch.equal(once[:, 1], y[:, 2].flip(-1)) and torch.equal(once[:, 0], y[:, 0].flip(-1))
    assert torch.equal(flip_back(once, k5.flip_pairs), y)


def test_flip_back_rejects_bad_spec():
    with pytest.raises(ValueError, match="permutation"):
        flip_back(np.zeros((1, 3, 4, 4)), [0, 0, 1])


class _TinyNet(nn.Module):
    """A small conv + BN net (not left-right symmetric) that outputs K heatmaps at 1/4 resolution."""

    def __init__(self, k: int = 17) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, k, 1),
        )

    def forward(self, x):
        return self.body(x)


def _official_flip_average(model, images, pairs, shift):
    out = model(images)
    flipped = torch.from_numpy(flip_back(model(images.flip(3)).numpy(), pairs).copy())
    if shift:
        flipped[:, :, :, 1:] = flipped.clone()[:, :, :, 0:-1]
    return (out + flipped) * 0.5


@pytest.mark.parametrize("shift", [True, False])
def test_batched_flip_equals_official_two_forward_average(shift):
    torch.manual_seed(0)
    model = _TinyNet()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    model.eval()
    images = torch.randn(3, 3, 32, 24)
    with torch.no_grad():
        expected = _official_flip_average(model, images, COCO17.flip_pairs, shift)
        plain = model(images)
    got = inference_with_flip(model, images, COCO17.flip_index, flip_test=True, shift_heatmap=shift)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(inference_with_flip(model, images, COCO17.flip_index, flip_test=False), plain)


def test_flip_test_matches_official_tiny_hrnet():
    from hrnet_pose.config import get_cfg
    from hrnet_pose.models.build import build_model

    blob = torch.load(FIX / "official_hrnet_tiny_a.pt", weights_only=True)
    cfg = get_cfg()
    cfg.defrost()
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write(blob["cfg_yaml"])
        f.flush()
        cfg.merge_from_file(f.name)
    model = build_model(cfg)
    model.load_state_dict(blob["state_dict"], strict=True)
    model.eval()
    out = inference_with_flip(model, blob["input"], COCO17.flip_index, flip_test=True, shift_heatmap=True)
    torch.testing.assert_close(out, blob["output_fliptest_shift"], atol=1e-5, rtol=1e-4)


def test_predict_keypoints_batched_over_persons():
    torch.manual_seed(1)
    model = _TinyNet().eval()
    images = torch.randn(4, 3, 64, 48)
    codec = HeatmapCodec((48, 64), (12, 16), 2, post_process=True)
    centers = np.array([[100, 100], [200, 150], [50, 60], [300, 300]], np.float32)
    scales = np.array([[0.6, 0.8], [1.2, 1.6], [0.3, 0.4], [0.9, 1.2]], np.float32)
    preds, maxvals = predict_keypoints(model, images, centers, scales, codec, COCO17.flip_index)
    assert preds.shape == (4, 17, 2) and maxvals.shape == (4, 17, 1)
    # one person at a time gives the same answer
    for i in range(4):
        p, m = predict_keypoints(model, images[i:i + 1], centers[i:i + 1], scales[i:i + 1], codec, COCO17.flip_index)
        np.testing.assert_allclose(p[0], preds[i], atol=1e-4)
        np.testing.assert_allclose(m[0], maxvals[i], atol=1e-5)
