"""A torchvision person detector exported to ONNX, cached on disk, checked against PyTorch, and run in onnxruntime.

The graph is the whole torchvision model on one fixed frame size: input `image` uint8 [H, W, 3] BGR (a cv2 frame as
it is) -> `boxes` float32 [N, 4] x1,y1,x2,y2 in frame pixels, `labels` int64 [N] (COCO ids), `scores` float32 [N].
Everything torchvision does runs inside it: BGR->RGB and /255, the resize (shorter side to the model's size, or
SSDlite's fixed 320x320), normalisation, backbone, heads, box decoding, per-class NMS and the rescale to the frame.
The whole model exports cleanly with the TorchScript exporter (opset 17, RoIAlign and NonMaxSuppression included), so
nothing is re-implemented in numpy and the boxes are torchvision's own.

Python floats in torchvision's post-processing (score threshold, NMS IoU, detections per image) and resize settings
become constants in the graph, and the resize depends on the frame size, so the cache key is: detector name, a hash
of the weights (the state dict's tensors: a weights file, torchvision's download or a random initialisation alike)
and of the modules' settings (`model_digest`), the code of the model's classes and of the wrapper (`ort_cache.code_sha256`),
frame size, the versions of torch, torchvision and this package, and EXPORTER_VERSION. Files go to
`$HRNET_POSE_CACHE` or `~/.cache/hrnet_pose/onnx`, written atomically after the parity check passed; a cache file
onnxruntime cannot load is rebuilt with a warning.

Parity at export: the new graph and the PyTorch model run on the frame that asked for it; every detection of one
must be in the other (same label, each coordinate within BOX_TOL_PX, score within SCORE_TOL), except detections whose
score is within SCORE_TOL of the threshold or of the lowest score kept when the cap was reached (rounding may keep one
and drop the other).
"""

import hashlib
import io
import logging
import os
import threading
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..fileio import atomic_write
from .export import _native_stdout_discarded
from .onnx_backend import physical_cores
from .ort_cache import cache_dir, code_sha256, state_dict_sha256

logger = logging.getLogger(__name__)

EXPORTER_VERSION = "det1"  # bump when the graph's inputs, outputs or contents change
OPSET = 17
BOX_TOL_PX = 0.05  # frame pixels; measured worst case on the fixture images: 2e-4 px (float32 rounding)
SCORE_TOL = 1e-4  # measured worst case: 1.5e-6
OUTPUTS = ("boxes", "labels", "scores")

Detections = Tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes [N, 4] float32, labels [N] int64, scores [N] float32


class DetectorParityError(UserError):
    """The exported detector does not give PyTorch's boxes; the message says which detection differs."""


def _plain(value) -> bool:
    if isinstance(value, dict):
        return all(_plain(v) for v in value.values())
    if isinstance(value, (tuple, list)):
        return all(_plain(v) for v in value)
    return isinstance(value, (bool, int, float, str, type(None)))


def _versions() -> str:
    import torchvision

    from .. import __version__

    return f"torch {torch.__version__} torchvision {torchvision.__version__} hrnet_pose {__version__}"


def model_digest(model: nn.Module) -> str:
    """sha256 of the state dict (names, dtypes, shapes, values) and of every module's plain settings (resize sizes,
    normalisation, score threshold, NMS IoU, proposal counts, ...): the same model gives the same digest wherever its
    weights came from (a file, torchvision's download, a random initialisation), and a change to either gives
    another. Hashing ~20 M parameters takes a fraction of a second."""
    h = hashlib.sha256(state_dict_sha256(model.state_dict()).encode())
    for name, module in model.named_modules():
        # the rpn's proposal counts are dicts under private names; other private attributes are torch's bookkeeping
        settings = {k: v for k, v in vars(module).items() if (not k.startswith("_") or k.endswith("_top_n"))
                    and k != "training" and _plain(v)}
        h.update(f"{name}:{type(module).__name__}:{sorted(settings.items())!r}".encode())
    h.update(code_sha256(model, extra=(_FrameGraph,)).encode())
    return h.hexdigest()


def cache_path(name: str, digest: str, frame_hw: Sequence[int], folder: Optional[str] = None) -> str:
    """The cache file of one detector graph: name, model digest, frame size, torch and exporter versions."""
    h, w = int(frame_hw[0]), int(frame_hw[1])
    key = "|".join([name, digest, f"{h}x{w}", _versions(), EXPORTER_VERSION])
    return os.path.join(folder or cache_dir(), f"det-{name}-{h}x{w}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
                                               f".onnx")


