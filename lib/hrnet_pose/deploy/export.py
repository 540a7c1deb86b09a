"""ONNX export of the pose network and its check against PyTorch with onnxruntime.

The graph is the network only: normalised crops ``input`` float32 [N, 3, H, W] -> ``heatmaps`` float32
[N, K, H/4, W/4], with a dynamic batch axis. Flip test and decoding stay outside the graph (in `PoseEstimator`), so
one file serves every decoder and flip setting.

The exporter is torch's TorchScript-based one (`dynamo=False`): torch >= 2.9 defaults to the torch.export-based
exporter, which needs the `onnxscript` package; that is not a dependency here, and the TorchScript exporter gives
the same graph for these convolutional models (deprecated upstream but still shipped). `dynamo=True` may be asked
for where onnxscript is installed. The file is written to a temporary name and renamed, so a failed export never
leaves a half-written model at `path`.
"""

import contextlib
import logging
import os
import sys
import tempfile
import threading
import warnings
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from ..models.inference import forward_heatmaps
from ..errors import UserError

logger = logging.getLogger(__name__)

INPUT_NAME = "input"
OUTPUT_NAME = "heatmaps"
MIN_OPSET = 17  # LayerNorm-free graph, but 17 is what onnxruntime >= 1.14 and TensorRT 8.6 handle everywhere


class OnnxExportError(UserError):
    """The model (or one of its blocks) cannot be exported to ONNX; the message names the block and the reason."""


class _Heatmaps(nn.Module):
    """The model with its last output only, so models returning per-stage lists export one tensor."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return forward_heatmaps(self.model, x)


_STDOUT_LOCK = threading.Lock()


@contextlib.contextmanager
def _native_stdout_discarded() -> Iterator[None]:
    """Send file descriptor 1 to a scratch file meanwhile: on a failure the TorchScript exporter dumps the whole
    traced graph (thousands of lines) to C++ stdout, and its log switch cannot be turned off from Python.

    Only on the main thread: fd 1 belongs to the whole process, so redirecting it from a worker (a stream pipeline's
    detect thread exporting the detector for a new frame size) would swallow what every other thread prints
    meanwhile. A worker's export keeps stdout as it is (the dump shows only when an export fails)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sys.stdout.flush()
    with _STDOUT_LOCK:
        try:
            saved = os.dup(1)
        except OSError:  # no stdout at all: nothing to protect
            yield
            return
        try:
            with tempfile.TemporaryFile() as scratch:
                os.dup2(scratch.fileno(), 1)
                try:
                    yield
                finally:
                    os.dup2(saved, 1)
        finally:
            os.close(saved)


def _export(module: nn.Module, dummy: torch.Tensor, path: str, opset: int, dynamic_batch: bool, dynamo: bool) -> None:
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    with warnings.catch_warnings(), _native_stdout_discarded():
        # the TorchScript exporter's deprecation notice, and tracer warnings about the model's input-shape checks
        # (Python bools on static shapes, which is what the graph should contain)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        kwargs = dict(input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset,
                      dynamic_axes=axes, do_constant_folding=True)
        if dynamo:
            torch.onnx.export(module, (dummy,), path, dynamo=True, external_data=False, **kwargs)
        else:
            torch.onnx.export(module, (dummy,), path, dynamo=False, **kwargs)


def _attention_inputs(model: nn.Module, dummy: torch.Tensor) -> List[Tuple[str, nn.Module, torch.Tensor]]:
    """(name, module, example input) of the first instance of each attention block class, from one forward."""
    seen: Dict[type, Tuple[str, nn.Module]] = {}
    for name, m in model.named_modules():
        if getattr(m, "is_attention", False) and type(m) not in seen:
            seen[type(m)] = (name, m)
    captured: Dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_pre_hook(lambda mod, args, n=n: captured.setdefault(n, args[0].detach()))
             for n, m in seen.values()]
    try:
        with torch.no_grad():
            forward_heatmaps(model, dummy)
    finally:
        for h in hooks:
            h.remove()
    return [(n, m, captured[n]) for n, m in seen.values() if n in captured]


