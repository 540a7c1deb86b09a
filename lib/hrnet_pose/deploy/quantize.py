"""Post-training int8 quantisation of an exported pose network with onnxruntime (static, QDQ format).

Convolutions dominate HRNet, and onnxruntime quantises convolutions only statically (`quantize_dynamic` covers
MatMul/Gemm-type ops), so this runs `onnxruntime.quantization.quantize_static`: weights int8 per output channel,
activations uint8 per tensor with ranges calibrated on real normalised crops (min/max, or percentiles), QDQ
format so the CPU provider fuses QuantizeLinear/DequantizeLinear pairs into integer convolutions. `reduce_range`
(7-bit weights) is on by default: x86 CPUs without VNNI multiply u8 x s8 with 16-bit saturating sums, which 8-bit
weights can overflow (the onnxruntime quantisation guide's advice for AVX2).

`keep_last_float` leaves the heatmap layer (the convolution that writes the graph output) in float32: its input is
still the dequantised int8 activation, but its weights and its output are not rounded, so the heatmaps the decoder
reads are not stepped by an 8-bit output scale. `exclude_nodes` names further nodes to keep in float.

The result is approximate: its heatmap and keypoint error against the float model must be measured and reported
(`benchmarks.cpu` on any weights; `benchmarks.int8` on trained weights, with OKS AP). Input/output
contract unchanged: float32 [N, 3, H, W] -> float32 [N, K, h, w].
"""

import contextlib
import io
import logging
import os
import tempfile
from typing import Iterator, List, Optional, Sequence

import numpy as np

from ..errors import UserError

logger = logging.getLogger(__name__)

CALIBRATION_METHODS = ("minmax", "percentile", "entropy")


def quantize_onnx_static(
    model_path: str,
    out_path: str,
    calibration: np.ndarray,
    per_channel: bool = True,
    reduce_range: bool = True,
    method: str = "minmax",
    batch_size: int = 1,
    keep_last_float: bool = False,
    exclude_nodes: Sequence[str] = (),
) -> str:
    """Quantise `model_path` to int8 with activation ranges from `calibration` (float32 [N, 3, H, W] normalised
    crops, e.g. 16-64 real persons); writes `out_path` and returns it.

    `keep_last_float`: keep the heatmap layer (the Conv writing the graph output) in float32. `exclude_nodes`: more
    node names to keep in float32, as in the graph after onnxruntime's pre-processing (which keeps the exporter's
    Conv names, e.g. '/model/final_layer/Conv'); a name not in that graph is an error.
    """
    try:
        from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType, quant_pre_process,
                                              quantize_static)
    except ImportError as err:
        raise UserError("int8 quantisation needs onnxruntime and onnx: pip install onnxruntime onnx") from err
    if not os.path.isfile(model_path):
        raise FileNotFoundError(f"ONNX model not found: {model_path}")
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"calibration method {method!r} is not valid; valid: {list(CALIBRATION_METHODS)}")
    data = np.ascontiguousarray(calibration, dtype=np.float32)
    if data.ndim != 4 or data.shape[1] != 3 or len(data) == 0:
        raise ValueError(f"calibration must be float32 [N, 3, H, W] normalised crops with N >= 1, got {data.shape}")

    import onnx

    input_name = onnx.load(model_path, load_external_data=False).graph.input[0].name
    calibrate = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                 "entropy": CalibrationMethod.Entropy}[method]
    with tempfile.TemporaryDirectory() as tmp:
        # shape inference and graph clean-up first, as the onnxruntime quantisation tool recommends
        prepared = os.path.join(tmp, "prepared.onnx")
        quant_pre_process(model_path, prepared, skip_symbolic_shape=True)
        excluded = _float_nodes(onnx.load(prepared, load_external_data=False), keep_last_float, exclude_nodes)
        chatter = io.StringIO()  # the histogram calibrators print their progress; it goes to the debug log
        with contextlib.redirect_stdout(chatter):
            quantize_static(prepared, out_path, _reader(data, input_name, batch_size), quant_format=QuantFormat.QDQ,
                            per_channel=per_channel, reduce_range=reduce_range, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, calibrate_method=calibrate,
                            nodes_to_exclude=excluded or None)
        if chatter.getvalue().strip():
            logger.debug("%s", chatter.getvalue().strip())
    logger.info("int8 model written to %s (%s calibration on %d crops, per_channel=%s, reduce_range=%s, float "
                "nodes %s)", out_path, method, len(data), per_channel, reduce_range, excluded or "none")
    return out_path


def _reader(data: np.ndarray, input_name: str, batch_size: int):
    """An onnxruntime CalibrationDataReader over `data` in batches of `batch_size`."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches: Iterator[np.ndarray] = iter([data[i:i + batch_size] for i in range(0, len(data),
                                                                                             batch_size)])

        def get_next(self) -> Optional[dict]:
            batch = next(self._batches, None)
            return None if batch is None else {input_name: batch}

    return _Reader()


def _float_nodes(proto, keep_last_float: bool, exclude_nodes: Sequence[str]) -> List[str]:
    """Names of the nodes to leave in float32: `exclude_nodes` (checked against the graph) and, with
    `keep_last_float`, the Conv that writes the graph's first output."""
    names = [n.name for n in proto.graph.node]
    unknown = [n for n in exclude_nodes if n not in names]
    if unknown:
        raise ValueError(f"exclude_nodes {unknown} are not nodes of the graph (e.g. {names[-3:]})")
    excluded = list(exclude_nodes)
    if keep_last_float:
        output = proto.graph.output[0].name
        last = next((n for n in proto.graph.node if output in n.output), None)
        if last is None or last.op_type != "Conv":
            found = "nothing" if last is None else f"{last.op_type} node {last.name!r}"
            raise ValueError(f"keep_last_float: the graph output {output!r} is written by {found}, not by a Conv "
                             "(the heatmap layer); name the nodes to keep in float with exclude_nodes instead")
        if last.name not in excluded:
            excluded.append(last.name)
    return excluded
