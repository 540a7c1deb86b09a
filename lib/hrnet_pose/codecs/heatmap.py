"""Gaussian heatmap codec: joints -> training targets, and heatmaps -> keypoints in image coordinates.

Encoding is the official HRNet `JointsDataset.generate_target` (Sun et al., CVPR 2019): an unnormalised gaussian
(peak 1, window 6*sigma+1) centred on the integer heatmap pixel `int(x / stride + 0.5)`. With `use_udp` it is the
unbiased encoding of UDP (Huang et al., CVPR 2020, "The Devil is in the Details"): stride `(image - 1) / (heatmap - 1)`
and a gaussian centred on the exact sub-pixel location.

Decoding is the official `get_final_preds`: argmax, the +-0.25 "quarter offset" towards the higher neighbour (with the
official border rules), then the inverse crop affine that uses only `scale[0]`; or DARK (Zhang et al., CVPR 2020,
"Distribution-Aware Coordinate Representation"): blur, log, second-order Taylor expansion at the argmax.

Shapes: `encode(joints [K,3], joints_vis [K,3] or [K]) -> (target [K,h,w] float32, target_weight [K,1] float32)`;
`decode(heatmaps [N,K,h,w], center [N,2], scale [N,2]) -> (preds [N,K,2] float32, maxvals [N,K,1] float32)`.
"""

import logging
from typing import Optional, Sequence, Tuple

import numpy as np

from .. import geometry

logger = logging.getLogger(__name__)

DECODERS = ("default", "dark")


def _to_numpy(heatmaps) -> np.ndarray:
    if hasattr(heatmaps, "detach"):  # torch tensor, without importing torch here
        heatmaps = heatmaps.detach().cpu().float().numpy()
    heatmaps = np.asarray(heatmaps)
    if heatmaps.ndim != 4:
        raise ValueError(f"heatmaps must be [N, K, H, W], got shape {heatmaps.shape}")
    return heatmaps


