"""int8 static quantisation (apis.quantize): the quantised graph keeps the float graph's contract and stays close to
its heatmaps; bad calibration input is refused with a message that says what is expected."""

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (optional: pip install onnxruntime)")
pytest.importorskip("onnx", reason="onnx is not installed (optional: pip install onnx)")

from hrnet_pose.deploy.export import export_onnx  # noqa: E402
from hrnet_pose.deploy.onnx_backend import OnnxRuntimeBackend  # noqa: E402
from hrnet_pose.deploy.quantize import quantize_onnx_static  # noqa: E402
from hrnet_pose.config import load_config  # noqa: E402
from hrnet_pose.benchmarks.cpu import calibrate_batchnorm, fixture_crops  # noqa: E402
from hrnet_pose.models import build_model  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory, fixtures_dir):
    torch.manual_seed(0)
    cfg = load_config(f"{fixtures_dir}/official_hrnet_tiny_a.yaml")
    crops = fixture_crops(f"{fixtures_dir}/coco_real_mini", image_size=(64, 96))
    model = calibrate_batchnorm(build_model(cfg), crops)
    path = export_onnx(model, str(tmp_path_factory.mktemp("q") / "tiny.onnx"), (64, 96))
    return path, crops


def test_int8_model_keeps_the_contract_and_stays_close(exported, tmp_path):
    path, crops = exported
    int8 = quantize_onnx_static(path, str(tmp_path / "tiny_int8.onnx"), crops)
    ref = OnnxRuntimeBackend(path, num_threads=1)(crops)
    out = OnnxRuntimeBackend(int8, num_threads=1)(crops)
    assert out.shape == ref.shape and out.dtype == np.float32
    # int8 is approximate, and an untrained network quantises worse than a trained one (measured here: ~16% of the
    # heatmap range at most, correlation 0.98); the bounds only say it is the same function, quantised
    rel = np.abs(out - ref).max() / np.abs(ref).max()
    assert 0 < rel < 0.3
    assert np.corrcoef(out.ravel(), ref.ravel())[0, 1] > 0.95


def test_bad_calibration_is_refused(exported, tmp_path):
    path, crops = exported
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        quantize_onnx_static(path, str(tmp_path / "x.onnx"), crops[0])
    with pytest.raises(ValueError, match="valid: \\['minmax'"):
        quantize_onnx_static(path, str(tmp_path / "x.onnx"), crops, method="kl")
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        quantize_onnx_static(str(tmp_path / "nope.onnx"), str(tmp_path / "x.onnx"), crops)


def _output_producer(path):
    import onnx

    graph = onnx.load(path).graph
    producers = {out: node for node in graph.node for out in node.output}
    return producers[graph.output[0].name], producers


def test_keep_last_float_leaves_the_heatmap_layer_in_float(exported, tmp_path):
    path, crops = exported
    plain = quantize_onnx_static(path, str(tmp_path / "plain.onnx"), crops[:4])
    assert _output_producer(plain)[0].op_type == "DequantizeLinear"  # the heatmaps are int8 values, dequantised
    kept = quantize_onnx_static(path, str(tmp_path / "kept.onnx"), crops[:4], keep_last_float=True)
    last, producers = _output_producer(kept)
    assert last.op_type == "Conv"
    assert last.input[1] not in producers  # a float initialiser, not a dequantised int8 weight
    assert producers[last.input[0]].op_type == "DequantizeLinear"  # its input activation is still int8
    out = OnnxRuntimeBackend(kept, num_threads=1)(crops)
    assert out.shape == OnnxRuntimeBackend(path, num_threads=1)(crops).shape
    with pytest.raises(ValueError, match="not nodes of the graph"):
        quantize_onnx_static(path, str(tmp_path / "x.onnx"), crops[:4], exclude_nodes=["/model/nope/Conv"])
