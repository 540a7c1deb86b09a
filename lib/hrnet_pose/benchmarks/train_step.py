"""The training step side by side, plain vs fast, for `tools/benchmark.py --mode step`.

plain: what the official HRNet code does (fp32, eager, NCHW, unfused Adam, guard read on the host).
fast:  bf16 autocast, channels_last, fused optimizer (non-finite guard on the device), torch.compile and CUDA graphs
       where the device has them; on a CPU the compile/graph columns say why they were skipped.
Both run the real `TrainStep` on random input [B,3,H,W] and target heatmaps [B,K,H/4,W/4]; the time is the median of
`iters` steps after `warmup`, with the device synchronised around each step (the step itself does not synchronise).
"""

import statistics
import time
from typing import Any, Dict, List

import torch

from ..models import build_model
from ..models.loss import build_loss
from ..engine.optim import build_optimizer
from ..engine.step import TrainStep

def _fast_settings(device: torch.device, compile_mode: str) -> Dict[str, Any]:
    if device.type != "cuda":
        return {"amp": "bf16", "compile": "", "cuda_graph": False,
                "note": f"compile/CUDA graph skipped: {device.type} device (CUDA only here)"}
    return {"amp": "bf16", "compile": compile_mode, "cuda_graph": compile_mode == "", "note": ""}


def _time_step(cfg: Any, device: torch.device, batch: int, settings: Dict[str, Any], iters: int,
               warmup: int) -> Dict[str, Any]:
    cfg = cfg.clone()
    cfg.defrost()
    cfg.ENGINE.FUSED_OPTIMIZER = settings["fused"]
    mem = torch.channels_last if settings["channels_last"] else torch.contiguous_format
    torch.manual_seed(0)
    model = build_model(cfg, is_train=True).to(device, memory_format=mem)
    step = TrainStep(model, model, build_optimizer(cfg, model, device), build_loss(cfg).to(device), device,
                     amp=settings["amp"], channels_last=settings["channels_last"],
                     compile_mode=settings["compile"], cuda_graph=settings["cuda_graph"])
    (w, h), (hw, hh) = cfg.MODEL.IMAGE_SIZE, cfg.MODEL.HEATMAP_SIZE
    k = int(cfg.MODEL.NUM_JOINTS)
    images = torch.randn(batch, 3, int(h), int(w), device=device)
    target = torch.rand(batch, k, int(hh), int(hw), device=device)
    weight = torch.ones(batch, k, 1, device=device)
    times: List[float] = []
    for i in range(warmup + iters):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        step(images, target, weight)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"mode": "step", "variant": settings["variant"], "batch": batch, "amp": settings["amp"] or "fp32",
            "channels_last": settings["channels_last"], "fused": settings["fused"], "forward": step.forward_kind,
            "guard": "device" if step.device_guard else "host", "ms_per_iter": median * 1e3,
            "samples_per_s": batch / median, "note": settings.get("note", "")}


def benchmark_train_step(cfg: Any, device: torch.device, batch: int, iters: int = 10, warmup: int = 3,
                         compile_mode: str = "") -> List[Dict[str, Any]]:
    """Rows for the plain and the fast step at `batch` on `device` (see module docstring), plus the speed-up."""
    plain = {"variant": "plain", "amp": "", "channels_last": False, "fused": False, "compile": "",
             "cuda_graph": False}
    fast = {"variant": "fast", "channels_last": True, "fused": True, **_fast_settings(device, compile_mode)}
    rows = [_time_step(cfg, device, batch, s, iters, warmup) for s in (plain, fast)]
    rows[1]["speedup"] = rows[1]["samples_per_s"] / rows[0]["samples_per_s"]
    return rows


def format_step_table(rows: List[Dict[str, Any]]) -> str:
    """The plain/fast rows as a text table."""
    lines = [f"{'variant':<7} {'batch':>5} {'amp':<5} {'layout':<13} {'optim':<7} {'guard':<6} {'forward':<32} "
             f"{'samples/s':>10} {'ms/iter':>9}  note"]
    for r in rows:
        note = r["note"] + (f" speed-up x{r['speedup']:.2f}" if "speedup" in r else "")
        lines.append(f"{r['variant']:<7} {r['batch']:>5} {r['amp']:<5} "
                     f"{'channels_last' if r['channels_last'] else 'NCHW':<13} "
                     f"{'fused' if r['fused'] else 'plain':<7} {r['guard']:<6} {r['forward']:<32} "
                     f"{r['samples_per_s']:>10.1f} {r['ms_per_iter']:>9.1f}  {note.strip()}")
    return "\n".join(lines)
