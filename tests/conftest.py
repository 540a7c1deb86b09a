import os
import sys

import pytest
import torch

# tests/testpaths.py (the paths every test module uses) is importable from every test folder
if os.path.dirname(os.path.abspath(__file__)) not in sys.path:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from testpaths import FIXTURES, REPO  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))
# Freshly initialised deep networks in eval mode (BN running stats 0/1) shrink activations into the denormal range,
# which is 10-100x slower on x86 CPUs; flushing them to zero changes no result at the tolerances used here.
torch.set_flush_denormal(True)


@pytest.fixture()
def one_thread():
    """One torch thread: on a busy 2-core machine two OpenMP threads per process are much slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session", autouse=True)
def _onnx_cache(tmp_path_factory):
    """The onnxruntime cache that backend 'auto' fills on a CPU lives in this session's temporary folder, never in
    the user's ~/.cache; one folder for the session, so a weights file exported once is reused across tests."""
    patch = pytest.MonkeyPatch()
    patch.setenv("HRNET_POSE_CACHE", str(tmp_path_factory.mktemp("onnx_cache")))
    yield
    patch.undo()


@pytest.fixture(scope="session")
def fixtures_dir() -> str:
    return FIXTURES


@pytest.fixture(scope="session")
def repo_root() -> str:
    return REPO


@pytest.fixture(scope="session")
def tiny_official():
    """Official tiny HRNet: cfg yaml, state dict, input and outputs (see tests/fixtures/SOURCES.md)."""
    return torch.load(os.path.join(FIXTURES, "official_hrnet_tiny_a.pt"), weights_only=True)


@pytest.fixture()
def tiny_cfg_path(tmp_path, tiny_official) -> str:
    path = tmp_path / "tiny.yaml"
    path.write_text(tiny_official["cfg_yaml"])
    return str(path)


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU; skipped when torch.cuda.is_available() is False")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
