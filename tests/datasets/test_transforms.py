"""Training transforms: flip round trip, half body, zero augmentation = eval crop, seeding, photometric, UDP."""

import os

import numpy as np
import pytest
import torch

from hrnet_pose.codecs.heatmap import HeatmapCodec
from hrnet_pose.datasets import AugmentationConfig, CocoKeypoints, build_dataloader, worker_init_fn
from hrnet_pose.datasets.transforms import (
    flip_sample,
    half_body_transform,
    random_scale_rotation,
)
from hrnet_pose.geometry import get_warp_matrix_udp
from hrnet_pose.keypoints import COCO17

from testpaths import MINI, MINI_VAL_ANN

CODEC = HeatmapCodec(image_size=(192, 256), heatmap_size=(48, 64), sigma=2)


def mini(is_train: bool, cfg: AugmentationConfig = None, codec=CODEC) -> CocoKeypoints:
    return CocoKeypoints(MINI, "mini_val2017", is_train, (192, 256), codec=codec, transform_cfg=cfg,
                         ann_file=MINI_VAL_ANN, image_dir=os.path.join(MINI, "images"))


@pytest.fixture(scope="module")
def person():
    """A real annotated person with 17 visible joints (image 785)."""
    rec = mini(False).db[0]
    assert rec["joints_3d_vis"][:, 0].sum() == 17
    return rec


def test_flip_twice_is_identity(person):
    image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    once = flip_sample(image, person["joints_3d"], person["joints_3d_vis"], person["center"], COCO17.flip_pairs)
    assert not np.allclose(once[1], person["joints_3d"])
    twice = flip_sample(*once, COCO17.flip_pairs)
    np.testing.assert_array_equal(twice[0], image)
    np.testing.assert_allclose(twice[1], person["joints_3d"])
    np.testing.assert_array_equal(twice[2], person["joints_3d_vis"])
    np.testing.assert_allclose(twice[3], person["center"])
    # the left wrist (9) of the flipped sample is the mirrored right wrist (10)
    assert once[1][9, 0] == 640 - person["joints_3d"][10, 0] - 1


@pytest.mark.parametrize("use_randn", [False, True])
def test_half_body_picks_a_sub_box(person, use_randn):
    joints, vis = person["joints_3d"], person["joints_3d_vis"]
    full_scale = person["scale"]
    np.random.seed(3)
    for _ in range(20):
        center, scale = half_body_transform(joints, vis, COCO17.upper_body_ids, 0.75, use_randn=use_randn)
        assert center is not None and scale.dtype == np.float32
        assert np.all(scale < full_scale)
        assert scale[0] / scale[1] == pytest.approx(0.75, rel=1e-5)
        half = scale * 200 / 2
        inside = np.all(np.abs(joints[:, :2] - center) <= half, axis=1)
        # every joint of the chosen half lies inside the new box, and the box leaves the other half out
        assert inside[list(COCO17.upper_body_ids)].all() or inside[list(COCO17.lower_body_ids)].all()
        assert not inside.all()
    # only the upper body visible: it must be chosen; fewer than 2 visible joints: no box
    upper_only = vis.copy()
    upper_only[11:] = 0
    center, _ = half_body_transform(joints, upper_only, COCO17.upper_body_ids, 0.75)
    np.testing.assert_allclose(center, joints[:11, :2].mean(0), rtol=1e-5)
    one = np.zeros_like(vis)
    one[0] = 1
    assert half_body_transform(joints, one, COCO17.upper_body_ids, 0.75) == (None, None)


def test_scale_and_rotation_stay_in_official_ranges():
    np.random.seed(0)
    draws = [random_scale_rotation(np.ones(2, np.float32), 0.35, 45) for _ in range(2000)]
    scales = np.array([s[0] for s, _ in draws])
    rots = np.array([r for _, r in draws])
    assert scales.min() >= 0.65 - 1e-6 and scales.max() <= 1.35 + 1e-6
    assert rots.min() >= -90 and rots.max() <= 90
    assert 0.35 < np.mean(rots == 0) < 0.45  # rotation applied with p = 0.6


def test_zero_augmentation_gives_the_eval_crop():
    cfg = AugmentationConfig(flip=False, scale_factor=0.0, rot_factor=0.0, prob_half_body=0.0)
    train, test = mini(True, cfg), mini(False)
    np.random.seed(0)
    for i in (0, 5):
        a, b = train.prepare(i), test.prepare(i)
        np.testing.assert_array_equal(a["crop"], b["crop"])
        np.testing.assert_allclose(a["joints"], b["joints"])
        assert a["rotation"] == 0


def test_augmentation_is_deterministic_given_the_seed():
    cfg = AugmentationConfig(prob_half_body=0.5, photometric=True)
    ds = mini(True, cfg)

    def draw(seed):
        np.random.seed(seed)
        return [ds[i] for i in range(3)]

    first, again, other = draw(7), draw(7), draw(8)
    for x, y in zip(first, again):
        torch.testing.assert_close(x[0], y[0])
        torch.testing.assert_close(x[1], y[1])
        assert x[3]["rotation"] == y[3]["rotation"]
    assert any(not torch.equal(x[0], z[0]) for x, z in zip(first, other))


def test_photometric_changes_colours_not_geometry():
    geo = dict(flip=False, scale_factor=0.0, rot_factor=0.0, prob_half_body=0.0)
    plain = mini(True, AugmentationConfig(**geo))
    photo = mini(True, AugmentationConfig(photometric=True, prob=1.0, **geo))
    np.random.seed(1)
    a = plain.prepare(0)
    np.random.seed(1)
    b = photo.prepare(0)
    assert b["crop"].shape == a["crop"].shape and b["crop"].dtype == np.uint8
    assert not np.array_equal(a["crop"], b["crop"])
    np.testing.assert_allclose(a["joints"], b["joints"])


def test_udp_codec_switches_the_warp():
    udp = HeatmapCodec(image_size=(192, 256), heatmap_size=(48, 64), sigma=2, use_udp=True)
    ds = mini(False, codec=udp)
    sample = ds.prepare(0)
    rec = ds.db[0]
    np.testing.assert_allclose(sample["trans"], get_warp_matrix_udp(rec["center"], rec["scale"], 0, (192, 256)))
    inp, target, weight, _ = ds[0]
    assert target.shape == (17, 64, 48) and weight.sum() == 17


def test_dataloader_workers_are_seeded():
    from hrnet_pose.config import get_cfg

    cfg = get_cfg()
    cfg.defrost()
    cfg.WORKERS = 2
    cfg.TRAIN.BATCH_SIZE_PER_GPU = 2
    ds = mini(True, AugmentationConfig())

    def first_batch():
        torch.manual_seed(123)
        loader = build_dataloader(cfg, ds, "train")
        assert loader.worker_init_fn is worker_init_fn
        return next(iter(loader))

    a, b = first_batch(), first_batch()
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[3]["rotation"], b[3]["rotation"])
    assert a[3]["num_skipped"] == 0
