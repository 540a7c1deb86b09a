"""Evaluation of the public keypoint sets: COCO-WholeBody parts, CrowdPose crowd levels, AP-10K families.

Each evaluator is the COCO one (`CocoKeypointEvaluator`: rescoring, OKS-NMS with the set's sigmas, results json)
with the scoring its dataset's own tools do, on the same vectorised COCOeval (`fast_cocoeval`):
- COCO-WholeBody (Jin et al., ECCV 2020; xtcocotools `COCOeval` with iouType keypoints_{body,foot,face,lefthand,
  righthand,wholebody}, use_area=True, as MMPose's CocoWholeBodyMetric calls it): each part is scored alone with its
  slice of the 133 sigmas. As xtcocotools does, a gt is ignored when it is a crowd or has no labelled keypoint *in
  that part* (the count of v > 0, not `num_keypoints`), a result with no keypoint score > 0 in that part is left out
  of that part, and a result's area is the extent of its 17 body keypoints (loadRes reads `keypoints`) for every
  part. Stats: the whole-body 10 (AP, Ap .5, ...) then 'body AP', 'body AR', ... 'righthand AR'.
- CrowdPose (Li et al., CVPR 2019; crowdposetools `COCOeval`): OKS and the area ranges use 0.53 x the gt box's
  width x height (the files have no area); gts are ignored by `num_keypoints == 0` or iscrowd. Stats: AP, Ap .5,
  AP .75, AR, AR .5, AR .75 over all images, then 'AP (easy)', 'AP (medium)', 'AP (hard)': the images are split by
  their `crowdIndex` with crowdposetools' thresholds (easy < 0.2 <= medium < 0.8 <= hard, `get_type_result(first=
  0.2, second=0.8)`), COCOeval runs again on each split alone, and the value is the mean of its precision array at
  area 'all' (-1 entries of categories without gt included, as there), rounded to 4 decimals. An image without
  `crowdIndex` gets the paper's crowd index (mean over its persons of the other persons' labelled joints inside the
  person's box over the person's own labelled joints).
- AP-10K (Yu et al., NeurIPS 2021): COCOeval over all 54 species (each result keeps its box's category); besides the
  10 stats, 'AP <family>' for each `supercategory` of the file: the mean AP of that family's species.
"""

import logging
import os
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..fileio import write_json_atomic
from .coco_keypoints import STATS_NAMES, CocoKeypointEvaluator
from .fast_cocoeval import KeypointGroundTruth, accumulate_keypoints, keypoint_extent_area, summarize_keypoints

logger = logging.getLogger(__name__)

WHOLEBODY_PARTS = (("body", "keypoints", 0, 17), ("foot", "foot_kpts", 17, 23), ("face", "face_kpts", 23, 91),
                   ("lefthand", "lefthand_kpts", 91, 112), ("righthand", "righthand_kpts", 112, 133))
CROWD_LEVELS = (("easy", 0.2), ("medium", 0.8), ("hard", float("inf")))  # crowdIndex below each bound
CROWDPOSE_STATS = ("AP", "Ap .5", "AP .75", "AR", "AR .5", "AR .75")


def _part_ground_truth(dataset: Dict, start: int, stop: int, field: Optional[str]) -> KeypointGroundTruth:
    """The gt of one whole-body part: its keypoints (from `field`, or the 133 concatenated when None) and no
    `num_keypoints`, so a gt is ignored when the part has no labelled keypoint (xtcocotools)."""
    anns = []
    for a in dataset.get("annotations", []):
        if field is None:
            values = []
            for _, name, lo, hi in WHOLEBODY_PARTS:
                values.extend(a.get(name) or [0.0] * ((hi - lo) * 3))
        else:
            values = a.get(field) or [0.0] * ((stop - start) * 3)
        anns.append({k: v for k, v in a.items() if k != "num_keypoints"} | {"keypoints": values})
    return KeypointGroundTruth({"images": dataset.get("images", []), "categories": dataset.get("categories", []),
                                "annotations": anns})


