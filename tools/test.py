"""Evaluate an HRNet pose model on COCO keypoints (official CLI):
python tools/test.py --cfg EXPERIMENT.yaml TEST.MODEL_FILE model.pth [TEST.USE_GT_BBOX False] [KEY VALUE ...]

Prints the official markdown AP table and the protocol (boxes, flip, decoder, input size); writes the keypoint
results json and metrics.json into OUTPUT_DIR/<dataset>/<model>/<cfg stem>/. Works on CPU; torchrun shards the data.
"""

import sys
from typing import Optional, Sequence

from hrnet_pose.engine.cli import run_official_cli
from hrnet_pose.engine.validate import evaluate_model_file


def main(argv: Optional[Sequence[str]] = None) -> dict:
    return run_official_cli(evaluate_model_file, "Test keypoints network", argv)


if __name__ == "__main__":
    main(sys.argv[1:])
