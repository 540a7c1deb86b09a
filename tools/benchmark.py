"""Measure speed: model train step and inference on random tensors, and the data loader, for a config.

    python tools/benchmark.py --cfg experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml --mode all \
        --amp '' bf16 fp16 --channels-last [--device cuda] [--json out.json] [KEY VALUE ...]

PyTorch against onnxruntime, side by side in one run (the model is exported to a temporary .onnx first; both go
through the same numpy-in/numpy-out backend contract as PoseEstimator, with the same number of threads):

    python tools/benchmark.py --cfg experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml --mode infer \
        --backend torch onnxruntime --batch 1 8 --device cpu [--threads 2]

CPU speed, plain (official behaviour) against fast, side by side in one run: COCO evaluation of ~100k predictions,
the data pipeline per core (DATASET.FAST_DECODE off/on) and inference latency of every CPU route with its error
(table on stdout, rows in --json; see docs/benchmarks.md):

    python tools/benchmark.py --cfg experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml --mode cpu --device cpu \
        --batch 1 --threads 2 --json cpu.json [--parts eval data infer] [--routes official folded_cl onnxruntime ...]

int8 onnxruntime against fp32 on TRAINED weights (error in crop and image pixels, OKS AP on the val split with GT
boxes, one row per quantisation setting; hrnet_pose.benchmarks.int8):

    python tools/benchmark.py --cfg experiments/synthetic/quickstart.yaml --mode int8 \
        --weights tests/fixtures/synthetic_quickstart_hrnet.pth --threads 1 [--calibration 32] [--json int8.json]

Model families side by side in one run (params, GFLOPs, batch latency in PyTorch and onnxruntime; --compare adds
configs beside --cfg; hrnet_pose.benchmarks.models):

    python tools/benchmark.py --cfg experiments/coco/litehrnet/litehrnet_18_256x192.yaml --mode models \
        --compare experiments/coco/litehrnet/litehrnet_30_256x192.yaml experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml \
        --batch 1 6 --threads 2 [--json models.json]

Person detectors on a 1280x720 frame in PyTorch and onnxruntime (random weights; --cfg is not used by this mode;
hrnet_pose.benchmarks.detectors):

    python tools/benchmark.py --cfg experiments/synthetic/quickstart.yaml --mode detectors --threads 2 --iters 5 \
        [--detectors ssdlite mobilenet320 mobilenet fasterrcnn] [--json detectors.json]

tools/infer.py against the demo on one synthetic folder (same model, same boxes), and Ray local against one process
(hrnet_pose.benchmarks.batch_infer):

    python tools/benchmark.py --cfg experiments/synthetic/quickstart.yaml --mode batch-infer \
        --weights tests/fixtures/synthetic_quickstart_hrnet.pth --images 2000 \
        [--compare experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml --compare-images 200] [--ray-images 2000]

The pose service against the in-process API: REST vs PoseEstimator, 1 vs 8 clients (throughput, p95, memory over
--serve-requests), the webcam page in headless Chromium (FPS, capture-to-drawn latency); random weights, the server
as its own process on 127.0.0.1 (hrnet_pose.benchmarks.serve):

    python tools/benchmark.py --cfg experiments/coco/litehrnet/litehrnet_18_256x192.yaml --mode serve --iters 20 \
        [--clients 8] [--serve-requests 2000] [--page-seconds 10] [--det-model ssdlite] [--json serve.json]

Speed is measured here, never asserted in tests. On a shared CPU, timings vary by about +-10% between runs.
"""

import argparse
import os
import sys
import tempfile

import torch

