"""Optimizers, the multi-step learning-rate schedule with warm-up, and an EMA of the weights.

Official recipe (experiments/coco/hrnet/*_adam_lr1e-3.yaml, the official yamls): Adam, LR 1e-3,
MultiStepLR([170, 200], 0.1) over 210 epochs. Two official bugs are reproduced only behind switches:
- `COMPAT.ADAM_IGNORES_WD`: the official Adam is built without weight decay, so `TRAIN.WD` has no effect. By default
  TRAIN.WD is passed to Adam (L2, as torch.optim.Adam does) and to AdamW (decoupled) and SGD.
- `COMPAT.SCHEDULER_STEP_AT_EPOCH_START`: the official loop calls `lr_scheduler.step()` before each epoch, so every
  drop happens one epoch early (epochs 0-168 at 1e-3 for milestone 170). Only this order is reproduced: the extra
  one-epoch shift that each official AUTO_RESUME adds is a resume bug, and a resumed run here always matches an
  uninterrupted one.
The learning rate is a pure function of (epoch, iteration), so resuming restores it exactly.
"""

import bisect
import copy
import logging
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn as nn

from ..errors import ConfigError

logger = logging.getLogger(__name__)

_OPTIMIZERS = ("adam", "adamw", "sgd")


def fused_kwargs(fused: bool, device: torch.device) -> Dict[str, bool]:
    """Optimizer keywords for ENGINE.FUSED_OPTIMIZER: {'fused': True} where torch has fused kernels for `device`
    (CUDA; CPU since torch 2.4), else {'foreach': True} with a log line saying why; {} (torch's default) when off.

    A fused optimizer takes the non-finite flag as `found_inf` and skips the update on the device (see engine.step).
    """
    if not fused:
        return {}
    supported = getattr(torch.utils._foreach_utils, "_get_fused_kernels_supported_devices", lambda: ["cuda"])()
    if device.type in supported:
        return {"fused": True}
    logger.info("ENGINE.FUSED_OPTIMIZER: torch %s has no fused optimizer kernels for %s (only %s): using foreach",
                torch.__version__, device.type, supported)
    return {"foreach": True}


def build_optimizer(cfg: Any, model: nn.Module, device: Optional[torch.device] = None) -> torch.optim.Optimizer:
    """TRAIN.OPTIMIZER (adam | adamw | sgd) over the model's trainable parameters, with TRAIN.LR and TRAIN.WD;
    fused or foreach per ENGINE.FUSED_OPTIMIZER on `device` (default: the device of the model's parameters)."""
    name = str(cfg.TRAIN.OPTIMIZER).lower()
    params = [p for p in model.parameters() if p.requires_grad]
    lr, wd = float(cfg.TRAIN.LR), float(cfg.TRAIN.WD)
    if device is None:
        device = params[0].device if params else torch.device("cpu")
    extra = fused_kwargs(bool(cfg.ENGINE.FUSED_OPTIMIZER), device) if name in _OPTIMIZERS else {}
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=0.0 if cfg.COMPAT.ADAM_IGNORES_WD else wd, **extra)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd, **extra)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=float(cfg.TRAIN.MOMENTUM), weight_decay=wd,
                               nesterov=bool(cfg.TRAIN.NESTEROV), **extra)
    raise ConfigError(f"TRAIN.OPTIMIZER is {cfg.TRAIN.OPTIMIZER!r}; valid: {list(_OPTIMIZERS)}")


def is_fused(optimizer: torch.optim.Optimizer) -> bool:
    """True when every param group runs the fused kernels (they accept an on-device `found_inf` skip flag)."""
    return all(bool(g.get("fused")) for g in optimizer.param_groups)


