"""Gaussian heatmap codec: joints -> training targets, heatmaps -> keypoints in image coordinates, and the flip-test
alignment and sub-pixel refinement that belong to each coordinate convention.

Encoding
- default: the official HRNet `JointsDataset.generate_target` (Sun et al., CVPR 2019): an unnormalised gaussian
  (peak 1, window 6*sigma+1) centred on the integer heatmap pixel `int(x / stride + 0.5)`, stride image/heatmap.
- `unbiased_encoding` (DARK, Zhang et al., CVPR 2020; ilovepose/DarkPose `generate_target`): the gaussian is centred
  on the exact sub-pixel location `x / stride` and covers the whole map; a joint whose 3-sigma window misses the map
  gets weight 0.
- `use_udp` (UDP, Huang et al., CVPR 2020, "The Devil is in the Details"): stride `(image - 1) / (heatmap - 1)` and
  the official window around `int(mu + 0.5)` holding a gaussian centred on the exact sub-pixel location.

Decoding: integer argmax, then one refinement, then the inverse crop affine (official: `scale[0]` only; UDP: its
own warp, `geometry.get_warp_matrix_udp`):
- `quarter_offset` (official `get_final_preds`, TEST.POST_PROCESS): +-0.25 towards the higher neighbour;
- `dark` (DarkPose): `codecs.dark.dark_refine`; `dark_udp` (the UDP authors' DARK): `codecs.dark.dark_udp_refine`;
  `dark_udp_mmpose` (MMPose 1.x's `UDPHeatmap.decode`, zero-border blur rescaled to each map's maximum):
  `codecs.dark.dark_udp_mmpose_refine`;
- `quarter_offset_mmpose` (CODEC.DECODER 'mmpose': MMPose 1.x's `MSRAHeatmap.decode`, `refine_keypoints`): the same
  +-0.25 step with MMPose's border rule, per axis (x moves when `1 < x < W-1`, y when `1 < y < H-1`; the official
  rule moves neither unless both hold), and a map whose maximum is not positive gives the location (-1, -1) (the
  official decoder: (0, 0)). What MMPose-trained checkpoints (the COCO-WholeBody zoo entries) are reported with;
- `none`: the argmax alone.
Under UDP the quarter offset is never added (the UDP authors do not; their coordinates are unbiased already), so
`decoder="default"` is the argmax and `decoder="dark"` is their DARK form. (In their HRNet-based release
TEST.POST_PROCESS switches that DARK step on; here CODEC.DECODER alone chooses the refinement.) `decoder=
"dark_udp_mmpose"` (UDP only) is MMPose 1.x's form of that step, the one MMPose 1.x UDP checkpoints are reported with.

Flip test: the official code shifts flipped-back heatmaps one column right (TEST.SHIFT_HEATMAP) because its flip
`x -> W-1-x` lands 0.75 heatmap px off at stride 4 (x/4 -> W/4 - 1/4 - x/4). Under UDP the mirror is exact in
heatmap space (`x -> w-1-x`), so `flip_shift` is False whatever TEST.SHIFT_HEATMAP says. Every flip-test caller uses
`codec.flip_shift`.

Heatmaps are decoded in float32 whatever dtype they come in (a bf16/fp16 forward included); the refinements compute
in float64. Shapes: `encode(joints [K,3], joints_vis [K,3] or [K]) -> (target [K,h,w] float32, target_weight [K,1]
float32)`; `decode(heatmaps [N,K,h,w], center [N,2], scale [N,2]) -> (preds [N,K,2] float32, maxvals [N,K,1] float32)`.
"""

import logging
from typing import Optional, Sequence, Tuple

import numpy as np

from .. import geometry
from ..config.defaults import default
from ..errors import ConfigError
from .dark import dark_refine, dark_udp_mmpose_refine, dark_udp_refine

logger = logging.getLogger(__name__)

DECODERS = ("default", "dark", "dark_udp_mmpose", "mmpose")

