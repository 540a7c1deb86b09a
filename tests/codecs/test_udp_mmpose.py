"""MMPose 1.x's DARK-UDP refinement (`UDPHeatmap.decode` -> `refine_keypoints_dark_udp` with MMPose's
`gaussian_blur`), pinned against a per-map reference written from that definition, and shown to differ from the UDP
authors' form (`dark_udp_refine`) exactly where their blurs differ: near the border.

MMPose's definition, per map: pad with zeros by the kernel radius, cv2.GaussianBlur, crop, multiply by
(max before / max after); then clip to [1e-3, 50], log, pad the log map by one edge pixel, and at the integer argmax
take 1-pixel differences (the mixed term from the 7-point stencil along the (+1, +1) diagonal) and subtract
(Hessian + float32 eps * I)^-1 gradient. The UDP authors' form blurs with cv2's default mirrored border and does not
rescale.
"""

import cv2
import numpy as np
import pytest

from hrnet_pose.codecs.dark import dark_udp_mmpose_refine, dark_udp_refine
from hrnet_pose.codecs.heatmap import REFINEMENT_TEXT, HeatmapCodec, build_codec, get_max_preds
from hrnet_pose.config import load_config
from hrnet_pose.engine.validate import describe_run_protocol

H, W, SIGMA = 64, 48, 2.0


def _udp_targets(joints_hm: np.ndarray, w: int = W, h: int = H) -> np.ndarray:
    """UDP targets [1, K, h, w] (sub-pixel gaussians, sigma 2) for joints in heatmap pixels (stride 1)."""
    codec = HeatmapCodec((w, h), (w, h), SIGMA, use_udp=True)
    target, weight = codec.encode(np.c_[joints_hm, np.zeros(len(joints_hm))], np.ones(len(joints_hm)))
    assert (weight == 1).all()
    return target[None]


def _random_maps(seed: int, n: int = 2, k: int = 17) -> np.ndarray:
    """Smooth positive maps with one or two bumps anywhere (borders included) and noise."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:H, 0:W]
    out = np.zeros((n, k, H, W), np.float32)
    for i in range(n):
        for j in range(k):
            for amp in (1.0, rng.uniform(0, 0.8)):
                cx, cy, s = rng.uniform(-1, W), rng.uniform(-1, H), rng.uniform(1.5, 3)
                out[i, j] += amp * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * s ** 2))
            out[i, j] += rng.uniform(0, 0.02, (H, W))
    return out


def _reference_mmpose(hm: np.ndarray, k: int) -> np.ndarray:
    """MMPose 1.x's steps one map at a time (module docstring), with its flat-index gather on the padded log map."""
    coords, _ = get_max_preds(hm)
    out = coords.astype(np.float64).copy()
    r = (k - 1) // 2
    eps = np.finfo(np.float32).eps
    for n in range(hm.shape[0]):
        for j in range(hm.shape[1]):
            dr = np.zeros((H + 2 * r, W + 2 * r))
            dr[r:-r, r:-r] = hm[n, j]
            blurred = cv2.GaussianBlur(dr, (k, k), 0)[r:-r, r:-r]
            blurred *= hm[n, j].max() / blurred.max()
            flat = np.pad(np.log(np.clip(blurred, 1e-3, 50.0)), 1, mode="edge").flatten()
            i = int(coords[n, j, 0]) + 1 + (int(coords[n, j, 1]) + 1) * (W + 2)
            c, x1, x1_, y1, y1_ = flat[i], flat[i + 1], flat[i - 1], flat[i + W + 2], flat[i - W - 2]
            grad = np.array([0.5 * (x1 - x1_), 0.5 * (y1 - y1_)])
            dxy = 0.5 * (flat[i + W + 3] - x1 - y1 + c + c - x1_ - y1_ + flat[i - W - 3])
            hess = np.array([[x1 - 2 * c + x1_, dxy], [dxy, y1 - 2 * c + y1_]])
            out[n, j] -= np.linalg.inv(hess + eps * np.eye(2)) @ grad
    return out


def _refine(fn, hm, k=11):
    coords, _ = get_max_preds(hm)
    return fn(hm, coords, k)


@pytest.mark.parametrize("k", [11, 7, 17])
def test_matches_a_per_map_reference_of_mmpose_definition(k):
    hm = _random_maps(seed=k)
    # the reference blurs with cv2 in float64 as well: what is left is the float32 rounding of the returned
    # coordinates (spacing 4e-6 below 64 px)
    np.testing.assert_allclose(_refine(dark_udp_mmpose_refine, hm, k), _reference_mmpose(hm, k), atol=1e-5, rtol=0)


def test_interior_subpixel_gaussian_decodes_as_the_authors_form_and_exactly():
    """Argmax 6 px or more inside (kernel 11): neither blur reads past the border, so both blurred maps are equal up to
    MMPose's rescaling by a constant c, and log(c m) = log c + log m leaves every difference, hence the step, unchanged
    (no value reaches the 1e-3 / 50 clip around a peak of 1). The step on a UDP target lands on the joint."""
    rng = np.random.default_rng(7)
    joints = np.r_[[[20.3, 30.7]], np.c_[rng.uniform(5.5, W - 6.5, 200), rng.uniform(5.5, H - 6.5, 200)]]
    hm = _udp_targets(joints)
    mm, authors = _refine(dark_udp_mmpose_refine, hm), _refine(dark_udp_refine, hm)
    # the same float64 numbers up to the rounding of the rescale (1e-16 relative), then float32 coordinates
    np.testing.assert_allclose(mm, authors, atol=1e-5, rtol=0)
    np.testing.assert_allclose(mm[0], joints, atol=1e-3, rtol=0)  # the discrete blur of a sampled gaussian is
    # gaussian only approximately: 1e-3 px is the measured bound of that at sigma 2, kernel 11 (see test_dark.py)