def get_max_preds(heatmaps) -> Tuple[np.ndarray, np.ndarray]:
    """Official `get_max_preds`: integer argmax (x, y) [N,K,2] float32 and the max [N,K,1] float32.

    The first maximum in row-major order wins; coordinates are zeroed where the max is <= 0.
    """
    heatmaps = _to_numpy(heatmaps)
    n, k, _, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, -1)
    idx = np.argmax(flat, axis=2)
    maxvals = np.take_along_axis(flat, idx[..., None], axis=2).astype(np.float32)
    coords = np.stack([idx % w, idx // w], axis=-1).astype(np.float32)
    coords *= (maxvals > 0.0).astype(np.float32)
    return coords, maxvals


def quarter_offset(heatmaps: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Official post-processing: move each argmax 0.25 px towards the higher neighbour, per axis.

    Only peaks with `1 < px < W-1 and 1 < py < H-1` move (strict on the low side: a peak at 1 stays), one condition
    for both axes; the sign of the neighbour difference is used, so a tie gives no shift. Returns float32 coords.
    """
    n, k, h, w = heatmaps.shape
    px = np.floor(coords[..., 0] + 0.5).astype(np.int64)
    py = np.floor(coords[..., 1] + 0.5).astype(np.int64)
    inside = (px > 1) & (px < w - 1) & (py > 1) & (py < h - 1)
    # clip only to index safely; rows outside `inside` are discarded below
    cx, cy = np.clip(px, 1, w - 2), np.clip(py, 1, h - 2)
    ni, ki = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")
    dx = heatmaps[ni, ki, cy, cx + 1] - heatmaps[ni, ki, cy, cx - 1]
    dy = heatmaps[ni, ki, cy + 1, cx] - heatmaps[ni, ki, cy - 1, cx]
    offset = np.stack([np.sign(dx), np.sign(dy)], axis=-1) * 0.25
    out = coords.copy()
    out += np.where(inside[..., None], offset, 0.0).astype(np.float32)
    return out


def _gaussian_kernel_1d(ksize: int) -> np.ndarray:
    # OpenCV's sigma for sigma=0 (cv2.getGaussianKernel), so a kernel size means what it means in DARK/mmpose
    sigma = 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8
    x = np.arange(ksize, dtype=np.float64) - (ksize - 1) / 2
    kern = np.exp(-(x ** 2) / (2 * sigma ** 2))
    return kern / kern.sum()


def _blur(heatmaps: np.ndarray, ksize: int) -> np.ndarray:
    """Separable gaussian blur with zero padding, vectorised over [N,K]; keeps each map's original maximum."""
    kern = _gaussian_kernel_1d(ksize)
    r = ksize // 2
    h, w = heatmaps.shape[-2:]
    padded = np.pad(heatmaps.astype(np.float64), ((0, 0), (0, 0), (r, r), (r, r)))
    tmp = sum(kern[i] * padded[..., :, i:i + w] for i in range(ksize))
    out = sum(kern[i] * tmp[..., i:i + h, :] for i in range(ksize))
    orig_max = heatmaps.reshape(*heatmaps.shape[:2], -1).max(-1)
    new_max = out.reshape(*out.shape[:2], -1).max(-1)
    ratio = np.where(new_max > 0, orig_max / np.where(new_max > 0, new_max, 1.0), 1.0)
    return out * ratio[..., None, None]


def dark_refine(heatmaps: np.ndarray, coords: np.ndarray, blur_kernel: int = 11) -> np.ndarray:
    """DARK sub-pixel refinement of integer argmax coords [N,K,2] -> float32 [N,K,2].

    offset = -H^-1 g of the log heatmap at the argmax (finite differences, edge-replicated border). The refinement is
    skipped where the Hessian is not negative definite (not a maximum) or the offset exceeds one pixel.
    """
    n, k, h, w = heatmaps.shape
    logh = np.log(np.clip(_blur(heatmaps, blur_kernel), 1e-3, 50.0))
    logh = np.pad(logh, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    x = coords[..., 0].astype(np.int64) + 1
    y = coords[..., 1].astype(np.int64) + 1
    ni, ki = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")

    def at(dy: int, dx: int) -> np.ndarray:
        return logh[ni, ki, y + dy, x + dx]

    c = at(0, 0)
    gx = 0.5 * (at(0, 1) - at(0, -1))
    gy = 0.5 * (at(1, 0) - at(-1, 0))
    dxx = at(0, 1) - 2 * c + at(0, -1)
    dyy = at(1, 0) - 2 * c + at(-1, 0)
    dxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
    det = dxx * dyy - dxy ** 2
    ok = (det > 1e-12) & (dxx < 0)
    safe = np.where(ok, det, 1.0)
    # inverse of [[dxx, dxy], [dxy, dyy]] applied to the gradient
    ox = -(dyy * gx - dxy * gy) / safe
    oy = -(-dxy * gx + dxx * gy) / safe
    ok &= (np.abs(ox) <= 1.0) & (np.abs(oy) <= 1.0)
    offset = np.stack([np.where(ok, ox, 0.0), np.where(ok, oy, 0.0)], axis=-1)
    return (coords + offset).astype(np.float32)


class HeatmapCodec:
    """Encode joints into gaussian heatmaps and decode heatmaps back to image keypoints (see module docstring).

    `post_process` (the quarter offset) applies to the default decoder only; DARK replaces it. With `use_udp` both
    the encoding stride and the map back to the image (`geometry.get_warp_matrix_udp`) are the UDP ones.
    """

    def __init__(
        self,
        image_size: Sequence[int],
        heatmap_size: Sequence[int],
        sigma: float,
        use_udp: bool = False,
        decoder: str = "default",
        post_process: bool = True,
        dark_blur_kernel: int = 11,
        joints_weight: Optional[np.ndarray] = None,
        use_different_joints_weight: bool = False,
    ) -> None:
        if len(image_size) != 2 or len(heatmap_size) != 2:
            raise ValueError(f"image_size and heatmap_size must be (w, h), got {image_size} and {heatmap_size}")
        if decoder not in DECODERS:
            raise ValueError(f"unknown decoder {decoder!r}; valid: {list(DECODERS)}")
        if sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        if dark_blur_kernel < 1 or dark_blur_kernel % 2 == 0:
            raise ValueError(f"dark_blur_kernel must be a positive odd integer, got {dark_blur_kernel}")
        if use_different_joints_weight and joints_weight is None:
            raise ValueError("use_different_joints_weight=True needs joints_weight (one weight per keypoint)")
        self.image_size = np.asarray(image_size, dtype=np.int64)
        self.heatmap_size = np.asarray(heatmap_size, dtype=np.int64)
        self.sigma = float(sigma)
        self.use_udp = bool(use_udp)
        self.decoder = decoder
        self.post_process = bool(post_process)
        self.dark_blur_kernel = int(dark_blur_kernel)
        self.joints_weight = None if joints_weight is None else np.asarray(joints_weight, np.float32).reshape(-1, 1)
        self.use_different_joints_weight = bool(use_different_joints_weight)

    def __repr__(self) -> str:
        return (f"HeatmapCodec(image_size={self.image_size.tolist()}, heatmap_size={self.heatmap_size.tolist()}, "
                f"sigma={self.sigma}, use_udp={self.use_udp}, decoder={self.decoder!r}, "
                f"post_process={self.post_process})")

    # ------------------------------------------------------------------ encode
    def encode(self, joints: np.ndarray, joints_vis: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Joints [K,3] (or [K,2]) in crop pixels + visibility [K,3] or [K] -> target [K,h,w], weight [K,1]."""
        joints = np.asarray(joints, dtype=np.float64)
        vis = np.asarray(joints_vis, dtype=np.float64)
        vis = vis[:, 0] if vis.ndim == 2 else vis
        if joints.ndim != 2 or joints.shape[1] < 2 or vis.shape != (joints.shape[0],):
            raise ValueError(f"joints must be [K,2|3] and joints_vis [K] or [K,3]; got {joints.shape}, "
                             f"{np.shape(joints_vis)}")
        w, h = int(self.heatmap_size[0]), int(self.heatmap_size[1])
        tmp_size = self.sigma * 3
        size = 2 * tmp_size + 1
        if self.use_udp:
            stride = (self.image_size - 1.0) / (self.heatmap_size - 1.0)
        else:
            stride = self.image_size / self.heatmap_size
        mu_f = joints[:, :2] / stride  # exact sub-pixel centre (used by UDP)
        # int() truncates toward zero, as the official code does (x = -3 px at stride 4 -> mu 0)
        mu = np.trunc(mu_f + 0.5).astype(np.int64)
        ul = np.trunc(mu - tmp_size).astype(np.int64)
        br = np.trunc(mu + tmp_size + 1).astype(np.int64)
        outside = (ul[:, 0] >= w) | (ul[:, 1] >= h) | (br[:, 0] < 0) | (br[:, 1] < 0)
        weight = np.where(outside, 0.0, vis).astype(np.float32)

        # the official window: pixel X gets g[X - ul] for ul <= X < br, g centred at index size // 2
        x0 = np.full(len(joints), size // 2, dtype=np.float64)
        y0 = x0.copy()
        if self.use_udp:
            x0 = x0 + (mu_f[:, 0] - mu[:, 0])
            y0 = y0 + (mu_f[:, 1] - mu[:, 1])
        xs = np.arange(w)[None, :] - ul[:, :1]  # [K, w] index into g
        ys = np.arange(h)[None, :] - ul[:, 1:2]  # [K, h]
        gx = (xs.astype(np.float32) - x0[:, None].astype(np.float32)) ** 2
        gy = (ys.astype(np.float32) - y0[:, None].astype(np.float32)) ** 2
        in_x = (xs >= 0) & (np.arange(w)[None, :] < br[:, :1]) & (xs < size)
        in_y = (ys >= 0) & (np.arange(h)[None, :] < br[:, 1:2]) & (ys < size)
        g = np.exp(-(gy[:, :, None] + gx[:, None, :]) / np.float32(2 * self.sigma ** 2))
        mask = in_y[:, :, None] & in_x[:, None, :] & (weight > 0.5)[:, None, None]
        target = np.where(mask, g, 0.0).astype(np.float32)

        target_weight = weight.reshape(-1, 1)
        if self.use_different_joints_weight:
            if self.joints_weight.shape[0] != len(joints):
                raise ValueError(f"joints_weight has {self.joints_weight.shape[0]} entries for {len(joints)} joints")
            target_weight = target_weight * self.joints_weight
        return target, target_weight.astype(np.float32)

    # ------------------------------------------------------------------ decode
    def decode(self, heatmaps, center: np.ndarray, scale: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Heatmaps [N,K,h,w] (numpy or torch) + boxes -> (preds [N,K,2] image coords float32, maxvals [N,K,1])."""
        hm = _to_numpy(heatmaps)
        n = hm.shape[0]
        # dtypes are kept: float32 boxes give the official float32 rounding in the inverse affine
        center = np.asarray(center).reshape(-1, 2)
        scale = np.asarray(scale).reshape(-1, 2)
        if center.shape[0] != n or scale.shape[0] != n:
            raise ValueError(f"center {center.shape} and scale {scale.shape} must have one row per heatmap ({n})")
        coords, maxvals = get_max_preds(hm)
        if self.decoder == "dark":
            coords = dark_refine(hm, coords, self.dark_blur_kernel)
            # zero maps stay at (0, 0) as in the official decoder
            coords *= (maxvals > 0.0).astype(np.float32)
        elif self.post_process:
            coords = quarter_offset(hm, coords)
        return self.to_image(coords, center, scale, hm.shape[-2:]), maxvals

    def to_image(self, coords: np.ndarray, center: np.ndarray, scale: np.ndarray,
                 heatmap_hw: Optional[Tuple[int, int]] = None) -> np.ndarray:
        """Heatmap coords [N,K,2] -> image coords [N,K,2] float32 (official `transform_preds` per person)."""
        h, w = heatmap_hw if heatmap_hw is not None else (int(self.heatmap_size[1]), int(self.heatmap_size[0]))
        mats = np.stack([
            geometry.get_warp_matrix_udp(c, s, 0, (w, h), inv=True) if self.use_udp
            else geometry.get_affine_transform(c, s, 0, (w, h), inv=True)
            for c, s in zip(center, scale)
        ]) if len(center) else np.zeros((0, 2, 3))
        pts = coords.astype(np.float64)
        out = np.einsum("nkj,nij->nki", pts, mats[:, :, :2]) + mats[:, None, :, 2]
        return out.astype(np.float32)


def build_codec(cfg) -> HeatmapCodec:
    """HeatmapCodec from MODEL.{IMAGE_SIZE,HEATMAP_SIZE,SIGMA,TARGET_TYPE}, CODEC.*, TEST.POST_PROCESS and
    LOSS.USE_DIFFERENT_JOINTS_WEIGHT (weights from DATASET.KEYPOINT_SET)."""
    from ..keypoints import get_keypoint_set

    if cfg.MODEL.TARGET_TYPE != "gaussian":
        raise ValueError(f"MODEL.TARGET_TYPE {cfg.MODEL.TARGET_TYPE!r} is not supported; only 'gaussian' is "
                         "(as in the official code)")
    kset = get_keypoint_set(cfg.DATASET.KEYPOINT_SET)
    return HeatmapCodec(
        image_size=tuple(cfg.MODEL.IMAGE_SIZE),
        heatmap_size=tuple(cfg.MODEL.HEATMAP_SIZE),
        sigma=cfg.MODEL.SIGMA,
        use_udp=cfg.CODEC.UDP,
        decoder=cfg.CODEC.DECODER,
        post_process=cfg.TEST.POST_PROCESS,
        dark_blur_kernel=cfg.CODEC.DARK_BLUR_KERNEL,
        joints_weight=kset.weights(),
        use_different_joints_weight=cfg.LOSS.USE_DIFFERENT_JOINTS_WEIGHT,
    )
