"""Person detectors: offline errors, random-weight torchvision detectors on a real image, local weight files, and the
rules (score threshold, NMS, max persons, output checks) around a user callable."""

import os
import socket

import cv2
import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from hrnet_pose.apis.detectors import (DETECTOR_WEIGHTS, DETECTORS, CallableDetector, DetectorOutputError,
                                       DetectorWeightsUnavailable, PersonDetector, build_detector,
                                       filter_person_boxes, guess_architecture)
from hrnet_pose.download import OFFLINE_ENV
from hrnet_pose.errors import UserError

from testpaths import MINI

IMAGE = os.path.join(MINI, "images", "000000000785.jpg")


@pytest.fixture()
def offline(monkeypatch, tmp_path):
    """An empty torch hub cache and no name resolution: what a machine without network sees."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (offline test)")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture(scope="module")
def image():
    return cv2.imread(IMAGE, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)


def _small_input(det):
    # torchvision resizes the shorter side to 800 px inside the model; 320 (its mobile setting) keeps tests fast
    det.model.transform.min_size, det.model.transform.max_size = (320,), 640
    return det


@pytest.fixture(scope="module")
def random_mobilenet():
    """The fast detector with random weights, its person logit raised so that it reports people (an untrained head
    spreads its scores over all 91 classes)."""
    torch.manual_seed(0)
    det = _small_input(PersonDetector("mobilenet", pretrained=False, score_thr=0.3, nms_thr=0.5, max_persons=5,
                                      runtime="torch"))
    with torch.no_grad():
        det.model.roi_heads.box_predictor.cls_score.bias[1] += 5.0
    return det


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_offline_download_error_says_how_to_go_on(offline, name):
    with pytest.raises(DetectorWeightsUnavailable) as info:
        PersonDetector(name)
    msg = str(info.value)
    url = DETECTOR_WEIGHTS[name].url
    assert url in msg and str(offline / os.path.basename(url)) in msg
    assert "--det-weights FILE" in msg and "--boxes FILE" in msg and "--det-model none" in msg
    assert isinstance(info.value, UserError)
    assert not offline.exists() or os.listdir(offline) == []  # no partial file left in the cache


def test_offline_switch_forbids_the_detector_download(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv(OFFLINE_ENV, "1")
    with pytest.raises(DetectorWeightsUnavailable, match=f"{OFFLINE_ENV} forbids downloads") as info:
        PersonDetector("mobilenet")
    assert DETECTOR_WEIGHTS["mobilenet"].url in str(info.value) and "--det-weights FILE" in str(info.value)
    assert not (tmp_path / "torch" / "hub" / "checkpoints").exists() or \
        os.listdir(tmp_path / "torch" / "hub" / "checkpoints") == []


def test_corrupt_cached_weights_are_reported(offline):
    offline.mkdir(parents=True)
    cached = offline / os.path.basename(DETECTOR_WEIGHTS["mobilenet"].url)
    cached.write_bytes(b"truncated download")
    with pytest.raises(DetectorWeightsUnavailable, match=r"could not be read .*delete that file"):
        PersonDetector("mobilenet")


def test_random_detector_on_a_real_image(random_mobilenet, image):
    boxes, scores = random_mobilenet(image)
    assert boxes.dtype == np.float32 and scores.dtype == np.float32
    assert boxes.shape == (5, 4) and scores.shape == (5,)  # the raised person logit gives many candidates
    assert np.all(scores >= 0.3) and np.all(np.diff(scores) <= 0)
    h, w = image.shape[:2]
    assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2] <= w) and np.all(boxes[:, 3] <= h)
    assert np.all(boxes[:, 2:] >= boxes[:, :2])
    iou = box_iou(torch.from_numpy(boxes), torch.from_numpy(boxes)).fill_diagonal_(0)
    assert float(iou.max()) <= 0.5  # NMS applied


def test_weights_file_round_trip(random_mobilenet, image, tmp_path):
    """A state dict saved to disk loads by 'name:path' and by path alone (architecture from its keys), with or without
    BatchNorm counters (torchvision's released mobilenet weights have none), and gives identical boxes."""
    state = random_mobilenet.model.state_dict()
    full, frozen_bn = tmp_path / "det.pth", tmp_path / "det_frozen_bn.pth"
    torch.save(state, full)
    torch.save({"model": {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}}, frozen_bn)
    small = cv2.resize(image, (320, 212))
    expected = random_mobilenet.detect_batch([image, small])
    by_name = _small_input(build_detector(f"mobilenet:{full}", score_thr=0.3, max_persons=5, runtime="torch"))
    by_path = _small_input(build_detector(str(frozen_bn), score_thr=0.3, max_persons=5, runtime="torch"))
    assert isinstance(by_path, PersonDetector) and by_path.name == "mobilenet"
    for det, img, (exp_boxes, exp_scores) in ((by_name, image, expected[0]), (by_path, small, expected[1])):
        boxes, scores = det(img)
        assert len(boxes) > 0
        np.testing.assert_array_equal(boxes, exp_boxes)
        np.testing.assert_array_equal(scores, exp_scores)


def test_weights_of_the_wrong_architecture_are_refused(random_mobilenet, tmp_path):
    path = tmp_path / "mobilenet.pth"
    torch.save(random_mobilenet.model.state_dict(), path)
    assert guess_architecture(random_mobilenet.model.state_dict()) == "mobilenet"
    with pytest.raises(UserError, match=r"do not fit the 'fasterrcnn' detector"):
        PersonDetector("fasterrcnn", weights=str(path))
    with pytest.raises(UserError, match=r"detector weights file .*nope\.pth does not exist"):
        build_detector(str(tmp_path / "nope.pth"))


def test_accurate_detector_is_resnet50_fpn_v2():
    det = PersonDetector("fasterrcnn", pretrained=False, runtime="torch")
    n_params = sum(p.numel() for p in det.model.parameters())
    assert n_params == DETECTOR_WEIGHTS["fasterrcnn"].meta["num_params"]
    assert guess_architecture(det.model.state_dict()) == "fasterrcnn"
    assert not any(p.requires_grad for p in det.model.parameters()) and not det.model.training


def test_rejects_non_bgr_uint8_images(random_mobilenet, image):
    with pytest.raises(ValueError, match=r"BGR uint8 image \[H, W, 3\].*float32"):
        random_mobilenet(image.astype(np.float32))
    with pytest.raises(ValueError, match=r"got ndarray uint8 \[425, 640\]"):
        random_mobilenet(image[..., 0])


def test_callable_detector_filters_and_suppresses():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 60, 70], [100, 0, 120, 40], [0, 0, 5, 5]], float)
    scores = np.array([0.6, 0.9, 0.4, 0.8, 0.2])
    det = CallableDetector(lambda image: (boxes, scores), score_thr=0.3, nms_thr=0.5, max_persons=2)
    out_boxes, out_scores = det(np.zeros((8, 8, 3), np.uint8))
    # 0.2 below threshold; box 0 overlaps box 1 (IoU 0.81) and loses; the two best of the rest remain
    np.testing.assert_array_equal(out_scores, np.float32([0.9, 0.8]))
    np.testing.assert_array_equal(out_boxes, np.float32([[1, 1, 10, 10], [100, 0, 120, 40]]))
    det.max_persons = 10
    assert det(None)[1].tolist() == pytest.approx([0.9, 0.8, 0.4])
    empty = CallableDetector(lambda image: ([], []))(None)
    assert empty[0].shape == (0, 4) and empty[1].shape == (0,) and empty[0].dtype == np.float32


