"""The logic behind `tools/demo.py`: a source of frames in, annotated images or a video and predictions out.

Images (a file, a folder, a glob): one annotated image per input under `--out-dir` and `predictions.json` in COCO
keypoint results format (image_id = the numeric file stem when it has one, as COCO names its files, else the file
name). Videos, webcams and URLs: `<name>.mp4` with the input's size and fps and `<name>.jsonl`, one JSON line per
frame (frame index, timestamp, persons with track id, box, keypoints, scores). Every output is written to a temporary
name and renamed when complete, also when Ctrl-C stops a stream, so no half-written file carries the final name.

The per-stage timings (read, detect, pose, draw, write) are summed per frame and reported as mean ms and FPS.
"""

import argparse
import json
import logging
import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..errors import UserError
from ..fileio import write_json_atomic
from ..geometry import xywh_to_xyxy, xyxy_to_xywh
from .detectors import MAX_PERSONS
from .estimator import PoseEstimator
from .result import PoseResult
from .stream import DEFAULT_MIN_POSE_SCORE

logger = logging.getLogger(__name__)

STAGES = ("read", "detect", "pose", "draw", "write")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Draw HRNet poses on images, folders, globs, videos, webcams (index) or RTSP/HTTP streams.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("source", help="image, folder, glob ('imgs/*.jpg'), video file, webcam index (0) or rtsp/http URL")
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
    p.add_argument("--det-model", default="auto",
                   help="person detector: auto (ssdlite on a CPU, fasterrcnn on CUDA), fasterrcnn (accurate), "
                        "mobilenet, mobilenet320, ssdlite (fastest) or none (whole frame = 1 person)")
    p.add_argument("--det-runtime", default="auto", choices=["auto", "torch", "onnxruntime"],
                   help="detector runtime: auto = onnxruntime on a CPU when installed (exported once into "
                        "$HRNET_POSE_CACHE or ~/.cache/hrnet_pose/onnx), else PyTorch")
    p.add_argument("--det-weights", default="", help="local detector weights file (instead of torchvision download)")
    p.add_argument("--bbox-thr", type=float, default=0.5, help="minimum person box score (detector and --boxes)")
    p.add_argument("--nms-thr", type=float, default=0.5, help="detector box NMS IoU threshold")
    p.add_argument("--max-persons", type=int, default=MAX_PERSONS,
                   help="most persons per frame; 1 on a stream = single-person tracking (detector only at the start "
                        "and when the person is lost)")
    p.add_argument("--min-pose-score", type=float, default=DEFAULT_MIN_POSE_SCORE,
                   help="streams: a pose with a lower mean keypoint score counts as lost and the next frame is detected")
    p.add_argument("--boxes", default="", help="COCO results json of person boxes (image_id: id, file name, or "
                                               "frame index); replaces the detector")
    p.add_argument("--kpt-thr", type=float, default=0.3, help="keypoint score threshold for drawing only")
    p.add_argument("--det-interval", type=int, default=1,
                   help="streams: detect every N frames to find newcomers (and when a pose is lost), carry boxes "
                        "between")
    p.add_argument("--track", action="store_true", help="streams: stable track ids (greedy OKS matching)")
    p.add_argument("--track-metric", default="oks", choices=["oks", "iou"])
    p.add_argument("--track-max-age", type=int, default=30, help="frames a lost track is kept")
    p.add_argument("--smooth", action="store_true", help="streams: One Euro filter per keypoint per track")
    p.add_argument("--smooth-min-cutoff", type=float, default=None, help="One Euro min cutoff (Hz)")
    p.add_argument("--smooth-beta", type=float, default=None, help="One Euro speed coefficient")
    p.add_argument("--flip-test", action=argparse.BooleanOptionalAction, default=None,
                   help="average with the mirrored image (default: the config's TEST.FLIP_TEST for files, off for "
                        "webcams and streams)")
    p.add_argument("--max-batch", type=int, default=32, help="persons per network batch")
    p.add_argument("--radius", type=int, default=None, help="keypoint radius (default scales with the image)")
    p.add_argument("--thickness", type=int, default=None, help="limb width (default scales with the image)")
    p.add_argument("--draw-bbox", action="store_true", help="draw person boxes and scores")
    p.add_argument("--draw-heatmap", action="store_true", help="overlay the heatmaps (debugging)")
    p.add_argument("--out-dir", default="output/demo", help="where annotated outputs and predictions go")
    p.add_argument("--no-save", action="store_true", help="write predictions only, no annotated images/video")
    p.add_argument("--show", action="store_true", help="show a window (needs a display and GUI OpenCV)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--opts", nargs="*", default=[], help="config overrides KEY VALUE ... (the same as trailing ones)")
    p.add_argument("overrides", nargs="*", help="trailing KEY VALUE config overrides, as in every tool")
    return p


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The demo's arguments; `--weights none` (or '') means random weights, `opts` joins --opts and trailing pairs."""
    args = build_parser().parse_intermixed_args(argv)  # the source, flags and KEY VALUE pairs in any order
    args.weights = "" if args.weights.strip().lower() in ("", "none") else args.weights
    args.opts = list(args.opts) + list(args.overrides)
    return args


