"""Inputs of batch inference (`tools/infer.py`): which images, under which ids, with which person boxes, and how one
image's bytes are read and decoded.

Input specs (any number, in order): a folder (its images, natural order; `recursive` descends), a glob
('imgs/**/*.jpg'), a text file of paths or http(s)/file URLs (one a line; '#' comments; relative paths from the
file's folder), a COCO json (its `images`, files under `image_root`, default the json's folder; its person
annotations as boxes with `gt_boxes`) or one image file.

image_id: the COCO id for a COCO json; else the number of a COCO-style numeric file name (000000000785.jpg -> 785),
else the path relative to the folder (or glob base, list file folder) it was found from: for a flat folder the file
name, as the demo's predictions.json names images.

Reading: bytes from the file or URL, then OpenCV's decoder with the dataset's flags (EXIF orientation ignored), so
the pixels equal those the demo and the datasets read. A JPEG must end with its end-of-image marker: libjpeg decodes
a truncated file with a grey bottom and only a warning on stderr, which would silently give wrong poses.
"""

import glob
import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..errors import UserError
from ..geometry import xywh_to_xyxy

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".jp2")
LIST_EXTENSIONS = (".txt", ".lst", ".list")
URL_PREFIXES = ("http://", "https://", "file://")
URL_TIMEOUT_S = 30.0
READ_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION


class InputError(UserError):
    """An input spec that names nothing usable (the message names it and lists what would be valid)."""


