"""One strict loader for every checkpoint: official releases, ours, DataParallel/DDP (`module.`-prefixed) files,
training checkpoints (`{'state_dict': ...}` / `{'model': ...}`), ImageNet-pretrained backbones, and MMPose 0.x/1.x
top-down HRNet and Lite-HRNet files (keys renamed to the official ones by `foreign_layouts`; an unknown layout is an error).

Unlike the official `load_state_dict(..., strict=False)`, a wrong checkpoint is an error that lists the missing and
unexpected keys. When attention or gating blocks are on, only their keys may be missing (they are reported), and the
official weight of a 3x3 conv that a conv-type block replaces is loaded into that block's dense path.
"""

import logging
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from ..errors import CheckpointMismatchError
from .foreign_layouts import load_checkpoint_file, to_official

logger = logging.getLogger(__name__)

StateSource = Union[str, os.PathLike, Mapping[str, torch.Tensor]]


@dataclass
class LoadReport:
    source: str
    loaded: int = 0
    missing_attention: List[str] = field(default_factory=list)
    replaced: List[str] = field(default_factory=list)
    ignored: List[str] = field(default_factory=list)
    reinitialised: List[str] = field(default_factory=list)  # head tensors of another keypoint count (fine-tuning)


def _is_state_dict(obj) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def read_state_dict_file(path: str, mmap: bool = False) -> "OrderedDict[str, torch.Tensor]":
    """The state dict of a `.pth` as saved, for any network: a bare state dict, or one under `model` / `state_dict`
    of a training checkpoint, with a DataParallel `module.` prefix stripped. Read with `weights_only=True` (numpy
    arrays of an MMPose `meta` allowed); `mmap` maps the tensors instead of reading them (enough to look at keys).
    CheckpointMismatchError when the file cannot be read or holds no state dict."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    return _unwrap_state_dict(load_checkpoint_file(os.fspath(path), mmap=mmap), str(path))


def _unwrap_state_dict(obj: object, name: str) -> "OrderedDict[str, torch.Tensor]":
    if not _is_state_dict(obj):
        for key in ("model", "state_dict"):
            if isinstance(obj, Mapping) and _is_state_dict(obj.get(key)):
                obj = obj[key]
                break
        else:
            keys = list(obj.keys())[:10] if isinstance(obj, Mapping) else type(obj).__name__
            raise CheckpointMismatchError(
                f"{name} holds no state dict (expected a mapping of tensors, or one under 'model'/'state_dict'; "
                f"found {keys})"
            )
    if all(k.startswith("module.") for k in obj):
        return OrderedDict((k[len("module."):], v) for k, v in obj.items())
    return OrderedDict(obj)


def read_state_dict(source: StateSource) -> "OrderedDict[str, torch.Tensor]":
    """A pose model's state dict from a path (`read_state_dict_file`) or a mapping (unwrapped the same way), in
    the official key names: MMPose 0.x/1.x layouts are renamed, an unknown layout is an error."""
    if isinstance(source, Mapping):
        name, obj = "<state dict>", _unwrap_state_dict(source, "<state dict>")
    else:
        name, obj = str(source), read_state_dict_file(os.fspath(source))
    return to_official(obj, name)


def _replaced_conv_map(model: nn.Module) -> Dict[str, Optional[str]]:
    """For each conv-type attention module at `prefix`, where the replaced conv's `prefix.weight` goes (or None)."""
    out = {}
    for name, m in model.named_modules():
        if getattr(m, "is_attention", False) and hasattr(m, "replaced_conv_key"):
            key = m.replaced_conv_key
            out[name + ".weight"] = f"{name}.{key}" if key else None
    return out


