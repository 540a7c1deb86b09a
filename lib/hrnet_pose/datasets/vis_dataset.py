"""Draw the ground truth of a COCO-format keypoint json (or an official MPII one) onto its images, to check a dataset
or a custom keypoint set.

Reads the json with the standard library (no pycocotools needed), draws every non-crowd annotation that has
keypoints with `hrnet_pose.visualization.draw_poses`, and writes one jpg per image. Keypoints get the score 1.0 when
labelled visible (v=2), 0.5 when labelled occluded (v=1, drawn with a dark centre) and 0 when unlabelled (v=0), so
the drawing threshold picks what is shown: 0.3 (default) every labelled keypoint, 0.75 only the visible ones.

Shapes: a COCO annotation's `keypoints` is a flat list [x1, y1, v1, ..., xK, yK, vK]; `bbox` is [x, y, w, h].
"""

import json
import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from ..errors import UserError
from ..keypoints import MPII16, KeypointSet, get_keypoint_set
from .public_sets import wholebody_keypoints
from ..visualization import default_sizes, draw_poses
from .mpii import load_mpii_annotations

logger = logging.getLogger(__name__)

VISIBLE_SCORE, OCCLUDED_SCORE = 1.0, 0.5


class AnnotationFileError(UserError, ValueError):
    """The annotation file, image folder or keypoint set given to the dataset visualiser is unusable."""


def _load(ann_file: str) -> dict:
    if not os.path.isfile(ann_file):
        raise AnnotationFileError(f"annotation file not found: {ann_file}")
    try:
        with open(ann_file) as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise AnnotationFileError(f"{ann_file}: not a json file ({err})") from None
    if isinstance(data, list):  # the official MPII annotations: one entry per person
        return mpii_as_coco(ann_file)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise AnnotationFileError(f"{ann_file}: not a COCO annotation file (expected 'images' and 'annotations' "
                                  "lists) nor an official MPII one (a list of person entries)")
    return data


