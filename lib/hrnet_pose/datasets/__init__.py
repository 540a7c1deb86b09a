"""Datasets: COCO-format keypoint samples (GT or detector boxes), training transforms, the synthetic generator."""

from .build import augmentation_config, build_dataloader, build_dataset, collate_skip_none, worker_init_fn
from .coco import CocoKeypoints, ImageReadError
from .synthetic import generate_synthetic_coco
from .transforms import AugmentationConfig

__all__ = [
    "AugmentationConfig", "CocoKeypoints", "ImageReadError", "augmentation_config", "build_dataloader",
    "build_dataset", "collate_skip_none", "generate_synthetic_coco", "worker_init_fn",
]
