"""The model side of batch inference, shared by one process, torchrun ranks and Ray actors (`batch_infer`,
`batch_ray`): the config and weights as the demo resolves them, the estimator with its detector, drawing a result,
and the progress bar."""

import argparse
import os
import sys
from typing import Any, Optional, Tuple

import torch

from ..config import CN, load_config
from ..errors import UserError
from .batch_data import draw_path
from .batch_inputs import InputItem
from .estimator import PoseEstimator

RANDOM_WEIGHTS_SEED = 0


def resolve_config(args: argparse.Namespace) -> Tuple[CN, Optional[str]]:
    """(config, local weights path or None) as the demo resolves --config and --weights (a zoo name brings its
    config, an exported .onnx its metadata)."""
    from . import zoo

    weights = args.weights or None
    if weights and zoo.is_zoo_name(weights):
        cfg = zoo.merge_entry(load_config(args.config, args.opts), weights) if args.config else \
            load_config(zoo.entry_config(weights), args.opts)
        return cfg, zoo.resolve_weights(weights)
    if args.config:
        cfg = load_config(args.config, args.opts)
    elif weights and weights.lower().endswith(".onnx") and os.path.isfile(weights):
        from ..deploy.onnx_backend import config_from_metadata

        cfg = config_from_metadata(weights)
    else:
        cfg = None
    if cfg is None:
        raise UserError("--config is needed (an experiment yaml) unless --weights is a model zoo name or a .onnx "
                        "file written by tools/export.py")
    if weights and not os.path.isfile(weights):
        raise UserError(f"--weights {weights} does not exist (a .pth, a .onnx, a zoo name or none)")
    return cfg, weights


def _amp(args: argparse.Namespace, device: torch.device) -> str:
    onnx = args.backend == "onnxruntime" or args.weights.lower().endswith(".onnx")
    if device.type != "cuda" or (onnx and args.amp == "auto"):  # autocast is PyTorch's
        return "" if args.amp == "auto" else args.amp
    if args.amp == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return args.amp


def build_estimator(args: argparse.Namespace, cfg: CN, weights: Optional[str], device: torch.device
                    ) -> PoseEstimator:
    """The pose estimator (+ detector unless boxes are given) for these arguments on `device`."""
    from .detectors import MAX_PERSONS, build_detector

    detector = None
    if not (args.boxes or args.gt_boxes) and args.det_model.lower() != "none":
        detector = build_detector(args.det_model, device=str(device), score_thr=args.bbox_thr, nms_thr=args.nms_thr,
                                  max_persons=args.max_persons or MAX_PERSONS, weights=args.det_weights or None,
                                  runtime=args.det_runtime)
    torch.manual_seed(RANDOM_WEIGHTS_SEED)  # random weights (--weights none) are the same in every process
    return PoseEstimator.from_config(cfg, weights, device=str(device), detector=detector, flip_test=args.flip_test,
                                     amp=_amp(args, device), max_batch=args.max_batch, backend=args.backend)


def progress_bar(total: int, args: argparse.Namespace, desc: str) -> Any:
    from tqdm import tqdm

    # a bar only on a terminal: in a log file its redraws are noise (the shard lines are logged instead)
    return tqdm(total=total, unit="img", desc=desc, dynamic_ncols=True,
                disable=args.no_progress or not sys.stderr.isatty())


def draw_result(out_dir: str, item: InputItem, image: Any, result: Any, kpt_thr: float) -> None:
    import cv2

    from ..fileio import atomic_path

    path = draw_path(out_dir, item)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(tmp, result.plot(image, kpt_thr=kpt_thr)):
            raise UserError(f"could not write {path}")


