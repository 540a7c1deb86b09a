"""Flip test: flip_back / SHIFT_HEATMAP parity, flip twice = identity, batched flip = official two-forward average,
merge_flip in float32, and the codec's alignment: a flip test of an input that is its own mirror is mirror-symmetric."""

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from hrnet_pose.codecs import HeatmapCodec
from hrnet_pose.codecs.flip import flip_back, merge_flip, shift_heatmap_right
from hrnet_pose.models.inference import heatmaps_with_flip, model_runner
from hrnet_pose.keypoints import COCO17, load_keypoint_set

import testpaths

FIX = Path(testpaths.FIXTURES)


def inference_with_flip(model, images, flip_index, flip_test, shift_heatmap):
    """The validator's route: a PyTorch model through the one flip path."""
    return heatmaps_with_flip(model_runner(model), images, flip_index, flip_test, shift_heatmap)


def predict_keypoints(model, images, centers, scales, codec, flip_index):
    """Keypoints through the one path that evaluation and the API share: flip-test heatmaps, then the codec."""
    return codec.decode(inference_with_flip(model, images, flip_index, True, codec.flip_shift), centers, scales)


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
    # batch 6 vs two batches of 3: the kernels may sum in another order; 4 convolutions of up to 72 terms give about
    # sqrt(4 * 72) * 2^-24 = 1e-6 of the scale (~0.3), well inside atol 1e-5 (measured: 0)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    # flip_test=False is the same forward of the same batch: default (float32) tolerance, measured exact
    torch.testing.assert_close(inference_with_flip(model, images, COCO17.flip_index, flip_test=False, shift_heatmap=False), plain)


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
    # reference made on another CPU: two forwards of ~40 float32 convolutions (up to 576 terms) whose summation order
    # the kernels decide, about sqrt(40 * 576) * 2^-24 = 9e-6 of the scale; 2e-5 of the scale (measured: 5e-7)
    torch.testing.assert_close(out, blob["output_fliptest_shift"],
                               atol=2e-5 * float(blob["output_fliptest_shift"].abs().max()), rtol=0)


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
        # batch 1 vs 4: heatmaps may differ by ~1e-6 of their scale (4 convolutions, see above; measured: 0). The
        # decoded argmax / quarter offset cannot flip: every joint's top-two gap and neighbour difference is >= 8e-4
        # of the scale for these seeded maps, so keypoints differ only by float32 rounding of the image transform
        np.testing.assert_allclose(p[0], preds[i], atol=1e-4)
        np.testing.assert_allclose(m[0], maxvals[i], atol=1e-5)  # heatmap maxima: the 1e-6-of-scale bound


@pytest.mark.parametrize("shift", [True, False])
def test_merge_flip_is_the_official_average_for_numpy_and_torch(shift):
    rng = np.random.default_rng(2)
    plain = rng.normal(size=(2, 17, 16, 12)).astype(np.float32)
    mirrored = rng.normal(size=(2, 17, 16, 12)).astype(np.float32)
    back = flip_back(mirrored, COCO17.flip_pairs)
    expected = (plain + (shift_heatmap_right(back) if shift else back)) * 0.5
    got = merge_flip(plain, mirrored, COCO17.flip_index, shift)
    assert isinstance(got, np.ndarray) and got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    got_t = merge_flip(torch.from_numpy(plain), torch.from_numpy(mirrored), COCO17.flip_index, shift)
    assert isinstance(got_t, torch.Tensor) and got_t.dtype == torch.float32
    np.testing.assert_array_equal(got_t.numpy(), expected)


def test_merge_flip_averages_low_precision_outputs_in_float32():
    rng = np.random.default_rng(3)
    a, b = (torch.from_numpy(rng.random((1, 17, 16, 12)).astype(np.float32)).to(torch.bfloat16) for _ in range(2))
    got = merge_flip(a, b, COCO17.flip_index, True)
    assert got.dtype == torch.float32
    expected = merge_flip(a.float(), b.float(), COCO17.flip_index, True)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)  # no bf16 rounding of the sum
    got16 = merge_flip(a.float().numpy().astype(np.float16), b.float().numpy().astype(np.float16), COCO17.flip_index,
                       False)
    assert got16.dtype == np.float32
    with pytest.raises(ValueError, match="same"):
        merge_flip(a, b[:, :5], COCO17.flip_index, True)


