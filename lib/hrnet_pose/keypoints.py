"""Keypoint sets: names, left/right flip pairs, OKS sigmas, skeleton and drawing colours.

Two sets are built in: COCO-17 (the numbers are those of the COCO keypoint task and of the official HRNet
`lib/dataset/coco.py`) and MPII-16 (Andriluka et al., CVPR 2014; joint order, flip pairs and upper body of the official
`lib/dataset/mpii.py`). Other sets are defined in a yaml file with the keys ``name``, ``keypoints`` (list of names),
``flip_pairs`` (list of [i, j] or of [name, name]), ``sigmas`` (one per keypoint; optional: without them every
keypoint gets `DEFAULT_SIGMA` and `sigmas_given` is False, so OKS AP is a convention), ``skeleton`` (list of [i, j] or
[name, name], 0-based), optional ``upper_body`` (ids or names; the rest are lower body), ``colors`` (one [r, g, b] per
keypoint), ``joints_weight`` (one per keypoint) and ``draw_small`` (ids or names drawn with smaller dots and thinner
lines, e.g. face and hands).

Built-in sets shipped as such yaml files in `hrnet_pose/keypoint_sets/` (`PACKAGED_SETS`): 'coco_wholebody' (133),
'crowdpose' (14) and 'ap10k' (17 animal keypoints); 'ochuman' is COCO-17.
"""

import os
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import yaml

from .errors import UserError


class KeypointSetError(UserError, ValueError):
    """A keypoint-set yaml (DATASET.KEYPOINT_SET) is missing, malformed or inconsistent."""


def flip_permutation(flip_pairs: Sequence[Sequence[int]], num_keypoints: int) -> np.ndarray:
    """Left/right pairs [[a, b], ...] -> the permutation [K] that swaps each pair (identity elsewhere)."""
    index = np.arange(num_keypoints)
    for a, b in flip_pairs:
        index[a], index[b] = b, a
    return index


@dataclass(frozen=True)
class KeypointSet:
    """An immutable description of one keypoint layout."""

    name: str
    names: Tuple[str, ...]
    flip_pairs: Tuple[Tuple[int, int], ...]
    sigmas: np.ndarray
    skeleton: Tuple[Tuple[int, int], ...]
    upper_body_ids: Tuple[int, ...]
    colors: Tuple[Tuple[int, int, int], ...] = field(default=())
    joints_weight: Optional[np.ndarray] = None
    small_ids: Tuple[int, ...] = ()  # drawn small (face and hands of the whole-body set)
    sigmas_given: bool = True  # False: the yaml had no sigmas and every keypoint got DEFAULT_SIGMA

    @property
    def num_keypoints(self) -> int:
        return len(self.names)

    @property
    def lower_body_ids(self) -> Tuple[int, ...]:
        upper = set(self.upper_body_ids)
        return tuple(i for i in range(self.num_keypoints) if i not in upper)

    @property
    def flip_index(self) -> np.ndarray:
        """Permutation `p` such that `flipped[:, p]` swaps every left/right pair; `p[p] == identity`."""
        return flip_permutation(self.flip_pairs, self.num_keypoints)

    def weights(self) -> np.ndarray:
        """Per-keypoint loss weights, [K, 1] float32 (ones unless the set defines them)."""
        if self.joints_weight is None:
            return np.ones((self.num_keypoints, 1), dtype=np.float32)
        return np.asarray(self.joints_weight, dtype=np.float32).reshape(-1, 1)


COCO_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)

# Official HRNet order of the pairs (lib/dataset/coco.py flip_pairs).
COCO_FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))

# COCO keypoint OKS sigmas (cocodataset.org/#keypoints-eval), also the defaults of the official oks_iou.
COCO_SIGMAS = np.array(
    [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89],
    dtype=np.float64,
) / 10.0

# The COCO annotation skeleton, converted from 1-based to 0-based ids.
COCO_SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)

COCO_UPPER_BODY_IDS = tuple(range(11))

# The OKS sigma of a keypoint whose set gives none: the mean of COCO's 17 (0.0669), a mid-sized body joint's tolerance.
DEFAULT_SIGMA = float(COCO_SIGMAS.mean())

# Official joints_weight of coco.py (used only when LOSS.USE_DIFFERENT_JOINTS_WEIGHT is true).
COCO_JOINTS_WEIGHT = np.array(
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5], dtype=np.float32
)

