"""The onnxruntime cache never serves a stale graph and never refuses or deletes a good one (issue 25, item 6):
- a changed `forward` (as an upgrade of the package would bring) gives a new entry, whose heatmaps are the new code's;
- the parity check is relative to the heatmaps' scale: a model whose heatmaps reach thousands, where summation order
  alone moves them by more than 1e-4, is cached and runs in onnxruntime;
- a device string onnxruntime cannot take is the caller's error, and the entry stays;
- entries have a new file's ordinary permissions (a shared cache folder is readable by the group)."""

import logging
import os

import numpy as np
import pytest
import torch

from hrnet_pose.config import load_config
from hrnet_pose.deploy import ort_cache
from hrnet_pose.errors import UserError
from hrnet_pose.models import build_model
from hrnet_pose.models.pose_hrnet import PoseHighResolutionNet

from testpaths import TINY_YAML


def _crops(cfg, n=2):
    w, h = (int(v) for v in cfg.MODEL.IMAGE_SIZE)
    return np.random.default_rng(0).standard_normal((n, 3, h, w)).astype(np.float32)


def _torch_heatmaps(cfg, weights, x):
    from hrnet_pose.models import load_weights

    model = build_model(cfg, is_train=False)
    load_weights(model, weights)
    with torch.no_grad():
        return model.eval()(torch.from_numpy(x)).numpy()


def test_a_changed_forward_gets_a_new_entry_with_the_new_graph(cache, tiny_pth, monkeypatch, caplog):
    folder, exports = cache
    cfg = load_config(TINY_YAML)
    x = _crops(cfg)
    with caplog.at_level(logging.INFO, logger="hrnet_pose"):
        before = ort_cache.cached_backend(cfg, tiny_pth)
    # the first run's pause is said (tools/demo.py logs at INFO)
    assert any("exporting the pose network" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records)
    original = PoseHighResolutionNet.forward

    def upgraded(self, images):  # a new release whose forward gives other heatmaps
        return original(self, images) * 0.5 + 0.25

    monkeypatch.setattr(PoseHighResolutionNet, "forward", upgraded)
    after = ort_cache.cached_backend(cfg, tiny_pth)
    assert len(exports) == 2 and after.path != before.path
    # kernels' summation order only (ort_cache.PARITY_ATOL, heatmaps of scale ~1)
    np.testing.assert_allclose(after(x), _torch_heatmaps(cfg, tiny_pth, x), atol=ort_cache.PARITY_ATOL)
    monkeypatch.setattr(PoseHighResolutionNet, "forward", original)
    again = ort_cache.cached_backend(cfg, tiny_pth)  # the old code finds its old entry
    assert again.path == before.path and len(exports) == 2


def test_large_scale_heatmaps_pass_the_relative_parity_check(cache):
    folder, exports = cache
    cfg = load_config(TINY_YAML)
    torch.manual_seed(0)
    model = build_model(cfg, is_train=False).eval()
    with torch.no_grad():  # heatmaps in the thousands, as some foreign checkpoints give them
        model.final_layer.weight.mul_(3e4)
        model.final_layer.bias.mul_(3e4)
    x = _crops(cfg)
    with torch.no_grad():
        reference = model(torch.from_numpy(x)).numpy()
    backend = ort_cache.cached_backend(cfg, None, model=model)
    out = backend(x)
    scale, diff = float(np.abs(reference).max()), float(np.abs(out - reference).max())
    assert scale > 100 and diff > ort_cache.PARITY_ATOL  # the old absolute bound would have refused this graph
    assert diff <= ort_cache.parity_tolerance(scale) and len(exports) == 1
    # a wrong graph is still refused: off by its own scale
    with pytest.raises(ort_cache.OnnxParityError, match="scale"):
        _refuse(model, cfg, folder)


def _refuse(model, cfg, folder):
    class Shifted(torch.nn.Module):  # exports the model's graph, then PyTorch is asked for other heatmaps
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            y = self.inner(x)
            return y if torch.onnx.is_in_onnx_export() else y * 1.01

    ort_cache.write_entry(Shifted(model).eval(), cfg, "k" * 64, str(folder / "wrong.onnx"))


def test_a_bad_device_is_a_user_error_that_keeps_the_entry(cache, tiny_pth):
    folder, exports = cache
    cfg = load_config(TINY_YAML)
    good = ort_cache.cached_backend(cfg, tiny_pth)
    data = open(good.path, "rb").read()
    with pytest.raises(UserError, match="'gpu0' is not valid"):
        ort_cache.cached_backend(cfg, tiny_pth, device="gpu0")
    assert open(good.path, "rb").read() == data and len(exports) == 1
    assert ort_cache.cached_backend(cfg, tiny_pth).path == good.path and len(exports) == 1


def test_entries_have_ordinary_permissions(cache, tiny_pth):
    folder, _ = cache
    umask = os.umask(0o022)
    os.umask(umask)
    backend = ort_cache.cached_backend(load_config(TINY_YAML), tiny_pth)
    assert os.stat(backend.path).st_mode & 0o777 == 0o666 & ~umask
    assert [p for p in os.listdir(folder)] == [os.path.basename(backend.path)]  # no staging file left