class _FrameGraph(nn.Module):
    """The torchvision detector on one BGR uint8 frame, its three outputs as a tuple."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = image.flip(-1).permute(2, 0, 1).float().div(255.0)
        out = self.model([x])[0]
        return out["boxes"], out["labels"], out["scores"]


def run_torch(model: nn.Module, image: np.ndarray) -> Detections:
    """The PyTorch model on one BGR frame, through the same wrapper as the graph (CPU, float32)."""
    with torch.inference_mode():
        boxes, labels, scores = _FrameGraph(model).eval()(torch.from_numpy(np.ascontiguousarray(image)))
    return boxes.numpy(), labels.numpy(), scores.numpy()


def _export_bytes(model: nn.Module, image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), _native_stdout_discarded():
        # tracer warnings about torchvision's shape arithmetic (static for a fixed frame size, which is the point)
        warnings.simplefilter("ignore")
        torch.onnx.export(_FrameGraph(model).eval(), (torch.from_numpy(np.ascontiguousarray(image)),), buffer,
                          dynamo=False, opset_version=OPSET, input_names=["image"], output_names=list(OUTPUTS),
                          do_constant_folding=True)
    return buffer.getvalue()


def _unmatched(a: Detections, b: Detections, ignore_below: float) -> Optional[str]:
    """The first detection of `a` (score >= ignore_below) with no counterpart in `b`, described; None if all match."""
    for i in np.flatnonzero(a[2] >= ignore_below):
        close = ((b[1] == a[1][i]) & (np.abs(b[0] - a[0][i]).max(axis=1, initial=0.0) <= BOX_TOL_PX)
                 & (np.abs(b[2] - a[2][i]) <= SCORE_TOL))
        if not close.any():
            return f"label {int(a[1][i])} score {float(a[2][i]):.4f} box {np.round(a[0][i], 2).tolist()}"
    return None


def check_parity(reference: Detections, exported: Detections, score_thr: float, max_dets: int) -> int:
    """Raise DetectorParityError unless both give the same detections (module docstring); the number compared."""
    floor = score_thr + SCORE_TOL
    if len(reference[2]) >= max_dets or len(exported[2]) >= max_dets:
        # at the cap, the last places are decided by rounding-level score differences
        floor = max(floor, float(min(reference[2].min(initial=1.0), exported[2].min(initial=1.0))) + SCORE_TOL)
    for x, y, what in ((reference, exported, "PyTorch's"), (exported, reference, "onnxruntime's")):
        miss = _unmatched(x, y, floor)
        if miss:
            raise DetectorParityError(f"the exported person detector does not match PyTorch: {what} detection {miss} "
                                      f"has no counterpart within {BOX_TOL_PX} px / score {SCORE_TOL} "
                                      f"({len(reference[2])} PyTorch and {len(exported[2])} onnxruntime detections)")
    return int((reference[2] >= floor).sum())


def _session(model_bytes_or_path, providers: List, num_threads: Optional[int]):
    import onnxruntime as ort

    options = ort.SessionOptions()
    # as for the pose network (deploy.onnx_backend): all graph rewrites, one op at a time on the intra-op pool
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # onnxruntime's own default counts the host's logical CPUs; set with the pose session's (`share_cores`)
    options.intra_op_num_threads = int(num_threads) if num_threads else physical_cores()
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes_or_path, sess_options=options, providers=providers)


class OnnxPersonDetectorRunner:
    """Runs a torchvision detector in onnxruntime: one cached, parity-checked graph per frame size, exported the first
    time a frame of that size comes. `postprocess` is (score_thr, max_dets) as set in `model`, for the parity check.
    The model's digest is taken at the first frame: change the model before that, not after. Safe to call from
    several threads: a frame size is looked up and exported under a lock (once), sessions then run concurrently.
    `num_threads`: intra-op threads per session (None = the physical cores, `onnx_backend.physical_cores`)."""

    def __init__(self, model: nn.Module, name: str, postprocess: Sequence[float], providers: Sequence = (
                 "CPUExecutionProvider",), num_threads: Optional[int] = None, folder: Optional[str] = None) -> None:
        self.model, self.name = model, name
        self.postprocess = tuple(float(v) for v in postprocess)
        self.providers, self.num_threads, self.folder = list(providers), num_threads, folder
        self.digest: Optional[str] = None
        self.sessions: Dict[Tuple[int, int], object] = {}
        self.exports = 0  # graphs exported by this runner (the rest came from the cache)
        self._lock = threading.Lock()

    def path_for(self, frame_hw: Sequence[int]) -> str:
        if self.digest is None:
            self.digest = model_digest(self.model)
        return cache_path(self.name, self.digest, frame_hw, self.folder)

    def _load_cached(self, path: str):
        try:
            return _session(path, self.providers, self.num_threads)
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own types for a truncated or foreign file
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            logger.warning("person detector cache %s cannot be loaded (%s); exporting it again", path, reason)
            return None

    def _export(self, image: np.ndarray, path: str):
        model_bytes = _export_bytes(self.model, image)
        session = _session(model_bytes, self.providers, self.num_threads)
        compared = check_parity(run_torch(self.model, image), self._run(session, image), self.postprocess[0],
                                int(self.postprocess[1]))
        atomic_write(path, lambda f: f.write(model_bytes), binary=True)
        self.exports += 1
        logger.info("exported person detector '%s' for %dx%d frames to %s (%d detections match PyTorch)",
                    self.name, image.shape[1], image.shape[0], path, compared)
        return session

    @staticmethod
    def _run(session, image: np.ndarray) -> Detections:
        boxes, labels, scores = session.run(list(OUTPUTS), {"image": np.ascontiguousarray(image)})
        return boxes.reshape(-1, 4).astype(np.float32), labels.reshape(-1), scores.reshape(-1).astype(np.float32)

    def __call__(self, image: np.ndarray) -> Detections:
        """BGR uint8 [H, W, 3] -> (boxes, labels, scores), all classes, as the torchvision model gives them."""
        hw = (int(image.shape[0]), int(image.shape[1]))
        session = self.sessions.get(hw)
        if session is None:
            with self._lock:  # two threads meeting a new frame size: one exports, the other waits and reuses it
                session = self.sessions.get(hw)
                if session is None:
                    path = self.path_for(hw)
                    session = self._load_cached(path) if os.path.isfile(path) else None
                    session = session or self._export(image, path)
                    self.sessions[hw] = session
        return self._run(session, image)