def evaluate_wholebody(dataset: Dict, image_ids: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                       sigmas: np.ndarray, img_ids: Optional[Sequence[int]] = None) -> "OrderedDict[str, float]":
    """COCO-WholeBody scores (module docstring) of results keypoints [N, 133, 3] against a COCO-WholeBody dataset
    dict: the whole-body 10 stats, then AP and AR of each part."""
    keypoints = np.asarray(keypoints, np.float64)
    image_ids = np.asarray(image_ids, np.int64).reshape(-1)
    scores = np.asarray(scores, np.float64).reshape(-1)
    if keypoints.ndim != 3 or keypoints.shape[1] != 133:
        raise ValueError(f"COCO-WholeBody results must be [N, 133, 3], got {keypoints.shape}")
    body_area = keypoint_extent_area(keypoints[:, :17])
    out: "OrderedDict[str, float]" = OrderedDict()
    parts = [(name, field, lo, hi) for name, field, lo, hi in WHOLEBODY_PARTS] + [("wholebody", None, 0, 133)]
    for name, field, lo, hi in parts:
        gt = _part_ground_truth(dataset, lo, hi, field)
        kp = keypoints[:, lo:hi]
        has_score = (kp[:, :, 2] > 0).any(axis=1)  # xtcocotools drops results without a positive score here
        if has_score.any():
            precision, recall = accumulate_keypoints(gt, image_ids[has_score], kp[has_score], scores[has_score],
                                                     np.asarray(sigmas)[lo:hi], img_ids, det_area=body_area[has_score])
            stats = summarize_keypoints(precision, recall)
        else:
            stats = np.full(10, -1.0)
        if name == "wholebody":
            out = OrderedDict(list(zip(STATS_NAMES, map(float, stats))) + list(out.items()))
        else:
            out[f"{name} AP"], out[f"{name} AR"] = float(stats[0]), float(stats[5])
    return out


def crowd_index(dataset: Dict) -> Dict[int, float]:
    """Each image's crowd index: `crowdIndex` where the file gives it, else the CrowdPose paper's definition."""
    by_image: Dict[int, List[dict]] = {}
    for a in dataset.get("annotations", []):
        by_image.setdefault(int(a["image_id"]), []).append(a)
    out = {}
    for img in dataset.get("images", []):
        if "crowdIndex" in img:
            out[int(img["id"])] = float(img["crowdIndex"])
            continue
        anns = [a for a in by_image.get(int(img["id"]), []) if not a.get("iscrowd", 0) and a.get("keypoints")]
        kps = [np.asarray(a["keypoints"], np.float64).reshape(-1, 3) for a in anns]
        ratios = []
        for i, a in enumerate(anns):
            own = np.count_nonzero(kps[i][:, 2] > 0)
            if own == 0:
                continue
            x, y, w, h = a["bbox"]
            others = [k[k[:, 2] > 0, :2] for j, k in enumerate(kps) if j != i]
            pts = np.concatenate(others) if others else np.zeros((0, 2))
            inside = (pts[:, 0] >= x) & (pts[:, 0] <= x + w) & (pts[:, 1] >= y) & (pts[:, 1] <= y + h)
            ratios.append(np.count_nonzero(inside) / own)
        out[int(img["id"])] = float(np.mean(ratios)) if ratios else 0.0
    return out


def crowdpose_levels(dataset: Dict) -> Dict[str, List[int]]:
    """Image ids per crowd level (crowdposetools' `split(first=0.2, second=0.8)`)."""
    levels: Dict[str, List[int]] = {name: [] for name, _ in CROWD_LEVELS}
    for image_id, ci in crowd_index(dataset).items():
        levels[next(name for name, bound in CROWD_LEVELS if ci < bound)].append(image_id)
    return levels


def crowdpose_ground_truth(dataset: Dict) -> KeypointGroundTruth:
    """The gt with crowdposetools' area: 0.53 x box width x height for every annotation."""
    gt = KeypointGroundTruth(dataset)
    gt.area = gt.bbox[:, 2] * gt.bbox[:, 3] * 0.53
    return gt


