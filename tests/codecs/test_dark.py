"""DARK and DARK-UDP refinement as their authors released them: per-peak references written from the papers'
releases with OpenCV, sub-pixel accuracy inside the map, the border rules, and what the blur does at the border."""

import cv2
import numpy as np
import pytest

from hrnet_pose.codecs.dark import dark_refine, dark_udp_refine, gaussian_blur
from hrnet_pose.codecs.heatmap import HeatmapCodec, get_max_preds

H, W, SIGMA = 64, 48, 2.0


def _gaussians(centres: np.ndarray, h: int = H, w: int = W, sigma: float = SIGMA) -> np.ndarray:
    """[1, K, h, w] float32 whole-map gaussians (peak 1 at the sub-pixel centre) for centres [K, 2] (x, y)."""
    ys, xs = np.mgrid[0:h, 0:w]
    d2 = (xs[None] - centres[:, :1, None]) ** 2 + (ys[None] - centres[:, 1:, None]) ** 2
    return np.exp(-d2 / (2 * sigma ** 2))[None].astype(np.float32)


def _refine(fn, hm, k=11):
    coords, _ = get_max_preds(hm)
    return fn(hm, coords, k), coords


def _random_maps(seed: int, n: int = 3, k: int = 17) -> np.ndarray:
    """Smooth positive maps with one or two bumps anywhere (borders included) plus noise, and one all-zero map."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, k, H, W), np.float32)
    for i in range(n):
        for j in range(k):
            c = np.c_[rng.uniform(-1, W, 2), rng.uniform(-1, H, 2)]
            g = _gaussians(c, sigma=rng.uniform(1.5, 3))[0]
            out[i, j] = g[0] + rng.uniform(0, 0.8) * g[1] + rng.uniform(0, 0.02, (H, W))
    out[0, 3] = 0.0
    return out


def _reference_dark(hm: np.ndarray, k: int) -> np.ndarray:
    """DarkPose's steps one map at a time: zero-pad by the radius, cv2.GaussianBlur, crop, rescale to the old max,
    log(max(., 1e-10)), Newton step with the 2-pixel Hessian diagonal for 1 < x < W-2, 1 < y < H-2."""
    coords, _ = get_max_preds(hm)
    out = coords.astype(np.float64).copy()
    r = (k - 1) // 2
    for n in range(hm.shape[0]):
        for j in range(hm.shape[1]):
            padded = np.zeros((H + 2 * r, W + 2 * r))
            padded[r:-r, r:-r] = hm[n, j]
            blurred = cv2.GaussianBlur(padded, (k, k), 0)[r:-r, r:-r]
            if blurred.max() > 0:
                blurred *= hm[n, j].max() / blurred.max()
            L = np.log(np.maximum(blurred, 1e-10))
            x, y = int(coords[n, j, 0]), int(coords[n, j, 1])
            if not (1 < x < W - 2 and 1 < y < H - 2):
                continue
            g = np.array([L[y, x + 1] - L[y, x - 1], L[y + 1, x] - L[y - 1, x]]) / 2
            dxx = (L[y, x + 2] - 2 * L[y, x] + L[y, x - 2]) / 4
            dyy = (L[y + 2, x] - 2 * L[y, x] + L[y - 2, x]) / 4
            dxy = (L[y + 1, x + 1] - L[y - 1, x + 1] - L[y + 1, x - 1] + L[y - 1, x - 1]) / 4
            hess = np.array([[dxx, dxy], [dxy, dyy]])
            if np.linalg.det(hess) != 0:
                out[n, j] -= np.linalg.solve(hess, g)
    return out


def _reference_dark_udp(hm: np.ndarray, k: int) -> np.ndarray:
    """The UDP authors' steps one map at a time: cv2.GaussianBlur with its default (mirrored) border, no rescaling,
    log(clip(., 1e-3, 50)), edge padding, 1-pixel differences, 7-point mixed term, (H + eps I)^-1 everywhere."""
    coords, _ = get_max_preds(hm)
    out = coords.astype(np.float64).copy()
    eps = np.finfo(np.float32).eps
    for n in range(hm.shape[0]):
        for j in range(hm.shape[1]):
            L = np.log(np.clip(cv2.GaussianBlur(hm[n, j].astype(np.float64), (k, k), 0), 1e-3, 50))
            P = np.pad(L, 1, mode="edge")
            x, y = int(coords[n, j, 0]) + 1, int(coords[n, j, 1]) + 1
            c, r_, l_, d_, u_ = P[y, x], P[y, x + 1], P[y, x - 1], P[y + 1, x], P[y - 1, x]
            g = np.array([r_ - l_, d_ - u_]) / 2
            dxy = 0.5 * (P[y + 1, x + 1] - r_ - d_ + 2 * c - l_ - u_ + P[y - 1, x - 1])
            hess = np.array([[r_ - 2 * c + l_, dxy], [dxy, d_ - 2 * c + u_]]) + eps * np.eye(2)
            out[n, j] -= np.linalg.solve(hess, g)
    return out


@pytest.mark.parametrize("k", [11, 7, 17])
def test_dark_matches_a_per_peak_reference_of_the_release(k):
    hm = _random_maps(seed=k)
    refined, _ = _refine(dark_refine, hm, k)
    np.testing.assert_allclose(refined, _reference_dark(hm, k), atol=1e-5, rtol=0)


@pytest.mark.parametrize("k", [11, 7])
def test_dark_udp_matches_a_per_peak_reference_of_the_release(k):
    hm = _random_maps(seed=100 + k)
    refined, _ = _refine(dark_udp_refine, hm, k)
    np.testing.assert_allclose(refined, _reference_dark_udp(hm, k), atol=1e-5, rtol=0)
    # the two forms differ: reusing the plain DARK step under UDP (the old behaviour) gives other coordinates
    assert np.abs(refined - _refine(dark_refine, hm, k)[0]).max() > 0.05


def test_blur_is_opencv_gaussian_blur():
    m = np.random.default_rng(0).random((1, 2, H, W)).astype(np.float32)
    for k in (3, 7, 11):
        ref = np.stack([cv2.GaussianBlur(m[0, j].astype(np.float64), (k, k), 0) for j in range(2)])
        np.testing.assert_allclose(gaussian_blur(m, k, "reflect")[0], ref, atol=1e-12)
        r = k // 2
        padded = [np.pad(m[0, j].astype(np.float64), r) for j in range(2)]
        ref0 = np.stack([cv2.GaussianBlur(p, (k, k), 0)[r:-r, r:-r] for p in padded])
        np.testing.assert_allclose(gaussian_blur(m, k, "zero")[0], ref0, atol=1e-12)
    with pytest.raises(ValueError, match="border"):
        gaussian_blur(m, 3, "wrap")


def test_dark_recovers_gaussian_centres_at_least_4px_inside_within_001():
    rng = np.random.default_rng(2)
    centres = np.c_[rng.uniform(4, W - 5, 400), rng.uniform(4, H - 5, 400)]
    refined, coords = _refine(dark_refine, _gaussians(centres))
    assert np.abs(refined[0] - centres).max() < 0.01
    assert np.abs(coords[0] - centres).max() > 0.45  # the argmax alone is half a pixel off


def test_dark_error_between_2_and_4px_from_the_border_is_the_zero_padding():
    """Measured (sigma 2, kernel 11): max error 0.21 px at 2-2.5 px from the border, 0.11 at 2.5-3, 0.05 at 3-3.5,
    0.021 at 3.5-3.9, below 0.01 from 3.9 px on. The blur reads zeros beyond the border where the gaussian still
    has mass, so the blurred peak leans inward; with the gaussian's true values there the step is exact."""
    rng = np.random.default_rng(3)
    d = rng.uniform(2, 4, 300)
    left = rng.random(300) < 0.5
    centres = np.c_[np.where(left, d, W - 1 - d), rng.uniform(10, H - 11, 300)]
    refined, _ = _refine(dark_refine, _gaussians(centres))
    err = refined[0, :, 0] - centres[:, 0]
    inward = np.where(left, err, -err)
    assert inward.min() > 0.0  # always pushed away from the border
    assert np.abs(err).max() < 0.22 and np.abs(err[d >= 3]).max() < 0.06 and np.abs(err).max() > 0.05
    # the same gaussians on a canvas that holds their values beyond the old border decode exactly
    pad = 10
    wide = _gaussians(centres + [pad, 0], h=H, w=W + 2 * pad)
    refined_wide, _ = _refine(dark_refine, wide)
    assert np.abs(refined_wide[0, :, 0] - pad - centres[:, 0]).max() < 0.001


