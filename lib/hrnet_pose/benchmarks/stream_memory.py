"""Memory over a long stream: the resident set size of this process while N synthetic frames go through the whole
pipeline (read, detect when needed, pose + decode, tracking with One Euro smoothing, drawing, video writing), sampled
every `every` frames. A leak (a growing queue, per-frame state kept by the tracker, latencies kept per frame) shows
as RSS that keeps rising after the first frames have warmed the caches and allocators up.

    python -m hrnet_pose.benchmarks.stream_memory --frames 10000 [--cfg experiments/synthetic/quickstart.yaml]
        [--weights tests/fixtures/synthetic_quickstart_hrnet.pth] [--size 320 240]

Frames: `synthetic_video` clips of two figures that cross, cycled (each frame a fresh copy, as a decoder would hand
out). Linux only (reads /proc/self/status).
"""

import argparse
import logging
import os
import tempfile
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..apis.estimator import PoseEstimator
from ..apis.pipeline import PipelineItem, StreamPipeline
from ..apis.stream import StreamPoseEstimator
from ..streams.sources import Frame, FrameSource
from ..streams.tracking import PoseTracker
from ..streams.video_writer import VideoWriter

logger = logging.getLogger(__name__)


def rss_mib() -> float:
    """This process's resident set size, MiB (VmRSS)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise OSError("no VmRSS in /proc/self/status (Linux only)")


class _CycledFrames(FrameSource):
    """`num_frames` frames cycled from a short clip, read like a file (every frame, in order)."""

    kind = "video"

    def __init__(self, clip: np.ndarray, num_frames: int, fps: float = 25.0) -> None:
        super().__init__("synthetic")
        self.clip, self.num_frames, self.fps = clip, num_frames, fps
        self.size = (clip.shape[2], clip.shape[1])

    def __iter__(self) -> Iterator[Frame]:
        for i in range(self.num_frames):
            # forwards then backwards, so the figures keep walking without a jump
            k = i % (2 * len(self.clip) - 2)
            k = k if k < len(self.clip) else 2 * len(self.clip) - 2 - k
            yield Frame(i, i / self.fps, self.clip[k].copy())


def measure_stream_rss(cfg: str, weights: Optional[str], num_frames: int = 10000, every: int = 1000,
                       size: Tuple[int, int] = (320, 240), det_interval: int = 5) -> Dict[str, Any]:
    """Run the pipeline over `num_frames` frames; returns {'samples': [(frame, rss MiB)], 'frames', 'persons',
    'latency_ms', 'growth_after_first_sample_mib'}."""
    from ..datasets.synthetic import synthetic_video

    clip, _ = synthetic_video(40, size, num_people=2, seed=3, height=0.5, spread=0.25)
    estimator = PoseEstimator.from_config(cfg, weights, device="cpu")
    stream = StreamPoseEstimator(estimator, det_interval=det_interval,
                                 tracker=PoseTracker(estimator.keypoint_set.sigmas, smooth=True))
    samples: List[Tuple[int, float]] = [(0, rss_mib())]
    persons = [0]
    with tempfile.TemporaryDirectory() as tmp:
        writer = VideoWriter(os.path.join(tmp, "out.mp4"), 25.0, size)

        def finish(item: PipelineItem) -> bool:
            writer.write(item.result.plot(item.frame.image))
            persons[0] += len(item.result)
            if (item.frame.index + 1) % every == 0:
                samples.append((item.frame.index + 1, rss_mib()))
                logger.info("frame %d: RSS %.1f MiB", *samples[-1])
            return False

        try:
            stats = StreamPipeline(stream, _CycledFrames(clip, num_frames)).run(finish)
        finally:
            writer.close()
    after_warmup = [rss for _, rss in samples[1:]]
    return {"samples": samples, "frames": stats.frames, "persons": persons[0],
            "latency_ms": {"mean": stats.mean_latency_ms, "max": stats.latency_max_ms},
            "growth_after_first_sample_mib": (after_warmup[-1] - after_warmup[0]) if after_warmup else 0.0}


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.normpath(os.path.join(here, "..", "..", ".."))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cfg", default=os.path.join(repo, "experiments", "synthetic", "quickstart.yaml"))
    p.add_argument("--weights", default=os.path.join(repo, "tests", "fixtures", "synthetic_quickstart_hrnet.pth"))
    p.add_argument("--frames", type=int, default=10000)
    p.add_argument("--every", type=int, default=1000)
    p.add_argument("--size", type=int, nargs=2, default=(320, 240))
    args = p.parse_args(argv)
    out = measure_stream_rss(args.cfg, args.weights or None, args.frames, args.every, tuple(args.size))
    logger.info("%d frames, %d persons; RSS MiB by frame: %s; growth after frame %d: %+.1f MiB; latency mean %.1f "
                "ms, max %.1f ms", out["frames"], out["persons"],
                ", ".join(f"{f}: {r:.1f}" for f, r in out["samples"]), args.every,
                out["growth_after_first_sample_mib"], out["latency_ms"]["mean"], out["latency_ms"]["max"])
    return out


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
