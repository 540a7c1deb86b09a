"""COCO keypoint evaluation (OKS AP) with the official HRNet protocol, in reset / process / evaluate form.

Protocol of the official `COCODataset.evaluate` (Sun et al., CVPR 2019): each instance is rescored as
box score x mean of its keypoint scores above `in_vis_thre` (0 when none is), OKS-NMS (or soft OKS-NMS) runs per
image with `oks_thre` on the areas `prod(scale * 200)`, the kept instances are written as
`<output_dir>/results/keypoints_<name>_results_0.json`, then COCOeval('keypoints') runs with the keypoint set's
sigmas. The 10 COCO stats come back as an OrderedDict with the official names.

`process` takes preds [N,K,2] (image pixels), maxvals [N,K,1], centers [N,2], scales [N,2], box_scores [N],
image_ids [N] and optional sample_ids [N]. State is kept as numpy arrays; `state()` / `merge_states()` let a
distributed run gather every rank's state and evaluate once (duplicates from sampler padding are dropped by sample id).
"""

import contextlib
import copy
import io
import json
import logging
import os
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from ..fileio import write_json_atomic  # noqa: F401  (re-exported by hrnet_pose.evaluation)
from ..keypoints import COCO17, KeypointSet, get_keypoint_set
from .oks_nms import oks_nms, rescore, soft_oks_nms

logger = logging.getLogger(__name__)

STATS_NAMES = ["AP", "Ap .5", "AP .75", "AP (M)", "AP (L)", "AR", "AR .5", "AR .75", "AR (M)", "AR (L)"]
BACKENDS = ("pycocotools", "faster_coco_eval")
_FIELDS = ("preds", "maxvals", "centers", "scales", "box_scores", "image_ids", "sample_ids")


