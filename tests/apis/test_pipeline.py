"""The pipelined stream and the detect-when-needed stream with the trained quickstart model on synthetic videos: the
same results as the sequential loop for a file, stale frames dropped and counted for a live source faster than the
pipeline, single-person tracking that calls the detector only at the start and after the figure is lost, and a
stage's error stopping every thread."""

import threading
import time

import numpy as np
import pytest

from hrnet_pose.apis.estimator import PoseEstimator
from hrnet_pose.apis.pipeline import StreamPipeline
from hrnet_pose.apis.stream import StreamPoseEstimator
from hrnet_pose.datasets.synthetic import synthetic_video
from hrnet_pose.streams.sources import LiveSource, open_source
from hrnet_pose.streams.tracking import PoseTracker
from hrnet_pose.streams.video_writer import VideoWriter

from testpaths import QUICKSTART_WEIGHTS, QUICKSTART_YAML

NUM_FRAMES = 30
SIZE = (320, 240)


def _gt_boxes(kpts):
    lo, hi = kpts.min(axis=1), kpts.max(axis=1)
    pad = 0.1 * (hi - lo)
    return np.concatenate([lo - pad, hi + pad], axis=1)


class _CountingDetector:
    """A perfect detector for a synthetic clip (boxes around the figures drawn in the frame), counting its calls.
    `present[i]` False: frame i shows no figure."""

    def __init__(self, frames, gt, present=None):
        self.frames, self.gt = frames, gt
        self.present = np.ones(len(frames), bool) if present is None else present
        self.calls = []

    def __call__(self, image):
        matches = [i for i in range(len(self.frames)) if np.array_equal(self.frames[i], image)]
        self.calls.append(matches[-1] if len(matches) == 1 else matches)
        i = matches[0]
        if not self.present[i]:
            return np.zeros((0, 4)), np.zeros(0)
        return _gt_boxes(self.gt[i]), np.ones(len(self.gt[i]))


def _estimator(detector):
    return PoseEstimator.from_config(QUICKSTART_YAML, QUICKSTART_WEIGHTS, device="cpu", detector=detector)


def _stream(detector, **kwargs):
    est = _estimator(detector)
    return StreamPoseEstimator(est, tracker=PoseTracker(est.keypoint_set.sigmas), **kwargs)


@pytest.fixture(scope="module")
def video_file(tmp_path_factory):
    """A synthetic clip with two figures crossing, written losslessly enough (MJPG .avi) to be read back; returns
    (path, decoded frames, ground-truth keypoints)."""
    frames, gt = synthetic_video(NUM_FRAMES, SIZE, num_people=2, seed=3, height=0.5, spread=0.25)
    path = str(tmp_path_factory.mktemp("clip") / "clip.avi")
    with VideoWriter(path, 25.0, SIZE) as writer:
        for frame in frames:
            writer.write(frame)
    decoded = np.stack([f.image for f in open_source(path)])
    return path, decoded, gt


def _same(a, b):
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    np.testing.assert_array_equal(a.track_ids, b.track_ids)


def test_pipelined_stream_equals_sequential_for_a_file(video_file):
    path, decoded, gt = video_file
    sequential_det = _CountingDetector(decoded, gt)
    stream = _stream(sequential_det, det_interval=4, min_pose_score=0.5)
    with open_source(path) as source:
        sequential = [(f.index, stream.process(f.image, f.timestamp)) for f in source]

    piped_det = _CountingDetector(decoded, gt)
    finished = []
    with open_source(path) as source:
        pipeline = StreamPipeline(_stream(piped_det, det_interval=4, min_pose_score=0.5), source)
        stats = pipeline.run(lambda item: finished.append((item.frame.index, item.result)))
    assert [i for i, _ in finished] == list(range(NUM_FRAMES)) and stats.frames == NUM_FRAMES
    for (_, a), (_, b) in zip(sequential, finished):
        _same(a, b)
    assert piped_det.calls == sequential_det.calls == list(range(0, NUM_FRAMES, 4))
    assert stats.dropped == 0 and stats.mean_latency_ms > 0 and stats.latency_max_ms >= stats.mean_latency_ms
    assert not any(t.name.startswith("pipeline-") for t in threading.enumerate())


class _FastCamera:
    """A capture that delivers `n` synthetic frames as fast as it is read (far faster than the pose network)."""

    def __init__(self, frames, n):
        self.frames, self.n, self.i = frames, n, 0
        self.released = False

    def read(self):
        if self.i >= self.n:
            return False, None
        self.i += 1
        time.sleep(0.001)
        return True, self.frames[self.i % len(self.frames)].copy()

    def get(self, prop):
        return 0.0

    def isOpened(self):
        return True

    def release(self):
        self.released = True


