"""Evaluation: OKS-NMS, COCO keypoint AP with the official protocol (vectorised COCOeval by default), and the
log-only PCK."""

from .coco_keypoints import (
    BACKENDS,
    STATS_NAMES,
    CocoKeypointEvaluator,
    describe_protocol,
    format_results_table,
    load_coco,
    run_cocoeval,
    write_json_atomic,
    write_results_file,
)
from .fast_cocoeval import KeypointGroundTruth, evaluate_keypoints
from .oks_nms import oks_iou_matrix, oks_nms, oks_nms_grouped, rescore, soft_oks_nms
from .pck import accuracy

__all__ = [
    "BACKENDS", "STATS_NAMES", "CocoKeypointEvaluator", "describe_protocol", "format_results_table", "load_coco",
    "run_cocoeval", "write_json_atomic", "write_results_file", "KeypointGroundTruth", "evaluate_keypoints",
    "oks_iou_matrix", "oks_nms", "oks_nms_grouped", "rescore", "soft_oks_nms", "accuracy",
]
