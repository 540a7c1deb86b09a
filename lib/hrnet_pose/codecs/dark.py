"""DARK sub-pixel refinement of heatmap maxima, in the two forms their authors released.

- `dark_refine`: DARK (Zhang et al., CVPR 2020, "Distribution-Aware Coordinate Representation for Human Pose
  Estimation"), as in ilovepose/DarkPose `get_final_preds`: blur each map with a gaussian kernel on a zero-padded
  border and rescale it to its original maximum, take `log(max(., 1e-10))`, then one Newton step
  `-H^-1 g` at the integer argmax. The gradient uses 1-pixel central differences, the Hessian's diagonal 2-pixel
  ones (`(L[x+2] - 2 L[x] + L[x-2]) / 4`) and its mixed term the 1-pixel diagonal stencil
  (`(L[y+1,x+1] - L[y-1,x+1] - L[y+1,x-1] + L[y-1,x-1]) / 4`). Only peaks with `1 < x < W-2` and `1 < y < H-2`
  (at least 2 px inside the border, so that the 2-pixel stencil fits) are refined; the others keep their integer
  argmax. A singular Hessian leaves the peak where it is.
- `dark_udp_refine`: DARK as the UDP authors combine it with UDP (Huang et al., CVPR 2020, "The Devil is in the
  Details"; their `post_dark_udp`, contributed to mmpose 0.x): blur with a mirrored border (OpenCV's default
  BORDER_REFLECT_101, no rescaling), `log(clip(., 1e-3, 50))`, edge-replicated padding of one pixel, then the
  Newton step with 1-pixel differences everywhere (the mixed term from the 7-point stencil along the (+1, +1)
  diagonal, which is not mirror-symmetric) and the Hessian regularised by float32 eps * I. Every peak is refined,
  border ones included. (Their earlier HRNet-based release, HuangJunJie2017/UDP-Pose, blurs with a fixed 7x7 kernel
  and min-max rescales the blurred map.)
- `dark_udp_mmpose_refine`: MMPose 1.x's `refine_keypoints_dark_udp` (what its `UDPHeatmap.decode` runs, so what the
  reported AP of MMPose 1.x UDP checkpoints comes from): the same Newton step as `dark_udp_refine`, but the blur is
  MMPose's `gaussian_blur`: the map is padded with zeros by the kernel radius before blurring (a zero border) and
  each blurred map is rescaled to the maximum it had before the blur, as `dark_refine` does. Near the border and
  wherever the log is clipped this gives other offsets than the UDP authors' form.

All three blur with `cv2.getGaussianKernel(ksize, 0)` (the kernel the authors' `cv2.GaussianBlur(..., 0)` uses: fixed
binomial taps up to 7, sigma = 0.3 * ((ksize - 1) / 2 - 1) + 0.8 above), separably and vectorised over all maps.

Shapes: heatmaps [N,K,h,w] float, coords [N,K,2] integer argmax (x, y) -> refined coords [N,K,2] float32.
"""

from typing import Tuple

import cv2
import numpy as np


def gaussian_kernel_1d(ksize: int) -> np.ndarray:
    """The 1-D kernel [ksize] float64 that `cv2.GaussianBlur(img, (ksize, ksize), 0)` applies along each axis."""
    if ksize < 1 or ksize % 2 == 0:
        raise ValueError(f"blur kernel size must be a positive odd integer, got {ksize}")
    return cv2.getGaussianKernel(int(ksize), 0, cv2.CV_64F).reshape(-1)


def gaussian_blur(heatmaps: np.ndarray, ksize: int, border: str = "zero") -> np.ndarray:
    """Separable gaussian blur of every map in [N,K,h,w] -> float64 [N,K,h,w].

    `border="zero"` treats the outside as 0 (DarkPose pads by the kernel radius with zeros before blurring);
    `border="reflect"` mirrors about the edge pixel without repeating it (OpenCV's BORDER_REFLECT_101, the default
    border of `cv2.GaussianBlur`, used by the UDP authors).
    """
    if border not in ("zero", "reflect"):
        raise ValueError(f"border must be 'zero' or 'reflect', got {border!r}")
    kern = gaussian_kernel_1d(ksize)
    r = ksize // 2
    h, w = heatmaps.shape[-2:]
    mode = "constant" if border == "zero" else "reflect"
    lead = [(0, 0)] * (heatmaps.ndim - 2)
    padded = np.pad(heatmaps.astype(np.float64), lead + [(0, 0), (r, r)], mode=mode)
    rows = sum(kern[i] * padded[..., :, i:i + w] for i in range(ksize))
    padded = np.pad(rows, lead + [(r, r), (0, 0)], mode=mode)
    return sum(kern[i] * padded[..., i:i + h, :] for i in range(ksize))


