"""Inference API: `PoseEstimator` (image + boxes -> `PoseResult`), `StreamPoseEstimator` (frames -> tracked poses),
person detectors, pose backends and the model zoo. Frame sources, tracking and the video writer live in
`hrnet_pose.streams`, ONNX export and onnxruntime in `hrnet_pose.deploy`; the names below are re-exported for
convenience.

    from hrnet_pose.apis import PoseEstimator
    estimator = PoseEstimator.from_config("experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml", "w32.pth")
    result = estimator("image.jpg", boxes=[[x1, y1, x2, y2]])   # result.keypoints [N, 17, 2], result.scores [N, 17]

Names are imported on first use, so `import hrnet_pose.apis` stays light.
"""

import importlib
from typing import Any

_EXPORTS = {  # name -> module relative to this package (only this package and rooms below it)
    "PoseEstimator": ".estimator", "InvalidBoxError": ".estimator", "PoseResult": ".result",
    "StreamPoseEstimator": ".stream", "StreamPipeline": ".pipeline", "PoseTracker": "..streams.tracking", "OneEuroFilter": "..streams.tracking",
    "PersonDetector": ".detectors", "build_detector": ".detectors", "open_source": "..streams.sources",
    "TorchBackend": ".backends", "build_backend": ".backends",
    "ResultStream": ".pipeline",  # what PoseEstimator.stream(source) returns
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