from hrnet_pose.benchmarks.model_speed import benchmark_backend, benchmark_loader, benchmark_model
from hrnet_pose.benchmarks.train_step import benchmark_train_step, format_step_table
from hrnet_pose.config import load_config
from hrnet_pose.datasets.build import build_dataloader, build_dataset
from hrnet_pose.devices import resolve_device
from hrnet_pose.errors import UserError, run_cli
from hrnet_pose.fileio import write_json_atomic
from hrnet_pose.models import build_model


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", required=True)
    parser.add_argument("--mode", choices=["train", "infer", "data", "all", "step", "cpu", "demo", "int8", "models",
                                           "detectors", "live", "batch-infer", "serve"],
                        default="all",
                        help="step: the training step, plain (fp32 NCHW eager) vs fast (bf16 channels_last fused, "
                             "compiled/graphed on CUDA), side by side")
    parser.add_argument("--det-model", default="", help="demo mode: the detector of both schedules (default "
                                                         "fasterrcnn); live mode: ours (default auto)")
    parser.add_argument("--detectors", nargs="+", default=["ssdlite", "mobilenet320", "mobilenet", "fasterrcnn"],
                        help="detectors mode: which person detectors, each in torch and onnxruntime")
    parser.add_argument("--compile", default="", help="step mode, fast variant on CUDA: ENGINE.COMPILE mode "
                                                      "('' = CUDA graphs via 'reduce-overhead')")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
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
    parser.add_argument("--parts", nargs="+", choices=["eval", "data", "data_cold", "infer"],
                        default=["eval", "data", "infer"], help="cpu mode: which comparisons to run (data_cold: the "
                        "training data pipeline reading from the disk, page cache dropped; Linux, root)")
    parser.add_argument("--routes", nargs="+", default=None, help="cpu mode: inference routes (default: all of "
                                                                     "hrnet_pose.benchmarks.cpu_routes.ROUTES)")
    parser.add_argument("--data-root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                                            "fixtures", "coco_real_mini"),
                        help="cpu mode: real COCO images for the data pipeline and the inference crops")
    parser.add_argument("--weights", default="", help="int8 mode: trained state dict (default: TEST.MODEL_FILE)")
    parser.add_argument("--calibration", type=int, default=32, help="int8 mode: train crops that calibrate the "
                                                                   "activation ranges")
    parser.add_argument("--val-images", type=int, default=0, help="int8 mode, synthetic data: val images to generate "
                                                                  "(default: SYNTHETIC.NUM_VAL_IMAGES)")
    parser.add_argument("--compare", nargs="+", default=[], help="models and live modes: more configs measured beside "
                                                                 "--cfg")
    parser.add_argument("--persons", type=int, nargs="+", default=[1, 6], help="live mode: persons in the clip")
    parser.add_argument("--official-frames", type=int, default=0, help="live mode: frames of the official schedule "
                                                                       "(default: --iters; it runs ~0.1 FPS)")
    parser.add_argument("--det-interval", type=int, default=5, help="live mode: our detection interval")
    parser.add_argument("--live-schedules", nargs="+", choices=["ours", "official"], default=["ours", "official"],
                        help="live mode: which schedules to run (the official one takes seconds per frame on a CPU)")
    parser.add_argument("--official-det-model", default="fasterrcnn", help="live mode: the official schedule's "
                                                                           "detector (the official demo's Faster R-CNN)")
    parser.add_argument("--images", type=int, default=2000, help="batch-infer mode: synthetic images for --cfg")
    parser.add_argument("--compare-images", type=int, default=200, help="batch-infer mode: images for each --compare "
                                                                        "config (random weights)")
    parser.add_argument("--ray-images", type=int, default=0, help="batch-infer mode: also infer.py --ray on a local "
                                                                   "Ray (2 CPUs) for --cfg on this many images")
    parser.add_argument("--clients", type=int, default=8, help="serve mode: concurrent clients")
    parser.add_argument("--serve-requests", type=int, default=400, help="serve mode: requests of the concurrent run "
                                                                         "(memory is sampled over them)")
    parser.add_argument("--page-seconds", type=float, default=10.0, help="serve mode: seconds the page is measured "
                                                                          "(0 = no browser row)")
    parser.add_argument("opts", nargs=argparse.REMAINDER)
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    args.device = str(resolve_device(args.device))
    cfg = load_config(args.cfg, args.opts)
    if args.mode == "demo":
        return _demo_side_by_side(cfg, args)
    if args.mode == "cpu":
        return _cpu_side_by_side(cfg, args)
    if args.mode == "int8":
        return _int8_validation(cfg, args)
    if args.mode == "models":
        return _models_side_by_side(cfg, args)
    if args.mode == "live":
        return _live_side_by_side(cfg, args)
    if args.mode == "batch-infer":
        return _batch_infer_side_by_side(args)
    if args.mode == "detectors":
        return _detectors_side_by_side(args)
    if args.mode == "serve":
        return _serve_side_by_side(args)
    return _model_and_loader(cfg, args)


