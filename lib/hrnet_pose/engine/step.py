"""One training step of HRNet (Sun et al., CVPR 2019) for the `Trainer`: forward, loss, backward, gradient clipping,
optimizer update, EMA update, and the non-finite guard, with no host synchronisation on the fast path.

`TrainStep(...)(images, target, weight) -> StepOutput` takes input [B,3,H,W] float (or uint8 [B,H,W,3] crops with
`gpu_normalize`), target [B,K,h,w] and target_weight [B,K,1] and returns device tensors: the loss (NaN where the step
was skipped), the heatmaps [B,K,h,w] and the skip flag. `stats()` reads the guard's counters back to the host; the
trainer calls it only every PRINT_FREQ iterations, so a run of ENGINE.MAX_NONFINITE bad steps is detected up to
PRINT_FREQ iterations late (every bad step is still skipped at once).

The guard evaluates `isfinite` of the loss and of the global gradient norm on the device; under DDP the flag is
all-reduced on the device (the gradients already agree after DDP's all-reduce), so every process skips together.
- Weights: a fused optimizer (ENGINE.FUSED_OPTIMIZER) takes the flag as `found_inf` and leaves parameters and state
  (step count included) untouched on the device. Any other optimizer, and the fp16 GradScaler path, reads the flag on
  the host once per step (free on CPU; the one synchronisation left on CUDA without fused kernels).
- BN running statistics: the forward updates them before the flag is known, so all buffers are re-homed into one
  flat tensor per dtype (`FlatBuffers`); the step copies it (one kernel) and restores with one `torch.where`.
- EMA: updated with a decay of 1 on skipped steps (`ModelEma.update_unless`), so it too is untouched.

torch.compile (ENGINE.COMPILE) and CUDA graphs (ENGINE.CUDA_GRAPH, via compile mode 'reduce-overhead') wrap the
model's forward; a failure or a CPU device falls back to eager with a log line that says why. Both, and the fused
optimizer, are OFF by default: nothing in the CPU test suite can confirm their numerics on CUDA, so a GPU session has
to measure them before they are turned on by default.
"""

import logging
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from ..datasets.transforms import IMAGENET_MEAN, IMAGENET_STD
from ..errors import ConfigError
from ..models.inference import autocast_context
from .distributed import any_true_tensor
from .optim import ModelEma, is_fused

logger = logging.getLogger(__name__)

