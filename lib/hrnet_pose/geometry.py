"""Pure-numpy box and affine geometry shared by data loading, decoding and inference.

Conventions (those of the official HRNet, `lib/utils/transforms.py` and `lib/dataset/coco.py`):
- a person box is described by `center` (x, y) in image pixels and `scale` (w, h) / 200 ("pixel_std");
- `get_affine_transform` maps the box to an output of `output_size` (w, h), rotating by `rot` degrees; only
  `scale[0]` sets the zoom (the official pipeline always fixes the box aspect to the input aspect);
- UDP (Huang et al., CVPR 2020, "The Devil is in the Details") is the unbiased variant that maps pixel centres
  `(size - 1)` to `(size - 1)`; it is used only when asked for.
"""

from typing import Optional, Sequence, Tuple, Union

import cv2
import numpy as np

PIXEL_STD = 200.0
ArrayLike = Union[np.ndarray, Sequence[float]]


def box_to_center_scale(
    box: ArrayLike, aspect_ratio: float, padding: float = 1.25, pixel_std: float = PIXEL_STD
) -> Tuple[np.ndarray, np.ndarray]:
    """Official `_xywh2cs`: xywh box -> (center [2] float32, scale [2] float32).

    The box is widened or heightened to `aspect_ratio` (= w / h of the network input), divided by `pixel_std`
    and enlarged by `padding` (only when the box is valid, i.e. its centre x is not -1, as the official code does).
    """
    x, y, w, h = (float(v) for v in box[:4])
    center = np.array([x + w * 0.5, y + h * 0.5], dtype=np.float32)
    if w > aspect_ratio * h:
        h = w * 1.0 / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    scale = np.array([w * 1.0 / pixel_std, h * 1.0 / pixel_std], dtype=np.float32)
    if center[0] != -1:
        scale = scale * padding
    return center, scale


