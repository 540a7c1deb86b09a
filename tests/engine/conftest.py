"""Fixtures for the engine tests: a tiny synthetic COCO-format dataset (and a copy with an unreadable image) and one
intra-op thread."""

import glob
import os
import shutil

import pytest

from hrnet_pose.datasets.synthetic import generate_synthetic_coco


@pytest.fixture(scope="session")
def tiny_synthetic_root(tmp_path_factory) -> str:
    """6 train and 5 val images of 128x128 (about 2 people each), generated once per session."""
    root = str(tmp_path_factory.mktemp("synthetic") / "data")
    generate_synthetic_coco(root, num_train=6, num_val=5, seed=3, image_size=(128, 128), max_people=3)
    return root


@pytest.fixture()
def root_with_bad_image(tiny_synthetic_root, tmp_path):
    """A copy of the tiny synthetic dataset whose first training image (by name) is not a JPEG: (root, its name)."""
    root = str(tmp_path / "data")
    shutil.copytree(tiny_synthetic_root, root)
    first = sorted(glob.glob(os.path.join(root, "images", "train", "*.jpg")))[0]
    with open(first, "wb") as f:
        f.write(b"not a jpeg")
    return root, os.path.basename(first)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """One intra-op thread: on a busy 2-core machine two OpenMP threads spin against each other (30x slower)."""
    yield
