"""Deployment: ONNX export with a parity check (`export`), the onnxruntime pose backend (`onnx_backend`) and static
int8 quantisation (`quantize`). Rests on models and config; imported by the inference API and the benchmarks, never
by the training engine."""
