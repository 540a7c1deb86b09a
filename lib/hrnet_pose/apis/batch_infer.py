"""The logic behind `tools/infer.py`: pose over a large collection of images, batched, resumable, on one process, on
every process of a `torchrun` job, or as a Ray Data job (`batch_ray`).

Pipeline (one process): the inputs (`batch_inputs`: folder, glob, list file of paths/URLs, COCO json) are cut into
shards and chunks (`batch_data.plan_shards`); DataLoader worker processes read, decode and crop whole chunks while
the main process runs the detector (where boxes are not given) and the pose network over the persons of a chunk
(`batch_data.pose_chunk`: persons of many images in one network batch), onnxruntime on a CPU and PyTorch with AMP on
CUDA. Each finished shard is published (`batch_outputs.ShardWriter`); at the end every shard is merged into
`results.json` (and `results.jsonl`, `errors.jsonl`) in shard order.

torchrun: shard s goes to rank s % WORLD_SIZE (`engine.distributed`, the training's process group); rank 0 checks
or writes the manifest before anyone starts and merges after everyone is done, so the outputs equal a one-process
run's. A rerun with --resume skips the shards already published.
"""

import argparse
import logging
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import torch

from ..config import CN
from ..errors import UserError
from .batch_data import ChunkDataset, identity, plan_shards, pose_chunk, preprocessor
from .batch_inputs import InputItem, collect_inputs
from .batch_outputs import MergeStats, ShardWriter, make_manifest, merge_shards, open_run, sha256_file, sha256_text
from .batch_runtime import RANDOM_WEIGHTS_SEED, build_estimator, draw_result, progress_bar, resolve_config
from .estimator import PoseEstimator

logger = logging.getLogger(__name__)

