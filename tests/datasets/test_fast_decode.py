"""DATASET.FAST_DECODE: reduced JPEG decoding folded into the warp gives the plain path's samples (same augmentation,
joints, targets) with crops equal up to interpolation; the mirror fold, the evaluation decode cache and the
table normalisation are exact."""

import json
import os
import shutil

import cv2
import numpy as np
import pytest
import torch

from hrnet_pose.codecs.heatmap import HeatmapCodec
from hrnet_pose.config import get_cfg
from hrnet_pose.datasets import AugmentationConfig, CocoKeypoints, ImageReadError
from hrnet_pose.datasets import fast_decode
from hrnet_pose.datasets.fast_decode import (
    fold_flip,
    fold_reduction,
    read_image_reduced,
    reduction_factor,
    to_normalized_tensor_fast,
)
from hrnet_pose.datasets.transforms import crop_matrix, to_normalized_tensor, warp_crop

from testpaths import MINI


def _dataset(train: bool, fast: bool, size=(192, 256), ann_file=None, **kwargs) -> CocoKeypoints:
    image_set = "mini_train2017" if train else "mini_val2017"
    return CocoKeypoints(
        root=MINI, image_set=image_set, is_train=train, image_size=size,
        codec=HeatmapCodec(image_size=size, heatmap_size=(size[0] // 4, size[1] // 4), sigma=2),
        ann_file=ann_file or os.path.join(MINI, "annotations", f"person_keypoints_{image_set}.json"),
        image_dir=os.path.join(MINI, "images"), fast_decode=fast,
        transform_cfg=AugmentationConfig(scale_factor=0.35, rot_factor=45, prob_half_body=0.3), **kwargs)


@pytest.fixture(scope="module")
def smooth_jpeg(tmp_path_factory):
    """A smooth 800x600 colour image (periods >= 150 px) as a high-quality JPEG: a box-filtered reduced decode of it
    equals point sampling at the reduced pixels' centres, so any misplaced centre shows as a difference."""
    y, x = np.mgrid[0:600, 0:800].astype(np.float64)
    image = np.stack([128 + 100 * np.sin(2 * np.pi * x / 150 + 0.3), 128 + 100 * np.cos(2 * np.pi * y / 170),
                      128 + 90 * np.sin(2 * np.pi * (x + y) / 210)], axis=2)
    path = str(tmp_path_factory.mktemp("smooth") / "smooth.jpg")
    cv2.imwrite(path, np.clip(image, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 98])
    return path


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_reduced_decode_folded_into_the_warp_is_geometrically_exact(smooth_jpeg, factor):
    full = cv2.imread(smooth_jpeg, cv2.IMREAD_COLOR)
    reduced = read_image_reduced(smooth_jpeg, factor)
    assert reduced.shape == (600 // factor, 800 // factor, 3)
    size = (48, 64)
    center, scale = np.array([410.0, 290.0]), np.array([0.75, 1.0]) * 64 * factor / 200 * 1.5
    assert reduction_factor(scale, size) == factor
    trans = crop_matrix(center, scale, 17.0, size)
    plain = warp_crop(full, trans, size).astype(np.float64)
    fast = warp_crop(reduced, fold_reduction(trans, factor), size).astype(np.float64)
    assert np.abs(fast - plain).mean() < 1.5  # grey levels of 255: JPEG, box filter and interpolation

    # the reduced pixels' centre offset (f - 1) / 2 is the one that best matches the full-resolution crop
    a, t = trans[:, :2], trans[:, 2]
    offsets = np.linspace(-1.0, 5.0, 25)
    errors = [np.abs(warp_crop(reduced, np.concatenate([a * factor, (t + a @ [o, o])[:, None]], axis=1), size)
                     .astype(np.float64) - plain).mean() for o in offsets]
    assert offsets[int(np.argmin(errors))] == (factor - 1) / 2


def test_reduction_factor_rule():
    size = (192, 256)
    assert reduction_factor(np.array([1.9, 2.5]) * 192 / 200, size) == 1
    assert reduction_factor(np.array([2.0, 2.0 * 256 / 192]) * 192 / 200, size) == 2
    assert reduction_factor(np.array([5.0, 6.0]) * 192 / 200, size) == 4
    assert reduction_factor(np.array([30.0, 40.0]), size) == 8
    assert reduction_factor(np.array([30.0, 40.0]), size, max_factor=2) == 2


def test_mirror_folded_into_the_matrix_equals_warping_the_mirrored_image():
    image = cv2.imread(os.path.join(MINI, "images", "000000000785.jpg"))
    trans = crop_matrix(np.array([300.0, 250.0]), np.array([1.5, 2.0]), 30.0, (192, 256))
    plain = warp_crop(image[:, ::-1], trans, (192, 256)).astype(int)
    fast = warp_crop(image, fold_flip(trans, image.shape[1]), (192, 256)).astype(int)
    assert np.abs(fast - plain).max() <= 1 and np.abs(fast - plain).mean() < 0.01  # fixed-point rounding only


def test_table_normalisation_is_exact():
    crop = np.random.default_rng(0).integers(0, 256, (64, 48, 3), dtype=np.uint8)
    crop[0, :, :] = np.arange(48)[:, None]
    crop[1:7, :, :] = np.arange(48, 48 + 6 * 48).reshape(6, 48, 1) % 256  # every value in every channel
    assert torch.equal(to_normalized_tensor_fast(crop), to_normalized_tensor(crop))
    with pytest.raises(ValueError, match="uint8 crop"):
        to_normalized_tensor_fast(crop.astype(np.float32))


@pytest.mark.parametrize("train,size", [(True, (192, 256)), (True, (48, 64)), (False, (48, 64))])
def test_fast_samples_equal_plain_samples(train, size):
    plain, fast = _dataset(train, False, size), _dataset(train, True, size)
    factors = set()
    for i in range(len(plain)):
        np.random.seed(i)
        image_p, target_p, weight_p, meta_p = plain[i]
        np.random.seed(i)
        image_f, target_f, weight_f, meta_f = fast[i]
        assert torch.equal(target_p, target_f) and torch.equal(weight_p, weight_f)
        for key in ("center", "scale", "joints", "joints_vis"):
            np.testing.assert_array_equal(meta_p[key], meta_f[key])
        assert meta_p["rotation"] == meta_f["rotation"]
        np.random.seed(i)
        crop_p = plain.prepare(i)["crop"].astype(int)
        np.random.seed(i)
        sample = fast.prepare(i)
        diff = np.abs(sample["crop"].astype(int) - crop_p)
        factors.add(sample["decode_factor"])
        if sample["decode_factor"] == 1:
            assert diff.max() <= 1
        else:  # the plain warp point-samples the full image (aliasing), the reduced decode box-filters it
            assert diff.mean() < 20
    assert factors == ({1, 2} if size == (192, 256) else {1, 2, 4, 8} if train else {1, 2, 4})


def test_evaluation_decodes_each_image_once_and_gives_the_plain_crops(monkeypatch):
    plain, fast = _dataset(False, False), _dataset(False, True)
    expected = [plain.prepare(i)["crop"] for i in range(len(plain))]
    calls = []
    imread = cv2.imread
    monkeypatch.setattr(fast_decode.cv2, "imread", lambda *a: calls.append(a[0]) or imread(*a))
    for i in range(len(fast)):  # GT boxes of the val images are all below 2x the input: no reduction
        assert np.array_equal(fast.prepare(i)["crop"], expected[i])
    images = [rec["image"] for rec in fast.db]
    assert len(calls) == len(set(images)) < len(images)
    calls.clear()
    np.random.seed(0)
    train = _dataset(True, True)
    for i in range(len(train)):
        train.prepare(i)
    assert len(calls) == len(train)  # training order is random: no cache


def test_wrong_image_size_in_the_annotation_falls_back_to_a_full_decode(tmp_path):
    with open(os.path.join(MINI, "annotations", "person_keypoints_mini_train2017.json")) as f:
        data = json.load(f)
    for img in data["images"]:
        img["width"] += 37  # as if the file had been replaced by a narrower one
    ann_file = tmp_path / "wrong_size.json"
    ann_file.write_text(json.dumps(data))
    plain, fast = _dataset(True, False), _dataset(True, True, ann_file=str(ann_file))
    plain.transform_cfg.flip_prob = fast.transform_cfg.flip_prob = 1.0
    for i in range(len(plain)):
        np.random.seed(i)
        expected = plain.prepare(i)
        np.random.seed(i)
        got = fast.prepare(i)
        for key in ("center", "joints", "trans"):
            np.testing.assert_allclose(got[key], expected[key], atol=1e-4)
        assert got["decode_factor"] == 1 and np.abs(got["crop"].astype(int) - expected["crop"]).max() <= 1


def test_unreadable_image(tmp_path):
    images = tmp_path / "images"
    shutil.copytree(os.path.join(MINI, "images"), images)
    broken = images / "000000000785.jpg"
    broken.write_bytes(b"not a jpeg")
    ds = _dataset(False, True)
    ds.db = [dict(rec, image=str(images / os.path.basename(rec["image"]))) for rec in ds.db]
    first = next(i for i, rec in enumerate(ds.db) if rec["image"] == str(broken))
    with pytest.raises(ImageReadError, match="000000000785.jpg cannot be decoded"):
        ds.prepare(first)
    ds.is_train = True
    assert ds.prepare(first) is None and ds.num_skipped == 1


def test_config_switch_is_off_by_default():
    assert get_cfg().DATASET.FAST_DECODE is False
