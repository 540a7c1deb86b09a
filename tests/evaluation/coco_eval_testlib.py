"""What the COCO evaluation tests share: the real-COCO fixture files (as Paths) and the official OKS-NMS threshold.

`from coco_eval_testlib import ...`: a uniquely named module (pytest puts this folder on sys.path for its tests)."""

from pathlib import Path

import testpaths

FIX = Path(testpaths.FIXTURES)
VAL_ANN = Path(testpaths.MINI_VAL_ANN)
ALL_ANN = Path(testpaths.MINI, "annotations", "person_keypoints_mini.json")
PEER = Path(testpaths.MINI, "peer_results")

OFFICIAL_OKS_THRE = 0.9  # TEST.OKS_THRE of the official COCO yamls, which made the reference numbers
