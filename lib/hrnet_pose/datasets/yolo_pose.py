"""Ultralytics YOLO-pose labels <-> COCO-format keypoint json + keypoint-set yaml (`tools/convert.py`).

YOLO-pose (docs.ultralytics.com/datasets/pose): a data yaml with `path`, `train` / `val` / `test` (image folders
relative to `path`), `kpt_shape: [K, 2 or 3]`, `flip_idx` (the mirror partner of each keypoint) and `names`
({class id: name}; optionally `kpt_names`), and one text file per image, `labels/<split>/<stem>.txt` beside
`images/<split>/`, one line per object: `class cx cy w h x1 y1 [v1] ... xK yK [vK]`, every coordinate normalised by
the image width / height. Visibility is COCO's (0 unlabelled with x=y=0, 1 occluded, 2 visible); with 2-value
keypoints a point at (0, 0) is unlabelled.

COCO side: one category per class (id = class + 1) with the keypoint names; image ids 1..N in file order; boxes
[x, y, w, h] in pixels. Converting there and back gives the same keypoints (to the 6 decimals of the text files).
"""

import logging
import os
import shutil
from typing import Any, Dict, List, Optional, Tuple

import yaml

from ..errors import UserError
from ..fileio import atomic_write_text, write_json_atomic
from ..keypoints import get_keypoint_set
from .annotations import choose_category, read_keypoint_file
from .keypoint_set_yaml import keypoint_set_yaml

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
SPLITS = ("train", "val", "test")


class YoloFormatError(UserError, ValueError):
    """A YOLO-pose data yaml or label file is malformed (the message names the file and line)."""


def image_size(path: str) -> Tuple[int, int]:
    """(width, height) of an image file, from its header where PIL is installed."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1])
    except ImportError:
        import cv2

        img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if img is None:
            raise YoloFormatError(f"cannot read image {path}") from None
        return int(img.shape[1]), int(img.shape[0])


def read_data_yaml(path: str) -> Dict[str, Any]:
    """The data yaml, checked: kpt_shape [K, 2|3], flip_idx a symmetric permutation of K, names."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"YOLO data yaml not found: {path}")
    with open(path) as f:
        spec = yaml.safe_load(f) or {}
    shape = spec.get("kpt_shape")
    if not (isinstance(shape, list) and len(shape) == 2 and shape[1] in (2, 3) and int(shape[0]) > 0):
        raise YoloFormatError(f"{path}: 'kpt_shape' is {shape!r}; expected [K, 2] or [K, 3] (a pose dataset)")
    k = int(shape[0])
    flip = spec.get("flip_idx")
    if flip is not None:
        if len(flip) != k or sorted(flip) != list(range(k)) or any(flip[flip[i]] != i for i in range(k)):
            raise YoloFormatError(f"{path}: 'flip_idx' {flip} must list the mirror partner of each of the {k} "
                                  "keypoints (itself when on the middle), each pair both ways")
    names = spec.get("names") or {0: "object"}
    if isinstance(names, list):
        names = dict(enumerate(names))
    spec["names"] = {int(i): str(n) for i, n in names.items()}
    return spec


def _kpt_names(spec: Dict[str, Any], k: int) -> List[str]:
    given = spec.get("kpt_names")
    if isinstance(given, dict):  # Ultralytics: {class id: [names]}
        given = next(iter(given.values()), None)
    if isinstance(given, list) and len(given) == k:
        return [str(n) for n in given]
    return [f"kp_{i}" for i in range(k)]


def _split_folder(spec: Dict[str, Any], yaml_path: str, split: str) -> Optional[str]:
    rel = spec.get(split)
    if not rel or not isinstance(rel, str):
        return None
    base = spec.get("path") or ""
    if base and not os.path.isabs(base):
        base = os.path.join(os.path.dirname(os.path.abspath(yaml_path)), base)
    base = base or os.path.dirname(os.path.abspath(yaml_path))
    return rel if os.path.isabs(rel) else os.path.join(base, rel)


