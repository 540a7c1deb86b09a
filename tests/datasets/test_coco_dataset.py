"""CocoKeypoints against the official COCODataset outputs on real COCO images, and its behaviour on bad input."""

import json
import os
import shutil

import numpy as np
import pytest
import torch

from hrnet_pose.codecs.heatmap import HeatmapCodec
from hrnet_pose.datasets import AugmentationConfig, CocoKeypoints, ImageReadError, collate_skip_none
from hrnet_pose.datasets.transforms import to_normalized_tensor
from hrnet_pose.keypoints import load_keypoint_set

from testpaths import FIXTURES, MINI, MINI_DETS, MINI_VAL_ANN

REF = os.path.join(FIXTURES, "official_coco_mini_a_dataset.npz")


def mini_dataset(**kwargs) -> CocoKeypoints:
    args = dict(root=MINI, image_set="mini_val2017", is_train=False, image_size=(192, 256),
                codec=HeatmapCodec(image_size=(192, 256), heatmap_size=(48, 64), sigma=2),
                ann_file=MINI_VAL_ANN, image_dir=os.path.join(MINI, "images"))
    args.update(kwargs)
    return CocoKeypoints(**args)


@pytest.fixture(scope="module")
def ref():
    return dict(np.load(REF))


@pytest.fixture(scope="module")
def gt_ds():
    return mini_dataset()


def test_gt_box_samples_match_official(gt_ds, ref):
    db = gt_ds.db
    assert len(db) == len(ref["gtdb_center"])
    np.testing.assert_array_equal(np.stack([r["center"] for r in db]), ref["gtdb_center"])
    np.testing.assert_array_equal(np.stack([r["scale"] for r in db]), ref["gtdb_scale"])
    np.testing.assert_array_equal(np.stack([r["joints_3d"] for r in db]), ref["gtdb_joints"])
    np.testing.assert_array_equal(np.stack([r["joints_3d_vis"] for r in db]), ref["gtdb_joints_vis"])
    np.testing.assert_array_equal([r["image_id"] for r in db], ref["gtdb_image_id"])
    np.testing.assert_array_equal(np.stack([r["raw_bbox"] for r in db]), ref["gtdb_raw_bbox"])
    assert db[0]["center"].dtype == np.float32 and db[0]["joints_3d"].dtype == np.float64
    assert sorted(gt_ds.image_ids) == [785, 802, 40083, 196141, 197388]


def test_detector_box_samples_match_official(ref):
    ds = mini_dataset(use_gt_bbox=False, bbox_file=MINI_DETS, image_thre=0.0)
    assert len(ds) == 118
    np.testing.assert_array_equal(np.stack([r["center"] for r in ds.db]), ref["detdb_center"])
    np.testing.assert_array_equal(np.stack([r["scale"] for r in ds.db]), ref["detdb_scale"])
    np.testing.assert_array_equal([r["score"] for r in ds.db], ref["detdb_score"])
    np.testing.assert_array_equal([r["image_id"] for r in ds.db], ref["detdb_image_id"])
    np.testing.assert_array_equal(np.stack([r["raw_bbox"] for r in ds.db]), ref["det_file_bbox"])
    high = mini_dataset(use_gt_bbox=False, bbox_file=MINI_DETS, image_thre=0.5)
    assert len(high) == int((ref["det_file_score"] >= 0.5).sum()) == 18


def test_eval_crops_targets_and_meta_match_official(gt_ds, ref):
    for i in range(len(gt_ds)):
        sample = gt_ds.prepare(i)
        diff = np.abs(sample["crop"].astype(np.int16) - ref["gtitem_crop_rgb_uint8"][i].astype(np.int16))
        assert diff.max() <= 1, f"sample {i}: crop differs by {diff.max()}"
        inp, target, weight, meta = gt_ds[i]
        assert inp.shape == (3, 256, 192) and inp.dtype == torch.float32
        torch.testing.assert_close(inp, to_normalized_tensor(sample["crop"]))
        np.testing.assert_allclose(target.numpy(), ref["gtitem_target"][i], atol=1e-5, rtol=0)
        np.testing.assert_allclose(weight.numpy(), ref["gtitem_target_weight"][i], atol=1e-5, rtol=0)
        np.testing.assert_allclose(meta["joints"], ref["gtitem_meta_joints"][i], atol=1e-9)
        assert meta["image_id"] == ref["gtdb_image_id"][i] and meta["index"] == i and meta["rotation"] == 0
        assert meta["score"] == 1.0