# ---------------------------------------------------------------------------------------------------------- helpers
def gui_unavailable_reason() -> Optional[str]:
    """None when cv2.imshow can open a window here, else one line saying why not."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "--show: no display here (DISPLAY and WAYLAND_DISPLAY are unset); writing the outputs only"
    info = cv2.getBuildInformation()
    gui = [line.split(":", 1)[1].strip() for line in info.splitlines() if line.strip().startswith("GUI:")]
    if gui and gui[0].upper() == "NONE":
        return ("--show: this OpenCV has no GUI support (opencv-python-headless); "
                "pip uninstall opencv-python-headless && pip install opencv-python to get windows")
    return None


def load_boxes_file(path: str, score_thr: float) -> Dict[Any, Tuple[np.ndarray, np.ndarray]]:
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
        if e.get("category_id", 1) != wanted or float(e.get("score", 1.0)) < score_thr:
            continue
        xyxy = xywh_to_xyxy([float(v) for v in box]) if key == "bbox" else [float(v) for v in box]
        grouped[e["image_id"]].append((list(xyxy), float(e.get("score", 1.0))))
    return {k: (np.array([b for b, _ in v], np.float32), np.array([s for _, s in v], np.float32))
            for k, v in grouped.items()}


def _boxes_for(table: Optional[Dict[Any, Tuple[np.ndarray, np.ndarray]]], keys: Sequence[Any]):
    if table is None:
        return None, None
    for key in keys:
        if key in table:
            return table[key]
    return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)


def _write_image_atomic(path: str, image: np.ndarray) -> None:
    root, ext = os.path.splitext(path)
    tmp = f"{root}.partial{ext}"
    if not cv2.imwrite(tmp, image):
        raise UserError(f"could not write {path} (is {os.path.dirname(path) or '.'} writable, and {ext!r} an image "
                        "extension OpenCV knows?)")
    os.replace(tmp, path)


def frame_record(index: int, timestamp: float, result: PoseResult) -> Dict[str, Any]:
    """One JSON line of a stream's predictions."""
    persons = []
    for i in range(len(result)):
        persons.append({
            "track_id": None if result.track_ids is None else int(result.track_ids[i]),
            "bbox": [round(float(v), 2) for v in xyxy_to_xywh(result.boxes[i])],  # COCO's [x, y, w, h]
            "box_score": round(float(result.box_scores[i]), 4),
            "keypoints": [[round(float(x), 2), round(float(y), 2)] for x, y in result.keypoints[i]],
            "scores": [round(float(s), 4) for s in result.scores[i]],
        })
    return {"frame": int(index), "timestamp": round(float(timestamp), 4), "persons": persons}


