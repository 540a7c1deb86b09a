"""Post-training int8 quantisation of an exported pose network with onnxruntime (static, QDQ format).

Convolutions dominate HRNet, and onnxruntime quantises convolutions only statically (`quantize_dynamic` covers
MatMul/Gemm-type ops), so this runs `onnxruntime.quantization.quantize_static`: weights int8 per output channel,
activations uint8 per tensor with ranges calibrated on real normalised crops (min/max, or percentiles), QDQ
format so the CPU provider fuses QuantizeLinear/DequantizeLinear pairs into integer convolutions. `reduce_range`
(7-bit weights) is on by default: x86 CPUs without VNNI multiply u8 x s8 with 16-bit saturating sums, which 8-bit
weights can overflow (the onnxruntime quantisation guide's advice for AVX2).

The result is approximate: its heatmap and keypoint error against the float model must be measured and reported
(`engine.cpu_benchmark` does). Input/output contract unchanged: float32 [N, 3, H, W] -> float32 [N, K, h, w].
"""

import logging
import os
import tempfile
from typing import Iterator, Optional

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
) -> str:
    """Quantise `model_path` to int8 with activation ranges from `calibration` (float32 [N, 3, H, W] normalised
    crops, e.g. 16-64 real persons); writes `out_path` and returns it."""
    try:
        from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                              quant_pre_process, quantize_static)
    except ImportError as err:
        raise UserError("int8 quantisation needs onnxruntime and onnx: pip install onnxruntime onnx") from err
    if not os.path.isfile(model_path):
        raise FileNotFoundError(f"ONNX model not found: {model_path}")
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"calibration method {method!r} is not valid; valid: {list(CALIBRATION_METHODS)}")
    data = np.ascontiguousarray(calibration, dtype=np.float32)
    if data.ndim != 4 or data.shape[1] != 3 or len(data) == 0:
        raise ValueError(f"calibration must be float32 [N, 3, H, W] normalised crops with N >= 1, got {data.shape}")

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches: Iterator[np.ndarray] = iter([data[i:i + batch_size] for i in range(0, len(data),
                                                                                             batch_size)])

        def get_next(self) -> Optional[dict]:
            batch = next(self._batches, None)
            return None if batch is None else {input_name: batch}

    import onnx

    input_name = onnx.load(model_path, load_external_data=False).graph.input[0].name
    calibrate = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                 "entropy": CalibrationMethod.Entropy}[method]
    with tempfile.TemporaryDirectory() as tmp:
        # shape inference and graph clean-up first, as the onnxruntime quantisation tool recommends
        prepared = os.path.join(tmp, "prepared.onnx")
        quant_pre_process(model_path, prepared, skip_symbolic_shape=True)
        quantize_static(prepared, out_path, _Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        reduce_range=reduce_range, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=calibrate)
    logger.info("int8 model written to %s (%s calibration on %d crops, per_channel=%s, reduce_range=%s)", out_path,
                method, len(data), per_channel, reduce_range)
    return out_path
