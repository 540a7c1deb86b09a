"""A detector shared by threads (issue 25): a stream pipeline calls the person detector from its detect thread and,
for a lost person, from its pose thread. Calls are served one at a time (a user function need not be thread-safe),
a new frame size is exported once however many threads meet it, no worker thread redirects the process's stdout,
and the detector's and the pose network's onnxruntime sessions split the cores when they run at once."""

import os
import threading
import time

import numpy as np
import pytest
import torch

from hrnet_pose.apis.detectors import CallableDetector, PersonDetector
from hrnet_pose.deploy.export import _native_stdout_discarded
from hrnet_pose.deploy.onnx_backend import physical_cores, share_cores


def _run_in_threads(fn, n=2):
    errors = []

    def guarded():
        try:
            fn()
        except BaseException as err:  # noqa: BLE001 - re-raised on the test's thread
            errors.append(err)

    threads = [threading.Thread(target=guarded) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    if errors:
        raise errors[0]


def test_a_user_detector_is_never_entered_by_two_threads_at_once():
    inside, most = [0], [0]
    lock = threading.Lock()

    def user_detector(image):  # keeps state between calls, as a tracker-backed detector would
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.01)
        with lock:
            inside[0] -= 1
        return np.float32([[1, 1, 20, 30]]), np.float32([0.9])

    detector = CallableDetector(user_detector)
    image = np.zeros((40, 30, 3), np.uint8)
    _run_in_threads(lambda: [detector(image) for _ in range(5)], n=3)
    assert most[0] == 1


def test_two_threads_meeting_a_new_frame_size_export_it_once(tmp_path):
    torch.manual_seed(0)
    detector = PersonDetector("ssdlite", pretrained=False, runtime="onnxruntime", cache_dir=str(tmp_path))
    image = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    _run_in_threads(lambda: detector(image), n=2)
    assert detector.onnx.exports == 1 and len(detector.onnx.sessions) == 1
    assert [p for p in os.listdir(tmp_path) if p.endswith(".onnx")] == [
        os.path.basename(detector.onnx.path_for(image.shape[:2]))]


def test_a_worker_thread_never_redirects_the_process_stdout():
    before = os.fstat(1)
    seen = []

    def export_like():
        with _native_stdout_discarded():
            seen.append(os.fstat(1))

    _run_in_threads(export_like, n=1)
    (inside,) = seen
    assert (inside.st_dev, inside.st_ino) == (before.st_dev, before.st_ino)
    with _native_stdout_discarded():  # the main thread still hides the exporter's dump
        main_inside = os.fstat(1)
    assert (main_inside.st_dev, main_inside.st_ino) != (before.st_dev, before.st_ino)
    assert (os.fstat(1).st_dev, os.fstat(1).st_ino) == (before.st_dev, before.st_ino)


@pytest.mark.parametrize("cores", [1, 2, 3, 4, 8, 16])
def test_sessions_running_at_once_share_the_cores(cores):
    pose, det = share_cores(concurrent=True, cores=cores)
    assert pose >= 1 and det >= 1
    assert pose + det == cores if cores >= 2 else (pose, det) == (1, 1)
    assert pose >= det  # the pose network is the larger share of a frame's work
    assert share_cores(concurrent=False, cores=cores) == (cores, cores)
    assert share_cores(concurrent=False) == (physical_cores(), physical_cores())


def test_the_detector_session_takes_the_threads_it_is_given(tmp_path):
    from hrnet_pose.deploy.detector_export import _session

    torch.manual_seed(0)
    detector = PersonDetector("ssdlite", pretrained=False, runtime="onnxruntime", cache_dir=str(tmp_path),
                              num_threads=1)
    assert detector.onnx.num_threads == 1  # handed to every per-frame-size session it opens
    assert _session(_tiny_graph(), ["CPUExecutionProvider"], 1).get_session_options().intra_op_num_threads == 1
    assert _session(_tiny_graph(), ["CPUExecutionProvider"], None).get_session_options().intra_op_num_threads \
        == physical_cores()  # not onnxruntime's own default, which counts the host's logical CPUs


def _tiny_graph() -> bytes:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
