"""MPII PCKh (Andriluka et al., CVPR 2014) with the protocol of the official HRNet `MPIIDataset.evaluate`.

A joint is correct when its distance to the ground truth is at most `threshold` x the head size, where the head size
is 0.6 x the diagonal of the annotated head box (SC_BIAS). Joints marked missing in the ground truth do not count.
The results are percentages: one per joint group (Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle: left and right
averaged), `Mean` over all joints but pelvis and thorax, weighted by how many of each are annotated, and `Mean@0.1`.

Official details that the numbers depend on, kept here:
- predictions are 0-based image pixels; they get +1 (in float32, as the official float32 array) to be compared with
  the 1-based MATLAB coordinates of `gt_<set>.mat`;
- `Mean@0.1` is read at index 11 of the threshold range 0, 0.01, ..., 0.5, which is the threshold **0.11**, not 0.1
  (MMPose's `PCKh@0.1` reads the same index; the published 37.7 of HRNet-W32 is this number);
- a distance exactly at the threshold counts as correct (`<=`).
Where the official code divides by zero (a joint that is never annotated in the set) it returns NaN for that joint and
for both means; here that joint's own value is NaN and the means are taken over the annotated joints.

Ground truth: `MpiiGroundTruth`, read from the official `gt_<set>.mat` (layout in `datasets.mpii`) by `load_gt_mat`.
Predictions: [N, 16, 2] in the order of the annotation json (the order of `gt_<set>.mat`).
`write_pred_mat` writes the official `pred.mat` ({'preds': [N, 16, 2] 1-based}) for the MPII test server.
"""

import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Union

import numpy as np

from ..errors import UserError
from ..fileio import atomic_write
from ..keypoints import MPII16, MPII_MAT_NAMES

logger = logging.getLogger(__name__)

SC_BIAS = 0.6  # the head size is this fraction of the head box diagonal
THRESHOLDS = np.arange(0, 0.5 + 0.01, 0.01)  # the official range of PCKh thresholds
MEAN_AT_01_INDEX = 11  # official: THRESHOLDS[11] is 0.11 (see the module docstring)
EXCLUDED_FROM_MEAN = (6, 7)  # pelvis and thorax (positions in the MPII order)
# The reported groups, by the joint names of gt_<set>.mat (keypoints.MPII_MAT_NAMES).
GROUPS = (("Head", ("head",)), ("Shoulder", ("lsho", "rsho")), ("Elbow", ("lelb", "relb")),
          ("Wrist", ("lwri", "rwri")), ("Hip", ("lhip", "rhip")), ("Knee", ("lkne", "rkne")),
          ("Ankle", ("lank", "rank")))
STATS_NAMES = [name for name, _ in GROUPS] + ["Mean", "Mean@0.1"]
PCKH_PROTOCOL = ("MPII PCKh@0.5: head size 0.6 x head box diagonal, Mean without pelvis and thorax, Mean@0.1 at "
                 "threshold 0.11 (official)")
PERF_NAME = "Mean"  # the number that picks the best model, as the official `perf_indicator`
NUM_JOINTS = MPII16.num_keypoints


class MpiiGroundTruthError(UserError, ValueError):
    """A gt_<set>.mat is malformed or does not match the predictions."""


@dataclass(frozen=True)
class MpiiGroundTruth:
    """The content of gt_<set>.mat, per person: joints [N, 16, 2] float64 (1-based pixels), missing [N, 16] bool,
    headboxes [N, 2, 2] float64 ((x1, y1), (x2, y2)) and the 16 joint names of the file."""

    joints: np.ndarray
    missing: np.ndarray
    headboxes: np.ndarray
    joint_names: Sequence[str] = MPII_MAT_NAMES

    def __len__(self) -> int:
        return len(self.joints)


