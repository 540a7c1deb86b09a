"""Checkpoints: atomic writes, official key names, RNG capture/restore for bit-exact `AUTO_RESUME`.

`checkpoint.pth` (every epoch) holds {epoch, model, state_dict, best_state_dict, perf, best_perf, optimizer,
scheduler, scaler, ema, rng, config}. `model` and `state_dict` carry the same bare official names (no 'module.'
prefix); the official code's `state_dict` kept the DataParallel prefix, which `hrnet_pose.models.load_weights` strips
anyway. `model_best.pth` and `final_state.pth` are plain state dicts with official names, as in the official code.
Every file is written to a temporary file in the same folder and moved into place with `os.replace`, so a crash or a
kill during a save leaves the previous file intact. Everything stored loads with `torch.load(weights_only=True)`.
"""

import logging
import os
import random
from collections import OrderedDict
from typing import Any, Dict, Mapping, Optional

import numpy as np
import torch
import torch.nn as nn

from ..errors import UserError
from ..fileio import atomic_write

logger = logging.getLogger(__name__)


class CorruptCheckpointError(UserError, RuntimeError):
    """A checkpoint file exists but cannot be read (truncated, not a torch file, or refused by weights_only)."""


CHECKPOINT_NAME = "checkpoint.pth"
BEST_NAME = "model_best.pth"
FINAL_NAME = "final_state.pth"


def atomic_save(obj: Any, path: str) -> None:
    """torch.save `obj` to `path` without ever leaving a half-written `path` behind."""
    atomic_write(path, lambda f: torch.save(obj, f), binary=True)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The bare model inside DistributedDataParallel / DataParallel (so keys carry official names)."""
    while hasattr(model, "module") and isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        model = model.module
    return model


def bare_state_dict(model_or_state: Any) -> "OrderedDict[str, torch.Tensor]":
    """A CPU state dict with official key names: unwraps DDP and strips a leading 'module.' from every key."""
    if isinstance(model_or_state, nn.Module):
        state = unwrap_model(model_or_state).state_dict()
    else:
        state = model_or_state
    out = OrderedDict()
    for key, value in state.items():
        name = key[len("module."):] if key.startswith("module.") else key
        out[name] = value.detach().to("cpu", copy=True)
    return out


class NonFiniteWeightsError(RuntimeError):
    """A model state dict holds NaN or Inf: it is not written as a model file."""


def first_non_finite(state: Mapping[str, torch.Tensor]) -> Optional[str]:
    """The key of the first floating tensor of a state dict that holds NaN or Inf, or None."""
    for key, value in state.items():
        if torch.is_floating_point(value) and not bool(torch.isfinite(value).all()):
            return key
    return None


def state_is_finite(state: Mapping[str, torch.Tensor]) -> bool:
    """False when any floating tensor of a state dict holds NaN or Inf (such a model is never saved as best)."""
    return first_non_finite(state) is None


def save_weights(state: Mapping[str, torch.Tensor], path: str) -> None:
    """Write a model file (`model_best.pth`, `final_state.pth`) atomically; a state holding NaN/Inf is refused with
    `NonFiniteWeightsError` naming the first such tensor, and nothing is written."""
    bad = first_non_finite(state)
    if bad is not None:
        raise NonFiniteWeightsError(
            f"not writing {path}: the model's '{bad}' holds NaN/Inf (training diverged; lower TRAIN.LR, add "
            "ENGINE.WARMUP_ITERS or ENGINE.CLIP_GRAD, and resume from the last checkpoint.pth)")
    atomic_save(state, path)


def capture_rng_state() -> Dict[str, Any]:
    """torch (CPU and every CUDA device), numpy and python RNG states, as weights_only-loadable values."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_version, "internal": list(py_internal), "gauss_next": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of `capture_rng_state` (CUDA states are restored only when the device count matches)."""
    torch.set_rng_state(state["torch"].cpu())
    npst = state["numpy"]
    np.random.set_state((npst["name"], npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"],
                         npst["cached_gaussian"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))
    cuda_states = state.get("cuda")
    if cuda_states is not None and torch.cuda.is_available():
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states])
        else:
            logger.warning("checkpoint has CUDA RNG states for %d devices, this machine has %d: not restored",
                           len(cuda_states), torch.cuda.device_count())


def build_checkpoint(
    *,
    epoch: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    perf: float,
    best_perf: float,
    best_state_dict: Optional[Mapping[str, torch.Tensor]],
    scaler: Any = None,
    ema: Any = None,
    config_yaml: str = "",
    extra: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """The dict stored in `checkpoint.pth`. `epoch` is the next epoch to train (official meaning)."""
    weights = bare_state_dict(model)
    ckpt = {
        "epoch": int(epoch),
        "model": weights,
        "state_dict": weights,  # official key (the official file had a 'module.' prefix here)
        "best_state_dict": best_state_dict if best_state_dict is not None else weights,
        "perf": float(perf),
        "best_perf": float(best_perf),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "ema": ema.state_dict() if ema is not None else None,
        "rng": capture_rng_state(),
        "config": config_yaml,
    }
    if extra:
        ckpt.update(extra)
    return ckpt


def load_checkpoint(path: str, map_location: Any = "cpu") -> Dict[str, Any]:
    """Load a training checkpoint safely (weights_only) and check that it has what resuming needs."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise CorruptCheckpointError(f"could not read checkpoint {path}: {err}. The file may be corrupt; delete "
                                     f"it to start over or set AUTO_RESUME False") from err
    if not isinstance(ckpt, dict) or "epoch" not in ckpt or ("model" not in ckpt and "state_dict" not in ckpt):
        raise ValueError(f"{path} is not a training checkpoint (expected keys 'epoch' and 'model'/'state_dict'); "
                         f"to evaluate plain weights use TEST.MODEL_FILE")
    return ckpt
