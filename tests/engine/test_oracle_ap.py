"""Oracle-heatmap AP: the Validator, fed by a "model" that outputs the codec's encoding of the ground truth, gives
AP = 1.0 on real COCO images through the whole pipeline (crop, flip test and its alignment, decode, rescoring,
OKS-NMS, COCOeval) for the official, DARK and UDP codecs; and the protocol it prints says what ran."""

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from hrnet_pose.codecs.heatmap import build_codec
from hrnet_pose.config import load_config
from hrnet_pose.datasets import CocoKeypoints, collate_skip_none
from hrnet_pose.engine.validate import Validator, describe_run_protocol
from hrnet_pose.geometry import fliplr_joints

import testpaths

ROOT = Path(testpaths.REPO)
MINI = Path(testpaths.MINI)
VAL_ANN = Path(testpaths.MINI_VAL_ANN)
OFFICIAL_YAML = Path(testpaths.OFFICIAL_W32_YAML)

# codec options on top of the official yaml (FLIP_TEST, SHIFT_HEATMAP and POST_PROCESS all true)
CODECS = {
    "official": [],
    "dark": ["CODEC.DECODER", "dark", "CODEC.UNBIASED_ENCODING", "True"],
    "udp": ["CODEC.UDP", "True"],
    "udp_dark": ["CODEC.UDP", "True", "CODEC.DECODER", "dark"],
}


def _key(image: torch.Tensor) -> str:
    return hashlib.sha1(image.contiguous().numpy().tobytes()).hexdigest()


class OracleHeatmaps(nn.Module):
    """What a perfect model outputs: for each crop of the dataset the codec's target for its ground truth, and for
    the mirrored crop the target of the mirrored joints (x -> W - 1 - x, left/right swapped). Crops are recognised by
    their bytes; `dtype` imitates the output of a low-precision forward."""

    def __init__(self, dataset: CocoKeypoints, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.dtype = dtype
        self.table = {}
        codec, width = dataset.codec, int(dataset.image_size[0])
        for i in range(len(dataset)):
            image, target, _, meta = dataset[i]
            self.table[_key(image)] = target
            joints, vis = fliplr_joints(meta["joints"], meta["joints_vis"], width, dataset.keypoint_set.flip_pairs)
            self.table[_key(image.flip(-1))] = torch.from_numpy(codec.encode(joints, vis)[0])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.table[_key(im)] for im in images.float()]).to(self.dtype)


def _validate(tmp_path, opts, dtype=torch.float32):
    cfg = load_config(str(OFFICIAL_YAML), list(opts) + ["ENGINE.PROGRESS_BAR", "False", "TEST.BATCH_SIZE_PER_GPU", "8"])
    codec = build_codec(cfg)
    dataset = CocoKeypoints(root=str(MINI), image_set="mini_val2017", is_train=False,
                            image_size=tuple(cfg.MODEL.IMAGE_SIZE), codec=codec, use_gt_bbox=True,
                            color_rgb=bool(cfg.DATASET.COLOR_RGB), ann_file=str(VAL_ANN), image_dir=str(MINI / "images"))
    loader = DataLoader(dataset, batch_size=8, collate_fn=collate_skip_none)
    validator = Validator(cfg, codec, dataset, loader, torch.device("cpu"), None, str(tmp_path))
    return validator.run(OracleHeatmaps(dataset, dtype)), validator


def _errors_in_heatmap_px(validator):
    """Max |decoded - GT| over labelled joints at least 4 heatmap px inside the crop, in heatmap pixels."""
    codec, dataset = validator.codec, validator.dataset
    kept = {(r["image_id"], tuple(np.round(r["center"], 3))): r for r in validator.evaluator.results}
    units = (codec.heatmap_size - 1) if codec.use_udp else codec.heatmap_size
    stride = ((codec.image_size - 1.0) if codec.use_udp else codec.image_size) / units
    worst = 0.0
    for i, rec in enumerate(dataset.db):
        res = kept[(rec["image_id"], tuple(np.round(np.asarray(rec["center"], np.float64), 3)))]
        pred = np.array(res["keypoints"]).reshape(-1, 3)[:, :2]
        crop_joints = dataset[i][3]["joints"][:, :2] / stride
        inside = np.minimum(crop_joints, (codec.heatmap_size - 1) - crop_joints).min(axis=1) >= 4
        ok = (rec["joints_3d_vis"][:, 0] > 0) & inside
        image_px_per_hm_px = rec["scale"][0] * 200.0 / units[0]
        worst = max(worst, (np.abs(pred - rec["joints_3d"][:, :2]).max(axis=1)[ok] / image_px_per_hm_px).max())
    return worst


