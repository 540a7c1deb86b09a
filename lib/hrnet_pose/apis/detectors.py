"""Person detectors for top-down pose estimation: torchvision's COCO detectors, person class only.

A top-down pose model needs person boxes first. Four torchvision detectors (box AP on COCO val2017 and GFLOPs as
torchvision's weight tables give them, https://pytorch.org/vision/stable/models.html, "Table of all available Object
Detection weights"; the same figures are the `_metrics` / `_ops` of the weight enums):

- 'fasterrcnn': Faster R-CNN ResNet-50 FPN v2 (Li et al., "Benchmarking Detection Transfer Learning with Vision
  Transformers", 2021), `FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1`: 46.7 box AP, 280 GFLOPs, 43.7 M parameters,
  167 MB, shorter side resized to 800 px. The accurate one; seconds per frame on a CPU, fine on a GPU.
- 'mobilenet': Faster R-CNN MobileNetV3-Large FPN (Howard et al., "Searching for MobileNetV3", ICCV 2019),
  `FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1`: 32.8 box AP, 4.49 GFLOPs, 19.4 M parameters, 74 MB, 800 px.
- 'mobilenet320': the same network at 320 px (`FasterRCNN_MobileNet_V3_Large_320_FPN_Weights.COCO_V1`): 22.8 box AP,
  0.72 GFLOPs. Same state dict layout as 'mobilenet' (a weights file cannot tell them apart: name it).
- 'ssdlite': SSDlite320 MobileNetV3-Large (Liu et al., "SSD", ECCV 2016; Sandler et al., "MobileNetV2", CVPR 2018),
  `SSDLite320_MobileNet_V3_Large_Weights.COCO_V1`: 21.3 box AP, 0.58 GFLOPs, 3.4 M parameters; the frame squeezed to
  320x320. The live choice on a CPU (`--det-model auto` there): it misses small and occluded people that the 800 px
  detectors find, which matters little for a webcam with a few people near the camera, tracked between detections.

`resolve_detector_name('auto', device)` gives 'ssdlite' on a CPU and 'fasterrcnn' on CUDA.

Contract: `detector(image_bgr uint8 [H, W, 3]) -> (boxes float32 [N, 4] x1,y1,x2,y2 in image pixels, scores float32
[N])`, highest score first, COCO label 1 (person) only, scores >= score_thr, after box NMS at nms_thr, at most
max_persons. `CallableDetector` puts the same rules around any user function `image -> (boxes, scores)`.

Runtime: 'torch' runs the torchvision model; 'onnxruntime' exports it once per frame size into a cache, checks the
graph's boxes against PyTorch's on that frame, and runs it there (`deploy.detector_export`); 'auto' is onnxruntime on
a CPU when it is installed, else torch. The torch model stays loaded either way (it is what gets exported).

Threads: a detector may be called from several threads at once (a stream pipeline's detect thread and its pose
thread's detection of a lost person); each detector serialises its calls with a lock, so a torch model, a user
function and the lazy per-frame-size export never run twice at once. `num_threads` sets the onnxruntime session's
intra-op threads, chosen together with the pose session's (`deploy.onnx_backend.share_cores`).

Weights come from torchvision's URLs, downloaded by `hrnet_pose.download` (a timeout per network operation,
hash-checked, into the torch hub cache `$TORCH_HOME/hub/checkpoints`, with a progress bar; `HRNET_POSE_OFFLINE=1`
forbids it) or from a local `.pth`; without network the error says how to go on (`DetectorWeightsUnavailable`).
"""

import logging
import os
import re
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union
from urllib.parse import urlparse

import numpy as np
import torch
from torchvision.models import detection as tv_detection
from torchvision.ops import nms

from ..deploy.detector_export import DetectorParityError
from ..deploy.ort_cache import missing_packages
from ..download import DownloadError, download
from ..errors import CheckpointMismatchError, UserError
from ..geometry import invalid_box
from ..models.weights import read_state_dict_file

MAX_PERSONS = 100  # the person cap per frame of every detector, the API and tools/demo.py --max-persons

__all__ = ["DETECTORS", "DETECTOR_WEIGHTS", "DEFAULT_DETECTOR", "AUTO_DETECTOR", "PERSON_LABEL", "PersonDetector",
           "CallableDetector", "build_detector", "filter_person_boxes", "resolve_detector_name", "resolve_runtime",
           "DetectorWeightsUnavailable", "DetectorOutputError"]

logger = logging.getLogger(__name__)

