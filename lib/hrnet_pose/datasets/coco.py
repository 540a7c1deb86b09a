"""COCO-format keypoint dataset for top-down pose estimation (HRNet, Sun et al., CVPR 2019).

Samples are person boxes: GT boxes from the annotation file (the official sanitising: the box is clipped to the image
and made one pixel narrower and shorter; persons without labelled keypoints are dropped) or detector boxes from a COCO
results json. Each box becomes (center, scale) with the aspect fixed to the network input and 1.25x padding.

`dataset[i]` -> (input [3, H, W] float32 normalised, target [K, h, w] float32, target_weight [K, 1] float32, meta)
with meta keys image, image_id, center, scale, rotation, score, joints, joints_vis (crop pixels), index.
Expected layout: root/annotations/person_keypoints_<set>.json and root/images/<set>/<file_name>, or any json and image
folder (`ann_file`, `image_dir`: DATASET.TRAIN_ANNOTATIONS / TRAIN_IMAGES ...). The file is read by
`annotations.read_keypoint_file`: its keypoint category (or `category` by name) is the one trained, and annotation
tools' gaps are filled. Image ids are the json's `id`s, never parsed from file names; a `file_name` with a folder
prefix the image folder does not have (Label Studio's `images/x.jpg`, `/data/upload/1/x.jpg`) falls back to its
base name inside the image folder.
"""

import contextlib
import io
import json
import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from pycocotools.coco import COCO

from ..errors import UserError
from ..geometry import boxes_to_center_scale
from ..keypoints import COCO17, KeypointSet, get_keypoint_set
from .annotations import load_annotation_json, read_keypoint_file
from .fast_decode import prepare_fast, to_normalized_tensor_fast
from .image_io import ImageReadError, image_read_error, read_image  # noqa: F401 (ImageReadError: public here too)
from .image_cache import ImageCache
from .transforms import (
    AugmentationConfig,
    Photometric,
    crop_person,
    random_geometry_params,
    to_normalized_tensor,
    transform_joints,
)

logger = logging.getLogger(__name__)


class AnnotationError(UserError, ValueError):
    """An annotation or detection file's entry is malformed (the message names the file, the entry and the field)."""


def describe_layout(root: str, entries: Sequence[str], see: str) -> str:
    """'expected layout:' and the folder tree under `root`, one entry a line, shown in every missing-file error."""
    return "expected layout:\n" + f"  {root or '.'}/\n" + "".join(f"    {e}\n" for e in entries) + f"(see {see})"


def layout_help(root: str, image_set: str) -> str:
    """The expected COCO folder tree."""
    return describe_layout(root, [f"annotations/person_keypoints_{image_set}.json",
                                  f"images/{image_set}/<file_name from the annotations, e.g. 000000000785.jpg>",
                                  "person_detection_results/<detections>.json   (only with TEST.USE_GT_BBOX False)"],
                           "data/README.md")


def _clean_gt_boxes(boxes: np.ndarray, width: float, height: float) -> Tuple[np.ndarray, np.ndarray]:
    """Official GT box sanitising on [N, 4] xywh -> (clean xywh [N, 4], valid-geometry mask [N])."""
    x1 = np.maximum(0.0, boxes[:, 0])
    y1 = np.maximum(0.0, boxes[:, 1])
    x2 = np.minimum(width - 1, x1 + np.maximum(0.0, boxes[:, 2] - 1))
    y2 = np.minimum(height - 1, y1 + np.maximum(0.0, boxes[:, 3] - 1))
    clean = np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)
    return clean, (x2 >= x1) & (y2 >= y1)


def _check_detection(entry: Any, index: int, path: str) -> None:
    """Raise an AnnotationError naming the entry and field when a COCO detection result is malformed."""
    if not isinstance(entry, dict):
        raise AnnotationError(f"{path}: entry {index} is {type(entry).__name__}, expected an object with "
                         "image_id, category_id, bbox [x, y, w, h], score")
    for field in ("image_id", "category_id", "bbox", "score"):
        if field not in entry:
            raise AnnotationError(f"{path}: entry {index} has no '{field}' (needs image_id, category_id, bbox, score)")
    bbox = entry["bbox"]
    if (not isinstance(bbox, (list, tuple)) or len(bbox) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in bbox)):
        raise AnnotationError(f"{path}: entry {index} has invalid 'bbox' {bbox!r}; expected [x, y, w, h], 4 finite numbers")
    score = entry["score"]
    if not isinstance(score, (int, float)) or isinstance(score, bool) or not np.isfinite(score):
        raise AnnotationError(f"{path}: entry {index} has invalid 'score' {score!r}; expected a finite number")
    if not isinstance(entry["image_id"], int) or isinstance(entry["image_id"], bool):
        raise AnnotationError(f"{path}: entry {index} has invalid 'image_id' {entry['image_id']!r}; expected an integer")


