"""Evaluate an HRNet pose model on COCO keypoints (official CLI):
python tools/test.py --cfg EXPERIMENT.yaml TEST.MODEL_FILE model.pth [TEST.USE_GT_BBOX False] [KEY VALUE ...]
TEST.MODEL_FILE may also be a model zoo name (hrnet_pose.apis.zoo): its checkpoint is downloaded and the entry's
architecture, input size, flip alignment and decoder replace the yaml's (each change is logged).

Prints the official markdown AP table and the protocol (boxes, flip, decoder, input size); writes the keypoint
results json and metrics.json into OUTPUT_DIR/<dataset>/<model>/<cfg stem>/. Works on CPU; torchrun shards the data.

A wrong config key or value, a missing file or a checkpoint that does not fit prints `error: ...` (and a hint) on
stderr and exits with status 2; --debug (or HRNET_POSE_DEBUG=1) shows the traceback instead. The resolved config is
written to the log file and config_test.yaml in the output folder, not to the console.
"""

import sys
from typing import Optional, Sequence

from hrnet_pose.apis.zoo import apply_zoo_weights
from hrnet_pose.engine.cli import run_official_cli
from hrnet_pose.engine.validate import evaluate_model_file
from hrnet_pose.errors import run_cli


def main(argv: Optional[Sequence[str]] = None) -> dict:
    def evaluate(cfg, cfg_path: str) -> dict:
        return evaluate_model_file(apply_zoo_weights(cfg), cfg_path)

    return run_official_cli(evaluate, "Test keypoints network", argv)


if __name__ == "__main__":
    sys.exit(run_cli(main))
