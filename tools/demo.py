"""Draw HRNet poses on images, folders, globs, videos, webcams and RTSP/HTTP streams.

    python tools/demo.py SOURCE --config EXPERIMENT.yaml --weights MODEL.pth [--det-model auto|fasterrcnn|mobilenet|mobilenet320|ssdlite|none]
        [--track] [--smooth] [--det-interval N] [--boxes DETECTIONS.json] [--out-dir DIR] [--show] [--debug]

Writes annotated images (+ predictions.json, COCO results) or an annotated video (+ one JSON line per frame) under
--out-dir and prints frames, persons and mean ms per stage. User errors print one line and exit with status 2
(`--debug` shows the traceback). See `python tools/demo.py --help`.
"""

import sys
from typing import Optional, Sequence

from hrnet_pose.apis.demo import run_demo
from hrnet_pose.errors import run_cli


def main(argv: Optional[Sequence[str]] = None):
    summary = run_demo(argv)
    print(summary.format())
    return summary


if __name__ == "__main__":
    sys.exit(run_cli(main))
