import pytest
import torch

from hrnet_pose.deploy import ort_cache


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """One intra-op thread: on a busy 2-core machine two OpenMP threads spin against each other."""
    yield


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    """An empty cache folder of this test, and a list that records every export into it."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(ort_cache.CACHE_ENV, str(folder))
    exports = []
    real = ort_cache.export_onnx

    def counting(*args, **kwargs):
        exports.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(ort_cache, "export_onnx", counting)
    return folder, exports


@pytest.fixture()
def tiny_pth(tmp_path, tiny_official) -> str:
    path = str(tmp_path / "tiny.pth")
    torch.save(tiny_official["state_dict"], path)
    return path
