"""Batch inference as a Ray Data job (`tools/infer.py --ray [ADDRESS]`): Ray Data's batch-inference pattern, CPU
decoding streamed into model actors.

One row per chunk of the plan (`batch_data.plan_shards`, the same chunks as one process): `map` runs
`prepare_chunk` (read, decode, boxes, crops) as Ray tasks of one CPU each; `map_batches` hands each prepared chunk to
a pool of `--ray-actors` actors that hold the detector and the pose network (`--ray-actor-cpus` / `--ray-actor-gpus`
each) and pose it with `pose_chunk`; the driver collects the output lines, publishes each shard when its chunks are
all in, and merges as one process does. Because the chunks and the code are the same, the outputs equal a
one-process run's; finished shards of an earlier run are not sent again (--resume).

Inputs and outputs are paths as the driver sees them: on a cluster, the images (or their URLs) and --out-dir must be
reachable from every node under the same paths (drawn images are written by the actors).

Ray's own overhead: starting a local instance (~5-15 s on a small machine), one worker process per task slot and per
actor (each imports torch), and passing every prepared chunk through the object store (crops are float32).
"""

import argparse
import json
import logging
import pickle
import time
from typing import Any, Dict, Optional

import numpy as np

from ..errors import UserError
from .batch_data import prepare_chunk, pose_chunk
from .batch_outputs import ShardWriter
from .batch_inputs import boxes_for

logger = logging.getLogger(__name__)

# Memory reserved per decoding task: one decoded photo (a 12 MP image is 36 MB) and a chunk's float32 crops. Asking
# for it also keeps Ray Data from fusing the decoding into the pose actors' processes (it fuses only operators whose
# resource requests agree), so decoding runs as tasks of its own beside the actors.
DECODE_TASK_MEMORY = 512 * 2 ** 20


def prepare_row(row: Dict[str, Any], pre: Any, detect: bool, keep_image: bool) -> Dict[str, Any]:
    """Ray task: a chunk row (the chunk and its input items, boxes resolved) -> its prepared records."""
    chunk, items = pickle.loads(row["payload"])
    records = prepare_chunk(pre, items, chunk, None, detect, keep_image)
    for r in records:
        if r["inputs"] is not None:
            r["inputs"] = np.asarray(r["inputs"])
    return {"chunk_id": row["chunk_id"], "payload": pickle.dumps((chunk, items, records))}


class PoseActor:
    """Ray actor: builds the estimator once, then poses prepared chunks (`map_batches` with batch_size=1)."""

    def __init__(self, args: argparse.Namespace, cfg: Any, weights: Optional[str], threads: int) -> None:
        import torch

        from ..devices import resolve_device
        from .batch_runtime import build_estimator

        torch.set_num_threads(max(1, threads))
        self.args = args
        self.estimator = build_estimator(args, cfg, weights, resolve_device(args.device))

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        from .batch_runtime import draw_result

        out = []
        for payload in batch["payload"]:
            chunk, items, records = pickle.loads(payload)
            lines, results = pose_chunk(self.estimator, items, records)
            if self.args.draw:
                for r, res in zip(records, results):
                    if res is not None:
                        draw_result(self.args.out_dir, items[r["index"]], r["image"], res, self.args.kpt_thr)
            out.append(json.dumps(lines))
        return {"chunk_id": np.asarray(batch["chunk_id"]), "lines": np.array(out, dtype=object)}


def _init_ray(address: str, ray_init: Optional[Dict[str, Any]], num_cpus: Optional[int]) -> Any:
    try:
        import ray
    except ImportError as err:
        raise UserError("--ray needs Ray Data: pip install -e .[ray] (or pip install 'ray[data]')") from err
    if ray.is_initialized():
        return ray
    kwargs = dict(ray_init or {})
    if address == "local":
        if num_cpus:
            kwargs["num_cpus"] = num_cpus
        kwargs.setdefault("include_dashboard", False)
        ray.init(**kwargs)
    else:
        ray.init(address=address, **kwargs)
    return ray


def run_ray(plan: Any, args: argparse.Namespace, summary: Any, ray_init: Optional[Dict[str, Any]] = None) -> None:
    """The plan's unfinished shards through Ray Data (module docstring); fills `summary` as `run_shards` does."""
    ray = _init_ray(args.ray, ray_init, args.ray_num_cpus)
    writer = ShardWriter(args.out_dir, plan.shards)
    todo = [s for s in range(len(plan.shards)) if not writer.done(s)]
    for s in range(len(plan.shards)):
        if s not in todo:
            summary.resumed_shards += 1
            summary.resumed_images += sum(c.stop - c.start for c in plan.shards[s])
    chunks = [c for s in todo for c in plan.shards[s]]
    summary.where = f"Ray, {args.ray_actors} pose actor(s)"
    if not chunks:
        return
    rows = []
    for k, chunk in enumerate(chunks):
        items = {}
        for i in range(chunk.start, chunk.stop):
            item = plan.items[i]
            boxes, scores = boxes_for(item, plan.table)
            items[i] = type(item)(item.source, item.image_id, item.name, boxes, scores)
        rows.append({"chunk_id": k, "payload": pickle.dumps((chunk, items))})
    # a few blocks per CPU: decoding tasks small enough to spread, few enough to schedule cheaply
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    ds = ray.data.from_items(rows, override_num_blocks=min(len(rows), 4 * cpus))
    ds = ds.map(prepare_row, fn_kwargs={"pre": plan.pre, "detect": plan.detect, "keep_image": args.draw},
                num_cpus=1, memory=DECODE_TASK_MEMORY)
    ds = ds.map_batches(PoseActor, fn_constructor_args=(args, plan.cfg, plan.weights,
                                                        max(1, int(args.ray_actor_cpus))),
                        batch_size=1, compute=ray.data.ActorPoolStrategy(size=args.ray_actors),
                        num_cpus=args.ray_actor_cpus,
                        num_gpus=args.ray_actor_gpus or None)
    start = time.perf_counter()
    from .batch_runtime import progress_bar

    bar = progress_bar(sum(c.stop - c.start for c in chunks), args, "ray")
    try:
        for row in ds.iter_rows():
            chunk = chunks[int(row["chunk_id"])]
            lines = json.loads(row["lines"])
            shard = writer.add(chunk, lines)
            summary.processed += len(lines)
            bar.update(len(lines))
            if shard is not None:
                logger.info("ray: shard %d done (%d images, %.1f images/s)", shard, summary.processed,
                            summary.processed / max(time.perf_counter() - start, 1e-9))
    finally:
        bar.close()
    summary.loop_s = time.perf_counter() - start
    summary.stage_s = {"Ray job (actors start inside)": summary.loop_s}
