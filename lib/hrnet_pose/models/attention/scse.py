"""Concurrent spatial and channel squeeze-and-excitation (scSE) gate.

Roy, Navab, Wachinger, "Concurrent Spatial and Channel 'Squeeze & Excitation' in Fully Convolutional Networks",
MICCAI 2018, https://arxiv.org/abs/1803.02579

Two gates computed from the same input and combined:
- cSE: global average pool -> 1x1 conv C->h -> ReLU -> 1x1 conv h->C -> sigmoid, weights [N, C, 1, 1];
- sSE: 1x1 conv C->1 -> sigmoid, weights [N, 1, H, W];
output ``x * cSE + x * sSE`` (``combine='add'``, the paper's scSE) or ``max(x * cSE, x * sSE)`` (``'max'``,
the max-out variant of the journal version).

Shapes: x [N, C, H, W] -> [N, C, H, W]. Placement: 'gate'.
"""

import torch
from torch import nn

from .helpers import reduced_channels
from .registry import register_attention

_COMBINE = ("add", "max")


@register_attention("scse", placement="gate")
class SCSE(nn.Module):
    """scSE gate.

    Args:
        channels: input (= output) channels C.
        reduction: C / hidden ratio of the channel branch.
        min_channels: floor on the hidden width.
        combine: 'add' or 'max', how the channel- and spatial-gated features are merged.
    """

    def __init__(self, channels: int, reduction: float = 16, min_channels: int = 8, combine: str = "add") -> None:
        super().__init__()
        if combine not in _COMBINE:
            raise ValueError(f"scse: combine must be one of {_COMBINE}, got {combine!r}")
        self.combine = combine
        hidden = reduced_channels(channels, reduction, min_channels)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.spatial = nn.Conv2d(channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x * torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))))
        s = x * torch.sigmoid(self.spatial(x))
        return c + s if self.combine == "add" else torch.maximum(c, s)