_CONFIG_KEY = re.compile(r"^[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)+$")
EXIT_SOME_FAILED = 3  # the run finished, but some inputs could not be used (listed in errors.jsonl)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="HRNet poses for a large collection of images: batched across images, decoding in worker "
                    "processes, resumable shards; one process, torchrun, or a Ray cluster (--ray).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("inputs", nargs="+", help="folders, globs ('imgs/**/*.jpg'), list files (.txt: one path or URL a "
                                             "line), COCO jsons (their images), image files or URLs")
    p.add_argument("--config", "--cfg", dest="config", default="", help="experiment yaml (optional with a zoo name)")
    p.add_argument("--weights", default="none", help=".pth, .onnx or model zoo name; 'none' = random weights "
                                                   f"(seeded with {RANDOM_WEIGHTS_SEED}: the same in every process)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (torchrun: cuda:LOCAL_RANK)")
    p.add_argument("--amp", default="auto", choices=["auto", "", "bf16", "fp16"],
                   help="autocast on CUDA; auto = bf16 where the GPU has it, else fp16 ('' on a CPU)")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnxruntime"],
                   help="pose network runtime: auto = onnxruntime on a CPU, PyTorch on CUDA")
    p.add_argument("--det-model", default="auto", help="person detector as in tools/demo.py (auto, fasterrcnn, "
                                                       "mobilenet, mobilenet320, ssdlite) or none (whole image)")
    p.add_argument("--det-runtime", default="auto", choices=["auto", "torch", "onnxruntime"])
    p.add_argument("--det-weights", default="", help="local detector weights file")
    p.add_argument("--bbox-thr", type=float, default=0.5, help="minimum person box score (detector and --boxes)")
    p.add_argument("--nms-thr", type=float, default=0.5, help="detector box NMS IoU threshold")
    p.add_argument("--max-persons", type=int, default=None, help="most persons per image (detector)")
    p.add_argument("--boxes", default="", help="COCO results json of person boxes (image_id: id, file name or "
                                               "stem); replaces the detector")
    p.add_argument("--gt-boxes", action="store_true", help="COCO json inputs: their person annotations are the "
                                                           "boxes (no detector)")
    p.add_argument("--image-root", default="", help="COCO json inputs: folder of their file_name (default: the "
                                                    "json's folder)")
    p.add_argument("--recursive", action="store_true", help="folders: their subfolders too")
    p.add_argument("--flip-test", action=argparse.BooleanOptionalAction, default=None,
                   help="average with the mirrored image (default: the config's TEST.FLIP_TEST)")
    p.add_argument("--max-batch", type=int, default=32, help="persons per network batch")
    p.add_argument("--batch-images", type=int, default=16, help="images whose persons are batched together (a "
                                                                "chunk: the unit of decoding work)")
    p.add_argument("--shard-size", type=int, default=512, help="images per output shard (the unit of resume)")
    p.add_argument("--workers", type=int, default=None, help="decoding processes per process (default: cores / "
                                                              "processes - 1, at least 1; 0 = decode inline)")
    p.add_argument("--out-dir", default="output/infer", help="shards, manifest, results.json, errors.jsonl")
    p.add_argument("--resume", action="store_true", help="finish the run in --out-dir (same config, weights, "
                                                         "inputs and settings), skipping finished shards")
    p.add_argument("--jsonl", action="store_true", help="also write results.jsonl, one line per image")
    p.add_argument("--draw", action="store_true", help="also write drawn images under OUT_DIR/vis/")
    p.add_argument("--kpt-thr", type=float, default=0.3, help="keypoint score threshold for drawing only")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (there is none unless stderr is a "
                                                              "terminal)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run as a Ray Data job: without ADDRESS a local Ray (or the one RAY_ADDRESS names)")
    p.add_argument("--ray-actors", type=int, default=1, help="Ray: pose model actors")
    p.add_argument("--ray-actor-cpus", type=float, default=1.0, help="Ray: CPUs per pose actor")
    p.add_argument("--ray-actor-gpus", type=float, default=0.0, help="Ray: GPUs per pose actor")
    p.add_argument("--ray-num-cpus", type=int, default=None, help="Ray, local start: CPUs it may use")
    p.add_argument("--opts", nargs="*", default=[], help="config overrides KEY VALUE ...")
    p.add_argument("overrides", nargs="*", help="trailing KEY VALUE config overrides, as in every tool")
    return p


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    args = build_parser().parse_intermixed_args(argv)
    args.weights = "" if args.weights.strip().lower() in ("", "none") else args.weights
    # several inputs and trailing KEY VALUE pairs share the positionals: a config key (TEST.FLIP_TEST) that is no
    # path starts a pair
    inputs, pairs, rest = [], [], list(args.inputs) + list(args.overrides)
    while rest:
        token = rest.pop(0)
        if _CONFIG_KEY.match(token) and not os.path.exists(token) and rest:
            pairs += [token, rest.pop(0)]
        else:
            inputs.append(token)
    if not inputs:
        raise UserError("no input given: a folder, a glob, a list file, a COCO json, an image or a URL")
    args.inputs = inputs
    args.opts = list(args.opts) + pairs
    return args


@dataclass
class InferSummary:
    total: int = 0
    processed: int = 0
    resumed_shards: int = 0
    resumed_images: int = 0
    failed: int = 0
    persons: int = 0
    wall_s: float = 0.0
    loop_s: float = 0.0  # from the first chunk asked for to the last shard published (no startup, no merge)
    stage_s: Dict[str, float] = field(default_factory=lambda: {"wait for data": 0.0, "pose": 0.0, "write": 0.0})
    outputs: List[str] = field(default_factory=list)
    where: str = "1 process"
    is_main: bool = True

    def format(self) -> str:
        rate = self.processed / self.loop_s if self.loop_s > 0 else float("nan")
        lines = [f"{self.total} images ({self.where}): {self.processed} processed in {self.loop_s:.1f} s = "
                 f"{rate:.1f} images/s (wall {self.wall_s:.1f} s with startup and merge), {self.persons} persons, "
                 f"{self.failed} failed"]
        if self.resumed_shards:
            lines.append(f"resumed: {self.resumed_shards} shards ({self.resumed_images} images) were done before")
        spent = ", ".join(f"{k} {v:.1f} s" for k, v in self.stage_s.items())
        lines.append(f"main process time: {spent}")
        if self.failed:
            lines.append(f"{self.failed} inputs failed; reasons in {self.outputs[-1] if self.outputs else 'errors'}")
        lines += [f"wrote {p}" for p in self.outputs]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- the plan
