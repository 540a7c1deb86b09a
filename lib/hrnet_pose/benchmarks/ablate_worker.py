"""One training run of an ablation, in a process of its own (`python -m hrnet_pose.benchmarks.ablate_worker
CFG.yaml RESULT.json`): train with `engine.trainer.Trainer` (AUTO_RESUME from the run folder's checkpoint), then
write the final AP, the training samples/s and the peak memory of this process to RESULT.json atomically.

Peak memory: `torch.cuda.max_memory_allocated` on a GPU; on the CPU the peak resident set size of this process
(`ru_maxrss`: the interpreter and torch, ~0.3-0.5 GB, included alike in every variant; data-loader workers are other
processes and not counted).
"""

import math
import resource
import statistics
import sys
from typing import Any, Dict, Sequence

import torch

from ..config import load_config
from ..engine.trainer import train
from ..fileio import write_json_atomic


def train_and_measure(cfg_path: str) -> Dict[str, Any]:
    cfg = load_config(cfg_path)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    out = train(cfg, cfg_path)
    history = out["history"]
    speeds = [h["samples_per_s"] for h in history if math.isfinite(h.get("samples_per_s", math.nan))]
    device = str(cfg.ENGINE.DEVICE) or ("cuda" if torch.cuda.is_available() else "cpu")  # the trainer's rule
    if device.startswith("cuda"):
        peak_mb, peak_kind = torch.cuda.max_memory_allocated() / 2 ** 20, "cuda max_memory_allocated"
    else:
        peak_mb, peak_kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process peak RSS"
    return {"ap": float(out["perf"]), "best_ap": float(out["best_perf"]), "epochs": len(history),
            "samples_per_s": statistics.median(speeds) if speeds else math.nan, "peak_mem_mb": peak_mb,
            "peak_mem_kind": peak_kind, "nonfinite_steps": int(out["nonfinite_steps"]),
            "output_dir": out["output_dir"]}


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2:
        raise SystemExit("usage: python -m hrnet_pose.benchmarks.ablate_worker CFG.yaml RESULT.json")
    write_json_atomic(train_and_measure(argv[0]), argv[1], indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
