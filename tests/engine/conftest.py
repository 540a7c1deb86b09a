"""Fixtures for the engine tests: a tiny synthetic COCO-format dataset and one intra-op thread."""

import pytest

from hrnet_pose.datasets.synthetic import generate_synthetic_coco


@pytest.fixture(scope="session")
def tiny_synthetic_root(tmp_path_factory) -> str:
    """6 train and 5 val images of 128x128 (about 2 people each), generated once per session."""
    root = str(tmp_path_factory.mktemp("synthetic") / "data")
    generate_synthetic_coco(root, num_train=6, num_val=5, seed=3, image_size=(128, 128), max_people=3)
    return root


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """One intra-op thread: on a busy 2-core machine two OpenMP threads spin against each other (30x slower)."""
    yield
