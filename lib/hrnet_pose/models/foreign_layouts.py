"""Checkpoints written by other HRNet codebases: recognise their key layout and rename the keys to the official ones.

Recognised layouts (a sample of each one's keys is in `LAYOUTS`):

- ``official``: the official `PoseHighResolutionNet` (Sun et al., CVPR 2019;
  leoxiaobin/deep-high-resolution-net.pytorch) and ours: ``conv1.weight``, ``stage4.2.fuse_layers...``,
  ``final_layer.weight``; also ImageNet HRNet classifiers (``incre_modules``, ``classifier``), whose extra keys
  `load_pretrained` ignores.
- ``mmpose0``: MMPose 0.x ``TopDown`` (``backbone.*`` + ``keypoint_head.*``). Its HRNet backbone (mmpose
  ``models/backbones/hrnet.py``) builds the same modules under the same names (``bn1`` from ``build_norm_layer``'s
  ``postfix``, blocks from its ResNet with ``conv1/bn1/...``, fusion ``Sequential``s indexed as the official ones), so
  ``backbone.`` is a plain prefix. ``TopdownHeatmapSimpleHead`` with no deconvolution and one final conv stores
  ``keypoint_head.final_layer.{weight,bias}``.
- ``mmpose1``: MMPose 1.x ``TopdownPoseEstimator`` (``backbone.*`` + ``head.*``; ``HeatmapHead.final_layer``), possibly
  with ``data_preprocessor.*`` buffers, which hold no weights and are dropped.
- Lite-HRNet (Yu et al., CVPR 2021): `models.litehrnet.LiteHRNet` uses MMPose's `LiteHRNet` backbone names
  (``stem``, ``transition0``, ``stage0``, ``head_layer``) and the head's ``final_layer``, so MMPose 0.x / 1.x
  Lite-HRNet files convert by the same prefix rules, and this project's own Lite-HRNet files count as ``official``.

Shapes are never changed: `to_official(sd)` returns a new ordered mapping of the same tensors under official names.
Files are read with `torch.load(weights_only=True)`; MMPose files also carry a ``meta`` dict whose dataset info holds
numpy arrays, so `load_checkpoint_file` allows numpy's array/scalar reconstruction (and nothing else) in that case.
"""

import logging
import os
import pickle
from collections import OrderedDict
from typing import Dict, List, Mapping, Tuple

import numpy as np
import torch

from ..errors import CheckpointMismatchError

logger = logging.getLogger(__name__)

# Top-level module names of the official pose model and of the ImageNet HRNet it is initialised from.
OFFICIAL_TOP_LEVEL = frozenset({
    "conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "transition2", "transition3", "stage2", "stage3",
    "stage4", "final_layer", "incre_modules", "downsamp_modules", "classifier",
})

# layout -> (where it comes from, sample keys): shown in the error for a checkpoint that fits none of them.
LAYOUTS: Dict[str, Tuple[str, Tuple[str, ...]]] = {
    "official": ("official HRNet release / hrnet_pose",
                 ("conv1.weight", "layer1.0.bn1.running_mean", "stage4.2.fuse_layers.0.1.0.weight",
                  "final_layer.weight")),
    "mmpose0": ("MMPose 0.x TopDown", ("backbone.conv1.weight", "backbone.stage4.2.fuse_layers.0.1.0.weight",
                                       "keypoint_head.final_layer.weight")),
    "mmpose1": ("MMPose 1.x TopdownPoseEstimator", ("backbone.conv1.weight", "backbone.stage2.0.branches.0.0.conv1"
                                                    ".weight", "head.final_layer.weight")),
}
# Top-level module names of this project's Lite-HRNet (MMPose's backbone names without `backbone.`).
LITE_HRNET_TOP_LEVEL = frozenset({"stem", "transition0", "stage0", "head_layer"})
_HEADS = {"mmpose0": "keypoint_head.", "mmpose1": "head."}
_DROPPED_PREFIXES = ("data_preprocessor.",)


class UnknownLayoutError(CheckpointMismatchError):
    """A checkpoint whose keys fit none of the recognised layouts; the message lists them with sample keys."""


def _model_keys(sd: Mapping[str, torch.Tensor]) -> List[str]:
    return [k for k in sd if not k.startswith(_DROPPED_PREFIXES)]


def detect_layout(sd: Mapping[str, torch.Tensor]) -> str:
    """'official', 'mmpose0', 'mmpose1' or 'unknown' for a (module.-stripped) state dict."""
    keys = _model_keys(sd)
    if not keys:
        return "unknown"
    tops = {k.split(".", 1)[0] for k in keys}
    if "backbone" in tops:
        if "keypoint_head" in tops:
            return "mmpose0"
        if "head" in tops:
            return "mmpose1"
        return "unknown"
    # extra keys (a stray tensor, attention blocks) keep it official: strict loading lists them by name
    return "official" if tops & (OFFICIAL_TOP_LEVEL | LITE_HRNET_TOP_LEVEL) else "unknown"


