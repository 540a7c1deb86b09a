"""The onnxruntime cache: a `.pth` (or zoo) checkpoint exported once to ONNX and reused on every later start.

`cached_backend(cfg, weights)` returns an `OnnxRuntimeBackend` on the cache entry for (checkpoint, network config,
exporter), exporting it first when there is none. The entry's name is a SHA-256 over
- the checkpoint file's bytes (random weights: the state dict's tensors, names, dtypes and shapes),
- the config's network keys (`network_yaml`: the MODEL node without the training-only keys, the keypoint set),
- `EXPORTER_VERSION`, the opset and the torch version (the exporter that wrote the graph),
so a changed checkpoint, architecture, input size or exporter gives a new entry and never a stale graph.

An entry is exported beside its final name, checked against PyTorch (`check_onnx`, heatmaps within `PARITY_ATOL`),
then renamed into place: a crash or a failed check never leaves a file under the final name. An entry onnxruntime
cannot open (truncated, overwritten) is rebuilt with a warning. The folder is `$HRNET_POSE_CACHE`, else
`~/.cache/hrnet_pose/onnx`; entries are a few MB (Lite-HRNet) to ~120 MB (HRNet-W48) and may be deleted at any time.
"""

import hashlib
import json
import logging
import os
from typing import Any, List, Mapping, Optional

import torch
from torch import nn

from ..config import CN
from ..errors import UserError
from .export import check_onnx, export_onnx
from .onnx_backend import CONFIG_KEY, OnnxRuntimeBackend

logger = logging.getLogger(__name__)

CACHE_ENV = "HRNET_POSE_CACHE"
DEFAULT_DIR = os.path.join("~", ".cache", "hrnet_pose", "onnx")
# bump when export_onnx's graph changes for the same model (names, axes, wrappers): old entries are then not reused
EXPORTER_VERSION = 1
OPSET = 17
KEY_KEY = "hrnet_pose.cache_key"
# MODEL keys that only steer training (initialisation, the ImageNet file): they change no exported graph
TRAINING_ONLY = ("PRETRAINED", "INIT_WEIGHTS")
# onnxruntime (MLAS) and PyTorch (oneDNN) convolution kernels sum in another order: over HRNet's ~100 layers with
# fan-in up to 3x3x256 that is at most ~sqrt(100 * 2304) * 2^-24 = 3e-5 of the heatmaps' scale, which is ~1 for a
# trained model (its targets are gaussians peaking at 1); 1e-4 absolute, as tests/deploy/test_onnx.py derives it.
# A wrong graph (a missed layer, a transposed axis) is off by the scale itself.
PARITY_ATOL = 1e-4


class OnnxParityError(UserError):
    """An export's heatmaps differ from PyTorch's by more than `PARITY_ATOL`; the entry is not written."""


def cache_dir() -> str:
    """The cache folder: `$HRNET_POSE_CACHE`, else ~/.cache/hrnet_pose/onnx."""
    return os.path.abspath(os.path.expanduser(os.environ.get(CACHE_ENV) or DEFAULT_DIR))


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def state_dict_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's names, dtypes, shapes and values (for weights that live in no file)."""
    digest = hashlib.sha256()
    for name, tensor in state.items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())  # raw bytes: bf16 has no numpy dtype
    return digest.hexdigest()


def network_yaml(cfg: CN) -> str:
    """The config keys that change the exported graph, as yaml: MODEL (architecture node, input and heatmap size,
    joints, attention) without `TRAINING_ONLY` keys, and the keypoint set the joints are checked against."""
    model = cfg.MODEL.clone()
    model.defrost()
    for key in TRAINING_ONLY:
        model.pop(key, None)
    model.EXTRA.pop("PRETRAINED_LAYERS", None)
    node = CN({"MODEL": model, "KEYPOINT_SET": cfg.DATASET.KEYPOINT_SET})
    return node.dump()