DETECTORS: Dict[str, Callable[..., torch.nn.Module]] = {
    "fasterrcnn": tv_detection.fasterrcnn_resnet50_fpn_v2,
    "mobilenet": tv_detection.fasterrcnn_mobilenet_v3_large_fpn,
    "mobilenet320": tv_detection.fasterrcnn_mobilenet_v3_large_320_fpn,
    "ssdlite": tv_detection.ssdlite320_mobilenet_v3_large,
}
DETECTOR_WEIGHTS = {
    "fasterrcnn": tv_detection.FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1,
    "mobilenet": tv_detection.FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1,
    "mobilenet320": tv_detection.FasterRCNN_MobileNet_V3_Large_320_FPN_Weights.COCO_V1,
    "ssdlite": tv_detection.SSDLite320_MobileNet_V3_Large_Weights.COCO_V1,
}
DEFAULT_DETECTOR = "fasterrcnn"
# `--det-model auto`: on a CPU the cheapest (ssdlite ran faster than mobilenet320 here, README), on CUDA the accurate
AUTO_DETECTOR = {"cpu": "ssdlite", "cuda": "fasterrcnn"}
RUNTIMES = ("auto", "torch", "onnxruntime")
SSD_ANCHORS_PER_LOCATION = 6  # ssdlite320's DefaultBoxGenerator: aspect ratios [2, 3] at each of 6 feature maps
PERSON_LABEL = 1  # torchvision's COCO category list puts 'person' at index 1 (0 is background)
COCO_NUM_CLASSES = 91
_HASH_IN_NAME = re.compile(r"-([a-f0-9]+)\.")  # torch.hub's convention: name-<sha256 prefix>.pth

ImageDetector = Callable[[np.ndarray], Tuple[np.ndarray, np.ndarray]]


class DetectorWeightsUnavailable(UserError):
    """The torchvision detector weights could not be downloaded (no network, HTTP error, hash mismatch) or the cached
    file is unreadable. The message names the URL, the cache path, and the ways to run without the download."""

    def __init__(self, name: str, url: str, cache_path: str, reason: str, cached_file_bad: bool = False) -> None:
        what = (f"the cached person detector weights {cache_path} for '{name}' could not be read ({reason}); "
                f"delete that file to download it again from {url}" if cached_file_bad else
                f"could not download the person detector weights for '{name}' from {url} to {cache_path} ({reason})")
        super().__init__(
            f"{what}\n"
            f"Ways to go on: download {url} on a machine with network and pass it with --det-weights FILE "
            f"(Python: weights='FILE', or copy it to {cache_path}); or give person boxes with --boxes FILE "
            f"(a COCO results json); or use --det-model none (the whole frame is one person).")
        self.name, self.url, self.cache_path = name, url, cache_path


class DetectorOutputError(UserError, ValueError):
    """A user detector callable returned something that is not (boxes [N, 4], scores [N]) of finite numbers."""