def _quiet(fn, *args, **kwargs):
    """Run a pycocotools call and send what it prints to the log instead of stdout."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        out = fn(*args, **kwargs)
    text = buf.getvalue().strip()
    if text:
        logger.info("%s", text)
    return out


def _backend_classes(backend: str):
    if backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
        return COCO, COCOeval
    if backend == "faster_coco_eval":
        try:
            from faster_coco_eval import COCO, COCOeval_faster
        except ImportError as err:
            raise ImportError("backend 'faster_coco_eval' needs the faster-coco-eval package: "
                              "pip install faster-coco-eval") from err
        return COCO, COCOeval_faster
    raise ValueError(f"unknown COCO evaluation backend {backend!r}; valid: {list(BACKENDS)}")


def load_coco(ann_file_or_coco, backend: str = "pycocotools"):
    """A COCO ground-truth object of `backend` from a path or an existing COCO object (of either library)."""
    coco_cls, _ = _backend_classes(backend)
    if isinstance(ann_file_or_coco, (str, os.PathLike)):
        path = os.fspath(ann_file_or_coco)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"COCO annotation file not found: {path} (expected a person_keypoints_*.json)")
        return _quiet(coco_cls, path)
    if not hasattr(ann_file_or_coco, "dataset") or not hasattr(ann_file_or_coco, "loadRes"):
        raise TypeError(f"expected a COCO annotation path or a COCO object, got {type(ann_file_or_coco).__name__}")
    if isinstance(ann_file_or_coco, coco_cls):
        return ann_file_or_coco
    coco = coco_cls()
    coco.dataset = ann_file_or_coco.dataset
    _quiet(coco.createIndex)
    return coco


def run_cocoeval(
    coco_gt,
    results: Union[str, List[dict]],
    sigmas: Optional[np.ndarray] = None,
    img_ids: Optional[Sequence[int]] = None,
    backend: str = "pycocotools",
) -> "OrderedDict[str, float]":
    """COCOeval('keypoints') of a results file or list against `coco_gt` -> OrderedDict of the 10 stats."""
    _, eval_cls = _backend_classes(backend)
    coco_gt = load_coco(coco_gt, backend)
    if isinstance(results, (str, os.PathLike)):
        if not os.path.isfile(results):
            raise FileNotFoundError(f"keypoint results file not found: {results}")
        with open(results) as f:
            results = json.load(f)
    if len(results) == 0:
        raise ValueError("no keypoint results to evaluate (the results list is empty)")
    coco_dt = _quiet(coco_gt.loadRes, copy.deepcopy(list(results)))
    coco_eval = eval_cls(coco_gt, coco_dt, "keypoints")
    if backend == "pycocotools":
        coco_eval.params.useSegm = None  # as the official code; faster-coco-eval reads it as "use bbox IoU"
    if sigmas is not None:
        coco_eval.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
    if img_ids is not None:
        coco_eval.params.imgIds = sorted(int(i) for i in img_ids)
    _quiet(coco_eval.evaluate)
    _quiet(coco_eval.accumulate)
    _quiet(coco_eval.summarize)
    return OrderedDict((name, float(v)) for name, v in zip(STATS_NAMES, coco_eval.stats[:10]))


class CocoKeypointEvaluator:
    """Accumulates per-person predictions and evaluates them with the official HRNet COCO protocol."""

    def __init__(
        self,
        ann_file_or_coco,
        keypoint_set: Union[KeypointSet, str, None] = COCO17,
        use_gt_bbox: bool = True,
        in_vis_thre: float = 0.2,
        oks_thre: float = 0.9,
        soft_nms: bool = False,
        backend: str = "pycocotools",
        boxes_source_label: Optional[str] = None,
        img_ids: Optional[Sequence[int]] = None,
    ) -> None:
        self.backend = backend
        self.coco = load_coco(ann_file_or_coco, backend)
        self.keypoint_set = get_keypoint_set(keypoint_set)
        self.use_gt_bbox = bool(use_gt_bbox)
        self.in_vis_thre = float(in_vis_thre)
        self.oks_thre = float(oks_thre)
        self.soft_nms = bool(soft_nms)
        self.boxes_source_label = boxes_source_label or ("GT boxes" if use_gt_bbox else "detector boxes")
        self.img_ids = None if img_ids is None else [int(i) for i in img_ids]
        self.results: List[dict] = []
        self.reset()

    def reset(self) -> None:
        self._chunks: Dict[str, list] = {k: [] for k in _FIELDS}

    def __len__(self) -> int:
        return int(sum(len(c) for c in self._chunks["image_ids"]))

    def process(
        self,
        preds: np.ndarray,
        maxvals: np.ndarray,
        centers: np.ndarray,
        scales: np.ndarray,
        box_scores: np.ndarray,
        image_ids: np.ndarray,
        sample_ids: Optional[np.ndarray] = None,
    ) -> None:
        """Add a batch of N persons (shapes in the module docstring); arrays are copied."""
        preds = np.asarray(preds, dtype=np.float32)
        k = self.keypoint_set.num_keypoints
        if preds.ndim != 3 or preds.shape[1] != k or preds.shape[2] < 2:
            raise ValueError(f"preds must be [N, {k}, 2] for keypoint set '{self.keypoint_set.name}', "
                             f"got shape {preds.shape}")
        n = preds.shape[0]
        arrays = {
            "preds": preds[..., :2],
            "maxvals": np.asarray(maxvals, dtype=np.float32).reshape(n, k, 1),
            "centers": np.asarray(centers).reshape(n, 2).copy(),
            "scales": np.asarray(scales).reshape(n, 2).copy(),
            "box_scores": np.asarray(box_scores, dtype=np.float64).reshape(n),
            "image_ids": np.asarray(image_ids, dtype=np.int64).reshape(n),
            "sample_ids": (np.full(n, -1, np.int64) if sample_ids is None
                           else np.asarray(sample_ids, dtype=np.int64).reshape(n)),
        }
        for key, value in arrays.items():
            self._chunks[key].append(np.array(value, copy=True))

    def state(self) -> Dict[str, np.ndarray]:
        """Everything processed so far as a dict of numpy arrays (for all-gather across ranks)."""
        k = self.keypoint_set.num_keypoints
        empty = {"preds": (0, k, 2), "maxvals": (0, k, 1), "centers": (0, 2), "scales": (0, 2),
                 "box_scores": (0,), "image_ids": (0,), "sample_ids": (0,)}
        return {key: (np.concatenate(c) if c else np.zeros(empty[key])) for key, c in self._chunks.items()}

    def merge_states(self, states: Sequence[Dict[str, np.ndarray]]) -> None:
        """Replace the accumulated state by the union of `states`.

        Samples with a sample id (>= 0) are deduplicated (first copy kept) and put in sample-id order, so the result
        does not depend on how a distributed sampler split or padded the data.
        """
        merged = {key: np.concatenate([np.asarray(s[key]) for s in states]) for key in _FIELDS}
        sid = merged["sample_ids"]
        with_id = np.flatnonzero(sid >= 0)
        _, first = np.unique(sid[with_id], return_index=True)  # sorted by id
        order = np.concatenate([with_id[first], np.flatnonzero(sid < 0)])
        self.reset()
        for key in _FIELDS:
            self._chunks[key].append(merged[key][order])

    def _kept_results(self) -> List[dict]:
        st = self.state()
        n = len(st["image_ids"])
        if n == 0:
            raise RuntimeError("CocoKeypointEvaluator.evaluate() called before any process(): nothing to evaluate")
        kpts = np.concatenate([st["preds"], st["maxvals"]], axis=2)  # [N, K, 3]
        # official "area": prod(scale * 200) of the padded box, computed in the scale's precision
        scales = st["scales"]
        areas = np.prod(scales * np.asarray(200.0, dtype=scales.dtype), axis=1).astype(np.float64)
        scores = rescore(st["box_scores"], st["maxvals"], self.in_vis_thre)
        image_ids = st["image_ids"]
        uniq, first = np.unique(image_ids, return_index=True)
        sigmas = self.keypoint_set.sigmas
        nms = soft_oks_nms if self.soft_nms else oks_nms
        results = []
        for img in uniq[np.argsort(first)]:  # images in order of first appearance, as the official dict
            idx = np.flatnonzero(image_ids == img)
            keep = nms(kpts[idx], scores[idx], areas[idx], self.oks_thre, sigmas=sigmas)
            for i in idx[keep] if len(keep) else idx:
                results.append({
                    "image_id": int(img),
                    "category_id": 1,
                    "keypoints": [float(v) for v in kpts[i].reshape(-1)],
                    "score": float(scores[i]),
                    "center": [float(v) for v in st["centers"][i]],
                    "scale": [float(v) for v in st["scales"][i]],
                })
        return results

    def evaluate(self, output_dir: Optional[str] = None, name: str = "val2017") -> "OrderedDict[str, float]":
        """Rescore, NMS, write the results json (when `output_dir`), run COCOeval; returns the 10 stats."""
        self.results = self._kept_results()
        if output_dir is not None:
            res_file = os.path.join(output_dir, "results", f"keypoints_{name}_results_0.json")
            write_json_atomic(self.results, res_file)
            logger.info("wrote %d keypoint results to %s", len(self.results), res_file)
        stats = run_cocoeval(self.coco, self.results, self.keypoint_set.sigmas, self.img_ids, self.backend)
        logger.info("COCO keypoint evaluation (%s, %d instances kept of %d): AP %.4f",
                    self.boxes_source_label, len(self.results), len(self), stats["AP"])
        return stats



def format_results_table(name_values: "OrderedDict[str, float]", arch: str) -> str:
    """The official markdown table: header `| Arch | AP | Ap .5 | ... |`, separator, one row with 3 decimals."""
    names, values = list(name_values.keys()), list(name_values.values())
    if len(arch) > 15:  # official truncation of long names
        arch = arch[:8] + "..."
    header = "| Arch " + " ".join(f"| {n}" for n in names) + " |"
    sep = "|---" * (len(names) + 1) + "|"
    row = "| " + arch + " " + " ".join(f"| {v:.3f}" for v in values) + " |"
    return "\n".join([header, sep, row])


def describe_protocol(use_gt_bbox: bool, bbox_file: Optional[str], flip_test: bool, decoder: str,
                      image_size: Sequence[int]) -> str:
    """One line saying how a number was made, e.g. 'GT boxes, flip test on, decoder default, input 192x256 (WxH)'."""
    boxes = "GT boxes" if use_gt_bbox else f"detector boxes from {bbox_file}"
    return (f"{boxes}, flip test {'on' if flip_test else 'off'}, decoder {decoder}, "
            f"input {int(image_size[0])}x{int(image_size[1])} (WxH)")
