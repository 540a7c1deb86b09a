"""The long-run check: memory and errors over a long stream. The resident set size of this process while N frames go
through the whole pipeline (read, detect when needed, pose + decode, tracking with One Euro smoothing, drawing, video
writing), sampled every `every` frames. A leak (a growing queue, per-frame state kept by the tracker, latencies kept
per frame) shows as RSS that keeps rising after the first frames have warmed the caches and allocators up; any error
mid-stream (a carried box refused, a lost track) ends the run with it.

    python -m hrnet_pose.benchmarks.stream_memory --frames 10000 [--cfg experiments/synthetic/quickstart.yaml]
        [--weights tests/fixtures/synthetic_quickstart_hrnet.pth | none] [--size 320 240]
        [--max-persons 1 | --det-interval 5 --track] [--detector synthetic|none] [--video CLIP.mp4]

The issue's two settings, with trained-like (the quickstart model on the synthetic clip) and random weights:

    python -m hrnet_pose.benchmarks.stream_memory --frames 10000 --max-persons 1
    python -m hrnet_pose.benchmarks.stream_memory --frames 10000 --det-interval 5 --track
    python -m hrnet_pose.benchmarks.stream_memory --frames 10000 --max-persons 1 --weights none

Frames: `--video` (a real clip, decoded once and played forward and back, looped) or `synthetic_video` clips of two
figures that cross, cycled the same way (each frame a fresh copy, as a decoder would hand out). Detector: the
synthetic figures' own (`datasets.synthetic_detector`, looks at the pixels, so carried boxes, region searches and
re-detection all run) or none (the whole frame is one person). Linux only (reads /proc/self/status).
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
                       size: Tuple[int, int] = (320, 240), det_interval: int = 5, max_persons: Optional[int] = None,
                       track: bool = True, detector: str = "synthetic", video: str = "") -> Dict[str, Any]:
    """Run the pipeline over `num_frames` frames; returns {'samples': [(frame, rss MiB)], 'frames', 'persons',
    'detector_calls', 'region_calls', 'latency_ms', 'growth_after_first_sample_mib'}."""
    if video:
        from ..streams.sources import open_source

        with open_source(video) as source:
            clip = np.stack([frame.image for frame in source])
    else:
        from ..datasets.synthetic import synthetic_video

        clip, _ = synthetic_video(40, size, num_people=2, seed=3, height=0.5, spread=0.25)
    find = None
    if detector == "synthetic":
        from ..datasets.synthetic_detector import SyntheticFigureDetector

        find = SyntheticFigureDetector()
    estimator = PoseEstimator.from_config(cfg, weights, device="cpu", detector=find)
    tracker = PoseTracker(estimator.keypoint_set.sigmas, smooth=True) if track else None
    stream = StreamPoseEstimator(estimator, det_interval=det_interval, tracker=tracker, max_persons=max_persons)
    samples: List[Tuple[int, float]] = [(0, rss_mib())]
    persons = [0]
    height, width = clip.shape[1:3]
    with tempfile.TemporaryDirectory() as tmp:
        writer = VideoWriter(os.path.join(tmp, "out.mp4"), 25.0, (width, height))

        def finish(item: PipelineItem) -> bool:
            writer.write(item.result.plot(item.frame.image))
            persons[0] += len(item.result)
            if (item.frame.index + 1) % every == 0:
                samples.append((item.frame.index + 1, rss_mib()))
                logger.info("frame %d: RSS %.1f MiB, detector on %d frames (%d region searches)", *samples[-1],
                            stream.detector_calls, stream.region_calls)
            return False

        try:
            stats = StreamPipeline(stream, _CycledFrames(clip, num_frames)).run(finish)
        finally:
            writer.close()
    after_warmup = [rss for _, rss in samples[1:]]
    return {"samples": samples, "frames": stats.frames, "persons": persons[0],
            "detector_calls": stream.detector_calls, "region_calls": stream.region_calls,
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
    p.add_argument("--size", type=int, nargs=2, default=(320, 240), help="synthetic clip size (no --video)")
    p.add_argument("--video", default="", help="a real clip to loop instead of the synthetic one")
    p.add_argument("--det-interval", type=int, default=5)
    p.add_argument("--max-persons", type=int, default=None, help="1 = single-person tracking")
    p.add_argument("--track", action="store_true", help="track ids with One Euro smoothing")
    p.add_argument("--detector", choices=["synthetic", "none"], default="synthetic")
    args = p.parse_args(argv)
    weights = None if args.weights.strip().lower() in ("", "none") else args.weights
    out = measure_stream_rss(args.cfg, weights, args.frames, args.every, tuple(args.size), args.det_interval,
                             args.max_persons, args.track or args.max_persons == 1, args.detector, args.video)
    logger.info("%d frames, %d persons, detector on %d frames (%d region searches); RSS MiB by frame: %s; growth "
                "after frame %d: %+.1f MiB; latency mean %.1f ms, max %.1f ms", out["frames"], out["persons"],
                out["detector_calls"], out["region_calls"], ", ".join(f"{f}: {r:.1f}" for f, r in out["samples"]),
                args.every, out["growth_after_first_sample_mib"], out["latency_ms"]["mean"], out["latency_ms"]["max"])
    return out


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
