"""HeatmapCodec: parity with the official generate_target / get_max_preds / get_final_preds, round trips, DARK and
its unbiased encoding, UDP, flip alignment and refinement decided by the codec, decoding in float32."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from hrnet_pose.codecs import HeatmapCodec, build_codec, get_max_preds
from hrnet_pose.codecs import heatmap as heatmap_module
from hrnet_pose.codecs.heatmap import dark_refine
from hrnet_pose.config import get_cfg, load_config
from hrnet_pose.keypoints import load_keypoint_set

import testpaths

FIX = Path(testpaths.FIXTURES)
OFFICIAL_YAML = Path(testpaths.OFFICIAL_W32_YAML)


@pytest.fixture(scope="module")
def ref():
    return np.load(FIX / "official_postprocess_a_sliced.npz")


def test_get_max_preds_matches_official(ref):
    coords, maxvals = get_max_preds(ref["fp_heatmaps"])
    assert coords.dtype == np.float32 and maxvals.dtype == np.float32
    np.testing.assert_array_equal(coords, ref["gmp_coords"])
    np.testing.assert_array_equal(maxvals, ref["gmp_maxvals"])
    # edge cases of sample 0: maxval < 0 and == 0 are zeroed; a tie takes the first in row-major order
    np.testing.assert_array_equal(coords[0, 8], [0, 0])
    np.testing.assert_array_equal(coords[0, 9], [0, 0])
    np.testing.assert_array_equal(coords[0, 11], [30, 10])


@pytest.mark.parametrize("post_process,key", [(True, "fp_preds"), (False, "fp_preds_nopp")])
def test_decode_matches_official_get_final_preds(ref, post_process, key):
    codec = HeatmapCodec((192, 256), (48, 64), 2, post_process=post_process)
    preds, maxvals = codec.decode(ref["fp_heatmaps"], ref["fp_center"], ref["fp_scale"])
    assert preds.dtype == np.float32 and preds.shape == ref[key].shape
    np.testing.assert_allclose(preds, ref[key], atol=1e-5, rtol=0)
    np.testing.assert_allclose(maxvals, ref["fp_maxvals"], atol=1e-6)
    # a torch tensor gives the same result
    preds_t, _ = codec.decode(torch.from_numpy(ref["fp_heatmaps"]), ref["fp_center"], ref["fp_scale"])
    np.testing.assert_allclose(preds_t, ref[key], atol=1e-5, rtol=0)


def test_quarter_offset_border_rules(ref):
    on = HeatmapCodec((192, 256), (48, 64), 2, post_process=True)
    off = HeatmapCodec((192, 256), (48, 64), 2, post_process=False)
    hm, c, s = ref["fp_heatmaps"][:1], ref["fp_center"][:1], ref["fp_scale"][:1]
    moved = np.abs(on.decode(hm, c, s)[0] - off.decode(hm, c, s)[0]).sum(-1)[0] > 0
    # json edge cases: peaks at 0, 1, W-1, y 0, y 1, H-1 and empty maps do not move; W-2, H-2 and joint 12 do
    assert not moved[[0, 1, 3, 4, 5, 7, 8, 9]].any()
    assert moved[[2, 6, 10, 12]].all()


@pytest.mark.parametrize("tag,image_size,heatmap_size,sigma", [
    ("gt2", (192, 256), (48, 64), 2), ("gt3", (288, 384), (72, 96), 3)])
def test_encode_matches_official_generate_target(ref, tag, image_size, heatmap_size, sigma):
    codec = HeatmapCodec(image_size, heatmap_size, sigma)
    for i in range(len(ref[f"{tag}_joints"])):
        target, weight = codec.encode(ref[f"{tag}_joints"][i], ref[f"{tag}_joints_vis"][i])
        assert target.dtype == np.float32 and weight.shape == (17, 1)
        np.testing.assert_allclose(target, ref[f"{tag}_target"][i], atol=1e-6, err_msg=f"{tag} sample {i}")
        np.testing.assert_array_equal(weight, ref[f"{tag}_target_weight"][i])


def test_encode_boundary_quirks(ref):
    codec = HeatmapCodec((192, 256), (48, 64), 2)
    target, weight = codec.encode(ref["gt2_joints"][0], ref["gt2_joints_vis"][0][:, 0])  # [K] visibility works
    # x = -30 px: window br is exactly 0 -> weight 1 with an all-zero map (official quirk)
    assert weight[0, 0] == 1 and target[0].max() == 0
    # x = -3 px: int() truncates toward zero, so the peak is at column 0, not -1
    assert target[3].max() == 1 and np.unravel_index(target[3].argmax(), target[3].shape)[1] == 0
    # invisible joints: weight 0, zero map
    assert weight[14, 0] == 0 and target[14].max() == 0


def test_different_joints_weight():
    w = np.linspace(1, 2, 17).astype(np.float32)
    codec = HeatmapCodec((192, 256), (48, 64), 2, joints_weight=w, use_different_joints_weight=True)
    joints = np.tile([[96.0, 128.0, 0.0]], (17, 1))
    _, weight = codec.encode(joints, np.ones((17, 3)))
    np.testing.assert_allclose(weight[:, 0], w)


def _identity_box(image_size):
    # a box whose crop is the image itself: decoded image coords are crop coords
    w, h = image_size
    return np.array([[w / 2, h / 2]], np.float32), np.array([[w / 200, h / 200]], np.float32)


def test_encode_decode_round_trip_within_one_heatmap_pixel():
    rng = np.random.default_rng(1)
    codec = HeatmapCodec((192, 256), (48, 64), 2, post_process=True)
    joints = np.c_[rng.uniform(10, 180, 17), rng.uniform(10, 245, 17), np.zeros(17)]
    target, _ = codec.encode(joints, np.ones(17))
    center, scale = _identity_box((192, 256))
    preds, maxvals = codec.decode(target[None], center, scale)
    assert np.all(maxvals == 1)
    assert np.abs(preds[0] - joints[:, :2]).max() <= 4.0  # 1 heatmap pixel = stride 4


def test_dark_refines_float_centred_gaussian_to_subpixel():
    rng = np.random.default_rng(2)
    h, w, sigma = 64, 48, 2.0
    centres = np.c_[rng.uniform(8, 40, 17), rng.uniform(8, 56, 17)]
    ys, xs = np.mgrid[0:h, 0:w]
    hm = np.exp(-((xs[None] - centres[:, :1, None]) ** 2 + (ys[None] - centres[:, 1:, None]) ** 2) / (2 * sigma ** 2))
    hm = hm[None].astype(np.float32)
    coords, _ = get_max_preds(hm)
    refined = dark_refine(hm, coords, blur_kernel=11)
    assert np.abs(refined[0] - centres).max() < 0.01
    assert np.abs(coords[0] - centres).max() > 0.2  # the argmax alone is not that close


def _udp_identity_box(image_size):
    # UDP box: (size - 1) pixel steps span the box, so the box is the crop's pixel-centre extent
    w, h = image_size
    return np.array([[(w - 1) / 2, (h - 1) / 2]]), np.array([[(w - 1) / 200, (h - 1) / 200]])


def test_udp_encode_decode_round_trip_is_exact_with_dark():
    """Every joint at least 5.5 heatmap px (22 image px) inside the border comes back within 0.01 image px; nearer
    the border the UDP authors' mirrored blur moves it (figures in tests/codecs/test_dark.py)."""
    rng = np.random.default_rng(3)
    image_size = (192, 256)
    codec = HeatmapCodec(image_size, (48, 64), 2, use_udp=True, decoder="dark")
    stride = (np.array(image_size) - 1) / (np.array([48, 64]) - 1)
    for _ in range(10):
        joints = np.c_[rng.uniform(5.5, 41.5, 17) * stride[0], rng.uniform(5.5, 57.5, 17) * stride[1], np.zeros(17)]
        target, weight = codec.encode(joints, np.ones(17))
        assert np.all(weight == 1) and np.allclose(target.max(axis=(1, 2)), 1, atol=0.2)
        preds, _ = codec.decode(target[None], *_udp_identity_box(image_size))
        assert np.abs(preds[0] - joints[:, :2]).max() < 0.01


