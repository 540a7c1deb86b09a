"""Helpers shared by the ONNX deploy tests (HRNet and Lite-HRNet): seeded random weights that give non-trivial
heatmaps, the real COCO fixture people, and the same config as a PoseEstimator on its PyTorch weights and on their
ONNX export. `from onnx_testlib import ...`: a uniquely named module (pytest puts this folder on sys.path)."""

import json
import os

import numpy as np
import torch
from torch import nn

from hrnet_pose.apis.estimator import PoseEstimator

from testpaths import MINI, MINI_VAL_ANN


def randomise(model: nn.Module, seed: int, reset=(nn.Conv2d,), gates=None) -> nn.Module:
    """PyTorch's default init for every module of the `reset` types and random BN affine and statistics (peaked,
    non-trivial heatmaps); where `gates(module)` is true, the module's own parameters (gate scalars such as
    soft-gating's alpha) drawn from N(0.5, 0.2). In place, in module order from `seed`; returns the model in eval
    mode."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, reset):
                m.reset_parameters()
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
            elif gates is not None and gates(m):
                for p in m.parameters(recurse=False):
                    p.normal_(0.5, 0.2)
    return model.eval()


def fixture_people():
    """(image path, [N,4] x1y1x2y2 boxes) of the real COCO fixture images, from their ground-truth boxes."""
    with open(MINI_VAL_ANN) as f:
        ann = json.load(f)
    out = []
    for image in ann["images"]:
        xywh = np.array([a["bbox"] for a in ann["annotations"] if a["image_id"] == image["id"]], np.float32)
        if len(xywh):
            out.append((os.path.join(MINI, "images", image["file_name"]),
                        np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)))
    return out


def estimators_on_both_backends(cfg, pth: str, onnx_path: str):
    """(PyTorch, onnxruntime) PoseEstimators of `cfg`: one on the weights file `pth`, one on its ONNX export."""
    return (PoseEstimator.from_config(cfg, weights=pth, device="cpu", backend="torch"),
            PoseEstimator.from_config(cfg, weights=onnx_path, device="cpu"))


def results_on_both(people, torch_est, ort_est):
    """(boxes, PyTorch result, onnxruntime result) for each (image, boxes) of `people`."""
    return [(boxes, torch_est(image, boxes=boxes), ort_est(image, boxes=boxes)) for image, boxes in people]
