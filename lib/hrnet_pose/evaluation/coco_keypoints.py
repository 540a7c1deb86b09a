"""COCO keypoint evaluation (OKS AP) with the official HRNet protocol, in reset / process / evaluate form.

Protocol of the official `COCODataset.evaluate` (Sun et al., CVPR 2019): each instance is rescored as
box score x mean of its keypoint scores above `in_vis_thre` (0 when none is), OKS-NMS (or soft OKS-NMS) runs per
image with `oks_thre` on the areas `prod(scale * 200)`, the kept instances are written as
`<output_dir>/results/keypoints_<name>_results_0.json`, then COCOeval('keypoints') runs with the keypoint set's
sigmas. The 10 COCO stats come back as an OrderedDict with the official names.

Backends (TEST.COCO_EVAL_BACKEND): 'numpy' (default) evaluates the kept arrays directly with `fast_cocoeval`, a
vectorised COCOeval that gives pycocotools' numbers bit for bit; 'pycocotools' and 'faster_coco_eval' run those
libraries on the results list (shallow-copied for `loadRes`, never a JSON round trip or a deep copy). OKS-NMS runs
for all images at once (`oks_nms_grouped`, the per-image function's exact keep order). The results file is written
only when an output folder is given, and the `results` list of dicts is built only when asked for.

`process` takes preds [N,K,2] (image pixels), maxvals [N,K,1], centers [N,2], scales [N,2], box_scores [N],
image_ids [N] and optional sample_ids [N]. State is kept as numpy arrays; `state()` / `merge_states()` let a
distributed run gather every rank's state and evaluate once (duplicates from sampler padding are dropped by sample id).
"""

import contextlib
import io
import json
import logging
import os
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from ..config.defaults import default
from ..fileio import atomic_write, write_json_atomic  # write_json_atomic is also re-exported by evaluation
from ..keypoints import COCO17, KeypointSet, get_keypoint_set
from .fast_cocoeval import KeypointGroundTruth, evaluate_keypoints
from .oks_nms import oks_nms_grouped, rescore, soft_oks_nms
from .pck import box_pck_epe

logger = logging.getLogger(__name__)

STATS_NAMES = ["AP", "Ap .5", "AP .75", "AP (M)", "AP (L)", "AR", "AR .5", "AR .75", "AR (M)", "AR (L)"]
BACKENDS = ("numpy", "pycocotools", "faster_coco_eval")
DEFAULT_BACKEND = default("TEST.COCO_EVAL_BACKEND")
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
    if backend in ("pycocotools", "numpy"):  # numpy keeps its ground truth in a pycocotools COCO object
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


def load_coco(ann_file_or_coco, backend: str = DEFAULT_BACKEND):
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


def keypoint_category_id(coco) -> int:
    """The category id results are written with: the ground truth's only category (a user's own data, read by
    `datasets.annotations`), else 1 (COCO's person)."""
    cats = coco.dataset.get("categories") or []
    return int(cats[0]["id"]) if len(cats) == 1 and "id" in cats[0] else 1


def _stats(values) -> "OrderedDict[str, float]":
    return OrderedDict((name, float(v)) for name, v in zip(STATS_NAMES, values[:10]))


def run_cocoeval(
    coco_gt,
    results: Union[str, List[dict]],
    sigmas: Optional[np.ndarray] = None,
    img_ids: Optional[Sequence[int]] = None,
    backend: str = DEFAULT_BACKEND,
) -> "OrderedDict[str, float]":
    """COCOeval('keypoints') of a results file or list against `coco_gt` -> OrderedDict of the 10 stats.

    `backend` 'numpy' gives the same numbers as 'pycocotools' (see `fast_cocoeval`), faster.
    """
    _, eval_cls = _backend_classes(backend)
    coco_gt = load_coco(coco_gt, backend)
    if isinstance(results, (str, os.PathLike)):
        if not os.path.isfile(results):
            raise FileNotFoundError(f"keypoint results file not found: {results}")
        with open(results) as f:
            results = json.load(f)
    if len(results) == 0:
        raise ValueError("no keypoint results to evaluate (the results list is empty)")
    if backend == "numpy":
        sigmas = COCO17.sigmas if sigmas is None else np.asarray(sigmas, dtype=np.float64)
        cat = keypoint_category_id(coco_gt)
        keep = [r for r in results if r.get("category_id", cat) == cat]  # loadRes + catIds: that category only
        kpts = np.array([r["keypoints"] for r in keep], dtype=np.float64).reshape(len(keep), -1, 3)
        stats = evaluate_keypoints(KeypointGroundTruth.from_coco(coco_gt), [r["image_id"] for r in keep], kpts,
                                   [r["score"] for r in keep], sigmas, img_ids, category_id=cat)
        return _stats(stats)
    # loadRes adds area/id/bbox to each dict: a shallow copy keeps the caller's list intact at no real cost
    coco_dt = _quiet(coco_gt.loadRes, [dict(r) for r in results])
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
    return _stats(coco_eval.stats)