class CocoKeypoints(torch.utils.data.Dataset):
    """Person boxes of a COCO-format keypoint dataset, cropped and encoded for top-down training or testing."""

    ALL_CATEGORIES = False  # True for sets whose every category is a sample (datasets.public_sets.AP10KKeypoints)

    def __init__(
        self,
        root: str,
        image_set: str,
        is_train: bool,
        image_size: Sequence[int],
        codec: Any = None,
        keypoint_set: Any = COCO17,
        use_gt_bbox: bool = True,
        bbox_file: str = "",
        image_thre: float = 0.0,
        transform_cfg: Optional[AugmentationConfig] = None,
        color_rgb: bool = True,
        skip_bad_images: bool = True,
        ann_file: Optional[str] = None,
        image_dir: Optional[str] = None,
        fast_decode: bool = False,
        image_cache_dir: str = "",
        category: str = "",
        annotations: Optional[Dict[str, Any]] = None,
    ):
        self._init_sampling(root, image_set, is_train, image_size, codec, keypoint_set, transform_cfg, color_rgb,
                            skip_bad_images, fast_decode)
        self.use_gt_bbox = use_gt_bbox
        self.bbox_file = bbox_file
        self.image_thre = image_thre
        self.ann_file = ann_file or os.path.join(root, "annotations", f"person_keypoints_{image_set}.json")
        self.image_dir = image_dir or os.path.join(root, "images", image_set)

        if not os.path.isfile(self.ann_file):
            raise FileNotFoundError(f"annotation file not found: {self.ann_file}\n{layout_help(root, image_set)}")
        if not os.path.isdir(self.image_dir):
            raise FileNotFoundError(f"image folder not found: {self.image_dir}\n{layout_help(root, image_set)}")
        if annotations is None:  # else: the builder read and checked the file already
            # a set whose every category is a sample (AP-10K's species) keeps them all; else the one keypoint category
            annotations = (load_annotation_json(self.ann_file) if self.ALL_CATEGORIES else
                           read_keypoint_file(self.ann_file, category))
        self.category_id = annotations["categories"][0].get("id") if annotations.get("categories") else 1
        self.coco = COCO()
        self.coco.dataset = annotations
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress lines
            self.coco.createIndex()
        self._image_paths: Dict[int, str] = {}
        self.image_ids: List[int] = list(self.coco.getImgIds())
        if use_gt_bbox or is_train:
            self.db = self._load_gt_db()
        else:
            self.db = self._load_detection_db()
        logger.info("%s %s: %d samples from %s (%s boxes)", type(self).__name__, image_set, len(self.db),
                    self.ann_file, "GT" if (use_gt_bbox or is_train) else f"detector {bbox_file}")
        self.image_cache = self._open_image_cache(image_cache_dir) if image_cache_dir else None

    def _init_sampling(self, root: str, image_set: str, is_train: bool, image_size: Sequence[int], codec: Any,
                       keypoint_set: Any, transform_cfg: Optional[AugmentationConfig], color_rgb: bool,
                       skip_bad_images: bool, fast_decode: bool) -> None:
        """The attributes `prepare` / `__getitem__` read: split, input size, codec, keypoint set, augmentation."""
        self.root = root
        self.image_set = image_set
        self.is_train = is_train
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.aspect_ratio = self.image_size[0] * 1.0 / self.image_size[1]
        self.codec = codec
        self.keypoint_set: KeypointSet = get_keypoint_set(keypoint_set)
        self.num_joints = self.keypoint_set.num_keypoints
        self.transform_cfg = transform_cfg if transform_cfg is not None else AugmentationConfig()
        self.color_rgb = color_rgb
        self.skip_bad_images = skip_bad_images
        self.use_udp = bool(getattr(codec, "use_udp", False))
        self.photometric = Photometric(self.transform_cfg) if is_train and self.transform_cfg.photometric else None
        self.num_skipped = 0
        self.fast_decode = bool(fast_decode)  # reduced JPEG decoding folded into the warp (datasets.fast_decode)

    def _open_image_cache(self, folder: str) -> ImageCache:
        """DATASET.IMAGE_CACHE_DIR for this set's images, after checking that the missing entries fit on the disk."""
        cache = ImageCache(folder)
        ids = sorted({rec["image_id"] for rec in self.db})
        missing, free = cache.reserve(
            (self._image_path(i), self.coco.imgs[i]["width"], self.coco.imgs[i]["height"]) for i in ids)
        logger.info("image cache %s: %d images, %.2f GB still to decode and store (%.1f GB free)", cache.folder,
                    len(ids), missing / 1e9, free / 1e9)
        return cache

    def _image_path(self, image_id: int) -> str:
        path = self._image_paths.get(image_id)
        if path is None:
            name = str(self.coco.imgs[image_id]["file_name"])
            path = os.path.join(self.image_dir, name)
            if not os.path.isfile(path):  # a tool's folder prefix (images/, /data/upload/1/): the base name
                short = os.path.join(self.image_dir, os.path.basename(name.replace("\\", "/")))
                path = short if os.path.isfile(short) else path
            self._image_paths[image_id] = path
        return path

    def _record(self, image_id: int, center, scale, joints, joints_vis, score: float, raw_bbox) -> Dict[str, Any]:
        return {
            "image": self._image_path(image_id), "image_id": int(image_id), "center": center, "scale": scale,
            "joints_3d": joints, "joints_3d_vis": joints_vis, "score": float(score),
            "raw_bbox": np.asarray(raw_bbox, dtype=np.float64),
        }

    # Hooks for COCO-format variants (datasets.public_sets): which categories are samples, where an annotation's
    # keypoints and area come from.
    def _is_sample_category(self, category_id: Any) -> bool:
        return category_id == self.category_id

    def _annotation_keypoints(self, ann: Dict[str, Any]) -> List[float]:
        return ann.get("keypoints") or []

    def _annotation_area(self, ann: Dict[str, Any]) -> float:
        return ann.get("area", 0)

    def _load_gt_db(self) -> List[Dict[str, Any]]:
        k = self.num_joints
        db = []
        for image_id in self.image_ids:
            info = self.coco.imgs[image_id]
            anns = [a for a in self.coco.loadAnns(self.coco.getAnnIds(imgIds=image_id, iscrowd=False))
                    if self._is_sample_category(a.get("category_id"))]
            if not anns:
                continue
            raw = np.array([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4)
            clean, ok = _clean_gt_boxes(raw, info["width"], info["height"])
            area = np.array([self._annotation_area(a) for a in anns], dtype=np.float64)
            kpts = np.zeros((len(anns), k * 3), dtype=np.float64)
            for j, a in enumerate(anns):
                values = self._annotation_keypoints(a) or [0] * (k * 3)
                if len(values) != k * 3:
                    raise AnnotationError(f"{self.ann_file}: annotation id {a.get('id')} has {len(values)} keypoint "
                                     f"values, expected {k * 3} for the {k}-keypoint set '{self.keypoint_set.name}'")
                kpts[j] = values
            # the official loader drops persons whose keypoint list is all zero (num_keypoints == 0)
            keep = ok & (area > 0) & (kpts.max(axis=1) > 0)
            if not keep.any():
                continue
            kpts = kpts[keep].reshape(-1, k, 3)
            vis = np.minimum(kpts[:, :, 2:3], 1.0)
            joints = np.concatenate([kpts[:, :, :2], np.zeros_like(vis)], axis=2)
            joints_vis = np.concatenate([vis, vis, np.zeros_like(vis)], axis=2)
            centers, scales = boxes_to_center_scale(clean[keep], self.aspect_ratio)
            cats = [a.get("category_id") for a, kept in zip(anns, keep) if kept]
            for j in range(len(kpts)):
                db.append(self._record(image_id, centers[j], scales[j], joints[j], joints_vis[j], 1.0,
                                       raw[keep][j]))
                db[-1]["category_id"] = cats[j]
        return db

    def _load_detection_db(self) -> List[Dict[str, Any]]:
        path = self.bbox_file
        if not path or not os.path.isfile(path):
            raise FileNotFoundError(
                f"detection file not found: {path!r} (TEST.COCO_BBOX_FILE; needed with TEST.USE_GT_BBOX False, "
                "COCO results format [{image_id, category_id, bbox, score}, ...])\n"
                f"{layout_help(self.root, self.image_set)}")
        with open(path) as f:
            entries = json.load(f)
        if not isinstance(entries, list):
            raise ValueError(f"{path}: expected a json list of detections, got {type(entries).__name__}")
        for i, entry in enumerate(entries):
            _check_detection(entry, i, path)
        kept = [e for e in entries if self._is_sample_category(e["category_id"]) and e["score"] >= self.image_thre]
        unknown = sorted({e["image_id"] for e in kept if e["image_id"] not in self.coco.imgs})
        if unknown:
            logger.warning("%s: %d detections are for %d image ids not in %s (e.g. %s); they are skipped", path,
                           sum(e["image_id"] in unknown for e in kept), len(unknown), self.ann_file, unknown[:5])
            kept = [e for e in kept if e["image_id"] in self.coco.imgs]
        boxes = np.array([e["bbox"] for e in kept], dtype=np.float64).reshape(-1, 4)
        centers, scales = boxes_to_center_scale(boxes, self.aspect_ratio)
        zeros = np.zeros((self.num_joints, 3), dtype=np.float64)
        ones = np.ones((self.num_joints, 3), dtype=np.float64)
        db = [self._record(e["image_id"], centers[i], scales[i], zeros.copy(), ones.copy(), e["score"], boxes[i])
              for i, e in enumerate(kept)]
        for rec, e in zip(db, kept):
            rec["category_id"] = e["category_id"]
        return db

    def __len__(self) -> int:
        return len(self.db)

    def read_image(self, path: str) -> np.ndarray:
        """Read an image as uint8 [H, W, 3], RGB when `color_rgb` (else BGR); ImageReadError naming the file.
        Through DATASET.IMAGE_CACHE_DIR when set (the same pixels, decoded once; `datasets.image_cache`)."""
        if self.image_cache is None:
            return read_image(path, self.color_rgb)
        image = self.image_cache.read(path)
        if image is None:
            raise image_read_error(path)
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if self.color_rgb else image

    def skip_unreadable(self, err: ImageReadError) -> None:
        """The unreadable-image policy of both sample paths: in training with `skip_bad_images` the sample is
        counted and skipped with a warning; otherwise `err` is raised."""
        if not (self.is_train and self.skip_bad_images):
            raise err
        self.num_skipped += 1
        logger.warning("skipping a sample: %s", err)

    def prepare(self, index: int) -> Optional[Dict[str, Any]]:
        """Everything before tensors: the uint8 crop [H, W, 3], joints in crop pixels, the box and the rotation.

        Returns None for an unreadable image during training with `skip_bad_images`; raises otherwise.
        """
        if self.fast_decode:
            return prepare_fast(self, index)
        rec = self.db[index]
        try:
            image = self.read_image(rec["image"])
        except ImageReadError as err:
            self.skip_unreadable(err)
            return None
        joints, joints_vis = rec["joints_3d"].copy(), rec["joints_3d_vis"].copy()
        center, scale, rot = rec["center"].copy(), rec["scale"].copy(), 0.0
        if self.is_train:
            joints, joints_vis, center, scale, rot, flipped = random_geometry_params(
                joints, joints_vis, center, scale, self.transform_cfg, self.keypoint_set.flip_pairs,
                self.keypoint_set.upper_body_ids, self.aspect_ratio, image.shape[1])
            image = image[:, ::-1] if flipped else image  # a view: the warp reads it mirrored, nothing is copied
        crop, trans = crop_person(image, center, scale, rot, self.image_size, self.use_udp)
        if self.photometric is not None:
            crop = self.photometric(crop)
        return {
            "crop": crop, "joints": transform_joints(joints, joints_vis, trans), "joints_vis": joints_vis,
            "center": center, "scale": scale, "rotation": rot, "trans": trans,
        }

    def __getitem__(self, index: int):
        sample = self.prepare(index)
        if sample is None:
            return None
        if self.codec is None:
            raise RuntimeError("CocoKeypoints needs a codec to build targets: pass codec=HeatmapCodec(...) "
                               "(hrnet_pose.codecs.heatmap) or use build_dataset(cfg, split)")
        target, target_weight = self.codec.encode(sample["joints"], sample["joints_vis"])
        rec = self.db[index]
        meta = {
            "image": rec["image"], "image_id": rec["image_id"], "center": sample["center"],
            "scale": sample["scale"], "rotation": sample["rotation"], "score": rec["score"],
            "joints": sample["joints"], "joints_vis": sample["joints_vis"], "index": index,
        }
        normalize = to_normalized_tensor_fast if self.fast_decode else to_normalized_tensor
        return (normalize(sample["crop"]), torch.as_tensor(target, dtype=torch.float32),
                torch.as_tensor(target_weight, dtype=torch.float32), meta)
