"""Pose network backends behind one small interface: normalised person crops in, heatmaps out.

`PoseEstimator` talks to the network only through a backend, so the PyTorch model, an onnxruntime session
(`onnx_backend.OnnxRuntimeBackend`) and downloadable checkpoints are interchangeable without touching the estimator.

Contract: `backend(images)` takes float32 [N, 3, H, W] crops (ImageNet-normalised, colour order of the config) and
returns float32 [N, K, h, w] heatmaps; any N >= 1. `name` says which runtime runs it.
"""

import logging
import os
from typing import Any, Optional, Protocol, Union

import numpy as np
import torch

from ..devices import resolve_device
from ..models.inference import forward_heatmaps
from ..models.inference import autocast_context

logger = logging.getLogger(__name__)


class PoseBackend(Protocol):
    name: str

    def __call__(self, images: np.ndarray) -> np.ndarray:
        ...


class TorchBackend:
    """A PyTorch pose model in eval mode on `device`, with optional bf16/fp16 autocast (CUDA) and channels_last.

    Heatmaps always come back as float32, whatever precision the forward ran in.
    """

    name = "torch"

    def __init__(self, model: torch.nn.Module, device: Union[str, torch.device] = "cpu", amp: str = "",
                 channels_last: bool = False) -> None:
        self.device = resolve_device(device)
        if amp and self.device.type != "cuda":
            raise ValueError(f"amp={amp!r} is for CUDA; on {self.device} the model runs in float32 (use amp='')")
        self.amp = amp
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.eval().to(self.device, memory_format=self.memory_format)

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
        x = x.to(self.device, non_blocking=True, memory_format=self.memory_format)
        with autocast_context(self.device, self.amp):
            out = forward_heatmaps(self.model, x)
        return out.float().cpu().numpy()


def build_backend(cfg: Any, weights: Optional[str], device: Union[str, torch.device] = "auto", amp: str = "",
                  channels_last: bool = False) -> PoseBackend:
    """The backend for `weights`: a `.onnx` file runs in onnxruntime; a `.pth` (ours, official, or a training
    checkpoint) loads strictly into `build_model(cfg)`; None keeps random weights (with a warning)."""
    if weights and str(weights).lower().endswith(".onnx"):
        from ..deploy.onnx_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(os.fspath(weights), device=str(resolve_device(device)))
    from ..models import build_model, load_weights

    model = build_model(cfg, is_train=False)
    if weights:
        report = load_weights(model, weights)
        logger.info("loaded %d tensors from %s", report.loaded, weights)
    else:
        logger.warning("no weights given: the pose model keeps random weights (predictions are meaningless)")
    return TorchBackend(model, device, amp, channels_last)