def label_path(image_path: str) -> str:
    """Ultralytics' rule: the last /images/ of the path becomes /labels/, the extension .txt."""
    head, sep, tail = image_path.rpartition(os.sep + "images" + os.sep)
    stem = os.path.splitext(os.path.basename(image_path))[0]
    return os.path.join(head, "labels", os.path.dirname(tail), stem + ".txt") if sep else \
        os.path.join(os.path.dirname(image_path), stem + ".txt")


def _parse_line(line: str, k: int, dims: int, where: str) -> Tuple[int, List[float]]:
    values = line.split()
    if len(values) != 5 + k * dims:
        raise YoloFormatError(f"{where}: {len(values)} values, expected {5 + k * dims} (class, box cx cy w h, "
                              f"{k} keypoints x {dims})")
    try:
        return int(float(values[0])), [float(v) for v in values[1:]]
    except ValueError as err:
        raise YoloFormatError(f"{where}: {err}") from err


def yolo_split_to_coco(spec: Dict[str, Any], yaml_path: str, split: str) -> Optional[Dict[str, Any]]:
    """One split as a COCO dict (file_name relative to the split's image folder), or None when the yaml has none."""
    folder = _split_folder(spec, yaml_path, split)
    if folder is None:
        return None
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{yaml_path}: '{split}' image folder not found: {folder}")
    k, dims = int(spec["kpt_shape"][0]), int(spec["kpt_shape"][1])
    names = _kpt_names(spec, k)
    files = sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs
                   if f.lower().endswith(IMAGE_EXTENSIONS))
    images, anns = [], []
    for image_id, rel in enumerate(files, start=1):
        path = os.path.join(folder, rel)
        w, h = image_size(path)
        images.append({"id": image_id, "file_name": rel, "width": w, "height": h})
        labels = label_path(path)
        if not os.path.isfile(labels):
            continue
        with open(labels) as f:
            for n, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                cls, v = _parse_line(line, k, dims, f"{labels} line {n}")
                cx, cy, bw, bh = v[0] * w, v[1] * h, v[2] * w, v[3] * h
                kpts = []
                for j in range(k):
                    x, y = v[4 + j * dims] * w, v[5 + j * dims] * h
                    vis = int(round(v[6 + j * dims])) if dims == 3 else (2 if (x, y) != (0.0, 0.0) else 0)
                    kpts += [x, y, vis]
                anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": cls + 1,
                             "bbox": [cx - bw / 2, cy - bh / 2, bw, bh], "area": bw * bh, "iscrowd": 0,
                             "keypoints": kpts, "num_keypoints": sum(1 for x in kpts[2::3] if x > 0)})
    cats = [{"id": i + 1, "name": n, "supercategory": n, "keypoints": names, "skeleton": []}
            for i, n in sorted(spec["names"].items())]
    return {"images": images, "annotations": anns, "categories": cats}


def yolo_to_coco(data_yaml: str, out_dir: str) -> Dict[str, str]:
    """Write out_dir/<split>.json for each split of the data yaml and out_dir/<name>.yaml (the keypoint set, flip
    pairs from flip_idx); returns {split or 'keypoint_set': path}. Images stay where they are."""
    spec = read_data_yaml(data_yaml)
    k = int(spec["kpt_shape"][0])
    written: Dict[str, str] = {}
    for split in SPLITS:
        data = yolo_split_to_coco(spec, data_yaml, split)
        if data is None:
            continue
        path = os.path.join(out_dir, f"{split}.json")
        write_json_atomic(data, path)
        written[split] = path
        logger.info("%s: %d images, %d objects -> %s (images in %s)", split, len(data["images"]),
                    len(data["annotations"]), path, _split_folder(spec, data_yaml, split))
    if not written:
        raise YoloFormatError(f"{data_yaml}: no split ('train', 'val' or 'test') is given")
    flip = spec.get("flip_idx") or list(range(k))
    pairs = sorted({(min(i, j), max(i, j)) for i, j in enumerate(flip) if i != j})
    name = spec["names"][min(spec["names"])]
    set_path = os.path.join(out_dir, f"{name}.yaml")
    atomic_write_text(keypoint_set_yaml(name, _kpt_names(spec, k), (), pairs, source=data_yaml,
                                        flip_source="from flip_idx" if spec.get("flip_idx") else "no flip_idx given"),
                      set_path)
    written["keypoint_set"] = set_path
    return written


