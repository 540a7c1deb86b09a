"""The demo's inputs besides the source: its command line (`build_parser`, `parse_args`, every value checked by
argparse) and the `--boxes` file of person boxes (`load_boxes_file`, `check_boxes_match`).

A wrong value on the command line is one line, `error: argument --bbox-thr: 1.5 is not in [0, 1]`, and exit status 2,
before anything is loaded. `log_level(argv)` is the logging level `tools/demo.py` sets: INFO by default (so the
first-run "exporting the pose network" pause and a damaged video are explained), WARNING with `--quiet`, DEBUG with
`--debug` (which also shows tracebacks of user errors, `errors.run_cli`).
"""

import argparse
import json
import logging
import os
import sys
from collections import defaultdict
from typing import Any, Callable, Container, Dict, List, NoReturn, Optional, Sequence, Tuple

import numpy as np

from ..errors import DEBUG_ENV, EXIT_USER_ERROR, UserError
from ..geometry import xywh_to_xyxy
from .detectors import MAX_PERSONS
from .stream import DEFAULT_MIN_POSE_SCORE

__all__ = ["build_parser", "parse_args", "log_level", "load_boxes_file", "boxes_for", "check_boxes_match", "BoxTable"]

BoxTable = Dict[Any, Tuple[np.ndarray, np.ndarray]]  # image id or frame index -> (boxes [N, 4] xyxy, scores [N])


class _OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line, as every user error of the tools (`error: ...`, exit status 2)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {message} (python tools/demo.py --help lists the options)\n")
        sys.exit(EXIT_USER_ERROR)


def _number(kind: Callable[[str], Any], low: Optional[float] = None, high: Optional[float] = None,
            low_open: bool = False, what: str = "") -> Callable[[str], Any]:
    """An argparse type: `kind(text)` within [low, high] ((low, high] with low_open); its message names the range."""
    lo = "" if low is None else f"{'(' if low_open else '['}{low:g}"
    hi = "" if high is None else f"{high:g}]"
    valid = what or (f"in {lo}, {hi}" if low is not None and high is not None else
                     f"{'>' if low_open else '>='} {low:g}" if low is not None else f"<= {high:g}")

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") \
                from None
        if not np.isfinite(value) or (low is not None and (value <= low if low_open else value < low)) or \
                (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{text} is not {valid}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


PROBABILITY = _number(float, 0.0, 1.0)
POSITIVE_INT = _number(int, 1)
NON_NEGATIVE_INT = _number(int, 0)
POSITIVE = _number(float, 0.0, low_open=True)


def _model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "--cfg", dest="config", default="", help="experiment yaml (optional with a zoo name)")
    p.add_argument("--weights", default="none", help=".pth, .onnx or model zoo name; 'none' = random weights (as in "
                                                   "tools/export.py)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--amp", default="", choices=["", "bf16", "fp16"], help="autocast on CUDA")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnxruntime"],
                   help="pose network runtime: auto = onnxruntime on a CPU (a .pth is exported once into "
                        "$HRNET_POSE_CACHE or ~/.cache/hrnet_pose/onnx), PyTorch on CUDA")
    p.add_argument("--int8", action="store_true", help="onnxruntime int8, calibrated on the first crops (or on "
                                                        "--int8-calib); its keypoint error against fp32 is logged once")
    p.add_argument("--int8-calib", default="", help="folder of person images (one person each) to calibrate --int8")
    p.add_argument("--flip-test", action=argparse.BooleanOptionalAction, default=None,
                   help="average with the mirrored image (default: the config's TEST.FLIP_TEST for files, off for "
                        "webcams and streams)")
    p.add_argument("--max-batch", type=POSITIVE_INT, default=32, help="persons per network batch")


