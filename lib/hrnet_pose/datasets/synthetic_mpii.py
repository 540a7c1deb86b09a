"""A synthetic MPII-format dataset: the stick figures of `datasets.synthetic`, labelled with the 16 MPII joints.

For the MPII quickstart and end-to-end tests without the real MPII download. The figures, backgrounds and occluders
are those of the synthetic COCO set (`synthetic._render_image`); the MPII joints come from the same figure: ankles,
knees, hips, wrists, elbows and shoulders are the COCO ones, pelvis and thorax the midpoints of the hips and of the
shoulders, upper neck and head top the two points where the neck's line crosses the drawn head circle. The head box
of the PCKh ground truth is the square around that circle.

Output, in the official HRNet MPII layout (`datasets.mpii`; coordinates 1-based as in the MATLAB release):
    out_dir/annot/{train,valid}.json   [{"image", "center", "scale", "joints" [16][2], "joints_vis" [16]}, ...]
    out_dir/annot/gt_valid.mat         dataset_joints, jnt_missing, pos_gt_src, headboxes_src
    out_dir/images/<9-digit id>.jpg    both splits in one folder, as MPII
Each entry is one person. A joint outside the image is missing (joints_vis 0, coordinates -1, -1); occluded joints
are labelled, as in MPII. `center` is the person's box centre moved up by 15 x scale pixels and `scale` the box's
longer side / 200, so that the official loading (centre down by 15 x scale, scale x 1.25) gives the box centre and
1.25 x the box. The same seed gives identical images and byte-identical json.
"""

import logging
import os
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..fileio import write_json_atomic
from ..geometry import PIXEL_STD
from .mpii import CENTER_SHIFT, write_gt_mat
from .synthetic import _HEAD_RADIUS, _render_image, write_jpeg

logger = logging.getLogger(__name__)

SPLITS = {"train": (0, 1), "valid": (1, 900001)}  # split -> (generator stream, first image id)
# COCO-17 index of each MPII joint taken directly from the figure (-1: derived, see `mpii_joints`)
_FROM_COCO = (16, 14, 12, 11, 13, 15, -1, -1, -1, -1, 10, 8, 6, 5, 7, 9)


def mpii_joints(points: np.ndarray, unit: float) -> Tuple[np.ndarray, np.ndarray]:
    """COCO-17 figure points [17, 2] (0-based pixels) and torso unit -> (MPII joints [16, 2], head box [2, 2])."""
    joints = points[list(i if i >= 0 else 0 for i in _FROM_COCO)].astype(np.float64)
    thorax = (points[5] + points[6]) / 2
    head = (points[3] + points[4]) / 2  # the centre of the drawn head circle
    up = head - thorax
    up = up / max(float(np.linalg.norm(up)), 1e-6)
    radius = _HEAD_RADIUS * unit
    joints[6] = (points[11] + points[12]) / 2  # pelvis
    joints[7] = thorax
    joints[8] = head - radius * up  # upper neck: where the neck enters the head
    joints[9] = head + radius * up  # head top
    headbox = np.stack([head - radius, head + radius])
    return joints, headbox


def _person(points: np.ndarray, unit: float, w: int, h: int) -> Dict:
    """One figure as an MPII entry: 1-based values rounded as the json stores them, so that gt_valid.mat holds
    exactly the json's coordinates."""
    joints, headbox = mpii_joints(points, unit)
    inside = (joints[:, 0] >= 0) & (joints[:, 0] <= w - 1) & (joints[:, 1] >= 0) & (joints[:, 1] <= h - 1)
    extent = np.concatenate([joints, headbox])
    lo, hi = extent.min(axis=0), extent.max(axis=0)
    scale = round(float(max(hi - lo)) / PIXEL_STD, 4)
    center = (lo + hi) / 2 - [0.0, CENTER_SHIFT * scale]
    return {"joints": np.round(np.where(inside[:, None], joints + 1, -1.0), 2), "vis": inside,
            "headbox": np.round(headbox + 1, 2), "center": np.round(center + 1, 2), "scale": scale}


def _write_split(out_dir: str, split: str, num_images: int, seed: int, size: Tuple[int, int], max_people: int,
                 occluder_prob: float, jpeg_quality: int) -> List[Dict]:
    w, h = size
    stream, first_id = SPLITS[split]
    entries, people = [], []
    for i in range(num_images):
        rng = np.random.default_rng([seed, 10 + stream, i])  # one generator per image, independent of the COCO set
        img, anns = _render_image(rng, w, h, max_people, 0.0, occluder_prob)
        name = f"{first_id + i:09d}.jpg"
        write_jpeg(os.path.join(out_dir, "images", name), img, jpeg_quality)
        for ann in anns:
            p = _person(ann["points"], ann["unit"], w, h)
            if not p["vis"].any():
                continue
            entries.append({"image": name, "center": p["center"].tolist(), "scale": p["scale"],
                            "joints": p["joints"].tolist(), "joints_vis": p["vis"].astype(int).tolist()})
            people.append(p)
    write_json_atomic(entries, os.path.join(out_dir, "annot", f"{split}.json"))
    return people


def generate_synthetic_mpii(
    out_dir: str,
    num_train: int,
    num_val: int,
    seed: int = 0,
    image_size: Sequence[int] = (256, 256),
    max_people: int = 2,
    occluder_prob: float = 0.3,
    jpeg_quality: int = 90,
) -> str:
    """Write the synthetic MPII dataset into `out_dir` (created if needed) and return `out_dir`; `image_size` is
    (w, h). The valid split also gets gt_valid.mat, so PCKh runs on it as on real MPII."""
    if num_train < 0 or num_val < 1:
        raise ValueError(f"num_train must be >= 0 and num_val >= 1 (PCKh needs a valid split), got {num_train} and "
                         f"{num_val}")
    if max_people < 1:
        raise ValueError(f"max_people must be >= 1, got {max_people}")
    size = (int(image_size[0]), int(image_size[1]))
    if min(size) < 32:
        raise ValueError(f"image_size (w, h) must be at least 32x32, got {tuple(image_size)}")
    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
    args = (seed, size, max_people, occluder_prob, jpeg_quality)
    _write_split(out_dir, "train", num_train, *args)
    val = _write_split(out_dir, "valid", num_val, *args)
    write_gt_mat(os.path.join(out_dir, "annot", "gt_valid.mat"), np.stack([p["joints"] for p in val]),
                 np.stack([~p["vis"] for p in val]), np.stack([p["headbox"] for p in val]))
    logger.info("synthetic MPII dataset written to %s (%d train, %d valid images, seed %d)", out_dir, num_train,
                num_val, seed)
    return out_dir
