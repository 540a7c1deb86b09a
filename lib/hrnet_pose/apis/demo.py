"""The logic behind `tools/demo.py`: a source of frames in, annotated images or a video and predictions out.

Images (a file, a folder, a glob): one annotated image per input under `--out-dir` and `predictions.json` in COCO
keypoint results format (image_id = the numeric file stem when it has one, as COCO names its files, else the file
name). Videos, webcams and URLs: `<name>.mp4` with the input's size and fps (a live source's: the measured rate) and
`<name>.jsonl`, one JSON line per frame (frame index, timestamp, the frame's COCO results entries with track ids).
The arguments and the `--boxes` file are `demo_args`; the outputs and the summary `demo_outputs`.

How a run ends, and what stays (see `demo_outputs`): normally, or stopped by the user (q, Esc in the window, Ctrl-C:
exit status 130), or by a lost camera (exit status 3): the outputs are published under their final names. After an
error (exit status 2 for a user error, 1 for a bug) they are dropped: no half-written file carries a final name.

Order: the arguments and the `--boxes` file are checked first, a file source is opened (a wrong path fails fast),
then the models are built (the first run may export them, said at INFO), and only then a webcam or stream is opened,
so it drops no frames and holds no camera while the models load, and nothing is left open when the build fails.
The summary gives one frame rate, frames per second end to end, beside the mean time of each stage.
"""

import argparse
import logging
import os
import sys
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..errors import UserError
from ..fileio import write_json_atomic
from .demo_args import BoxTable, boxes_for, build_parser, check_boxes_match, load_boxes_file, log_level, parse_args
from .demo_outputs import STAGES, DemoSummary, StreamOutputs, frame_record, write_image_atomic
from .estimator import PoseEstimator
from .result import PoseResult

__all__ = ["run_demo", "build_parser", "parse_args", "log_level", "load_boxes_file", "frame_record", "DemoSummary",
           "STAGES", "build_estimator", "flip_test_setting", "gui_unavailable_reason", "timed_frames"]

logger = logging.getLogger(__name__)


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
def build_estimator(args: argparse.Namespace, concurrent: bool = True) -> PoseEstimator:
    """PoseEstimator (+ detector) from the demo's arguments; a zoo name brings its own config. `concurrent`: the
    detector and the pose network run at once (a stream's pipeline), so their onnxruntime sessions split the cores
    (`deploy.onnx_backend.share_cores`); one after the other (images), each takes them all."""
    from . import zoo
    from ..deploy.onnx_backend import share_cores
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
    with_detector = not args.boxes and args.det_model.lower() != "none"
    pose_threads, det_threads = share_cores(concurrent=concurrent and with_detector)
    detector = None
    if with_detector:
        detector = build_detector(args.det_model, device=_device_name(args.device), score_thr=args.bbox_thr,
                                  nms_thr=args.nms_thr, max_persons=args.max_persons,
                                  weights=args.det_weights or None, runtime=args.det_runtime, num_threads=det_threads)
    estimator = PoseEstimator.from_config(config, args.weights or None, device=args.device, detector=detector,
                                          flip_test=args.flip_test, amp=args.amp, max_batch=args.max_batch,
                                          opts=list(args.opts), backend=args.backend, num_threads=pose_threads)
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


def _image_keys(path: str) -> List[Any]:
    """The ids a --boxes file may give an image: its COCO id (numeric stem), file name, stem."""
    name = os.path.basename(path)
    stem = os.path.splitext(name)[0]
    return ([int(stem)] if stem.isdigit() else []) + [name, stem]


class _FrameIndices:
    """The frame indices of a stream, 0..num_frames-1 (any non-negative integer when the count is unknown)."""

    def __init__(self, num_frames: Optional[int]) -> None:
        self.num_frames = num_frames

    def __contains__(self, key: Any) -> bool:
        return isinstance(key, int) and not isinstance(key, bool) and key >= 0 and \
            (self.num_frames is None or key < self.num_frames)

    def describe(self) -> str:
        return (f"frame indices 0-{self.num_frames - 1}" if self.num_frames else
                "frame indices 0, 1, 2, ... (integers)")


