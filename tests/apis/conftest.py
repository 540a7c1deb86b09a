import json
import os
import shutil

import pytest
import torch

from hrnet_pose.apis import zoo

from testpaths import FIXTURES


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> str:
    """The official tiny model's state dict saved alone, the form of an official release `.pth`."""
    path = str(tmp_path_factory.mktemp("weights") / "official_hrnet_tiny_a.pth")
    torch.save(torch.load(os.path.join(FIXTURES, "official_hrnet_tiny_a.pt"), weights_only=True)["state_dict"], path)
    return path


@pytest.fixture(scope="session")
def coco_val_root(tmp_path_factory) -> str:
    """tests/fixtures/coco_real_mini (val2017 part) copied into the official data/coco layout."""
    src = os.path.join(FIXTURES, "coco_real_mini")
    root = tmp_path_factory.mktemp("data") / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "images" / "val2017").mkdir(parents=True)
    shutil.copy(os.path.join(src, "annotations", "person_keypoints_mini_val2017.json"),
                root / "annotations" / "person_keypoints_val2017.json")
    with open(root / "annotations" / "person_keypoints_val2017.json") as f:
        for image in json.load(f)["images"]:
            shutil.copy(os.path.join(src, "images", image["file_name"]), root / "images" / "val2017")
    return str(root)


@pytest.fixture()
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache and no offline switch."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(zoo.OFFLINE_ENV, raising=False)
    return os.path.join(str(tmp_path / "torch"), "hub", "checkpoints")
