"""Model size and cost: parameter count and GFLOPs as the official README counts them.

The official `get_model_summary` counts multiply-adds of convolutions (and linear layers) and divides by 2^30, so
its "GFLOPs" are GiB-MACs: 7.12 for W32 256x192, 32.9 for W48 384x288. Here the same quantity is measured with
`torch.utils.flop_counter.FlopCounterMode` (which counts 2 FLOPs per multiply-add of conv, matmul and linear ops, so
attention blocks' matrix products are included), halved and divided by 2^30. BN, ReLU, pooling and interpolation
are not counted, as in the official number.
"""

from typing import Dict, Tuple

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def official_gflops(model: nn.Module, input_hw: Tuple[int, int]) -> float:
    """Multiply-adds of one forward at batch 1, divided by 2^30 (the official README's "GFLOPs")."""
    was_training = model.training
    model.eval()
    x = torch.zeros(1, 3, int(input_hw[0]), int(input_hw[1]))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    return counter.get_total_flops() / 2 / 2 ** 30


def model_summary(model: nn.Module, input_hw: Tuple[int, int]) -> Dict[str, float]:
    return {"params": count_parameters(model), "gflops": official_gflops(model, input_hw)}