def evaluate_crowdpose(dataset: Dict, image_ids: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                       sigmas: np.ndarray, gt: Optional[KeypointGroundTruth] = None) -> "OrderedDict[str, float]":
    """crowdposetools' numbers (module docstring) of results keypoints [N, 14, 3] against a CrowdPose dataset dict."""
    gt = gt if gt is not None else crowdpose_ground_truth(dataset)
    image_ids = np.asarray(image_ids, np.int64).reshape(-1)
    precision, recall = accumulate_keypoints(gt, image_ids, keypoints, scores, sigmas)
    stats = summarize_keypoints(precision, recall)
    out = OrderedDict(zip(CROWDPOSE_STATS, (float(stats[i]) for i in (0, 1, 2, 5, 6, 7))))
    for level, ids in crowdpose_levels(dataset).items():
        if not ids:
            out[f"AP ({level})"] = -1.0  # crowdposetools: no image, precision all -1
            continue
        p, _ = accumulate_keypoints(gt, image_ids, keypoints, scores, sigmas, img_ids=ids)
        out[f"AP ({level})"] = round(float(np.mean(p[:, :, :, 0, :])), 4)
    return out


def evaluate_ap10k(dataset: Dict, image_ids: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                   sigmas: np.ndarray, category_ids: np.ndarray,
                   gt: Optional[KeypointGroundTruth] = None) -> "OrderedDict[str, float]":
    """COCO keypoint stats over all species of an AP-10K dataset dict, then the mean AP of each family."""
    gt = gt if gt is not None else KeypointGroundTruth(dataset)
    precision, recall = accumulate_keypoints(gt, image_ids, keypoints, scores, sigmas, det_category_ids=category_ids)
    out = OrderedDict(zip(STATS_NAMES, map(float, summarize_keypoints(precision, recall))))
    families: Dict[str, List[int]] = {}
    for cat in dataset.get("categories", []):
        if cat.get("supercategory"):
            families.setdefault(str(cat["supercategory"]), []).append(int(cat["id"]))
    for family in sorted(families):
        cols = np.flatnonzero(np.isin(gt.cat_ids, families[family]))
        s = precision[:, :, cols, 0, 0]
        if (s > -1).any():  # families without a labelled animal in this split have no AP
            out[f"AP {family}"] = float(np.mean(s[s > -1]))
    return out


class _PublicSetEvaluator(CocoKeypointEvaluator):
    """The COCO evaluator's rescoring and OKS-NMS; subclasses write their dataset's results format and score it."""

    def _keep(self) -> Dict[str, np.ndarray]:
        self._kept, self._results = self._kept_arrays(), None
        return self._kept

    def _write(self, output_dir: Optional[str], name: str, rows: List[dict]) -> None:
        if output_dir is not None:
            res_file = os.path.join(output_dir, "results", f"keypoints_{name}_results_0.json")
            write_json_atomic(rows, res_file)
            logger.info("wrote %d keypoint results to %s", len(rows), res_file)

    def _log(self, stats: "OrderedDict[str, float]", what: str) -> None:
        logger.info("%s keypoint evaluation (%s, %d instances kept of %d): AP %.4f", what, self.boxes_source_label,
                    len(self._kept["scores"]), len(self), stats["AP"])


class CocoWholeBodyEvaluator(_PublicSetEvaluator):
    """COCO-WholeBody: results json in the dataset's own format, the part breakdown of `evaluate_wholebody`."""

    def evaluate(self, output_dir: Optional[str] = None, name: str = "val2017") -> "OrderedDict[str, float]":
        kept = self._keep()
        if output_dir is not None:
            self._write(output_dir, name, wholebody_rows(kept))
        stats = evaluate_wholebody(self.coco.dataset, kept["image_ids"], kept["keypoints"], kept["scores"],
                                   self.keypoint_set.sigmas, self.img_ids)
        self._log(stats, "COCO-WholeBody")
        return stats