def test_udp_default_decoder_is_the_argmax_without_quarter_offset():
    rng = np.random.default_rng(4)
    image_size = (192, 256)
    codec = HeatmapCodec(image_size, (48, 64), 2, use_udp=True, post_process=True, shift_heatmap=True)
    assert codec.refinement == "none" and not codec.flip_shift and codec.flip_alignment == "udp_exact"
    stride = (np.array(image_size) - 1) / (np.array([48, 64]) - 1)
    joints = np.c_[rng.uniform(0, 191, 17), rng.uniform(0, 255, 17), np.zeros(17)]  # anywhere in the crop
    target, _ = codec.encode(joints, np.ones(17))
    preds, _ = codec.decode(target[None], *_udp_identity_box(image_size))
    # the argmax is the nearest heatmap pixel, mapped back exactly; no quarter offset moves it
    np.testing.assert_allclose(preds[0], np.floor(joints[:, :2] / stride + 0.5) * stride, atol=1e-3)


def test_dark_keeps_empty_maps_at_origin_like_default():
    hm = np.zeros((1, 2, 64, 48), np.float32)
    hm[0, 1, 30, 20] = 1.0
    center, scale = _identity_box((192, 256))
    dark = HeatmapCodec((192, 256), (48, 64), 2, decoder="dark").decode(hm, center, scale)[0]
    default = HeatmapCodec((192, 256), (48, 64), 2, post_process=False).decode(hm, center, scale)[0]
    np.testing.assert_allclose(dark[0, 0], default[0, 0])
    assert np.isfinite(dark).all()