def _blobs(seed: int, h: int = 64, w: int = 48) -> np.ndarray:
    """[1,17,h,w] heatmaps: one gaussian per channel at a random interior place with a random height."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:h, 0:w]
    c = np.c_[rng.uniform(6, w - 7, 17), rng.uniform(6, h - 7, 17)]
    g = np.exp(-((xs[None] - c[:, :1, None]) ** 2 + (ys[None] - c[:, 1:, None]) ** 2) / 8.0)
    return (g * rng.uniform(0.5, 1.0, (17, 1, 1)))[None].astype(np.float32)


def _pairs():
    return [(a, b) for a, b in COCO17.flip_pairs]


def _mirror_consistent_blobs(seed: int, h: int = 64, w: int = 48) -> np.ndarray:
    """[1,17,h,w]: one gaussian per left channel, its right partner the mirror image (a mirror-consistent model)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:h, 0:w]
    out = np.zeros((1, 17, h, w), np.float32)
    for a, b in COCO17.flip_pairs:
        cx, cy = rng.uniform(6, w - 7), rng.uniform(6, h - 7)
        out[0, a] = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / 8.0)
        out[0, b] = out[0, a, :, ::-1]
    return out


def _udp_symmetry_error(codec, heatmaps, image_size):
    merged = merge_flip(heatmaps, heatmaps, COCO17.flip_index, codec.flip_shift)
    np.testing.assert_array_equal(flip_back(merged, COCO17.flip_index), merged)  # symmetric, bit for bit
    center = np.array([[(image_size[0] - 1) / 2, (image_size[1] - 1) / 2]])
    scale = np.array([[(image_size[0] - 1) / 200, (image_size[1] - 1) / 200]])
    preds, _ = codec.decode(merged, center, scale)
    # left/right partners must mirror each other about the input's own axis x = (W - 1) / 2
    a, b = np.array(COCO17.flip_pairs).T
    return max(np.abs(preds[0, a, 0] + preds[0, b, 0] - (image_size[0] - 1)).max(),
               np.abs(preds[0, a, 1] - preds[0, b, 1]).max())


def test_udp_flip_test_of_a_self_mirror_input_is_exactly_mirror_symmetric():
    """The input is its own mirror image, so the model's heatmaps on it and on its mirror are the same H."""
    image_size = (192, 256)
    argmax = HeatmapCodec(image_size, (48, 64), 2, use_udp=True, shift_heatmap=True, post_process=True)
    dark = HeatmapCodec(image_size, (48, 64), 2, use_udp=True, shift_heatmap=True, decoder="dark")
    for seed in range(5):
        assert _udp_symmetry_error(argmax, _blobs(seed), image_size) < 1e-4
        assert _udp_symmetry_error(dark, _mirror_consistent_blobs(seed), image_size) < 1e-4
    # what a shifted flip (TEST.SHIFT_HEATMAP taken at face value under UDP) does to the same input
    shifted = merge_flip(_blobs(0), _blobs(0), COCO17.flip_index, True)
    assert np.abs(flip_back(shifted, COCO17.flip_index) - shifted).max() > 0.1


def test_udp_dark_symmetry_is_limited_by_the_authors_mixed_derivative_stencil():
    """The UDP authors' mixed term uses the (x+1, y+1) / (x-1, y-1) diagonal only, which is not mirror-symmetric:
    where a flip-test average is not log-quadratic (here two disagreeing blobs per channel) partners differ by up to
    0.055 image px (0.014 heatmap px). (Shifting the UDP flip, the old behaviour, puts partners 4.06 image px, one
    heatmap column, off the axis with either decoder.)"""
    image_size = (192, 256)
    dark = HeatmapCodec(image_size, (48, 64), 2, use_udp=True, decoder="dark")
    errors = [_udp_symmetry_error(dark, _blobs(seed), image_size) for seed in range(5)]
    assert 1e-3 < max(errors) < 0.06


