"""Measure speed: model train step and inference on random tensors, and the data loader, for a config.

    python tools/benchmark.py --cfg experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml --mode all \
        --amp '' bf16 fp16 --channels-last [--device cuda] [--json out.json] [KEY VALUE ...]

PyTorch against onnxruntime, side by side in one run (the model is exported to a temporary .onnx first; both go
through the same numpy-in/numpy-out backend contract as PoseEstimator, with the same number of threads):

    python tools/benchmark.py --cfg experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml --mode infer \
        --backend torch onnxruntime --batch 1 8 --device cpu [--threads 2]

Speed is measured here, never asserted in tests. On a shared CPU, timings vary by about +-10% between runs.
"""

import argparse
import json
import os
import sys
import tempfile

import torch

from hrnet_pose.config import load_config
from hrnet_pose.datasets.build import build_dataloader, build_dataset
from hrnet_pose.engine.benchmark import benchmark_backend, benchmark_loader, benchmark_model
from hrnet_pose.models import build_model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", required=True)
    parser.add_argument("--mode", choices=["train", "infer", "data", "all"], default="all")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, nargs="+", default=[0],
                        help="one or more batch sizes; default: TRAIN/TEST.BATCH_SIZE_PER_GPU")
    parser.add_argument("--backend", nargs="+", choices=["torch", "onnxruntime"], default=["torch"],
                        help="infer mode: runtimes to compare through the PoseEstimator backend contract")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch and onnxruntime (default: "
                                                                 "torch's own)")
    parser.add_argument("--amp", nargs="+", default=[""], help="any of '' (fp32), bf16, fp16")
    parser.add_argument("--channels-last", action="store_true", help="also measure channels_last")
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--json", default="", help="write the results here")
    parser.add_argument("opts", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    cfg = load_config(args.cfg, args.opts)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    w, h = cfg.MODEL.IMAGE_SIZE
    results = []
    layouts = [False, True] if args.channels_last else [False]
    for mode in ("train", "infer"):
        if args.mode not in (mode, "all"):
            continue
        default = cfg.TRAIN.BATCH_SIZE_PER_GPU if mode == "train" else cfg.TEST.BATCH_SIZE_PER_GPU
        batches = [b or default for b in args.batch]
        if mode == "infer" and "onnxruntime" in args.backend:
            results += _compare_backends(cfg, args, device, (h, w), batches)
            continue
        for batch in batches:
            for amp in args.amp:
                for cl in layouts:
                    model = build_model(cfg)
                    results.append(benchmark_model(model, (h, w), batch, device, amp, cl, mode == "train",
                                                   iters=args.iters))
    if args.mode in ("data", "all"):
        dataset = build_dataset(cfg, "train")
        results.append(benchmark_loader(build_dataloader(cfg, dataset, "train")))
    print(f"config {args.cfg}, device {device}" + (f" ({torch.cuda.get_device_name(device)})"
                                                    if device.type == "cuda" else f" ({torch.get_num_threads()} threads)"))
    for r in results:
        if r["mode"] == "data":
            print(f"data   workers {r['workers']:>2}                     {r['samples_per_s']:9.1f} samples/s")
        elif "backend" in r:
            print(f"{r['mode']:<6} batch {r['batch']:>3} {r['backend']:<11} {r['amp']:<7}"
                  f" {r['samples_per_s']:9.1f} samples/s  {r['ms_per_iter']:8.1f} ms/iter (median)")
        else:
            print(f"{r['mode']:<6} batch {r['batch']:>3} {r['amp']:<5} {'channels_last' if r['channels_last'] else 'contiguous':<13}"
                  f" {r['samples_per_s']:9.1f} samples/s  {r['ms_per_iter']:8.1f} ms/iter (median)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


def _compare_backends(cfg, args, device: torch.device, input_hw, batches) -> list:
    """Inference latency of the same model in each requested runtime, alternating per batch size so that machine
    load drifts hit both alike. The .onnx export lives in a temporary folder."""
    from hrnet_pose.apis.backends import TorchBackend
    from hrnet_pose.apis.export import export_onnx
    from hrnet_pose.apis.onnx_backend import OnnxRuntimeBackend

    model = build_model(cfg).eval()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, os.path.join(tmp, "model.onnx"), (input_hw[1], input_hw[0]))
        backends = {
            "torch": TorchBackend(model, device),
            "onnxruntime": OnnxRuntimeBackend(path, device=str(device), num_threads=args.threads or
                                              torch.get_num_threads()),
        }
        for batch in batches:
            for name in args.backend:
                rows.append(benchmark_backend(backends[name], input_hw, batch, iters=args.iters))
    return rows


if __name__ == "__main__":
    sys.exit(main())
