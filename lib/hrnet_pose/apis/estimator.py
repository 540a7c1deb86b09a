"""`PoseEstimator`: image (+ person boxes) -> keypoints, the top-down HRNet pipeline as a library call.

One image goes through: person boxes (given, from a detector, or the whole image) -> center/scale exactly as the COCO
dataset makes them (midpoint, aspect of the network input, 1.25 padding) -> the dataset's own crop function
(`datasets.transforms.crop_person`, UDP-aware) -> all persons through the network in batches of `max_batch` (the
mirrored crops in the same batch when flip test is on) -> the codec's decoder -> image pixels. Given the boxes that
`tools/test.py` used, the keypoints equal those of its results json.

Input: a BGR uint8 image [H, W, 3] (OpenCV order; grey [H, W] and BGRA are converted) or a path, read like the
dataset reads images (EXIF orientation ignored). Boxes: [N, 4] x1, y1, x2, y2 in pixels. Output: `PoseResult`.
"""

import logging
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..codecs.heatmap import HeatmapCodec, build_codec
from ..config import CN, load_config
from ..datasets.transforms import crop_person, normalize_crops
from ..errors import UserError
from ..geometry import boxes_to_center_scale, invalid_box, xyxy_to_xywh
from ..keypoints import KeypointSet, get_keypoint_set
from ..models.inference import heatmaps_with_flip
from .backends import PoseBackend, build_backend
from .images import ImageInput, as_bgr_image
from .images import timed as _timed
from .result import PoseResult

logger = logging.getLogger(__name__)

Detector = Callable[[np.ndarray], Tuple[np.ndarray, np.ndarray]]


class InvalidBoxError(UserError, ValueError):
    """A person box is NaN, infinite, or has zero or negative area."""


