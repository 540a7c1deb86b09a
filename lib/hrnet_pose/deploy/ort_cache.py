"""The onnxruntime cache: a `.pth` (or zoo) checkpoint exported once to ONNX and reused on every later start.

`cached_backend(cfg, weights)` returns an `OnnxRuntimeBackend` on the cache entry for (checkpoint, network config,
exporter), exporting it first when there is none. The entry's name is a SHA-256 over
- the checkpoint file's bytes (random weights: the state dict's tensors, names, dtypes and shapes),
- the config's network keys (`network_yaml`: the MODEL node without the training-only keys, the keypoint set),
- `EXPORTER_VERSION`, the opset and the torch version (the exporter that wrote the graph),
- the package's version and `code_sha256`: the source of every module class the network is made of (its files, and
  each method as the class holds it now, so a patched `forward` counts) and of the export wrapper,
so a changed checkpoint, architecture, input size, model code or exporter gives a new entry and never a stale graph.

An entry is exported beside its final name (`fileio.atomic_path`), checked against PyTorch (`check_onnx`: heatmaps
within `parity_tolerance`, relative to their scale), then published: a crash or a failed check never leaves a file
under the final name, and the file gets a new file's ordinary permissions (readable by the group, so a shared
`$HRNET_POSE_CACHE` serves every user). An entry onnxruntime cannot open (truncated, overwritten) is rebuilt with a
warning; a device string that is not valid is the caller's error and touches no entry. The folder is
`$HRNET_POSE_CACHE`, else `~/.cache/hrnet_pose/onnx`; entries are a few MB (Lite-HRNet) to ~120 MB (HRNet-W48) and may
be deleted at any time.
"""

import hashlib
import inspect
import json
import logging
import os
import sys
from typing import Any, Iterable, List, Mapping, Optional

import torch
from torch import nn

from .. import __version__
from ..config import CN
from ..errors import UserError
from ..fileio import atomic_path
from .export import check_onnx, export_onnx
from .onnx_backend import CONFIG_KEY, OnnxModelUnreadable, OnnxRuntimeBackend, check_device

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
# The error scales with the activations, so for heatmaps on another scale the bound is relative: a Lite-HRNet-18 in
# MMPose's layout whose heatmaps reach 333 differs by 0.036 = 1.1e-4 of that scale (its inner activations are larger
# still than its output). PARITY_RTOL leaves ~4x room above that; a wrong graph (a missed layer, a transposed axis) is
# off by the scale itself, ~2000x more.
PARITY_ATOL = 1e-4
PARITY_RTOL = 5e-4


def parity_tolerance(scale: float) -> float:
    """The largest |onnxruntime - PyTorch| allowed for heatmaps whose largest magnitude is `scale`: PARITY_RTOL of the
    scale, never stricter than PARITY_ATOL (a heatmap scale of ~1 or less)."""
    return max(PARITY_ATOL, PARITY_RTOL * float(scale))


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


def _function_text(func: Any) -> bytes:
    try:
        return inspect.getsource(func).encode()
    except (OSError, TypeError):  # defined in a REPL or by exec: its compiled code stands for its source
        code = func.__code__
        return code.co_code + repr((code.co_consts, code.co_names)).encode()


def code_sha256(model: nn.Module, extra: Iterable[Any] = ()) -> str:
    """SHA-256 of the code that makes `model`'s graph: the source files of every (non-torch) class its modules are made
    of, and every function those classes hold now (a method patched at run time, as an upgrade would change it), plus
    the files of the modules or functions in `extra` (the export wrapper). Torch's own classes are covered by its
    version in the key."""
    classes = {cls for m in model.modules() for cls in type(m).__mro__
               if cls is not object and not cls.__module__.split(".")[0] == "torch"}
    modules = {sys.modules[cls.__module__] for cls in classes if cls.__module__ in sys.modules}
    modules |= {sys.modules[getattr(x, "__module__", None) or x.__name__] for x in extra}
    digest = hashlib.sha256()
    for module in sorted(modules, key=lambda m: m.__name__):
        path = getattr(module, "__file__", None)
        digest.update(module.__name__.encode())
        if path and os.path.isfile(path):
            with open(path, "rb") as f:
                digest.update(f.read())
    for cls in sorted(classes, key=lambda c: f"{c.__module__}.{c.__qualname__}"):
        digest.update(f"{cls.__module__}.{cls.__qualname__}".encode())
        for name, attr in sorted(vars(cls).items()):
            func = getattr(attr, "__func__", attr)  # staticmethod / classmethod
            if inspect.isfunction(func):
                digest.update(name.encode() + _function_text(func))
    return digest.hexdigest()