# machine names (metrics.json) -> the words of the protocol line
REFINEMENT_TEXT = {
    "quarter_offset": "argmax + quarter offset",
    "none": "argmax only",
    "dark": "DARK (argmax + Taylor step, DarkPose)",
    "dark_udp": "DARK-UDP, UDP authors' form (argmax + Taylor step in UDP coordinates; mirrored-border blur)",
    "dark_udp_mmpose": "DARK-UDP, MMPose 1.x form (argmax + Taylor step in UDP coordinates; zero-border blur "
                       "rescaled to each map's maximum)",
    "quarter_offset_mmpose": "argmax + quarter offset, MMPose 1.x form (border rule per axis)",
}
FLIP_ALIGNMENT_TEXT = {
    "shift": "shifted 1 heatmap px right (SHIFT_HEATMAP)",
    "none": "not shifted",
    "udp_exact": "exact (UDP), not shifted",
}

_logged_once: set = set()


def _log_once(key: str, msg: str, *args) -> None:
    # codecs are built several times per run (train set, val set, API); say it once per process
    if key not in _logged_once:
        _logged_once.add(key)
        logger.info(msg, *args)


def _to_numpy(heatmaps) -> np.ndarray:
    """Heatmaps (numpy or torch, any float dtype) -> float32 numpy [N,K,H,W]."""
    if hasattr(heatmaps, "detach"):  # torch tensor, without importing torch here
        heatmaps = heatmaps.detach().cpu().float().numpy()
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
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


def quarter_offset_mmpose(heatmaps: np.ndarray, coords: np.ndarray, maxvals: np.ndarray) -> np.ndarray:
    """MMPose 1.x's `refine_keypoints` after its `get_heatmap_maximum`: maps whose maximum is not positive sit at
    (-1, -1); x moves 0.25 px towards the higher neighbour when `1 < x < W-1 and 0 < y`, y when `1 < y < H-1 and
    0 < x`, each on its own (the sign of the difference; a tie gives no shift). Returns float32 coords."""
    n, k, h, w = heatmaps.shape
    out = np.where(maxvals > 0.0, coords, -1.0).astype(np.float32)
    px, py = out[..., 0].astype(np.int64), out[..., 1].astype(np.int64)
    cx, cy = np.clip(px, 1, w - 2), np.clip(py, 1, h - 2)
    ni, ki = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")
    dx = np.where((px > 1) & (px < w - 1) & (py > 0), heatmaps[ni, ki, np.clip(py, 0, h - 1), cx + 1]
                  - heatmaps[ni, ki, np.clip(py, 0, h - 1), cx - 1], 0.0)
    dy = np.where((py > 1) & (py < h - 1) & (px > 0), heatmaps[ni, ki, cy + 1, np.clip(px, 0, w - 1)]
                  - heatmaps[ni, ki, cy - 1, np.clip(px, 0, w - 1)], 0.0)
    out += (np.stack([np.sign(dx), np.sign(dy)], axis=-1) * 0.25).astype(np.float32)
    return out


