"""Small shared helpers for the attention blocks (hidden-width rule, argument checks, exportable adaptive pooling)."""

from typing import Tuple

import torch
import torch.nn.functional as F


def reduced_channels(channels: int, reduction: float, min_channels: int) -> int:
    """Hidden width ``round(channels / reduction)`` with a floor of ``min(min_channels, channels)``.

    The floor matters for HRNet-W32's 32-channel branch, where ``32 / 16 = 2`` hidden units would be a bottleneck
    too narrow to learn a useful gate.
    """
    check_positive("reduction", reduction)
    check_positive("min_channels", min_channels)
    return max(min(min_channels, channels), int(round(channels / reduction)))


def check_positive(name: str, value: float) -> None:
    """ValueError naming the argument unless ``value`` is a positive number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def check_int(name: str, value: int, minimum: int = 1) -> None:
    """ValueError naming the argument unless ``value`` is an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def adaptive_avg_pool(x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """``F.adaptive_avg_pool2d(x, size)`` that also exports to ONNX for any input size.

    The TorchScript ONNX exporter only takes adaptive pooling whose output size divides the input size. When it does,
    this is a plain average pool (exact); otherwise the bins of ``adaptive_avg_pool2d`` (row ``i`` of ``s`` averages
    input rows ``floor(i H / s)`` to ``ceil((i + 1) H / s) - 1``; an output larger than the input repeats rows) are
    applied as two small averaging matrices, ``P_h @ x @ P_w^T``, which become constants of a fixed-size graph.
    x [N, C, H, W] -> [N, C, size[0], size[1]].
    """
    h, w = int(x.shape[-2]), int(x.shape[-1])
    oh, ow = int(size[0]), int(size[1])
    if h % oh == 0 and w % ow == 0:
        return F.avg_pool2d(x, (h // oh, w // ow))
    return torch.matmul(torch.matmul(_bin_matrix(h, oh, x), x), _bin_matrix(w, ow, x).t())


def _bin_matrix(n_in: int, n_out: int, like: torch.Tensor) -> torch.Tensor:
    """[n_out, n_in] averaging matrix of adaptive pooling's bins along one axis."""
    start = [(i * n_in) // n_out for i in range(n_out)]
    end = [-((-(i + 1) * n_in) // n_out) for i in range(n_out)]
    rows = [[1.0 / (e - s) if s <= j < e else 0.0 for j in range(n_in)] for s, e in zip(start, end)]
    return torch.tensor(rows, dtype=like.dtype, device=like.device)