def cache_key(cfg: CN, weights_sha256: str, code: str = "") -> str:
    """SHA-256 of the weights' hash, the network keys, the model code (`code_sha256`), the package version and the
    exporter (see the module docstring)."""
    parts = {"weights": weights_sha256, "network": network_yaml(cfg), "exporter": EXPORTER_VERSION, "opset": OPSET,
             "torch": torch.__version__.split("+")[0], "hrnet_pose": __version__, "code": code}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def entry_path(cfg: CN, key: str, folder: Optional[str] = None) -> str:
    w, h = (int(v) for v in cfg.MODEL.IMAGE_SIZE)
    return os.path.join(folder or cache_dir(), f"{cfg.MODEL.NAME}_{w}x{h}_{key[:24]}.onnx")


def write_entry(model: nn.Module, cfg: CN, key: str, path: str) -> str:
    """Export `model` to a temporary file beside `path`, check it against PyTorch, then publish it as `path`."""
    logger.info("exporting the pose network to onnxruntime once for this checkpoint, config and code (a one-time "
                "pause): %s", path)
    with atomic_path(path) as staging:
        export_onnx(model, staging, tuple(int(v) for v in cfg.MODEL.IMAGE_SIZE), opset=OPSET,
                    metadata={CONFIG_KEY: cfg.dump(), KEY_KEY: key})
        worst, scale = check_onnx(staging, model, batch_sizes=(1, 2), return_scale=True)
        allowed = parity_tolerance(scale)
        if not worst <= allowed:  # also NaN
            raise OnnxParityError(f"the onnxruntime export of {cfg.MODEL.NAME} differs from PyTorch by {worst:.3g} "
                                  f"in heatmaps of scale {scale:.3g} (allowed {allowed:.3g}: {PARITY_RTOL:g} of the "
                                  f"scale, at least {PARITY_ATOL:g})", hint="use backend='torch'")
    return path


def _model_with_weights(cfg: CN, weights: Optional[str]) -> nn.Module:
    from ..models import build_model, load_weights

    model = build_model(cfg, is_train=False)
    if weights:
        load_weights(model, weights)
    return model.eval()


def _open(path: str, device: str, num_threads: Optional[int]) -> Optional[OnnxRuntimeBackend]:
    """The backend on an existing entry; None (after a warning, the file removed) when onnxruntime cannot read it.
    Only a file onnxruntime cannot load is removed: any other error (the device, the threads) is raised as it is."""
    if not os.path.isfile(path):
        return None
    try:
        return OnnxRuntimeBackend(path, device=device, num_threads=num_threads)
    except OnnxModelUnreadable as err:
        logger.warning("onnxruntime cache entry %s is unreadable (%s): rebuilding it", path, err)
        os.remove(path)
        return None


def cached_backend(cfg: CN, weights: Optional[str], device: str = "cpu", model: Optional[nn.Module] = None,
                   folder: Optional[str] = None, num_threads: Optional[int] = None) -> OnnxRuntimeBackend:
    """An `OnnxRuntimeBackend` for `cfg` with the checkpoint file `weights` (or, when None, `model`'s own weights,
    e.g. random ones), exported into the cache on first use (see the module docstring).

    Raises a UserError for a device onnxruntime cannot take (before any entry is looked at), `OnnxExportError` when
    the network cannot be exported and `OnnxParityError` when the export does not match PyTorch; nothing is cached
    then."""
    check_device(device)
    from ..models import build_model
    from ..models.inference import forward_heatmaps

    if weights:
        digest = file_sha256(weights)
    else:
        model = model if model is not None else _model_with_weights(cfg, None)
        digest = state_dict_sha256(model.state_dict())
    if model is not None:
        code = code_sha256(model, extra=(forward_heatmaps, export_onnx))
    else:  # the architecture's classes, from a model without storage (a tenth of a second even for W48)
        with torch.device("meta"):
            code = code_sha256(build_model(cfg, is_train=False), extra=(forward_heatmaps, export_onnx))
    key = cache_key(cfg, digest, code)
    path = entry_path(cfg, key, folder)
    backend = _open(path, device, num_threads)
    if backend is None:
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
