"""onnxruntime backend: runs an exported pose network (`deploy.export`) behind the same contract as `TorchBackend`.

`backend(images)` takes float32 [N, 3, H, W] normalised crops (any N, also for a graph exported with a static batch)
and returns float32 [N, K, h, w] heatmaps. Flip test and decoding stay in `PoseEstimator`, so both backends give the
same `PoseResult`. `input_size` (w, h) and `num_keypoints` are read from the graph when they are static;
`metadata` holds the file's metadata_props (the exporter stores the config yaml there: `config_from_metadata`).

The session is tuned for a batch-1..N convnet on a CPU: all graph rewrites, one op at a time, and as many intra-op
threads as the process has physical cores (`physical_cores`): hyperthreads share one core's vector units, so a
second thread per core adds contention, not speed, for MLAS's convolutions.
"""

import logging
import os
import re
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..config import CN, load_config
from ..errors import ConfigError, UserError

logger = logging.getLogger(__name__)

CONFIG_KEY = "hrnet_pose.config"
ZOO_KEY = "hrnet_pose.zoo_name"
KEYPOINT_SET_KEY = "hrnet_pose.keypoint_set_yaml"  # the text of a custom DATASET.KEYPOINT_SET yaml, when exported


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (its affinity mask, so a container's or `taskset`'s
    limit counts), >= 1. Linux reads the core topology from sysfs; elsewhere every logical CPU counts as a core."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows: no affinity API in the os module
        return max(1, os.cpu_count() or 1)
    cores = set()
    for cpu in cpus:
        try:
            with open(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list") as f:
                cores.add(f.read().strip())  # the hyperthreads of one core share this list
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))


class OnnxModelUnreadable(UserError):
    """onnxruntime cannot load the file (truncated, overwritten, not an ONNX graph, an operator it lacks)."""


def check_device(device: str) -> None:
    """UserError unless `device` is a device string onnxruntime runs on ('cpu', 'cuda', 'cuda:N', 'auto'), checked
    before any file is opened, so that a wrong device is never mistaken for a broken model file."""
    text = (device or "cpu").strip().lower()
    if text not in ("cpu", "") and not re.fullmatch(r"(cuda|auto)(?::(\d+))?", text):
        raise UserError(f"device {device!r} is not valid for onnxruntime; use 'cpu', 'cuda' or 'cuda:N'")