# Left side warm, right side cold, the rest green (RGB): easy to tell a mirrored skeleton at a glance.
LEFT_COLOR, RIGHT_COLOR, CENTRE_COLOR = (255, 128, 0), (0, 128, 255), (0, 255, 0)


def side_colors(names: Sequence[str]) -> Tuple[Tuple[int, int, int], ...]:
    """RGB per keypoint from its name: left_* / l_* orange, right_* / r_* blue, the rest green; () when no name
    says a side (the drawing then picks an evenly spaced palette)."""
    lower = [n.lower() for n in names]
    left = [n.startswith(("left", "l_")) or "_left" in n for n in lower]
    right = [n.startswith(("right", "r_")) or "_right" in n for n in lower]
    if not any(left) and not any(right):
        return ()
    return tuple(LEFT_COLOR if l else RIGHT_COLOR if r else CENTRE_COLOR for l, r in zip(left, right))


COCO17 = KeypointSet(name="coco", names=COCO_NAMES, flip_pairs=COCO_FLIP_PAIRS, sigmas=COCO_SIGMAS,
                     skeleton=COCO_SKELETON, upper_body_ids=COCO_UPPER_BODY_IDS, colors=side_colors(COCO_NAMES),
                     joints_weight=COCO_JOINTS_WEIGHT)


# MPII-16 in the order of the official annotations and of `gt_valid.mat` (0 r_ankle ... 15 l_wrist).
MPII_NAMES = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "pelvis", "thorax",
    "upper_neck", "head_top", "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow",
    "left_wrist",
)

# Official lib/dataset/mpii.py flip_pairs and upper_body_ids (the rest, ids 0-6, is the lower body).
MPII_FLIP_PAIRS = ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))
MPII_UPPER_BODY_IDS = (7, 8, 9, 10, 11, 12, 13, 14, 15)

# MPII has no OKS sigmas of its own; MMPose's dataset info adapts the COCO ones (configs/_base_/datasets/mpii.py).
# They matter only where OKS is computed on MPII-16 poses (OKS-NMS of the demo); PCKh does not use them.
MPII_SIGMAS = np.array(
    [0.089, 0.083, 0.107, 0.107, 0.083, 0.089, 0.026, 0.026, 0.026, 0.026, 0.062, 0.072, 0.179, 0.179, 0.072, 0.062],
    dtype=np.float64,
)

# MMPose's MPII skeleton: legs through the pelvis, spine to the head top, arms from the upper neck.
MPII_SKELETON = (
    (0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9), (8, 12), (12, 11), (11, 10),
    (8, 13), (13, 14), (14, 15),
)

# The same 16 joints as the official MPII ground truth file (gt_valid.mat, `dataset_joints`) names them.
MPII_MAT_NAMES = ("rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thor", "neck", "head", "rwri", "relb",
                  "rsho", "lsho", "lelb", "lwri")

MPII16 = KeypointSet(name="mpii", names=MPII_NAMES, flip_pairs=MPII_FLIP_PAIRS, sigmas=MPII_SIGMAS,
                     skeleton=MPII_SKELETON, upper_body_ids=MPII_UPPER_BODY_IDS, colors=side_colors(MPII_NAMES))

BUILTIN_SETS = {"coco": COCO17, "coco17": COCO17, "mpii": MPII16, "mpii16": MPII16, "ochuman": COCO17}

# Sets defined by a yaml file in the package (keypoint_sets/<name>.yaml), loaded on first use.
PACKAGED_SETS = ("coco_wholebody", "crowdpose", "ap10k")
PACKAGED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "keypoint_sets")
_PACKAGED_CACHE: dict = {}


def packaged_set_path(name: str) -> str:
    """The yaml file of the built-in set `name` (one of `PACKAGED_SETS`): a real example of the format."""
    return os.path.join(PACKAGED_DIR, f"{name}.yaml")


def builtin_set_names() -> Tuple[str, ...]:
    """Every name `get_keypoint_set` knows without a file."""
    return tuple(BUILTIN_SETS) + PACKAGED_SETS


