"""The model-to-heatmaps forward that training-time evaluation, the inference API and export share.

`forward_heatmaps` takes the model's last output (some models return one per stage, and the official code takes the
last); `inference_with_flip` adds the official flip test (`codecs.flip.merge_flip`); `autocast_context` is the one
place that maps ENGINE.AMP to torch.autocast.

Shapes: images [N,3,H,W] float -> heatmaps [N,K,h,w] float32, which `HeatmapCodec.decode` turns into image
keypoints.
"""

import contextlib

import torch

from ..codecs.flip import FlipSpec, merge_flip


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


@torch.no_grad()
def inference_with_flip(
    model: torch.nn.Module,
    images: torch.Tensor,
    flip_index: FlipSpec,
    flip_test: bool = True,
    shift_heatmap: bool = True,
) -> torch.Tensor:
    """Heatmaps [N,K,h,w] float32 for images [N,3,H,W], averaged with the flipped-back mirror when `flip_test`.

    Pass `shift_heatmap=codec.flip_shift` (never the raw TEST.SHIFT_HEATMAP: UDP is not shifted). The plain and
    mirrored crops go through the model in one batch. That is the official two-forward average because an eval-mode
    model treats each sample on its own (BatchNorm uses running statistics).
    """
    if images.ndim != 4:
        raise ValueError(f"images must be [N, 3, H, W], got shape {tuple(images.shape)}")
    if not flip_test:
        return forward_heatmaps(model, images).float()
    n = images.shape[0]
    both = forward_heatmaps(model, torch.cat([images, images.flip(3)], dim=0))
    return merge_flip(both[:n], both[n:], flip_index, shift_heatmap)

