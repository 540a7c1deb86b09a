"""Fast sample preparation (DATASET.FAST_DECODE): reduced-size JPEG decoding folded into the crop's affine warp.

The official pipeline decodes the whole image at full resolution and warps the person box into the network input
(Sun et al., CVPR 2019). When the box's footprint in the image is at least f = 2, 4 or 8 times the network input,
the warp downsamples anyway, so the image can be decoded at 1/f size directly in the JPEG DCT domain (libjpeg's
scaled IDCT, OpenCV's IMREAD_REDUCED_COLOR_f), several times faster than a full decode. The crop matrix is rewritten
for the reduced image instead of resizing anything: reduced pixel i covers original pixels [f*i, f*i + f), so its
centre is f*i + (f - 1) / 2, and with the image -> crop matrix [A | t] the reduced image -> crop matrix is
[f*A | t + A @ ((f - 1) / 2, (f - 1) / 2)]; the crop stays geometrically exact up to interpolation. The training
mirror is folded into the matrix too (x -> W - 1 - x), so a flipped sample no longer copies the whole image.

With DATASET.IMAGE_CACHE_DIR set (`datasets.image_cache`) the image comes decoded at full size from the cache and
no reduced decoding is done: the crop is then the plain path's up to the folded mirror's interpolation.

Three exact savings come with it: the BGR -> RGB conversion is done on the crop, not on the whole image; evaluation
datasets (not training, whose order is random) keep the last decoded image, so the persons of one image, which come
one after the other, decode it once; and `to_normalized_tensor_fast` normalises through a per-channel lookup table
computed with the same float32 operations as `transforms.normalize_crops` (equal values, without three passes over
the crop in float).

Random draws are those of the plain path in the same order (`transforms.random_geometry_params`), so a seeded run
sees the same augmentations; joints, targets and meta are identical, only the crop pixels differ (decoded at a lower
resolution, then interpolated). Non-JPEG files and boxes smaller than twice the input are decoded at full size.
EXIF orientation is ignored as in the official reader. Output: the dict of `CocoKeypoints.prepare` (crop uint8
[H, W, 3], joints [K, 3], joints_vis [K, 3], center, scale, rotation, trans) plus `decode_factor`.
"""

import logging
import os
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from ..geometry import PIXEL_STD
from .image_io import image_read_error, read_image_reduced
from .transforms import (IMAGENET_MEAN, IMAGENET_STD, crop_matrix, random_geometry_params, transform_joints,
                         warp_crop)

logger = logging.getLogger(__name__)

JPEG_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif")


def reduction_factor(scale: np.ndarray, image_size: Sequence[int], max_factor: int = 8) -> int:
    """The largest f in (8, 4, 2) with the box's footprint (scale * 200 px) at least f x the input size, else 1."""
    ratio = min(float(scale[0]) * PIXEL_STD / image_size[0], float(scale[1]) * PIXEL_STD / image_size[1])
    for f in (8, 4, 2):
        if f <= max_factor and ratio >= f:
            return f
    return 1


def fold_reduction(trans: np.ndarray, factor: int) -> np.ndarray:
    """Image -> crop matrix [2, 3] -> the matrix for the image decoded at 1/`factor` (pixel centres f*i + (f-1)/2)."""
    a, t = trans[:, :2], trans[:, 2]
    offset = (factor - 1) / 2.0
    return np.concatenate([a * factor, (t + a @ np.array([offset, offset]))[:, None]], axis=1)


def fold_flip(trans: np.ndarray, width: int) -> np.ndarray:
    """Mirrored-image -> crop matrix [2, 3] -> the matrix for the unmirrored image (x_mirrored = W - 1 - x)."""
    a, t = trans[:, :2], trans[:, 2]
    return np.stack([-a[:, 0], a[:, 1], t + a[:, 0] * (width - 1)], axis=1)


# value v of channel c -> normalised float32, by the very operations of `normalize_crops`; [3, 256]
_NORM_LUT = np.ascontiguousarray(((np.arange(256, dtype=np.float32)[:, None] / 255.0 - IMAGENET_MEAN)
                                  / IMAGENET_STD).T)


def to_normalized_tensor_fast(crop: np.ndarray) -> torch.Tensor:
    """uint8 [H, W, 3] -> float32 tensor [3, H, W], equal to `transforms.to_normalized_tensor` (table lookup)."""
    crop = np.asarray(crop)
    if crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3:
        raise ValueError(f"expected a uint8 crop [H, W, 3], got {crop.dtype} {crop.shape}")
    out = np.empty((3,) + crop.shape[:2], dtype=np.float32)
    for c, plane in enumerate(cv2.split(crop)):  # contiguous planes make the gather several times faster
        np.take(_NORM_LUT[c], plane, out=out[c])
    return torch.from_numpy(out)