def _resolve_ids(items: Sequence, names: Sequence[str], key: str, path: str) -> List:
    """Turn names or ints (possibly nested in pairs) into ints, with errors that name the file and key."""
    def one(v):
        if isinstance(v, str):
            if v not in names:
                raise KeypointSetError(f"{path}: '{key}' names unknown keypoint '{v}'; known: {list(names)}")
            return names.index(v)
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < len(names):
            raise KeypointSetError(f"{path}: '{key}' has {v!r}; expected a keypoint name or an id in [0, {len(names) - 1}]")
        return v

    out = []
    for item in items:
        if isinstance(item, (list, tuple)):
            if len(item) != 2:
                raise KeypointSetError(f"{path}: '{key}' entries must be pairs, got {item!r}")
            out.append((one(item[0]), one(item[1])))
        else:
            out.append(one(item))
    return out


def load_keypoint_set(path: str) -> KeypointSet:
    """Read a keypoint set from a yaml file (format in the module docstring)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"keypoint set file not found: {path}")
    with open(path) as f:
        spec = yaml.safe_load(f) or {}
    if not isinstance(spec, dict) or "keypoints" not in spec:
        raise KeypointSetError(f"{path}: missing required key 'keypoints' (a list of keypoint names)")
    names = [str(n) for n in spec["keypoints"]]
    if len(set(names)) != len(names):
        raise KeypointSetError(f"{path}: 'keypoints' has duplicate names: {names}")
    k = len(names)
    sigmas_given = spec.get("sigmas") is not None
    sigmas = np.asarray(spec["sigmas"] if sigmas_given else [DEFAULT_SIGMA] * k, dtype=np.float64)
    if sigmas.shape != (k,) or not np.all(sigmas > 0):
        raise KeypointSetError(f"{path}: 'sigmas' must be {k} positive numbers (one per keypoint), got {spec['sigmas']}")
    flip_pairs = _resolve_ids(spec.get("flip_pairs", []), names, "flip_pairs", path)
    seen = [i for pair in flip_pairs for i in pair]
    if len(seen) != len(set(seen)):
        raise KeypointSetError(f"{path}: 'flip_pairs' uses a keypoint twice: {flip_pairs}")
    skeleton = _resolve_ids(spec.get("skeleton", []), names, "skeleton", path)
    upper = _resolve_ids(spec.get("upper_body", list(range(k))), names, "upper_body", path)
    colors = spec.get("colors")
    if colors is None:
        colors = side_colors(names)  # left/right from the names, as for the built-in sets
    elif len(colors) != k or any(len(c) != 3 for c in colors):
        raise KeypointSetError(f"{path}: 'colors' must be {k} [r, g, b] triples")
    small = _resolve_ids(spec.get("draw_small", []), names, "draw_small", path)
    joints_weight = spec.get("joints_weight")
    if joints_weight is not None:
        joints_weight = np.asarray(joints_weight, dtype=np.float32)
        if joints_weight.shape != (k,):
            raise KeypointSetError(f"{path}: 'joints_weight' must have {k} numbers")
    return KeypointSet(
        name=str(spec.get("name", os.path.splitext(os.path.basename(path))[0])),
        names=tuple(names),
        flip_pairs=tuple(tuple(p) for p in flip_pairs),
        sigmas=sigmas,
        skeleton=tuple(tuple(p) for p in skeleton),
        upper_body_ids=tuple(upper),
        colors=tuple(tuple(int(v) for v in c) for c in colors),
        joints_weight=joints_weight,
        small_ids=tuple(small),
        sigmas_given=sigmas_given,
    )


def get_keypoint_set(spec: Union[str, KeypointSet, None] = None) -> KeypointSet:
    """`None`, `''` or `'coco'` give COCO-17, `'mpii'` MPII-16, `'ochuman'` COCO-17, `'coco_wholebody'`,
    `'crowdpose'`, `'ap10k'` their packaged sets; a path to a yaml file gives that set; a KeypointSet passes through."""
    if isinstance(spec, KeypointSet):
        return spec
    if spec in (None, ""):
        return COCO17
    if isinstance(spec, str) and spec in BUILTIN_SETS:
        return BUILTIN_SETS[spec]
    if isinstance(spec, str) and spec in PACKAGED_SETS:
        if spec not in _PACKAGED_CACHE:
            _PACKAGED_CACHE[spec] = load_keypoint_set(packaged_set_path(spec))
        return _PACKAGED_CACHE[spec]
    if isinstance(spec, str) and spec.endswith((".yaml", ".yml")):
        return load_keypoint_set(spec)
    raise KeypointSetError(f"unknown keypoint set {spec!r}: use one of {list(builtin_set_names())} or a path to a "
                           ".yaml keypoint-set file")
