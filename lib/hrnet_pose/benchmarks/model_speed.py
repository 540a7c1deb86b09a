"""Speed measurements behind `tools/benchmark.py`: model training / inference step throughput on random tensors,
and data-loader throughput, so a slow training run can be attributed to the model, the loader or the loop; and the
same inference step through another runtime (onnxruntime) behind the numpy backend contract, for a side-by-side.

Timings take the median of `iters` timed iterations after `warmup` untimed ones, synchronising CUDA around each.
"""

import statistics
import time
from typing import Callable, Dict, List

import numpy as np
import torch
from torch import nn

from ..models.inference import autocast_context


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def benchmark_model(model: nn.Module, input_hw, batch: int, device: torch.device, amp: str = "",
                    channels_last: bool = False, train: bool = False, warmup: int = 3, iters: int = 10) -> Dict:
    """Median time of one forward (inference) or forward + backward + Adam step (train) on [batch, 3, H, W]."""
    mem = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device).to(memory_format=mem)
    x = torch.randn(batch, 3, int(input_hw[0]), int(input_hw[1]), device=device).to(memory_format=mem)
    scaler = torch.amp.GradScaler(device.type) if (train and amp == "fp16") else None
    opt = torch.optim.Adam(model.parameters(), lr=1e-4) if train else None
    model.train(train)
    times: List[float] = []
    for i in range(warmup + iters):
        _sync(device)
        start = time.perf_counter()
        if train:
            with autocast_context(device, amp):
                out = model(x)
            loss = out.float().square().mean()
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            opt.zero_grad(set_to_none=True)
        else:
            with torch.inference_mode(), autocast_context(device, amp):
                model(x)
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"mode": "train" if train else "infer", "batch": batch, "amp": amp or "fp32",
            "channels_last": channels_last, "ms_per_iter": median * 1e3, "samples_per_s": batch / median,
            "min_ms": min(times) * 1e3, "max_ms": max(times) * 1e3}


def benchmark_backend(backend: Callable[[np.ndarray], np.ndarray], input_hw, batch: int, warmup: int = 3,
                      iters: int = 10) -> Dict:
    """Median time of one call of a numpy-in/numpy-out pose backend (e.g. `deploy.onnx_backend.OnnxRuntimeBackend`)
    on float32 [batch, 3, H, W]; the same fields as `benchmark_model`'s inference rows, plus the backend's name."""
    x = np.random.default_rng(0).standard_normal((batch, 3, int(input_hw[0]), int(input_hw[1]))).astype(np.float32)
    times: List[float] = []
    for i in range(warmup + iters):
        start = time.perf_counter()
        backend(x)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"mode": "infer", "backend": getattr(backend, "name", type(backend).__name__), "batch": batch,
            "amp": "fp32", "channels_last": False, "ms_per_iter": median * 1e3, "samples_per_s": batch / median,
            "min_ms": min(times) * 1e3, "max_ms": max(times) * 1e3}


def benchmark_loader(loader, batches: int = 30, warmup: int = 3) -> Dict:
    """Samples per second a data loader delivers (decoding, augmentation, target encoding, collation)."""
    seen, start = 0, None
    for i, batch in enumerate(loader):
        if i == warmup:
            start, seen = time.perf_counter(), 0
        if batch is not None:
            seen += batch[0].shape[0]
        if i >= warmup + batches:
            break
    elapsed = time.perf_counter() - (start or time.perf_counter())
    return {"mode": "data", "samples_per_s": seen / elapsed if elapsed > 0 else float("nan"),
            "batches": batches, "workers": getattr(loader, "num_workers", 0)}