class ImageFailure(Exception):
    """One image could not be used; `reason` goes into the errors file and the run goes on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class InputItem:
    """One image to process. source: path or URL; image_id: as in results.json; name: relative name (drawn image's
    path under vis/); boxes / box_scores: person boxes x1, y1, x2, y2 from the COCO json (None: not given)."""

    source: str
    image_id: Any
    name: str
    boxes: Optional[np.ndarray] = None
    box_scores: Optional[np.ndarray] = None


def _natural_key(path: str) -> List[Any]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path)]


def is_url(spec: str) -> bool:
    return spec.lower().startswith(URL_PREFIXES)


def _image_id(rel_name: str) -> Any:
    stem = os.path.splitext(os.path.basename(rel_name))[0]
    return int(stem) if stem.isdigit() else rel_name.replace(os.sep, "/")


def _item(source: str, root: str) -> InputItem:
    rel = os.path.relpath(source, root) if root else os.path.basename(source)
    return InputItem(source, _image_id(rel), rel.replace(os.sep, "/"))


def _from_folder(folder: str, recursive: bool) -> List[InputItem]:
    if recursive:
        paths = [os.path.join(d, f) for d, _, files in os.walk(folder) for f in files]
    else:
        paths = [os.path.join(folder, f) for f in os.listdir(folder)]
    paths = sorted((p for p in paths if os.path.isfile(p) and p.lower().endswith(IMAGE_EXTENSIONS)),
                   key=lambda p: _natural_key(os.path.relpath(p, folder)))
    if not paths:
        raise InputError(f"folder {folder} has no images ({', '.join(IMAGE_EXTENSIONS)})"
                         + ("" if recursive else "; --recursive also looks in its subfolders"))
    return [_item(p, folder) for p in paths]


def _from_glob(pattern: str) -> List[InputItem]:
    base = pattern.split("*")[0].split("?")[0].split("[")[0]
    base = base if base.endswith(os.sep) else os.path.dirname(base)
    paths = sorted((p for p in glob.glob(pattern, recursive=True)
                    if os.path.isfile(p) and p.lower().endswith(IMAGE_EXTENSIONS)), key=_natural_key)
    if not paths:
        raise InputError(f"glob {pattern} matches no image file ({', '.join(IMAGE_EXTENSIONS)})")
    return [_item(p, base or ".") for p in paths]


def _from_list(path: str) -> List[InputItem]:
    folder = os.path.dirname(os.path.abspath(path))
    items = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            entry = line.strip()
            if not entry or entry.startswith("#"):
                continue
            if is_url(entry):
                name = entry.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or entry
                items.append(InputItem(entry, _image_id(name), name))
            else:
                # a missing path stays in the list: it is reported in the errors file, not a reason to stop
                source = entry if os.path.isabs(entry) else os.path.join(folder, entry)
                items.append(InputItem(source, _image_id(entry), entry))
    if not items:
        raise InputError(f"list file {path} names no image (one path or URL a line; '#' starts a comment)")
    return items


def _from_coco(path: str, data: Dict[str, Any], image_root: str, gt_boxes: bool) -> List[InputItem]:
    root = image_root or os.path.dirname(os.path.abspath(path))
    boxes: Dict[Any, List[List[float]]] = {}
    if gt_boxes:
        for ann in data.get("annotations", []):
            x, y, w, h = ann.get("bbox", (0, 0, 0, 0))
            # the persons a labeller wants: category person, no crowd region, a box of positive size
            if ann.get("category_id", 1) == 1 and not ann.get("iscrowd", 0) and w > 0 and h > 0:
                boxes.setdefault(ann["image_id"], []).append(list(xywh_to_xyxy([x, y, w, h])))
    items = []
    for i, image in enumerate(data["images"]):
        if not isinstance(image, dict) or "id" not in image or "file_name" not in image:
            raise InputError(f"COCO json {path}: images[{i}] needs id and file_name")
        name = image["file_name"]
        source = name if is_url(name) or os.path.isabs(name) else os.path.join(root, name)
        item = InputItem(source, image["id"], name)
        if gt_boxes:
            b = np.array(boxes.get(image["id"], []), np.float32).reshape(-1, 4)
            item.boxes, item.box_scores = b, np.ones(len(b), np.float32)
        items.append(item)
    if not items:
        raise InputError(f"COCO json {path} has an empty images list")
    return items


def collect_inputs(specs: Sequence[str], recursive: bool = False, image_root: str = "",
                   gt_boxes: bool = False) -> List[InputItem]:
    """Every image of every spec, in order (see module docstring); InputError naming a spec that gives none."""
    items: List[InputItem] = []
    coco_seen = False
    for spec in specs:
        spec = os.fspath(spec)
        if is_url(spec):
            items.append(InputItem(spec, _image_id(spec.rsplit("/", 1)[-1]), spec.rsplit("/", 1)[-1]))
        elif os.path.isdir(spec):
            items += _from_folder(spec, recursive)
        elif os.path.isfile(spec) and spec.lower().endswith(".json"):
            try:
                with open(spec, encoding="utf-8") as f:
                    data = json.load(f)
            except ValueError as err:
                raise InputError(f"{spec} is not valid json: {err}") from err
            if not isinstance(data, dict) or not isinstance(data.get("images"), list):
                raise InputError(f"{spec} is not a COCO json (a dict with an 'images' list of {{id, file_name}}); "
                                 "detections go to --boxes")
            items += _from_coco(spec, data, image_root, gt_boxes)
            coco_seen = True
        elif os.path.isfile(spec) and spec.lower().endswith(LIST_EXTENSIONS):
            items += _from_list(spec)
        elif os.path.isfile(spec):
            items.append(_item(spec, os.path.dirname(spec)))
        elif any(ch in spec for ch in "*?["):
            items += _from_glob(spec)
        else:
            raise InputError(f"input {spec} does not exist; valid: a folder, a glob ('imgs/**/*.jpg'), a list file "
                             f"({', '.join(LIST_EXTENSIONS)}) of paths or URLs, a COCO json, an image or a URL")
    if gt_boxes and not coco_seen:
        raise InputError("--gt-boxes takes the person boxes of a COCO json input; none was given")
    return items


# ------------------------------------------------------------------------------------------------ boxes per image
def boxes_for(item: InputItem, table: Optional[Dict[Any, Tuple[np.ndarray, np.ndarray]]]
              ) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """The item's person boxes: from the COCO json, else from a detections table (`demo.load_boxes_file`) looked
    up by image id, file name or stem as the demo does; (None, None) when boxes are to be detected."""
    if item.boxes is not None:
        return item.boxes, item.box_scores
    if table is None:
        return None, None
    base = os.path.basename(item.name)
    for key in (item.image_id, base, os.path.splitext(base)[0]):
        if key in table:
            return table[key]
    return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)


# ------------------------------------------------------------------------------------------------ reading
def read_bytes(source: str) -> bytes:
    """The file's (or URL's) bytes; ImageFailure saying why not."""
    if is_url(source):
        try:
            with urllib.request.urlopen(source, timeout=URL_TIMEOUT_S) as response:
                return response.read()
        except urllib.error.HTTPError as err:
            raise ImageFailure(f"could not download: HTTP {err.code} {err.reason}") from err
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise ImageFailure(f"could not download: {getattr(err, 'reason', err)}") from err
    if not os.path.exists(source):
        raise ImageFailure("does not exist")
    if os.path.isdir(source):
        raise ImageFailure("is a folder, not an image")
    try:
        with open(source, "rb") as f:
            return f.read()
    except OSError as err:
        raise ImageFailure(f"cannot be read: {err.strerror or err}") from err


def _jpeg_is_complete(data: bytes) -> bool:
    """True when the JPEG's entropy-coded data ends in the end-of-image marker (FF D9). The segments before the first
    scan are skipped by their lengths (an EXIF thumbnail has its own FF D9); inside scans FF is followed only by 00 or
    a restart marker, so the first FF D9 after the first scan header is the image's own end. Bytes after it (a motion
    photo's video) are allowed."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker == 0xDA:  # start of scan
            return data.find(b"\xff\xd9", pos + 2 + length) >= 0
        pos += 2 + length
    return False


def decode_image(data: bytes) -> np.ndarray:
    """BGR uint8 [H, W, 3] from an image file's bytes, decoded as `cv2.imread` with the dataset's flags decodes the
    file; ImageFailure for a truncated JPEG or bytes that are no image."""
    if not data:
        raise ImageFailure("is empty (0 bytes)")
    if data[:2] == b"\xff\xd8" and not _jpeg_is_complete(data):
        raise ImageFailure(f"truncated JPEG (no end-of-image marker; the file ends after {len(data)} bytes)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), READ_FLAGS)
    if image is None or image.size == 0:
        raise ImageFailure("cannot be decoded (not an image, or a format OpenCV does not read)")
    return image


def read_image(source: str) -> np.ndarray:
    """BGR uint8 image of a path or URL (`read_bytes` + `decode_image`)."""
    return decode_image(read_bytes(source))