def test_custom_five_keypoint_set_encode_decode():
    kset = load_keypoint_set(str(FIX / "keypoints_5.yaml"))
    codec = HeatmapCodec((96, 128), (24, 32), 1.5, joints_weight=kset.weights())
    joints = np.array([[48, 20, 0], [20, 60, 0], [76, 60, 0], [35, 120, 0], [61, 120, 0]], np.float64)
    vis = np.array([1, 1, 1, 1, 0])
    target, weight = codec.encode(joints, vis)
    assert target.shape == (5, 32, 24) and weight[:, 0].tolist() == [1, 1, 1, 1, 0]
    preds, maxvals = codec.decode(target[None], *_identity_box((96, 128)))
    assert np.abs(preds[0, :4] - joints[:4, :2]).max() <= 4.0
    assert maxvals[0, 4, 0] == 0


def test_build_codec_from_config():
    from hrnet_pose.config import get_cfg

    cfg = get_cfg()
    cfg.defrost()
    cfg.MODEL.IMAGE_SIZE = [192, 256]
    cfg.MODEL.HEATMAP_SIZE = [48, 64]
    cfg.MODEL.SIGMA = 2
    cfg.CODEC.DECODER = "dark"
    cfg.TEST.POST_PROCESS = True
    codec = build_codec(cfg)
    assert codec.decoder == "dark" and codec.sigma == 2 and codec.heatmap_size.tolist() == [48, 64]
    cfg.MODEL.TARGET_TYPE = "offset"
    with pytest.raises(ValueError, match="TARGET_TYPE"):
        build_codec(cfg)


def test_invalid_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="decoder"):
        HeatmapCodec((192, 256), (48, 64), 2, decoder="soft-argmax")
    codec = HeatmapCodec((192, 256), (48, 64), 2)
    with pytest.raises(ValueError, match=r"\[N, K, H, W\]"):
        codec.decode(np.zeros((17, 64, 48)), np.zeros((1, 2)), np.ones((1, 2)))


def test_unbiased_encoding_centres_the_gaussian_on_the_subpixel_joint():
    """DARK's encoding: the whole-map gaussian exp(-|p - joint/stride|^2 / 2 sigma^2); DARK decodes it back within
    0.01 heatmap px (joints at least 4 px inside, see tests/codecs/test_dark.py for the border)."""
    rng = np.random.default_rng(5)
    image_size, heatmap_size = (192, 256), (48, 64)
    codec = HeatmapCodec(image_size, heatmap_size, 2, decoder="dark", unbiased_encoding=True)
    joints = np.c_[rng.uniform(4, 43, 17) * 4, rng.uniform(4, 59, 17) * 4, np.zeros(17)]
    target, weight = codec.encode(joints, np.ones(17))
    assert target.dtype == np.float32 and (weight == 1).all()
    mu = joints[:, :2] / 4.0
    ys, xs = np.mgrid[0:64, 0:48]
    expected = np.exp(-((xs[None] - mu[:, :1, None]) ** 2 + (ys[None] - mu[:, 1:, None]) ** 2) / 8.0)
    np.testing.assert_allclose(target, expected, atol=1e-6)  # the whole map, no 6-sigma window
    preds, _ = codec.decode(target[None], *_identity_box(image_size))
    assert np.abs(preds[0] - joints[:, :2]).max() < 0.01 * 4  # 0.01 heatmap px = 0.04 crop px
    # the official encoding of the same joints is off by up to half a heatmap pixel, and DARK decodes that offset
    official, _ = HeatmapCodec(image_size, heatmap_size, 2, decoder="dark").encode(joints, np.ones(17))
    off = HeatmapCodec(image_size, heatmap_size, 2, decoder="dark").decode(official[None], *_identity_box(image_size))
    assert np.abs(off[0][0] - joints[:, :2]).max() > 0.3 * 4


def test_unbiased_encoding_weights_and_options():
    codec = HeatmapCodec((192, 256), (48, 64), 2, unbiased_encoding=True)
    # heatmap x = -6: the 3-sigma window reaches column 0, so the tail is a target; x = -8.5 misses the map
    joints = np.array([[-6 * 4.0, 100.0, 0], [-8.5 * 4, 100.0, 0], [100.0, 100.0, 0], [100.0, 100.0, 0]])
    target, weight = codec.encode(joints, np.array([1, 1, 1, 0]))
    assert weight[:, 0].tolist() == [1, 0, 1, 0]
    assert target[0].max() == pytest.approx(np.exp(-36 / 8), rel=1e-5) and target[1].max() == 0
    assert target[3].max() == 0
    with pytest.raises(ValueError, match="UNBIASED_ENCODING"):
        HeatmapCodec((192, 256), (48, 64), 2, use_udp=True, unbiased_encoding=True)


