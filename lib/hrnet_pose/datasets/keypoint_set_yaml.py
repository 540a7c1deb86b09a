"""A keypoint-set yaml written from data (`tools/make_keypoint_set.py`, `tools/convert.py`): names and skeleton from a
COCO-format category, flip pairs guessed from left/right in the names (or from a YOLO `flip_idx`), sigmas left for the
user with the default stated. The text loads with `keypoints.load_keypoint_set`.
"""

import json
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..keypoints import DEFAULT_SIGMA

_SIDE = re.compile(r"left|right", re.IGNORECASE)
_TOKEN = re.compile(r"(^|[_\-\s.])(l|r|lt|rt)(?=$|[_\-\s.])", re.IGNORECASE)
_CAMEL = re.compile(r"^([lr])(?=[A-Z])")
_SWAP = {"l": "r", "r": "l", "lt": "rt", "rt": "lt"}


def _same_case(word: str, like: str) -> str:
    if like.isupper():
        return word.upper()
    if like[:1].isupper():
        return word.capitalize()
    return word


def mirror_names(name: str) -> List[str]:
    """The names the mirror partner of `name` may have: left<->right as words (any case), and l/r, lt/rt as tokens
    (`l_eye`, `eye_L`, `front-l-paw`) or a camel-case prefix (`lShoulder`)."""
    out = []
    words = _SIDE.sub(lambda m: _same_case("right" if m.group(0).lower() == "left" else "left", m.group(0)), name)
    if words != name:
        out.append(words)
    tokens = _TOKEN.sub(lambda m: m.group(1) + _same_case(_SWAP[m.group(2).lower()], m.group(2)), name)
    if tokens != name:
        out.append(tokens)
    camel = _CAMEL.sub(lambda m: "r" if m.group(1) == "l" else "l", name)
    if camel != name:
        out.append(camel)
    return out


def guess_flip_pairs(names: Sequence[str]) -> List[Tuple[int, int]]:
    """Left/right pairs [(i, j), i < j] of keypoints whose names mirror each other; each keypoint in one pair."""
    index = {n: i for i, n in enumerate(names)}
    pairs, used = [], set()
    for i, name in enumerate(names):
        for partner in mirror_names(name):
            j = index.get(partner)
            if j is not None and j != i and i not in used and j not in used:
                pairs.append((min(i, j), max(i, j)))
                used.update((i, j))
                break
    return sorted(pairs)


def _flow(items: Sequence[Any]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in items) + "]"


def keypoint_set_yaml(name: str, names: Sequence[str], skeleton: Sequence[Sequence[int]] = (),
                      flip_pairs: Optional[Sequence[Sequence[int]]] = None, source: str = "",
                      flip_source: str = "") -> str:
    """The yaml text of a keypoint set: `skeleton` 0-based ids, `flip_pairs` None = guessed from the names."""
    names = [str(n) for n in names]
    guessed = flip_pairs is None
    pairs = guess_flip_pairs(names) if guessed else [tuple(p) for p in flip_pairs]
    k = len(names)
    lines = [f"# Keypoint set{' of ' + source if source else ''}, written by tools/make_keypoint_set.py.",
             "# Check the flip pairs (a wrong pair teaches the model to mirror that keypoint), then add sigmas.",
             f"name: {json.dumps(name)}",
             "keypoints:"]
    lines += [f"  - {json.dumps(n)}" for n in names]
    how = flip_source or ("guessed from left/right in the names: check them" if guessed else "")
    lines.append(f"flip_pairs:{'  # ' + how if how else ''}" + ("" if pairs else " []"))
    lines += [f"  - {_flow([names[a], names[b]])}" for a, b in pairs]
    lines.append("skeleton:  # from the file's category" + ("" if skeleton else "\n  []"))
    lines += [f"  - {_flow([names[a], names[b]])}" for a, b in skeleton]
    lines += [
        "# sigmas: one OKS sigma per keypoint, the spread of human labels relative to the object's size (COCO: 0.025",
        "# for eyes to 0.107 for hips). Without them every keypoint uses the default "
        f"{DEFAULT_SIGMA:.4f} (the mean of COCO's)",
        "# and AP is a convention: PCK@0.2 and EPE are printed beside it. Uncomment and edit:",
        f"# sigmas: {_flow([round(DEFAULT_SIGMA, 4)] * k)}",
        "# joints_weight: (optional) one loss weight per keypoint, used with LOSS.USE_DIFFERENT_JOINTS_WEIGHT",
    ]
    return "\n".join(lines) + "\n"


def keypoint_set_yaml_from_coco(data: Dict[str, Any], category: Dict[str, Any], path: str) -> str:
    """The yaml text for a COCO-format file's keypoint category (its 1-based skeleton turned 0-based)."""
    names = [str(n) for n in category.get("keypoints") or []]
    k = len(names)
    skeleton = []
    for edge in category.get("skeleton") or []:
        if isinstance(edge, (list, tuple)) and len(edge) == 2 and all(isinstance(v, int) and 1 <= v <= k
                                                                        for v in edge):
            skeleton.append((edge[0] - 1, edge[1] - 1))
    return keypoint_set_yaml(str(category.get("name") or "keypoints"), names, skeleton,
                             source=f"category '{category.get('name')}' in {path}")