def describe_layouts() -> str:
    """One line per recognised layout with a sample of its keys (for error messages and docs)."""
    return "\n".join(f"  {name} ({origin}): {', '.join(keys)}" for name, (origin, keys) in LAYOUTS.items())


def unknown_layout_error(sd: Mapping[str, torch.Tensor], source: str) -> UnknownLayoutError:
    sample = list(sd)[:6]
    return UnknownLayoutError(
        f"checkpoint {source} has a key layout that is not recognised (first keys: {sample})\n"
        f"recognised layouts:\n{describe_layouts()}\n"
        "Convert it to one of these (e.g. strip its wrapper prefix) or load it into the model it was written by."
    )


def to_official(sd: Mapping[str, torch.Tensor], source: str = "<state dict>") -> "OrderedDict[str, torch.Tensor]":
    """Rename a recognised layout's keys to the official ones (tensors unchanged); drops `data_preprocessor.*`.

    Raises `UnknownLayoutError` for an unrecognised layout, and `CheckpointMismatchError` for an MMPose head that has
    no place in the official model (deconvolution or extra conv layers: a SimpleBaseline-style head).
    """
    layout = detect_layout(sd)
    if layout == "unknown":
        raise unknown_layout_error(sd, source)
    if layout == "official":
        return OrderedDict((k, v) for k, v in sd.items() if not k.startswith(_DROPPED_PREFIXES))
    head = _HEADS[layout]
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    unmapped = []
    for key, value in sd.items():
        if key.startswith(_DROPPED_PREFIXES):
            continue
        if key.startswith("backbone."):
            out[key[len("backbone."):]] = value
        elif key in (head + "final_layer.weight", head + "final_layer.bias"):
            out[key[len(head):]] = value
        else:
            unmapped.append(key)
    if unmapped:
        raise CheckpointMismatchError(
            f"checkpoint {source} ({LAYOUTS[layout][0]} layout) has {len(unmapped)} keys with no place in the "
            f"official HRNet pose model (one final conv on the 1/4 branch), e.g. {unmapped[:5]}; a head with "
            "deconvolution or extra conv layers is another architecture"
        )
    logger.info("%s: converted %d tensors from the %s layout to official key names", source, len(out), layout)
    return out


# numpy globals that an MMPose `meta` needs to unpickle arrays, scalars and dtypes; both module spellings, since
# files written under numpy 1.x name `numpy.core` and under 2.x `numpy._core`.
def _numpy_safe_globals() -> Dict[str, object]:
    core = getattr(np, "_core", None) or np.core
    allowed = {"numpy.ndarray": np.ndarray, "numpy.dtype": np.dtype}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[f"{mod}._reconstruct"] = core.multiarray._reconstruct
        allowed[f"{mod}.scalar"] = core.multiarray.scalar
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        for name in dir(dtypes):
            if name.endswith("DType"):
                allowed[f"numpy.dtypes.{name}"] = getattr(dtypes, name)
    return allowed


def load_checkpoint_file(path: str, mmap: bool = False) -> object:
    """`torch.load(path, weights_only=True)` on CPU; a file that needs numpy's array reconstruction (an MMPose
    ``meta``) is retried with exactly those numpy globals allowed. Anything else is a `CheckpointMismatchError`.
    `mmap` maps the tensors where the file's format allows it (torch >= 1.6 zip files), else reads them."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError:
            if not mmap:
                raise
            return torch.load(path, map_location="cpu", weights_only=True)  # the pre-1.6 format cannot be mapped
    except pickle.UnpicklingError as err:
        first_error = err
    except Exception as err:  # corrupt or truncated file
        raise CheckpointMismatchError(f"cannot read checkpoint {path}: {err}") from err
    allowed = _numpy_safe_globals()
    try:
        needed = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - not a zip checkpoint; report the original error
        needed = None
    if not needed or any(name not in allowed for name in needed):
        others = [n for n in (needed or []) if n not in allowed]
        raise CheckpointMismatchError(
            f"cannot read checkpoint {path} with weights_only=True: it pickles objects other than tensors"
            + (f" ({others})" if others else "") + f". {str(first_error).splitlines()[0]}\n"
            "Re-save only its state dict (torch.save(ckpt['state_dict'], 'weights.pth')) where it was written."
        ) from first_error
    # all of numpy's set, not only `needed`: the dtype classes an array rebuilds with are not listed up front
    with torch.serialization.safe_globals([(obj, name) for name, obj in allowed.items()]):
        return torch.load(path, map_location="cpu", weights_only=True)
