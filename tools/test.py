"""Evaluate an HRNet pose model on COCO keypoints (official CLI):
python tools/test.py --cfg EXPERIMENT.yaml TEST.MODEL_FILE model.pth [TEST.USE_GT_BBOX False] [KEY VALUE ...]

Prints the official markdown AP table and the protocol (boxes, flip, decoder, input size); writes the keypoint
results json and metrics.json into OUTPUT_DIR/<dataset>/<model>/<cfg stem>/. Works on CPU; torchrun shards the data.
"""

import argparse
import sys
from typing import Optional, Sequence

from hrnet_pose.config import add_official_args, get_cfg, update_config
from hrnet_pose.engine.distributed import cleanup
from hrnet_pose.engine.validate import evaluate_model_file


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Test keypoints network")
    add_official_args(parser)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    cfg = update_config(get_cfg(), args)
    try:
        return evaluate_model_file(cfg, args.cfg)
    finally:
        cleanup()


if __name__ == "__main__":
    main(sys.argv[1:])
