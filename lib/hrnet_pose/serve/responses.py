"""What the routes answer: `PoseResult` -> JSON persons, the model description and the protocol line.

A person: `bbox` [x, y, w, h] (COCO's order, the box the pose was estimated in), `box_score`, `score` (box score x
mean keypoint score above 0.2, as COCO evaluation rescores it), `keypoints` [[x, y, score], ...] in image pixels
(never zeroed: `visible` marks which reach `kpt_thr`), and `track_id` on streams.
"""

from typing import Any, Dict, List, Optional

import numpy as np

from ..apis.estimator import PoseEstimator
from ..apis.result import PoseResult
from ..geometry import xyxy_to_xywh


def persons_json(result: PoseResult, kpt_thr: float, digits: Optional[int] = None) -> List[Dict[str, Any]]:
    """One dict per person (module docstring); `digits` rounds coordinates (streams), None keeps float32 exactly."""
    def num(v: Any) -> float:
        return round(float(v), digits) if digits is not None else float(v)

    kpts = np.concatenate([result.keypoints, result.scores[..., None]], axis=2) if len(result) else []
    person_scores = result.instance_scores()
    out = []
    for i in range(len(result)):
        person = {"bbox": [num(v) for v in xyxy_to_xywh(result.boxes[i])],
                  "box_score": float(result.box_scores[i]), "score": float(person_scores[i]),
                  "keypoints": [[num(x), num(y), round(float(s), 4) if digits is not None else float(s)]
                                for x, y, s in kpts[i]],
                  "visible": [bool(s >= kpt_thr) for s in result.scores[i]]}
        if result.track_ids is not None:
            person["track_id"] = int(result.track_ids[i])
        out.append(person)
    return out


def timings_json(timings: Dict[str, float]) -> Dict[str, float]:
    return {k: round(float(v), 3) for k, v in timings.items()}


def describe_boxes(estimator: PoseEstimator, given: bool) -> str:
    if given:
        return "boxes given by the client"
    if estimator.detector is None:
        return "no detector: the whole image is one person"
    return f"boxes from {estimator.detector!r}"


def protocol_line(estimator: PoseEstimator, model: str, flip_test: Optional[bool], boxes_given: bool) -> str:
    """How the numbers were made: model, runtime, input size, decoder, flip test, where the boxes came from."""
    flip = estimator.flip_test if flip_test is None else bool(flip_test)
    w, h = estimator.image_size
    return (f"{model} in {estimator.backend.name}, input {w}x{h}, decoder {estimator.codec.decoder}, flip test "
            f"{'on' if flip else 'off'}; {describe_boxes(estimator, boxes_given)}")


def model_json(estimator: PoseEstimator, model: str, source: Dict[str, str]) -> Dict[str, Any]:
    """`GET /v1/models`'s entry for the loaded model: name, where it came from, runtime, input, keypoint set."""
    ks = estimator.keypoint_set
    return {"name": model, **source, "backend": estimator.backend.name,
            "input_size": {"width": estimator.image_size[0], "height": estimator.image_size[1]},
            "decoder": estimator.codec.decoder, "flip_test": estimator.flip_test,
            "detector": None if estimator.detector is None else repr(estimator.detector),
            "keypoint_set": {"name": ks.name, "names": list(ks.names), "skeleton": [list(p) for p in ks.skeleton],
                             "flip_pairs": [list(p) for p in ks.flip_pairs]}}


def image_result_json(result: PoseResult, estimator: PoseEstimator, model: str, image_shape: tuple,
                      kpt_thr: float, flip_test: Optional[bool], boxes_given: bool) -> Dict[str, Any]:
    """The JSON answer for one image."""
    return {"model": model, "protocol": protocol_line(estimator, model, flip_test, boxes_given),
            "keypoint_names": list(estimator.keypoint_set.names),
            "image": {"width": int(image_shape[1]), "height": int(image_shape[0])},
            "persons": persons_json(result, kpt_thr), "timings_ms": timings_json(result.timings)}