@pytest.mark.parametrize("name,max_err,alignment,refinement", [
    ("official", 0.5, "shift", "quarter_offset"),  # integer targets: off by the rounding, at most half a pixel
    ("dark", 0.13, "shift", "dark"),  # the official shift leaves 1/4 px misalignment: half of it after averaging
    ("udp", 0.5, "udp_exact", "none"),  # argmax of sub-pixel targets
    ("udp_dark", 0.01, "udp_exact", "dark_udp"),  # exact flip, exact step
])
def test_oracle_heatmaps_give_ap_1(tmp_path, name, max_err, alignment, refinement):
    result, validator = _validate(tmp_path, CODECS[name])
    assert result["num_instances"] == 12 and len(validator.evaluator.results) == 12  # no person lost to NMS
    assert result["AP"] == 1.0 and result["AR"] == 1.0
    assert result["flip_alignment"] == alignment and result["refinement"] == refinement
    assert _errors_in_heatmap_px(validator) <= max_err
    assert (tmp_path / "results" / "keypoints_val2017_results_0.json").is_file()


def test_a_misaligned_flip_test_is_seen_by_the_oracle_ap(tmp_path):
    """Without the shift the official flip is 0.75 heatmap px off: the oracle AP drops (0.951 on these persons), and
    both COCO evaluation backends give the same numbers for it."""
    pytest.importorskip("faster_coco_eval", reason="faster-coco-eval is not installed (optional backend)")
    result, _ = _validate(tmp_path, ["TEST.SHIFT_HEATMAP", "False"])
    assert 0.9 < result["AP"] < 0.99 and result["flip_alignment"] == "none"
    fast, validator = _validate(tmp_path, ["TEST.SHIFT_HEATMAP", "False", "TEST.COCO_EVAL_BACKEND", "faster_coco_eval"])
    assert validator.evaluator.backend == "faster_coco_eval" and fast["eval_backend"] == "faster_coco_eval"
    assert "COCO eval: faster_coco_eval" in fast["protocol"]
    for key in ("AP", "Ap .5", "AP .75", "AP (M)", "AP (L)", "AR", "AR .5", "AR .75", "AR (M)", "AR (L)"):
        assert fast[key] == pytest.approx(result[key], abs=1e-9), key


def test_bf16_forward_is_stated_and_decoded_in_float32(tmp_path):
    result, _ = _validate(tmp_path, ["ENGINE.AMP", "bf16"], dtype=torch.bfloat16)
    assert result["AP"] == 1.0
    assert result["forward_precision"] == "bf16" and result["decode_precision"] == "float32"
    assert "forward bf16 autocast, heatmaps decoded in float32" in result["protocol"]


def test_unknown_eval_backend_names_the_key(tmp_path):
    with pytest.raises(ValueError, match=r"TEST.COCO_EVAL_BACKEND.*'detectron2'.*pycocotools"):
        _validate(tmp_path, ["TEST.COCO_EVAL_BACKEND", "detectron2"])


def test_readme_protocol_line_is_the_line_tools_test_prints():
    cfg = load_config(str(OFFICIAL_YAML))
    line, fields = describe_run_protocol(cfg, build_codec(cfg), bool(cfg.TEST.USE_GT_BBOX), cfg.TEST.COCO_BBOX_FILE)
    readme = (ROOT / "README.md").read_text()
    shown = re.search(r"for `w32_256x192_adam_lr1e-3.yaml` it is\n`([^`]+)`", readme)
    assert shown is not None, "README no longer shows the protocol line of the official W32 yaml"
    assert shown.group(1) == line
    assert fields["flip_alignment"] == "shift" and fields["refinement"] == "quarter_offset"