COMPILE_MODES = ("", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def normalize_on_device(crops: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """uint8 crops [B,H,W,3] -> float32 [B,3,H,W]: /255 then ImageNet mean/std, on the crops' device.

    The same float32 operations in the same order as `datasets.transforms.normalize_crops`, so the result is equal
    to the CPU loader's; sending uint8 moves a quarter of the bytes over PCIe. With `channels_last` the NHWC input is
    kept as it is (it already is channels_last memory).
    """
    if crops.dtype != torch.uint8 or crops.dim() != 4 or crops.shape[-1] != 3:
        raise ValueError(f"normalize_on_device needs uint8 crops [B,H,W,3], got {crops.dtype} {tuple(crops.shape)}")
    mean = torch.from_numpy(IMAGENET_MEAN).to(crops.device)
    std = torch.from_numpy(IMAGENET_STD).to(crops.device)
    x = ((crops.float() / 255.0 - mean) / std).permute(0, 3, 1, 2)
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


class FlatBuffers:
    """All buffers of a module re-homed as views into one flat tensor per (dtype, device), so that saving and
    restoring BN running statistics costs one kernel each instead of one per buffer (~900 in HRNet-W32).

    Run it before DistributedDataParallel wraps the module (DDP keeps references to the buffers it broadcasts);
    `load_state_dict` copies into the views, so checkpoints load and save as before.
    """

    def __init__(self, module: nn.Module):
        groups: Dict[Tuple[torch.dtype, torch.device], List[Tuple[nn.Module, str, torch.Tensor]]] = {}
        for mod in module.modules():
            for name, buf in mod._buffers.items():
                if buf is not None:
                    groups.setdefault((buf.dtype, buf.device), []).append((mod, name, buf))
        self.flats: List[torch.Tensor] = []
        for items in groups.values():
            unique = list({id(b): b for _, _, b in items}.values())  # a buffer shared by two modules is one slot
            flat = torch.cat([b.detach().reshape(-1) for b in unique])
            views, offset = {}, 0
            for b in unique:
                views[id(b)] = flat[offset:offset + b.numel()].view_as(b)
                offset += b.numel()
            for mod, name, b in items:
                mod._buffers[name] = views[id(b)]
            self.flats.append(flat)
        self.backups = [f.clone() for f in self.flats]

    def save(self) -> None:
        if self.flats:
            torch._foreach_copy_(self.backups, self.flats)

    def restore_where(self, flag: torch.Tensor) -> None:
        """Put back the saved values where the 0-dim bool `flag` is true, on the device (no host read)."""
        for flat, backup in zip(self.flats, self.backups):
            flat.copy_(torch.where(flag, backup, flat))


def flatten_buffers(module: nn.Module) -> FlatBuffers:
    """The module's `FlatBuffers`, made on the first call and kept on the module (later calls return it)."""
    flat = getattr(module, "_hrnet_flat_buffers", None)
    if flat is None:
        flat = FlatBuffers(module)
        object.__setattr__(module, "_hrnet_flat_buffers", flat)  # not a submodule, not in the state dict
    return flat


@dataclass
class StepOutput:
    """Device tensors of one step: loss 0-dim float32 (NaN when skipped), output [B,K,h,w] detached heatmaps,
    skipped 0-dim bool (the same on every process)."""

    loss: torch.Tensor
    output: torch.Tensor
    skipped: torch.Tensor


def build_forward(net: nn.Module, device: torch.device, compile_mode: str = "",
                  cuda_graph: bool = False) -> Tuple[Callable, str]:
    """The callable that runs the model (eager, compiled or CUDA-graphed) and a note on what was chosen and why."""
    if compile_mode not in COMPILE_MODES:
        raise ConfigError(f"ENGINE.COMPILE is {compile_mode!r}; valid: {list(COMPILE_MODES)}")
    mode = compile_mode
    if cuda_graph:
        if device.type != "cuda":
            logger.warning("ENGINE.CUDA_GRAPH ignored: CUDA graphs need a CUDA device, this run is on %s", device)
        elif compile_mode not in ("", "reduce-overhead", "max-autotune"):
            logger.warning("ENGINE.CUDA_GRAPH with ENGINE.COMPILE %r: that mode has no CUDA graphs; using "
                           "'reduce-overhead'", compile_mode)
            mode = "reduce-overhead"
        else:
            mode = compile_mode or "reduce-overhead"
    if not mode:
        return net, "eager"
    if mode in ("reduce-overhead", "max-autotune") and device.type != "cuda":
        logger.info("ENGINE.COMPILE %r: its CUDA graphs do not apply on %s (compiled without them)", mode, device)
    try:
        return torch.compile(net, mode=mode), f"torch.compile(mode={mode!r})"
    except Exception as err:  # noqa: BLE001 - any compiler failure must leave an eager run that trains
        logger.warning("torch.compile(mode=%r) failed, running eager: %s: %s", mode, type(err).__name__, err)
        return net, f"eager (compile failed: {type(err).__name__})"


class TrainStep:
    """Forward/backward/update of `net` (the model or its DDP wrapper) with the guard described in the module doc.

    `model` is the bare module (its parameters, buffers and EMA); `flatten_buffers(model)` must have run before a
    DDP wrapper was built. Arguments are plain values so a test builds one without a config.
    """

    def __init__(self, model: nn.Module, net: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: nn.Module,
                 device: torch.device, amp: str = "", channels_last: bool = False, clip_grad: float = 0.0,
                 scaler: Optional[torch.amp.GradScaler] = None, ema: Optional[ModelEma] = None,
                 gpu_normalize: bool = False, compile_mode: str = "", cuda_graph: bool = False):
        if net is not model and getattr(model, "_hrnet_flat_buffers", None) is None:
            raise ValueError("TrainStep: call flatten_buffers(model) before wrapping the model in "
                             "DistributedDataParallel (DDP keeps references to the buffers it broadcasts)")
        self.model, self.net, self.optimizer, self.loss_fn = model, net, optimizer, loss_fn
        self.device, self.amp, self.clip_grad = device, amp, float(clip_grad)
        self.scaler, self.ema, self.gpu_normalize = scaler, ema, gpu_normalize
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.buffers = flatten_buffers(model)
        self.params = [p for p in model.parameters() if p.requires_grad]
        # fused kernels skip on an on-device flag; others (and GradScaler's own skipping) need it on the host
        self.device_guard = scaler is None and is_fused(optimizer)
        self.forward, self.forward_kind = build_forward(net, device, compile_mode, cuda_graph)
        logger.info("train step: %s forward, AMP %s, %s, %s optimizer, non-finite guard %s", self.forward_kind,
                    amp or "off", "channels_last" if channels_last else "NCHW",
                    "fused" if is_fused(optimizer) else "unfused",
                    "on the device" if self.device_guard else "read on the host each step")
        zero = torch.zeros((), dtype=torch.int64, device=device)
        self._bad_total, self._bad_run, self._bad_max_run = zero.clone(), zero.clone(), zero.clone()

    def _run_forward(self, images: torch.Tensor) -> torch.Tensor:
        with autocast_context(self.device, self.amp):
            try:
                return self.forward(images)
            except Exception as err:  # noqa: BLE001 - compile errors surface on the first call
                if self.forward is self.net:
                    raise
                logger.warning("%s failed on the first batch, running eager from now on: %s: %s", self.forward_kind,
                               type(err).__name__, err)
                self.forward, self.forward_kind = self.net, f"eager (compile failed: {type(err).__name__})"
                self.buffers.restore_where(torch.ones((), dtype=torch.bool, device=self.device))
                return self.forward(images)

    def _grad_norm(self) -> torch.Tensor:
        """The global gradient L2 norm (clipped to ENGINE.CLIP_GRAD when set), on the device."""
        if self.scaler is not None and self.clip_grad > 0:
            self.scaler.unscale_(self.optimizer)
        if self.clip_grad > 0:
            return nn.utils.clip_grad_norm_(self.params, self.clip_grad)
        grads = [p.grad for p in self.params if p.grad is not None]
        if not grads:
            return torch.zeros((), device=self.device)
        return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)).float())

    def _update(self, skip: torch.Tensor) -> None:
        if self.device_guard:
            self.optimizer.grad_scale, self.optimizer.found_inf = None, skip.float()
            try:
                self.optimizer.step()
            finally:
                del self.optimizer.grad_scale, self.optimizer.found_inf
            if self.ema is not None:
                self.ema.update_unless(self.model, skip)
        elif not bool(skip):  # the host read of this path (see module docstring)
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            if self.ema is not None:
                self.ema.update(self.model)
        self.optimizer.zero_grad(set_to_none=True)

    def __call__(self, images: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> StepOutput:
        images = images.to(self.device, non_blocking=True)
        if self.gpu_normalize and images.dtype == torch.uint8:
            images = normalize_on_device(images, self.memory_format == torch.channels_last)
        images = images.to(memory_format=self.memory_format)
        target = target.to(self.device, non_blocking=True)
        weight = weight.to(self.device, non_blocking=True)
        self.buffers.save()
        output = self._run_forward(images)
        loss = self.loss_fn(output.float(), target, weight)
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
        norm = self._grad_norm()
        bad = ~torch.isfinite(loss.detach())
        if self.scaler is None:  # fp16 gradient overflow is the GradScaler's business (it skips and lowers the scale)
            bad = bad | ~torch.isfinite(norm)
        skip = any_true_tensor(bad)
        # the forward already ran BN in train mode: undo its running-statistics update on skipped steps, before the
        # EMA reads the buffers (a non-finite input has written NaN into them)
        self.buffers.restore_where(skip)
        self._update(skip)
        self._bad_total += skip
        self._bad_run = (self._bad_run + 1) * skip
        self._bad_max_run = torch.maximum(self._bad_max_run, self._bad_run)
        loss = torch.where(skip, torch.full_like(loss, float("nan")), loss.detach())
        return StepOutput(loss=loss, output=output.detach(), skipped=skip)

    def stats(self) -> Dict[str, int]:
        """The guard's counters on the host (one synchronisation): total skipped steps, the current run of skipped
        steps and the longest run so far."""
        total, run, max_run = torch.stack([self._bad_total, self._bad_run, self._bad_max_run]).tolist()
        return {"nonfinite_total": int(total), "nonfinite_run": int(run), "nonfinite_max_run": int(max_run)}