def _model_and_loader(cfg, args) -> int:
    """--mode train / infer / step / data / all: the model alone on random tensors, the training step, the loader."""
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
    if args.mode == "step":
        for batch in [b or cfg.TRAIN.BATCH_SIZE_PER_GPU for b in args.batch]:
            results += benchmark_train_step(cfg, device, batch, iters=args.iters, compile_mode=args.compile)
    if args.mode in ("data", "all"):
        dataset = build_dataset(cfg, "train")
        results.append(benchmark_loader(build_dataloader(cfg, dataset, "train")))
    print(f"config {args.cfg}, device {device}" + (f" ({torch.cuda.get_device_name(device)})"
                                                    if device.type == "cuda" else f" ({torch.get_num_threads()} threads)"))
    _print_results(results)
    if args.json:
        write_json_atomic(results, args.json, indent=1)
    return 0


def _print_results(results: list) -> None:
    for r in results:
        if r["mode"] == "step":
            continue
        if r["mode"] == "data":
            print(f"data   workers {r['workers']:>2}                     {r['samples_per_s']:9.1f} samples/s")
        elif "backend" in r:
            print(f"{r['mode']:<6} batch {r['batch']:>3} {r['backend']:<11} {r['amp']:<7}"
                  f" {r['samples_per_s']:9.1f} samples/s  {r['ms_per_iter']:8.1f} ms/iter (median)")
        else:
            print(f"{r['mode']:<6} batch {r['batch']:>3} {r['amp']:<5} {'channels_last' if r['channels_last'] else 'contiguous':<13}"
                  f" {r['samples_per_s']:9.1f} samples/s  {r['ms_per_iter']:8.1f} ms/iter (median)")
    step_rows = [r for r in results if r["mode"] == "step"]
    if step_rows:
        print(format_step_table(step_rows))


def _compare_backends(cfg, args, device: torch.device, input_hw, batches) -> list:
    """Inference latency of the same model in each requested runtime, alternating per batch size so that machine
    load drifts hit both alike. The .onnx export lives in a temporary folder."""
    from hrnet_pose.apis.backends import TorchBackend
    from hrnet_pose.deploy.export import export_onnx
    from hrnet_pose.deploy.onnx_backend import OnnxRuntimeBackend

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


def _cpu_name() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), '' where it cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        return ""


def _models_side_by_side(cfg, args) -> int:
    """--mode models: --cfg and every --compare config, PyTorch and onnxruntime, in one run."""
    import platform

    from hrnet_pose.benchmarks.models import compare_models, format_models_table

    named = [(os.path.splitext(os.path.basename(args.cfg))[0], cfg)]
    named += [(os.path.splitext(os.path.basename(path))[0], load_config(path, args.opts)) for path in args.compare]
    batches = [b or 1 for b in args.batch] if args.batch != [0] else [1, 6]
    rows = compare_models(named, batches, threads=args.threads, iters=args.iters)
    print(f"CPU: {_cpu_name() or platform.machine()}, {os.cpu_count()} cores, {rows[0]['threads']} threads, "
          f"torch {torch.__version__}; random weights, median of {args.iters} calls")
    print(format_models_table(rows))
    if args.json:
        write_json_atomic({"rows": rows}, args.json, indent=2)
    return 0


