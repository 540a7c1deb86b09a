"""Model families side by side: parameters, GFLOPs and batch latency of several configs in PyTorch and onnxruntime,
measured in one run (`tools/benchmark.py --mode models`), so that Lite-HRNet and HRNet are compared on the same
machine under the same load.

Each model is exported once to a temporary .onnx (dynamic batch, checked against PyTorch by the exporter) and timed
through the numpy-in/numpy-out backend contract of `PoseEstimator` (`benchmark_backend`: median of `iters` calls after
3 warm-up calls, float32 [B, 3, H, W] random crops). Runtimes and models alternate per batch size so that a drift of the
machine's load hits all of them alike. Random weights: latency does not depend on the values.
"""

import os
import tempfile
from typing import Any, Dict, List, Sequence

import torch

from ..apis.backends import TorchBackend
from ..deploy.export import export_onnx
from ..deploy.onnx_backend import OnnxRuntimeBackend
from ..models import build_model
from ..models.complexity import model_summary
from .model_speed import benchmark_backend

RUNTIMES = ("torch", "onnxruntime")


def compare_models(named_cfgs: Sequence[Any], batches: Sequence[int] = (1, 6), threads: int = 0,
                   iters: int = 10) -> List[Dict[str, Any]]:
    """One row per (config, runtime, batch): name, params, gflops, runtime, batch, ms_per_iter, samples_per_s.

    `named_cfgs` holds (name, frozen config) pairs; `threads` sets both runtimes' intra-op threads (0: torch's own)."""
    if threads:
        torch.set_num_threads(threads)
    threads = threads or torch.get_num_threads()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runners = []
        for i, (name, cfg) in enumerate(named_cfgs):
            w, h = (int(v) for v in cfg.MODEL.IMAGE_SIZE)
            model = build_model(cfg).eval()
            info = model_summary(model, (h, w))
            path = export_onnx(model, os.path.join(tmp, f"model_{i}.onnx"), (w, h))
            backends = {"torch": TorchBackend(model, "cpu"),
                        "onnxruntime": OnnxRuntimeBackend(path, device="cpu", num_threads=threads)}
            runners.append((name, info, (h, w), backends))
        for batch in batches:
            for name, info, hw, backends in runners:
                for runtime in RUNTIMES:
                    timing = benchmark_backend(backends[runtime], hw, batch, iters=iters)
                    rows.append({"model": name, "params": info["params"], "gflops": info["gflops"],
                                 "input": f"{hw[1]}x{hw[0]}", "runtime": runtime, "batch": batch,
                                 "threads": threads, "ms_per_iter": timing["ms_per_iter"],
                                 "samples_per_s": timing["samples_per_s"]})
    return rows


def format_models_table(rows: Sequence[Dict[str, Any]]) -> str:
    """Markdown: one line per model with params, GFLOPs and the latency of each (runtime, batch)."""
    columns = sorted({(r["runtime"], r["batch"]) for r in rows}, key=lambda c: (RUNTIMES.index(c[0]), c[1]))
    head = ["model", "input", "params", "GFLOPs"] + [f"{rt} b{b} (ms)" for rt, b in columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in dict.fromkeys(r["model"] for r in rows):
        mine = {(r["runtime"], r["batch"]): r for r in rows if r["model"] == name}
        first = next(iter(mine.values()))
        cells = [name, first["input"], f"{first['params'] / 1e6:.2f}M", f"{first['gflops']:.2f}"]
        cells += [f"{mine[c]['ms_per_iter']:.1f}" if c in mine else "-" for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