def test_normalisation_is_imagenet_after_div_255():
    crop = np.full((4, 3, 3), 255, np.uint8)
    crop[..., 1] = 0
    x = to_normalized_tensor(crop)
    assert x.shape == (3, 4, 3)
    np.testing.assert_allclose(x[:, 0, 0].numpy(), [(1 - 0.485) / 0.229, -0.456 / 0.224, (1 - 0.406) / 0.225],
                               rtol=1e-6)


def test_bgr_when_color_rgb_false(gt_ds):
    bgr = mini_dataset(color_rgb=False).prepare(0)["crop"]
    np.testing.assert_array_equal(bgr[..., ::-1], gt_ds.prepare(0)["crop"])


def test_missing_annotation_file_or_image_folder_shows_layout(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        CocoKeypoints(str(tmp_path), "val2017", False, (192, 256), codec=None)
    msg = str(err.value)
    assert "person_keypoints_val2017.json" in msg and "images/val2017/" in msg and "expected layout" in msg
    (tmp_path / "annotations").mkdir()
    shutil.copy(MINI_VAL_ANN, tmp_path / "annotations" / "person_keypoints_val2017.json")
    with pytest.raises(FileNotFoundError) as err:
        CocoKeypoints(str(tmp_path), "val2017", False, (192, 256), codec=None)
    assert "image folder not found" in str(err.value) and "images/val2017/" in str(err.value)


@pytest.fixture()
def layout_with_bad_image(tmp_path):
    """The official layout (root/annotations, root/images/val2017) with one corrupt jpg."""
    (tmp_path / "annotations").mkdir()
    shutil.copy(MINI_VAL_ANN, tmp_path / "annotations" / "person_keypoints_val2017.json")
    images = tmp_path / "images" / "val2017"
    images.mkdir(parents=True)
    for name in ("000000000785.jpg", "000000040083.jpg"):
        shutil.copy(os.path.join(MINI, "images", name), images / name)
    (images / "000000000785.jpg").write_bytes(b"this is not a jpeg")
    return tmp_path


def _layout_ds(root, **kwargs):
    args = dict(root=str(root), image_set="val2017", image_size=(192, 256),
                codec=HeatmapCodec(image_size=(192, 256), heatmap_size=(48, 64), sigma=2))
    args.update(kwargs)
    return CocoKeypoints(**args)


def test_unreadable_image_raises_at_test_time(layout_with_bad_image):
    ds = _layout_ds(layout_with_bad_image, is_train=False)
    assert ds.db[0]["image_id"] == 785
    with pytest.raises(ImageReadError, match="000000000785.jpg"):
        ds[0]
    missing = ds.db[3]["image"]  # image 196141 was not copied
    with pytest.raises(ImageReadError, match="does not exist"):
        ds[3]
    assert missing.endswith("000000196141.jpg")


def test_unreadable_image_skipped_and_counted_in_training(layout_with_bad_image):
    ds = _layout_ds(layout_with_bad_image, is_train=True, transform_cfg=AugmentationConfig(flip=False))
    assert ds[0] is None and ds.num_skipped == 1
    batch = collate_skip_none([ds[0], ds[1], ds[2]])
    inp, target, weight, meta = batch
    assert inp.shape == (2, 3, 256, 192) and target.shape == (2, 17, 64, 48) and weight.shape == (2, 17, 1)
    assert meta["num_skipped"] == 1 and isinstance(meta["num_skipped"], int)
    assert meta["image_id"].tolist() == [40083, 40083]
    assert collate_skip_none([None, None]) is None
    strict = _layout_ds(layout_with_bad_image, is_train=True, skip_bad_images=False)
    with pytest.raises(ImageReadError, match="000000000785.jpg"):
        strict[0]


@pytest.mark.parametrize("entry,field", [
    ({"image_id": 785, "category_id": 1, "bbox": [1, 2, 3], "score": 0.5}, "bbox"),
    ({"image_id": 785, "category_id": 1, "bbox": [1, 2, 3, 4]}, "score"),
    ({"image_id": "785", "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5}, "image_id"),
    ({"image_id": 785, "category_id": 1, "bbox": [1, 2, None, 4], "score": 0.5}, "bbox"),
])
def test_malformed_detection_file_names_entry_and_field(tmp_path, entry, field):
    dets = json.load(open(MINI_DETS))[:3] + [entry]
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(dets))
    with pytest.raises(ValueError, match=rf"entry 3 .*'{field}'"):
        mini_dataset(use_gt_bbox=False, bbox_file=str(path))


def test_missing_detection_file_is_named(tmp_path):
    path = str(tmp_path / "nope.json")
    with pytest.raises(FileNotFoundError, match="nope.json"):
        mini_dataset(use_gt_bbox=False, bbox_file=path)


def test_custom_five_keypoint_set_with_flip(tmp_path):
    kset = load_keypoint_set(os.path.join(FIXTURES, "keypoints_5_ds.yaml"))
    assert kset.num_keypoints == 5 and kset.flip_pairs == ((1, 2), (3, 4))
    # a tiny COCO file: two people on one real image, keypoints = COCO nose, eyes, shoulders
    src = json.load(open(MINI_VAL_ANN))
    image = next(im for im in src["images"] if im["id"] == 785)
    ann = next(a for a in src["annotations"] if a["image_id"] == 785)
    kp = np.array(ann["keypoints"], dtype=float).reshape(17, 3)[[0, 1, 2, 5, 6]]
    anns = [dict(ann, id=1, keypoints=kp.reshape(-1).tolist(), num_keypoints=5),
            dict(ann, id=2, keypoints=[0] * 15, num_keypoints=0)]
    cats = [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(kset.names), "skeleton": []}]
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "person_keypoints_tiny.json").write_text(
        json.dumps({"images": [image], "annotations": anns, "categories": cats}))
    (tmp_path / "images" / "tiny").mkdir(parents=True)
    shutil.copy(os.path.join(MINI, "images", image["file_name"]), tmp_path / "images" / "tiny")
    codec = HeatmapCodec(image_size=(192, 256), heatmap_size=(48, 64), sigma=2)
    common = dict(root=str(tmp_path), image_set="tiny", image_size=(192, 256), codec=codec, keypoint_set=kset)
    ds = CocoKeypoints(is_train=False, **common)
    assert len(ds) == 1 and ds.db[0]["joints_3d"].shape == (5, 3)
    inp, target, weight, meta = ds[0]
    assert target.shape == (5, 64, 48) and weight.shape == (5, 1)

    no_jitter = dict(scale_factor=0.0, rot_factor=0.0, prob_half_body=0.0)
    flipped = CocoKeypoints(is_train=True, transform_cfg=AugmentationConfig(flip=True, flip_prob=1.0, **no_jitter),
                            **common)
    np.random.seed(0)
    f = flipped.prepare(0)
    width = 640
    expected = ds.db[0]["joints_3d"].copy()
    expected[:, 0] = width - expected[:, 0] - 1
    expected = expected[[0, 2, 1, 4, 3]]
    np.testing.assert_allclose(f["joints"][:, :2], (expected[:, :2] @ f["trans"][:, :2].T) + f["trans"][:, 2])
    assert f["center"][0] == pytest.approx(width - ds.db[0]["center"][0] - 1)
    # the official centre flip (c_x -> W - c_x - 1) makes the flipped crop the mirror of the plain crop shifted by
    # one crop column: flipped[:, j] == plain[:, w - j]
    mirrored = ds.prepare(0)["crop"][:, ::-1].astype(np.int16)
    diff = np.abs(f["crop"][:, 1:].astype(np.int16) - mirrored[:, :-1])
    assert diff.max() <= 1