def _check_boxes_file(boxes: Optional[BoxTable], args: argparse.Namespace, source: Any) -> None:
    """A --boxes file whose ids match no frame of the source is an error (it would give every frame 0 persons)."""
    if boxes is None:
        return
    if source.kind == "images":
        expected = {key for path in source.paths for key in _image_keys(path)}
        names = [os.path.basename(p) for p in source.paths]
        described = f"the ids of its {len(names)} images (COCO id, file name or stem: {', '.join(names[:3])}" + \
            (", ...)" if len(names) > 3 else ")")
        check_boxes_match(boxes, args.boxes, expected, described)
    else:
        indices = _FrameIndices(source.num_frames)
        check_boxes_match(boxes, args.boxes, indices, indices.describe())


def run_images(source: Any, estimator: PoseEstimator, args: argparse.Namespace, boxes: Optional[BoxTable],
               summary: DemoSummary, window: Optional[str]) -> None:
    """Every image of an image source: annotated copies and one COCO results json, written when the images are done
    (or Ctrl-C stopped them); after an error no predictions.json is written."""
    predictions: List[Dict[str, Any]] = []
    bar = _progress(source, args)
    try:
        for frame, read_ms in timed_frames(source):
            # the source numbers COCO-style files ('000000000785.jpg' -> 785); other images go by their file name
            image_id = frame.image_id if frame.image_id is not None else os.path.basename(frame.name)
            b, s = boxes_for(boxes, [image_id, os.path.basename(frame.name),
                                     os.path.splitext(os.path.basename(frame.name))[0]])
            result = estimator(frame.image, boxes=b, box_scores=s, return_heatmaps=args.draw_heatmap)
            predictions += result.to_coco(image_id)
            t1 = time.perf_counter()
            canvas = None if args.no_save and not window else _draw(result, frame.image, args, None, False)
            t2 = time.perf_counter()
            if not args.no_save:
                write_image_atomic(os.path.join(args.out_dir, os.path.basename(frame.name) or
                                                f"{frame.index:06d}.jpg"), canvas)
            if window:
                _show(window, canvas)  # a still image: Esc / q does not stop the remaining ones
            summary.add(result, read_ms, (t2 - t1) * 1000, (time.perf_counter() - t2) * 1000)
            bar.update(1)
    except KeyboardInterrupt:
        summary.interrupted = True
    except BaseException:
        logger.warning("stopped by an error after %d images: predictions.json is not written", summary.frames)
        raise
    finally:
        bar.close()
    pred_path = os.path.join(args.out_dir, "predictions.json")
    write_json_atomic(predictions, pred_path)
    summary.outputs.append(pred_path)
    if not args.no_save:
        summary.outputs.append(f"{summary.frames} annotated images in {args.out_dir}")


def _stream_finisher(outputs: StreamOutputs, args: argparse.Namespace, window: Optional[str],
                     summary: DemoSummary, bar: Any, source: Any) -> Callable[[Any], bool]:
    """The pipeline's last stage for the demo: JSON line, drawing, video frame, window; True when the user stopped it
    (that frame is written but not counted)."""
    state: Dict[str, Optional[float]] = {"fps": None, "last": None}

    def finish(item: Any) -> bool:
        if state["last"] is None:  # frames the camera thread dropped while the models ran their first frame
            summary.warmup_dropped = int(getattr(source, "dropped", 0) or 0)
        result = item.result
        outputs.write_record(frame_record(item.frame.index, item.frame.timestamp, result))
        t1 = time.perf_counter()
        canvas = _draw(result, item.frame.image, args, state["fps"], True) if not args.no_save or window else None
        t2 = time.perf_counter()
        outputs.write_frame(canvas, item.frame.timestamp)
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


