"""Any COCO-format keypoint file, read as a user's own data: the keypoint category, the tools' quirks, and one check.

COCO-format files from annotation tools differ from the official ones in ways pycocotools does not forgive. Reading a
file here (`read_keypoint_file`) picks the category whose keypoints are trained (the only one with keypoints, or
DATASET.CATEGORY by name), keeps that category's annotations only, and fills in what the tools leave out:
- `area` missing (Label Studio): the box area, as pycocotools' results loader does for detections;
- `iscrowd` / `num_keypoints` missing: 0 / the number of labelled keypoints (v > 0);
- annotation id 0 or repeated ids (Label Studio numbers from 0): renumbered 1..N, because COCOeval reads a matched id
  of 0 as "unmatched" and would count a correct prediction as a false positive.
The official COCO files come through unchanged (one category, nothing missing).

`check_keypoint_data` then names every inconsistency between the keypoint set, MODEL.NUM_JOINTS and the file (names,
flip pairs, sigma and joints_weight counts, keypoint arrays of the wrong length, visibility outside 0/1/2, missing or
empty boxes), each on one line with the file and the annotation id, so a user fixes them all in one go.
"""

import json
import logging
import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import yaml

from ..errors import UserError
from ..keypoints import COCO_NAMES, DEFAULT_SIGMA, KeypointSet

logger = logging.getLogger(__name__)

MAX_LINES_PER_KIND = 10  # problems of one kind listed before "... and N more"
MAKE_SET_COMMAND = "python tools/make_keypoint_set.py {ann} > {name}.yaml"


class DataCheckError(UserError, ValueError):
    """The keypoint set, MODEL.NUM_JOINTS and the annotation files disagree; one line per problem."""

    one_problem_per_line = True

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        head = (f"the data check found {len(self.problems)} problem{'s' if len(self.problems) != 1 else ''} "
                "(each below; fix them all, then run again):")
        super().__init__("\n".join([head] + self.problems))


class CategoryError(UserError, ValueError):
    """The annotation file has no keypoint category, or several and DATASET.CATEGORY does not pick one."""