def test_dark_keeps_the_integer_argmax_on_or_next_to_the_border():
    # argmax on x or y = 0, 1, size-2, size-1 (centres 0.3 px towards the inside), the other axis inside, and corners
    xs = [0.3, 1.3, W - 2.3, W - 1.3]
    ys = [0.3, 1.3, H - 2.3, H - 1.3]
    centres = np.array([[x, 30.2] for x in xs] + [[20.4, y] for y in ys] + [[x, y] for x, y in zip(xs, ys)])
    refined, coords = _refine(dark_refine, _gaussians(centres))
    np.testing.assert_array_equal(coords[0], np.floor(centres + 0.5))
    np.testing.assert_array_equal(refined, coords)  # no refinement where the 2-pixel stencil does not fit
    # two pixels in, the step is taken
    moved, start = _refine(dark_refine, _gaussians(np.array([[2.3, 30.2], [W - 3.3, 30.2], [20.4, 2.3]])))
    assert (np.abs(moved - start)[0].max(axis=1) > 0.1).all()


def _udp_targets(joints_hm: np.ndarray, w: int = W, h: int = H) -> np.ndarray:
    """UDP targets [1, K, h, w] for joints in heatmap pixels (a codec whose image is its heatmap: stride 1)."""
    codec = HeatmapCodec((w, h), (w, h), SIGMA, use_udp=True)
    target, weight = codec.encode(np.c_[joints_hm, np.zeros(len(joints_hm))], np.ones(len(joints_hm)))
    assert (weight == 1).all()
    return target[None]


