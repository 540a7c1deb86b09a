"""int8 onnxruntime inference (`deploy.quantize`) against fp32 on TRAINED weights: its error and its AP, per setting.

`cpu_benchmark` measures the int8 route on whatever weights it is given, usually untrained ones, whose activations
say little about how a trained network quantises. This runs the whole route on a trained network and its own data:
the model (config + strict weights) is exported to fp32 ONNX in a temporary folder, quantised with
`quantize_onnx_static` calibrated on normalised crops of the TRAIN split (augmented as in training, numpy seeded),
and every route runs on the VAL split's GT-box crops (flip test as TEST.FLIP_TEST says):
- torch fp32: the model in eager mode (the reference for the fp32 ONNX graph);
- onnxruntime fp32: the exported graph (the reference for every int8 row);
- onnxruntime int8: one row per setting (per_channel, reduce_range, calibration method, heatmap layer in float).

Each row reports the heatmap max |diff| and the relative error (max |diff| / max |reference|), the keypoint distance
to the reference's keypoints decoded with the config's codec, in input-crop pixels and in image pixels (mean, median,
p99, max over all persons and joints, and the share moved more than 1 crop pixel: int8 rounding can flip the argmax
between two near-equal peaks, which the max shows and the mean hides), the OKS AP of the route (the official protocol
of `Validator`, GT boxes) and the mean distance to the ground truth of the labelled joints (image pixels), which puts
the int8 error in scale.

A synthetic config (DATASET.DATASET: synthetic) gets its data generated into the temporary folder with its SYNTHETIC
settings (at most `num_calibration` train images, `num_val_images` or SYNTHETIC.NUM_VAL_IMAGES val images: the same
images as the full set, which is generated image by image from the seed), so nothing is written under DATASET.ROOT.
Other datasets are read from DATASET.ROOT.

`validate_int8(cfg, weights_path, ...)` -> list of row dicts (JSON-ready); `format_int8_rows(rows)` -> a text table.
"""

import logging
import os
import tempfile
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..codecs.heatmap import build_codec
from ..datasets.build import build_dataset
from ..deploy.export import export_onnx
from ..deploy.onnx_backend import OnnxRuntimeBackend
from ..deploy.quantize import CALIBRATION_METHODS, quantize_onnx_static
from ..engine.validate import build_evaluator
from ..models import build_model, load_weights
from ..models.inference import heatmaps_with_flip
from .cpu_routes import torch_route

logger = logging.getLogger(__name__)

# per_channel x reduce_range x calibration, then the onnxruntime defaults of this repo with the heatmap layer in float
DEFAULT_SETTINGS: List[Dict[str, Any]] = [
    {"per_channel": pc, "reduce_range": rr, "method": method, "keep_last_float": False}
    for method in ("minmax", "percentile") for pc in (True, False) for rr in (True, False)
] + [{"per_channel": True, "reduce_range": True, "method": "minmax", "keep_last_float": True},
     {"per_channel": True, "reduce_range": False, "method": "minmax", "keep_last_float": True}]
SETTING_KEYS = ("per_channel", "reduce_range", "method", "keep_last_float")


def describe_setting(setting: Dict[str, Any]) -> str:
    """'per_channel, reduce_range, minmax' style label; 'per_tensor' / 'full_range' when switched off, 'fp32 head'
    when the heatmap layer stays in float."""
    parts = ["per_channel" if setting["per_channel"] else "per_tensor",
             "reduce_range" if setting["reduce_range"] else "full_range", setting["method"]]
    if setting.get("keep_last_float"):
        parts.append("fp32 head")
    return ", ".join(parts)