def _detector_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--det-model", default="auto",
                   help="person detector: auto (ssdlite on a CPU, fasterrcnn on CUDA), fasterrcnn (accurate), "
                        "mobilenet, mobilenet320, ssdlite (fastest) or none (whole frame = 1 person)")
    p.add_argument("--det-runtime", default="auto", choices=["auto", "torch", "onnxruntime"],
                   help="detector runtime: auto = onnxruntime on a CPU when installed (exported once into "
                        "$HRNET_POSE_CACHE or ~/.cache/hrnet_pose/onnx), else PyTorch")
    p.add_argument("--det-weights", default="", help="local detector weights file (instead of torchvision download)")
    p.add_argument("--bbox-thr", type=PROBABILITY, default=0.5,
                   help="minimum person box score (detector and --boxes)")
    p.add_argument("--nms-thr", type=_number(float, 0.0, 1.0, low_open=True), default=0.5,
                   help="detector box NMS IoU threshold")
    p.add_argument("--max-persons", type=POSITIVE_INT, default=MAX_PERSONS,
                   help="most persons per frame; 1 on a stream = single-person tracking (detector only at the start "
                        "and when the person is lost)")
    p.add_argument("--boxes", default="", help="COCO results json of person boxes (image_id: id, file name, or "
                                               "frame index); replaces the detector")


def _stream_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--min-pose-score", type=PROBABILITY, default=DEFAULT_MIN_POSE_SCORE,
                   help="streams: a pose with a lower mean keypoint score counts as lost and the next frame is detected")
    p.add_argument("--det-interval", type=POSITIVE_INT, default=1,
                   help="streams: detect every N frames to find newcomers (and when a pose is lost), carry boxes "
                        "between")
    p.add_argument("--track", action="store_true", help="streams: stable track ids (greedy OKS matching)")
    p.add_argument("--track-metric", default="oks", choices=["oks", "iou"])
    p.add_argument("--track-max-age", type=NON_NEGATIVE_INT, default=30, help="frames a lost track is kept")
    p.add_argument("--smooth", action="store_true", help="streams: One Euro filter per keypoint per track")
    p.add_argument("--smooth-min-cutoff", type=POSITIVE, default=None, help="One Euro min cutoff (Hz)")
    p.add_argument("--smooth-beta", type=_number(float, 0.0), default=None, help="One Euro speed coefficient")
    p.add_argument("--stop-on-damaged-video", action="store_true",
                   help="video files: stop with an error (exit 2) at undecodable frames instead of skipping them "
                        "with a warning that names their frame range")


def _output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kpt-thr", type=PROBABILITY, default=0.3, help="keypoint score threshold for drawing only")
    p.add_argument("--radius", type=POSITIVE_INT, default=None, help="keypoint radius (default scales with the image)")
    p.add_argument("--thickness", type=POSITIVE_INT, default=None,
                   help="limb width (default scales with the image)")
    p.add_argument("--draw-bbox", action="store_true", help="draw person boxes and scores")
    p.add_argument("--draw-heatmap", action="store_true", help="overlay the heatmaps (debugging)")
    p.add_argument("--out-dir", default="output/demo", help="where annotated outputs and predictions go")
    p.add_argument("--no-save", action="store_true", help="write predictions only, no annotated images/video")
    p.add_argument("--show", action="store_true", help="show a window (needs a display and GUI OpenCV)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--quiet", action="store_true", help="log warnings and errors only (default: INFO, which explains "
                                                        "one-time pauses such as the first export of a network)")
    # run_cli strips --debug before parsing; declared here so that --help lists it (and a direct call accepts it)
    p.add_argument("--debug", action="store_true",
                   help=f"DEBUG logging and the full traceback of errors ({DEBUG_ENV}=1 shows tracebacks too)")