class MultiStepWarmupLR:
    """MultiStepLR by epoch, times a linear warm-up by global iteration.

    lr(epoch, it) = base_lr * gamma ** #(milestones <= epoch + shift) * warm(it), where shift is 1 in the official
    order (scheduler stepped at the start of each epoch) and 0 when stepped after each epoch (the torch-documented
    order), and warm(it) rises linearly from `warmup_factor` to 1 over `warmup_iters` iterations.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, milestones: Sequence[int], gamma: float,
                 warmup_iters: int = 0, warmup_factor: float = 0.001, step_at_epoch_start: bool = False):
        if list(milestones) != sorted(milestones):
            raise ConfigError(f"TRAIN.LR_STEP must be increasing, got {list(milestones)}")
        if warmup_iters < 0 or not 0.0 < warmup_factor <= 1.0:
            raise ConfigError(f"ENGINE.WARMUP_ITERS must be >= 0 and ENGINE.WARMUP_FACTOR in (0, 1], got "
                             f"{warmup_iters} and {warmup_factor}")
        self.optimizer = optimizer
        self.milestones = [int(m) for m in milestones]
        self.gamma = float(gamma)
        self.warmup_iters = int(warmup_iters)
        self.warmup_factor = float(warmup_factor)
        self.shift = 1 if step_at_epoch_start else 0
        self.base_lrs = [float(g.get("initial_lr", g["lr"])) for g in optimizer.param_groups]
        for group, base in zip(optimizer.param_groups, self.base_lrs):
            group["initial_lr"] = base
        self.last_epoch = 0
        self.last_iter = 0

    def factor(self, epoch: int, global_iter: int) -> float:
        decay = self.gamma ** bisect.bisect_right(self.milestones, epoch + self.shift)
        if self.warmup_iters and global_iter < self.warmup_iters:
            alpha = global_iter / self.warmup_iters
            return decay * (self.warmup_factor * (1.0 - alpha) + alpha)
        return decay

    def apply(self, epoch: int, global_iter: int) -> List[float]:
        """Set every param group's lr for this (epoch, global iteration); returns the lrs."""
        self.last_epoch, self.last_iter = int(epoch), int(global_iter)
        f = self.factor(epoch, global_iter)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * f
        return self.get_last_lr()

    def get_last_lr(self) -> List[float]:
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    def state_dict(self) -> Dict[str, Any]:
        return {"milestones": list(self.milestones), "gamma": self.gamma, "warmup_iters": self.warmup_iters,
                "warmup_factor": self.warmup_factor, "shift": self.shift, "base_lrs": list(self.base_lrs),
                "last_epoch": self.last_epoch, "last_iter": self.last_iter}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        # The schedule itself comes from the config (it may have been edited on purpose); only the position is kept.
        self.base_lrs = [float(x) for x in state.get("base_lrs", self.base_lrs)]
        self.last_epoch = int(state.get("last_epoch", 0))
        self.last_iter = int(state.get("last_iter", 0))


def build_scheduler(cfg: Any, optimizer: torch.optim.Optimizer) -> MultiStepWarmupLR:
    return MultiStepWarmupLR(optimizer, list(cfg.TRAIN.LR_STEP), float(cfg.TRAIN.LR_FACTOR),
                             warmup_iters=int(cfg.ENGINE.WARMUP_ITERS), warmup_factor=float(cfg.ENGINE.WARMUP_FACTOR),
                             step_at_epoch_start=bool(cfg.COMPAT.SCHEDULER_STEP_AT_EPOCH_START))


class ModelEma:
    """Exponential moving average of a model's state (parameters and float buffers; integer buffers are copied).

    decay_t = min(decay, (1 + t) / (10 + t)) for update t, so short runs are not dominated by the random init.
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ConfigError(f"ENGINE.EMA_DECAY must be in (0, 1) (0 turns EMA off), got {decay}")
        self.decay = float(decay)
        self.updates = 0
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        src = model.state_dict()
        for name, ema_v in self.module.state_dict().items():
            v = src[name].detach()
            if torch.is_floating_point(ema_v):
                ema_v.mul_(d).add_(v.to(ema_v.dtype), alpha=1.0 - d)
            else:
                ema_v.copy_(v)

    @torch.no_grad()
    def update_unless(self, model: nn.Module, skip: torch.Tensor) -> None:
        """`update`, made a no-op on the device where the 0-dim bool `skip` is true (no host synchronisation).

        The update count lives on the device too (`updates` reads it back); with skip false the result equals
        `update` up to float rounding of the decay (it is computed in float64 on the device). A skipped update keeps
        every tensor by selection (`torch.where`), so a non-finite model state cannot leak in (`ema * 1 + v * 0` is
        NaN when v is).
        """
        if not isinstance(self.updates, torch.Tensor):
            self.updates = torch.tensor(float(self.updates), dtype=torch.float64, device=skip.device)
        self.updates += (~skip).to(torch.float64)
        d = torch.clamp((1.0 + self.updates) / (10.0 + self.updates), max=self.decay)
        src = model.state_dict()
        floats, ints = [], []
        for name, ema_v in self.module.state_dict().items():
            (floats if torch.is_floating_point(ema_v) else ints).append((ema_v, src[name].detach()))
        if floats:
            ema = [e for e, _ in floats]
            new = [v.to(e.dtype) for e, v in floats]
            blended = torch._foreach_add(torch._foreach_mul(ema, d.float()), torch._foreach_mul(new, (1.0 - d).float()))
            for ema_v, value in zip(ema, blended):
                ema_v.copy_(torch.where(skip, ema_v, value))
        for ema_v, v in ints:
            ema_v.copy_(torch.where(skip, ema_v, v))

    def state_dict(self) -> Dict[str, Any]:
        return {"decay": self.decay, "updates": int(self.updates), "module": self.module.state_dict()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        self.module.load_state_dict(state["module"], strict=True)
