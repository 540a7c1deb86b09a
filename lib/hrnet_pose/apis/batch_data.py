"""The work units of batch inference and the two halves of each: preparing a chunk (read, decode, person boxes, crops:
CPU work for DataLoader workers or Ray tasks) and posing it (detector where boxes are not given, the pose network
over all persons of the chunk, COCO entries: the process or Ray actor that holds the models).

Inputs are cut into shards of `shard_size` consecutive images (the unit of output, resume and rank assignment) and
each shard into chunks of `chunk_size` consecutive images (the unit of network batching: the persons of a chunk go
through the network together, `max_batch` at a time). The cut depends on the inputs alone, so every image meets the
same batch neighbours whatever the number of processes, a resume or Ray: the outputs are the same.

A prepared image is a dict: index, error (None or the reason), width, height, and either `inputs` (normalised crops
float32 [N, 3, H, W] as a torch tensor, which a DataLoader passes through shared memory) with centers, scales, boxes
and box scores, or `image` (BGR uint8 [H, W, 3]) when the detector is still to run; `image` is also kept for drawing.
"""

import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..errors import UserError
from .batch_inputs import ImageFailure, InputItem, boxes_for, read_image
from .estimator import PoseEstimator, check_boxes
from .result import PoseResult


@dataclass(frozen=True)
class Chunk:
    """Images [start, stop) of the input list, in shard `shard`."""

    shard: int
    start: int
    stop: int


def plan_shards(num_items: int, shard_size: int, chunk_size: int) -> List[List[Chunk]]:
    """Per shard, its chunks (see module docstring)."""
    if shard_size < 1 or chunk_size < 1:
        raise UserError(f"--shard-size and --batch-images must be >= 1, got {shard_size} and {chunk_size}")
    shards = []
    for s, start in enumerate(range(0, num_items, shard_size)):
        stop = min(start + shard_size, num_items)
        shards.append([Chunk(s, a, min(a + chunk_size, stop)) for a in range(start, stop, chunk_size)])
    return shards


def preprocessor(cfg: Any, flip_test: Optional[bool] = None, max_batch: int = 32) -> PoseEstimator:
    """A PoseEstimator without network and detector for `cfg`: what the crop side needs (input size, colour order,
    codec, padding), built without starting a runtime (worker processes fork before it) and light to pickle, and
    cropping with the very methods the demo's calls use."""
    from ..codecs.heatmap import build_codec
    from ..keypoints import get_keypoint_set

    return PoseEstimator(None, build_codec(cfg), get_keypoint_set(cfg.DATASET.KEYPOINT_SET),
                         color_rgb=bool(cfg.DATASET.COLOR_RGB),
                         flip_test=bool(cfg.TEST.FLIP_TEST) if flip_test is None else bool(flip_test),
                         max_batch=max_batch)


def prepare_image(pre: PoseEstimator, item: InputItem, index: int, table: Optional[Dict[Any, Any]],
                  detect: bool, keep_image: bool) -> Dict[str, Any]:
    """One image read and, when its boxes are known, cropped (see module docstring); an unusable image gives a
    record with `error` set instead of raising."""
    record: Dict[str, Any] = {"index": index, "error": None, "image": None, "inputs": None}
    try:
        image = read_image(item.source)
        record["height"], record["width"] = int(image.shape[0]), int(image.shape[1])
        boxes, scores = boxes_for(item, table)
        if boxes is None and detect:
            record["image"] = image
            return record
        if boxes is None:  # no detector: the whole image is one person, as the estimator does
            boxes, scores = pre._person_boxes(image, None, None)
        boxes, scores = check_boxes(boxes, scores)
        centers, scales = pre.center_scale(boxes)
        inputs = pre.crops(image, centers, scales) if len(boxes) else \
            np.zeros((0, 3, pre.image_size[1], pre.image_size[0]), np.float32)
        record.update(inputs=torch.from_numpy(inputs), centers=centers, scales=scales, boxes=boxes,
                      box_scores=scores)
        if keep_image:
            record["image"] = image
    except ImageFailure as err:
        record["error"] = err.reason
    except UserError as err:  # a box of the boxes file that is not a box
        record["error"] = str(err)
    return record


