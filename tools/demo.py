"""Draw HRNet poses on images, folders, globs, videos, webcams and RTSP/HTTP streams.

    python tools/demo.py SOURCE --config EXPERIMENT.yaml --weights MODEL.pth [--det-model auto|fasterrcnn|mobilenet|mobilenet320|ssdlite|none]
        [--track] [--smooth] [--det-interval N] [--boxes DETECTIONS.json] [--out-dir DIR] [--show] [--quiet] [--debug]

Writes annotated images (+ predictions.json, COCO results) or an annotated video (+ one JSON line per frame) under
--out-dir and prints frames, persons, the frame rate and mean ms per stage. Logs at INFO (--quiet: warnings only).
Exit status: 0 done; 2 a wrong argument or input, one line (`--debug` shows the traceback); 3 the webcam was lost
(outputs so far kept); 130 Ctrl-C (outputs so far kept). See `python tools/demo.py --help`.
"""

import logging
import sys
from typing import Optional, Sequence

from hrnet_pose.apis.demo import log_level, run_demo
from hrnet_pose.errors import run_cli


def main(argv: Optional[Sequence[str]] = None):
    summary = run_demo(argv)
    print(summary.format())
    summary.raise_for_status()  # Ctrl-C or a lost camera, after the outputs were closed: run_cli's exit status
    return summary


if __name__ == "__main__":
    logging.basicConfig(level=log_level(sys.argv[1:]), format="%(levelname)s %(name)s: %(message)s")
    sys.exit(run_cli(main))
