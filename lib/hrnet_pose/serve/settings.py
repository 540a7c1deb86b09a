"""`ServeSettings`: everything the app needs besides the estimator, as plain typed fields (the CLI fills them from
its flags; tests build them directly)."""

from dataclasses import dataclass, field
from typing import Dict, Optional

from ..apis.stream import DEFAULT_MIN_POSE_SCORE

API_KEY_ENV = "HRNET_POSE_API_KEY"


@dataclass
class ServeSettings:
    model_name: str = "model"  # shown in every answer and in /v1/models
    model_source: Dict[str, str] = field(default_factory=dict)  # config / weights it came from
    api_key: str = ""  # '' = no key needed
    cors_origin: str = ""  # '' = CORS off (same-origin only)
    max_body_bytes: int = 10 << 20
    max_pixels: int = 40_000_000  # checked from the image header, before decoding
    max_batch: int = 32  # persons gathered into one network batch
    batch_window_ms: float = 5.0  # how long the first request of a batch waits for others
    max_queue: int = 64  # images in flight before 503
    retry_after_s: int = 1
    kpt_thr: float = 0.3  # default for `visible` and drawing
    # WebSocket streams (the page): detection schedule, tracking, smoothing
    det_interval: int = 5
    min_pose_score: float = DEFAULT_MIN_POSE_SCORE
    detect_on_loss: bool = True
    max_persons: Optional[int] = None
    stream_flip_test: bool = False  # live streams: flip test doubles the pose cost for ~+1 AP; off
    smooth: bool = True
    smooth_min_cutoff: Optional[float] = None
    smooth_beta: Optional[float] = None