def test_live_source_faster_than_the_pipeline_drops_stale_frames_and_counts_them():
    frames, gt = synthetic_video(10, SIZE, num_people=1, seed=2, height=0.5)
    camera = _FastCamera(frames, 400)
    source = LiveSource("fake://camera", camera, "stream")
    stream = _stream(None, det_interval=1)  # no detector: the whole frame is one person
    indices = []
    try:
        stats = StreamPipeline(stream, source, queue_size=1).run(lambda item: indices.append(item.frame.index))
    finally:
        source.close()
    assert camera.i == 400 and camera.released
    assert stats.frames == len(indices) and stats.dropped > 0
    # every captured frame was either processed or dropped, and the processed ones are in capture order
    assert stats.frames + stats.dropped == 400
    assert indices == sorted(indices) and len(set(indices)) == len(indices)


def _leave_and_return(n=40, away=range(15, 25)):
    """One walking figure that is out of view on the frames `away` (the background alone) and back on its path
    after; returns (frames, keypoints, present)."""
    from hrnet_pose.datasets import synthetic

    frames, gt = synthetic_video(n, SIZE, num_people=1, seed=3, height=0.5)
    background = synthetic._background(np.random.default_rng(3), *SIZE)
    assert (frames[0] == background).mean() > 0.9  # the generator's own background
    present = np.ones(n, bool)
    present[list(away)] = False
    frames = frames.copy()
    frames[~present] = background
    return frames, gt, present


def test_single_person_mode_detects_only_at_start_and_after_the_track_is_lost():
    frames, gt, present = _leave_and_return()
    detector = _CountingDetector(frames, gt, present)
    # this model answers a mean keypoint score of ~0.35 on its background and ~0.96 on a figure
    stream = _stream(detector, det_interval=5, max_persons=1, min_pose_score=0.5)
    results = [stream.process(frame, i / 25.0) for i, frame in enumerate(frames)]
    # frame 15: the carried box finds no figure (unreliable pose), so 16-24 detect (nobody there) until the figure
    # is found again on 25; the schedule (every 5th frame) does not apply to a single person
    calls = [c if isinstance(c, int) else "away" for c in detector.calls]
    assert calls[0] == 0 and calls[-1] == 25 and calls[1:-1] == ["away"] * 9
    assert stream.detector_calls == len(detector.calls) == 11
    ids = {int(r.track_ids[0]) for i, r in enumerate(results) if present[i]}
    assert ids == {0}, "one id through the clip, also after the figure came back"
    assert all(len(r) <= 1 for r in results)
    assert all(len(r) == 0 for i, r in enumerate(results) if not present[i] and i > 15)


def test_unreliable_pose_triggers_one_search_between_scheduled_detections():
    frames, gt, present = _leave_and_return()
    detector = _CountingDetector(frames, gt, present)
    stream = _stream(detector, det_interval=10, min_pose_score=0.5)
    results = [stream.process(frame, i / 25.0) for i, frame in enumerate(frames)]
    calls = [c if isinstance(c, int) else "away" for c in detector.calls]
    # 0, 10, 20, 30 on the schedule and one search after the loss on frame 15 (the region around a figure half the
    # frame's height is the whole frame); the figure, back on 25, is found by the scheduled detection on 30, not by
    # the detector running on every frame while nobody is carried
    assert calls == [0, 10, "away", "away", 30] and stream.region_calls == 1
    assert all(len(r) == 0 for r in results[16:30]) and len(results[30]) == 1


def test_a_failing_stage_stops_every_thread_and_raises(video_file):
    path, decoded, gt = video_file

    def broken_detector(image):
        raise RuntimeError("detector exploded")

    with open_source(path) as source:
        pipeline = StreamPipeline(_stream(broken_detector), source)
        with pytest.raises(RuntimeError, match="detector exploded"):
            pipeline.run(lambda item: False)
    assert not any(t.name.startswith("pipeline-") for t in threading.enumerate())


def test_finish_returning_true_stops_early(video_file):
    path, decoded, gt = video_file
    seen = []
    with open_source(path) as source:
        stats = StreamPipeline(_stream(None), source).run(lambda item: seen.append(item.frame.index) or len(seen) == 3)
    assert seen == [0, 1, 2] and stats.frames == 3
    assert not any(t.name.startswith("pipeline-") for t in threading.enumerate())


def test_ctrl_c_in_the_finish_stage_stops_every_thread(video_file):
    path, decoded, gt = video_file

    def interrupted(item):
        raise KeyboardInterrupt

    with open_source(path) as source:
        with pytest.raises(KeyboardInterrupt):
            StreamPipeline(_stream(None), source).run(interrupted)
    assert not any(t.name.startswith("pipeline-") for t in threading.enumerate())