@dataclass
class Plan:
    cfg: CN
    weights: Optional[str]
    items: List[InputItem]
    table: Optional[Dict[Any, Any]]
    shards: List[List[Any]]
    manifest: Dict[str, Any]
    detect: bool
    pre: PoseEstimator


def make_plan(args: argparse.Namespace) -> Plan:
    """Inputs, boxes, shards and the manifest, before any model is built (a wrong input fails fast)."""
    from .demo import load_boxes_file

    for flag in ("max_batch", "batch_images", "shard_size"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    if args.boxes and args.gt_boxes:
        raise UserError("--boxes and --gt-boxes both give person boxes; choose one")
    cfg, weights = resolve_config(args)
    items = collect_inputs(args.inputs, recursive=args.recursive, image_root=args.image_root,
                           gt_boxes=args.gt_boxes)
    table = load_boxes_file(args.boxes, args.bbox_thr) if args.boxes else None
    shards = plan_shards(len(items), args.shard_size, args.batch_images)
    pre = preprocessor(cfg, args.flip_test, args.max_batch)
    detect = not (args.boxes or args.gt_boxes) and args.det_model.lower() != "none"
    settings = {"flip_test": pre.flip_test, "det_model": args.det_model.lower() if detect else "none",
                "det_weights": sha256_file(args.det_weights) if detect and args.det_weights else "",
                "bbox_thr": args.bbox_thr, "nms_thr": args.nms_thr, "max_persons": args.max_persons,
                "boxes": sha256_file(args.boxes) if args.boxes else "", "gt_boxes": bool(args.gt_boxes)}
    manifest = make_manifest(sha256_text(cfg.dump()), sha256_file(weights) if weights else
                             f"random weights, seed {RANDOM_WEIGHTS_SEED}", items, settings, args.shard_size,
                             args.batch_images, len(shards))
    return Plan(cfg, weights, items, table, shards, manifest, detect, pre)


def default_workers(world_size: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(world_size, 1) - 1)


# ---------------------------------------------------------------------------------------------------- running
def run_shards(plan: Plan, args: argparse.Namespace, estimator_factory: Any, shard_ids: Sequence[int],
               summary: InferSummary, desc: str) -> None:
    """The shards `shard_ids` not yet published, in this process: workers prepare chunks, the main process poses
    them and publishes each shard when its last chunk is done."""
    writer = ShardWriter(args.out_dir, plan.shards)
    todo = [s for s in shard_ids if not writer.done(s)]
    for s in shard_ids:
        if s not in todo:
            summary.resumed_shards += 1
            summary.resumed_images += sum(c.stop - c.start for c in plan.shards[s])
    chunks = [c for s in todo for c in plan.shards[s]]
    if not chunks:
        return
    dataset = ChunkDataset(plan.pre, plan.items, chunks, plan.table, plan.detect, keep_image=args.draw)
    workers = args.workers if args.workers is not None else default_workers(int(os.environ.get("WORLD_SIZE", 1)))
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, shuffle=False, num_workers=workers,
                                         collate_fn=identity,
                                         prefetch_factor=4 if workers else None)
    # no thread settings in the workers (the DataLoader gives each one torch thread): in a worker forked from a process
    # whose OpenMP or OpenCV pool has run, torch.set_num_threads and cv2.setNumThreads wait forever for pool threads
    # the fork did not copy
    batches = iter(loader)  # the workers fork here, before the network's runtime starts its threads
    estimator = estimator_factory()
    bar = progress_bar(sum(c.stop - c.start for c in chunks), args, desc)
    start = time.perf_counter()  # workers started decoding meanwhile: their head start counts as startup
    try:
        while True:
            t0 = time.perf_counter()
            got = next(batches, None)
            t1 = time.perf_counter()
            if got is None:
                break
            chunk, records = got
            lines, results = pose_chunk(estimator, plan.items, records)
            t2 = time.perf_counter()
            if args.draw:
                for r, res in zip(records, results):
                    if res is not None:
                        draw_result(args.out_dir, plan.items[r["index"]], r["image"], res, args.kpt_thr)
            shard = writer.add(chunk, lines)
            summary.stage_s["wait for data"] += t1 - t0
            summary.stage_s["pose"] += t2 - t1
            summary.stage_s["write"] += time.perf_counter() - t2
            summary.processed += len(lines)
            bar.update(len(lines))
            if shard is not None:
                rate = summary.processed / max(time.perf_counter() - start, 1e-9)
                logger.info("%s: shard %d done (%d images processed, %.1f images/s)", desc, shard,
                            summary.processed, rate)
    finally:
        bar.close()
        summary.loop_s += time.perf_counter() - start