def load_gt_mat(path: str) -> MpiiGroundTruth:
    """Read gt_<set>.mat (layout in `datasets.mpii`); errors name the file and the key at fault."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"MPII ground truth not found: {path} (gt_<DATASET.TEST_SET>.mat from the official "
                                "annotations, in DATASET.ROOT/annot/; see README.md, section MPII)")
    import scipy.io

    mat = scipy.io.loadmat(path)
    for key in ("dataset_joints", "jnt_missing", "pos_gt_src", "headboxes_src"):
        if key not in mat:
            raise MpiiGroundTruthError(f"{path}: no '{key}' (expected dataset_joints, jnt_missing, pos_gt_src, "
                                       "headboxes_src)")
    names = tuple(str(np.squeeze(n)) for n in np.asarray(mat["dataset_joints"]).ravel())
    if sorted(names) != sorted(MPII_MAT_NAMES):
        raise MpiiGroundTruthError(f"{path}: dataset_joints is {list(names)}; expected the 16 MPII joints "
                                   f"{list(MPII_MAT_NAMES)}")
    pos, missing, boxes = mat["pos_gt_src"], mat["jnt_missing"], mat["headboxes_src"]
    n = pos.shape[-1] if pos.ndim == 3 else -1
    if pos.shape != (NUM_JOINTS, 2, n) or missing.shape != (NUM_JOINTS, n) or boxes.shape != (2, 2, n):
        raise MpiiGroundTruthError(f"{path}: shapes pos_gt_src {pos.shape}, jnt_missing {missing.shape}, "
                                   f"headboxes_src {boxes.shape}; expected [16, 2, N], [16, N], [2, 2, N]")
    return MpiiGroundTruth(joints=np.transpose(pos, (2, 0, 1)).astype(np.float64),
                           missing=missing.T.astype(bool), headboxes=np.transpose(boxes, (2, 0, 1)).astype(np.float64),
                           joint_names=names)


def to_one_based(preds: np.ndarray) -> np.ndarray:
    """0-based image pixels [N, 16, >=2] -> the official 1-based [N, 16, 2] float32 (`preds[..., :2] + 1.0`)."""
    return np.asarray(preds, dtype=np.float32)[..., :2] + np.float32(1.0)


def write_pred_mat(preds: np.ndarray, path: str) -> str:
    """Write the official `pred.mat` ({'preds': [N, 16, 2] float32, 1-based}) from 0-based preds, atomically."""
    preds = np.asarray(preds)
    if preds.ndim != 3 or preds.shape[1] != NUM_JOINTS or preds.shape[2] < 2:
        raise ValueError(f"preds must be [N, {NUM_JOINTS}, 2], got shape {preds.shape}")
    import scipy.io

    one_based = to_one_based(preds)
    atomic_write(path, lambda f: scipy.io.savemat(f, {"preds": one_based}), binary=True)
    return path


def evaluate_pckh(preds: np.ndarray, gt: Union[MpiiGroundTruth, str, os.PathLike],
                  threshold: float = 0.5) -> "OrderedDict[str, float]":
    """PCKh of 0-based predictions [N, 16, >=2] (a third column, the scores, is ignored) against `gt`, the official
    gt_<set>.mat or its loaded content (N persons in the same order) -> OrderedDict Head, Shoulder, Elbow, Wrist,
    Hip, Knee, Ankle, Mean, Mean@0.1 (percent); see the module docstring."""
    if not isinstance(gt, MpiiGroundTruth):
        gt = load_gt_mat(os.fspath(gt))
    preds = np.asarray(preds)
    if preds.ndim != 3 or preds.shape[1] != NUM_JOINTS or preds.shape[2] < 2:
        raise ValueError(f"preds must be [N, {NUM_JOINTS}, 2], got shape {preds.shape}")
    if len(preds) != len(gt):
        raise MpiiGroundTruthError(f"{len(preds)} predictions for {len(gt)} ground-truth persons: the predictions "
                                   "must cover the annotation json in its order (the order of gt_<set>.mat)")
    visible = ~gt.missing  # [N, K]
    # float32 + 1 as the official float32 array, then float64 against the float64 ground truth
    err = np.linalg.norm(to_one_based(preds).astype(np.float64) - gt.joints, axis=2)  # [N, K]
    head = np.linalg.norm(gt.headboxes[:, 1] - gt.headboxes[:, 0], axis=1) * SC_BIAS  # [N]
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = err / head[:, None]
    count = visible.sum(axis=0)  # [K]
    # [T, K]: percent correct per threshold and joint; NaN distances (NaN predictions) are never correct
    hits = ((scaled[None] <= THRESHOLDS[:, None, None]) & visible[None]).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        pck_all = np.where(count > 0, 100.0 * hits / np.maximum(count, 1), np.nan)
        pckh = np.where(count > 0, 100.0 * ((scaled <= threshold) & visible).sum(axis=0) / np.maximum(count, 1),
                        np.nan)
    weight = count.astype(np.float64)
    weight[list(EXCLUDED_FROM_MEAN)] = 0.0
    weight = weight / weight.sum() if weight.sum() > 0 else weight

    def weighted(values: np.ndarray) -> float:
        used = weight > 0
        # all 16 terms with zeros for the unused joints: the summation order of the official masked-array sum
        return float(np.sum(np.where(used, values * weight, 0.0))) if used.any() else float("nan")

    index = {name: i for i, name in enumerate(gt.joint_names)}
    out = OrderedDict((name, float(np.mean([pckh[index[j]] for j in joints]))) for name, joints in GROUPS)
    out["Mean"] = weighted(pckh)
    out["Mean@0.1"] = weighted(pck_all[MEAN_AT_01_INDEX])
    return out


_FIELDS = ("preds", "sample_ids")


class MpiiPCKhEvaluator:
    """Collects per-person predictions in the CocoKeypointEvaluator interface (reset / process / state /
    merge_states / evaluate) and evaluates them with `evaluate_pckh`.

    `gt` None (the MPII test split, which has no public labels) writes pred.mat and returns no numbers, as the
    official code does. Sample ids are the positions in the annotation json; `evaluate` puts the predictions in that
    order and drops the duplicates a distributed sampler adds.
    """

    stats_names = STATS_NAMES
    perf_name = PERF_NAME

    def __init__(self, gt: Optional[MpiiGroundTruth], num_samples: Optional[int] = None, threshold: float = 0.5):
        self.gt = gt
        self.num_samples = len(gt) if gt is not None else num_samples
        self.threshold = float(threshold)
        self.pred_file: Optional[str] = None
        self.reset()

    def reset(self) -> None:
        self._chunks: Dict[str, list] = {k: [] for k in _FIELDS}

    def __len__(self) -> int:
        return int(sum(len(c) for c in self._chunks["sample_ids"]))

    def process(self, preds: np.ndarray, maxvals: np.ndarray = None, centers: np.ndarray = None,
                scales: np.ndarray = None, box_scores: np.ndarray = None, image_ids: np.ndarray = None,
                sample_ids: Optional[np.ndarray] = None) -> None:
        """Add a batch of N persons: preds [N, 16, >=2] 0-based image pixels and their sample ids [N] (positions in
        the annotation json). The other arguments of the COCO evaluator's `process` are accepted and not used."""
        preds = np.asarray(preds, dtype=np.float32)
        if preds.ndim != 3 or preds.shape[1] != NUM_JOINTS or preds.shape[2] < 2:
            raise ValueError(f"preds must be [N, {NUM_JOINTS}, 2], got shape {preds.shape}")
        if sample_ids is None:
            raise ValueError("MpiiPCKhEvaluator.process needs sample_ids (each person's position in the annotation "
                             "json) to match predictions to gt_<set>.mat")
        self._chunks["preds"].append(np.array(preds[..., :2], copy=True))
        self._chunks["sample_ids"].append(np.asarray(sample_ids, dtype=np.int64).reshape(len(preds)).copy())

    def state(self) -> Dict[str, np.ndarray]:
        """Everything processed so far as numpy arrays (for all-gather across ranks)."""
        if not self._chunks["preds"]:
            return {"preds": np.zeros((0, NUM_JOINTS, 2), np.float32), "sample_ids": np.zeros(0, np.int64)}
        return {key: np.concatenate(c) for key, c in self._chunks.items()}

    def merge_states(self, states: Sequence[Dict[str, np.ndarray]]) -> None:
        """Replace the state by the union of `states`, in sample-id order, first copy of each id kept."""
        preds = np.concatenate([np.asarray(s["preds"]) for s in states])
        ids = np.concatenate([np.asarray(s["sample_ids"]) for s in states])
        _, first = np.unique(ids, return_index=True)
        self.reset()
        self._chunks["preds"].append(preds[first])
        self._chunks["sample_ids"].append(ids[first])

    def ordered_predictions(self) -> np.ndarray:
        """[N, 16, 2] in annotation order; an error when a sample is missing."""
        st = self.state()
        ids, first = np.unique(st["sample_ids"], return_index=True)
        expected = self.num_samples if self.num_samples is not None else len(ids)
        if len(ids) != expected or (len(ids) and (ids[0] != 0 or ids[-1] != expected - 1)):
            raise RuntimeError(f"MPII evaluation got predictions for {len(ids)} distinct samples, expected all "
                               f"{expected} of the annotation json")
        return st["preds"][first]

    def evaluate(self, output_dir: Optional[str] = None, name: str = "valid") -> "OrderedDict[str, float]":
        """Write `<output_dir>/pred.mat` (official name and content) when `output_dir` is given, then PCKh.
        `name` (the split) only labels the log line."""
        preds = self.ordered_predictions()
        if output_dir is not None:
            self.pred_file = write_pred_mat(preds, os.path.join(output_dir, "pred.mat"))
            logger.info("wrote %d MPII predictions to %s", len(preds), self.pred_file)
        if self.gt is None:
            logger.info("MPII %s: no ground truth (test split): only pred.mat is written", name)
            return OrderedDict()
        stats = evaluate_pckh(preds, self.gt, self.threshold)
        logger.info("MPII PCKh@%.1f on %s (%d persons): Mean %.3f, Mean@0.1 %.3f", self.threshold, name, len(preds),
                    stats["Mean"], stats["Mean@0.1"])
        return stats