def _remap_replaced_convs(model: nn.Module, state: "OrderedDict[str, torch.Tensor]", report: LoadReport) -> int:
    """Move each official 3x3 conv weight that a conv-type block replaced to that block's dense path, in place, and
    return how many found a place.

    Blocks without a dense 3x3 conv (grouped ones such as splat) cannot take it: the entry is dropped. Either way it
    is listed in `report.replaced`.
    """
    taken = 0
    for old, new in _replaced_conv_map(model).items():
        if old in state:
            tensor = state.pop(old)
            if new is not None:
                state[new] = tensor
                taken += 1
            report.replaced.append(old)
    return taken


def _attention_prefixes(model: nn.Module) -> tuple:
    return tuple(name + "." for name, m in model.named_modules() if getattr(m, "is_attention", False))


def load_weights(model: nn.Module, source: StateSource, source_name: Optional[str] = None) -> LoadReport:
    """Load `source` into `model` strictly (see module docstring). Returns a report; raises
    `CheckpointMismatchError` listing missing / unexpected / mis-shaped keys otherwise."""
    name = source_name or (str(source) if not isinstance(source, Mapping) else "<state dict>")
    state = read_state_dict(source)
    report = LoadReport(source=name)
    _remap_replaced_convs(model, state, report)
    expected = model.state_dict()
    attn = _attention_prefixes(model)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
              for k, v in expected.items() if k in state and state[k].shape != v.shape]
    bad_missing = [k for k in missing if not (attn and k.startswith(attn))]
    if bad_missing or unexpected or shapes:
        raise _mismatch_error(name, bad_missing, unexpected, shapes)
    report.missing_attention = [k for k in missing if attn and k.startswith(attn)]
    model.load_state_dict(state, strict=False)
    report.loaded = len(state)
    if report.missing_attention:
        logger.info("%s: %d attention/gating tensors not in the checkpoint keep their initialisation (e.g. %s)",
                    name, len(report.missing_attention), report.missing_attention[:3])
    if report.replaced:
        logger.info("%s: %d 3x3 conv weights replaced by conv-type attention blocks", name, len(report.replaced))
    return report


def load_pretrained(model: nn.Module, path: str, layers: Sequence[str]) -> LoadReport:
    """MODEL.PRETRAINED (official `init_weights` part 2): take the checkpoint entries whose top-level name is in
    `layers` (MODEL.EXTRA.PRETRAINED_LAYERS, or all with `['*']`) and load every one whose name and shape fit.

    An ImageNet backbone or a pose checkpoint both work. Checkpoint entries the model has no place for (an ImageNet
    classifier's fusion and head layers) are skipped and reported. When the checkpoint's heatmap head
    (`final_layer.*`) has another number of keypoints than the model (fine-tuning COCO-17 onto a custom set), the head
    keeps its fresh initialisation and is reported as re-initialised. Any other missing tensor or shape mismatch is an
    error (the checkpoint is of another architecture). As in `load_weights`, the 3x3 conv that a conv-type attention
    block replaces (SK) gets the checkpoint's weight in its dense path. One log line says exactly what was loaded,
    skipped and re-initialised; `report.ignored` lists the skipped entries, `report.reinitialised` the head's."""
    state = read_state_dict(path)
    take_all = len(layers) > 0 and layers[0] == "*"
    chosen = OrderedDict((k, v) for k, v in state.items() if take_all or k.split(".")[0] in layers)
    expected = model.state_dict()
    attn = _attention_prefixes(model)
    report = LoadReport(source=path)
    # the same remapping as load_weights, so an SK model starts from the ImageNet 3x3 weights the plain model gets
    taken = _remap_replaced_convs(model, chosen, report)
    report.ignored = [k for k in chosen if k not in expected]
    usable = OrderedDict((k, v) for k, v in chosen.items() if k in expected)
    mismatched = [k for k, v in usable.items() if v.shape != expected[k].shape]
    report.reinitialised = [k for k in mismatched if _is_other_head(k, usable[k], expected[k])]
    shapes = [f"{k}: checkpoint {tuple(usable[k].shape)} vs model {tuple(expected[k].shape)}"
              for k in mismatched if k not in report.reinitialised]
    wanted = [k for k in expected if (take_all or k.split(".")[0] in layers) and not (attn and k.startswith(attn))]
    missing = [k for k in wanted if k not in usable and not k.startswith(HEAD_PREFIX)]
    if shapes or missing:
        raise _mismatch_error(path + " (MODEL.PRETRAINED)", missing, [], shapes)
    for k in report.reinitialised:
        del usable[k]
    model.load_state_dict(usable, strict=False)
    report.loaded = len(usable)
    logger.info("=> MODEL.PRETRAINED %s: loaded %d of the model's %d tensors%s; skipped %d checkpoint entries the "
                "model has no place for%s; re-initialised %d%s; not taken (MODEL.EXTRA.PRETRAINED_LAYERS %s): %d "
                "checkpoint entries", path, len(usable), len(expected),
                "" if take_all else f" (layers {list(layers)})", len(report.ignored),
                f" ({_some(report.ignored)})" if report.ignored else "", len(report.reinitialised),
                f" ({', '.join(report.reinitialised)}: the checkpoint's head has {usable_k(state)} keypoints, the "
                f"model's {expected[report.reinitialised[0]].shape[0]})" if report.reinitialised else "",
                list(layers), len(state) - len(chosen))
    if report.replaced:
        logger.info("%s: %d 3x3 conv weights loaded into conv-type attention blocks, %d dropped (blocks with no "
                    "dense 3x3 conv)", path, taken, len(report.replaced) - taken)
    return report