class HeatmapCodec:
    """Encode joints into gaussian heatmaps and decode heatmaps back to image keypoints (see module docstring).

    `post_process` (the quarter offset) applies to the default decoder without UDP only; DARK replaces it and UDP
    never adds it. `shift_heatmap` is the configured TEST.SHIFT_HEATMAP; `flip_shift` is what the flip test applies.
    Defaults are the config's (`get_cfg()`), so `build_codec(get_cfg())` and a codec built with the same sizes agree.
    """

    def __init__(
        self,
        image_size: Sequence[int],
        heatmap_size: Sequence[int],
        sigma: float,
        use_udp: bool = default("CODEC.UDP"),
        decoder: str = default("CODEC.DECODER"),
        post_process: bool = default("TEST.POST_PROCESS"),
        dark_blur_kernel: int = default("CODEC.DARK_BLUR_KERNEL"),
        joints_weight: Optional[np.ndarray] = None,
        use_different_joints_weight: bool = default("LOSS.USE_DIFFERENT_JOINTS_WEIGHT"),
        shift_heatmap: bool = default("TEST.SHIFT_HEATMAP"),
        unbiased_encoding: bool = default("CODEC.UNBIASED_ENCODING"),
    ) -> None:
        if len(image_size) != 2 or len(heatmap_size) != 2:
            raise ValueError(f"image_size and heatmap_size must be (w, h), got {image_size} and {heatmap_size}")
        if decoder not in DECODERS:
            raise ConfigError(f"CODEC.DECODER (decoder) is {decoder!r}; valid: {list(DECODERS)}")
        if sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        if dark_blur_kernel < 1 or dark_blur_kernel % 2 == 0:
            raise ValueError(f"dark_blur_kernel must be a positive odd integer, got {dark_blur_kernel}")
        if use_different_joints_weight and joints_weight is None:
            raise ValueError("use_different_joints_weight=True needs joints_weight (one weight per keypoint)")
        if decoder == "mmpose" and use_udp:
            raise ConfigError("decoder 'mmpose' (CODEC.DECODER) is MMPose 1.x's MSRAHeatmap decoding, without UDP; "
                             "with CODEC.UDP use 'dark_udp_mmpose'")
        if decoder == "dark_udp_mmpose" and not use_udp:
            raise ConfigError("decoder 'dark_udp_mmpose' (CODEC.DECODER) is MMPose 1.x's UDP refinement and needs "
                             "use_udp (CODEC.UDP True); without UDP use 'dark'")
        if unbiased_encoding and use_udp:
            raise ConfigError("unbiased_encoding (CODEC.UNBIASED_ENCODING, DARK's encoding with stride image/heatmap) "
                             "and use_udp (CODEC.UDP, whose own encoding is already sub-pixel, with stride "
                             "(image-1)/(heatmap-1)) exclude each other: switch one of them off")
        self.image_size = np.asarray(image_size, dtype=np.int64)
        self.heatmap_size = np.asarray(heatmap_size, dtype=np.int64)
        self.sigma = float(sigma)
        self.use_udp = bool(use_udp)
        self.decoder = decoder
        self.post_process = bool(post_process)
        self.dark_blur_kernel = int(dark_blur_kernel)
        self.joints_weight = None if joints_weight is None else np.asarray(joints_weight, np.float32).reshape(-1, 1)
        self.use_different_joints_weight = bool(use_different_joints_weight)
        self.shift_heatmap = bool(shift_heatmap)
        self.unbiased_encoding = bool(unbiased_encoding)
        if self.use_udp and (self.shift_heatmap or (self.post_process and decoder == "default")):
            _log_once("udp_overrides",
                      "CODEC.UDP: the flip test is not shifted (TEST.SHIFT_HEATMAP %s ignored: the UDP flip is exact) "
                      "and no quarter offset is added (TEST.POST_PROCESS %s ignored), as in the UDP authors' release; "
                      "refinement: %s", self.shift_heatmap, self.post_process, REFINEMENT_TEXT[self.refinement])

    @property
    def flip_shift(self) -> bool:
        """Whether flip-test callers shift the flipped-back heatmaps one column right: never under UDP."""
        return self.shift_heatmap and not self.use_udp

    @property
    def flip_alignment(self) -> str:
        """How the flip test aligns the mirrored heatmaps: 'udp_exact', 'shift' or 'none' (FLIP_ALIGNMENT_TEXT)."""
        if self.use_udp:
            return "udp_exact"
        return "shift" if self.shift_heatmap else "none"

    @property
    def refinement(self) -> str:
        """The sub-pixel step `decode` applies: 'quarter_offset', 'dark', 'dark_udp', 'dark_udp_mmpose' or 'none'
        (REFINEMENT_TEXT)."""
        if self.decoder == "dark_udp_mmpose":
            return "dark_udp_mmpose"
        if self.decoder == "mmpose":
            return "quarter_offset_mmpose"
        if self.decoder == "dark":
            return "dark_udp" if self.use_udp else "dark"
        return "quarter_offset" if (self.post_process and not self.use_udp) else "none"

    def __repr__(self) -> str:
        return (f"HeatmapCodec(image_size={self.image_size.tolist()}, heatmap_size={self.heatmap_size.tolist()}, "
                f"sigma={self.sigma}, use_udp={self.use_udp}, decoder={self.decoder!r}, "
                f"post_process={self.post_process}, shift_heatmap={self.shift_heatmap}, "
                f"unbiased_encoding={self.unbiased_encoding})")

    # ------------------------------------------------------------------ encode
    def encode(self, joints: np.ndarray, joints_vis: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Joints [K,3] (or [K,2]) in crop pixels + visibility [K,3] or [K] -> target [K,h,w], weight [K,1]."""
        joints = np.asarray(joints, dtype=np.float64)
        vis = np.asarray(joints_vis, dtype=np.float64)
        vis = vis[:, 0] if vis.ndim == 2 else vis
        if joints.ndim != 2 or joints.shape[1] < 2 or vis.shape != (joints.shape[0],):
            raise ValueError(f"joints must be [K,2|3] and joints_vis [K] or [K,3]; got {joints.shape}, "
                             f"{np.shape(joints_vis)}")
        if self.unbiased_encoding:
            target, weight = self._encode_unbiased(joints, vis)
        else:
            target, weight = self._encode_windowed(joints, vis)
        target_weight = weight.reshape(-1, 1)
        if self.use_different_joints_weight:
            if self.joints_weight.shape[0] != len(joints):
                raise ValueError(f"joints_weight has {self.joints_weight.shape[0]} entries for {len(joints)} joints")
            target_weight = target_weight * self.joints_weight
        return target, target_weight.astype(np.float32)

    def _encode_windowed(self, joints: np.ndarray, vis: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """The official window (and UDP's sub-pixel centre inside it)."""
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
        # only the window is computed (index i into g at pixel ul + i), with the float32 operations of a whole-map
        # evaluation, so the values are those of the official loop; pixels outside the map or past br are dropped
        idx = np.arange(int(np.ceil(size)))
        gx = (idx[None, :].astype(np.float32) - x0[:, None].astype(np.float32)) ** 2  # [K, L]
        gy = (idx[None, :].astype(np.float32) - y0[:, None].astype(np.float32)) ** 2
        g = np.exp(-(gy[:, :, None] + gx[:, None, :]) / np.float32(2 * self.sigma ** 2))  # [K, L, L]
        px, py = ul[:, :1] + idx[None, :], ul[:, 1:2] + idx[None, :]  # [K, L] map pixels of the window
        in_x = (px >= 0) & (px < w) & (px < br[:, :1]) & (idx[None, :] < size)
        in_y = (py >= 0) & (py < h) & (py < br[:, 1:2]) & (idx[None, :] < size)
        mask = in_y[:, :, None] & in_x[:, None, :] & (weight > 0.5)[:, None, None]
        k, i, j = np.nonzero(mask)
        target = np.zeros((len(joints), h, w), dtype=np.float32)
        target[k, py[k, i], px[k, j]] = g[k, i, j]
        return target, weight

    def _encode_unbiased(self, joints: np.ndarray, vis: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """DARK: a whole-map gaussian centred on `joint / stride` (stride image/heatmap, as DarkPose's heatmap
        affine); weight 0 where the 3-sigma window `[int(mu - 3s), int(mu + 3s + 1))` misses the map."""
        w, h = int(self.heatmap_size[0]), int(self.heatmap_size[1])
        tmp_size = self.sigma * 3
        mu = joints[:, :2] / (self.image_size / self.heatmap_size)
        ul = np.trunc(mu - tmp_size)
        br = np.trunc(mu + tmp_size + 1)
        outside = (ul[:, 0] >= w) | (ul[:, 1] >= h) | (br[:, 0] < 0) | (br[:, 1] < 0)
        weight = np.where(outside, 0.0, vis).astype(np.float32)
        dx2 = (np.arange(w, dtype=np.float64)[None, :] - mu[:, :1]) ** 2  # [K, w]
        dy2 = (np.arange(h, dtype=np.float64)[None, :] - mu[:, 1:2]) ** 2  # [K, h]
        g = np.exp(-(dy2[:, :, None] + dx2[:, None, :]) / (2 * self.sigma ** 2))
        return np.where((weight > 0.5)[:, None, None], g, 0.0).astype(np.float32), weight

    # ------------------------------------------------------------------ decode
    def decode(self, heatmaps, center: np.ndarray, scale: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Heatmaps [N,K,h,w] (numpy or torch, any float dtype; decoded in float32) + boxes ->
        (preds [N,K,2] image coords float32, maxvals [N,K,1] float32)."""
        hm = _to_numpy(heatmaps)
        n = hm.shape[0]
        # dtypes are kept: float32 boxes give the official float32 rounding in the inverse affine
        center = np.asarray(center).reshape(-1, 2)
        scale = np.asarray(scale).reshape(-1, 2)
        if center.shape[0] != n or scale.shape[0] != n:
            raise ValueError(f"center {center.shape} and scale {scale.shape} must have one row per heatmap ({n})")
        coords, maxvals = get_max_preds(hm)
        refinement = self.refinement
        if refinement in ("dark", "dark_udp", "dark_udp_mmpose"):
            refine = {"dark": dark_refine, "dark_udp": dark_udp_refine,
                      "dark_udp_mmpose": dark_udp_mmpose_refine}[refinement]
            coords = refine(hm, coords, self.dark_blur_kernel)
            # zero maps stay at (0, 0) as in the official decoder
            coords *= (maxvals > 0.0).astype(np.float32)
        elif refinement == "quarter_offset":
            coords = quarter_offset(hm, coords)
        elif refinement == "quarter_offset_mmpose":
            coords = quarter_offset_mmpose(hm, coords, maxvals)
        return self.to_image(coords, center, scale, hm.shape[-2:]), maxvals

    def heatmap_to_image_matrices(self, center: np.ndarray, scale: np.ndarray,
                                  heatmap_hw: Optional[Tuple[int, int]] = None) -> np.ndarray:
        """[N, 2, 3] affine maps from heatmap pixels to image pixels: the inverse crop (UDP's when `use_udp`)."""
        h, w = heatmap_hw if heatmap_hw is not None else (int(self.heatmap_size[1]), int(self.heatmap_size[0]))
        inverse = geometry.get_warp_matrix_udp if self.use_udp else geometry.get_affine_transform
        if len(center) == 0:
            return np.zeros((0, 2, 3))
        return np.stack([inverse(c, s, 0, (w, h), inv=True) for c, s in zip(center, scale)])

    def to_image(self, coords: np.ndarray, center: np.ndarray, scale: np.ndarray,
                 heatmap_hw: Optional[Tuple[int, int]] = None) -> np.ndarray:
        """Heatmap coords [N,K,2] -> image coords [N,K,2] float32 (official `transform_preds` per person)."""
        mats = self.heatmap_to_image_matrices(center, scale, heatmap_hw)
        pts = coords.astype(np.float64)
        out = np.einsum("nkj,nij->nki", pts, mats[:, :, :2]) + mats[:, None, :, 2]
        return out.astype(np.float32)


def build_codec(cfg) -> HeatmapCodec:
    """HeatmapCodec from MODEL.{IMAGE_SIZE,HEATMAP_SIZE,SIGMA,TARGET_TYPE}, CODEC.*, TEST.{POST_PROCESS,
    SHIFT_HEATMAP} and LOSS.USE_DIFFERENT_JOINTS_WEIGHT (weights from DATASET.KEYPOINT_SET)."""
    from ..keypoints import get_keypoint_set

    if cfg.MODEL.TARGET_TYPE != "gaussian":
        raise ConfigError(f"MODEL.TARGET_TYPE {cfg.MODEL.TARGET_TYPE!r} is not supported; only 'gaussian' is "
                         "(as in the official code)")
    if cfg.CODEC.DECODER == "dark_udp_mmpose" and not cfg.CODEC.UDP:
        raise ConfigError("CODEC.DECODER is 'dark_udp_mmpose' (MMPose 1.x's UDP refinement) but CODEC.UDP is False; "
                         "set CODEC.UDP True, or use CODEC.DECODER 'dark' without UDP")
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
        shift_heatmap=cfg.TEST.SHIFT_HEATMAP,
        unbiased_encoding=cfg.CODEC.UNBIASED_ENCODING,
    )