def test_official_flip_test_of_a_self_mirror_input_is_symmetric_about_the_shifted_axis():
    """Without UDP the shifted flip maps heatmap column x to w - x, i.e. crop x to W - x: the result is exactly
    symmetric about W / 2, half a crop pixel from the input's own axis (W - 1) / 2 (the official shift's residual)."""
    image_size = (192, 256)
    codec = HeatmapCodec(image_size, (48, 64), 2, post_process=True, shift_heatmap=True)
    heatmaps = _blobs(seed=5)
    merged = merge_flip(heatmaps, heatmaps, COCO17.flip_index, codec.flip_shift)
    mirrored = flip_back(merged, COCO17.flip_index)  # column x -> w - 1 - x
    np.testing.assert_array_equal(mirrored[..., :-1], merged[..., 1:])  # i.e. column x -> w - x, bit for bit
    center = np.array([[image_size[0] / 2, image_size[1] / 2]], np.float32)
    scale = np.array([[image_size[0] / 200, image_size[1] / 200]], np.float32)
    preds, _ = codec.decode(merged, center, scale)
    for a, b in _pairs():
        assert preds[0, a, 0] + preds[0, b, 0] == pytest.approx(image_size[0], abs=1e-3)
        assert preds[0, a, 1] == pytest.approx(preds[0, b, 1], abs=1e-4)


def test_predict_keypoints_on_a_self_mirror_image_with_udp_is_mirror_symmetric():
    torch.manual_seed(6)
    model = _TinyNet().eval()
    with torch.no_grad():
        model.body[-1].bias += 5.0  # positive maps, so no keypoint is zeroed for a non-positive maximum
    half = torch.randn(2, 3, 64, 48)
    images = (half + half.flip(3)) / 2  # its own mirror image, bit for bit
    assert torch.equal(images, images.flip(3))
    codec = HeatmapCodec((48, 64), (12, 16), 2, use_udp=True, shift_heatmap=True, post_process=True)
    heatmaps = inference_with_flip(model, images, COCO17.flip_index, True, codec.flip_shift)
    torch.testing.assert_close(flip_back(heatmaps, COCO17.flip_index), heatmaps, rtol=0, atol=0)
    centers = np.array([[23.5, 31.5], [23.5, 31.5]])
    scales = np.array([[47 / 200, 63 / 200], [47 / 200, 63 / 200]])
    preds, _ = predict_keypoints(model, images, centers, scales, codec, COCO17.flip_index)
    for a, b in _pairs():
        np.testing.assert_allclose(preds[:, a, 0] + preds[:, b, 0], 47.0, atol=1e-4)
        np.testing.assert_allclose(preds[:, a, 1], preds[:, b, 1], atol=1e-4)
    assert codec.flip_shift is False  # UDP's flip is exact: the codec never shifts it, whatever TEST.SHIFT_HEATMAP


@pytest.mark.parametrize("flip_test", [True, False])
def test_numpy_runtime_and_torch_model_take_the_same_flip_path(flip_test):
    """The API's numpy route (any runtime: onnxruntime, a TorchBackend) and the validator's torch route give the
    same heatmaps: the same crops, the same mirror, the same merge."""
    torch.manual_seed(3)
    model = _TinyNet().eval()
    images = torch.randn(3, 3, 64, 48)
    run_torch = model_runner(model)
    via_torch = heatmaps_with_flip(run_torch, images, COCO17.flip_index, flip_test, True)
    via_numpy = heatmaps_with_flip(lambda x: run_torch(torch.from_numpy(x)).numpy(), images.numpy(),
                                   COCO17.flip_index, flip_test, True)
    assert isinstance(via_numpy, np.ndarray) and via_numpy.dtype == np.float32
    # the numpy mirror is a copy of the same values as torch's flip(3) and the merge is the same float32 arithmetic
    np.testing.assert_array_equal(via_numpy, via_torch.numpy())
