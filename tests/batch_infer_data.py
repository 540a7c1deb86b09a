"""Small data for the batch inference tests (tests/apis/test_batch_infer.py, tests/apis/test_batch_ray.py,
tests/tools/test_infer_tool.py): synthetic stick-figure images made by the project's own generator, the quickstart
model trained on them (tests/fixtures/synthetic_quickstart_hrnet.pth), and the arguments both tools share."""

import json
import os
from typing import List

from testpaths import QUICKSTART_WEIGHTS, QUICKSTART_YAML

NUM_IMAGES = 14


def make_synthetic(root: str, num_images: int = NUM_IMAGES) -> dict:
    """{images: folder, dets: detections json, ann: COCO json} of `num_images` synthetic 128x96 images (1-3 persons)
    under `root`."""
    from hrnet_pose.datasets.synthetic import DETECTION_FILE, generate_synthetic_coco

    generate_synthetic_coco(root, 0, num_images, seed=3, image_size=(128, 96), max_people=3)
    return {"images": os.path.join(root, "images", "val"),
            "dets": os.path.join(root, "person_detection_results", DETECTION_FILE),
            "ann": os.path.join(root, "annotations", "person_keypoints_val.json")}


def model_args() -> List[str]:
    return ["--config", QUICKSTART_YAML, "--weights", QUICKSTART_WEIGHTS, "--device", "cpu", "--no-progress"]


def infer_args(data: dict, out_dir: str, *extra: str) -> List[str]:
    """tools/infer.py on the synthetic folder with its detections file as boxes: small shards and chunks, so a few
    images make several of each."""
    return [data["images"], "--boxes", data["dets"], "--out-dir", str(out_dir), "--shard-size", "4",
            "--batch-images", "3", "--max-batch", "4"] + model_args() + list(extra)


def load(path: str):
    with open(path) as f:
        return json.load(f) if path.endswith(".json") else [json.loads(line) for line in f if line.strip()]