class CocoKeypointEvaluator:
    """Accumulates per-person predictions and evaluates them with the official HRNet COCO protocol.

    Defaults are the config's (TEST.USE_GT_BBOX, IN_VIS_THRE, OKS_THRE, SOFT_NMS, COCO_EVAL_BACKEND of `get_cfg()`);
    `engine.validate.build_evaluator` passes a run's values.
    """

    def __init__(
        self,
        ann_file_or_coco,
        keypoint_set: Union[KeypointSet, str, None] = COCO17,
        use_gt_bbox: bool = default("TEST.USE_GT_BBOX"),
        in_vis_thre: float = default("TEST.IN_VIS_THRE"),
        oks_thre: float = default("TEST.OKS_THRE"),
        soft_nms: bool = default("TEST.SOFT_NMS"),
        backend: str = DEFAULT_BACKEND,
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
        self.category_id = keypoint_category_id(self.coco)
        self._gt_arrays: Optional[KeypointGroundTruth] = None
        self._kept: Optional[Dict[str, np.ndarray]] = None
        self._results: Optional[List[dict]] = None
        self.reset()

    @property
    def results(self) -> List[dict]:
        """The kept instances of the last `evaluate()` as COCO result dicts (image_id, category_id, keypoints,
        score, center, scale), the content of the results file; built on first access."""
        if self._results is None:
            self._results = [] if self._kept is None else _result_dicts(self._kept, self.category_id)
        return self._results

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

    def _kept_arrays(self) -> Dict[str, np.ndarray]:
        """Rescore and OKS-NMS every image -> the kept instances as arrays, in the official order (images in order
        of first appearance, each image's instances in NMS keep order)."""
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
        sigmas = self.keypoint_set.sigmas
        if self.soft_nms:
            uniq, first = np.unique(image_ids, return_index=True)
            parts = []
            for img in uniq[np.argsort(first)]:  # images in order of first appearance, as the official dict
                idx = np.flatnonzero(image_ids == img)
                parts.append(idx[soft_oks_nms(kpts[idx], scores[idx], areas[idx], self.oks_thre, sigmas=sigmas)])
            keep = np.concatenate(parts)
        else:
            keep = oks_nms_grouped(kpts, scores, areas, image_ids, self.oks_thre, sigmas=sigmas)
        return {"image_ids": image_ids[keep], "keypoints": kpts[keep], "scores": scores[keep],
                "centers": st["centers"][keep], "scales": st["scales"][keep], "sample_ids": st["sample_ids"][keep]}

    def evaluate(self, output_dir: Optional[str] = None, name: str = "val2017") -> "OrderedDict[str, float]":
        """Rescore, NMS, write the results json (when `output_dir`), run COCOeval; returns the 10 stats."""
        self._kept, self._results = self._kept_arrays(), None
        kept = self._kept
        if output_dir is not None:
            res_file = os.path.join(output_dir, "results", f"keypoints_{name}_results_0.json")
            write_results_file(kept, res_file, self.category_id)
            logger.info("wrote %d keypoint results to %s", len(kept["scores"]), res_file)
        if self.backend == "numpy":
            if self._gt_arrays is None:
                self._gt_arrays = KeypointGroundTruth.from_coco(self.coco)
            stats = _stats(evaluate_keypoints(self._gt_arrays, kept["image_ids"], kept["keypoints"], kept["scores"],
                                              self.keypoint_set.sigmas, self.img_ids, self.category_id))
        else:
            stats = run_cocoeval(self.coco, self.results, self.keypoint_set.sigmas, self.img_ids, self.backend)
        logger.info("COCO keypoint evaluation (%s, %s, %d instances kept of %d): AP %.4f",
                    self.boxes_source_label, self.backend, len(kept["scores"]), len(self), stats["AP"])
        return stats

    def keypoint_errors(self, thr: float = default("TEST.PCK_THRESHOLD")) -> Dict[str, float]:
        """PCK at `thr` of the GT box size and EPE in pixels of the last `evaluate()`'s kept instances against the
        non-crowd ground truth of the evaluated images (`pck.box_pck_epe`): for sets whose AP rests on guessed
        sigmas, and beside AP for every set."""
        if self._kept is None:
            raise RuntimeError("keypoint_errors() needs evaluate() first")
        if self._gt_arrays is None:
            self._gt_arrays = KeypointGroundTruth.from_coco(self.coco)
        gt = self._gt_arrays
        sel = ~gt.iscrowd & (gt.category_ids == self.category_id)
        if self.img_ids is not None:
            sel &= np.isin(gt.image_ids, self.img_ids)
        kept = self._kept
        pred = kept["keypoints"]
        k_gt = gt.keypoints.shape[1] if gt.keypoints.ndim == 3 else 0
        if pred.ndim == 3 and pred.shape[1] > k_gt > 0:
            # COCO-WholeBody: a file's `keypoints` field holds the 17 body points and the parts live in fields of
            # their own (scored by the per-part OKS); PCK / EPE are then those of the body points, which lead the 133
            pred = pred[:, :k_gt]
        return box_pck_epe(gt.keypoints[sel], gt.bbox[sel], gt.image_ids[sel], pred, kept["image_ids"], thr)


def write_results_file(kept: Dict[str, np.ndarray], path: str, category_id: int = 1) -> None:
    """Write kept arrays as the official results json (atomically), the same content as `json.dump` of `results`.

    With orjson installed (`pip install orjson`) the float64 arrays are serialised directly, ~15x faster than the
    json module for 100k persons (each float's shortest round-trip digits, as `repr`; compact separators). Without
    it, or with non-finite values (orjson would write null where json writes NaN), the json module's C encoder does.
    """
    try:
        import orjson
    except ImportError:
        orjson = None
    finite = all(np.isfinite(kept[key]).all() for key in ("keypoints", "scores", "centers", "scales"))
    if orjson is None or not finite:
        write_json_atomic(_result_dicts(kept, category_id), path)
        return
    n = len(kept["scores"])
    # float32 values go out as float64, as `float(v)` gives them to json: no shortest-float32 digits
    kpts = kept["keypoints"].reshape(n, -1).astype(np.float64)
    centers, scales = kept["centers"].astype(np.float64), kept["scales"].astype(np.float64)
    rows = [{"image_id": i, "category_id": category_id, "keypoints": k, "score": s, "center": c, "scale": sc}
            for i, k, s, c, sc in zip(kept["image_ids"].tolist(), kpts, kept["scores"].tolist(), centers, scales)]
    data = orjson.dumps(rows, option=orjson.OPT_SERIALIZE_NUMPY)
    atomic_write(path, lambda f: f.write(data), binary=True)


def _result_dicts(kept: Dict[str, np.ndarray], category_id: int = 1) -> List[dict]:
    """Kept arrays -> COCO result dicts with Python floats (`tolist` converts whole arrays at C speed)."""
    n = len(kept["scores"])
    return [{"image_id": i, "category_id": category_id, "keypoints": k, "score": s, "center": c, "scale": sc}
            for i, k, s, c, sc in zip(kept["image_ids"].tolist(), kept["keypoints"].reshape(n, -1).tolist(),
                                      kept["scores"].tolist(), kept["centers"].tolist(), kept["scales"].tolist())]


def format_results_table(name_values: "OrderedDict[str, float]", arch: str) -> str:
    """The official markdown table: header `| Arch | AP | Ap .5 | ... |`, separator, one row with 3 decimals."""
    names, values = list(name_values.keys()), list(name_values.values())
    if len(arch) > 15:  # official truncation of long names
        arch = arch[:8] + "..."
    header = "| Arch " + " ".join(f"| {n}" for n in names) + " |"
    sep = "|---" * (len(names) + 1) + "|"
    row = "| " + arch + " " + " ".join(f"| {v:.3f}" for v in values) + " |"
    return "\n".join([header, sep, row])


def describe_protocol(
    use_gt_bbox: bool,
    bbox_file: Optional[str],
    flip_test: bool,
    decoder: str,
    image_size: Sequence[int],
    udp: Optional[bool] = None,
    flip_alignment: Optional[str] = None,
    refinement: Optional[str] = None,
    forward_precision: Optional[str] = None,
    backend: Optional[str] = None,
) -> str:
    """One line saying how a number was made.

    The first part is always there: 'GT boxes, flip test on, decoder default, input 192x256 (WxH)'. Each optional
    argument given adds a '; '-separated part: `udp` -> 'UDP on|off', `flip_alignment` (a description, used only
    with the flip test) -> 'flip: ...', `refinement` -> 'refinement: ...', `forward_precision` ('fp32', 'bf16',
    'fp16') -> 'forward fp32' or 'forward bf16 autocast, heatmaps decoded in float32', `backend` -> 'COCO eval: ...'.
    """
    boxes = "GT boxes" if use_gt_bbox else f"detector boxes from {bbox_file}"
    parts = [f"{boxes}, flip test {'on' if flip_test else 'off'}, decoder {decoder}, "
             f"input {int(image_size[0])}x{int(image_size[1])} (WxH)"]
    if udp is not None:
        parts.append(f"UDP {'on' if udp else 'off'}")
    if flip_alignment is not None and flip_test:
        parts.append(f"flip: {flip_alignment}")
    if refinement is not None:
        parts.append(f"refinement: {refinement}")
    if forward_precision is not None:
        if forward_precision in ("", "fp32"):
            parts.append("forward fp32")
        else:
            parts.append(f"forward {forward_precision} autocast, heatmaps decoded in float32")
    if backend is not None:
        parts.append(f"COCO eval: {backend}")
    return "; ".join(parts)
