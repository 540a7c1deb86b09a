"""DATASET.IMAGE_CACHE_DIR: decoded images stored once and memory-mapped give exactly the plain path's samples, on
the real COCO fixture images; edited images are decoded again, broken entries are repaired, unreadable images and
unusable folders fail as without the cache, and the free space is checked up front."""

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
from hrnet_pose.datasets.image_cache import ImageCache, ImageCacheError, check_space, image_bytes
from hrnet_pose.errors import is_user_error

from testpaths import MINI


def _dataset(train: bool, cache_dir: str = "", fast: bool = False, image_dir: str = "") -> CocoKeypoints:
    image_set = "mini_train2017" if train else "mini_val2017"
    return CocoKeypoints(
        root=MINI, image_set=image_set, is_train=train, image_size=(192, 256),
        codec=HeatmapCodec(image_size=(192, 256), heatmap_size=(48, 64), sigma=2),
        ann_file=os.path.join(MINI, "annotations", f"person_keypoints_{image_set}.json"),
        image_dir=image_dir or os.path.join(MINI, "images"), fast_decode=fast, image_cache_dir=cache_dir,
        transform_cfg=AugmentationConfig(scale_factor=0.35, rot_factor=45, prob_half_body=0.3))


def _samples(ds, seed: int = 0):
    np.random.seed(seed)
    return [ds[i] for i in range(len(ds))]


def _assert_same(got, expected):
    for (x, t, w, m), (x0, t0, w0, m0) in zip(got, expected, strict=True):
        assert torch.equal(x, x0) and torch.equal(t, t0) and torch.equal(w, w0)
        for key in ("center", "scale", "joints", "joints_vis"):
            np.testing.assert_array_equal(m[key], m0[key])


@pytest.mark.parametrize("train", [True, False])
def test_cached_samples_are_the_plain_samples_and_the_second_pass_decodes_nothing(tmp_path, train):
    expected = _samples(_dataset(train))
    first = _dataset(train, str(tmp_path))
    _assert_same(_samples(first), expected)
    images = {rec["image"] for rec in first.db}
    entries = [f for _, _, files in os.walk(tmp_path) for f in files]
    assert len(entries) == len(images) and all(f.endswith(".npy") for f in entries)
    assert first.image_cache.misses == len(images)

    second = _dataset(train, str(tmp_path))  # a new run (or a DataLoader worker) on the filled folder
    _assert_same(_samples(second), expected)
    assert second.image_cache.misses == 0 and second.image_cache.hits == len(second)


def test_fast_decode_with_the_cache_keeps_the_augmentation_and_the_plain_pixels(tmp_path):
    plain, fast = _dataset(True), _dataset(True, str(tmp_path), fast=True)
    for i in range(len(plain)):
        np.random.seed(i)
        expected = plain.prepare(i)
        np.random.seed(i)
        got = fast.prepare(i)
        assert got["decode_factor"] == 1  # the cache holds full-size images: no reduced decoding
        for key in ("center", "scale", "joints", "trans"):
            np.testing.assert_array_equal(got[key], expected[key])
        # only the mirror, folded into the matrix, can round an interpolated value differently
        assert np.abs(got["crop"].astype(int) - expected["crop"]).max() <= 1
    _assert_same(_samples(_dataset(False, str(tmp_path), fast=True)), _samples(_dataset(False)))


def test_an_edited_image_is_decoded_again(tmp_path):
    image = tmp_path / "photo.jpg"
    shutil.copy(os.path.join(MINI, "images", "000000000785.jpg"), image)
    cache = ImageCache(str(tmp_path / "cache"))
    original = np.array(cache.read(str(image)))
    assert np.array_equal(cache.read(str(image)), original) and (cache.hits, cache.misses) == (1, 1)
    edited = cv2.flip(cv2.imread(str(image)), 1)
    cv2.imwrite(str(image), edited)
    os.utime(image, ns=(0, 10**18))  # a new modification time even on coarse file systems
    assert np.array_equal(cache.read(str(image)), cv2.imread(str(image))) and cache.misses == 2


def test_a_broken_entry_is_decoded_again_and_repaired(tmp_path, caplog):
    path = os.path.join(MINI, "images", "000000000785.jpg")
    cache = ImageCache(str(tmp_path))
    expected = np.array(cache.read(path))
    entry = cache.entry_path(path)
    with open(entry, "r+b") as f:  # as a crash between the rename and the data reaching the disk could leave it
        f.truncate(1000)
    assert np.array_equal(cache.read(path), expected)
    assert "unreadable" in caplog.text and os.path.getsize(entry) == image_bytes(640, expected.shape[0])
    assert np.array_equal(ImageCache(str(tmp_path)).read(path), expected)


def test_unreadable_images_fail_as_without_the_cache(tmp_path):
    images = tmp_path / "images"
    shutil.copytree(os.path.join(MINI, "images"), images)
    (images / "000000000785.jpg").write_bytes(b"not a jpeg")
    for fast in (False, True):
        ds = _dataset(False, str(tmp_path / "cache"), fast=fast, image_dir=str(images))
        first = next(i for i, rec in enumerate(ds.db) if rec["image"].endswith("000000000785.jpg"))
        with pytest.raises(ImageReadError, match="000000000785.jpg cannot be decoded"):
            ds.prepare(first)
        ds.is_train = True
        assert ds.prepare(first) is None and ds.num_skipped == 1
    assert not any(f.endswith(".npy") and "785" in f for _, _, fs in os.walk(tmp_path / "cache") for f in fs)


def test_space_is_checked_before_the_run(tmp_path):
    ds = _dataset(False)
    ids = sorted({rec["image_id"] for rec in ds.db})
    sizes = [(ds._image_path(i), ds.coco.imgs[i]["width"], ds.coco.imgs[i]["height"]) for i in ids]
    cache = ImageCache(str(tmp_path))
    missing, free = cache.reserve(sizes)
    assert missing == sum(image_bytes(w, h) for _, w, h in sizes) and free > 0
    for path, _, _ in sizes:
        cache.read(path)
    assert cache.reserve(sizes)[0] == 0
    with pytest.raises(ImageCacheError, match=r"need 52\.00 GB more but only 10\.00 GB are free") as err:
        check_space(52 * 10**9, 10 * 10**9, "/data/cache")
    assert "IMAGE_CACHE_DIR" in str(err.value) and is_user_error(err.value)


def test_an_unusable_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ImageCacheError, match="IMAGE_CACHE_DIR .*a_file/cache.* cannot be created"):
        _dataset(False, str(blocker / "cache"))


def test_config_key_is_off_by_default_and_reaches_the_dataset(tmp_path):
    assert get_cfg().DATASET.IMAGE_CACHE_DIR == ""
    from hrnet_pose.datasets.build import build_dataset

    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    shutil.copytree(os.path.join(MINI, "images"), root / "images" / "mini_val2017")
    with open(os.path.join(MINI, "annotations", "person_keypoints_mini_val2017.json")) as f:
        (root / "annotations" / "person_keypoints_mini_val2017.json").write_text(json.dumps(json.load(f)))
    cfg = get_cfg()
    cfg.merge_from_list(["DATASET.DATASET", "coco", "DATASET.ROOT", str(root), "DATASET.TEST_SET", "mini_val2017",
                         "DATASET.IMAGE_CACHE_DIR", str(tmp_path / "cache"), "TEST.USE_GT_BBOX", "True"])
    ds = build_dataset(cfg, "val")
    assert ds.image_cache is not None and ds.image_cache.folder == str(tmp_path / "cache")
    ds[0]
    assert ds.image_cache.misses == 1
