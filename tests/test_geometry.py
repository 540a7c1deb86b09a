"""Geometry: parity with the official affine / transform_preds / fliplr_joints, round trips, UDP matrix."""

from pathlib import Path

import numpy as np
import pytest

from hrnet_pose import geometry
from hrnet_pose.keypoints import COCO17

import testpaths

FIX = Path(testpaths.FIXTURES)


@pytest.fixture(scope="module")
def ref():
    return np.load(FIX / "official_postprocess_a_sliced.npz")


def test_get_affine_transform_matches_official_for_all_tuples(ref):
    assert len(ref["aff_center"]) == 16
    for i in range(16):
        mat = geometry.get_affine_transform(
            ref["aff_center"][i], ref["aff_scale"][i], ref["aff_rot"][i], ref["aff_output_size"][i],
            shift=ref["aff_shift"][i], inv=bool(ref["aff_inv"][i]),
        )
        np.testing.assert_allclose(mat, ref["aff_matrix"][i], atol=1e-5, rtol=0, err_msg=f"tuple {i}")


def test_transform_preds_matches_official(ref):
    out = geometry.transform_preds(ref["tp_coords"], ref["fp_center"][0], ref["fp_scale"][0], [48, 64])
    np.testing.assert_allclose(out, ref["tp_out"], atol=1e-5, rtol=0)


def test_fliplr_joints_matches_official(ref):
    joints, vis = geometry.fliplr_joints(ref["fliplr_joints_in"], ref["fliplr_vis_in"], 640, COCO17.flip_pairs)
    np.testing.assert_allclose(joints, ref["fliplr_joints_out"], atol=1e-5)
    np.testing.assert_allclose(vis, ref["fliplr_vis_out"], atol=1e-5)


@pytest.mark.parametrize("rot", [0.0, 17.0, -40.0])
def test_crop_then_map_back_round_trip(rot):
    rng = np.random.default_rng(0)
    center = np.array([320.5, 240.25])
    scale = np.array([1.5, 2.0])  # aspect 0.75 like the official pipeline
    pts = center + rng.uniform(-120, 120, size=(17, 2))
    fwd = geometry.get_affine_transform(center, scale, rot, (48, 64))
    inv = geometry.get_affine_transform(center, scale, rot, (48, 64), inv=True)
    back = geometry.affine_transform(geometry.affine_transform(pts, fwd), inv)
    np.testing.assert_allclose(back, pts, atol=1e-3)
    if rot == 0.0:
        np.testing.assert_allclose(
            geometry.transform_preds(geometry.affine_transform(pts, fwd), center, scale, (48, 64)), pts, atol=1e-3)


def test_udp_matrix_aligns_pixel_centres_and_inverts():
    center, scale, size = np.array([100.0, 150.0]), np.array([0.96, 1.28]), (192, 256)
    mat = geometry.get_warp_matrix_udp(center, scale, 0, size)
    # the box centre lands on the centre of the (size - 1) pixel grid and the box edges on the first/last pixel
    np.testing.assert_allclose(geometry.affine_transform(center, mat), [95.5, 127.5], atol=1e-9)
    corner = center - scale * 200 / 2
    np.testing.assert_allclose(geometry.affine_transform(corner, mat), [0.0, 0.0], atol=1e-9)
    inv = geometry.get_warp_matrix_udp(center, scale, 0, size, inv=True)
    pts = np.array([[3.0, 4.0], [191.0, 255.0], [50.25, 70.75]])
    np.testing.assert_allclose(geometry.affine_transform(geometry.affine_transform(pts, inv), mat), pts, atol=1e-9)


def test_udp_matrix_rotates_like_official_affine():
    # same rotation direction: the image of a point above the centre moves the same way under both matrices
    center, scale = np.array([200.0, 200.0]), np.array([1.0, 1.0])
    p = center + np.array([0.0, -50.0])
    a = geometry.affine_transform(p, geometry.get_affine_transform(center, scale, 30, (64, 64)))
    u = geometry.affine_transform(p, geometry.get_warp_matrix_udp(center, scale, 30, (64, 64)))
    a_dir = (a - 32.0) / np.linalg.norm(a - 32.0)
    u_dir = (u - 31.5) / np.linalg.norm(u - 31.5)
    np.testing.assert_allclose(a_dir, u_dir, atol=1e-6)
