"""Train an HRNet pose model (official CLI): python tools/train.py --cfg EXPERIMENT.yaml [KEY VALUE ...]

Multi-GPU / multi-node: torchrun --nproc_per_node N tools/train.py --cfg ... (one process per GPU, DDP).
The loop lives in hrnet_pose.engine.trainer. MODEL.PRETRAINED may be a file or a model zoo name (hrnet_pose.apis.zoo):
every tensor whose name and shape fit is loaded; fine-tuning onto another keypoint set re-initialises the head.

A wrong config key or value, a missing file or a checkpoint that does not fit prints `error: ...` (and a hint) on
stderr and exits with status 2; --debug (or HRNET_POSE_DEBUG=1) shows the traceback instead. The resolved config is
written to the log file and config.yaml in the output folder, not to the console.
"""

import sys
from typing import Optional, Sequence

from hrnet_pose.apis.zoo import apply_zoo_pretrained
from hrnet_pose.engine.cli import run_official_cli
from hrnet_pose.engine.trainer import train
from hrnet_pose.errors import run_cli


def main(argv: Optional[Sequence[str]] = None) -> dict:
    def run(cfg, cfg_path: str) -> dict:
        return train(apply_zoo_pretrained(cfg), cfg_path)

    return run_official_cli(run, "Train keypoints network", argv)


if __name__ == "__main__":
    sys.exit(run_cli(main))
