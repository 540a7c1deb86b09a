"""MPII Human Pose (Andriluka et al., CVPR 2014) for top-down HRNet, in the official HRNet annotation format.

Layout (the official `data/mpii`, its json annotations converted from the MATLAB release):
    root/annot/<image_set>.json    [{"image": "015601864.jpg", "center": [x, y], "scale": s,
                                     "joints": [[x, y] x 16], "joints_vis": [0/1 x 16]}, ...]  (1-based pixels)
    root/annot/gt_<image_set>.mat  ground truth with head boxes for the PCKh evaluation (evaluation.mpii): keys
                                   dataset_joints (1x16 names), jnt_missing [16, N], pos_gt_src [16, 2, N] and
                                   headboxes_src [2, 2, N] (top-left, bottom-right); written by `write_gt_mat`
    root/images/<image>
The test split has no "joints"; its persons get zero joints.

Each entry is one person; as in the official `MPIIDataset._get_db`, the box is the annotated centre moved down by
15 x scale pixels and scale x 1.25 (both only when centre x is not -1, the official "no box" marker), square
(scale, scale) in units of 200 px, then centre and joints go from 1-based to 0-based. The box is not fitted to the
input's aspect (the official inputs are square). Samples keep the json's order, which is the order of
gt_<image_set>.mat: the evaluator matches predictions to ground truth by sample index.

`dataset[i]` is what `CocoKeypoints` gives (the same crop, augmentation, codec and meta): input [3, H, W] float32,
target [16, h, w], target_weight [16, 1], meta with image, image_id (index of the image name in order of first
appearance), center, scale, rotation, score (1), joints, joints_vis (crop pixels) and index.
"""

import json
import logging
import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..errors import UserError
from ..fileio import atomic_write
from ..keypoints import MPII16, MPII_MAT_NAMES
from .coco import CocoKeypoints, describe_layout
from .transforms import AugmentationConfig

logger = logging.getLogger(__name__)

CENTER_SHIFT = 15.0  # official: the annotated centre is moved down by 15 x scale pixels
SCALE_PADDING = 1.25  # official: the annotated scale is enlarged by this


NUM_JOINTS = MPII16.num_keypoints


class MpiiAnnotationError(UserError, ValueError):
    """An MPII annotation json is missing or one of its entries is malformed."""


def write_gt_mat(path: str, joints: np.ndarray, missing: np.ndarray, headboxes: np.ndarray) -> None:
    """Write a gt_<set>.mat in the official layout (module docstring) from per-person arrays, atomically: joints
    [N, 16, 2] and headboxes [N, 2, 2] ((x1, y1), (x2, y2)) in 1-based pixels, missing [N, 16] bool.
    `evaluation.mpii.load_gt_mat` reads it back, as the official evaluation reads the released file."""
    import scipy.io

    names = np.empty((1, NUM_JOINTS), dtype=object)
    names[0, :] = list(MPII_MAT_NAMES)
    mat = {"dataset_joints": names, "jnt_missing": np.asarray(missing, dtype=np.float64).T,
           "pos_gt_src": np.transpose(np.asarray(joints, dtype=np.float64), (1, 2, 0)),
           "headboxes_src": np.transpose(np.asarray(headboxes, dtype=np.float64), (1, 2, 0))}
    atomic_write(path, lambda f: scipy.io.savemat(f, mat), binary=True)


def mpii_layout_help(root: str, image_set: str) -> str:
    """The expected MPII folder tree."""
    return describe_layout(root, [f"annot/{image_set}.json   (official HRNet MPII annotations)",
                                  f"annot/gt_{image_set}.mat (ground truth with head boxes, for PCKh; not for the "
                                  "test split)", "images/<image from the json, e.g. 015601864.jpg>"],
                           "README.md, section MPII")


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and bool(np.isfinite(v))


def _check_entry(entry: Any, index: int, path: str, num_joints: int, with_joints: bool) -> None:
    where = f"{path}: entry {index}"
    if not isinstance(entry, dict):
        raise MpiiAnnotationError(f"{where} is {type(entry).__name__}, expected an object with image, center, scale"
                                  + (", joints, joints_vis" if with_joints else ""))
    if not isinstance(entry.get("image"), str) or not entry["image"]:
        raise MpiiAnnotationError(f"{where} has no 'image' file name")
    center = entry.get("center")
    if not isinstance(center, (list, tuple)) or len(center) != 2 or not all(_number(v) for v in center):
        raise MpiiAnnotationError(f"{where} has 'center' {center!r}; expected [x, y], 2 finite numbers")
    if not _number(entry.get("scale")) or entry["scale"] <= 0:
        raise MpiiAnnotationError(f"{where} has 'scale' {entry.get('scale')!r}; expected a positive number (person "
                                  "height / 200 px)")
    if not with_joints:
        return
    joints = np.asarray(entry.get("joints", []), dtype=object)
    if joints.shape != (num_joints, 2) or not all(_number(v) for v in joints.ravel()):
        raise MpiiAnnotationError(f"{where} has 'joints' of shape {joints.shape}; expected {num_joints} [x, y] pairs "
                                  "of finite numbers")
    vis = entry.get("joints_vis")
    if not isinstance(vis, (list, tuple)) or len(vis) != num_joints or not all(_number(v) for v in vis):
        raise MpiiAnnotationError(f"{where} has 'joints_vis' {vis!r}; expected {num_joints} numbers (0 or 1)")


