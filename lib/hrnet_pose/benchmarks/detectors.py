"""Person detector speed: each torchvision detector in PyTorch and in onnxruntime on one 1280x720 frame.

Random weights (torchvision's cannot be downloaded everywhere): the same compute as trained weights up to the
post-processing, where an untrained head lets fewer boxes past the score threshold than a trained one on a crowd.
The frame is smooth deterministic noise. Rows: name, runtime, box AP and GFLOPs (torchvision's weight tables), the
first call in ms (onnxruntime: the export and parity check, or the cache load) and the median ms of the rest.
"""

import time
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
import torch

from ..apis.detectors import DETECTOR_WEIGHTS, PersonDetector


def _frame(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 16, width // 16, 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def _time_calls(detector: PersonDetector, frame: np.ndarray, iters: int) -> Dict[str, float]:
    start = time.perf_counter()
    detector(frame)
    first = time.perf_counter() - start
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        detector(frame)
        times.append(time.perf_counter() - start)
    return {"first_ms": 1000 * first, "ms": 1000 * float(np.median(times))}


def benchmark_detectors(names: Sequence[str], runtimes: Sequence[str] = ("torch", "onnxruntime"),
                        frame_hw: Sequence[int] = (720, 1280), iters: int = 5, threads: Optional[int] = None,
                        cache_dir: Optional[str] = None) -> List[Dict]:
    """One row per (detector, runtime); both runtimes of a detector are measured one after the other."""
    if threads:
        torch.set_num_threads(int(threads))
    frame = _frame(int(frame_hw[0]), int(frame_hw[1]))
    rows = []
    for name in names:
        meta = DETECTOR_WEIGHTS[name].meta
        for runtime in runtimes:
            torch.manual_seed(0)
            detector = PersonDetector(name, pretrained=False, runtime=runtime, cache_dir=cache_dir)
            if detector.onnx is not None and threads:
                detector.onnx.num_threads = int(threads)
            row = {"name": name, "runtime": runtime, "box_ap": meta["_metrics"]["COCO-val2017"]["box_map"],
                   "gflops": meta["_ops"], "frame": f"{frame.shape[1]}x{frame.shape[0]}"}
            row.update(_time_calls(detector, frame, iters))
            rows.append(row)
    return rows


def format_detectors_table(rows: List[Dict]) -> str:
    """A markdown table: detector, box AP, GFLOPs, then ms per frame in each runtime."""
    runtimes = list(dict.fromkeys(r["runtime"] for r in rows))
    lines = ["| detector | box AP | GFLOPs | " + " | ".join(f"{rt} ms" for rt in runtimes) + " |",
             "|---|---|---|" + "---|" * len(runtimes)]
    for name in dict.fromkeys(r["name"] for r in rows):
        mine = {r["runtime"]: r for r in rows if r["name"] == name}
        first = next(iter(mine.values()))
        cells = [f"{mine[rt]['ms']:,.0f}" if rt in mine else "-" for rt in runtimes]
        lines.append(f"| {name} | {first['box_ap']} | {first['gflops']:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
