"""int8 for a live stream: an onnxruntime pose backend that calibrates itself on the stream's first person crops.

`CalibratingInt8Backend(fp32)` runs the float32 graph for the first `num_calibration` crops (the crops of the first
frames, so the activation ranges are those of this camera and scene) or takes a folder of crops given up front,
then quantises the graph statically (`deploy.quantize.quantize_onnx_static`, default settings), measures once how far
the int8 heatmaps' argmax keypoints move from the float32 ones on those crops (in crop pixels: heatmap pixels times the
stride), logs it, and from then on runs int8. The quantised file is written beside nothing of the user's: into a
temporary folder that lives as long as the backend.

Contract as every pose backend: float32 [N, 3, H, W] normalised crops -> float32 [N, K, h, w] heatmaps.
"""

import logging
import os
import tempfile
from typing import Dict, List, Optional

import numpy as np

from ..codecs.heatmap import get_max_preds
from .onnx_backend import OnnxRuntimeBackend
from .quantize import quantize_onnx_static

logger = logging.getLogger(__name__)


def keypoint_shift(reference: np.ndarray, heatmaps: np.ndarray, stride: float) -> Dict[str, float]:
    """Argmax keypoints of `heatmaps` against those of `reference` ([N, K, h, w] each), in crop pixels."""
    a, _ = get_max_preds(reference)
    b, _ = get_max_preds(heatmaps)
    dist = np.linalg.norm((a - b).reshape(-1, 2), axis=1) * float(stride)
    return {"mean_px": float(dist.mean()), "p99_px": float(np.percentile(dist, 99)), "max_px": float(dist.max()),
            "moved_share": float(np.mean(dist > 0))}


class CalibratingInt8Backend:
    """A float32 onnxruntime backend that switches itself to int8 after calibrating on its first crops."""

    def __init__(self, fp32: OnnxRuntimeBackend, num_calibration: int = 32,
                 calibration: Optional[np.ndarray] = None) -> None:
        if num_calibration < 1:
            raise ValueError(f"num_calibration must be >= 1, got {num_calibration}")
        self.fp32 = fp32
        self.num_calibration = int(num_calibration)
        self.int8: Optional[OnnxRuntimeBackend] = None
        self.error: Optional[Dict[str, float]] = None
        self._seen: List[np.ndarray] = []
        self._tmp = tempfile.TemporaryDirectory(prefix="hrnet_pose_int8_")
        if calibration is not None:
            self._quantise(np.ascontiguousarray(calibration, dtype=np.float32))

    @property
    def name(self) -> str:
        return "onnxruntime int8" if self.int8 is not None else "onnxruntime (calibrating int8)"

    def _quantise(self, crops: np.ndarray) -> None:
        path = quantize_onnx_static(self.fp32.path, os.path.join(self._tmp.name, "pose_int8.onnx"), crops)
        self.int8 = OnnxRuntimeBackend(path, device="cpu", num_threads=self.fp32.num_threads)
        reference, quantised = self.fp32(crops), self.int8(crops)
        stride = crops.shape[3] / reference.shape[3]
        self.error = keypoint_shift(reference, quantised, stride)
        logger.warning("int8: calibrated on %d crops; argmax keypoints move %.2f px on average (p99 %.2f, max %.2f "
                       "crop px; %.0f%% of joints moved) against float32 on those crops", len(crops),
                       self.error["mean_px"], self.error["p99_px"], self.error["max_px"],
                       100 * self.error["moved_share"])

    def __call__(self, images: np.ndarray) -> np.ndarray:
        if self.int8 is not None:
            return self.int8(images)
        out = self.fp32(images)
        self._seen.append(np.ascontiguousarray(images, dtype=np.float32))
        if sum(len(x) for x in self._seen) >= self.num_calibration:
            crops, self._seen = np.concatenate(self._seen)[: self.num_calibration], []
            self._quantise(crops)
        return out
