"""A synthetic COCO-format person-keypoint dataset: rendered stick figures with the 17 COCO keypoints.

Made for a quickstart that trains a small HRNet on a CPU in minutes and for end-to-end tests, so keypoints are
visually well defined: the figures face the camera (the person's left is on the image right when upright), left
limbs are drawn in warm colours and right limbs in cool ones, every joint carries a small marker, and the face shows
eyes, nose and ears. Poses, sizes, orientations (a few rotated or lying), several people per image, occluders, people
partly outside the image and a few `iscrowd` regions make it non-trivial.

Output (the official COCO layout; same seed -> byte-identical json and identical images):
    out_dir/annotations/person_keypoints_{train,val}.json
    out_dir/images/{train,val}/<image id, 12 digits>.jpg
    out_dir/person_detection_results/synthetic_val_detections.json   (jittered GT boxes + false positives)
Visibility follows COCO: v=2 visible, v=1 inside the image but occluded, v=0 (with x=y=0) outside the image.
"""

import json
import logging
import os
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from ..keypoints import COCO17

logger = logging.getLogger(__name__)

DETECTION_FILE = "synthetic_val_detections.json"
_SPLIT_ID_OFFSET = {"train": 1, "val": 900001}

# Body model in torso units (pelvis at the origin, y down, x towards the person's LEFT, i.e. facing the camera).
_SHOULDER_HALF, _HIP_HALF = 0.42, 0.27
_UPPER_ARM, _FOREARM, _THIGH, _SHIN = 0.55, 0.5, 0.78, 0.72
_HEAD_RADIUS = 0.25

# Colours are BGR (cv2). Left: warm; right: cool. One marker colour per keypoint.
_LIMB_COLORS = {
    "l_upper_arm": (30, 30, 230), "l_forearm": (0, 140, 255), "l_thigh": (110, 20, 190), "l_shin": (0, 215, 250),
    "r_upper_arm": (230, 70, 20), "r_forearm": (235, 215, 30), "r_thigh": (150, 110, 0), "r_shin": (80, 200, 40),
}
_MARKER_COLORS = [
    (30, 30, 120), (0, 90, 200), (200, 90, 0), (40, 160, 255), (255, 160, 40),
    (150, 180, 255), (255, 200, 150), (60, 60, 255), (255, 120, 60), (0, 255, 255), (255, 255, 0),
    (200, 120, 255), (255, 230, 180), (0, 170, 255), (180, 255, 120), (120, 255, 255), (255, 255, 200),
]
_SKIN = [(120, 160, 220), (90, 130, 190), (60, 90, 140), (150, 190, 235), (80, 110, 160)]