def _failing_block(model: nn.Module, dummy: torch.Tensor, tmp: str, opset: int, dynamo: bool) -> Optional[str]:
    """Export each attention block class alone; the first that fails, as 'name (Class): reason', else None."""
    for name, module, x in _attention_inputs(model, dummy):
        try:
            _export(module, x, tmp, opset, True, dynamo)
        except Exception as err:  # noqa: BLE001 - any exporter failure is the answer we are looking for
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            return f"{name} ({type(module).__name__}): {reason}"
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return None


def export_onnx(model: nn.Module, path: str, input_size: Sequence[int], opset: int = 17, dynamic_batch: bool = True,
                metadata: Optional[Dict[str, str]] = None, dynamo: bool = False) -> str:
    """Write `model` (eval mode, its current device) as ONNX to `path` and return `path`.

    `input_size` is the network input (width, height). `metadata` goes into the file's metadata_props (e.g. the
    config yaml, so a .onnx file carries its decoder settings). Raises `OnnxExportError` naming the attention block
    that cannot be exported, or the exporter's reason.
    """
    if opset < MIN_OPSET:
        raise UserError(f"opset {opset} is too old; use --opset {MIN_OPSET} or newer")
    if len(input_size) != 2 or any(int(v) <= 0 or int(v) % 4 for v in input_size):
        raise UserError(f"input_size must be (width, height), both positive and divisible by 4; got {input_size}")
    if dynamo:
        try:
            import onnxscript  # noqa: F401
        except ImportError as err:
            raise UserError("dynamo=True needs the onnxscript package (pip install onnxscript); the default "
                            "TorchScript exporter does not") from err
    w, h = int(input_size[0]), int(input_size[1])
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    dummy = torch.randn(2 if dynamic_batch else 1, 3, h, w, device=device)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        try:
            _export(_Heatmaps(model), dummy, tmp, opset, dynamic_batch, dynamo)
        except Exception as err:  # noqa: BLE001 - re-raised with the block at fault when one can be found
            block = _failing_block(model, dummy, tmp + ".block", opset, dynamo)
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            if block:
                raise OnnxExportError(f"cannot export to ONNX: attention block {block}",
                                      hint="export a model without that block (MODEL.EXTRA.ATTENTION.NAME) or use "
                                           "the PyTorch backend") from err
            raise OnnxExportError(f"cannot export to ONNX (opset {opset}): {first}") from err
        if metadata:
            import onnx

            proto = onnx.load(tmp)
            for key, value in metadata.items():
                entry = proto.metadata_props.add()
                entry.key, entry.value = str(key), str(value)
            onnx.save(proto, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
        model.train(was_training)
    logger.info("exported %s (input %dx%d, opset %d, %s batch)", path, w, h, opset,
                "dynamic" if dynamic_batch else "static")
    return path


def check_onnx(path: str, model: nn.Module, batch_sizes: Sequence[int] = (1,), seed: int = 0,
               num_threads: Optional[int] = None, return_scale: bool = False) -> Union[float, Tuple[float, float]]:
    """Max |onnxruntime - PyTorch| over the heatmaps of random inputs at each batch size (CPU, float32); with
    `return_scale`, (that difference, max |PyTorch heatmaps|), to judge the difference relative to the scale."""
    from .onnx_backend import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(path, device="cpu", num_threads=num_threads)
    if backend.input_size is None:
        raise UserError(f"{path}: the graph's input has no static height/width to check it with")
    w, h = backend.input_size
    rng = np.random.default_rng(seed)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    worst = scale = 0.0
    try:
        for n in batch_sizes:
            x = rng.standard_normal((int(n), 3, h, w)).astype(np.float32)
            with torch.no_grad():
                ref = forward_heatmaps(model, torch.from_numpy(x).to(device)).float().cpu().numpy()
            out = backend(x)
            if out.shape != ref.shape:
                raise UserError(f"{path}: onnxruntime gives heatmaps {out.shape}, PyTorch {ref.shape} at batch {n}")
            diff = float(np.abs(out - ref).max())
            logger.info("batch %d: max |onnxruntime - torch| = %.3g", n, diff)
            worst = max(worst, diff)
            scale = max(scale, float(np.abs(ref).max()))
    finally:
        model.train(was_training)
    return (worst, scale) if return_scale else worst
