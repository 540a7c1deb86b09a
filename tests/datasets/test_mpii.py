"""MPII: the official annotation loading (centre shift, 1.25 padding, 1-based to 0-based), the one crop and codec of
the COCO path, json order kept for the evaluator, clear errors, build_dataset dispatch from the official yamls, and the
synthetic MPII generator (deterministic, gt_valid.mat consistent with the json)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.io

from hrnet_pose.codecs.heatmap import HeatmapCodec
from hrnet_pose.config import load_config
from hrnet_pose.datasets.build import build_dataloader, build_dataset
from hrnet_pose.datasets.mpii import MpiiAnnotationError, MpiiKeypoints, mpii_center_scale
from hrnet_pose.datasets.synthetic_mpii import generate_synthetic_mpii
from hrnet_pose.datasets.transforms import AugmentationConfig
from hrnet_pose.evaluation.mpii import load_gt_mat
from hrnet_pose.keypoints import MPII16
from hrnet_pose.models import build_model

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUICKSTART = os.path.join(REPO, "experiments", "synthetic", "mpii_quickstart.yaml")
OFFICIAL = [os.path.join(REPO, "experiments", "mpii", "hrnet", f"w{w}_256x256_adam_lr1e-3.yaml") for w in (32, 48)]


@pytest.fixture(scope="module")
def smpii(tmp_path_factory):
    return generate_synthetic_mpii(str(tmp_path_factory.mktemp("smpii")), num_train=6, num_val=4, seed=3,
                                   image_size=(128, 128))


def _codec(size=64):
    return HeatmapCodec(image_size=(size, size), heatmap_size=(size // 4, size // 4), sigma=2, post_process=True)


def test_official_yamls_merge_unchanged_and_build_a_16_joint_model():
    for path in OFFICIAL:
        cfg = load_config(path)
        assert cfg.DATASET.DATASET == "mpii" and cfg.DATASET.KEYPOINT_SET == "mpii" and cfg.MODEL.NUM_JOINTS == 16
        assert cfg.DATASET.TEST_SET == "valid" and cfg.MODEL.IMAGE_SIZE == [256, 256]
    # only a config that names its dataset gets MPII-16: DATASET.DATASET's default is also 'mpii' (the official
    # default), and configs that never mention it (zoo entries, inference configs) keep COCO-17
    assert load_config(None).DATASET.KEYPOINT_SET == ""
    assert load_config(None, ["DATASET.DATASET", "mpii"]).DATASET.KEYPOINT_SET == "mpii"
    assert load_config(OFFICIAL[0], ["DATASET.KEYPOINT_SET", "coco"]).DATASET.KEYPOINT_SET == "coco"
    model = build_model(load_config(OFFICIAL[0]))
    # official pose_hrnet_w32 (28,536,113 parameters with 17 joints) less one output channel: 32 weights + 1 bias
    assert sum(p.numel() for p in model.parameters()) == 28_536_113 - 33


def test_mpii16_keypoint_set_is_the_official_layout():
    assert MPII16.num_keypoints == 16 and MPII16.names[6:10] == ("pelvis", "thorax", "upper_neck", "head_top")
    assert MPII16.flip_pairs == ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))
    assert MPII16.upper_body_ids == (7, 8, 9, 10, 11, 12, 13, 14, 15)
    for a, b in MPII16.flip_pairs:  # every pair is right/left of the same joint
        assert MPII16.names[a].replace("right", "left") == MPII16.names[b]


def _write_mpii(root, entries, image_set="valid", images=("a.jpg",)):
    os.makedirs(os.path.join(root, "annot"), exist_ok=True)
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    with open(os.path.join(root, "annot", f"{image_set}.json"), "w") as f:
        json.dump(entries, f)
    import cv2

    for name in images:
        cv2.imwrite(os.path.join(root, "images", name), np.full((300, 400, 3), 90, np.uint8))


def _entry(image="a.jpg", center=(201.0, 101.0), scale=0.8):
    joints = [[150.0 + 5 * j, 80.0 + 6 * j] for j in range(16)]
    vis = [1] * 16
    vis[3] = 0
    return {"image": image, "center": list(center), "scale": scale, "joints": joints, "joints_vis": vis}


def test_records_follow_the_official_get_db(tmp_path):
    root = str(tmp_path / "mpii")
    entries = [_entry(), _entry(image="b.jpg", center=(-1.0, 50.0), scale=1.5), _entry()]
    _write_mpii(root, entries, images=("a.jpg", "b.jpg"))
    ds = MpiiKeypoints(root, "valid", is_train=False, image_size=(64, 64), codec=_codec())
    assert len(ds) == 3 and ds.use_gt_bbox and ds.gt_file == os.path.join(root, "annot", "gt_valid.mat")
    rec = ds.db[0]
    # centre moved down by 15 x scale px and padded 1.25, then 1-based -> 0-based: all exact in float64
    assert rec["center"].tolist() == [200.0, 100.0 + 15 * 0.8] and rec["scale"].tolist() == [0.8 * 1.25] * 2
    assert rec["joints_3d"][:, :2].tolist() == (np.array(entries[0]["joints"]) - 1).tolist()
    assert rec["joints_3d_vis"][:, 0].tolist() == rec["joints_3d_vis"][:, 1].tolist() == entries[0]["joints_vis"]
    assert not rec["joints_3d_vis"][:, 2].any()
    # centre x == -1 is the official "no box": neither moved nor padded
    assert ds.db[1]["center"].tolist() == [-2.0, 49.0] and ds.db[1]["scale"].tolist() == [1.5, 1.5]
    # json order kept (gt_valid.mat's order); image ids by first appearance of the file name
    assert [r["image_id"] for r in ds.db] == [0, 1, 0]
    c, s = mpii_center_scale([201.0, 101.0], 0.8)
    assert np.array_equal(c, rec["center"]) and np.array_equal(s, rec["scale"])


def test_test_split_has_no_joints(tmp_path):
    root = str(tmp_path / "mpii")
    entry = _entry()
    del entry["joints"], entry["joints_vis"]
    _write_mpii(root, [entry], image_set="test")
    ds = MpiiKeypoints(root, "test", is_train=False, image_size=(64, 64), codec=_codec())
    assert not ds.has_labels and not ds.db[0]["joints_3d"].any() and not ds.db[0]["joints_3d_vis"].any()
    _, target, weight, meta = ds[0]
    assert target.shape == (16, 16, 16) and not weight.any()


def test_sample_crops_and_encodes_like_the_coco_path(smpii):
    codec = _codec()
    ds = MpiiKeypoints(smpii, "valid", is_train=False, image_size=(64, 64), codec=codec)
    inp, target, weight, meta = ds[0]
    assert inp.shape == (3, 64, 64) and target.shape == (16, 16, 16) and weight.shape == (16, 1)
    assert meta["index"] == 0 and meta["score"] == 1.0
    rec = ds.db[0]
    vis = rec["joints_3d_vis"][:, 0] > 0
    assert np.array_equal(weight[:, 0].numpy() > 0, vis)
    # the targets decode back to the annotated joints: the gaussian sits on the nearest heatmap pixel, so the error
    # is at most half a heatmap pixel per axis, i.e. sqrt(2)/2 x (200 x scale / 16) image pixels (+ float slack)
    preds, _ = codec.decode(target[None].numpy(), rec["center"][None], rec["scale"][None])
    err = np.linalg.norm(preds[0][vis] - rec["joints_3d"][vis, :2], axis=1)
    assert err.max() <= np.sqrt(2) / 2 * 200 * rec["scale"][0] / 16 + 1e-3
    # fast decoding (no image sizes in MPII: it reads the size from the file) gives the same crop
    fast = MpiiKeypoints(smpii, "valid", is_train=False, image_size=(64, 64), codec=codec, fast_decode=True)
    assert np.array_equal(fast.prepare(0)["crop"], ds.prepare(0)["crop"])


def test_training_flip_swaps_the_mpii_pairs(smpii):
    flip_only = AugmentationConfig(flip=True, flip_prob=1.0, scale_factor=0.0, rot_factor=0.0, prob_half_body=0.0)
    plain = MpiiKeypoints(smpii, "train", is_train=False, image_size=(64, 64), codec=_codec())
    flipped = MpiiKeypoints(smpii, "train", is_train=True, image_size=(64, 64), codec=_codec(),
                            transform_cfg=flip_only)
    a, b = plain.prepare(0), flipped.prepare(0)
    width = plain.read_image(plain.db[0]["image"]).shape[1]
    both = (a["joints_vis"][:, 0] > 0) & (b["joints_vis"][MPII16.flip_index, 0] > 0)
    # mirrored about the image (official: x -> W - 1 - x) with right and left swapped
    src, dst = plain.db[0]["joints_3d"], b["joints"]
    # back to image pixels through the crop's matrix; 1e-6 px: float64 round trip of an affine map on ~100 px values
    mirrored = np.linalg.solve(np.vstack([b["trans"], [0, 0, 1]]), np.c_[dst[:, :2], np.ones(16)].T).T[:, :2]
    np.testing.assert_allclose(mirrored[MPII16.flip_index][both, 0], width - 1 - src[both, 0], atol=1e-6)
    np.testing.assert_allclose(mirrored[MPII16.flip_index][both, 1], src[both, 1], atol=1e-6)
    assert both.sum() >= 4


def test_malformed_annotations_name_the_entry_and_key(tmp_path):
    root = str(tmp_path / "mpii")
    bad = _entry()
    bad["joints"] = bad["joints"][:15]
    _write_mpii(root, [_entry(), bad])
    with pytest.raises(MpiiAnnotationError, match=r"valid.json: entry 1 has 'joints' of shape \(15, 2\)"):
        MpiiKeypoints(root, "valid", is_train=False, image_size=(64, 64))
    _write_mpii(root, [_entry(scale=0)])
    with pytest.raises(MpiiAnnotationError, match="entry 0 has 'scale' 0"):
        MpiiKeypoints(root, "valid", is_train=False, image_size=(64, 64))
    with pytest.raises(FileNotFoundError, match=r"annot/train.json(.|\n)*images/<image from the json"):
        MpiiKeypoints(root, "train", is_train=True, image_size=(64, 64))
    with pytest.raises(MpiiAnnotationError, match="16 joints but the keypoint set 'coco' has 17"):
        MpiiKeypoints(root, "valid", is_train=False, image_size=(64, 64), keypoint_set="coco")


def test_build_dataset_from_the_quickstart_generates_and_batches(tmp_path):
    root = str(tmp_path / "synthetic_mpii")
    cfg = load_config(QUICKSTART, ["DATASET.ROOT", root, "SYNTHETIC.NUM_TRAIN_IMAGES", "3",
                                   "SYNTHETIC.NUM_VAL_IMAGES", "2", "WORKERS", "0", "TRAIN.BATCH_SIZE_PER_GPU", "2"])
    assert cfg.DATASET.KEYPOINT_SET == "mpii"
    train = build_dataset(cfg, "train")
    val = build_dataset(cfg, "val")
    assert isinstance(train, MpiiKeypoints) and train.is_train and not val.is_train
    assert os.path.isfile(os.path.join(root, "annot", "gt_valid.mat"))
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".synthetic-")], "temp dir left behind"
    inp, target, weight, meta = next(iter(build_dataloader(cfg, train, "train")))
    assert inp.shape == (2, 3, 64, 64) and target.shape == (2, 16, 16, 16) and weight.shape == (2, 16, 1)
    cfg = load_config(QUICKSTART, ["DATASET.ROOT", root, "DATASET.IMAGE_CACHE_DIR", str(tmp_path / "cache")])
    with pytest.raises(ValueError, match="DATASET.IMAGE_CACHE_DIR"):
        build_dataset(cfg, "val")


def test_synthetic_mpii_is_deterministic_and_its_gt_mat_matches_the_json(smpii, tmp_path):
    again = generate_synthetic_mpii(str(tmp_path / "again"), num_train=6, num_val=4, seed=3, image_size=(128, 128))
    for name in ("train.json", "valid.json"):
        assert open(os.path.join(smpii, "annot", name), "rb").read() == \
            open(os.path.join(again, "annot", name), "rb").read()
    assert sorted(os.listdir(os.path.join(smpii, "images"))) == sorted(os.listdir(os.path.join(again, "images")))
    entries = json.load(open(os.path.join(smpii, "annot", "valid.json")))
    gt = load_gt_mat(os.path.join(smpii, "annot", "gt_valid.mat"))
    assert len(gt) == len(entries) > 0
    assert np.array_equal(gt.joints, np.array([e["joints"] for e in entries]))
    assert np.array_equal(~gt.missing, np.array([e["joints_vis"] for e in entries], bool))
    # head top and upper neck lie on the head box's edge circle: inside the box, at opposite ends of the head
    top, neck = gt.joints[:, 9], gt.joints[:, 8]
    lo, hi = gt.headboxes[:, 0], gt.headboxes[:, 1]
    ok = ~gt.missing[:, 9]
    assert np.all((top[ok] >= lo[ok] - 0.01) & (top[ok] <= hi[ok] + 0.01))
    side = hi[:, 0] - lo[:, 0]
    both = ok & ~gt.missing[:, 8]
    np.testing.assert_allclose(np.linalg.norm(top - neck, axis=1)[both], side[both], atol=0.02)  # json rounding


def test_make_synthetic_cli_mpii(tmp_path):
    out = tmp_path / "cli"
    subprocess.run([sys.executable, os.path.join(REPO, "tools", "make_synthetic.py"), "--format", "mpii", "--out",
                    str(out), "--num-train", "2", "--num-val", "1", "--seed", "5", "--image-size", "96", "96"],
                   check=True, capture_output=True)
    ref = generate_synthetic_mpii(str(tmp_path / "api"), 2, 1, seed=5, image_size=(96, 96))
    assert open(out / "annot" / "valid.json").read() == open(os.path.join(ref, "annot", "valid.json")).read()
    assert set(scipy.io.loadmat(str(out / "annot" / "gt_valid.mat"))) >= {"pos_gt_src", "headboxes_src"}


def test_an_official_mpii_checkpoint_loads_strictly_and_a_coco_one_is_refused_naming_the_final_layer(tmp_path):
    """A 16-joint state dict in the official layout (as pose_hrnet_w32_256x256.pth is) loads strictly into the model
    of an MPII yaml; a 17-joint COCO one fails with one line naming final_layer and both shapes."""
    import torch

    from hrnet_pose.errors import format_user_error
    from hrnet_pose.models import CheckpointMismatchError, load_weights

    tiny = os.path.join(REPO, "tests", "fixtures", "official_hrnet_tiny_a.yaml")
    mpii_cfg = load_config(tiny, ["DATASET.DATASET", "mpii", "MODEL.NUM_JOINTS", "16"])
    official_mpii = build_model(mpii_cfg).state_dict()  # the official key names and shapes, 16 heatmaps
    path = str(tmp_path / "pose_hrnet_mpii.pth")
    torch.save(official_mpii, path)
    model = build_model(mpii_cfg)
    report = load_weights(model, path)
    assert report.loaded == len(official_mpii) and model.final_layer.out_channels == 16
    coco = torch.load(os.path.join(REPO, "tests", "fixtures", "official_hrnet_tiny_a.pt"), weights_only=True)
    with pytest.raises(CheckpointMismatchError) as err:
        load_weights(build_model(mpii_cfg), coco["state_dict"])
    line = format_user_error(err.value)[0]
    assert "final_layer.weight: checkpoint (17, 16, 1, 1) vs model (16, 16, 1, 1)" in line


def test_flip_test_uses_the_mpii_pairs_a_mirrored_input_gives_mirrored_joints():
    """With the MPII set's flip index the flip test commutes with mirroring: heatmaps of a mirrored crop are the
    flipped-back heatmaps of the crop (UDP's exact flip, so no one-column shift breaks the symmetry)."""
    import torch

    from hrnet_pose.codecs.flip import flip_back
    from hrnet_pose.models.inference import heatmaps_with_flip, model_runner

    cfg = load_config(QUICKSTART)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    x = torch.randn(2, 3, int(cfg.MODEL.IMAGE_SIZE[1]), int(cfg.MODEL.IMAGE_SIZE[0]))
    run = model_runner(model)
    plain = heatmaps_with_flip(run, x, MPII16.flip_index, True, False)
    mirrored = heatmaps_with_flip(run, x.flip(3), MPII16.flip_index, True, False)
    # the same per-sample forwards in another batch order: float32 rounding of a few convolutions at most
    torch.testing.assert_close(mirrored, flip_back(plain, MPII16.flip_index), atol=1e-5 * float(plain.abs().max()),
                               rtol=0)
    # and the MPII pairs are what makes it hold: COCO's index on 16 channels is not even a permutation of them
    assert sorted(MPII16.flip_index.tolist()) == list(range(16)) and MPII16.flip_index[0] == 5