HEAD_PREFIX = "final_layer."  # the heatmap head of HRNet and Lite-HRNet: one conv, K output channels


def _is_other_head(key: str, ckpt: torch.Tensor, model: torch.Tensor) -> bool:
    """True for a head tensor that differs only in its number of keypoints (the output-channel dimension)."""
    return (key.startswith(HEAD_PREFIX) and ckpt.dim() == model.dim() and ckpt.dim() >= 1
            and tuple(ckpt.shape[1:]) == tuple(model.shape[1:]))


def usable_k(state: Mapping[str, torch.Tensor]) -> int:
    """The number of keypoints of a checkpoint's head (0 when it has none)."""
    head = state.get(HEAD_PREFIX + "weight")
    return int(head.shape[0]) if head is not None else 0


def _some(keys: Sequence[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (f", ... {len(keys) - n} more" if len(keys) > n else "")


def _mismatch_error(name: str, missing: List[str], unexpected: List[str], shapes: List[str]
                    ) -> CheckpointMismatchError:
    """A one-line summary first (what a command-line user sees), then the full lists."""
    def summary(noun, items, plural):
        if not items:
            return ""
        if plural == "shape mismatches":  # the first one in full: which layer, and both shapes
            names = items[0] + (f", and {len(items) - 1} more" if len(items) > 1 else "")
        else:
            names = ", ".join(item.split(":")[0] for item in items[:3]) + (", ..." if len(items) > 3 else "")
        return f"{len(items)} {noun if len(items) == 1 else plural} ({names})"

    def part(title, items):
        if not items:
            return ""
        shown = "\n    ".join(items[:20])
        more = f"\n    ... and {len(items) - 20} more" if len(items) > 20 else ""
        return f"\n  {title} ({len(items)}):\n    {shown}{more}"

    counts = [summary("missing key", missing, "missing keys"), summary("unexpected key", unexpected, "unexpected keys"),
              summary("shape mismatch", shapes, "shape mismatches")]
    hint = ("check MODEL.EXTRA (widths, blocks, FINAL_CONV_KERNEL; MODEL.EXTRA.LITE_HRNET for Lite-HRNet), "
            "MODEL.NUM_JOINTS and MODEL.EXTRA.ATTENTION against the config the checkpoint was trained with")
    return CheckpointMismatchError(
        f"checkpoint {name} does not match the model: " + "; ".join(c for c in counts if c)
        + part("missing keys", missing) + part("unexpected keys", unexpected) + part("shape mismatches", shapes)
        + f"\n  {hint[0].upper()}{hint[1:]}.", hint=hint)
