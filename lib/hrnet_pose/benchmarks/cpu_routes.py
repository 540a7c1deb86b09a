"""CPU inference routes of a pose network, measured against the official way of running it (for `cpu_benchmark`).

Every route is a callable float32 [N, 3, H, W] normalised crops -> float32 heatmaps [N, K, H/4, W/4]:
- official: the model in fp32 eager mode, NCHW, under `torch.no_grad` (what the official test code runs);
- folded: BatchNorm folded into the convolutions (`models.fuse`), eager; `folded_cl` the same in channels_last;
- jit: TorchScript trace of the folded model, frozen, `torch.jit.optimize_for_inference` (oneDNN layouts, fused
  conv + ReLU/add where it can);
- onnxruntime: the exported graph (`deploy.export`) in `deploy.onnx_backend` (all graph optimisations, sequential
  execution, `threads` intra-op threads);
- onnxruntime_int8: the same graph quantised statically (`deploy.quantize`, calibrated on the crops given).
`route_errors` decodes every route's heatmaps (official decoder: argmax + quarter offset) and compares them with the
official route's: heatmap max |diff| and keypoint distance in crop pixels.
"""

import logging
import os
import statistics
import time
import warnings
from typing import Callable, Dict, List, Sequence

import numpy as np
import torch
from torch import nn

from ..codecs.heatmap import HeatmapCodec
from ..deploy.export import export_onnx
from ..deploy.onnx_backend import OnnxRuntimeBackend
from ..deploy.quantize import quantize_onnx_static
from ..models.fuse import fold_batchnorm
from ..models.inference import forward_heatmaps

logger = logging.getLogger(__name__)

ROUTES = ("official", "folded", "folded_cl", "jit", "onnxruntime", "onnxruntime_int8")
Route = Callable[[np.ndarray], np.ndarray]


def torch_route(model: nn.Module, channels_last: bool = False) -> Route:
    mem = torch.channels_last if channels_last else torch.contiguous_format

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = forward_heatmaps(model, torch.from_numpy(x).contiguous(memory_format=mem))
        return out.float().contiguous().numpy()
    return run


def build_routes(model: nn.Module, input_hw: Sequence[int], work_dir: str, calibration: np.ndarray,
                 threads: int, names: Sequence[str] = ROUTES) -> Dict[str, Route]:
    """The requested routes for `model` (eval mode, CPU); .onnx files go to `work_dir`."""
    unknown = [n for n in names if n not in ROUTES]
    if unknown:
        raise ValueError(f"unknown inference route(s) {unknown}; valid: {list(ROUTES)}")
    model = model.eval().cpu()
    h, w = int(input_hw[0]), int(input_hw[1])
    routes: Dict[str, Route] = {"official": torch_route(model)}
    folded = fold_batchnorm(model)
    if "folded" in names:
        routes["folded"] = torch_route(folded)
    if "folded_cl" in names:
        routes["folded_cl"] = torch_route(fold_batchnorm(model).to(memory_format=torch.channels_last), True)
    if "jit" in names:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about the input-shape checks
            traced = torch.jit.trace(folded, torch.from_numpy(calibration[:1]))
            routes["jit"] = torch_route(torch.jit.optimize_for_inference(torch.jit.freeze(traced)))
    if "onnxruntime" in names or "onnxruntime_int8" in names:
        fp32 = export_onnx(model, os.path.join(work_dir, "model.onnx"), (w, h))
        if "onnxruntime" in names:
            routes["onnxruntime"] = OnnxRuntimeBackend(fp32, device="cpu", num_threads=threads)
        if "onnxruntime_int8" in names:
            int8 = quantize_onnx_static(fp32, os.path.join(work_dir, "model_int8.onnx"), calibration)
            routes["onnxruntime_int8"] = OnnxRuntimeBackend(int8, device="cpu", num_threads=threads)
    return {n: routes[n] for n in ["official"] + [n for n in names if n != "official"]}


def time_routes(routes: Dict[str, Route], x: np.ndarray, iters: int = 20, warmup: int = 3) -> Dict[str, Dict]:
    """Median / min / max latency (ms) of each route on `x`; routes take turns in every iteration."""
    times: Dict[str, List[float]] = {n: [] for n in routes}
    for i in range(warmup + iters):
        for name, route in routes.items():
            start = time.perf_counter()
            route(x)
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return {n: {"ms": statistics.median(t) * 1e3, "min_ms": min(t) * 1e3, "max_ms": max(t) * 1e3}
            for n, t in times.items()}


def route_errors(routes: Dict[str, Route], crops: np.ndarray) -> Dict[str, Dict]:
    """Each route's heatmap and keypoint error against the official route on `crops` [N, 3, H, W].

    Keypoints are decoded as the official test does (argmax + quarter offset) in crop pixels.
    """
    n, _, h, w = crops.shape
    ref = np.concatenate([routes["official"](crops[i:i + 1]) for i in range(n)])
    codec = HeatmapCodec(image_size=(w, h), heatmap_size=(ref.shape[3], ref.shape[2]), sigma=2, post_process=True)
    center = np.tile(np.array([[w / 2.0, h / 2.0]], np.float32), (n, 1))
    scale = np.tile(np.array([[w / 200.0, h / 200.0]], np.float32), (n, 1))
    ref_kp, _ = codec.decode(ref, center, scale)
    out = {}
    for name, route in routes.items():
        hm = np.concatenate([route(crops[i:i + 1]) for i in range(n)])
        kp, _ = codec.decode(hm, center, scale)
        dist = np.linalg.norm(kp.astype(np.float64) - ref_kp, axis=-1)
        out[name] = {"heatmap_max_abs_err": float(np.abs(hm - ref).max()),
                     "heatmap_rel_err": float(np.abs(hm - ref).max() / max(float(np.abs(ref).max()), 1e-12)),
                     "kp_err_mean_px": float(dist.mean()), "kp_err_max_px": float(dist.max()),
                     "kp_err_p95_px": float(np.percentile(dist, 95))}
    return out
