"""A synthetic COCO keypoint evaluation input of val2017 size, made in memory, for evaluator benchmarks and tests.

COCO val2017 has 5,000 images and the official person detector file gives about 100k boxes; this generator makes a
ground-truth dataset of that shape (persons of every COCO area range, visibility flags 0/1/2, persons without
labelled keypoints, crowd regions, images without people) and predictions as `CocoKeypointEvaluator.process` takes
them: several perturbed copies of each labelled person (so OKS-NMS has duplicates to remove) plus false positives.

`make_synthetic_eval(...)` -> (gt, preds): `gt` a COCO dict (images, annotations, categories) ready for
`COCO().dataset`; `preds` a dict of preds [N,K,2] float32, maxvals [N,K,1] float32, centers [N,2] float32,
scales [N,2] float32, box_scores [N] float64, image_ids [N] int64 (the `process()` arguments).
"""

from typing import Dict, List, Tuple

import numpy as np

from ..geometry import boxes_to_center_scale
from ..keypoints import COCO17, KeypointSet, get_keypoint_set

# A standing person in box units (x, y in [0, 1] of the box), COCO-17 order; other keypoint sets get random points.
_COCO17_TEMPLATE = np.array([
    [0.50, 0.08], [0.54, 0.06], [0.46, 0.06], [0.59, 0.08], [0.41, 0.08], [0.70, 0.22], [0.30, 0.22],
    [0.78, 0.38], [0.22, 0.38], [0.80, 0.52], [0.20, 0.52], [0.62, 0.55], [0.38, 0.55], [0.63, 0.76],
    [0.37, 0.76], [0.64, 0.96], [0.36, 0.96]])


def _person_boxes(rng: np.random.Generator, n: int, width: np.ndarray, height: np.ndarray) -> np.ndarray:
    """[n, 4] xywh person boxes inside their images, heights log-uniform so all COCO area ranges occur."""
    h = np.exp(rng.uniform(np.log(24), np.log(0.95 * height)))
    w = np.minimum(h * rng.uniform(0.3, 0.8, n), 0.95 * width)
    x = rng.uniform(0, 1, n) * (width - w)
    y = rng.uniform(0, 1, n) * (height - h)
    return np.stack([x, y, w, h], axis=1)


def _pose_in_box(rng: np.random.Generator, boxes: np.ndarray, k: int, jitter: float) -> np.ndarray:
    """[n, k, 2] keypoints: the template (or random points) in each box, jittered by `jitter` box sizes."""
    n = len(boxes)
    template = _COCO17_TEMPLATE if k == 17 else rng.uniform(0.1, 0.9, (k, 2))
    unit = template[None] + rng.normal(0, jitter, (n, k, 2))
    return boxes[:, None, :2] + unit * boxes[:, None, 2:4]


def _coco_annotations(rng: np.random.Generator, boxes: np.ndarray, kpts: np.ndarray, owner: np.ndarray,
                      image_ids: np.ndarray) -> List[Dict]:
    """COCO annotation dicts of the persons (boxes [n, 4] xywh, keypoints [n, k, 2], owner [n] image positions):
    random visibility flags, 8% without labelled keypoints, 1% crowd regions, segmentation-like areas."""
    n_gt, k = kpts.shape[:2]
    vis = rng.choice([0, 1, 2], size=(n_gt, k), p=[0.25, 0.15, 0.6])
    vis[rng.uniform(size=n_gt) < 0.08] = 0  # persons without labelled keypoints (ignored by COCOeval)
    gt_xyv = np.concatenate([np.where(vis[..., None] > 0, np.round(kpts, 2), 0.0), vis[..., None]], axis=2)
    crowd = rng.uniform(size=n_gt) < 0.01
    areas = boxes[:, 2] * boxes[:, 3] * rng.uniform(0.45, 0.75, n_gt)
    return [{
        "id": i + 1, "image_id": int(image_ids[owner[i]]), "category_id": 1, "iscrowd": int(crowd[i]),
        "bbox": [round(float(v), 2) for v in boxes[i]], "area": round(float(areas[i]), 2),
        "num_keypoints": 0 if crowd[i] else int((vis[i] > 0).sum()),
        "keypoints": [0] * (3 * k) if crowd[i] else [float(v) if j % 3 != 2 else int(v)
                                                       for j, v in enumerate(gt_xyv[i].reshape(-1))],
    } for i in range(n_gt)]