def load_mpii_annotations(path: str, num_joints: int, with_joints: bool) -> List[Dict[str, Any]]:
    """Read and check an official MPII json (list of person entries)."""
    try:
        with open(path) as f:
            entries = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise MpiiAnnotationError(f"{path}: not a json file ({err})") from None
    if not isinstance(entries, list):
        raise MpiiAnnotationError(f"{path}: expected a json list of person entries, got {type(entries).__name__}")
    for i, entry in enumerate(entries):
        # the test split has no joints at all; a labelled split must have them in every entry
        _check_entry(entry, i, path, num_joints, with_joints)
    return entries


def mpii_center_scale(center: Sequence[float], scale: float) -> tuple:
    """Official box of one MPII entry -> (center [2] float64 0-based, scale [2] float64), see the module docstring."""
    c = np.array(center, dtype=np.float64)
    s = np.array([scale, scale], dtype=np.float64)
    if c[0] != -1:
        c[1] = c[1] + CENTER_SHIFT * s[1]
        s = s * SCALE_PADDING
    return c - 1, s


class MpiiKeypoints(CocoKeypoints):
    """MPII persons, cropped and encoded exactly as `CocoKeypoints` crops and encodes COCO persons."""

    def __init__(self, root: str, image_set: str, is_train: bool, image_size: Sequence[int], codec: Any = None,
                 keypoint_set: Any = MPII16, transform_cfg: Optional[AugmentationConfig] = None, color_rgb: bool = True,
                 skip_bad_images: bool = True, fast_decode: bool = False, ann_file: Optional[str] = None,
                 image_dir: Optional[str] = None):
        # the attributes CocoKeypoints.prepare / __getitem__ read; the COCO loading itself is not used
        self._init_sampling(root, image_set, is_train, image_size, codec, keypoint_set, transform_cfg, color_rgb,
                            skip_bad_images, fast_decode)
        if self.num_joints != NUM_JOINTS:
            raise MpiiAnnotationError(f"the MPII dataset has 16 joints but the keypoint set '{self.keypoint_set.name}' "
                                      f"has {self.num_joints}: use DATASET.KEYPOINT_SET '' or 'mpii'")
        self.use_gt_bbox = True  # MPII evaluation always uses the annotated boxes (there is no detector file)
        self.bbox_file = ""
        self.coco = None  # no image sizes in MPII annotations: fast decoding reads each image's size from the file
        self.image_cache = None
        self.ann_file = ann_file or os.path.join(root, "annot", f"{image_set}.json")
        self.image_dir = image_dir or os.path.join(root, "images")
        self.gt_file = os.path.join(os.path.dirname(self.ann_file), f"gt_{image_set}.mat")
        self.has_labels = "test" not in image_set  # official: a test split carries no joints and no ground truth
        if not os.path.isfile(self.ann_file):
            raise FileNotFoundError(f"annotation file not found: {self.ann_file}\n{mpii_layout_help(root, image_set)}")
        if not os.path.isdir(self.image_dir):
            raise FileNotFoundError(f"image folder not found: {self.image_dir}\n{mpii_layout_help(root, image_set)}")
        self.db = self._load_db()
        logger.info("%s %s: %d persons from %s", type(self).__name__, image_set, len(self.db), self.ann_file)

    def _load_db(self) -> List[Dict[str, Any]]:
        k = self.num_joints
        entries = load_mpii_annotations(self.ann_file, k, with_joints=self.has_labels)
        image_ids: Dict[str, int] = {}
        db = []
        for entry in entries:
            center, scale = mpii_center_scale(entry["center"], entry["scale"])
            joints_3d = np.zeros((k, 3), dtype=np.float64)
            joints_3d_vis = np.zeros((k, 3), dtype=np.float64)
            if self.has_labels:
                joints_3d[:, :2] = np.asarray(entry["joints"], dtype=np.float64) - 1
                vis = np.asarray(entry["joints_vis"], dtype=np.float64)
                joints_3d_vis[:, 0] = vis
                joints_3d_vis[:, 1] = vis
            image_id = image_ids.setdefault(entry["image"], len(image_ids))
            db.append({
                "image": os.path.join(self.image_dir, entry["image"]), "image_id": image_id, "center": center,
                "scale": scale, "joints_3d": joints_3d, "joints_3d_vis": joints_3d_vis, "score": 1.0,
            })
        return db