def boxes_to_center_scale(
    boxes: np.ndarray, aspect_ratio: float, padding: float = 1.25, pixel_std: float = PIXEL_STD
) -> Tuple[np.ndarray, np.ndarray]:
    """Vectorised `box_to_center_scale` for [N, 4] xywh boxes -> ([N, 2], [N, 2]) float32."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w, h = boxes[:, 2].copy(), boxes[:, 3].copy()
    center = np.stack([boxes[:, 0] + w * 0.5, boxes[:, 1] + h * 0.5], axis=1).astype(np.float32)
    wide = w > aspect_ratio * h
    tall = w < aspect_ratio * h
    h = np.where(wide, w / aspect_ratio, h)
    w = np.where(tall, h * aspect_ratio, w)
    scale = (np.stack([w, h], axis=1) / pixel_std).astype(np.float32)
    valid = center[:, 0] != -1
    scale[valid] = scale[valid] * np.float32(padding)
    return center, scale


def _as_float_array(value: ArrayLike) -> np.ndarray:
    arr = np.asarray(value)
    return arr if np.issubdtype(arr.dtype, np.floating) else arr.astype(np.float64)


def _rotate_point(point: np.ndarray, rot_rad: float) -> np.ndarray:
    sn, cs = np.sin(rot_rad), np.cos(rot_rad)
    return np.array([point[0] * cs - point[1] * sn, point[0] * sn + point[1] * cs])


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    direct = a - b
    return b + np.array([-direct[1], direct[0]], dtype=np.float32)


def get_affine_transform(
    center: ArrayLike,
    scale: ArrayLike,
    rot: float,
    output_size: ArrayLike,
    shift: ArrayLike = (0.0, 0.0),
    inv: bool = False,
) -> np.ndarray:
    """Official affine matrix [2, 3] (float64) from the box (center, scale*200, rot degrees) to `output_size` (w, h).

    Three point pairs are built in float32 and handed to `cv2.getAffineTransform`, exactly as the official code
    does, so the result carries the same float32 rounding. `inv=True` gives the map from output back to image.
    """
    # Keep the caller's float dtype: the official code computes `scale * 200` and `center + scale * shift` in
    # float32 when given float32 arrays, and that rounding shows in the matrix (up to 7e-5 px otherwise).
    scale = _as_float_array(scale)
    if scale.ndim == 0:
        scale = np.array([scale, scale])
    scale_tmp = scale * PIXEL_STD
    shift = np.asarray(shift) if isinstance(shift, np.ndarray) else np.asarray(shift, dtype=np.float32)
    src_w = scale_tmp[0]
    dst_w, dst_h = float(output_size[0]), float(output_size[1])

    rot_rad = np.pi * rot / 180
    src_dir = _rotate_point(np.array([0.0, src_w * -0.5]), rot_rad)
    dst_dir = np.array([0, dst_w * -0.5], np.float32)

    center = _as_float_array(center)
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0, :] = center + scale_tmp * shift
    src[1, :] = center + src_dir + scale_tmp * shift
    dst[0, :] = [dst_w * 0.5, dst_h * 0.5]
    dst[1, :] = np.array([dst_w * 0.5, dst_h * 0.5]) + dst_dir
    src[2:, :] = _third_point(src[0, :], src[1, :])
    dst[2:, :] = _third_point(dst[0, :], dst[1, :])

    if inv:
        return cv2.getAffineTransform(np.float32(dst), np.float32(src))
    return cv2.getAffineTransform(np.float32(src), np.float32(dst))


def get_warp_matrix_udp(
    center: ArrayLike, scale: ArrayLike, rot: float, output_size: ArrayLike, inv: bool = False
) -> np.ndarray:
    """UDP affine matrix [2, 3] (Huang et al. 2020): maps the box's pixel extent so that pixel centres align.

    The input box spans `scale * 200` pixels; the output spans `output_size - 1` pixel steps. Rotation is about the
    box centre, in degrees, with the same sign convention as `get_affine_transform`.
    """
    center = np.asarray(center, dtype=np.float64)
    size_src = np.asarray(scale, dtype=np.float64) * PIXEL_STD
    size_dst = np.asarray(output_size, dtype=np.float64) - 1.0
    theta = np.deg2rad(rot)
    sx, sy = size_dst[0] / size_src[0], size_dst[1] / size_src[1]
    cs, sn = np.cos(theta), np.sin(theta)
    # forward map: translate centre to origin, rotate by -rot (as the official src_dir rotation implies), scale,
    # translate to the output centre
    mat = np.zeros((2, 3), dtype=np.float64)
    mat[0, 0] = cs * sx
    mat[0, 1] = sn * sx
    mat[1, 0] = -sn * sy
    mat[1, 1] = cs * sy
    mat[:, 2] = 0.5 * size_dst - mat[:, :2] @ center
    if inv:
        return cv2.invertAffineTransform(mat)
    return mat


def affine_transform(points: np.ndarray, mat: np.ndarray) -> np.ndarray:
    """Apply a [2, 3] affine matrix to points [..., 2]; returns float64 points of the same shape."""
    points = np.asarray(points, dtype=np.float64)
    return points @ mat[:, :2].T + mat[:, 2]


def transform_preds(
    coords: np.ndarray, center: ArrayLike, scale: ArrayLike, output_size: ArrayLike, use_udp: bool = False
) -> np.ndarray:
    """Official `transform_preds`: heatmap coords [K, 2] -> image coords [K, 2] (float64)."""
    if use_udp:
        mat = get_warp_matrix_udp(center, scale, 0, output_size, inv=True)
    else:
        mat = get_affine_transform(center, scale, 0, output_size, inv=True)
    return affine_transform(np.asarray(coords)[..., :2], mat)


def fliplr_joints(
    joints: np.ndarray, joints_vis: np.ndarray, width: int, flip_pairs: Sequence[Tuple[int, int]]
) -> Tuple[np.ndarray, np.ndarray]:
    """Official `fliplr_joints`: mirror x (`width - x - 1`), swap left/right pairs, multiply by visibility."""
    joints = np.array(joints, copy=True)
    joints_vis = np.array(joints_vis, copy=True)
    joints[:, 0] = width - joints[:, 0] - 1
    for a, b in flip_pairs:
        joints[[a, b], :] = joints[[b, a], :]
        joints_vis[[a, b], :] = joints_vis[[b, a], :]
    return joints * joints_vis, joints_vis


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """Boxes [..., 4] x1, y1, x2, y2 -> COCO's x, y, w, h with w = x2 - x1 (the cleaned-box convention of the
    datasets, so `xywh_to_xyxy` gives the same corners back)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    return np.concatenate([boxes[..., :2], boxes[..., 2:] - boxes[..., :2]], axis=-1)


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """COCO boxes [..., 4] x, y, w, h -> x1, y1, x2 = x + w, y2 = y + h (inverse of `xyxy_to_xywh`)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    return np.concatenate([boxes[..., :2], boxes[..., :2] + boxes[..., 2:]], axis=-1)


def invalid_box(boxes: np.ndarray) -> Optional[Tuple[int, str]]:
    """The first box [N, 4] x1, y1, x2, y2 that no crop can be made of, as (index, reason), or None: the one rule of
    the estimator's boxes and of every detector's output (finite, x2 > x1 and y2 > y1)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    bad = ~np.isfinite(boxes).all(axis=1)
    if bad.any():
        return int(np.flatnonzero(bad)[0]), "is not finite (NaN or inf)"
    flat = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    if flat.any():
        return int(np.flatnonzero(flat)[0]), "has zero or negative area (x2 <= x1 or y2 <= y1)"
    return None
