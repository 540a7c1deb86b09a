"""Flip test on heatmaps: heatmaps of a mirrored crop mapped back onto the original, and the flip-test average.

Follows the official HRNet `validate()` (Sun et al., CVPR 2019): the mirrored heatmaps are flipped back (mirror W,
swap left/right channels), shifted one column to the right when the codec says so (`codec.flip_shift`:
TEST.SHIFT_HEATMAP compensates the misalignment of `x -> W - 1 - x` at 1/4 resolution; under UDP the flip is exact and
never shifted), and averaged with the plain heatmaps in float32. Training-time evaluation and the inference API both
use these functions.

Shapes: `merge_flip` takes two [N,K,h,w] (numpy or torch) and returns one float32 [N,K,h,w] of the same kind.
"""

from typing import Sequence, Union

import numpy as np
import torch

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