@dataclass
class DemoSummary:
    frames: int = 0
    persons: int = 0
    stage_ms: Dict[str, float] = field(default_factory=lambda: {s: 0.0 for s in STAGES})
    wall_s: float = 0.0
    outputs: List[str] = field(default_factory=list)
    interrupted: bool = False
    flip_test: str = ""  # on/off and why, e.g. "flip test off (live source; --flip-test turns it on)"
    stream: Any = None  # streams: the pipeline's PipelineStats (latency, dropped, reconnects, skipped)
    detector_calls: Optional[int] = None

    def add(self, result: PoseResult, read_ms: float, draw_ms: float, write_ms: float) -> None:
        self.frames += 1
        self.persons += len(result)
        t = result.timings
        self.stage_ms["read"] += read_ms + t.get("read", 0.0)
        self.stage_ms["detect"] += t.get("detect", 0.0)
        self.stage_ms["pose"] += t.get("preprocess", 0.0) + t.get("pose", 0.0) + t.get("decode", 0.0)
        self.stage_ms["draw"] += draw_ms
        self.stage_ms["write"] += write_ms

    def mean_ms(self) -> Dict[str, float]:
        return {k: v / max(self.frames, 1) for k, v in self.stage_ms.items()}

    def format(self) -> str:
        mean = self.mean_ms()
        total = sum(mean.values())
        stages = ", ".join(f"{k} {v:.1f}" for k, v in mean.items())
        fps = 1000.0 / total if total > 0 else float("nan")
        lines = [f"{'stopped by Ctrl-C: ' if self.interrupted else ''}{self.frames} frames, {self.persons} persons; "
                 f"mean ms per frame: {stages} (total {total:.1f} ms = {fps:.1f} FPS; wall {self.wall_s:.1f} s)"]
        if self.stream is not None:
            lines.append(self._stream_line())
        if self.flip_test:
            lines.append(self.flip_test)
        lines += [f"wrote {p}" for p in self.outputs]
        return "\n".join(lines)


    def _stream_line(self) -> str:
        st = self.stream
        fps = self.frames / self.wall_s if self.wall_s > 0 else float("nan")
        det = f"; detector on {self.detector_calls} frames" if self.detector_calls is not None else ""
        return (f"pipelined: {fps:.1f} FPS end to end; latency capture to drawn frame mean {st.mean_latency_ms:.1f} "
                f"ms, p95 {st.latency_percentile(95):.1f} ms, max {st.latency_max_ms:.1f} ms; {st.dropped} stale "
                f"frames dropped, {st.reconnects} reconnects, {st.skipped} undecodable frames skipped{det}")


def flip_test_setting(requested: Optional[bool], live: bool) -> Tuple[Optional[bool], str]:
    """(flip_test for the estimator, None = the config's; why, for the summary). Live sources run without flip test
    unless --flip-test is given: it doubles the pose cost for about +1 AP, the wrong trade when frames are dropped;
    files keep the config's TEST.FLIP_TEST."""
    if requested is not None:
        return requested, "--flip-test" if requested else "--no-flip-test"
    if live:
        return False, "live source default; --flip-test turns it on"
    return None, "the config's TEST.FLIP_TEST"


# ---------------------------------------------------------------------------------------------------------- running
def build_estimator(args: argparse.Namespace) -> PoseEstimator:
    """PoseEstimator (+ detector) from the demo's arguments; a zoo name brings its own config."""
    from . import zoo
    from .detectors import build_detector

    config: Any = args.config
    is_zoo = bool(args.weights) and not os.path.isfile(args.weights) and zoo.is_zoo_name(args.weights)
    if config and is_zoo:
        # the checkpoint only gives its numbers with its own input size, flip alignment and decoder
        from ..config import load_config

        config = zoo.merge_entry(load_config(config), args.weights)
    elif not config and is_zoo:
        config = zoo.entry_config(args.weights)
    elif not config and args.weights.lower().endswith(".onnx") and os.path.isfile(args.weights):
        from ..deploy.onnx_backend import config_from_metadata

        config = config_from_metadata(args.weights)
    if not config:
        raise UserError("--config is needed (an experiment yaml such as "
                        "experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml) unless --weights is a model zoo "
                        f"name ({', '.join(sorted(zoo.ZOO))}) or a .onnx file written by tools/export.py")
    detector = None
    if not args.boxes and args.det_model.lower() != "none":
        detector = build_detector(args.det_model, device=_device_name(args.device), score_thr=args.bbox_thr,
                                  nms_thr=args.nms_thr, max_persons=args.max_persons,
                                  weights=args.det_weights or None, runtime=args.det_runtime)
    estimator = PoseEstimator.from_config(config, args.weights or None, device=args.device, detector=detector,
                                          flip_test=args.flip_test, amp=args.amp, max_batch=args.max_batch,
                                          opts=list(args.opts), backend=args.backend)
    if args.int8:
        _use_int8(estimator, args.int8_calib)
    return estimator