def test_dark_udp_is_exact_when_the_blur_stays_inside_the_map():
    """With kernel 11 the step reads blurred pixels argmax +- 1, i.e. heatmap pixels up to argmax +- 6: from 5.5 px
    inside the border (argmax >= 6) nothing comes from the border and UDP targets decode to 1e-4 px."""
    rng = np.random.default_rng(4)
    j = np.c_[rng.uniform(5.5, W - 6.5, 400), rng.uniform(5.5, H - 6.5, 400)]
    refined, _ = _refine(dark_udp_refine, _udp_targets(j))
    assert np.abs(refined[0] - j).max() < 1e-3


def test_dark_udp_near_the_border_reads_the_mirror_image():
    """Measured (sigma 2, kernel 11, UDP targets): max error 1.0 px at 0-1 px from the border, 1.44 at 1-2, 1.28 at
    2-3, 0.48 at 3-4, 0.084 at 4-5, 0.007 at 5-5.5. The mirrored border (cv2's default) folds the gaussian back into
    the map and the edge-padded log has a one-sided curvature at the last pixel; on a canvas that holds the target
    beyond the old border the same joints decode exactly."""
    rng = np.random.default_rng(5)
    d = rng.uniform(0, 5.5, 170)
    left = rng.random(170) < 0.5
    j = np.c_[np.where(left, d, W - 1 - d), rng.uniform(10, H - 11, 170)]
    refined, _ = _refine(dark_udp_refine, _udp_targets(j))
    err = np.abs(refined[0, :, 0] - j[:, 0])
    assert err.max() > 1.0 and err[d >= 4].max() < 0.1 and err[d >= 5].max() < 0.01
    pad = 8
    refined_wide, _ = _refine(dark_udp_refine, _udp_targets(j + [pad, 0], w=W + 2 * pad))
    assert np.abs(refined_wide[0, :, 0] - pad - j[:, 0]).max() < 1e-3