def check_boxes(boxes: Any, scores: Any = None) -> Tuple[np.ndarray, np.ndarray]:
    """[N, 4] x1,y1,x2,y2 (+ optional [N] scores, default 1) -> (float64 boxes, float32 scores); InvalidBoxError
    naming the box. Boxes stay float64 until the crop box is made, as the dataset computes it."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 4), np.float64), np.zeros((0,), np.float32)
    if arr.ndim == 1 and arr.shape[0] == 4:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise InvalidBoxError(f"boxes must be [N, 4] (x1, y1, x2, y2 in pixels), got shape {arr.shape}")
    problem = invalid_box(arr)
    if problem is not None:
        i, reason = problem
        raise InvalidBoxError(f"box {i} {arr[i].tolist()} {reason}; boxes are x1, y1, x2, y2 with x2 > x1 and y2 > y1 "
                              "(a COCO xywh box [x, y, w, h] is [x, y, x + w, y + h])")
    if scores is None:
        sc = np.ones(len(arr), np.float32)
    else:
        sc = np.asarray(scores, dtype=np.float32).reshape(-1)
        if sc.shape[0] != arr.shape[0]:
            raise InvalidBoxError(f"{sc.shape[0]} box scores for {arr.shape[0]} boxes")
    return arr, sc


class PoseEstimator:
    """Top-down pose estimation of every person in an image (see module docstring).

    Build with `from_config` (a yaml or config + weights) or `from_pretrained` (a model zoo name); the constructor
    takes the parts themselves so that tests and other runtimes can assemble one without a config. The colour order
    and the flip test change every keypoint, so the constructor has no default for them (the config's are
    DATASET.COLOR_RGB and TEST.FLIP_TEST).
    """

    def __init__(self, backend: PoseBackend, codec: HeatmapCodec, keypoint_set: KeypointSet, *, color_rgb: bool,
                 flip_test: bool, detector: Optional[Detector] = None, max_batch: int = 32,
                 padding: float = 1.25) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.backend = backend
        self.codec = codec
        self.keypoint_set = keypoint_set
        self.color_rgb = bool(color_rgb)
        self.flip_test = bool(flip_test)
        self.detector = detector
        self.max_batch = int(max_batch)
        self.padding = float(padding)
        self.image_size = (int(codec.image_size[0]), int(codec.image_size[1]))
        self.aspect_ratio = self.image_size[0] / self.image_size[1]

    @classmethod
    def from_config(cls, cfg_or_yaml: Union[CN, str, os.PathLike], weights: Optional[str] = None,
                    device: str = "auto", detector: Optional[Detector] = None, flip_test: Optional[bool] = None,
                    amp: str = "", max_batch: int = 32, opts: Sequence[str] = (),
                    channels_last: bool = False, backend: str = "auto",
                    num_threads: Optional[int] = None) -> "PoseEstimator":
        """Estimator for a config (yaml path or CfgNode, plus `KEY VALUE` opts) and weights (.pth, .onnx, zoo name,
        or None for random weights). `flip_test` defaults to the config's TEST.FLIP_TEST. `backend` runs the network
        in 'torch', 'onnxruntime' (a .pth is exported once into a cache) or 'auto' (onnxruntime on a CPU, PyTorch
        on CUDA; `backends.build_backend`); `num_threads` its onnxruntime intra-op threads (None = the physical
        cores)."""
        cfg = load_config(cfg_or_yaml, list(opts))
        if weights is not None:
            from . import zoo

            weights = zoo.resolve_weights(str(weights))
        runtime = build_backend(cfg, weights, device, amp, channels_last, backend, num_threads=num_threads)
        return cls(runtime, build_codec(cfg), get_keypoint_set(cfg.DATASET.KEYPOINT_SET),
                   color_rgb=bool(cfg.DATASET.COLOR_RGB),
                   flip_test=bool(cfg.TEST.FLIP_TEST) if flip_test is None else bool(flip_test), detector=detector,
                   max_batch=max_batch)

    @classmethod
    def from_pretrained(cls, name: str, **kwargs: Any) -> "PoseEstimator":
        """Estimator for a model zoo entry (`hrnet_pose.apis.zoo`): its config and its downloaded weights; keyword
        arguments as `from_config` (e.g. `backend='torch'`)."""
        from . import zoo

        return cls.from_config(zoo.entry_config(name), zoo.resolve_weights(name), **kwargs)

    # ------------------------------------------------------------------ boxes
    def center_scale(self, boxes: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """x1,y1,x2,y2 boxes -> (center, scale) as the dataset does for a cleaned COCO box (xywh = x1, y1, x2-x1,
        y2-y1; aspect of the network input; padding)."""
        return boxes_to_center_scale(xyxy_to_xywh(boxes), self.aspect_ratio, self.padding)

    def _person_boxes(self, image: np.ndarray, boxes: Any, box_scores: Any) -> Tuple[np.ndarray, np.ndarray]:
        if boxes is not None:
            return check_boxes(boxes, box_scores)
        if self.detector is not None:
            det_boxes, det_scores = self.detector(image)
            return check_boxes(det_boxes, det_scores)
        h, w = image.shape[:2]
        # the whole image as one person, in the pixel-centre convention of a cleaned COCO box
        return np.array([[0, 0, max(w - 1, 1), max(h - 1, 1)]], np.float64), np.ones(1, np.float32)

    # ------------------------------------------------------------------ network
    def crops(self, image: np.ndarray, centers: np.ndarray, scales: np.ndarray) -> np.ndarray:
        """Normalised network inputs [N, 3, H, W] float32 for the boxes, in the config's colour order."""
        crops = np.stack([crop_person(image, c, s, 0.0, self.image_size, self.codec.use_udp)[0]
                          for c, s in zip(centers, scales)])
        if self.color_rgb:
            crops = crops[..., ::-1]  # the warp treats channels alike, so BGR->RGB after it equals before it
        return normalize_crops(crops)

    def heatmaps(self, inputs: np.ndarray, flip_test: Optional[bool] = None) -> np.ndarray:
        """Heatmaps [N, K, h, w] float32 of normalised crops, flip-averaged as the codec prescribes."""
        flip = self.flip_test if flip_test is None else bool(flip_test)
        outs = [heatmaps_with_flip(self.backend, inputs[start:start + self.max_batch], self.keypoint_set.flip_index,
                                   flip, self.codec.flip_shift)
                for start in range(0, len(inputs), self.max_batch)]
        return np.concatenate(outs).astype(np.float32, copy=False)

    # ------------------------------------------------------------------ call
    def __call__(self, image: Union[ImageInput, Sequence[ImageInput]], boxes: Any = None, box_scores: Any = None,
                 flip_test: Optional[bool] = None, return_heatmaps: bool = False
                 ) -> Union[PoseResult, List[PoseResult]]:
        """Poses of every person in `image` (see module docstring). `boxes` [N, 4] x1,y1,x2,y2 skip the detector;
        with neither boxes nor a detector the whole image is one person.

        A list (or tuple) of images is a batch: the persons of all of them share the network batches (`max_batch`
        persons each) and a list of PoseResult comes back, one per image; `boxes` / `box_scores` are then a list
        with one entry (or None) per image."""
        if isinstance(image, (list, tuple)):
            return self.batch(image, boxes, box_scores, flip_test, return_heatmaps)
        timings: Dict[str, float] = {}
        with _timed(timings, "read"):
            image = as_bgr_image(image)
        with _timed(timings, "detect"):
            boxes, box_scores = self._person_boxes(image, boxes, box_scores)
        if len(boxes) == 0:
            return PoseResult.empty(self.keypoint_set, timings)
        with _timed(timings, "preprocess"):
            centers, scales = self.center_scale(boxes)
            inputs = self.crops(image, centers, scales)
        with _timed(timings, "pose"):
            heatmaps = self.heatmaps(inputs, flip_test)
        with _timed(timings, "decode"):
            preds, maxvals = self.codec.decode(heatmaps, centers, scales)
        return PoseResult(
            keypoints=preds.astype(np.float32), scores=maxvals[..., 0].astype(np.float32), boxes=boxes.astype(np.float32),
            box_scores=box_scores, centers=centers, scales=scales, keypoint_set=self.keypoint_set,
            heatmaps=heatmaps if return_heatmaps else None,
            heatmap_to_image=self.codec.heatmap_to_image_matrices(centers, scales) if return_heatmaps else None,
            timings=timings)


    # ------------------------------------------------------------------ batches of images
    def batch(self, images: Sequence[ImageInput], boxes: Optional[Sequence[Any]] = None,
              box_scores: Optional[Sequence[Any]] = None, flip_test: Optional[bool] = None,
              return_heatmaps: bool = False) -> List[PoseResult]:
        """`estimator([img, ...])`: each image read, detected and cropped on its own, then the persons of all images
        through the network together (`results_from_crops`). Equal to one call per image up to the network's
        batch composition (summation order inside a batched convolution)."""
        n = len(images)
        for name, per_image in (("boxes", boxes), ("box_scores", box_scores)):
            if per_image is not None and len(per_image) != n:
                raise UserError(f"{name} must have one entry per image ({n} images), got {len(per_image)}")
        if n == 0:
            return []
        crops, centers, scales, person_boxes, person_scores, timings = [], [], [], [], [], []
        for i, image in enumerate(images):
            t: Dict[str, float] = {}
            with _timed(t, "read"):
                image = as_bgr_image(image)
            with _timed(t, "detect"):
                b, s = self._person_boxes(image, None if boxes is None else boxes[i],
                                          None if box_scores is None else box_scores[i])
            with _timed(t, "preprocess"):
                c, sc = self.center_scale(b)
                crops.append(self.crops(image, c, sc) if len(b) else
                             np.zeros((0, 3, self.image_size[1], self.image_size[0]), np.float32))
            centers.append(c)
            scales.append(sc)
            person_boxes.append(b)
            person_scores.append(s)
            timings.append(t)
        return self.results_from_crops(np.concatenate(crops), centers, scales, person_boxes, person_scores,
                                       flip_test, return_heatmaps, timings)

    def results_from_crops(self, inputs: np.ndarray, centers: Sequence[np.ndarray], scales: Sequence[np.ndarray],
                           boxes: Sequence[np.ndarray], box_scores: Sequence[np.ndarray],
                           flip_test: Optional[bool] = None, return_heatmaps: bool = False,
                           timings: Optional[Sequence[Dict[str, float]]] = None) -> List[PoseResult]:
        """One PoseResult per image from the normalised crops of all their persons ([sum N_i, 3, H, W], image after
        image, as `crops` makes them) and per image its centers, scales, boxes and box scores. The network and the
        decoder run once over all persons; each image's timings get its share of them (by persons)."""
        counts = [len(b) for b in boxes]
        total = int(sum(counts))
        timings = [dict(t) for t in timings] if timings is not None else [{} for _ in counts]
        if total == 0:
            return [PoseResult.empty(self.keypoint_set, t) for t in timings]
        shared: Dict[str, float] = {}
        all_centers, all_scales = np.concatenate(list(centers)), np.concatenate(list(scales))
        with _timed(shared, "pose"):
            heatmaps = self.heatmaps(inputs, flip_test)
        with _timed(shared, "decode"):
            preds, maxvals = self.codec.decode(heatmaps, all_centers, all_scales)
        results, start = [], 0
        for n, c, s, b, bs, t in zip(counts, centers, scales, boxes, box_scores, timings):
            for stage, ms in shared.items():
                t[stage] = t.get(stage, 0.0) + ms * n / total
            if n == 0:
                results.append(PoseResult.empty(self.keypoint_set, t))
                continue
            sl = slice(start, start + n)
            start += n
            results.append(PoseResult(
                keypoints=preds[sl].astype(np.float32), scores=maxvals[sl, :, 0].astype(np.float32),
                boxes=np.asarray(b).astype(np.float32), box_scores=np.asarray(bs, np.float32), centers=c, scales=s,
                keypoint_set=self.keypoint_set, heatmaps=heatmaps[sl] if return_heatmaps else None,
                heatmap_to_image=self.codec.heatmap_to_image_matrices(c, s) if return_heatmaps else None,
                timings=t))
        return results

    # ------------------------------------------------------------------ streams
    def stream(self, source: Any, **options: Any) -> Any:
        """Poses over a video, webcam, URL, folder or `FrameSource`, as an iterator of `PoseResult`s with their
        `frame`: `for result in estimator.stream("walk.mp4", det_interval=5, track=True): ...`. Reading, detection
        and the pose network run on their own threads; a live source keeps the newest frame at every stage. Options
        and details: `pipeline.ResultStream`."""
        from .pipeline import ResultStream

        return ResultStream(self, source, **options)