def _newton_offset(gx: np.ndarray, gy: np.ndarray, dxx: np.ndarray, dyy: np.ndarray,
                   dxy: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-H^-1 g for H = [[dxx, dxy], [dxy, dyy]] in closed form; (ox, oy, nonsingular mask)."""
    det = dxx * dyy - dxy ** 2
    ok = det != 0
    safe = np.where(ok, det, 1.0)
    ox = -(dyy * gx - dxy * gy) / safe
    oy = -(-dxy * gx + dxx * gy) / safe
    return np.where(ok, ox, 0.0), np.where(ok, oy, 0.0), ok


def blur_rescaled(heatmaps: np.ndarray, blur_kernel: int) -> np.ndarray:
    """Zero-border blur of [N,K,h,w], each map rescaled to the maximum it had before the blur -> float64 (DarkPose's
    and MMPose's modulation; an all-zero map stays zero)."""
    n, k = heatmaps.shape[:2]
    blurred = gaussian_blur(heatmaps, blur_kernel, border="zero")
    orig_max = heatmaps.reshape(n, k, -1).max(-1).astype(np.float64)
    new_max = blurred.reshape(n, k, -1).max(-1)
    ratio = np.divide(orig_max, new_max, out=np.ones_like(new_max), where=new_max != 0)
    return blurred * ratio[..., None, None]


def dark_refine(heatmaps: np.ndarray, coords: np.ndarray, blur_kernel: int = 11) -> np.ndarray:
    """DarkPose refinement of integer argmax coords [N,K,2] -> float32 [N,K,2] (rules in the module docstring)."""
    heatmaps = np.asarray(heatmaps)
    n, k, h, w = heatmaps.shape
    logh = np.log(np.maximum(blur_rescaled(heatmaps, blur_kernel), 1e-10))

    px = coords[..., 0].astype(np.int64)  # int() of the argmax, as the release
    py = coords[..., 1].astype(np.int64)
    inside = (px > 1) & (px < w - 2) & (py > 1) & (py < h - 2)
    # clipped only so that the gather below is in range; rows outside `inside` are discarded
    x, y = np.clip(px, 2, max(w - 3, 2)), np.clip(py, 2, max(h - 3, 2))
    ni, ki = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")

    def at(dy: int, dx: int) -> np.ndarray:
        return logh[ni, ki, np.clip(y + dy, 0, h - 1), np.clip(x + dx, 0, w - 1)]

    c = at(0, 0)
    gx = 0.5 * (at(0, 1) - at(0, -1))
    gy = 0.5 * (at(1, 0) - at(-1, 0))
    dxx = 0.25 * (at(0, 2) - 2 * c + at(0, -2))
    dyy = 0.25 * (at(2, 0) - 2 * c + at(-2, 0))
    dxy = 0.25 * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
    ox, oy, ok = _newton_offset(gx, gy, dxx, dyy, dxy)
    apply = inside & ok
    offset = np.stack([np.where(apply, ox, 0.0), np.where(apply, oy, 0.0)], axis=-1)
    return (coords.astype(np.float64) + offset).astype(np.float32)


def dark_udp_refine(heatmaps: np.ndarray, coords: np.ndarray, blur_kernel: int = 11) -> np.ndarray:
    """UDP authors' DARK step on integer argmax coords [N,K,2] -> float32 [N,K,2] (module docstring)."""
    heatmaps = np.asarray(heatmaps)
    return _udp_newton_step(gaussian_blur(heatmaps, blur_kernel, border="reflect"), coords)


def dark_udp_mmpose_refine(heatmaps: np.ndarray, coords: np.ndarray, blur_kernel: int = 11) -> np.ndarray:
    """MMPose 1.x's DARK-UDP step (`refine_keypoints_dark_udp` with its `gaussian_blur`) on integer argmax coords
    [N,K,2] -> float32 [N,K,2] (module docstring)."""
    return _udp_newton_step(blur_rescaled(np.asarray(heatmaps), blur_kernel), coords)


def _udp_newton_step(blurred: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """The UDP form of the Taylor step on blurred maps [N,K,h,w]: log of the clipped map, edge padding, 1-pixel
    differences, Hessian + eps * I (module docstring)."""
    n, k = blurred.shape[:2]
    logh = np.log(np.clip(blurred, 1e-3, 50.0))
    logh = np.pad(logh, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    x = coords[..., 0].astype(np.int64) + 1
    y = coords[..., 1].astype(np.int64) + 1
    ni, ki = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")

    def at(dy: int, dx: int) -> np.ndarray:
        return logh[ni, ki, y + dy, x + dx]

    c = at(0, 0)
    right, left, down, up = at(0, 1), at(0, -1), at(1, 0), at(-1, 0)
    gx = 0.5 * (right - left)
    gy = 0.5 * (down - up)
    dxx = right - 2 * c + left
    dyy = down - 2 * c + up
    dxy = 0.5 * (at(1, 1) - right - down + 2 * c - left - up + at(-1, -1))
    eps = float(np.finfo(np.float32).eps)
    ox, oy, _ = _newton_offset(gx, gy, dxx + eps, dyy + eps, dxy)
    return (coords.astype(np.float64) + np.stack([ox, oy], axis=-1)).astype(np.float32)
