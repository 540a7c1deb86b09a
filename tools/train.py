"""Train an HRNet pose model (official CLI): python tools/train.py --cfg EXPERIMENT.yaml [KEY VALUE ...]

Multi-GPU / multi-node: torchrun --nproc_per_node N tools/train.py --cfg ... (one process per GPU, DDP).
The loop lives in hrnet_pose.engine.trainer.
"""

import argparse
import sys
from typing import Optional, Sequence

from hrnet_pose.config import add_official_args, get_cfg, update_config
from hrnet_pose.engine.distributed import cleanup
from hrnet_pose.engine.trainer import train


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train keypoints network")
    add_official_args(parser)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    cfg = update_config(get_cfg(), args)
    try:
        return train(cfg, args.cfg)
    finally:
        cleanup()


if __name__ == "__main__":
    main(sys.argv[1:])
