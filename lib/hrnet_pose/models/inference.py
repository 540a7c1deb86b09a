"""The one model-to-heatmaps path that training-time evaluation, the inference API, export and the benchmarks share.

`forward_heatmaps` takes the model's last output (some models return one per stage, and the official code takes the
last); `heatmaps_with_flip` runs any network callable (a PyTorch model, an onnxruntime session) on the crops and, with
the flip test, on their mirror images in the same batch, and averages them as the official `validate()` does
(`codecs.flip.merge_flip`); keypoints then come from `codec.decode(heatmaps, centers, scales)`. `autocast_context` is
the one place that maps ENGINE.AMP to torch.autocast.

Shapes: images [N,3,H,W] float (torch or numpy) -> heatmaps [N,K,h,w] float32 of the same kind.
"""

import contextlib
from typing import Callable, TypeVar, Union

import numpy as np
import torch

from ..codecs.flip import FlipSpec, merge_flip

Batch = TypeVar("Batch", np.ndarray, torch.Tensor)


def autocast_context(device: torch.device, amp: str):
    """torch.autocast for ENGINE.AMP 'bf16' / 'fp16' on the device's type (CPU autocast included), else a no-op."""
    if not amp:
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    if dtype is None:
        raise ValueError(f"ENGINE.AMP is {amp!r}; valid: '', 'bf16', 'fp16'")
    return torch.autocast(device_type=device.type, dtype=dtype)


def forward_heatmaps(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The model's heatmaps for `images`: its output, or the last of its per-stage outputs."""
    out = model(images)
    # some models return one output per stage; the official code takes the last
    return out[-1] if isinstance(out, (list, tuple)) else out


def heatmaps_with_flip(run: Callable[[Batch], Batch], images: Batch, flip_index: FlipSpec, flip_test: bool,
                       shift: bool) -> Batch:
    """Heatmaps [N,K,h,w] float32 of `run(images)`, averaged with the flipped-back heatmaps of the mirrored crops
    when `flip_test`.

    `run` maps crops [N,3,H,W] to heatmaps [N,K,h,w] (torch or numpy, as `images`). Pass `shift=codec.flip_shift`
    (never the raw TEST.SHIFT_HEATMAP: UDP is not shifted). The plain and mirrored crops go through `run` in one batch:
    that is the official two-forward average because an eval-mode model treats each sample on its own (BatchNorm uses
    running statistics).
    """
    if images.ndim != 4:
        raise ValueError(f"images must be [N, 3, H, W], got shape {tuple(images.shape)}")
    if not flip_test:
        out = run(images)
        return out.float() if isinstance(out, torch.Tensor) else np.asarray(out, dtype=np.float32)
    n = images.shape[0]
    if isinstance(images, torch.Tensor):
        both = run(torch.cat([images, images.flip(3)], dim=0))
    else:
        both = run(np.ascontiguousarray(np.concatenate([images, images[..., ::-1]])))
    return merge_flip(both[:n], both[n:], flip_index, shift)


def model_runner(model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """`run` for `heatmaps_with_flip` from a PyTorch model (its last output, no autograd)."""
    def run(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return forward_heatmaps(model, images)
    return run
