"""The repository's paths that tests use, in one place: `from testpaths import FIXTURES, TINY_YAML`.

tests/conftest.py puts this folder on sys.path. A uniquely named module, not `from conftest import ...`: there are
several conftest.py files, and which one such an import finds depends on sys.path.
"""

import os

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)
FIXTURES = os.path.join(TESTS, "fixtures")
TINY_YAML = os.path.join(FIXTURES, "official_hrnet_tiny_a.yaml")  # the official tiny HRNet (fixtures/SOURCES.md)
MINI = os.path.join(FIXTURES, "coco_real_mini")  # real COCO images and annotations, official layout in miniature
MINI_VAL_ANN = os.path.join(MINI, "annotations", "person_keypoints_mini_val2017.json")
MINI_DETS = os.path.join(MINI, "person_detection_results", "COCO_val2017_detections_AP_H_56_person_mini.json")
EXPERIMENTS = os.path.join(REPO, "experiments")
OFFICIAL_W32_YAML = os.path.join(EXPERIMENTS, "coco", "hrnet", "w32_256x192_adam_lr1e-3.yaml")
QUICKSTART_YAML = os.path.join(EXPERIMENTS, "synthetic", "quickstart.yaml")
QUICKSTART_WEIGHTS = os.path.join(FIXTURES, "synthetic_quickstart_hrnet.pth")
