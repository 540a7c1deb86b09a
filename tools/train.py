"""Train an HRNet pose model (official CLI): python tools/train.py --cfg EXPERIMENT.yaml [KEY VALUE ...]

Multi-GPU / multi-node: torchrun --nproc_per_node N tools/train.py --cfg ... (one process per GPU, DDP).
The loop lives in hrnet_pose.engine.trainer.
"""

import sys
from typing import Optional, Sequence

from hrnet_pose.engine.cli import run_official_cli
from hrnet_pose.engine.trainer import train


def main(argv: Optional[Sequence[str]] = None) -> dict:
    return run_official_cli(train, "Train keypoints network", argv)


if __name__ == "__main__":
    main(sys.argv[1:])