def build_parser() -> argparse.ArgumentParser:
    p = _OneLineParser(
        description="Draw HRNet poses on images, folders, globs, videos, webcams (index) or RTSP/HTTP streams. "
                    "Exit status: 0 done, 2 a wrong argument or input (one line), 3 the webcam was lost mid-run "
                    "(its outputs so far are kept), 130 stopped by Ctrl-C (outputs so far are kept), 1 a bug "
                    "(traceback); after an error, no half-written output carries its final name.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("source", help="image, folder, glob ('imgs/*.jpg'), video file, webcam index (0) or rtsp/http URL")
    _model_options(p)
    _detector_options(p)
    _stream_options(p)
    _output_options(p)
    p.add_argument("--opts", nargs="*", default=[], help="config overrides KEY VALUE ... (the same as trailing ones)")
    p.add_argument("overrides", nargs="*", help="trailing KEY VALUE config overrides, as in every tool")
    return p


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The demo's arguments; `--weights none` (or '') means random weights, `opts` joins --opts and trailing pairs."""
    args = build_parser().parse_intermixed_args(argv)  # the source, flags and KEY VALUE pairs in any order
    args.weights = "" if args.weights.strip().lower() in ("", "none") else args.weights
    args.opts = list(args.opts) + list(args.overrides)
    return args


def log_level(argv: Sequence[str]) -> int:
    """The logging level the demo's command line asks for: DEBUG with --debug, WARNING with --quiet, else INFO."""
    if "--debug" in argv or os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return logging.DEBUG
    return logging.WARNING if "--quiet" in argv else logging.INFO


# ---------------------------------------------------------------------------------------------------------- --boxes
def load_boxes_file(path: str, score_thr: float) -> BoxTable:
    """COCO results json of person boxes (or of one other category) -> {image_id: (boxes [N,4] x1,y1,x2,y2,
    scores [N])}.

    An entry's box is COCO's `bbox` [x, y, w, h] (detector files, and this demo's own predictions.json), or `box`
    [x1, y1, x2, y2] (predictions.json of earlier versions)."""
    if not os.path.isfile(path):
        raise UserError(f"--boxes file not found: {path} (a COCO results json: "
                        "[{image_id, bbox: [x, y, w, h], score, category_id}, ...])")
    try:
        with open(path) as f:
            entries = json.load(f)
    except (OSError, ValueError) as err:
        raise UserError(f"--boxes file {path} is not valid json: {err}") from err
    if not isinstance(entries, list):
        raise UserError(f"--boxes file {path} must hold a json list of detections, got {type(entries).__name__}")
    grouped: Dict[Any, List[Tuple[List[float], float]]] = defaultdict(list)
    # person boxes (category 1) from a detector file; a file of one other category (boxes of your own objects,
    # e.g. a custom keypoint set's ground truth as results) is taken whole
    cats = {e.get("category_id", 1) for e in entries if isinstance(e, dict)}
    wanted = cats.pop() if len(cats) == 1 else 1
    for i, e in enumerate(entries):
        key = "bbox" if isinstance(e, dict) and "bbox" in e else "box"
        if not isinstance(e, dict) or "image_id" not in e or key not in e:
            raise UserError(f"--boxes file {path}: entry {i} needs image_id and bbox [x, y, w, h]")
        box = e[key]
        if not (isinstance(box, (list, tuple)) and len(box) == 4):
            expected = "[x, y, w, h]" if key == "bbox" else "[x1, y1, x2, y2]"
            raise UserError(f"--boxes file {path}: entry {i} has {key} {box!r}; expected {expected}")
        grouped.setdefault(e["image_id"], [])  # an image whose boxes are all under the threshold still matches
        if e.get("category_id", 1) != wanted or float(e.get("score", 1.0)) < score_thr:
            continue
        xyxy = xywh_to_xyxy([float(v) for v in box]) if key == "bbox" else [float(v) for v in box]
        grouped[e["image_id"]].append((list(xyxy), float(e.get("score", 1.0))))
    return {k: (np.array([b for b, _ in v], np.float32).reshape(-1, 4), np.array([s for _, s in v], np.float32))
            for k, v in grouped.items()}


def boxes_for(table: Optional[BoxTable], keys: Sequence[Any]) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """(boxes, scores) of the first of `keys` in `table`; no boxes when none is there; (None, None) without a table."""
    if table is None:
        return None, None
    for key in keys:
        if key in table:
            return table[key]
    return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)


def _hashable_in(key: Any, expected: Container[Any]) -> bool:
    try:
        return key in expected
    except TypeError:  # a list or dict as an image_id
        return False


def _shown(values: Sequence[Any], most: int = 5) -> str:
    listed = ", ".join(repr(v) for v in list(values)[:most])
    return listed + (f", ... ({len(values)} in all)" if len(values) > most else "")


def check_boxes_match(table: BoxTable, path: str, expected: Container[Any], described: str) -> None:
    """UserError when no key of the --boxes `table` is in `expected` (the ids the source's frames look up: a set, or
    a range of frame indices): the file would give every frame 0 persons. The message names the ids the file has and
    those that were expected."""
    if any(_hashable_in(key, expected) for key in table):
        return
    ids = sorted(table, key=str)
    has = f"its {len(ids)} image_ids ({_shown(ids)})" if ids else "no entries"
    raise UserError(f"--boxes {path}: {has} match no frame of the source, which expects {described}",
                    hint="a video's frames are numbered from 0 (image_id = frame index); images go by their COCO "
                         "id, file name or file stem")