def _predictions(rng: np.random.Generator, boxes: np.ndarray, kpts: np.ndarray, owner: np.ndarray,
                 image_ids: np.ndarray, sizes: np.ndarray, num_predictions: int,
                 input_aspect: float) -> Dict[str, np.ndarray]:
    """The `process()` arguments for 1-6 perturbed copies of each person (boxes, kpts, owner as for the ground
    truth) and false positives spread over all images up to `num_predictions`, in image order."""
    n_gt, k = kpts.shape[:2]
    copies = rng.integers(1, 7, n_gt)
    src = np.repeat(np.arange(n_gt), copies)
    n_fp = max(0, int(num_predictions) - len(src))
    size_of = np.sqrt(boxes[src, 2] * boxes[src, 3])[:, None, None]
    pred_kpts = kpts[src] + rng.normal(0, 1, (len(src), k, 2)) * size_of * rng.uniform(0.005, 0.08, (len(src), 1, 1))
    pred_boxes = boxes[src] + rng.normal(0, 0.05, (len(src), 4)) * boxes[src, 2:4].repeat(2, axis=1)
    fp_img = rng.integers(0, len(image_ids), n_fp)
    fp_boxes = _person_boxes(rng, n_fp, sizes[fp_img, 0].astype(float), sizes[fp_img, 1].astype(float))
    fp_kpts = _pose_in_box(rng, fp_boxes, k, 0.1)
    all_kpts = np.concatenate([pred_kpts, fp_kpts]).astype(np.float32)
    all_boxes = np.concatenate([pred_boxes, fp_boxes])
    all_boxes[:, 2:] = np.maximum(all_boxes[:, 2:], 2.0)
    centers, scales = boxes_to_center_scale(all_boxes, input_aspect)
    maxvals = rng.beta(4, 2, (len(all_kpts), k, 1)).astype(np.float32)
    maxvals[len(src):] *= np.float32(0.6)  # false positives are less confident
    box_scores = np.concatenate([rng.uniform(0.5, 1.0, len(src)), rng.uniform(0.0, 0.7, n_fp)])
    pred_images = np.concatenate([image_ids[owner[src]], image_ids[fp_img]])
    # detector output comes image by image
    order = np.argsort(pred_images, kind="stable")
    return {"preds": all_kpts[order], "maxvals": maxvals[order], "centers": centers[order],
            "scales": scales[order], "box_scores": box_scores[order], "image_ids": pred_images[order]}


def make_synthetic_eval(
    num_images: int = 5000,
    num_predictions: int = 100_000,
    seed: int = 0,
    keypoint_set: KeypointSet = COCO17,
    image_size: Tuple[int, int] = (640, 480),
    input_aspect: float = 192 / 256,
) -> Tuple[Dict, Dict[str, np.ndarray]]:
    """Ground truth and about `num_predictions` predictions over `num_images` images (see the module docstring)."""
    kset = get_keypoint_set(keypoint_set)
    rng = np.random.default_rng(seed)
    image_ids = np.arange(1, num_images + 1, dtype=np.int64) * 7  # sparse ids, as COCO's
    sizes = np.where(rng.uniform(size=(num_images, 1)) < 0.7, image_size, image_size[::-1])
    # val2017: about half the images have labelled people, 2.7 per such image on average
    people = np.where(rng.uniform(size=num_images) < 0.55, rng.geometric(0.37, num_images), 0)
    owner = np.repeat(np.arange(num_images), people)
    boxes = _person_boxes(rng, len(owner), sizes[owner, 0].astype(float), sizes[owner, 1].astype(float))
    kpts = _pose_in_box(rng, boxes, kset.num_keypoints, 0.04)
    images = [{"id": int(i), "width": int(w), "height": int(h), "file_name": f"{int(i):012d}.jpg"}
              for i, (w, h) in zip(image_ids, sizes)]
    gt = {"images": images, "annotations": _coco_annotations(rng, boxes, kpts, owner, image_ids),
          "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(kset.names),
                          "skeleton": [[a + 1, b + 1] for a, b in kset.skeleton]}]}
    return gt, _predictions(rng, boxes, kpts, owner, image_ids, sizes, num_predictions, input_aspect)