def _cpu_side_by_side(cfg, args) -> int:
    """--mode cpu: every figure plain and fast in one run (hrnet_pose.benchmarks.cpu)."""
    import platform

    import cv2
    import numpy as np
    import onnxruntime

    from hrnet_pose.benchmarks.cpu import format_rows, run_cpu_benchmark
    from hrnet_pose.benchmarks.cpu_routes import ROUTES
    from hrnet_pose.models import load_weights

    threads = args.threads or torch.get_num_threads()
    model = build_model(cfg).eval()
    if cfg.TEST.MODEL_FILE:
        load_weights(model, cfg.TEST.MODEL_FILE)
    batches = [b or 1 for b in args.batch]
    rows = run_cpu_benchmark(model, args.data_root, tuple(cfg.MODEL.IMAGE_SIZE), args.parts, batches, args.iters,
                             threads, args.routes or ROUTES, trained=bool(cfg.TEST.MODEL_FILE))
    cpu = platform.machine()
    if os.path.isfile("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    env = {"cpu": cpu, "cores": os.cpu_count(), "threads": threads,
           "load_average": os.getloadavg(), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
           "opencv": cv2.__version__, "numpy": np.__version__, "python": platform.python_version(),
           "config": args.cfg, "weights": cfg.TEST.MODEL_FILE or "untrained, BN statistics from the fixture crops"}
    print("; ".join(f"{k} {v}" for k, v in env.items()))
    print(format_rows(rows))
    if args.json:
        write_json_atomic({"environment": env, "rows": rows}, args.json, indent=1)
    return 0


def _int8_validation(cfg, args) -> int:
    """--mode int8: fp32 and int8 onnxruntime on trained weights, error and AP per setting
    (hrnet_pose.benchmarks.int8)."""
    import onnxruntime

    from hrnet_pose.benchmarks.int8 import format_int8_rows, validate_int8

    weights = args.weights or cfg.TEST.MODEL_FILE
    if not weights:
        raise UserError("--mode int8 needs trained weights: --weights PATH (or TEST.MODEL_FILE)")
    threads = args.threads or 1
    torch.set_num_threads(threads)
    rows = validate_int8(cfg, weights, num_calibration=args.calibration, num_val_images=args.val_images or None,
                         threads=threads)
    print(f"int8 validation, config {args.cfg}, weights {weights}, onnxruntime {onnxruntime.__version__}, "
          f"{threads} thread(s); {rows[0]['num_val_persons']} val persons (GT boxes), {rows[0]['num_calibration']} "
          f"train crops for calibration; int8 rows against onnxruntime fp32, keypoints in input-crop / image px")
    print(format_int8_rows(rows))
    if args.json:
        write_json_atomic(rows, args.json, indent=2)
    return 0


def _demo_side_by_side(cfg, args) -> int:
    """--mode demo: the official demo's schedule against ours on a synthetic 720p clip (hrnet_pose.benchmarks.demo;
    --det-model picks the torchvision detector, run with random weights: same compute, boxes from the clip)."""
    from hrnet_pose.benchmarks.demo import format_demo_table, run_demo_benchmark

    det_model = args.det_model or "fasterrcnn"
    rows = run_demo_benchmark(cfg, det_model, num_frames=args.iters, device=str(args.device))
    return _report(f"demo schedules, config {args.cfg}, detector {det_model} (random weights), device "
                   f"{args.device} ({torch.get_num_threads()} threads), 1280x720, 6 persons, flip test off",
                   format_demo_table(rows), rows, args.json)


def _report(title: str, table: str, rows: list, json_path: str) -> int:
    print(title)
    print(table)
    if json_path:
        write_json_atomic(rows, json_path, indent=2)
    return 0


