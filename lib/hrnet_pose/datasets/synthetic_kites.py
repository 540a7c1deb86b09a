"""A synthetic non-human keypoint set: kites with 6 keypoints, in a user's own COCO-format layout (not the official
one), for the "Your own keypoints" walk-through and its end-to-end tests (train, fine-tune from a 17-joint checkpoint,
evaluate, draw, export).

Each kite is a diamond (top, left wing, right wing, bottom, the spars' crossing) with a tail; the left half of the sail
is warm, the right half cool and every keypoint has its own marker colour, so left and right can be told apart.
Kites are rotated, sized and skewed at random, one to three per image; keypoints outside the image get v=0, x=y=0.

Output (same seed -> byte-identical json and identical images):
    out_dir/kites_train.json, out_dir/kites_val.json   category 'kite' (id 3), keypoints KITE_NAMES
    out_dir/images/{train,val}/sky_<split>_<n>.jpg      (image ids start at 101: they are not the file names)
The keypoint set (names, flip pairs, sigmas, skeleton) is `experiments/synthetic/kites_keypoints.yaml`.
"""

import logging
import os
from typing import Dict, List, Tuple

import cv2
import numpy as np

from ..fileio import write_json_atomic
from .synthetic import _background, write_jpeg

logger = logging.getLogger(__name__)

KITE_NAMES = ("top", "left_wing", "right_wing", "bottom", "centre", "tail_end")
KITE_SKELETON = ((0, 1), (0, 2), (1, 3), (2, 3), (1, 4), (4, 2), (0, 4), (4, 3), (3, 5))
KITE_CATEGORY_ID = 3
_FIRST_IMAGE_ID = 101
_MARKERS = [(40, 40, 230), (0, 150, 255), (255, 120, 0), (200, 0, 200), (255, 255, 255), (0, 230, 230)]  # BGR


def _kite_points(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """[6, 2] pixel positions of one kite: diamond, spars' crossing, tail end."""
    half = rng.uniform(0.16, 0.3) * h
    span = rng.uniform(0.5, 0.75) * half
    cross = rng.uniform(-0.45, -0.2)
    local = np.array([
        [0.0, -1.0],
        [-span / half * rng.uniform(0.9, 1.1), cross],
        [span / half * rng.uniform(0.9, 1.1), cross],
        [0.0, 1.0],
        [0.0, cross],
        [rng.uniform(-0.6, 0.6), 1.0 + rng.uniform(0.5, 0.9)],
    ]) * half
    theta = rng.normal(0.0, 0.35)
    c, s = np.cos(theta), np.sin(theta)
    pts = local @ np.array([[c, -s], [s, c]]).T
    centre = np.array([rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.75) * h])
    return pts + centre - (pts.min(0) + pts.max(0)) / 2


def _draw_kite(img: np.ndarray, pts: np.ndarray, rng: np.random.Generator) -> None:
    p = np.round(pts).astype(np.int32)
    base = rng.uniform(90, 200)
    warm = tuple(int(v) for v in np.clip([base * 0.3, base * 0.6, base + 50], 0, 255))
    cool = tuple(int(v) for v in np.clip([base + 50, base * 0.7, base * 0.3], 0, 255))
    cv2.fillPoly(img, [p[[0, 4, 3, 1]]], warm)  # left half of the sail
    cv2.fillPoly(img, [p[[0, 2, 3, 4]]], cool)
    for a, b in ((0, 3), (1, 2)):
        cv2.line(img, tuple(map(int, p[a])), tuple(map(int, p[b])), (30, 30, 30), 1, cv2.LINE_AA)
    tail = np.linspace(pts[3], pts[5], 6)
    tail[1:-1, 0] += np.sin(np.linspace(0, np.pi * 2, 6))[1:-1] * rng.uniform(2, 6)
    cv2.polylines(img, [np.round(tail).astype(np.int32)], False, (20, 20, 20), 1, cv2.LINE_AA)
    radius = max(2, int(round(np.linalg.norm(pts[0] - pts[3]) / 30)))
    for j, (x, y) in enumerate(p):
        cv2.circle(img, (int(x), int(y)), radius, _MARKERS[j], -1, cv2.LINE_AA)


def _render(rng: np.random.Generator, w: int, h: int, max_kites: int) -> Tuple[np.ndarray, List[np.ndarray]]:
    img = _background(rng, w, h)
    kites = [_kite_points(rng, w, h) for _ in range(int(rng.integers(1, max_kites + 1)))]
    for pts in kites:
        _draw_kite(img, pts, rng)
    img = np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)
    return img, kites


def categories() -> List[Dict]:
    return [{"id": KITE_CATEGORY_ID, "name": "kite", "supercategory": "toy", "keypoints": list(KITE_NAMES),
             "skeleton": [[a + 1, b + 1] for a, b in KITE_SKELETON]}]


def _split(out_dir: str, split: str, num_images: int, seed: int, size: Tuple[int, int], max_kites: int) -> Dict:
    w, h = size
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    folder = os.path.join(out_dir, "images", split)
    os.makedirs(folder, exist_ok=True)
    images, anns = [], []
    for n in range(num_images):
        img, kites = _render(rng, w, h, max_kites)
        name = f"sky_{split}_{n:04d}.jpg"
        write_jpeg(os.path.join(folder, name), img, 92)
        image_id = _FIRST_IMAGE_ID + n
        images.append({"id": image_id, "file_name": name, "width": w, "height": h})
        for pts in kites:
            inside = (pts[:, 0] >= 0) & (pts[:, 0] <= w - 1) & (pts[:, 1] >= 0) & (pts[:, 1] <= h - 1)
            if inside.sum() < 2:
                continue
            lo = np.clip(pts.min(0) - 2, 0, [w - 1, h - 1])
            hi = np.clip(pts.max(0) + 2, 0, [w - 1, h - 1])
            box = [round(float(lo[0]), 2), round(float(lo[1]), 2), round(float(hi[0] - lo[0]), 2),
                   round(float(hi[1] - lo[1]), 2)]
            kp = np.concatenate([np.where(inside[:, None], np.round(pts, 2), 0.0),
                                 np.where(inside, 2, 0)[:, None]], axis=1)
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": KITE_CATEGORY_ID,
                         "bbox": box, "area": round(box[2] * box[3], 2), "iscrowd": 0,
                         "keypoints": [float(v) if i % 3 < 2 else int(v) for i, v in enumerate(kp.reshape(-1))],
                         "num_keypoints": int(inside.sum())})
    data = {"info": {"description": "synthetic kites (hrnet_pose.datasets.synthetic_kites)", "seed": seed},
            "images": images, "annotations": anns, "categories": categories()}
    write_json_atomic(data, os.path.join(out_dir, f"kites_{split}.json"))
    return data


def generate_synthetic_kites(out_dir: str, num_train: int = 200, num_val: int = 40, seed: int = 0,
                             image_size: Tuple[int, int] = (128, 128), max_kites: int = 2) -> Dict[str, str]:
    """Write the kites set (module docstring); returns {'train': json, 'val': json, 'images': folder}."""
    for split, n in (("train", num_train), ("val", num_val)):
        data = _split(out_dir, split, n, seed, tuple(image_size), max_kites)
        logger.info("kites %s: %d images, %d kites -> %s", split, len(data["images"]), len(data["annotations"]),
                    os.path.join(out_dir, f"kites_{split}.json"))
    return {"train": os.path.join(out_dir, "kites_train.json"), "val": os.path.join(out_dir, "kites_val.json"),
            "images": os.path.join(out_dir, "images")}