def cache_key(cfg: CN, weights_sha256: str) -> str:
    """SHA-256 of the weights' hash, the network keys and the exporter (see the module docstring)."""
    parts = {"weights": weights_sha256, "network": network_yaml(cfg), "exporter": EXPORTER_VERSION, "opset": OPSET,
             "torch": torch.__version__.split("+")[0]}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def entry_path(cfg: CN, key: str, folder: Optional[str] = None) -> str:
    w, h = (int(v) for v in cfg.MODEL.IMAGE_SIZE)
    return os.path.join(folder or cache_dir(), f"{cfg.MODEL.NAME}_{w}x{h}_{key[:24]}.onnx")


def write_entry(model: nn.Module, cfg: CN, key: str, path: str) -> str:
    """Export `model` to `path` via a staging file, check it against PyTorch, then rename it into place."""
    staging = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.staging")
    logger.info("exporting the pose network to onnxruntime once for this checkpoint and config: %s", path)
    try:
        export_onnx(model, staging, tuple(int(v) for v in cfg.MODEL.IMAGE_SIZE), opset=OPSET,
                    metadata={CONFIG_KEY: cfg.dump(), KEY_KEY: key})
        worst = check_onnx(staging, model, batch_sizes=(1, 2))
        if not worst <= PARITY_ATOL:  # also NaN
            raise OnnxParityError(f"the onnxruntime export of {cfg.MODEL.NAME} differs from PyTorch by {worst:.3g} "
                                  f"in the heatmaps (allowed {PARITY_ATOL:g})", hint="use backend='torch'")
        os.replace(staging, path)
    finally:
        if os.path.exists(staging):
            os.remove(staging)
    return path


def _model_with_weights(cfg: CN, weights: Optional[str]) -> nn.Module:
    from ..models import build_model, load_weights

    model = build_model(cfg, is_train=False)
    if weights:
        load_weights(model, weights)
    return model.eval()


def _open(path: str, device: str, num_threads: Optional[int]) -> Optional[OnnxRuntimeBackend]:
    """The backend on an existing entry; None (after a warning, the file removed) when onnxruntime cannot read it."""
    if not os.path.isfile(path):
        return None
    try:
        return OnnxRuntimeBackend(path, device=device, num_threads=num_threads)
    except UserError as err:
        logger.warning("onnxruntime cache entry %s is unreadable (%s): rebuilding it", path, err)
        os.remove(path)
        return None


def cached_backend(cfg: CN, weights: Optional[str], device: str = "cpu", model: Optional[nn.Module] = None,
                   folder: Optional[str] = None, num_threads: Optional[int] = None) -> OnnxRuntimeBackend:
    """An `OnnxRuntimeBackend` for `cfg` with the checkpoint file `weights` (or, when None, `model`'s own weights,
    e.g. random ones), exported into the cache on first use (see the module docstring).

    Raises `OnnxExportError` when the network cannot be exported and `OnnxParityError` when the export does not
    match PyTorch; nothing is cached then."""
    if weights:
        digest = file_sha256(weights)
    else:
        model = model if model is not None else _model_with_weights(cfg, None)
        digest = state_dict_sha256(model.state_dict())
    key = cache_key(cfg, digest)
    path = entry_path(cfg, key, folder)
    backend = _open(path, device, num_threads)
    if backend is None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_entry(model if model is not None else _model_with_weights(cfg, weights), cfg, key, path)
        backend = OnnxRuntimeBackend(path, device=device, num_threads=num_threads)
    return backend


def missing_packages() -> List[str]:
    """Of the packages a cached export needs (onnxruntime to run it, onnx to write its metadata), those not
    installed."""
    import importlib.util
    import sys

    # a None entry in sys.modules makes `import name` fail, as an absent package does
    return [name for name in ("onnxruntime", "onnx")
            if (name in sys.modules and sys.modules[name] is None) or
            (name not in sys.modules and importlib.util.find_spec(name) is None)]


def describe(backend: Any) -> str:
    """'onnxruntime (N threads, <providers>)' or the backend's name, for a log line."""
    threads = getattr(backend, "num_threads", None)
    providers = getattr(backend, "providers", None)
    return f"{backend.name} ({threads} threads, {', '.join(providers)})" if providers else backend.name