def prepare_chunk(pre: PoseEstimator, items: Sequence[InputItem], chunk: Chunk, table: Optional[Dict[Any, Any]],
                  detect: bool, keep_image: bool) -> List[Dict[str, Any]]:
    return [prepare_image(pre, items[i], i, table, detect, keep_image) for i in range(chunk.start, chunk.stop)]


class ChunkDataset(torch.utils.data.Dataset):
    """A DataLoader's view of the chunks to process: item k is the prepared chunk `chunks[k]`."""

    def __init__(self, pre: PoseEstimator, items: Sequence[InputItem], chunks: Sequence[Chunk],
                 table: Optional[Dict[Any, Any]], detect: bool, keep_image: bool) -> None:
        self.pre, self.items, self.chunks = pre, items, list(chunks)
        self.table, self.detect, self.keep_image = table, detect, keep_image

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, k: int) -> Tuple[Chunk, List[Dict[str, Any]]]:
        chunk = self.chunks[k]
        return chunk, prepare_chunk(self.pre, self.items, chunk, self.table, self.detect, self.keep_image)


def identity(batch: Any) -> Any:
    return batch


def _detect(estimator: PoseEstimator, records: List[Dict[str, Any]]) -> None:
    """Boxes and crops for the records that waited for the detector (one batched call where the detector has one)."""
    waiting = [r for r in records if r["error"] is None and r["inputs"] is None]
    if not waiting:
        return
    detector = estimator.detector
    images = [r["image"] for r in waiting]
    found = detector.detect_batch(images) if hasattr(detector, "detect_batch") else [detector(im) for im in images]
    for record, (boxes, scores) in zip(waiting, found):
        boxes, scores = check_boxes(boxes, scores)
        centers, scales = estimator.center_scale(boxes)
        inputs = estimator.crops(record["image"], centers, scales) if len(boxes) else \
            np.zeros((0, 3, estimator.image_size[1], estimator.image_size[0]), np.float32)
        record.update(inputs=inputs, centers=centers, scales=scales, boxes=boxes, box_scores=scores)


def pose_chunk(estimator: PoseEstimator, items: Sequence[InputItem], records: List[Dict[str, Any]],
               flip_test: Optional[bool] = None) -> Tuple[List[Dict[str, Any]], List[Optional[PoseResult]]]:
    """The prepared records of one chunk -> (one output line per image, in order: COCO entries or the error; the
    PoseResult per image, None for a failed one). The persons of all images share the network batches."""
    _detect(estimator, records)
    ok = [r for r in records if r["error"] is None]
    results = estimator.results_from_crops(
        np.concatenate([np.asarray(r["inputs"]) for r in ok]) if ok else np.zeros((0,), np.float32),
        [r["centers"] for r in ok], [r["scales"] for r in ok], [r["boxes"] for r in ok],
        [r["box_scores"] for r in ok], flip_test) if ok else []
    by_index = {r["index"]: res for r, res in zip(ok, results)}
    lines, out = [], []
    for r in records:
        item = items[r["index"]]
        line: Dict[str, Any] = {"index": r["index"], "image_id": item.image_id, "file": item.source}
        result = by_index.get(r["index"])
        if result is None:
            line["error"] = r["error"]
        else:
            line.update(width=r["width"], height=r["height"], persons=result.to_coco(item.image_id))
        lines.append(line)
        out.append(result)
    return lines, out


def draw_path(out_dir: str, item: InputItem) -> str:
    """Where the drawn copy of `item` goes: vis/<its relative name> (a URL's file name), as a .jpg unless it is an
    image extension OpenCV writes."""
    name = item.name.replace("\\", "/").lstrip("/").replace("../", "")
    root, ext = os.path.splitext(name)
    if ext.lower() not in (".jpg", ".jpeg", ".png", ".bmp"):
        name = root + ".jpg"
    return os.path.join(out_dir, "vis", *name.split("/"))