def test_near_the_border_the_zero_border_leans_inward_and_the_mirror_outward():
    """1 to 4 px from the border the gaussian has mass beyond the map. MMPose's blur reads zeros there, so the
    blurred peak moves inward (towards the map); the authors' mirrored border folds that mass back in, and the step
    lands outward. Both are the reference's numbers; the forms differ by more than 0.05 px everywhere in this band."""
    rng = np.random.default_rng(8)
    d = rng.uniform(1, 4, 200)
    left = rng.random(200) < 0.5
    joints = np.c_[np.where(left, d, W - 1 - d), rng.uniform(10, H - 11, 200)]
    hm = _udp_targets(joints)
    mm, authors = _refine(dark_udp_mmpose_refine, hm)[0], _refine(dark_udp_refine, hm)[0]
    np.testing.assert_allclose(mm, _reference_mmpose(hm, 11)[0], atol=1e-5, rtol=0)
    inward = np.where(left, 1.0, -1.0)
    assert (inward * (mm[:, 0] - joints[:, 0]) > 0).all()
    assert (inward * (authors[:, 0] - joints[:, 0]) < 0).all()
    assert np.abs(mm[:, 0] - authors[:, 0]).min() > 0.05  # opposite signs: >= the authors' error, 0.086 at 4 px
    # y is 10 px or more inside: the forms agree on it
    np.testing.assert_allclose(mm[:, 1], authors[:, 1], atol=1e-5, rtol=0)


def test_one_joint_next_to_the_border_by_hand():
    """A joint at x = 1.3 (argmax x = 1): MMPose's form gives 1.72 (inward by 0.42), the authors' 0.04 (outward by
    1.26), both as the reference computes them; y = 30.2, far from the border, is recovered by both."""
    hm = _udp_targets(np.array([[1.3, 30.2]]))
    mm, authors = _refine(dark_udp_mmpose_refine, hm)[0, 0], _refine(dark_udp_refine, hm)[0, 0]
    np.testing.assert_allclose(mm, _reference_mmpose(hm, 11)[0, 0], atol=1e-5)
    assert 1.6 < mm[0] < 1.8 and authors[0] < 0.1 and abs(mm[1] - 30.2) < 1e-3 and abs(authors[1] - 30.2) < 1e-3


def test_codec_option_and_its_protocol_line(tiny_cfg_path):
    base = ["CODEC.UDP", "True", "TEST.SHIFT_HEATMAP", "False", "TEST.POST_PROCESS", "False"]
    mm_cfg = load_config(tiny_cfg_path, base + ["CODEC.DECODER", "dark_udp_mmpose"])
    authors_cfg = load_config(tiny_cfg_path, base + ["CODEC.DECODER", "dark"])
    mm_codec, authors_codec = build_codec(mm_cfg), build_codec(authors_cfg)
    assert (mm_codec.refinement, authors_codec.refinement) == ("dark_udp_mmpose", "dark_udp")
    assert mm_codec.use_udp and not mm_codec.flip_shift  # everything but the refinement as the authors' UDP
    mm_line, mm_fields = describe_run_protocol(mm_cfg, mm_codec, True, "")
    authors_line, authors_fields = describe_run_protocol(authors_cfg, authors_codec, True, "")
    assert REFINEMENT_TEXT["dark_udp_mmpose"] in mm_line and "MMPose 1.x" in mm_line
    assert REFINEMENT_TEXT["dark_udp"] in authors_line and "UDP authors'" in authors_line
    assert (mm_fields["refinement"], authors_fields["refinement"]) == ("dark_udp_mmpose", "dark_udp")

    # decode = argmax, MMPose's step, then the UDP inverse warp
    w, h = (int(v) for v in mm_cfg.MODEL.HEATMAP_SIZE)
    rng = np.random.default_rng(9)
    joints = np.c_[rng.uniform(0, w - 1, 6), rng.uniform(0, h - 1, 6)]
    hm = np.stack([_udp_targets(joints[:3], w, h)[0], _udp_targets(joints[3:], w, h)[0]])
    center, scale = np.array([[120.0, 90.0], [60.0, 200.0]]), np.array([[1.2, 1.6], [0.6, 0.8]])
    preds, maxvals = mm_codec.decode(hm, center, scale)
    coords, _ = get_max_preds(hm)
    expected = mm_codec.to_image(dark_udp_mmpose_refine(hm, coords, 11), center, scale, (h, w))
    np.testing.assert_array_equal(preds, expected)
    assert np.abs(preds - authors_codec.decode(hm, center, scale)[0]).max() > 0.1  # the near-border joints


def test_mmpose_form_without_udp_is_a_config_error(tiny_cfg_path):
    with pytest.raises(ValueError, match=r"CODEC\.DECODER is 'dark_udp_mmpose'.*CODEC\.UDP is False"):
        build_codec(load_config(tiny_cfg_path, ["CODEC.DECODER", "dark_udp_mmpose"]))
    with pytest.raises(ValueError, match="needs use_udp"):
        HeatmapCodec((48, 64), (12, 16), 2.0, decoder="dark_udp_mmpose")