def _load_json(path: str) -> Dict[str, Any]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        with open(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise CategoryError(f"{path} is not valid json: {err}") from err
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise CategoryError(f"{path} is not a COCO-format annotation file: it needs 'images', 'annotations' and "
                            "'categories' lists")
    return data


def keypoint_categories(data: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The categories that are keypoint categories: those listing keypoint names, else (files whose categories carry
    no names, as Label Studio's) those whose annotations carry keypoints."""
    cats = [c for c in data.get("categories", []) if isinstance(c, dict)]
    named = [c for c in cats if c.get("keypoints")]
    if named:
        return named
    used = {a.get("category_id") for a in data["annotations"] if isinstance(a, dict) and a.get("keypoints")}
    return [c for c in cats if c.get("id") in used]


def choose_category(data: Dict[str, Any], path: str, name: str = "") -> Dict[str, Any]:
    """The category to train: `name` (DATASET.CATEGORY) when given, else the file's only keypoint category."""
    cats = [c for c in data.get("categories", []) if isinstance(c, dict)]
    if name:
        found = [c for c in cats if str(c.get("name")) == name]
        if not found:
            raise CategoryError(f"{path}: DATASET.CATEGORY {name!r} is not a category of the file; its categories: "
                                f"{[c.get('name') for c in cats]}")
        return found[0]
    kp = keypoint_categories(data)
    if len(kp) == 1:
        return kp[0]
    if not kp:
        raise CategoryError(f"{path}: no category has keypoints (no category lists 'keypoints' and no annotation "
                            f"carries them); categories: {[c.get('name') for c in cats]}")
    raise CategoryError(f"{path} has {len(kp)} keypoint categories {[c.get('name') for c in kp]}: set "
                        "DATASET.CATEGORY to the name of the one to train")


def _renumber_needed(anns: List[Dict[str, Any]]) -> bool:
    ids = [a.get("id") for a in anns]
    return any(not isinstance(i, int) or isinstance(i, bool) or i == 0 for i in ids) or len(set(ids)) != len(ids)


def normalize_keypoint_data(data: Dict[str, Any], category: Dict[str, Any], path: str) -> Dict[str, Any]:
    """`data` restricted to `category` (its annotations, that one category) with the gaps filled (module docstring).
    Returns `data` itself when nothing changes (the official files)."""
    cat_id = category.get("id")
    anns = [a for a in data["annotations"] if isinstance(a, dict)]
    only = [a for a in anns if a.get("category_id") == cat_id]
    changed = len(only) != len(data["annotations"]) or len(data.get("categories", [])) != 1
    fixed = []
    filled = 0
    for a in only:
        missing = [k for k in ("area", "iscrowd", "num_keypoints") if k not in a]
        if missing:
            a = dict(a)
            box = a.get("bbox") if isinstance(a.get("bbox"), (list, tuple)) and len(a.get("bbox")) == 4 else None
            if "area" in missing:
                a["area"] = float(box[2] * box[3]) if box else 0.0
            if "iscrowd" in missing:
                a["iscrowd"] = 0
            if "num_keypoints" in missing:
                values = a.get("keypoints") or []
                a["num_keypoints"] = int(sum(1 for v in values[2::3] if isinstance(v, (int, float)) and v > 0))
            filled += 1
        fixed.append(a)
    if _renumber_needed(fixed):
        logger.warning("%s: annotation ids start at 0 or repeat; renumbered 1..%d (COCOeval reads a matched id 0 as "
                       "unmatched)", path, len(fixed))
        fixed = [dict(a, id=i + 1) for i, a in enumerate(fixed)]
        changed = True
    if filled:
        logger.info("%s: %d annotations had no area / iscrowd / num_keypoints: filled in (box area, 0, labelled "
                    "keypoints)", path, filled)
        changed = True
    if not changed:
        return data
    out = dict(data)
    out["annotations"] = fixed
    out["categories"] = [category]
    return out


def load_annotation_json(path: str) -> Dict[str, Any]:
    """A COCO-format json as it is (checked for its three lists), every category kept."""
    return _load_json(path)


def read_keypoint_file(path: str, category_name: str = "") -> Dict[str, Any]:
    """Load a COCO-format keypoint json, pick its keypoint category and normalise it (module docstring)."""
    data = _load_json(path)
    category = choose_category(data, path, category_name)
    return normalize_keypoint_data(data, category, path)


# ---------------------------------------------------------------------------------------------------------------- check
def keypoint_set_problems(path: str) -> List[str]:
    """Every problem of a keypoint-set yaml (not only the first, as `load_keypoint_set` raises): sigma and
    joints_weight counts, flip pairs out of range or not symmetric, unknown names."""
    try:
        with open(path) as f:
            spec = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as err:
        return [f"{path}: cannot be read as yaml: {err}"]
    if not isinstance(spec, dict) or not isinstance(spec.get("keypoints"), list):
        return [f"{path}: missing required key 'keypoints' (a list of keypoint names)"]
    names = [str(n) for n in spec["keypoints"]]
    k = len(names)
    out = []
    if len(set(names)) != k:
        out.append(f"{path}: 'keypoints' has duplicate names: {sorted({n for n in names if names.count(n) > 1})}")
    for key in ("sigmas", "joints_weight"):
        values = spec.get(key)
        if values is not None and (not isinstance(values, list) or len(values) != k):
            got = len(values) if isinstance(values, list) else type(values).__name__
            out.append(f"{path}: '{key}' has {got} values, expected {k} (one per keypoint)")
    used: Dict[int, int] = {}
    for pair in spec.get("flip_pairs") or []:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            out.append(f"{path}: 'flip_pairs' entry {pair!r} is not a pair [left, right]")
            continue
        ids = []
        for v in pair:
            if isinstance(v, str):
                if v not in names:
                    out.append(f"{path}: 'flip_pairs' entry {list(pair)} names unknown keypoint {v!r}")
                    continue
                ids.append(names.index(v))
            elif isinstance(v, int) and not isinstance(v, bool) and 0 <= v < k:
                ids.append(v)
            else:
                out.append(f"{path}: 'flip_pairs' entry {list(pair)} is out of range: ids go from 0 to {k - 1}")
        if len(ids) == 2 and ids[0] == ids[1]:
            out.append(f"{path}: 'flip_pairs' entry {list(pair)} pairs a keypoint with itself")
        for i in ids:
            used[i] = used.get(i, 0) + 1
    for i, count in sorted(used.items()):
        if count > 1:
            out.append(f"{path}: 'flip_pairs' uses keypoint '{names[i]}' in {count} pairs: the left/right swap is "
                       "not symmetric (each keypoint may have one mirror partner)")
    return out


def _limited(kind_lines: Dict[str, List[str]]) -> List[str]:
    out = []
    for lines in kind_lines.values():
        out += lines[:MAX_LINES_PER_KIND]
        if len(lines) > MAX_LINES_PER_KIND:
            out.append(f"... and {len(lines) - MAX_LINES_PER_KIND} more like the one above")
    return out


def annotation_problems(data: Dict[str, Any], path: str, keypoint_set: KeypointSet) -> List[str]:
    """Problems of the annotations against the set: names of the category, keypoints arrays of the wrong length,
    visibility outside 0/1/2, missing or empty boxes (for annotations that would be trained on)."""
    k = keypoint_set.num_keypoints
    kinds: Dict[str, List[str]] = {"names": [], "length": [], "vis": [], "box": []}
    cats = data.get("categories") or [{}]
    json_names = [str(n) for n in cats[0].get("keypoints") or []]
    if json_names and json_names != list(keypoint_set.names):
        diff = [f"{i}: json {a!r} vs set {b!r}" for i, (a, b) in
                enumerate(zip(json_names, keypoint_set.names)) if a != b]
        kinds["names"].append(
            f"{path}: category '{cats[0].get('name')}' names {len(json_names)} keypoints, the keypoint set "
            f"'{keypoint_set.name}' {k}; they differ" + (f" at {'; '.join(diff[:4])}" if diff else " in number"))
    for a in data["annotations"]:
        aid = a.get("id")
        values = a.get("keypoints")
        if values is None:
            continue  # a box without keypoints (another label of the tool): not a keypoint sample
        if not isinstance(values, list) or len(values) != 3 * k:
            n = len(values) if isinstance(values, list) else type(values).__name__
            kinds["length"].append(f"{path}: annotation id {aid}: 'keypoints' has {n} values, expected {3 * k} "
                                   f"({k} keypoints x (x, y, v)) for the set '{keypoint_set.name}'")
            continue
        vis = values[2::3]
        bad = [v for v in vis if v not in (0, 1, 2)]
        if bad:
            kinds["vis"].append(f"{path}: annotation id {aid}: visibility values {sorted(set(map(str, bad)))} outside "
                                "0/1/2 (0 unlabelled, 1 labelled but occluded, 2 visible)")
        if a.get("iscrowd") or not any(isinstance(v, (int, float)) and v > 0 for v in vis):
            continue
        box = a.get("bbox")
        if not isinstance(box, (list, tuple)) or len(box) != 4:
            kinds["box"].append(f"{path}: annotation id {aid}: 'bbox' is missing or not [x, y, w, h] ({box!r}); "
                                "a top-down model crops each instance from its box")
        elif not (box[2] > 0 and box[3] > 0):
            kinds["box"].append(f"{path}: annotation id {aid}: 'bbox' {list(box)} is empty (width and height must "
                                "be > 0)")
    return _limited(kinds)


def unknown_names_problem(data: Dict[str, Any], path: str) -> Optional[str]:
    """With DATASET.KEYPOINT_SET empty (COCO-17 assumed): the message that says the file's category has other
    keypoint names and gives the command that writes their set, or None when the names are COCO's (or absent)."""
    cats = data.get("categories") or [{}]
    names = [str(n) for n in cats[0].get("keypoints") or []]
    if not names or tuple(names) == COCO_NAMES:
        return None
    cat = str(cats[0].get("name") or "my_set")
    return (f"{path}: DATASET.KEYPOINT_SET is empty, so the 17 COCO keypoints are assumed, but category '{cat}' names "
            f"{len(names)} keypoints of its own {names[:6]}{' ...' if len(names) > 6 else ''}. Write its keypoint set "
            f"with `{MAKE_SET_COMMAND.format(ann=path, name=cat)}`, check its flip pairs and sigmas, then set "
            f"DATASET.KEYPOINT_SET {cat}.yaml and MODEL.NUM_JOINTS {len(names)}")


def _names_only_set(path: str) -> Optional[KeypointSet]:
    """The keypoint names of a yaml that does not load as a set (no flips, default sigmas), or None."""
    try:
        with open(path) as f:
            spec = yaml.safe_load(f) or {}
        names = tuple(str(n) for n in spec["keypoints"])
    except (OSError, yaml.YAMLError, TypeError, KeyError):
        return None
    return KeypointSet(name=str(spec.get("name") or os.path.basename(path)), names=names, flip_pairs=(),
                       sigmas=np.full(len(names), DEFAULT_SIGMA), skeleton=(), upper_body_ids=())


def check_keypoint_data(data: Dict[str, Any], path: str, keypoint_set_spec: str, keypoint_set: Optional[KeypointSet],
                        num_joints: Optional[int]) -> List[str]:
    """All problems of one annotation file with the configured set (`keypoint_set` None when its yaml is broken:
    then only the yaml's own problems are listed) and MODEL.NUM_JOINTS (None: not checked)."""
    if not keypoint_set_spec:
        problem = unknown_names_problem(data, path)
        if problem:
            return [problem]
    out = []
    if isinstance(keypoint_set_spec, str) and keypoint_set_spec.endswith((".yaml", ".yml")) \
            and os.path.isfile(keypoint_set_spec):
        out += keypoint_set_problems(keypoint_set_spec)
    if keypoint_set is None:  # a broken yaml: its names still check the file, so every problem is named at once
        keypoint_set = _names_only_set(keypoint_set_spec)
        if keypoint_set is None:
            return out
    if num_joints is not None and int(num_joints) != keypoint_set.num_keypoints:
        out.append(f"MODEL.NUM_JOINTS is {num_joints} but the keypoint set '{keypoint_set.name}' "
                   f"(DATASET.KEYPOINT_SET {keypoint_set_spec!r}) has {keypoint_set.num_keypoints} keypoints")
    return out + annotation_problems(data, path, keypoint_set)

