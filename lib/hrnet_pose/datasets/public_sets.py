"""The public keypoint datasets built in beside COCO: COCO-WholeBody, CrowdPose, AP-10K and OCHuman.

Each is a COCO-format json read by `CocoKeypoints` (the same boxes, crops and targets), with what differs:
- COCO-WholeBody (Jin et al., ECCV 2020): 133 keypoints per person, stored as five fields per annotation
  (`keypoints` 17 body, `foot_kpts` 6, `face_kpts` 68, `lefthand_kpts` 21, `righthand_kpts` 21), concatenated in
  that order into one [133, 3] array (the order of the 'coco_wholebody' keypoint set). A part whose `*_valid` flag is
  false has all-zero keypoints in the file, so it is simply unlabelled here.
- CrowdPose (Li et al., CVPR 2019): 14 keypoints, images carry a `crowdIndex`, annotations have no `area`: a box's
  area is 0.53 x its width x height (as crowdposetools and MMPose take it), at least 1.
- AP-10K (Yu et al., NeurIPS 2021): 17 keypoints of 54 species (categories) in 23 families (`supercategory`);
  every category is a sample, and each sample keeps its `category_id` for the per-category AP.
- OCHuman (Zhang et al., CVPR 2019, "Pose2Seg"): COCO-17 persons in heavy occlusion, val and test only (its COCO-
  format files as MMPose distributes them); evaluation only.

`PUBLIC_LAYOUTS[name](root, image_set)` gives (annotation file, image folder) of each dataset's usual layout.
"""

import os
from typing import Any, Callable, Dict, List, Tuple

from .coco import CocoKeypoints, describe_layout

WHOLEBODY_FIELDS = (("keypoints", 17), ("foot_kpts", 6), ("face_kpts", 68), ("lefthand_kpts", 21),
                    ("righthand_kpts", 21))


def wholebody_keypoints(ann: Dict[str, Any]) -> List[float]:
    """The 133 x 3 values of a COCO-WholeBody annotation in keypoint-set order (missing fields as zeros)."""
    values: List[float] = []
    for name, count in WHOLEBODY_FIELDS:
        part = ann.get(name) or []
        values.extend(list(part) if part else [0.0] * (count * 3))  # a wrong length is reported by the loader
    return values


class CocoWholeBodyKeypoints(CocoKeypoints):
    """COCO-WholeBody: the five keypoint fields of each person as one 133-keypoint pose."""

    def _annotation_keypoints(self, ann: Dict[str, Any]) -> List[float]:
        return wholebody_keypoints(ann)


def crowdpose_area(ann: Dict[str, Any]) -> float:
    """CrowdPose has no `area`: 0.53 x box width x height (crowdposetools' OKS area), at least 1."""
    if "area" in ann:
        return float(ann["area"])
    _, _, w, h = ann.get("bbox", [0, 0, 0, 0])
    return max(float(w) * float(h) * 0.53, 1.0)


class CrowdPoseKeypoints(CocoKeypoints):
    """CrowdPose: 14 keypoints; box areas from the box when the file has none."""

    def _annotation_area(self, ann: Dict[str, Any]) -> float:
        return crowdpose_area(ann)


class AP10KKeypoints(CocoKeypoints):
    """AP-10K: every animal category is a sample (persons are category 1 elsewhere)."""

    ALL_CATEGORIES = True  # its 54 species are categories of one 17-keypoint set

    def _is_sample_category(self, category_id: Any) -> bool:
        return category_id is not None


def _coco_wholebody_layout(root: str, image_set: str) -> Tuple[str, str]:
    split = image_set[:-len("2017")] if image_set.endswith("2017") else image_set
    return (os.path.join(root, "annotations", f"coco_wholebody_{split}_v1.0.json"),
            os.path.join(root, "images", image_set))


def _crowdpose_layout(root: str, image_set: str) -> Tuple[str, str]:
    return os.path.join(root, "annotations", f"crowdpose_{image_set}.json"), os.path.join(root, "images")


def _ap10k_layout(root: str, image_set: str) -> Tuple[str, str]:
    return os.path.join(root, "annotations", f"ap10k-{image_set}.json"), os.path.join(root, "data")


def _ochuman_layout(root: str, image_set: str) -> Tuple[str, str]:
    return (os.path.join(root, "annotations", f"ochuman_coco_format_{image_set}_range_0.00_1.00.json"),
            os.path.join(root, "images"))


# name -> (dataset class, layout function, the layout's lines for errors)
PUBLIC_DATASETS: Dict[str, Tuple[type, Callable[[str, str], Tuple[str, str]], Tuple[str, ...]]] = {
    "coco_wholebody": (CocoWholeBodyKeypoints, _coco_wholebody_layout,
                       ("annotations/coco_wholebody_{train,val}_v1.0.json",
                        "images/{train2017,val2017}/   (DATASET.TRAIN_SET train2017, DATASET.TEST_SET val2017)")),
    "crowdpose": (CrowdPoseKeypoints, _crowdpose_layout,
                  ("annotations/crowdpose_{trainval,train,val,test}.json",
                   "images/   (DATASET.TRAIN_SET trainval, DATASET.TEST_SET test)")),
    "ap10k": (AP10KKeypoints, _ap10k_layout,
              ("annotations/ap10k-{train,val,test}-split{1,2,3}.json",
               "data/   (DATASET.TRAIN_SET train-split1, DATASET.TEST_SET val-split1)")),
    "ochuman": (CocoKeypoints, _ochuman_layout,
                ("annotations/ochuman_coco_format_{val,test}_range_0.00_1.00.json",
                 "images/   (DATASET.TEST_SET val or test; evaluation only)")),
}


def public_dataset_files(name: str, root: str, image_set: str) -> Tuple[str, str]:
    """(annotation file, image folder) of `image_set` in the usual layout of public dataset `name`; a
    FileNotFoundError naming the missing one and the layout otherwise."""
    _, layout, lines = PUBLIC_DATASETS[name]
    ann_file, image_dir = layout(root, image_set)
    for what, path, ok in (("annotation file", ann_file, os.path.isfile), ("image folder", image_dir, os.path.isdir)):
        if not ok(path):
            raise FileNotFoundError(f"{name}: {what} not found: {path}\n"
                                    + describe_layout(root, list(lines), "README.md, 'Public keypoint sets'"))
    return ann_file, image_dir
