"""Test-time inference: flip test and decoding of person crops to image keypoints.

Follows the official HRNet `validate()` (Sun et al., CVPR 2019): the crop and its mirror image go through the model,
the mirrored heatmaps are flipped back (mirror W, swap left/right channels), shifted one column to the right when
the codec says so (`codec.flip_shift`: TEST.SHIFT_HEATMAP compensates the misalignment of `x -> W - 1 - x` at 1/4
resolution; under UDP the flip is exact and never shifted), and averaged with the plain heatmaps in float32.

Shapes: images [N,3,H,W] float -> heatmaps [N,K,h,w] float32; `merge_flip` takes two [N,K,h,w] (numpy or torch)
and returns one float32 [N,K,h,w] of the same kind; `predict_keypoints` -> preds [N,K,2] (image pixels, float32)
and maxvals [N,K,1].
"""

from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..codecs.heatmap import HeatmapCodec
from ..keypoints import flip_permutation

FlipSpec = Union[np.ndarray, Sequence[int], Sequence[Sequence[int]], torch.Tensor]


def _flip_index(flip: FlipSpec, num_joints: int) -> np.ndarray:
    """A permutation [K] from either a flip index [K] or flip pairs [P,2]."""
    arr = np.asarray(flip.cpu() if isinstance(flip, torch.Tensor) else flip, dtype=np.int64)
    if arr.ndim == 2 and arr.shape[1] == 2 or arr.size == 0:
        return flip_permutation(arr.reshape(-1, 2), num_joints)
    if arr.ndim != 1 or arr.shape[0] != num_joints or sorted(arr.tolist()) != list(range(num_joints)):
        raise ValueError(f"flip spec must be a permutation of {num_joints} joints or [P,2] pairs, got {arr.tolist()}")
    return arr


def flip_back(heatmaps: Union[np.ndarray, torch.Tensor], flip: FlipSpec) -> Union[np.ndarray, torch.Tensor]:
    """Official `flip_back`: heatmaps [N,K,h,w] of a mirrored input -> heatmaps of the original (same type)."""
    if heatmaps.ndim != 4:
        raise ValueError(f"flip_back expects [N, K, H, W] heatmaps, got shape {tuple(heatmaps.shape)}")
    index = _flip_index(flip, heatmaps.shape[1])
    if isinstance(heatmaps, torch.Tensor):
        return heatmaps.flip(3)[:, torch.as_tensor(index, device=heatmaps.device)]
    return np.ascontiguousarray(heatmaps[:, index, :, ::-1])


def shift_heatmap_right(heatmaps: Union[np.ndarray, torch.Tensor]) -> Union[np.ndarray, torch.Tensor]:
    """Official SHIFT_HEATMAP: `out[..., 1:] = in[..., :-1]`; column 0 keeps its own value. Returns a copy."""
    out = heatmaps.clone() if isinstance(heatmaps, torch.Tensor) else np.array(heatmaps, copy=True)
    out[..., 1:] = heatmaps[..., :-1]
    return out


def merge_flip(
    heatmaps: Union[np.ndarray, torch.Tensor],
    mirrored_heatmaps: Union[np.ndarray, torch.Tensor],
    flip_index: FlipSpec,
    shift: bool,
) -> Union[np.ndarray, torch.Tensor]:
    """Flip-test average [N,K,h,w] float32: `(heatmaps + flip_back(mirrored_heatmaps)[shifted if shift]) * 0.5`.

    `mirrored_heatmaps` are the model's output on the mirrored crops; pass `shift=codec.flip_shift`. Both inputs are
    cast to float32 first, so bf16/fp16 outputs are averaged (and later decoded) in float32. Numpy in, numpy out;
    torch in, torch out.
    """
    if tuple(heatmaps.shape) != tuple(mirrored_heatmaps.shape):
        raise ValueError(f"heatmaps {tuple(heatmaps.shape)} and mirrored_heatmaps {tuple(mirrored_heatmaps.shape)} "
                         "must have the same [N, K, H, W] shape")
    if isinstance(heatmaps, torch.Tensor):
        plain = heatmaps.float()
        mirrored = torch.as_tensor(mirrored_heatmaps, device=heatmaps.device).float()
    else:
        plain = np.asarray(heatmaps, dtype=np.float32)
        mirrored = np.asarray(mirrored_heatmaps, dtype=np.float32)
    flipped = flip_back(mirrored, flip_index)
    if shift:
        flipped = shift_heatmap_right(flipped)
    return (plain + flipped) * 0.5


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


def predict_keypoints(
    model: torch.nn.Module,
    images: torch.Tensor,
    centers: np.ndarray,
    scales: np.ndarray,
    codec: HeatmapCodec,
    flip_index: FlipSpec,
    flip_test: bool = True,
    shift_heatmap: Optional[bool] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """Person crops [N,3,H,W] + their boxes (center [N,2], scale [N,2]) -> (preds [N,K,2], maxvals [N,K,1]).

    The flip alignment is the codec's (`codec.flip_shift`); `shift_heatmap` overrides it for non-UDP codecs only.
    """
    if shift_heatmap is None:
        shift_heatmap = codec.flip_shift
    elif shift_heatmap and codec.use_udp:
        raise ValueError("shift_heatmap=True with a UDP codec: the UDP flip is exact and a shift would misalign it "
                         "by one heatmap column; leave shift_heatmap=None (the codec decides)")
    heatmaps = inference_with_flip(model, images, flip_index, flip_test, shift_heatmap)
    return codec.decode(heatmaps, centers, scales)