def _expected_reduced(width: int, height: int, factor: int) -> Tuple[int, int]:
    return -(-int(width) // factor), -(-int(height) // factor)


@dataclass
class _SampleGeometry:
    """A sample's joints [K, 3], visibility [K, 3] and crop parameters after the training draws, as
    `CocoKeypoints.prepare` has them; `flipped`: the sample is mirrored about the image's width."""

    joints: np.ndarray
    joints_vis: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    rotation: float
    flipped: bool

    @classmethod
    def draw(cls, ds: Any, rec: Dict[str, Any], width: int) -> "_SampleGeometry":
        """The record's geometry, with the plain path's random draws in its order when `ds` is a training set."""
        joints, joints_vis = rec["joints_3d"].copy(), rec["joints_3d_vis"].copy()
        center, scale, rot, flipped = rec["center"].copy(), rec["scale"].copy(), 0.0, False
        if ds.is_train:
            joints, joints_vis, center, scale, rot, flipped = random_geometry_params(
                joints, joints_vis, center, scale, ds.transform_cfg, ds.keypoint_set.flip_pairs,
                ds.keypoint_set.upper_body_ids, ds.aspect_ratio, width)
        return cls(joints, joints_vis, center, scale, rot, flipped)

    def move_mirror(self, shift: int) -> None:
        """The mirror was drawn about a width `shift` px off the real one: move the centre and labelled joints."""
        self.center[0] += shift
        self.joints[:, 0] = np.where(self.joints_vis[:, 0] > 0, self.joints[:, 0] + shift, self.joints[:, 0])


def _read_for_box(ds: Any, path: str, geom: _SampleGeometry, width: int,
                  height: int) -> Tuple[Optional[np.ndarray], int, int]:
    """(BGR image or None, the factor it was decoded at, the image's full width): a JPEG at the reduction the box
    allows; when the file's size is not the annotation's (width, height), decoded in full and the mirror moved to
    the real width."""
    jpeg = os.path.splitext(path)[1].lower() in JPEG_EXTENSIONS
    image, factor = _read(ds, path, reduction_factor(geom.scale, ds.image_size) if jpeg else 1)
    if image is None or (image.shape[1], image.shape[0]) == _expected_reduced(width, height, factor):
        return image, factor, width
    logger.warning("%s is %dx%d at 1/%d, not %dx%d as its annotation says: decoding it in full", path,
                   image.shape[1], image.shape[0], factor, width, height)
    ds._fast_decode_cache = None
    image, _ = _read(ds, path, 1)
    if image is None:
        return None, 1, width
    if geom.flipped:
        geom.move_mirror(image.shape[1] - width)
    return image, 1, image.shape[1]


def prepare_fast(ds: Any, index: int) -> Optional[Dict[str, Any]]:
    """`CocoKeypoints.prepare` with reduced decoding and the mirror folded into the warp (see module docstring)."""
    rec = ds.db[index]
    path = rec["image"]
    info = ds.coco.imgs.get(rec["image_id"], {}) if getattr(ds, "coco", None) is not None else {}
    width, height = info.get("width"), info.get("height")
    image, factor = None, 1
    if not width or not height:  # no size in the annotation: decode in full first to know it
        image, _ = _read(ds, path, 1)
        if image is None:
            return None
        height, width = image.shape[:2]
    geom = _SampleGeometry.draw(ds, rec, int(width))
    if image is None:
        image, factor, width = _read_for_box(ds, path, geom, int(width), int(height))
        if image is None:
            return None
    trans = crop_matrix(geom.center, geom.scale, geom.rotation, ds.image_size, ds.use_udp)
    warp = fold_flip(trans, int(width)) if geom.flipped else trans
    if factor > 1:
        warp = fold_reduction(warp, factor)
    crop = warp_crop(image, warp, ds.image_size)
    if ds.color_rgb:  # the warp interpolates channels alike: converting the crop equals converting the image
        crop = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
    if ds.photometric is not None:
        crop = ds.photometric(crop)
    return {
        "crop": crop, "joints": transform_joints(geom.joints, geom.joints_vis, trans), "joints_vis": geom.joints_vis,
        "center": geom.center, "scale": geom.scale, "rotation": geom.rotation, "trans": trans,
        "decode_factor": factor,
    }


def _read(ds: Any, path: str, factor: int) -> Tuple[Optional[np.ndarray], int]:
    """(BGR image, the factor it was decoded at): from the one-image cache of an evaluation dataset when it holds this
    file at `factor` or finer, else decoded; an unreadable file is handled as `CocoKeypoints.prepare` does (None in
    training with skip_bad_images, else ImageReadError)."""
    cached = getattr(ds, "_fast_decode_cache", None)
    if cached is not None and cached[0] == path and cached[1] <= factor:
        return cached[2], cached[1]
    image_cache = getattr(ds, "image_cache", None)
    if image_cache is not None:  # decoded once at full size (DATASET.IMAGE_CACHE_DIR): no reduced decoding needed
        factor = 1
        image = image_cache.read(path)
    else:
        image = read_image_reduced(path, factor)
    if image is not None:
        if not ds.is_train:  # samples of one image are consecutive only in evaluation order
            ds._fast_decode_cache = (path, factor, image)
        return image, factor
    ds.skip_unreadable(image_read_error(path))  # raises unless the dataset skips unreadable training images
    return None, factor
