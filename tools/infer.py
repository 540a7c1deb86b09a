"""Pose over a large collection of images: batched across images, decoding in worker processes, resumable shards.

    python tools/infer.py INPUT [INPUT ...] --config EXPERIMENT.yaml --weights MODEL.pth --out-dir DIR
        [--det-model auto|fasterrcnn|ssdlite|none] [--boxes DETECTIONS.json | --gt-boxes] [--jsonl] [--draw] [--resume]
    torchrun --nproc_per_node N tools/infer.py ...          (every process of one machine, shards by rank)
    python tools/infer.py ... --ray [ADDRESS]               (a Ray Data job: decoding tasks, pose actors)

INPUT: a folder, a glob, a list file (.txt) of paths or URLs, a COCO json, an image or a URL. Writes DIR/results.json
(COCO keypoint results), DIR/errors.jsonl and DIR/shards/ + DIR/manifest.json (a rerun with --resume skips finished
shards). Exit status 0: all inputs done; 3: done, but some inputs failed (see errors.jsonl); 2: bad arguments.
"""

import sys
from typing import Optional, Sequence

from hrnet_pose.apis.batch_infer import EXIT_SOME_FAILED, run_infer
from hrnet_pose.errors import run_cli


def main(argv: Optional[Sequence[str]] = None):
    summary = run_infer(argv)
    if summary.is_main:
        print(summary.format())
    if summary.failed:
        raise SystemExit(EXIT_SOME_FAILED)
    return summary


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys.exit(run_cli(main))
