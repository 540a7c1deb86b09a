"""The live pipeline keeps the newest frame at every stage, and `PoseEstimator.stream` / an iterable `StreamPipeline`.

Live: a slow pose stage (the quickstart network behind a backend that takes 40 ms more per batch) fed a clip played
as a 100 fps camera (`PacedSource`). Asserted on counts and order, never on time: every stage holds at most one
waiting frame, frames go through every stage in capture order (no frame is processed after a newer one finished),
every captured frame is finished or counted as stale at one stage, and a scheduled detection replaced at the pose
stage's input is handed on, so the detector never runs for nothing."""

import threading
import time

import numpy as np
import pytest

from hrnet_pose.apis.estimator import PoseEstimator
from hrnet_pose.apis.pipeline import StreamPipeline
from hrnet_pose.apis.stream import StreamPoseEstimator
from hrnet_pose.datasets.synthetic import synthetic_video
from hrnet_pose.streams.sources import PacedSource, SourceError, open_source
from hrnet_pose.streams.tracking import PoseTracker
from hrnet_pose.streams.video_writer import VideoWriter

from testpaths import QUICKSTART_WEIGHTS, QUICKSTART_YAML

NUM_FRAMES = 40
SIZE = (160, 120)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    frames, _ = synthetic_video(NUM_FRAMES, SIZE, num_people=1, seed=4, height=0.6)
    path = str(tmp_path_factory.mktemp("clip") / "walk.avi")
    with VideoWriter(path, 25.0, SIZE) as writer:
        for frame in frames:
            writer.write(frame)
    return path


class _SlowBackend:
    """A pose runtime slower than the camera: the real network, then `delay_s` more (a bigger model's cost)."""

    def __init__(self, inner, delay_s):
        self.inner, self.delay_s, self.name = inner, delay_s, f"slow {inner.name}"

    def __call__(self, images):
        out = self.inner(images)
        time.sleep(self.delay_s)
        return out


class _Recording(StreamPoseEstimator):
    """The real stream, also noting what each `process` call was given (frame time, scheduled, detections)."""

    def __init__(self, *args, **kwargs):
        self.calls = []
        super().__init__(*args, **kwargs)

    def process(self, image, timestamp, **kwargs):
        self.calls.append((timestamp, kwargs.get("scheduled"), kwargs.get("detections") is not None))
        return super().process(image, timestamp, **kwargs)


def _whole_frame(image):
    h, w = image.shape[:2]
    return np.array([[0.0, 0.0, w - 1.0, h - 1.0]]), np.ones(1)


def test_live_source_newest_frame_wins_at_every_stage(clip):
    est = PoseEstimator.from_config(QUICKSTART_YAML, QUICKSTART_WEIGHTS, device="cpu", detector=_whole_frame)
    est.backend = _SlowBackend(est.backend, 0.04)
    stream = _Recording(est, det_interval=3, tracker=PoseTracker(est.keypoint_set.sigmas), min_pose_score=0.0)
    finished, pending = [], []
    with PacedSource(open_source(clip), fps=100.0) as source:
        pipeline = StreamPipeline(stream, source)
        for item in pipeline:
            finished.append(item.frame.index)
            pending.append(pipeline.pending())
            assert item.result.frame is None  # PipelineItem carries the frame; only estimator.stream attaches it
    stats = pipeline.stats
    # each stage holds at most one waiting frame, and frames move in capture order through every stage
    assert all(n <= 1 for p in pending for n in p.values())
    processed = [round(t * 25.0) for t, _, _ in stream.calls]
    assert processed == sorted(set(processed)) and finished == sorted(set(finished))
    assert set(finished) <= set(processed)
    # the pose stage is slower than the camera: stale frames were replaced at its input, and every captured frame
    # is either finished or counted as stale at exactly one stage
    assert stats.stale["pose"] > 0 and stats.frames == len(finished)
    assert stats.frames + sum(stats.stale.values()) == NUM_FRAMES and stats.dropped == sum(stats.stale.values())
    assert stats.stale["finish"] == len(processed) - len(finished)
    # the schedule holds through the replacements: every frame processed as a scheduled detection had the detector's
    # boxes with it, and the detector ran only for frames that used them
    assert all(has for _, scheduled, has in stream.calls if scheduled)
    assert stream.detector_calls == sum(has for _, _, has in stream.calls) >= 1
    # ... and the schedule counts processed frames, not the camera's: det_interval 3, spaced at least 2 apart (the
    # detect stage predicts the next frame's position while the pose thread may just be taking one)
    assert stream.detector_calls <= len(processed) // 2 + 1
    assert not any(t.name.startswith("pipeline-") for t in threading.enumerate())


def test_a_file_keeps_every_frame_and_iterating_equals_run(clip):
    est = PoseEstimator.from_config(QUICKSTART_YAML, QUICKSTART_WEIGHTS, device="cpu", detector=_whole_frame)

    def results(use_run):
        stream = StreamPoseEstimator(est, det_interval=4, tracker=PoseTracker(est.keypoint_set.sigmas))
        with open_source(clip) as source:
            pipeline = StreamPipeline(stream, source)
            if use_run:
                out = []
                pipeline.run(lambda item: out.append(item) and False)
            else:
                out = list(pipeline)
        return out, pipeline.stats, stream

    by_run, run_stats, _ = results(True)
    by_iter, iter_stats, stream = results(False)
    assert [i.frame.index for i in by_iter] == [i.frame.index for i in by_run] == list(range(NUM_FRAMES))
    for a, b in zip(by_run, by_iter):
        np.testing.assert_array_equal(a.result.keypoints, b.result.keypoints)
        np.testing.assert_array_equal(a.result.track_ids, b.result.track_ids)
    assert iter_stats.frames == run_stats.frames == NUM_FRAMES and iter_stats.stale == {"detect": 0, "pose": 0,
                                                                                         "finish": 0}
    assert stream.detector_calls == NUM_FRAMES // 4 and stream.frames_processed == NUM_FRAMES
    with pytest.raises(RuntimeError, match="runs once"):
        _run_twice(stream, clip)


def _run_twice(stream, clip):
    with open_source(clip) as source:
        pipeline = StreamPipeline(stream, source)
        list(pipeline)
        list(pipeline)


def test_estimator_stream_yields_results_with_their_frames(clip):
    est = PoseEstimator.from_config(QUICKSTART_YAML, QUICKSTART_WEIGHTS, device="cpu", detector=_whole_frame)
    sequential = StreamPoseEstimator(est, det_interval=5, tracker=PoseTracker(est.keypoint_set.sigmas))
    with open_source(clip) as source:
        expected = [(f.index, f.image, sequential.process(f.image, f.timestamp)) for f in source]

    results = est.stream(clip, det_interval=5, track=True)
    got = list(results)
    assert [r.frame.index for r in got] == list(range(NUM_FRAMES))
    for (index, image, want), r in zip(expected, got):
        np.testing.assert_array_equal(r.frame.image, image)
        np.testing.assert_array_equal(r.keypoints, want.keypoints)
        np.testing.assert_array_equal(r.track_ids, want.track_ids)
    assert results.stats.frames == NUM_FRAMES and results.stream.detector_calls == NUM_FRAMES // 5

    # stopping early stops every stage; a wrong source fails at the call, before any thread starts
    for i, r in enumerate(est.stream(clip, max_persons=1)):
        assert len(r) == 1 and r.frame.index == i
        if i == 2:
            break
    assert not any(t.name.startswith("pipeline-") for t in threading.enumerate())
    with pytest.raises(SourceError, match="does not exist"):
        est.stream("no/such/video.mp4")