@pytest.mark.parametrize("output, message", [
    (np.zeros((2, 4)), r"must return \(boxes \[N, 4\], scores \[N\]\), got ndarray"),
    ((np.zeros((2, 5)), np.zeros(2)), r"boxes of shape \[2, 5\]; expected \[N, 4\]"),
    ((np.zeros((2, 4)), np.zeros(3)), r"scores of shape \[3\] for 2 boxes"),
    ((np.array([[0, 0, 1, np.nan]]), np.ones(1)), r"box 0 = .* not finite \(NaN or inf\)"),
    ((np.array([[0, 0, 1, 1]]), np.array([np.inf])), r"NaN or infinite \(first at index 0\)"),
    ((np.array([[10, 0, 1, 5]]), np.ones(1)), r"box 0 = .* zero or negative area"),
    ((np.array([[1, 0, 1, 5]]), np.ones(1)), r"box 0 = .* zero or negative area"),  # the estimator's rule: x2 > x1
    ((["a", "b"], [1]), r"not numeric arrays"),
])
def test_callable_detector_output_errors(output, message):
    det = CallableDetector(lambda image: output)
    with pytest.raises(DetectorOutputError, match=message):
        det(None)


def test_build_detector_specs(random_mobilenet):
    assert build_detector(None) is None and build_detector("none") is None and build_detector("None") is None
    assert build_detector(random_mobilenet) is random_mobilenet
    wrapped = build_detector(lambda image: (np.zeros((0, 4)), np.zeros(0)), score_thr=0.7, max_persons=3)
    assert isinstance(wrapped, CallableDetector) and wrapped.score_thr == 0.7 and wrapped.max_persons == 3
    with pytest.raises(UserError, match=r"unknown person detector 'yolo'; valid: 'fasterrcnn', 'mobilenet'"):
        build_detector("yolo")
    with pytest.raises(UserError, match="weights given twice"):
        build_detector("mobilenet:a.pth", weights="b.pth")
    with pytest.raises(ValueError, match=r"score_thr \(--bbox-thr\) must be in \[0, 1\]"):
        CallableDetector(lambda image: None, score_thr=1.5)
    with pytest.raises(ValueError, match=r"max_persons .* integer >= 1"):
        build_detector(lambda image: None, max_persons=0)


def test_filter_person_boxes_keeps_order_and_types():
    boxes, scores = filter_person_boxes(np.zeros((0, 4)), np.zeros(0), 0.5, 0.5, 10)
    assert boxes.shape == (0, 4) and boxes.dtype == np.float32 and scores.dtype == np.float32
    boxes, scores = filter_person_boxes([[0, 0, 1, 1], [5, 5, 6, 6], [9, 9, 10, 10]], [0.6, 0.95, 0.7], 0.5, 0.5, 10)
    assert scores.tolist() == pytest.approx([0.95, 0.7, 0.6]) and boxes[0].tolist() == [5, 5, 6, 6]
