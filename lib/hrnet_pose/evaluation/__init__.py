"""Evaluation: OKS-NMS, COCO keypoint AP with the official protocol, and the log-only PCK."""

from .coco_keypoints import (
    STATS_NAMES,
    CocoKeypointEvaluator,
    describe_protocol,
    format_results_table,
    load_coco,
    run_cocoeval,
    write_json_atomic,
)
from .oks_nms import oks_iou_matrix, oks_nms, rescore, soft_oks_nms
from .pck import accuracy

__all__ = [
    "STATS_NAMES", "CocoKeypointEvaluator", "describe_protocol", "format_results_table", "load_coco", "run_cocoeval",
    "write_json_atomic", "oks_iou_matrix", "oks_nms", "rescore", "soft_oks_nms", "accuracy",
]