def _detectors_side_by_side(args) -> int:
    """--mode detectors: each person detector on a 1280x720 frame in PyTorch and onnxruntime (random weights;
    hrnet_pose.benchmarks.detectors)."""
    from hrnet_pose.benchmarks.detectors import benchmark_detectors, format_detectors_table

    rows = benchmark_detectors(args.detectors, iters=args.iters, threads=args.threads)
    return _report(f"person detectors, 1280x720 frame, random weights, CPU {_cpu_name() or '?'} "
                   f"({torch.get_num_threads()} threads), median of {args.iters} after the first call",
                   format_detectors_table(rows), rows, args.json)


def _live_side_by_side(cfg, args) -> int:
    """--mode live: the whole live pipeline (read, detect, pose, draw, write) against the official demo's schedule on
    a 1280x720 clip file, for --cfg and every --compare config (hrnet_pose.benchmarks.live)."""
    from hrnet_pose.benchmarks.live import FPS, format_live_summary, format_live_table, run_live_benchmark

    named = [(os.path.splitext(os.path.basename(args.cfg))[0], cfg)]
    named += [(os.path.splitext(os.path.basename(path))[0], load_config(path, args.opts)) for path in args.compare]
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = run_live_benchmark(named, persons=args.persons, num_frames=args.iters,
                              official_frames=args.official_frames or None, det_model=args.det_model or "auto",
                              det_interval=args.det_interval, device=str(args.device),
                              official_det_model=args.official_det_model, schedules=args.live_schedules)
    return _report(f"live pipeline, 1280x720 clip at {FPS:g} fps read from a file, random weights (boxes from the clip), "
                   f"flip test off, CPU {_cpu_name() or '?'} ({torch.get_num_threads()} threads), device {args.device}",
                   format_live_table(rows) + "\n\nfile against live (paced):\n" + format_live_summary(rows), rows,
                   args.json)


def _batch_infer_side_by_side(args) -> int:
    """--mode batch-infer: tools/infer.py against the demo on the same synthetic folder, --cfg (with --weights) and
    every --compare config (random weights), plus infer.py --ray on a local Ray with --ray-images
    (hrnet_pose.benchmarks.batch_infer)."""
    from hrnet_pose.benchmarks.batch_infer import format_batch_infer_table, run_batch_infer_benchmark

    models = [(os.path.splitext(os.path.basename(args.cfg))[0], args.cfg, args.weights, args.images)]
    models += [(os.path.splitext(os.path.basename(p))[0], p, "", args.compare_images) for p in args.compare]
    rows = run_batch_infer_benchmark(models, ray_images=args.ray_images)
    return _report(f"tools/infer.py vs tools/demo.py, synthetic 256x256 images (1-3 persons, boxes from the "
                   f"detections file), CPU {_cpu_name() or '?'} ({os.cpu_count()} cores, load average "
                   f"{os.getloadavg()[0]:.1f}), flip test off", format_batch_infer_table(rows), rows, args.json)


def _serve_side_by_side(args) -> int:
    """--mode serve: the pose service against PoseEstimator in one run (hrnet_pose.benchmarks.serve)."""
    from hrnet_pose.benchmarks.serve import format_serve_table, run_serve_benchmark

    det_model = args.det_model or "ssdlite"
    load = os.getloadavg()
    rows = run_serve_benchmark(args.cfg, args.opts, iters=args.iters, clients=args.clients,
                               concurrent_requests=args.serve_requests, page_seconds=args.page_seconds,
                               det_model=det_model)
    return _report(f"pose service, config {args.cfg}, onnxruntime, detector {det_model} (random weights, score "
                   f"threshold 0, max persons = the image's), 1280x720 JPEG, flip test off; CPU {_cpu_name() or '?'}, "
                   f"{os.cpu_count()} cores; load average {load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at "
                   f"the end", format_serve_table(rows), rows, args.json)


if __name__ == "__main__":
    sys.exit(run_cli(main))