def _fmt(v: float) -> str:
    return f"{v:.6f}"


def coco_to_yolo(ann_file: str, image_dir: str, out_dir: str, split: str, keypoint_set: str = "",
                 category: str = "", link: bool = True) -> Dict[str, str]:
    """One COCO split -> out_dir/labels/<split>/*.txt, out_dir/images/<split>/ (links, or copies) and
    out_dir/data.yaml (updated when other splits were written before). Returns {'labels', 'data'}."""
    data = read_keypoint_file(ann_file, category)
    cat = choose_category(data, ann_file, category)
    k = max((len(a.get("keypoints") or []) // 3 for a in data["annotations"]), default=0)
    kset = get_keypoint_set(keypoint_set) if keypoint_set else None
    names = list(kset.names) if kset else [str(n) for n in cat.get("keypoints") or []] or [f"kp_{i}" for i in range(k)]
    flip = [int(i) for i in kset.flip_index] if kset else list(range(len(names)))
    labels_dir, images_out = os.path.join(out_dir, "labels", split), os.path.join(out_dir, "images", split)
    os.makedirs(labels_dir, exist_ok=True)
    os.makedirs(images_out, exist_ok=True)
    by_image: Dict[int, List[str]] = {}
    image_by_id = {img["id"]: img for img in data["images"]}
    for a in data["annotations"]:
        if a.get("iscrowd") or not a.get("keypoints") or not a.get("bbox"):
            continue
        img = image_by_id[a["image_id"]]
        w, h = float(img["width"]), float(img["height"])
        x, y, bw, bh = (float(v) for v in a["bbox"])
        values = ["0", _fmt((x + bw / 2) / w), _fmt((y + bh / 2) / h), _fmt(bw / w), _fmt(bh / h)]
        kp = a["keypoints"]
        for j in range(len(kp) // 3):
            values += [_fmt(kp[3 * j] / w), _fmt(kp[3 * j + 1] / h), str(int(kp[3 * j + 2]))]
        by_image.setdefault(a["image_id"], []).append(" ".join(values))
    for img in data["images"]:
        rel = str(img["file_name"])
        src = os.path.join(image_dir, rel)
        src = src if os.path.isfile(src) else os.path.join(image_dir, os.path.basename(rel))
        dst = os.path.join(images_out, os.path.basename(rel))
        if not os.path.exists(dst):
            if link:
                os.symlink(os.path.abspath(src), dst)
            else:
                shutil.copyfile(src, dst)
        lines = by_image.get(img["id"], [])
        atomic_write_text("".join(line + "\n" for line in lines),
                          os.path.join(labels_dir, os.path.splitext(os.path.basename(rel))[0] + ".txt"))
    data_path = os.path.join(out_dir, "data.yaml")
    spec = {}
    if os.path.isfile(data_path):
        with open(data_path) as f:
            spec = yaml.safe_load(f) or {}
    spec.update({"path": os.path.abspath(out_dir), split: f"images/{split}", "kpt_shape": [len(names), 3],
                 "flip_idx": flip, "names": {0: str(cat.get("name") or "object")}, "kpt_names": {0: names}})
    atomic_write_text(yaml.safe_dump(spec, sort_keys=False), data_path)
    return {"labels": labels_dir, "data": data_path}


def parse_labels(text: str, k: int, dims: int = 3) -> List[Tuple[int, List[float]]]:
    """The objects of one label file's text (for tests and checks)."""
    return [_parse_line(line, k, dims, "label") for line in text.splitlines() if line.strip()]