def _full_settings(settings: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Each setting with `quantize_onnx_static`'s defaults filled in; unknown keys and methods are refused."""
    out = []
    for setting in settings:
        unknown = sorted(set(setting) - set(SETTING_KEYS))
        if unknown:
            raise ValueError(f"unknown int8 setting key(s) {unknown} in {setting}; valid: {list(SETTING_KEYS)}")
        full = {"per_channel": True, "reduce_range": True, "method": "minmax", "keep_last_float": False, **setting}
        if full["method"] not in CALIBRATION_METHODS:
            raise ValueError(f"calibration method {full['method']!r} is not valid; valid: {list(CALIBRATION_METHODS)}")
        out.append(full)
    return out


def _data_cfg(cfg, root: Optional[str], num_train: int, num_val: Optional[int]):
    """A copy of `cfg` with GT boxes and, for synthetic data, DATASET.ROOT at `root` with the image counts given."""
    out = cfg.clone()
    out.defrost()
    out.TEST.USE_GT_BBOX = True
    if root is not None:
        out.DATASET.ROOT = root
        out.SYNTHETIC.NUM_TRAIN_IMAGES = min(int(out.SYNTHETIC.NUM_TRAIN_IMAGES), int(num_train))
        if num_val is not None:
            out.SYNTHETIC.NUM_VAL_IMAGES = int(num_val)
    out.freeze()
    return out


def _samples(dataset, limit: Optional[int] = None, seed: int = 0) -> Dict[str, np.ndarray]:
    """Crops [N, 3, H, W] and the box / id / ground-truth arrays of the first `limit` samples of `dataset`
    (augmentation, for a training set, drawn from `np.random` seeded with `seed`; the global state is restored)."""
    n = len(dataset) if limit is None else min(int(limit), len(dataset))
    if n == 0:
        raise ValueError(f"the {dataset.image_set!r} split of {dataset.root} has no person samples")
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        items = [dataset[i] for i in range(n)]
    finally:
        np.random.set_state(state)
    items = [it for it in items if it is not None]
    metas = [it[3] for it in items]
    return {
        "crops": np.stack([it[0].numpy() for it in items]).astype(np.float32),
        "centers": np.stack([np.asarray(m["center"]) for m in metas]),
        "scales": np.stack([np.asarray(m["scale"]) for m in metas]),
        "box_scores": np.array([float(m["score"]) for m in metas]),
        "image_ids": np.array([int(m["image_id"]) for m in metas]),
        "sample_ids": np.array([int(m["index"]) for m in metas]),
        "gt": np.stack([dataset.db[int(m["index"])]["joints_3d"][:, :2] for m in metas]).astype(np.float64),
        "gt_vis": np.stack([dataset.db[int(m["index"])]["joints_3d_vis"][:, 0] > 0 for m in metas]),
    }


def _heatmaps(route, crops: np.ndarray, flip_index, flip_test: bool, shift: bool, batch: int = 32) -> np.ndarray:
    """A route's heatmaps on `crops` in batches, flip-averaged as the validator does when `flip_test`."""
    out = [heatmaps_with_flip(route, crops[i:i + batch], flip_index, flip_test, shift)
           for i in range(0, len(crops), batch)]
    return np.concatenate(out).astype(np.float32)


def _decode(codec, heatmaps: np.ndarray, data: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Keypoints in input-crop pixels (the crop's own frame), in image pixels, and their scores."""
    n = len(heatmaps)
    w, h = (int(v) for v in codec.image_size)
    crop_center = np.tile(np.array([[w / 2.0, h / 2.0]], np.float32), (n, 1))
    crop_scale = np.tile(np.array([[w / 200.0, h / 200.0]], np.float32), (n, 1))
    crop_kp, _ = codec.decode(heatmaps, crop_center, crop_scale)
    image_kp, maxvals = codec.decode(heatmaps, data["centers"], data["scales"])
    return {"heatmaps": heatmaps, "crop": crop_kp.astype(np.float64), "image": image_kp.astype(np.float64),
            "maxvals": maxvals}


def _errors(out: Dict[str, np.ndarray], ref: Dict[str, np.ndarray]) -> Dict[str, float]:
    """Heatmap and keypoint error of `out` against `ref` (both from `_decode`)."""
    diff = np.abs(out["heatmaps"] - ref["heatmaps"])
    row = {"heatmap_max_abs_err": float(diff.max()),
           "heatmap_rel_err": float(diff.max() / max(float(np.abs(ref["heatmaps"]).max()), 1e-12))}
    for frame in ("crop", "image"):
        dist = np.linalg.norm(out[frame] - ref[frame], axis=-1)
        row.update({f"kp_{frame}_px_mean": float(dist.mean()), f"kp_{frame}_px_median": float(np.median(dist)),
                    f"kp_{frame}_px_p99": float(np.percentile(dist, 99)), f"kp_{frame}_px_max": float(dist.max())})
    row["kp_crop_frac_over_1px"] = float((np.linalg.norm(out["crop"] - ref["crop"], axis=-1) > 1.0).mean())
    return row


def _accuracy(cfg, dataset, out: Dict[str, np.ndarray], data: Dict[str, np.ndarray]) -> Dict[str, float]:
    """OKS AP with the validator's protocol (GT boxes) and the mean distance to the labelled ground truth."""
    evaluator = build_evaluator(cfg, dataset.coco, dataset.keypoint_set, use_gt_bbox=True)
    evaluator.process(out["image"], out["maxvals"], data["centers"], data["scales"], data["box_scores"],
                      data["image_ids"], data["sample_ids"])
    stats = evaluator.evaluate(output_dir=None, name=str(cfg.DATASET.TEST_SET))
    dist = np.linalg.norm(out["image"] - data["gt"], axis=-1)[data["gt_vis"]]
    return {"AP": float(stats["AP"]), "gt_err_image_px_mean": float(dist.mean()) if dist.size else float("nan")}


def _int8_row(fp32_path: str, work_dir: str, setting: Dict[str, Any], calibration: np.ndarray, threads: int,
              run, refs: Dict[str, Dict[str, np.ndarray]]) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
    """Quantise with `setting`, run it (`run(route) -> decoded`), compare with both fp32 references; returns the
    row and the decoded output."""
    label = describe_setting(setting)
    path = os.path.join(work_dir, "int8_" + label.replace(", ", "_").replace(" ", "_") + ".onnx")
    quantize_onnx_static(fp32_path, path, calibration, per_channel=setting["per_channel"],
                         reduce_range=setting["reduce_range"], method=setting["method"],
                         keep_last_float=setting["keep_last_float"])
    out = run(OnnxRuntimeBackend(path, device="cpu", num_threads=threads))
    vs_torch = _errors(out, refs["torch fp32"])
    row = {"route": "onnxruntime int8", "setting": label, **setting, "reference": "onnxruntime fp32",
           **_errors(out, refs["onnxruntime fp32"]),
           "kp_image_px_mean_vs_torch": vs_torch["kp_image_px_mean"]}
    return row, out


def validate_int8(cfg, weights_path: str, num_calibration: int = 32,
                  settings: Sequence[Dict[str, Any]] = DEFAULT_SETTINGS, num_val_images: Optional[int] = None,
                  threads: int = 1, seed: int = 0) -> List[Dict[str, Any]]:
    """Rows (see module docstring) for the model of `cfg` with the trained state dict `weights_path`: torch fp32,
    onnxruntime fp32, then one onnxruntime int8 row per entry of `settings` (dicts of SETTING_KEYS; missing keys
    take `quantize_onnx_static`'s defaults). `num_calibration` train crops calibrate every int8 model."""
    if num_calibration < 1:
        raise ValueError(f"num_calibration must be >= 1, got {num_calibration}")
    settings = _full_settings(settings)
    if not os.path.isfile(weights_path):
        raise FileNotFoundError(f"weights not found: {weights_path} (a state dict trained with this config)")
    model = build_model(cfg, is_train=False)
    load_weights(model, weights_path)
    model.eval()
    codec = build_codec(cfg)
    w, h = (int(v) for v in cfg.MODEL.IMAGE_SIZE)
    with tempfile.TemporaryDirectory(prefix="int8-validation-") as tmp:
        synthetic = str(cfg.DATASET.DATASET).lower() == "synthetic"
        data_cfg = _data_cfg(cfg, os.path.join(tmp, "data") if synthetic else None, num_calibration, num_val_images)
        calibration = _samples(build_dataset(data_cfg, "train", codec), num_calibration, seed)["crops"]
        val_set = build_dataset(data_cfg, "val", codec)
        data = _samples(val_set, seed=seed)
        flip = (val_set.keypoint_set.flip_index, bool(cfg.TEST.FLIP_TEST), codec.flip_shift)

        def run(route) -> Dict[str, np.ndarray]:
            return _decode(codec, _heatmaps(route, data["crops"], *flip), data)

        fp32_path = export_onnx(model, os.path.join(tmp, "model_fp32.onnx"), (w, h))
        refs = {"torch fp32": run(torch_route(model)),
                "onnxruntime fp32": run(OnnxRuntimeBackend(fp32_path, device="cpu", num_threads=threads))}
        common = {"num_val_persons": len(data["crops"]), "num_calibration": len(calibration),
                  "flip_test": flip[1], "decoder": codec.decoder, "input_size": [w, h]}
        rows = [{"route": "torch fp32", "setting": "eager", "reference": "",
                 **_accuracy(cfg, val_set, refs["torch fp32"], data), **common},
                {"route": "onnxruntime fp32", "setting": "exported graph", "reference": "torch fp32",
                 **_errors(refs["onnxruntime fp32"], refs["torch fp32"]),
                 **_accuracy(cfg, val_set, refs["onnxruntime fp32"], data), **common}]
        for setting in settings:
            row, out = _int8_row(fp32_path, tmp, setting, calibration, threads, run, refs)
            rows.append({**row, **_accuracy(cfg, val_set, out, data), **common})
            logger.info("int8 %s: keypoints mean %.3f / max %.2f image px from fp32, AP %.4f", row["setting"],
                        row["kp_image_px_mean"], row["kp_image_px_max"], rows[-1]["AP"])
    return rows


def format_int8_rows(rows: List[Dict[str, Any]]) -> str:
    """A text table: one line per route / setting with its errors against its reference (heatmap max |diff| and
    relative, keypoints in crop and image pixels: mean / median / p99 / max, share moved over 1 crop px), its AP and
    its mean distance to the labelled ground truth (image px)."""
    head = (f"{'route, setting':<56} {'hm max':>6} {'rel':>5}  {'crop px mean/med/p99/max':<25} "
            f"{'image px mean/med/p99/max':<26} {'>1px':>5} {'AP':>6} {'GT px':>5}")
    lines = [head]
    for r in rows:
        label = f"{r['route']}, {r['setting']}".replace("onnxruntime ", "ort ")
        if r.get("reference"):
            kp = {f: "/".join(f"{r[f'kp_{f}_px_{s}']:.2f}" for s in ("mean", "median", "p99", "max"))
                  for f in ("crop", "image")}
            err = (f"{r['heatmap_max_abs_err']:6.3f} {r['heatmap_rel_err']:5.3f}  {kp['crop']:<25} "
                   f"{kp['image']:<26} {100 * r['kp_crop_frac_over_1px']:4.1f}%")
        else:
            err = f"{'(reference)':<73}"
        lines.append(f"{label:<56} {err} {r['AP']:6.4f} {r['gt_err_image_px_mean']:5.2f}")
    return "\n".join(lines)