def run_infer(argv: Optional[Sequence[str]] = None, ray_init: Optional[Dict[str, Any]] = None) -> InferSummary:
    """Parse `argv`, run (one process, torchrun or Ray), merge; the summary's `format()` is for the console and
    `failed` decides the exit status (EXIT_SOME_FAILED). `ray_init`: keyword arguments of `ray.init` for a local
    start (tests: num_cpus=2, include_dashboard=False)."""
    args = parse_args(argv)
    start = time.perf_counter()
    plan = make_plan(args)
    summary = InferSummary(total=len(plan.items))
    if args.ray is not None:
        from .batch_ray import run_ray

        os.makedirs(args.out_dir, exist_ok=True)
        open_run(args.out_dir, plan.manifest, args.resume)
        run_ray(plan, args, summary, ray_init)
        _finish(plan, args, summary, start)
        return summary
    from ..engine.distributed import all_gather_object, broadcast_object, cleanup, init_distributed

    info = init_distributed(device="" if args.device == "auto" else args.device, timeout_min=7 * 24 * 60)
    try:
        problem = None
        if info.is_main:
            try:
                os.makedirs(args.out_dir, exist_ok=True)
                open_run(args.out_dir, plan.manifest, args.resume)
            except UserError as err:
                problem = err
        problem = broadcast_object(problem)  # every rank stops on rank 0's error instead of waiting for it
        if problem is not None:
            raise problem
        summary.where = f"{info.world_size} processes (torchrun)" if info.distributed else "1 process"
        summary.is_main = info.is_main
        mine = [s for s in range(len(plan.shards)) if s % info.world_size == info.rank]
        run_shards(plan, args, lambda: build_estimator(args, plan.cfg, plan.weights, info.device), mine, summary,
                   f"rank {info.rank}/{info.world_size}" if info.distributed else "infer")
        counts = all_gather_object((summary.processed, summary.resumed_shards, summary.resumed_images,
                                    summary.loop_s))
        summary.processed = sum(c[0] for c in counts)
        summary.resumed_shards, summary.resumed_images = sum(c[1] for c in counts), sum(c[2] for c in counts)
        summary.loop_s = max(c[3] for c in counts)  # the job lasts as long as its slowest rank
        failed = None
        if info.is_main:
            _finish(plan, args, summary, start)
            failed = summary.failed
        summary.failed = broadcast_object(failed)
    finally:
        cleanup()
    return summary


def _finish(plan: Plan, args: argparse.Namespace, summary: InferSummary, start: float) -> None:
    stats: MergeStats = merge_shards(args.out_dir, plan.shards, jsonl=args.jsonl)
    summary.failed, summary.persons = stats.failed, stats.persons
    summary.wall_s = time.perf_counter() - start
    names = ["results.json"] + (["results.jsonl"] if args.jsonl else []) + ["errors.jsonl"]
    summary.outputs = [os.path.join(args.out_dir, n) for n in names]
    if args.draw:
        summary.outputs.insert(-1, os.path.join(args.out_dir, "vis"))