def _use_int8(estimator: PoseEstimator, calib_dir: str) -> None:
    """--int8: the onnxruntime pose network replaced by one that quantises itself (`deploy.int8_live`)."""
    from ..deploy.int8_live import CalibratingInt8Backend
    from ..deploy.onnx_backend import OnnxRuntimeBackend

    if not isinstance(estimator.backend, OnnxRuntimeBackend):
        raise UserError(f"--int8 runs in onnxruntime, but the pose network runs in {estimator.backend.name}: use "
                        "--backend onnxruntime (or auto on a CPU)")
    calibration = None
    if calib_dir:
        names = sorted(n for n in os.listdir(calib_dir) if n.lower().endswith((".jpg", ".jpeg", ".png", ".bmp"))) \
            if os.path.isdir(calib_dir) else []
        if not names:
            raise UserError(f"--int8-calib {calib_dir}: no .jpg/.png images in that folder (one person per image)")
        calibration = np.concatenate([estimator.crops(*_whole_image_box(estimator, os.path.join(calib_dir, n)))
                                      for n in names])
    estimator.backend = CalibratingInt8Backend(estimator.backend, calibration=calibration)


def _whole_image_box(estimator: PoseEstimator, path: str):
    from .estimator import as_bgr_image

    image = as_bgr_image(path)
    h, w = image.shape[:2]
    centers, scales = estimator.center_scale(np.array([[0, 0, w - 1, h - 1]], np.float64))
    return image, centers, scales


def _device_name(device: str) -> str:
    from .backends import resolve_device

    return str(resolve_device(device))


def _draw(estimator_result: PoseResult, image: np.ndarray, args: argparse.Namespace, fps: Optional[float],
          overlay_timings: bool) -> np.ndarray:
    from .. import visualization

    canvas = estimator_result.plot(image, kpt_thr=args.kpt_thr, draw_bbox=args.draw_bbox,
                                   draw_heatmap=args.draw_heatmap, radius=args.radius, thickness=args.thickness)
    if overlay_timings:
        visualization.draw_timings(canvas, estimator_result.timings, fps)
    return canvas


def timed_frames(source: Any) -> Iterator[Tuple[Any, float]]:
    """(frame, ms spent reading it) for every frame of `source`."""
    it = iter(source)
    while True:
        t0 = time.perf_counter()
        frame = next(it, None)
        if frame is None:
            return
        yield frame, (time.perf_counter() - t0) * 1000


def _progress(source: Any, args: argparse.Namespace):
    from tqdm import tqdm

    return tqdm(total=source.num_frames, unit="frame", disable=args.no_progress, dynamic_ncols=True,
                desc=os.path.basename(str(args.source)) or str(args.source))


