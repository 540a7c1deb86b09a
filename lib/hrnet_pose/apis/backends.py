"""Pose network backends behind one small interface: normalised person crops in, heatmaps out.

`PoseEstimator` talks to the network only through a backend, so the PyTorch model, an onnxruntime session
(`onnx_backend.OnnxRuntimeBackend`) and downloadable checkpoints are interchangeable without touching the estimator.

Contract: `backend(images)` takes float32 [N, 3, H, W] crops (ImageNet-normalised, colour order of the config) and
returns float32 [N, K, h, w] heatmaps; any N >= 1. `name` says which runtime runs it.

`build_backend(..., backend=)` picks the runtime: 'torch', 'onnxruntime' (a `.pth` is exported once into the cache of
`deploy.ort_cache`), or 'auto': onnxruntime on a CPU (the same keypoints in about half of PyTorch eager's time for
HRNet-W32 at batch 1) and PyTorch on CUDA (where it has bf16 autocast and needs no extra package).
"""

import logging
import os
from typing import Any, Optional, Protocol, Union

import numpy as np
import torch

from ..devices import resolve_device
from ..errors import ConfigError, UserError
from ..models.inference import forward_heatmaps
from ..models.inference import autocast_context

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnxruntime")
NO_ORT = ("{names} not installed: running the pose network in PyTorch, about 2x slower on a CPU; "
          "pip install {packages}")


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


def _is_onnx(weights: Optional[str]) -> bool:
    return bool(weights) and str(weights).lower().endswith(".onnx")


def choose_backend(backend: str, weights: Optional[str], device: Union[str, torch.device], amp: str = "",
                   channels_last: bool = False) -> str:
    """'torch' or 'onnxruntime' for the `backend` asked for (see the module docstring). 'auto' keeps PyTorch where a
    PyTorch-only option (amp, channels_last) is asked for, and where onnxruntime is not installed (one log line)."""
    from ..deploy import ort_cache

    name = str(backend or "auto").strip().lower()
    if name not in BACKENDS:
        raise ConfigError(f"backend {backend!r} is not valid; valid: {', '.join(BACKENDS)}")
    if _is_onnx(weights):
        if name == "torch":
            raise UserError(f"{weights} is an ONNX file, which runs in onnxruntime; give the .pth checkpoint for "
                            "backend 'torch' (or use backend 'auto')")
        return "onnxruntime"
    missing = ort_cache.missing_packages()
    if name == "onnxruntime":
        if missing:
            raise UserError(f"backend 'onnxruntime' needs {' and '.join(missing)}: pip install {' '.join(missing)} "
                            "(or use backend 'torch')")
        return name
    if name == "torch" or resolve_device(device).type != "cpu" or amp or channels_last:
        return "torch"
    if missing:
        logger.warning(NO_ORT.format(names=" and ".join(missing) + (" is" if len(missing) == 1 else " are"),
                                     packages=" ".join(missing)))
        return "torch"
    return "onnxruntime"


def _torch_model(cfg: Any, weights: Optional[str]) -> torch.nn.Module:
    from ..models import build_model, load_weights

    model = build_model(cfg, is_train=False)
    if weights:
        report = load_weights(model, weights)
        logger.info("loaded %d tensors from %s", report.loaded, weights)
    else:
        logger.warning("no weights given: the pose model keeps random weights (predictions are meaningless)")
    return model


def _cached_onnx(cfg: Any, weights: Optional[str], device: Union[str, torch.device], explicit: bool,
                 num_threads: Optional[int] = None) -> Optional[PoseBackend]:
    """The cache's onnxruntime backend; under 'auto', None (after a warning) when the network cannot be exported or
    its export does not match PyTorch, so that PyTorch runs it instead."""
    from ..deploy.export import OnnxExportError
    from ..deploy.ort_cache import OnnxParityError, cached_backend

    model = None if weights else _torch_model(cfg, None)  # random weights: hashed from the model itself
    try:
        return cached_backend(cfg, os.fspath(weights) if weights else None, device=str(resolve_device(device)),
                              model=model, num_threads=num_threads)
    except (OnnxExportError, OnnxParityError) as err:
        if explicit:
            raise
        logger.warning("running the pose network in PyTorch: %s", err)
        return None


def build_backend(cfg: Any, weights: Optional[str], device: Union[str, torch.device] = "auto", amp: str = "",
                  channels_last: bool = False, backend: str = "auto", num_threads: Optional[int] = None
                  ) -> PoseBackend:
    """The backend for `weights` (.pth: ours, official, MMPose or a training checkpoint; .onnx; None keeps random
    weights, with a warning) in the runtime `backend` picks: 'torch', 'onnxruntime' or 'auto' (module docstring).
    `num_threads`: onnxruntime's intra-op threads (None = the physical cores; `onnx_backend.share_cores` splits them
    with a detector that runs at the same time)."""
    from ..deploy.ort_cache import describe

    kind = choose_backend(backend, weights, device, amp, channels_last)
    built: Optional[PoseBackend] = None
    if _is_onnx(weights):
        from ..deploy.onnx_backend import OnnxRuntimeBackend

        built = OnnxRuntimeBackend(os.fspath(weights), device=str(resolve_device(device)), num_threads=num_threads)
    elif kind == "onnxruntime":
        if amp or channels_last:
            raise UserError("amp and channels_last are PyTorch options; use backend 'torch' (or 'auto') with them")
        built = _cached_onnx(cfg, weights, device, explicit=str(backend).strip().lower() == "onnxruntime",
                             num_threads=num_threads)
    if built is None:
        built = TorchBackend(_torch_model(cfg, weights), device, amp, channels_last)
    logger.info("pose network: %s", describe(built))
    return built