def _rot(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


def _body_keypoints(rng: np.random.Generator) -> np.ndarray:
    """Random pose in torso units: [17, 2] COCO-ordered points, pelvis at the origin."""
    lean = rng.normal(0.0, 0.08)
    up = _rot(lean)
    kp = np.zeros((17, 2))
    shoulder_mid = up @ [0.0, -1.0]
    kp[5], kp[6] = shoulder_mid + up @ [_SHOULDER_HALF, 0], shoulder_mid + up @ [-_SHOULDER_HALF, 0]
    kp[11], kp[12] = np.array([_HIP_HALF, 0.0]), np.array([-_HIP_HALF, 0.0])
    head_rot = up @ _rot(rng.normal(0.0, 0.12))
    head = shoulder_mid + head_rot @ [0.0, -0.52]
    kp[0] = head + head_rot @ [0.0, 0.07]
    kp[1], kp[2] = head + head_rot @ [0.1, -0.05], head + head_rot @ [-0.1, -0.05]
    kp[3], kp[4] = head + head_rot @ [0.22, 0.0], head + head_rot @ [-0.22, 0.0]
    for side, (sh, el, wr, hip, kn, an) in ((1, (5, 7, 9, 11, 13, 15)), (-1, (6, 8, 10, 12, 14, 16))):
        # angles from "straight down"; positive swings the limb outwards
        a1 = rng.uniform(-0.4, 2.6)
        a2 = a1 + rng.uniform(-0.4, 2.0)
        kp[el] = kp[sh] + up @ (_UPPER_ARM * np.array([side * np.sin(a1), np.cos(a1)]))
        kp[wr] = kp[el] + up @ (_FOREARM * np.array([side * np.sin(a2), np.cos(a2)]))
        b1 = rng.uniform(-0.15, 0.7)
        b2 = b1 + rng.normal(0.0, 0.3)
        kp[kn] = kp[hip] + _THIGH * np.array([side * np.sin(b1), np.cos(b1)])
        kp[an] = kp[kn] + _SHIN * np.array([side * np.sin(b2), np.cos(b2)])
    return kp


def _draw_figure(canvas: np.ndarray, masks: Sequence[np.ndarray], kp: np.ndarray, unit: float,
                 rng: np.random.Generator, markers: bool = True) -> None:
    """Draw one figure with image-pixel keypoints `kp` [17, 2] on `canvas` (BGR) and fill it into every mask."""
    sh = 4  # sub-pixel drawing: coordinates carry 4 fractional bits
    P = [tuple(int(round(v)) for v in p * (1 << sh)) for p in kp]
    limb_t = max(2, int(round(0.17 * unit)))
    leg_t = max(2, int(round(0.21 * unit)))
    torso_color = tuple(int(v) for v in rng.integers(70, 170, 3))
    skin = _SKIN[rng.integers(len(_SKIN))]
    head = (kp[3] + kp[4]) / 2
    head_r = max(2, int(round(_HEAD_RADIUS * unit)))
    neck_a = (kp[5] + kp[6]) / 2

    def line(img, a, b, color, t):
        cv2.line(img, P[a], P[b], color, t, cv2.LINE_AA, sh)

    def shapes(img, colors):
        for (a, b), name, t in (((11, 13), "l_thigh", leg_t), ((13, 15), "l_shin", leg_t),
                                ((12, 14), "r_thigh", leg_t), ((14, 16), "r_shin", leg_t)):
            line(img, a, b, colors(name), t)
        poly = np.array([P[5], P[6], P[12], P[11]], dtype=np.int32)
        cv2.fillConvexPoly(img, poly, colors("torso"), cv2.LINE_AA, sh)
        neck = tuple(int(round(v * (1 << sh))) for v in neck_a)
        hc = tuple(int(round(v * (1 << sh))) for v in head)
        cv2.line(img, neck, hc, colors("skin"), max(2, int(0.18 * unit)), cv2.LINE_AA, sh)
        cv2.circle(img, hc, head_r << sh, colors("skin"), -1, cv2.LINE_AA, sh)
        for (a, b), name in (((5, 7), "l_upper_arm"), ((7, 9), "l_forearm"),
                             ((6, 8), "r_upper_arm"), ((8, 10), "r_forearm")):
            line(img, a, b, colors(name), limb_t)

    shapes(canvas, lambda n: torso_color if n == "torso" else skin if n == "skin" else _LIMB_COLORS[n])
    for m in masks:
        shapes(m, lambda n: 255)
    if not markers:
        return
    r = max(1, int(round(0.07 * unit)))
    for j in range(17):
        cv2.circle(canvas, P[j], (r if j >= 5 else max(1, r // 2 + 1)) << sh, _MARKER_COLORS[j], -1, cv2.LINE_AA,
                   sh)


def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Smooth muted colour field, a few muted shapes, noise."""
    grid = (rng.uniform(60, 190, (4, 4, 1)) + rng.normal(0, 18, (4, 4, 3))).clip(0, 255).astype(np.uint8)
    img = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(rng.integers(3, 9)):
        color = tuple(int(v) for v in (rng.uniform(50, 200) + rng.normal(0, 15, 3)).clip(0, 255))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        if rng.random() < 0.5:
            axes = (int(rng.integers(5, w // 4)), int(rng.integers(5, h // 4)))
            cv2.ellipse(img, (x, y), axes, float(rng.uniform(0, 180)), 0, 360, color, -1)
        else:
            cv2.rectangle(img, (x, y), (x + int(rng.integers(5, w // 3)), y + int(rng.integers(5, h // 3))),
                          color, -1)
    return img


def _occluder(img: np.ndarray, owner: np.ndarray, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    bw, bh = int(rng.uniform(0.15, 0.35) * w), int(rng.uniform(0.15, 0.35) * h)
    x, y = int(rng.integers(-bw // 3, w - bw // 2)), int(rng.integers(-bh // 3, h - bh // 2))
    base = rng.uniform(60, 180) + rng.normal(0, 12, 3)
    patch = np.clip(base + rng.normal(0, 10, (bh, bw, 1)), 0, 255)
    patch[:, ::6] *= 0.8  # stripes make it a texture rather than a flat block
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + bw, w), min(y + bh, h)
    img[y0:y1, x0:x1] = patch[y0 - y:y1 - y, x0 - x:x1 - x].astype(np.uint8)
    owner[y0:y1, x0:x1] = 255


def _place(rng: np.random.Generator, w: int, h: int) -> Tuple[np.ndarray, float]:
    """Random pose placed in the image: keypoints [17, 2] in pixels and the torso unit in pixels."""
    body = _body_keypoints(rng)
    height = rng.uniform(0.4, 0.85) * h
    unit = height / 3.3
    theta = rng.normal(0.0, 0.15) if rng.random() < 0.8 else rng.uniform(-np.pi, np.pi)
    pts = body @ _rot(theta).T * unit
    centre = np.array([rng.uniform(0.12, 0.88) * w, rng.uniform(0.15, 0.85) * h])
    pts += centre - (pts.min(0) + pts.max(0)) / 2
    return pts, unit


def _render_image(rng: np.random.Generator, w: int, h: int, max_people: int, crowd_prob: float,
                  occluder_prob: float) -> Tuple[np.ndarray, List[Dict]]:
    img = _background(rng, w, h)
    owner = np.zeros((h, w), np.uint8)
    anns = []
    if rng.random() < crowd_prob:
        crowd = np.zeros((h, w), np.uint8)
        cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
        for _ in range(rng.integers(5, 9)):
            kp = _body_keypoints(rng) * rng.uniform(0.05, 0.09) * h
            kp += [cx + rng.normal(0, 0.08 * w), cy + rng.normal(0, 0.06 * h)]
            _draw_figure(img, [crowd], kp, 0.07 * h, rng, markers=False)
        owner[crowd > 0] = 254
        anns.append({"crowd_mask": crowd > 0})
    people = []
    for pid in range(int(rng.integers(1, max_people + 1))):
        kp, unit = _place(rng, w, h)
        silhouette = np.zeros((h, w), np.uint8)
        own = np.zeros((h, w), np.uint8)
        _draw_figure(img, [silhouette, own], kp, unit, rng)
        owner[own > 0] = pid + 1
        people.append((kp, unit, silhouette > 0))
    for _ in range(int(rng.random() < occluder_prob) + int(rng.random() < occluder_prob / 3)):
        _occluder(img, owner, rng)
    noise = rng.normal(0, 4, img.shape)
    img = np.clip(img + noise, 0, 255).astype(np.uint8)
    for pid, (kp, unit, silhouette) in enumerate(people):
        inside = (kp[:, 0] >= 0) & (kp[:, 0] <= w - 1) & (kp[:, 1] >= 0) & (kp[:, 1] <= h - 1)
        xi = np.clip(np.round(kp[:, 0]).astype(int), 0, w - 1)
        yi = np.clip(np.round(kp[:, 1]).astype(int), 0, h - 1)
        vis = np.where(inside, np.where(owner[yi, xi] == pid + 1, 2, 1), 0)
        # "points" (all 17, also outside the image) and "unit" (torso length in pixels) are for other keypoint
        # layouts derived from the same figure (datasets.synthetic_mpii); the COCO json does not use them
        anns.append({"keypoints": np.where(inside[:, None], kp, 0.0), "vis": vis, "mask": silhouette, "points": kp,
                     "unit": unit})
    return img, anns


def write_jpeg(path: str, img: np.ndarray, quality: int) -> None:
    """Encode a BGR image as JPEG at `quality` and write it to `path`."""
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"cannot encode synthetic image {os.path.basename(path)}")
    with open(path, "wb") as f:
        f.write(buf.tobytes())


def _polygons(mask: np.ndarray) -> List[List[float]]:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        c = cv2.approxPolyDP(c, 1.0, True).reshape(-1, 2)
        if len(c) >= 3:
            polys.append([float(v) for v in c.reshape(-1)])
    return polys


def _mask_box(mask: np.ndarray) -> List[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def _categories() -> List[Dict]:
    return [{
        "id": 1, "name": "person", "supercategory": "person", "keypoints": list(COCO17.names),
        "skeleton": [[a + 1, b + 1] for a, b in COCO17.skeleton],
    }]


def _write_split(out_dir: str, split: str, num_images: int, seed: int, size: Tuple[int, int], max_people: int,
                 crowd_prob: float, occluder_prob: float, jpeg_quality: int) -> Dict:
    w, h = size
    image_dir = os.path.join(out_dir, "images", split)
    os.makedirs(image_dir, exist_ok=True)
    images, annotations = [], []
    for i in range(num_images):
        image_id = _SPLIT_ID_OFFSET[split] + i
        # one generator per image: images do not depend on each other, and a larger set extends a smaller one
        rng = np.random.default_rng([seed, 0 if split == "train" else 1, i])
        img, anns = _render_image(rng, w, h, max_people, crowd_prob, occluder_prob)
        file_name = f"{image_id:012d}.jpg"
        write_jpeg(os.path.join(image_dir, file_name), img, jpeg_quality)
        images.append({"id": image_id, "file_name": file_name, "width": w, "height": h})
        num_kept = 0
        for a in anns:
            mask = a.get("crowd_mask", a.get("mask"))
            if not mask.any():
                continue
            num_kept += 1
            ann = {"id": image_id * 100 + num_kept,
                   "image_id": image_id, "category_id": 1, "bbox": _mask_box(mask), "area": float(mask.sum())}
            if "crowd_mask" in a:
                rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
                ann.update(iscrowd=1, segmentation={"size": [h, w], "counts": rle["counts"].decode("ascii")},
                           keypoints=[0] * 51, num_keypoints=0)
            else:
                kp = np.concatenate([np.round(a["keypoints"], 2), a["vis"][:, None]], axis=1)
                ann.update(iscrowd=0, segmentation=_polygons(mask),
                           keypoints=[float(v) if j % 3 < 2 else int(v) for j, v in enumerate(kp.reshape(-1))],
                           num_keypoints=int((a["vis"] > 0).sum()))
            annotations.append(ann)
    data = {
        "info": {"description": f"hrnet_pose synthetic person keypoints, split {split}, seed {seed}",
                 "version": "1.0"},
        "licenses": [], "images": images, "annotations": annotations, "categories": _categories(),
    }
    path = os.path.join(out_dir, "annotations", f"person_keypoints_{split}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f)
    return data


def _detections(data: Dict, seed: int) -> List[Dict]:
    """Jittered GT boxes (a few duplicated) plus low-scoring false positives, COCO results format."""
    rng = np.random.default_rng([seed, 2])
    dets = []
    by_image = {img["id"]: img for img in data["images"]}
    for ann in data["annotations"]:
        if ann["iscrowd"]:
            continue
        x, y, w, h = ann["bbox"]
        for dup in range(1 + int(rng.random() < 0.15)):
            box = [x + rng.normal(0, 0.04) * w, y + rng.normal(0, 0.04) * h,
                   w * (1 + rng.normal(0, 0.05)), h * (1 + rng.normal(0, 0.05))]
            score = rng.uniform(0.7, 0.99) if dup == 0 else rng.uniform(0.2, 0.6)
            dets.append({"image_id": ann["image_id"], "category_id": 1,
                         "bbox": [round(float(v), 2) for v in box], "score": round(float(score), 4)})
    for image_id, img in by_image.items():
        for _ in range(int(rng.random() < 0.5) + int(rng.random() < 0.2)):
            bw, bh = rng.uniform(0.1, 0.4) * img["width"], rng.uniform(0.2, 0.6) * img["height"]
            box = [rng.uniform(0, img["width"] - bw), rng.uniform(0, img["height"] - bh), bw, bh]
            dets.append({"image_id": image_id, "category_id": 1, "bbox": [round(float(v), 2) for v in box],
                         "score": round(float(rng.uniform(0.05, 0.4)), 4)})
    return dets


def generate_synthetic_coco(
    out_dir: str,
    num_train: int,
    num_val: int,
    seed: int = 0,
    image_size: Sequence[int] = (256, 256),
    max_people: int = 3,
    crowd_prob: float = 0.1,
    occluder_prob: float = 0.3,
    jpeg_quality: int = 90,
    detections: bool = True,
) -> str:
    """Write the synthetic dataset into `out_dir` (created if needed) and return `out_dir`.

    `image_size` is (w, h). Deterministic: the same arguments give byte-identical json files and identical images.
    """
    if num_train < 0 or num_val < 0:
        raise ValueError(f"num_train and num_val must be >= 0, got {num_train} and {num_val}")
    if max_people < 1:
        raise ValueError(f"max_people must be >= 1, got {max_people}")
    size = (int(image_size[0]), int(image_size[1]))
    if min(size) < 32:
        raise ValueError(f"image_size (w, h) must be at least 32x32, got {tuple(image_size)}")
    args = (seed, size, max_people, crowd_prob, occluder_prob, jpeg_quality)
    _write_split(out_dir, "train", num_train, *args)
    val = _write_split(out_dir, "val", num_val, *args)
    if detections:
        det_dir = os.path.join(out_dir, "person_detection_results")
        os.makedirs(det_dir, exist_ok=True)
        with open(os.path.join(det_dir, DETECTION_FILE), "w") as f:
            json.dump(_detections(val, seed), f)
    logger.info("synthetic COCO dataset written to %s (%d train, %d val images, seed %d)", out_dir, num_train,
                num_val, seed)
    return out_dir


def synthetic_video(
    num_frames: int = 40,
    image_size: Sequence[int] = (320, 240),
    num_people: int = 2,
    seed: int = 0,
    height: float = 0.6,
    spread: float = 0.08,
) -> Tuple[np.ndarray, np.ndarray]:
    """Frames of stick figures walking along straight lines that cross mid-sequence, for tracking tests and demos.

    Person p starts at one side and walks to the other (alternate people walk in opposite directions, at different
    heights `spread` x image height apart), so every pair crosses near the middle frame. Each figure keeps its pose and colours; the background is
    fixed. Returns (frames [T, H, W, 3] uint8 BGR, keypoints [T, P, 17, 2] float64 image pixels).
    """
    if num_frames < 1 or num_people < 1:
        raise ValueError(f"num_frames and num_people must be >= 1, got {num_frames} and {num_people}")
    w, h = int(image_size[0]), int(image_size[1])
    rng = np.random.default_rng(seed)
    background = _background(rng, w, h)
    unit = height * h / 3.3
    bodies, starts, ends, colour_seeds = [], [], [], []
    for p in range(num_people):
        body = _body_keypoints(rng) * unit
        body -= (body.min(0) + body.max(0)) / 2
        y = h * (0.5 + spread * (p - (num_people - 1) / 2))
        x0, x1 = 0.2 * w, 0.8 * w
        starts.append(np.array([x0 if p % 2 == 0 else x1, y]))
        ends.append(np.array([x1 if p % 2 == 0 else x0, y]))
        bodies.append(body)
        colour_seeds.append(int(rng.integers(1 << 30)))
    t = np.linspace(0.0, 1.0, num_frames)[:, None]
    frames = np.empty((num_frames, h, w, 3), np.uint8)
    keypoints = np.empty((num_frames, num_people, 17, 2))
    for i in range(num_frames):
        img = background.copy()
        for p in range(num_people):
            kp = bodies[p] + starts[p] + t[i] * (ends[p] - starts[p])
            keypoints[i, p] = kp
            _draw_figure(img, [], kp, unit, np.random.default_rng(colour_seeds[p]))
        frames[i] = img
    return frames, keypoints