def share_cores(concurrent: bool, cores: Optional[int] = None) -> Tuple[int, int]:
    """(pose session threads, detector session threads) for onnxruntime sessions of the pose network and the person
    detector. Run one after the other (`concurrent=False`: an image at a time) each takes every physical core. Run at
    once (a stream's pipeline detects the next frame while the pose network runs on this one) they split the cores so
    that together they use each core once: two intra-op pools of all cores would make 2x the threads and let them
    preempt each other mid-convolution. The detector gets a third (it runs on a fraction of a stream's frames and is
    cheaper than the pose network with several persons), at least one thread each; one core is shared by both."""
    cores = int(cores) if cores else physical_cores()
    if not concurrent or cores < 2:
        return cores, cores
    detector = max(1, cores // 3)
    return cores - detector, detector


def _providers(device: str, providers: Optional[Sequence[Union[str, Tuple[str, Dict]]]]) -> List:
    import onnxruntime as ort

    if providers:
        return list(providers)
    device = (device or "cpu").strip().lower()
    if device in ("cpu", ""):
        return ["CPUExecutionProvider"]
    match = re.fullmatch(r"(cuda|auto)(?::(\d+))?", device)
    if not match:
        raise UserError(f"device {device!r} is not valid for onnxruntime; use 'cpu', 'cuda' or 'cuda:N'")
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" in available:
        return [("CUDAExecutionProvider", {"device_id": int(match.group(2) or 0)}), "CPUExecutionProvider"]
    if match.group(1) == "cuda":
        # a GPU machine with the CPU-only onnxruntime wheel: run, but say why it is slow
        logger.warning("device %s asked for, but this onnxruntime has no CUDAExecutionProvider (available: %s); "
                       "running on CPU. Install onnxruntime-gpu for CUDA.", device, available)
    return ["CPUExecutionProvider"]


class OnnxRuntimeBackend:
    """An onnxruntime InferenceSession on a pose-network graph (see module docstring)."""

    name = "onnxruntime"

    def __init__(self, path: str, device: str = "cpu", num_threads: Optional[int] = None,
                 providers: Optional[Sequence[Union[str, Tuple[str, Dict]]]] = None) -> None:
        """`num_threads`: intra-op threads; None = the physical cores of this process (`physical_cores`)."""
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise UserError("running a .onnx model needs onnxruntime: pip install onnxruntime "
                            "(or onnxruntime-gpu)") from err
        if not os.path.isfile(path):
            raise FileNotFoundError(f"ONNX model not found: {path}")
        options = ort.SessionOptions()
        # all graph rewrites (conv+BN+activation fusion, NCHWc blocked convs on x86) and one op at a time on the
        # intra-op pool: for a batch-1 convnet on a few cores, parallel op execution only adds contention
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # onnxruntime's own default counts the host's cores, not the ones a container or affinity mask allows
        options.intra_op_num_threads = int(num_threads) if num_threads else physical_cores()
        options.inter_op_num_threads = 1
        self.num_threads = options.intra_op_num_threads
        chosen = _providers(device, providers)  # a wrong device is its own error, outside the file's
        try:
            self.session = ort.InferenceSession(path, sess_options=options, providers=chosen)
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidGraph types
            raise OnnxModelUnreadable(f"onnxruntime cannot load {path}: {str(err).strip().splitlines()[0]}") from err
        self.path = path
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1:
            raise UserError(f"{path} has {len(inputs)} inputs ({[i.name for i in inputs]}); a pose network takes one "
                            "image batch [N, 3, H, W]")
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name
        shape = list(inputs[0].shape)
        if len(shape) != 4:
            raise UserError(f"{path}: input {self.input_name!r} has shape {shape}; expected [N, 3, H, W]")
        self.static_batch = shape[0] if isinstance(shape[0], int) else None
        self.input_size = (shape[3], shape[2]) if all(isinstance(v, int) for v in shape[2:]) else None
        out_shape = list(outputs[0].shape)
        self.num_keypoints = out_shape[1] if len(out_shape) == 4 and isinstance(out_shape[1], int) else None
        self.metadata: Dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        self.providers = self.session.get_providers()

    def __repr__(self) -> str:
        return (f"OnnxRuntimeBackend({self.path!r}, input_size={self.input_size}, num_keypoints={self.num_keypoints}, "
                f"providers={self.providers})")

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: x})[0]

    def __call__(self, images: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(images, dtype=np.float32)
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"images must be [N, 3, H, W], got shape {x.shape}")
        if self.input_size is not None and (x.shape[3], x.shape[2]) != tuple(self.input_size):
            raise ConfigError(f"{self.path} takes {self.input_size[0]}x{self.input_size[1]} (w x h) crops, got "
                             f"{x.shape[3]}x{x.shape[2]}: MODEL.IMAGE_SIZE of the config must match the export")
        n = x.shape[0]
        if self.static_batch is None or n == self.static_batch:
            return self._run(x).astype(np.float32, copy=False)
        # a graph exported with a fixed batch: run in chunks of it, zero-padding the last one
        b = self.static_batch
        pad = (-n) % b
        if pad:
            x = np.concatenate([x, np.zeros((pad,) + x.shape[1:], np.float32)])
        outs = [self._run(x[i:i + b]) for i in range(0, len(x), b)]
        return np.concatenate(outs)[:n].astype(np.float32, copy=False)

    def config_yaml(self) -> Optional[str]:
        """The config yaml stored in the file by `tools/export.py`, or None."""
        return self.metadata.get(CONFIG_KEY)


def config_from_metadata(path: str):
    """The frozen config stored in an exported .onnx file's metadata, or None when it has none."""
    import onnx

    props = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
    text = props.get(CONFIG_KEY)
    if not text:
        return None
    node = CN.load_cfg(text)
    set_text = props.get(KEYPOINT_SET_KEY)
    if set_text and not os.path.isfile(str(node.DATASET.KEYPOINT_SET)):
        node.DATASET.KEYPOINT_SET = keypoint_set_file(set_text, str(node.DATASET.KEYPOINT_SET))
    return load_config(node)  # resolved when exported: DATA_DIR is not joined again


def keypoint_set_file(text: str, name: str) -> str:
    """A keypoint-set yaml carried inside an .onnx file, written once to a file named by its content (under the
    temporary folder) so that the export runs where the original yaml is not."""
    import hashlib
    import tempfile

    from ..fileio import atomic_write_text

    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = os.path.join(tempfile.gettempdir(), "hrnet_pose_keypoint_sets", f"{digest}_{os.path.basename(name)}")
    if not os.path.isfile(path):
        atomic_write_text(text, path)
    return path