class CrowdPoseEvaluator(_PublicSetEvaluator):
    """CrowdPose: crowdposetools' area and AP easy / medium / hard (`evaluate_crowdpose`)."""

    def evaluate(self, output_dir: Optional[str] = None, name: str = "test") -> "OrderedDict[str, float]":
        kept = self._keep()
        if output_dir is not None:
            self._write(output_dir, name, _coco_rows(kept, None))
        if self._gt_arrays is None:
            self._gt_arrays = crowdpose_ground_truth(self.coco.dataset)
        stats = evaluate_crowdpose(self.coco.dataset, kept["image_ids"], kept["keypoints"], kept["scores"],
                                   self.keypoint_set.sigmas, gt=self._gt_arrays)
        self._log(stats, "CrowdPose")
        return stats


class AP10KEvaluator(_PublicSetEvaluator):
    """AP-10K: each instance scored in its own species (`sample_categories[sample_id]`: the category of the
    dataset's box number sample_id), the family breakdown of `evaluate_ap10k`."""

    def __init__(self, ann_file_or_coco, sample_categories: Sequence[int], **kwargs) -> None:
        super().__init__(ann_file_or_coco, **kwargs)
        self.sample_categories = np.asarray(sample_categories, np.int64)

    def evaluate(self, output_dir: Optional[str] = None, name: str = "val") -> "OrderedDict[str, float]":
        kept = self._keep()
        sid = kept["sample_ids"]
        if (sid < 0).any() or (sid >= len(self.sample_categories)).any():
            raise ValueError("AP-10K evaluation needs each instance's sample id (its dataset index) to find its "
                             f"species; got ids outside [0, {len(self.sample_categories)})")
        cats = self.sample_categories[sid]
        if output_dir is not None:
            self._write(output_dir, name, _coco_rows(kept, cats))
        if self._gt_arrays is None:
            self._gt_arrays = KeypointGroundTruth.from_coco(self.coco)
        stats = evaluate_ap10k(self.coco.dataset, kept["image_ids"], kept["keypoints"], kept["scores"],
                               self.keypoint_set.sigmas, cats, gt=self._gt_arrays)
        self._log(stats, "AP-10K")
        return stats


def wholebody_rows(kept: Dict[str, np.ndarray]) -> List[dict]:
    """Kept instances as COCO-WholeBody results: body `keypoints` and the four part fields, x, y, score each."""
    rows = []
    for i in range(len(kept["scores"])):
        row = {"image_id": int(kept["image_ids"][i]), "category_id": 1, "score": float(kept["scores"][i])}
        for _, field, lo, hi in WHOLEBODY_PARTS:
            row[field] = kept["keypoints"][i, lo:hi].reshape(-1).tolist()
        rows.append(row)
    return rows


def _coco_rows(kept: Dict[str, np.ndarray], categories: Optional[np.ndarray]) -> List[dict]:
    n = len(kept["scores"])
    cats = np.ones(n, np.int64) if categories is None else categories
    return [{"image_id": i, "category_id": c, "keypoints": k, "score": s}
            for i, c, k, s in zip(kept["image_ids"].tolist(), cats.tolist(), kept["keypoints"].reshape(n, -1).tolist(),
                                  kept["scores"].tolist())]


PUBLIC_EVALUATORS = {"coco_wholebody": CocoWholeBodyEvaluator, "crowdpose": CrowdPoseEvaluator,
                     "ap10k": AP10KEvaluator}
# the end of the protocol line each reported number carries (TEST.COCO_EVAL_BACKEND does not apply to these: they
# always run on the vectorised COCOeval, which equals pycocotools bit for bit)
PUBLIC_PROTOCOLS = {
    "coco_wholebody": "COCO-WholeBody scoring as xtcocotools (per part, its own sigmas)",
    "crowdpose": "CrowdPose scoring as crowdposetools (area 0.53 x box, crowd levels at 0.2 / 0.8)",
    "ap10k": "AP-10K scoring (COCOeval over species, then family means)",
}