def run_stream(source: Any, estimator: PoseEstimator, args: argparse.Namespace, boxes: Optional[BoxTable],
               summary: DemoSummary, window: Optional[str], name: str) -> None:
    """A video, webcam or URL through the pipelined stream (`pipeline.StreamPipeline`): detection when needed,
    tracking, smoothing; an annotated video and a JSON-lines file, published when the run ends normally, by the
    user, or by a lost camera (`summary.source_lost`), dropped after an error."""
    from ..streams.sources import SourceLostError
    from .pipeline import StreamPipeline
    from .stream import StreamPoseEstimator

    stream = StreamPoseEstimator(estimator, det_interval=args.det_interval, tracker=_stream_tracker(estimator, args),
                                 max_persons=args.max_persons, min_pose_score=args.min_pose_score)
    boxes_of = None if boxes is None else (lambda frame: boxes_for(boxes, [frame.index]))
    pipeline = StreamPipeline(stream, source, boxes_for=boxes_of, return_heatmaps=args.draw_heatmap)
    bar = _progress(source, args)
    outputs = StreamOutputs(args.out_dir, name, source.fps or 30.0, save_video=not args.no_save,
                            live=bool(source.is_live))
    keep = False
    try:
        pipeline.run(_stream_finisher(outputs, args, window, summary, bar, source))
        keep = True
    except KeyboardInterrupt:
        summary.interrupted = keep = True
    except SourceLostError as err:
        summary.source_lost, keep = err, True
    finally:
        pipeline.close()
        bar.close()
        summary.stream = pipeline.stats
        summary.detector_calls = stream.detector_calls
        if keep:
            summary.outputs += outputs.commit()
            summary.video_fps = outputs.video_fps
        else:
            outputs.abort()
            logger.warning("stopped by an error after %d frames: the partial %s and %s were discarded",
                           summary.frames, os.path.basename(outputs.video_path), os.path.basename(outputs.jsonl_path))


def _stream_name(args: argparse.Namespace, source: Any) -> str:
    if source.kind == "video":
        return os.path.splitext(os.path.basename(str(args.source).rstrip("/")))[0] or "stream"
    return f"{source.kind}_{time.strftime('%Y%m%d-%H%M%S')}"


def _window(args: argparse.Namespace) -> Optional[str]:
    if not args.show:
        return None
    reason = gui_unavailable_reason()
    if reason:
        logger.warning(reason)
        return None
    return "hrnet_pose demo"


def run_demo(argv: Optional[Sequence[str]] = None) -> DemoSummary:
    """Parse `argv`, run the demo over the source, return the summary (`DemoSummary.format()` for the console).

    Ctrl-C and a lost camera end the run with the outputs so far published and the summary returned with
    `interrupted` / `source_lost` set; `summary.raise_for_status()` turns them into the exit status (130, 3), as
    `tools/demo.py` does. Any other error propagates, with the stream's outputs dropped."""
    from ..streams.sources import is_live_spec, open_source

    args = parse_args(argv)
    window = _window(args)
    boxes = load_boxes_file(args.boxes, args.bbox_thr) if args.boxes else None
    on_damage = "stop" if args.stop_on_damaged_video else "skip"
    live = is_live_spec(args.source)
    source = None if live else open_source(args.source, on_damage=on_damage)  # a wrong path fails before the models
    try:
        if source is not None:
            _check_boxes_file(boxes, args, source)
        args.flip_test, flip_reason = flip_test_setting(args.flip_test, live)
        estimator = build_estimator(args, concurrent=source is None or source.kind != "images")
        if source is None:  # a camera opens only now: no frames dropped, and none held, while the models load
            source = open_source(args.source, on_damage=on_damage)
            _check_boxes_file(boxes, args, source)
        os.makedirs(args.out_dir, exist_ok=True)
        summary = DemoSummary(flip_test=f"flip test {'on' if estimator.flip_test else 'off'} ({flip_reason})")
        start = time.perf_counter()
        if source.kind == "images":
            run_images(source, estimator, args, boxes, summary, window)
        else:
            run_stream(source, estimator, args, boxes, summary, window, _stream_name(args, source))
        summary.wall_s = time.perf_counter() - start
    finally:
        if source is not None:
            source.close()
        if window:
            cv2.destroyAllWindows()
    return summary