def run_images(source: Any, estimator: PoseEstimator, args: argparse.Namespace,
               boxes: Optional[Dict[Any, Tuple[np.ndarray, np.ndarray]]], summary: DemoSummary,
               window: Optional[str]) -> None:
    """Every image of an image source: annotated copies and one COCO results json."""
    predictions: List[Dict[str, Any]] = []
    bar = _progress(source, args)
    try:
        for frame, read_ms in timed_frames(source):
            # the source numbers COCO-style files ('000000000785.jpg' -> 785); other images go by their file name
            image_id = frame.image_id if frame.image_id is not None else os.path.basename(frame.name)
            b, s = _boxes_for(boxes, [image_id, os.path.basename(frame.name),
                                      os.path.splitext(os.path.basename(frame.name))[0]])
            result = estimator(frame.image, boxes=b, box_scores=s, return_heatmaps=args.draw_heatmap)
            predictions += result.to_coco(image_id)
            t1 = time.perf_counter()
            canvas = None if args.no_save and not window else _draw(result, frame.image, args, None, False)
            t2 = time.perf_counter()
            if not args.no_save:
                out = os.path.join(args.out_dir, os.path.basename(frame.name) or f"{frame.index:06d}.jpg")
                _write_image_atomic(out, canvas)
            if window:
                _show(window, canvas)  # a still image: Esc / q does not stop the remaining ones
            summary.add(result, read_ms, (t2 - t1) * 1000, (time.perf_counter() - t2) * 1000)
            bar.update(1)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        bar.close()
        pred_path = os.path.join(args.out_dir, "predictions.json")
        write_json_atomic(predictions, pred_path)
        summary.outputs.append(pred_path)
        if not args.no_save:
            summary.outputs.append(f"{summary.frames} annotated images in {args.out_dir}")


class _StreamOutputs:
    """A stream's outputs under `out_dir`: `<name>.jsonl`, one JSON line per frame, and unless `save_video` is False
    `<name>.mp4`, opened at the first frame's size. Both are written under temporary names until `close()`."""

    def __init__(self, out_dir: str, name: str, fps: float, save_video: bool) -> None:
        self.jsonl_path = os.path.join(out_dir, f"{name}.jsonl")
        self.video_path = os.path.join(out_dir, f"{name}.mp4")
        self.fps, self.save_video = fps, save_video
        self.writer: Any = None
        self._jsonl = open(self.jsonl_path + ".partial", "w")

    def write_record(self, record: Dict[str, Any]) -> None:
        """The frame's JSON line (`frame_record`)."""
        self._jsonl.write(json.dumps(record) + "\n")

    def write_frame(self, canvas: np.ndarray) -> None:
        """The frame's annotated image (when the video is saved)."""
        if not self.save_video:
            return
        if self.writer is None:
            from ..streams.video_writer import VideoWriter

            h, w = canvas.shape[:2]
            self.writer = VideoWriter(self.video_path, self.fps, (w, h))
        self.writer.write(canvas)

    def close(self) -> List[str]:
        """Finish both files under their final names; returns the paths written (video first)."""
        self._jsonl.close()
        written = []
        if self.writer is not None:
            self.writer.close()
            written.append(self.writer.path)
        os.replace(self.jsonl_path + ".partial", self.jsonl_path)
        return written + [self.jsonl_path]


def _stream_tracker(estimator: PoseEstimator, args: argparse.Namespace) -> Any:
    """The PoseTracker for --track / --smooth (smoothing follows tracks), else None."""
    if not (args.track or args.smooth):
        return None
    from ..streams.tracking import PoseTracker

    smooth_kw = {k: v for k, v in (("min_cutoff", args.smooth_min_cutoff), ("beta", args.smooth_beta))
                 if v is not None}
    return PoseTracker(estimator.keypoint_set.sigmas, metric=args.track_metric, max_age=args.track_max_age,
                       smooth=args.smooth, **smooth_kw)


def _show(window: str, canvas: np.ndarray) -> bool:
    """Show the frame in the window; True when the user pressed Esc or q."""
    cv2.imshow(window, canvas)
    return cv2.waitKey(1) & 0xFF in (27, ord("q"))


