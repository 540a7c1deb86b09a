"""`tools/infer.py` against the demo on the same folder of images, same model, same boxes (and Ray local against one
process): `python tools/benchmark.py --mode batch-infer`.

A folder of synthetic 256x256 images (1-3 stick figures each, `datasets.synthetic`) and its detections file as
person boxes for both tools (so the detector's cost, the same for both, does not hide the difference). Per model:
the demo (`apis.demo.run_demo`, one image at a time, no drawing) and `apis.batch_infer.run_infer` (chunks decoded and
cropped in DataLoader workers, the persons of `--batch-images` images per network batch), both in this process, one
after the other. Figures: images/s over the processing loop (model loaded), the end-to-end wall time with startup,
infer's main-process split (waiting for data, pose, writing) and the largest keypoint difference to the demo.

A model without weights gets random weights saved to a temporary .pth first, so both tools run the same network.
"""

import json
import os
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch


def make_folder(root: str, num_images: int, seed: int = 0) -> Tuple[str, str]:
    """(image folder, detections json) of `num_images` synthetic images under `root`."""
    from ..datasets.synthetic import DETECTION_FILE, generate_synthetic_coco

    generate_synthetic_coco(root, 0, num_images, seed=seed, image_size=(256, 256), max_people=3)
    return os.path.join(root, "images", "val"), os.path.join(root, "person_detection_results", DETECTION_FILE)


def _weights_for(cfg_path: str, weights: str, folder: str) -> str:
    if weights:
        return weights
    from ..config import load_config
    from ..models import build_model

    torch.manual_seed(0)
    path = os.path.join(folder, "random_weights.pth")
    torch.save(build_model(load_config(cfg_path), is_train=False).state_dict(), path)
    return path


def _max_keypoint_diff(a: List[Dict[str, Any]], b: List[Dict[str, Any]]) -> float:
    if len(a) != len(b) or not a:
        return float("nan")
    ka = np.array([e["keypoints"] for e in a]).reshape(len(a), -1, 3)[..., :2]
    kb = np.array([e["keypoints"] for e in b]).reshape(len(b), -1, 3)[..., :2]
    return float(np.abs(ka - kb).max())


def compare_tools(name: str, cfg_path: str, weights: str, folder: str, dets: str, work: str,
                  infer_extra: Sequence[str] = (), ray: bool = False) -> List[Dict[str, Any]]:
    """Rows for the demo, infer.py (and infer.py --ray on a local Ray) on `folder` with model `cfg_path`."""
    from ..apis.batch_infer import run_infer
    from ..apis.demo import run_demo

    weights = _weights_for(cfg_path, weights, work)
    common = ["--config", cfg_path, "--weights", weights, "--boxes", dets, "--device", "cpu", "--no-progress"]
    rows = []
    t0 = time.perf_counter()
    demo_out = tempfile.mkdtemp(prefix=f"demo_{name}_", dir=work)
    demo = run_demo([folder, "--out-dir", demo_out, "--no-save"] + common)
    demo_wall = time.perf_counter() - t0
    with open(os.path.join(demo_out, "predictions.json")) as f:
        demo_pred = json.load(f)
    rows.append({"model": name, "tool": "demo", "images": demo.frames, "persons": demo.persons,
                 "loop_s": demo.wall_s, "images_per_s": demo.frames / demo.wall_s, "wall_s": demo_wall,
                 "split": "", "max_kpt_diff_px": 0.0})
    runs = [("infer.py", [])] + ([("infer.py --ray", ["--ray"])] if ray else [])
    for tool, extra in runs:
        out = tempfile.mkdtemp(prefix=f"infer_{name}_", dir=work)
        t0 = time.perf_counter()
        summary = run_infer([folder, "--out-dir", out] + common + list(infer_extra) + extra)
        wall = time.perf_counter() - t0
        with open(os.path.join(out, "results.json")) as f:
            results = json.load(f)
        rows.append({"model": name, "tool": tool, "images": summary.processed, "persons": summary.persons,
                     "loop_s": summary.loop_s, "images_per_s": summary.processed / summary.loop_s, "wall_s": wall,
                     "split": ", ".join(f"{k} {v:.1f} s" for k, v in summary.stage_s.items()),
                     "max_kpt_diff_px": _max_keypoint_diff(results, demo_pred)})
    for row in rows:
        row["speedup"] = row["images_per_s"] / rows[0]["images_per_s"]
    return rows


def run_batch_infer_benchmark(models: Sequence[Tuple[str, str, str, int]], ray_images: int = 0,
                              infer_extra: Sequence[str] = (), work_dir: Optional[str] = None
                              ) -> List[Dict[str, Any]]:
    """models: (name, config path, weights ('' = random), number of images); `ray_images` > 0 adds infer.py --ray on a
    local Ray (2 CPUs unless RAY_ADDRESS says otherwise) for the first model on that many images."""
    rows: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=work_dir) as work:
        made: Dict[int, Tuple[str, str]] = {}
        for name, cfg_path, weights, num_images in models:
            if num_images not in made:
                made[num_images] = make_folder(os.path.join(work, f"data_{num_images}"), num_images)
            folder, dets = made[num_images]
            rows += compare_tools(name, cfg_path, weights, folder, dets, work, infer_extra)
        if ray_images:
            import ray

            name, cfg_path, weights, _ = models[0]
            folder, dets = made.get(ray_images) or make_folder(os.path.join(work, "data_ray"), ray_images)
            t0 = time.perf_counter()
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            init_s = time.perf_counter() - t0
            try:
                ray_rows = compare_tools(name, cfg_path, weights, folder, dets, work, infer_extra, ray=True)
            finally:
                ray.shutdown()
            ray_rows[-1]["split"] += f"; ray.init {init_s:.1f} s"
            rows += ray_rows
    return rows


def format_batch_infer_table(rows: Sequence[Dict[str, Any]]) -> str:
    head = (f"{'model':<12} {'tool':<15} {'images':>6} {'persons':>7} {'images/s':>9} {'vs demo':>8} "
            f"{'wall s':>7} {'max kpt diff px':>15}  infer main process")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['model']:<12} {r['tool']:<15} {r['images']:>6} {r['persons']:>7} "
                     f"{r['images_per_s']:>9.1f} {r['speedup']:>7.2f}x {r['wall_s']:>7.1f} "
                     f"{r['max_kpt_diff_px']:>15.2g}  {r['split']}")
    return "\n".join(lines)