# ----------------------------------------------------------------------------------------------- post-processing
def filter_person_boxes(boxes: np.ndarray, scores: np.ndarray, score_thr: float, nms_thr: float,
                        max_persons: int) -> Tuple[np.ndarray, np.ndarray]:
    """Score threshold, then box NMS (IoU > nms_thr suppressed), then the max_persons best, highest score first.

    boxes float [N, 4] x1,y1,x2,y2, scores [N] -> (float32 [M, 4], float32 [M]), M <= max_persons.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    keep = scores >= score_thr
    boxes, scores = boxes[keep], scores[keep]
    if len(scores):
        # torchvision's nms returns the kept indices sorted by decreasing score
        order = nms(torch.from_numpy(boxes), torch.from_numpy(scores), float(nms_thr)).numpy()[:max_persons]
        boxes, scores = boxes[order], scores[order]
    return np.ascontiguousarray(boxes), np.ascontiguousarray(scores)


def _check_thresholds(score_thr: float, nms_thr: float, max_persons: int) -> None:
    if not 0.0 <= float(score_thr) <= 1.0:
        raise ValueError(f"detector score_thr (--bbox-thr) must be in [0, 1], got {score_thr}")
    if not 0.0 < float(nms_thr) <= 1.0:
        raise ValueError(f"detector nms_thr (--nms-thr) must be in (0, 1] (IoU above which a box is suppressed), "
                         f"got {nms_thr}")
    if int(max_persons) < 1 or int(max_persons) != max_persons:
        raise ValueError(f"detector max_persons (--max-persons) must be an integer >= 1, got {max_persons}")


def _check_image(image: Any) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = (f"{type(image).__name__} {image.dtype} {list(image.shape)}" if isinstance(image, np.ndarray)
               else type(image).__name__)
        raise ValueError(f"a person detector takes a BGR uint8 image [H, W, 3] (as cv2.imread gives), got {got}")
    return image


# ----------------------------------------------------------------------------------------------- weights
def _cache_path(url: str) -> str:
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(url).path))


def _download(name: str, progress: bool = True) -> str:
    """The cached weights file of DETECTORS[name], downloaded first (hash-checked, with a progress bar) if missing."""
    url = DETECTOR_WEIGHTS[name].url
    path = _cache_path(url)
    if os.path.isfile(path):
        return path
    match = _HASH_IN_NAME.search(os.path.basename(path))
    logger.info("downloading person detector '%s' weights %s to %s", name, url, path)
    try:
        # a timeout per network operation; the file reaches `path` only whole and after the hash check
        download(url, path, match.group(1) if match else None, progress=progress)
    except DownloadError as err:
        raise DetectorWeightsUnavailable(name, url, path, err.reason) from err
    return path


def _read_state_dict(path: str, mmap: bool = False) -> Dict[str, torch.Tensor]:
    """A torchvision detection state dict from a `.pth`: a bare state dict, or a checkpoint holding one under 'model'
    (torchvision's reference training scripts) or 'state_dict'; a DataParallel 'module.' prefix is stripped
    (`models.weights.read_state_dict_file`). mmap=True maps the tensors instead of reading them."""
    if not os.path.isfile(path):
        raise UserError(f"detector weights file {path} does not exist (expected a torchvision detection state dict "
                        f"'.pth' for one of: {', '.join(DETECTORS)})")
    try:
        return dict(read_state_dict_file(path, mmap=mmap))
    except CheckpointMismatchError as err:
        raise UserError(f"detector weights file {path}: {err}; expected a torchvision detection state dict '.pth' "
                        "(or a checkpoint with one under 'model' / 'state_dict')") from err


def guess_architecture(state_dict: Dict[str, torch.Tensor]) -> str:
    """'fasterrcnn' for a ResNet backbone (keys backbone.body.layerN...), 'ssdlite' for an SSD head, else 'mobilenet'
    ('mobilenet320' has the same keys and shapes: it has to be named)."""
    if any(k.startswith("backbone.body.layer") for k in state_dict):
        return "fasterrcnn"
    return "ssdlite" if any(k.startswith("head.classification_head.") for k in state_dict) else "mobilenet"


def _load_into(model: torch.nn.Module, state_dict: Dict[str, torch.Tensor], source: str, name: str) -> None:
    """Strict loading, except BatchNorm's `num_batches_tracked` counters: torchvision's pretrained mobilenet has frozen
    BN (no counter) where our freshly built model has plain BN; in eval mode both compute the same thing."""
    try:
        result = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as err:  # shape mismatches raise even with strict=False
        raise UserError(f"detector weights {source} do not fit the '{name}' detector ({DETECTORS[name].__name__}): "
                        f"{err}") from err
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    unexpected = [k for k in result.unexpected_keys if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise UserError(f"detector weights {source} do not fit the '{name}' detector ({DETECTORS[name].__name__}): "
                        f"{len(missing)} missing keys (e.g. {missing[:3]}), {len(unexpected)} unexpected keys "
                        f"(e.g. {unexpected[:3]}); are they weights of another architecture? valid: "
                        f"{', '.join(DETECTORS)}")


def _state_dict_for(name: str, weights: Optional[str], pretrained: bool,
                    progress: bool) -> Tuple[Optional[Dict[str, torch.Tensor]], str]:
    """(state dict or None for random weights, where it came from)."""
    if weights is not None:
        return _read_state_dict(os.fspath(weights)), os.fspath(weights)
    if not pretrained:
        return None, "random initialisation"
    source = _download(name, progress)
    try:
        return dict(read_state_dict_file(source)), source
    except Exception as err:  # noqa: BLE001 - a truncated or foreign file in the cache
        raise DetectorWeightsUnavailable(name, DETECTOR_WEIGHTS[name].url, source, f"{type(err).__name__}: {err}",
                                         cached_file_bad=True) from err


def _num_classes(state_dict: Optional[Dict[str, torch.Tensor]]) -> int:
    """COCO's 91, or fewer for a detector fine-tuned on fewer classes (e.g. background + person keeps label 1)."""
    if state_dict is None:
        return COCO_NUM_CLASSES
    if "roi_heads.box_predictor.cls_score.weight" in state_dict:
        return int(state_dict["roi_heads.box_predictor.cls_score.weight"].shape[0])
    ssd_logits = state_dict.get("head.classification_head.module_list.0.1.weight")
    if ssd_logits is not None:  # [anchors x classes, C, 1, 1]
        return int(ssd_logits.shape[0]) // SSD_ANCHORS_PER_LOCATION
    return COCO_NUM_CLASSES


def _build_model(name: str, num_classes: int, score_thr: float, nms_thr: float, max_dets: int) -> torch.nn.Module:
    """Built without torchvision's own weight loading (which would download). The model's own score threshold and NMS
    are set to ours so that nothing we would keep is dropped early (SSD and Faster R-CNN name them differently)."""
    if name == "ssdlite":
        post = dict(score_thresh=score_thr, nms_thresh=nms_thr, detections_per_img=max_dets)
    else:
        post = dict(box_score_thresh=score_thr, box_nms_thresh=nms_thr, box_detections_per_img=max_dets)
    return DETECTORS[name](weights=None, weights_backbone=None, num_classes=num_classes, **post)


def resolve_runtime(runtime: str, device: torch.device) -> str:
    """'torch' or 'onnxruntime' for a runtime name ('auto': onnxruntime on a CPU when it is installed)."""
    runtime = (runtime or "auto").strip().lower()
    if runtime not in RUNTIMES:
        raise UserError(f"unknown detector runtime '{runtime}'; valid: {', '.join(RUNTIMES)}")
    if runtime == "torch" or (runtime == "auto" and device.type != "cpu"):
        return "torch"
    missing = missing_packages()  # the same check as the pose network's onnxruntime backend
    if missing:
        if runtime == "onnxruntime":
            raise UserError(f"the onnxruntime detector runtime needs {' and '.join(missing)}: pip install "
                            f"{' '.join(missing)}")
        logger.warning("%s %s not installed: the person detector runs in PyTorch on the CPU, several times slower "
                       "(pip install %s)", " and ".join(missing), "is" if len(missing) == 1 else "are",
                       " ".join(missing))
        return "torch"
    return "onnxruntime"


def resolve_detector_name(name: str, device: Union[str, torch.device]) -> str:
    """AUTO_DETECTOR's choice for 'auto' on this device; any other name unchanged."""
    if isinstance(name, str) and name.strip().lower() == "auto":
        return AUTO_DETECTOR["cuda" if torch.device(device).type == "cuda" else "cpu"]
    return name


# ----------------------------------------------------------------------------------------------- detectors
class PersonDetector:
    """A torchvision COCO detector that returns person boxes only (see module docstring).

    weights: a local `.pth` (a torchvision state dict); None downloads torchvision's COCO weights into the torch hub
    cache. pretrained=False builds random weights (tests, offline experiments) and never touches the network.
    runtime: 'auto', 'torch' or 'onnxruntime' (module docstring); cache_dir: where onnxruntime graphs are kept
    (default `$HRNET_POSE_CACHE` or ~/.cache/hrnet_pose/onnx); num_threads: onnxruntime intra-op threads (None = the
    physical cores). Calls from several threads are served one at a time.
    """

    def __init__(self, name: str = DEFAULT_DETECTOR, weights: Optional[str] = None, device: Union[str, torch.device]
                 = "cpu", score_thr: float = 0.5, nms_thr: float = 0.5, max_persons: int = MAX_PERSONS,
                 pretrained: bool = True, progress: bool = True, runtime: str = "auto",
                 cache_dir: Optional[str] = None, num_threads: Optional[int] = None) -> None:
        if name not in DETECTORS:
            raise UserError(f"unknown person detector '{name}'; valid: {', '.join(DETECTORS)} (or 'none')")
        _check_thresholds(score_thr, nms_thr, max_persons)
        self.name = name
        self.score_thr, self.nms_thr, self.max_persons = float(score_thr), float(nms_thr), int(max_persons)
        self.device = torch.device(device)
        self.runtime = resolve_runtime(runtime, self.device)
        self._runtime_asked = (runtime or "auto").strip().lower()
        state_dict, source = _state_dict_for(name, weights, pretrained, progress)
        max_dets = max(100, self.max_persons)
        self.model = _build_model(name, _num_classes(state_dict), self.score_thr, self.nms_thr, max_dets)
        if state_dict is not None:
            _load_into(self.model, state_dict, source, name)
        self.model.eval().requires_grad_(False).to(self.device)
        self.weights_source = source
        self._lock = threading.Lock()
        self.onnx = None
        if self.runtime == "onnxruntime":
            from ..deploy.detector_export import OnnxPersonDetectorRunner
            from ..deploy.onnx_backend import _providers

            self.model.cpu()  # exported and checked on the CPU; the graph runs wherever the providers say
            self.onnx = OnnxPersonDetectorRunner(self.model, name, (self.score_thr, max_dets),
                                                 providers=_providers(str(self.device), None), folder=cache_dir,
                                                 num_threads=num_threads)
        logger.info("person detector '%s' (%s) from %s on %s in %s", name, DETECTORS[name].__name__, source,
                    self.device, self.runtime)

    def __repr__(self) -> str:
        return (f"PersonDetector(name={self.name!r}, weights={self.weights_source!r}, device={str(self.device)!r}, "
                f"runtime={self.runtime!r}, score_thr={self.score_thr}, nms_thr={self.nms_thr}, "
                f"max_persons={self.max_persons})")

    def _to_tensor(self, image: np.ndarray) -> torch.Tensor:
        rgb = np.ascontiguousarray(_check_image(image)[..., ::-1])
        # uint8 crosses to the device (4x less to copy than float), then [0, 1] float CHW as torchvision expects
        return torch.from_numpy(rgb).to(self.device).permute(2, 0, 1).float().div_(255.0)

    def _person_outputs(self, boxes: np.ndarray, labels: np.ndarray,
                        scores: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        person = labels == PERSON_LABEL
        return filter_person_boxes(boxes[person], scores[person], self.score_thr, self.nms_thr, self.max_persons)

    def __call__(self, image_bgr: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """BGR uint8 [H, W, 3] -> (boxes float32 [N, 4] x1,y1,x2,y2 image px, scores float32 [N]), best first."""
        return self.detect_batch([image_bgr])[0]

    def detect_batch(self, images_bgr: Sequence[np.ndarray]) -> List[Tuple[np.ndarray, np.ndarray]]:
        """Several images (sizes may differ) in one forward pass (torch) or one after the other (onnxruntime: a graph
        per frame size); one (boxes, scores) pair per image."""
        if not len(images_bgr):
            return []
        with self._lock:
            return self._detect_batch(images_bgr)

    def _detect_batch(self, images_bgr: Sequence[np.ndarray]) -> List[Tuple[np.ndarray, np.ndarray]]:
        if self.onnx is not None:
            try:
                return [self._person_outputs(*self.onnx(_check_image(image))) for image in images_bgr]
            except DetectorParityError as err:  # the graph of a new frame size did not give PyTorch's boxes
                if self._runtime_asked == "onnxruntime":
                    raise
                logger.warning("%s; the person detector runs in PyTorch instead (runtime 'auto')", err)
                self.onnx, self.runtime = None, "torch"
        with torch.inference_mode():
            outputs = self.model([self._to_tensor(image) for image in images_bgr])
        return [self._person_outputs(*(o[k].float().cpu().numpy() if k != "labels" else o[k].cpu().numpy()
                                       for k in ("boxes", "labels", "scores"))) for o in outputs]


class CallableDetector:
    """A user function `image_bgr -> (boxes [N, 4] x1,y1,x2,y2, scores [N])` with the detector rules around it:
    output checked (shapes, finite, x2 >= x1 and y2 >= y1), then score threshold, NMS and max_persons."""

    def __init__(self, fn: ImageDetector, score_thr: float = 0.5, nms_thr: float = 0.5,
                 max_persons: int = MAX_PERSONS) -> None:
        if not callable(fn):
            raise TypeError(f"CallableDetector needs a callable image -> (boxes, scores), got {type(fn).__name__}")
        _check_thresholds(score_thr, nms_thr, max_persons)
        self.fn = fn
        self.score_thr, self.nms_thr, self.max_persons = float(score_thr), float(nms_thr), int(max_persons)
        self._lock = threading.Lock()  # a user function need not be thread-safe
        self._label = getattr(fn, "__qualname__", None) or type(fn).__name__

    def __repr__(self) -> str:
        return (f"CallableDetector({self._label}, score_thr={self.score_thr}, nms_thr={self.nms_thr}, "
                f"max_persons={self.max_persons})")

    def _check(self, out: Any) -> Tuple[np.ndarray, np.ndarray]:
        where = f"detector callable {self._label}"
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise DetectorOutputError(f"{where} must return (boxes [N, 4], scores [N]), got {type(out).__name__}"
                                      + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else ""))
        try:
            boxes = np.asarray(out[0].detach().cpu() if isinstance(out[0], torch.Tensor) else out[0], np.float32)
            scores = np.asarray(out[1].detach().cpu() if isinstance(out[1], torch.Tensor) else out[1], np.float32)
        except (TypeError, ValueError) as err:
            raise DetectorOutputError(f"{where} returned boxes/scores that are not numeric arrays: {err}") from err
        if boxes.size == 0 and scores.size == 0:
            return boxes.reshape(0, 4), scores.reshape(0)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise DetectorOutputError(f"{where} returned boxes of shape {list(boxes.shape)}; expected [N, 4] "
                                      f"x1, y1, x2, y2 in image pixels")
        if scores.shape != (len(boxes),):
            raise DetectorOutputError(f"{where} returned scores of shape {list(scores.shape)} for {len(boxes)} "
                                      f"boxes; expected [{len(boxes)}]")
        bad = ~np.isfinite(scores)
        if bad.any():
            raise DetectorOutputError(f"{where} returned {int(bad.sum())} scores that are NaN or infinite (first at "
                                      f"index {int(np.argmax(bad))})")
        problem = invalid_box(boxes)
        if problem is not None:
            i, reason = problem
            raise DetectorOutputError(f"{where} returned box {i} = {boxes[i].tolist()}, which {reason}; boxes must be "
                                      f"x1, y1, x2, y2 (convert x, y, w, h with x2 = x + w)")
        return boxes, scores

    def __call__(self, image_bgr: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        with self._lock:
            out = self.fn(image_bgr)
        boxes, scores = self._check(out)
        return filter_person_boxes(boxes, scores, self.score_thr, self.nms_thr, self.max_persons)


def build_detector(spec: Union[None, str, os.PathLike, ImageDetector], device: Union[str, torch.device] = "cpu",
                   score_thr: float = 0.5, nms_thr: float = 0.5, max_persons: int = MAX_PERSONS,
                   weights: Optional[str] = None, runtime: str = "auto",
                   cache_dir: Optional[str] = None, num_threads: Optional[int] = None) -> Optional[ImageDetector]:
    """A detector from a spec, or None for no detector (the caller then uses the whole image as one person).

    spec: None or 'none'; a name in DETECTORS or 'auto' (AUTO_DETECTOR for the device); 'name:FILE.pth'; a path to a
    `.pth` (architecture read from its keys); a PersonDetector / CallableDetector (returned as is); any other callable image -> (boxes, scores).
    weights: a local `.pth` for a named detector (the `--det-weights` option). runtime, cache_dir, num_threads:
    PersonDetector's.
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "none"):
        return None
    if isinstance(spec, (PersonDetector, CallableDetector)):
        return spec
    if callable(spec):
        return CallableDetector(spec, score_thr=score_thr, nms_thr=nms_thr, max_persons=max_persons)
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"detector spec must be a name, a path, a callable or None, got {type(spec).__name__}")
    spec = resolve_detector_name(os.fspath(spec), device)
    kwargs = dict(device=device, score_thr=score_thr, nms_thr=nms_thr, max_persons=max_persons, runtime=runtime,
                  cache_dir=cache_dir, num_threads=num_threads)
    name, path = spec.strip().lower(), None
    prefix, sep, rest = spec.partition(":")
    if name not in DETECTORS and sep and prefix.lower() in DETECTORS:
        name, path = prefix.lower(), rest
    elif name not in DETECTORS and (os.path.isfile(spec) or spec.endswith((".pth", ".pt"))):
        name, path = None, spec
    elif name not in DETECTORS:
        raise UserError(f"unknown person detector '{spec}'; valid: {', '.join(repr(n) for n in DETECTORS)} "
                        f"(accurate to fast), 'auto' (by device), 'none' (whole image is one person), "
                        f"'NAME:FILE.pth' or a local '.pth' file")
    if path is not None and weights is not None and os.path.abspath(path) != os.path.abspath(os.fspath(weights)):
        raise UserError(f"detector weights given twice: '{spec}' names {path} but weights (--det-weights) is "
                        f"{weights}; give one")
    path = path if path is not None else weights
    if name is None:
        name = guess_architecture(_read_state_dict(path, mmap=True))
        logger.info("detector weights %s look like the '%s' architecture", path, name)
    return PersonDetector(name, weights=path, **kwargs)