def _stream_finisher(outputs: "_StreamOutputs", args: argparse.Namespace, window: Optional[str],
                     summary: DemoSummary, bar: Any) -> Callable[[Any], bool]:
    """The pipeline's last stage for the demo: JSON line, drawing, video frame, window; True when the user stopped it
    (that frame is written but not counted)."""
    state: Dict[str, Optional[float]] = {"fps": None, "last": None}

    def finish(item: Any) -> bool:
        result = item.result
        outputs.write_record(frame_record(item.frame.index, item.frame.timestamp, result))
        t1 = time.perf_counter()
        canvas = _draw(result, item.frame.image, args, state["fps"], True) if not args.no_save or window else None
        t2 = time.perf_counter()
        outputs.write_frame(canvas)
        if window and _show(window, canvas):
            return True
        summary.add(result, item.read_ms, (t2 - t1) * 1000, (time.perf_counter() - t2) * 1000)
        now = time.perf_counter()
        if state["last"] is not None and now > state["last"]:  # frames finished per second, pipelining included
            rate = 1.0 / (now - state["last"])
            state["fps"] = rate if state["fps"] is None else 0.9 * state["fps"] + 0.1 * rate
        state["last"] = now
        bar.update(1)
        return False

    return finish


def run_stream(source: Any, estimator: PoseEstimator, args: argparse.Namespace,
               boxes: Optional[Dict[Any, Tuple[np.ndarray, np.ndarray]]], summary: DemoSummary,
               window: Optional[str], name: str) -> None:
    """A video, webcam or URL through the pipelined stream (`pipeline.StreamPipeline`): detection when needed,
    tracking, smoothing; an annotated video and a JSON-lines file."""
    from .pipeline import StreamPipeline
    from .stream import StreamPoseEstimator

    stream = StreamPoseEstimator(estimator, det_interval=args.det_interval, tracker=_stream_tracker(estimator, args),
                                 max_persons=args.max_persons, min_pose_score=args.min_pose_score)
    boxes_for = None if boxes is None else (lambda frame: _boxes_for(boxes, [frame.index]))
    pipeline = StreamPipeline(stream, source, boxes_for=boxes_for, return_heatmaps=args.draw_heatmap)
    bar = _progress(source, args)
    outputs = None
    try:
        outputs = _StreamOutputs(args.out_dir, name, source.fps or 30.0, save_video=not args.no_save)
        pipeline.run(_stream_finisher(outputs, args, window, summary, bar))
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        pipeline.close()
        bar.close()
        summary.stream = pipeline.stats
        summary.detector_calls = stream.detector_calls
        if outputs is not None:
            summary.outputs += outputs.close()


def run_demo(argv: Optional[Sequence[str]] = None) -> DemoSummary:
    """Parse `argv`, run the demo over the source, return the summary (`DemoSummary.format()` for the console)."""
    from ..streams.sources import open_source

    args = parse_args(argv)
    if args.det_interval < 1:
        raise UserError(f"--det-interval must be >= 1, got {args.det_interval}")
    window = None
    if args.show:
        reason = gui_unavailable_reason()
        if reason:
            logger.warning(reason)
        else:
            window = "hrnet_pose demo"
    boxes = load_boxes_file(args.boxes, args.bbox_thr) if args.boxes else None
    source = open_source(args.source)  # before the model: a wrong source fails fast
    args.flip_test, flip_reason = flip_test_setting(args.flip_test, source.is_live)
    estimator = build_estimator(args)
    os.makedirs(args.out_dir, exist_ok=True)
    summary = DemoSummary(flip_test=f"flip test {'on' if estimator.flip_test else 'off'} ({flip_reason})")
    start = time.perf_counter()
    try:
        if source.kind == "images":
            run_images(source, estimator, args, boxes, summary, window)
        else:
            name = (os.path.splitext(os.path.basename(str(args.source).rstrip("/")))[0]
                    if source.kind == "video" else f"{source.kind}_{time.strftime('%Y%m%d-%H%M%S')}")
            run_stream(source, estimator, args, boxes, summary, window, name or "stream")
    finally:
        source.close()
        if window:
            cv2.destroyAllWindows()
    summary.wall_s = time.perf_counter() - start
    return summary