@pytest.mark.parametrize("udp,decoder,post,shift,flip_shift,alignment,refinement", [
    (False, "default", True, True, True, "shift", "quarter_offset"),
    (False, "default", False, False, False, "none", "none"),
    (False, "dark", True, True, True, "shift", "dark"),
    (True, "default", True, True, False, "udp_exact", "none"),
    (True, "dark", True, True, False, "udp_exact", "dark_udp"),
])
def test_codec_decides_flip_alignment_and_refinement(udp, decoder, post, shift, flip_shift, alignment, refinement):
    codec = HeatmapCodec((192, 256), (48, 64), 2, use_udp=udp, decoder=decoder, post_process=post,
                         shift_heatmap=shift)
    assert (codec.flip_shift, codec.flip_alignment, codec.refinement) == (flip_shift, alignment, refinement)
    assert alignment in heatmap_module.FLIP_ALIGNMENT_TEXT and refinement in heatmap_module.REFINEMENT_TEXT


def test_official_yaml_with_udp_applies_no_shift_and_no_quarter_offset_logged_once(monkeypatch, caplog):
    monkeypatch.setattr(heatmap_module, "_logged_once", set())
    cfg = load_config(str(OFFICIAL_YAML), ["CODEC.UDP", "True"])
    assert cfg.TEST.SHIFT_HEATMAP and cfg.TEST.POST_PROCESS  # the official yaml asks for both
    with caplog.at_level(logging.INFO, logger="hrnet_pose.codecs.heatmap"):
        codecs = [build_codec(cfg) for _ in range(3)]  # train set, val set, API: one message
    assert all(not c.flip_shift and c.refinement == "none" for c in codecs)
    messages = [r.getMessage() for r in caplog.records if "CODEC.UDP" in r.getMessage()]
    assert len(messages) == 1 and "SHIFT_HEATMAP True ignored" in messages[0] and "POST_PROCESS" in messages[0]
    # the quarter offset is really not applied: a peak with a higher right neighbour stays on its pixel
    hm = np.zeros((1, 17, 64, 48), np.float32)
    hm[0, :, 30, 20], hm[0, :, 30, 21] = 1.0, 0.5
    preds, _ = codecs[0].decode(hm, *_udp_identity_box((192, 256)))
    np.testing.assert_allclose(preds[0, :, 0], 20 * 191 / 47, atol=1e-3)
    # without UDP the same yaml keeps the official behaviour, silently
    caplog.clear()
    plain = build_codec(load_config(str(OFFICIAL_YAML), []))
    assert plain.flip_shift and plain.refinement == "quarter_offset" and not caplog.records


def test_build_codec_reads_the_new_codec_keys():
    cfg = get_cfg()
    cfg.defrost()
    cfg.MODEL.IMAGE_SIZE, cfg.MODEL.HEATMAP_SIZE = [192, 256], [48, 64]
    cfg.TEST.SHIFT_HEATMAP = True
    cfg.CODEC.UNBIASED_ENCODING = True
    codec = build_codec(cfg)
    assert codec.shift_heatmap and codec.flip_shift and codec.unbiased_encoding
    cfg.CODEC.UDP = True
    with pytest.raises(ValueError, match="CODEC.UDP"):
        build_codec(cfg)
    cfg.CODEC.UDP, cfg.CODEC.DECODER = False, "soft-argmax"
    with pytest.raises(ValueError, match="CODEC.DECODER"):
        build_codec(cfg)


@pytest.mark.parametrize("decoder,udp", [("default", False), ("dark", False), ("dark", True)])
def test_decode_runs_in_float32_for_any_input_dtype(ref, decoder, udp):
    codec = HeatmapCodec((192, 256), (48, 64), 2, decoder=decoder, use_udp=udp)
    hm16 = torch.from_numpy(ref["fp_heatmaps"]).to(torch.bfloat16)  # what a bf16 forward hands over
    expected = codec.decode(hm16.float().numpy(), ref["fp_center"], ref["fp_scale"])
    for heatmaps in (hm16, hm16.float().numpy().astype(np.float64), hm16.float().half()):
        preds, maxvals = codec.decode(heatmaps, ref["fp_center"], ref["fp_scale"])
        assert preds.dtype == np.float32 and maxvals.dtype == np.float32
        np.testing.assert_array_equal(preds, expected[0])
        np.testing.assert_array_equal(maxvals, expected[1])