def mpii_as_coco(ann_file: str) -> dict:
    """An official MPII json (annot/<set>.json) as COCO-format data: an image per file name, an annotation per
    person with the 16 joints moved to 0-based pixels (v = 2 where labelled visible, else 0) and the annotated box
    (center +- scale * 200 / 2), and the MPII keypoint set's category (`categories[0]['keypoint_set'] = 'mpii'`)."""
    entries = load_mpii_annotations(ann_file, MPII16.num_keypoints, with_joints=False)
    names: Dict[str, int] = {}
    annotations = []
    for i, e in enumerate(entries):
        image_id = names.setdefault(e["image"], len(names) + 1)
        joints = np.asarray(e.get("joints", np.zeros((16, 2))), np.float64).reshape(-1, 2) - 1.0
        vis = np.asarray(e.get("joints_vis", np.zeros(16)), np.float64).reshape(-1) > 0
        kp = np.concatenate([joints, np.where(vis, 2.0, 0.0)[:, None]], axis=1)
        half = float(e["scale"]) * 200.0 / 2
        cx, cy = (float(v) - 1.0 for v in e["center"])
        annotations.append({"id": i + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                            "num_keypoints": int(vis.sum()), "keypoints": kp.ravel().tolist(),
                            "bbox": [cx - half, cy - half, 2 * half, 2 * half]})
    images = [{"id": image_id, "file_name": name} for name, image_id in names.items()]
    return {"images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "person", "keypoints": list(MPII16.names), "keypoint_set": "mpii"}]}


def _check_keypoint_count(data: dict, ann_file: str, kset: KeypointSet) -> None:
    k = kset.num_keypoints
    hint = f"pass --keypoint-set with a yaml that matches the annotations (the set used is '{kset.name}', K={k})"
    for cat in data.get("categories", []):
        names = cat.get("keypoints")
        if names is not None and len(names) != k:
            raise AnnotationFileError(f"{ann_file}: category '{cat.get('name')}' has {len(names)} keypoints but the "
                                      f"keypoint set '{kset.name}' has {k}", hint=hint)
    for ann in data["annotations"]:
        kp = ann.get("keypoints")
        if kp is not None and len(kp) != 3 * k:
            raise AnnotationFileError(f"{ann_file}: annotation id {ann.get('id')} (image {ann.get('image_id')}) has "
                                      f"{len(kp)} keypoint values, expected {3 * k} (x, y, v for each of the {k} "
                                      f"keypoints of '{kset.name}')", hint=hint)


def draw_annotations(
    image: np.ndarray,
    annotations: Sequence[dict],
    keypoint_set: KeypointSet,
    kpt_thr: float = 0.3,
    draw_bbox: bool = False,
) -> np.ndarray:
    """A copy of `image` (BGR) with the keypoints (and boxes) of these COCO annotation dicts drawn on it."""
    k = keypoint_set.num_keypoints
    anns = [a for a in annotations if a.get("keypoints") is not None]
    if not anns:
        return image.copy()
    kp = np.asarray([a["keypoints"] for a in anns], dtype=np.float64).reshape(len(anns), k, 3)
    vis = kp[:, :, 2]
    scores = np.where(vis >= 2, VISIBLE_SCORE, np.where(vis >= 1, OCCLUDED_SCORE, 0.0))
    xywh = np.asarray([a.get("bbox", [np.nan] * 4) for a in anns], dtype=np.float64).reshape(len(anns), 4)
    boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    out = draw_poses(image, kp[:, :, :2], scores, keypoint_set, kpt_thr=kpt_thr, boxes=boxes, draw_bbox=draw_bbox)
    radius, _ = default_sizes(out.shape)
    hollow = (scores == OCCLUDED_SCORE) & (scores >= kpt_thr)
    for x, y in kp[:, :, :2][hollow].round().astype(int).tolist():
        cv2.circle(out, (x, y), max(1, radius // 2), (40, 40, 40), -1, cv2.LINE_AA)
    return out


def _annotated_images(data: dict, ann_file: str, image_ids: Optional[Sequence[int]],
                      limit: Optional[int]) -> Tuple[Dict[int, dict], Dict[int, List[dict]], List[int]]:
    """(images by id, their non-crowd annotations with keypoints by image id, the ids to draw in order): `image_ids`
    as given (duplicates dropped), else every image with such an annotation in id order; at most `limit`."""
    images: Dict[int, dict] = {img["id"]: img for img in data["images"]}
    by_image: Dict[int, List[dict]] = {}
    for ann in data["annotations"]:
        if not ann.get("iscrowd", 0) and ann.get("keypoints") is not None:
            by_image.setdefault(ann["image_id"], []).append(ann)
    if image_ids:
        missing = [i for i in image_ids if i not in images]
        if missing:
            raise AnnotationFileError(f"{ann_file}: image ids {missing} are not in the file; it has "
                                      f"{len(images)} images, e.g. {sorted(images)[:5]}")
        selected = list(dict.fromkeys(image_ids))
    else:
        selected = sorted(i for i in by_image if i in images)
    return images, by_image, selected if limit is None else selected[:limit]


def visualize_coco_dataset(
    ann_file: str,
    image_dir: str,
    out_dir: str,
    keypoint_set: Union[str, KeypointSet, None] = None,
    kpt_thr: float = 0.3,
    draw_bbox: bool = False,
    image_ids: Optional[Sequence[int]] = None,
    limit: Optional[int] = None,
) -> List[str]:
    """Write `out_dir/<image file stem>.jpg` with the ground truth drawn, for every image that has a non-crowd
    annotation with keypoints (or for `image_ids`), in image-id order, at most `limit` images. Returns the paths.

    Raises AnnotationFileError (a UserError) for a missing/invalid json or image folder, an unknown keypoint set, an
    annotation whose keypoint count does not match the set, or image ids absent from the json.
    """
    data = _load(ann_file)
    if any("foot_kpts" in a for a in data.get("annotations", [])):
        # COCO-WholeBody keeps feet, face and hands in fields of their own: one 133-keypoint list per person
        data = dict(data, annotations=[dict(a, keypoints=wholebody_keypoints(a)) for a in data["annotations"]])
        keypoint_set = keypoint_set or "coco_wholebody"
    if not os.path.isdir(image_dir):
        raise AnnotationFileError(f"image folder not found: {image_dir}")
    if not keypoint_set and data.get("categories") and data["categories"][0].get("keypoint_set"):
        keypoint_set = data["categories"][0]["keypoint_set"]  # MPII annotations bring their own set
    try:
        kset = get_keypoint_set(keypoint_set)
    except (ValueError, FileNotFoundError) as err:
        raise AnnotationFileError(f"keypoint set: {err}") from None
    _check_keypoint_count(data, ann_file, kset)
    if limit is not None and limit < 1:
        raise AnnotationFileError(f"limit must be a positive number of images, got {limit}")
    images, by_image, selected = _annotated_images(data, ann_file, image_ids, limit)

    os.makedirs(out_dir, exist_ok=True)
    written, unreadable = [], []
    for image_id in selected:
        name = images[image_id]["file_name"]
        path = os.path.join(image_dir, name)
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            unreadable.append(path)
            continue
        drawn = draw_annotations(image, by_image.get(image_id, []), kset, kpt_thr=kpt_thr, draw_bbox=draw_bbox)
        target = os.path.join(out_dir, os.path.splitext(os.path.basename(name))[0] + ".jpg")
        if not cv2.imwrite(target, drawn):
            raise AnnotationFileError(f"could not write {target}: check that {out_dir} is writable")
        written.append(target)
    if unreadable:
        logger.warning("%d of %d images are missing or unreadable in %s, e.g. %s", len(unreadable), len(selected),
                       image_dir, unreadable[0])
        if not written:
            raise AnnotationFileError(f"none of the {len(selected)} selected images could be read from {image_dir} "
                                      f"(e.g. {unreadable[0]}); is --images the folder that holds the files named "
                                      "in the json's 'file_name'?")
    logger.info("wrote %d images to %s", len(written), out_dir)
    return written
