"""Datasets: COCO-format keypoint samples (GT or detector boxes), MPII, training transforms, the synthetic
generators (COCO and MPII format)."""

from .build import augmentation_config, build_dataloader, build_dataset, collate_skip_none, worker_init_fn
from .coco import CocoKeypoints, ImageReadError
from .mpii import MpiiKeypoints
from .synthetic import generate_synthetic_coco
from .synthetic_mpii import generate_synthetic_mpii
from .transforms import AugmentationConfig

__all__ = [
    "AugmentationConfig", "CocoKeypoints", "ImageReadError", "augmentation_config", "build_dataloader",
    "build_dataset", "collate_skip_none", "generate_synthetic_coco", "worker_init_fn", "MpiiKeypoints",
    "generate_synthetic_mpii",
]
