"""CPU speed, plain (official behaviour) against fast, side by side in one run: evaluation, data pipeline, inference.

- evaluation: ~100k predictions on a 5,000-image synthetic set (`evaluation.synthetic_eval`). Plain = the official
  `evaluate()`: per-image OKS-NMS loop, result dicts, json written then read back by pycocotools' `loadRes`,
  pycocotools COCOeval. Fast = `CocoKeypointEvaluator` defaults (all-images NMS, vectorised COCOeval on arrays),
  with and without writing the results file. The 10 stats must be identical.
- data: samples/s of `CocoKeypoints` on one core (OpenCV and torch single-threaded, one process) on the real fixture
  images, training (augmented) and test (GT boxes) sets: plain, DATASET.FAST_DECODE, and FAST_DECODE with a filled
  DATASET.IMAGE_CACHE_DIR, interleaved in rounds; and the first pass that fills the cache. `data_cold` (not in the
  default parts; Linux, root): the training set with the page cache dropped before every pass, files from the disk.
- inference: batch latency of the pose network on real fixture crops. Official = the model as the official code
  runs it (fp32 eager, NCHW, `torch.no_grad`). Fast routes: BN folded (+ channels_last), TorchScript frozen with
  oneDNN (`torch.jit.optimize_for_inference`), onnxruntime fp32 (`deploy.onnx_backend`), onnxruntime int8
  (`deploy.quantize`). Each route reports its heatmap error and keypoint error (decoded, crop pixels) against the
  official output. Routes are timed in turn within each iteration, so load drifts hit all of them alike.

`run_cpu_benchmark(...)` -> list of row dicts (JSON-ready); `format_rows(rows)` -> a text table.
"""

import contextlib
import io
import json
import os
import statistics
import tempfile
import time
import warnings
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
import torch
from torch import nn

from ..codecs.heatmap import HeatmapCodec
from ..errors import UserError
from ..evaluation.coco_keypoints import STATS_NAMES, CocoKeypointEvaluator
from ..evaluation.oks_nms import oks_nms, rescore
from ..evaluation.synthetic_eval import make_synthetic_eval
from ..keypoints import COCO17
from .cpu_routes import ROUTES, build_routes, route_errors, time_routes


def _coco_from_dict(dataset: Dict):
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = dataset
        coco.createIndex()
    return coco


# ---------------------------------------------------------------------------------------------------- evaluation
def evaluate_plain(coco, preds: Dict[str, np.ndarray], res_file: str, oks_thre: float = 0.9,
                   in_vis_thre: float = 0.2, sigmas: np.ndarray = COCO17.sigmas) -> "Dict[str, float]":
    """The official evaluate(): rescoring, OKS-NMS image by image, the results json written and read back by
    pycocotools' loadRes, COCOeval('keypoints'). Returns the 10 stats."""
    from pycocotools.cocoeval import COCOeval

    kpts = np.concatenate([preds["preds"], preds["maxvals"]], axis=2)
    areas = np.prod(preds["scales"] * np.float32(200), axis=1).astype(np.float64)
    scores = rescore(preds["box_scores"], preds["maxvals"], in_vis_thre)
    image_ids = preds["image_ids"]
    uniq, first = np.unique(image_ids, return_index=True)
    results = []
    for img in uniq[np.argsort(first)]:
        idx = np.flatnonzero(image_ids == img)
        for i in idx[oks_nms(kpts[idx], scores[idx], areas[idx], oks_thre, sigmas=sigmas)]:
            results.append({"image_id": int(img), "category_id": 1, "keypoints": [float(v) for v in kpts[i].ravel()],
                            "score": float(scores[i]), "center": [float(v) for v in preds["centers"][i]],
                            "scale": [float(v) for v in preds["scales"][i]]})
    with open(res_file, "w") as f:
        json.dump(results, f)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_eval = COCOeval(coco, coco.loadRes(res_file), "keypoints")
        coco_eval.params.useSegm = None
        coco_eval.params.kpt_oks_sigmas = np.asarray(sigmas, np.float64)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return dict(zip(STATS_NAMES, (float(v) for v in coco_eval.stats[:10])))


def bench_evaluation(num_images: int = 5000, num_predictions: int = 100_000, seed: int = 0,
                     oks_thre: float = 0.9) -> List[Dict]:
    """Plain and fast evaluation of one synthetic set; rows with seconds, AP and whether all 10 stats are equal."""
    gt, preds = make_synthetic_eval(num_images, num_predictions, seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        coco, coco_plain = _coco_from_dict(gt), _coco_from_dict(json.loads(json.dumps(gt)))  # loading: not timed
        start = time.perf_counter()
        plain = evaluate_plain(coco_plain, preds, os.path.join(tmp, "plain.json"), oks_thre)
        plain_s = time.perf_counter() - start
        evaluator = CocoKeypointEvaluator(coco, use_gt_bbox=False, oks_thre=oks_thre)
        evaluator.process(**preds)
        timings = {}
        for label, out_dir in (("fast, results file written", tmp), ("fast, metrics only", None)):
            start = time.perf_counter()
            stats = evaluator.evaluate(output_dir=out_dir)
            timings[label] = (time.perf_counter() - start, stats)
    setting = f"{num_images} images, {len(preds['image_ids'])} predictions, OKS-NMS {oks_thre}"
    rows.append({"task": "evaluation", "variant": "plain: per-image NMS, json round trip, pycocotools",
                 "setting": setting, "seconds": plain_s, "AP": plain["AP"], "identical": True})
    for label, (seconds, stats) in timings.items():
        rows.append({"task": "evaluation", "variant": label + ", numpy COCOeval", "setting": setting,
                     "seconds": seconds, "AP": stats["AP"], "identical": stats == plain})
    return rows


# ---------------------------------------------------------------------------------------------------- data
def fixture_dataset(root: str, image_set: str, train: bool, fast: bool, image_size=(192, 256), color_rgb=True,
                    cache_dir: str = ""):
    """CocoKeypoints on a folder with annotations/person_keypoints_<set>.json and images/ (the fixture layout),
    the official COCO augmentation of the W32 yamls (scale 0.35, rotation 45, half body 0.3, flip)."""
    from ..datasets import AugmentationConfig, CocoKeypoints

    w, h = int(image_size[0]), int(image_size[1])
    return CocoKeypoints(
        root=root, image_set=image_set, is_train=train, image_size=(w, h),
        codec=HeatmapCodec(image_size=(w, h), heatmap_size=(w // 4, h // 4), sigma=2),
        ann_file=os.path.join(root, "annotations", f"person_keypoints_{image_set}.json"),
        image_dir=os.path.join(root, "images"), color_rgb=color_rgb, fast_decode=fast, image_cache_dir=cache_dir,
        transform_cfg=AugmentationConfig(scale_factor=0.35, rot_factor=45, prob_half_body=0.3))


@contextlib.contextmanager
def _single_core():
    cv_threads, torch_threads = cv2.getNumThreads(), torch.get_num_threads()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(cv_threads)
        torch.set_num_threads(torch_threads)


DATA_VARIANTS = {
    "plain": "plain: official decode",
    "fast": "fast: FAST_DECODE on",
    "cache": "fast: FAST_DECODE + IMAGE_CACHE_DIR, cache filled",
}


def _rate(ds, seconds: float, seed: int) -> float:
    np.random.seed(seed)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for i in range(len(ds)):
            ds[i]
        count += len(ds)
    return count / (time.perf_counter() - start)


def _pass_rate(ds, seed: int) -> float:
    """Samples/s of one pass over `ds` with the augmentation drawn from `seed`."""
    np.random.seed(seed)
    start = time.perf_counter()
    for i in range(len(ds)):
        ds[i]
    return len(ds) / (time.perf_counter() - start)


def _variant_sets(root: str, image_set: str, train: bool, image_size, cache_dir: str) -> Dict[str, object]:
    """The DATA_VARIANTS datasets of `image_set`, the image cache in `cache_dir` filled."""
    sets = {"plain": fixture_dataset(root, image_set, train, False, image_size),
            "fast": fixture_dataset(root, image_set, train, True, image_size),
            "cache": fixture_dataset(root, image_set, train, True, image_size, cache_dir=cache_dir)}
    for i in range(len(sets["cache"])):
        sets["cache"].prepare(i)
    return sets


def _first_pass_rate(root: str, image_set: str, train: bool, image_size, rounds: int) -> float:
    """Samples/s of one pass over the set into an empty image cache (every image decoded and stored once)."""
    rates = []
    for r in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            rates.append(_pass_rate(fixture_dataset(root, image_set, train, True, image_size, cache_dir=tmp), r))
    return statistics.median(rates)


def bench_data(root: str, train_set: str = "mini_train2017", test_set: str = "mini_val2017",
               image_size=(192, 256), seconds: float = 2.0, rounds: int = 3) -> List[Dict]:
    """Samples/s on one core of `dataset[i]` (decode, augmentation, warp, normalisation, targets) over the whole
    set: plain, FAST_DECODE, and FAST_DECODE with a filled image cache, in turn for `rounds` rounds of about
    `seconds` each (the median round is reported), plus the first pass that fills the cache."""
    rows = []
    with _single_core(), tempfile.TemporaryDirectory() as cache_dir:
        for train, image_set in ((True, train_set), (False, test_set)):
            sets = _variant_sets(root, image_set, train, image_size, cache_dir)
            rates: Dict[str, List[float]] = {k: [] for k in sets}
            for r in range(rounds):
                for key, ds in sets.items():
                    rates[key].append(_rate(ds, seconds, r))
            np.random.seed(0)
            factors = [sets["fast"].prepare(i)["decode_factor"] for i in range(len(sets["fast"]))]
            setting = f"{len(sets['plain'])} real COCO persons, input {image_size[0]}x{image_size[1]}, 1 core"
            task = "data " + ("train" if train else "test")
            for key, ds in sets.items():
                rows.append({"task": task, "variant": DATA_VARIANTS[key], "setting": setting,
                             "samples_per_s": statistics.median(rates[key]),
                             "reduced_fraction": float(np.mean(np.array(factors) > 1)) if key == "fast" else 0.0})
            rows.append({"task": task, "variant": "fast: FAST_DECODE + IMAGE_CACHE_DIR, first pass (fills it)",
                         "setting": setting, "reduced_fraction": 0.0,
                         "samples_per_s": _first_pass_rate(root, image_set, train, image_size, rounds)})
    return rows


def drop_page_cache() -> None:
    """Empty the operating system's file cache (Linux, root: /proc/sys/vm/drop_caches), so the next reads come from
    the disk; a clear error where that is not possible."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError as err:
        raise UserError("the cold-disk data benchmark (--parts data_cold) drops the page cache through "
                        f"/proc/sys/vm/drop_caches, which needs Linux and root ({err.strerror})") from err


def bench_data_cold(root: str, train_set: str = "mini_train2017", image_size=(192, 256),
                    rounds: int = 5) -> List[Dict]:
    """Training samples/s on one core when the files come from the disk: the page cache is dropped before each pass
    over the set (JPEGs for plain and FAST_DECODE, cache entries for the image cache, filled beforehand); the median
    of `rounds` passes per variant, interleaved."""
    with _single_core(), tempfile.TemporaryDirectory() as cache_dir:
        sets = _variant_sets(root, train_set, True, image_size, cache_dir)
        rates: Dict[str, List[float]] = {k: [] for k in sets}
        for r in range(rounds):
            for key, ds in sets.items():
                drop_page_cache()
                rates[key].append(_pass_rate(ds, r))
    setting = (f"{len(sets['plain'])} real COCO persons, input {image_size[0]}x{image_size[1]}, 1 core, "
               "page cache dropped before each pass")
    return [{"task": "data train, cold disk", "variant": DATA_VARIANTS[key], "setting": setting,
             "samples_per_s": statistics.median(rates[key]), "reduced_fraction": 0.0} for key in sets]


def fast_decode_ap(root: str, test_set: str = "mini_val2017", image_size=(192, 256),
                   model: Optional[nn.Module] = None) -> Dict:
    """AP on the fixture's GT boxes with plain and fast decoding. Oracle: heatmaps are the codec's targets of the
    ground truth, so the AP shows the geometry (boxes, joints, decoding) is unchanged. With `model`: its AP both
    ways and the mean keypoint shift (image px) between them, and the crops' mean absolute pixel difference."""
    out: Dict = {}
    sets = {fast: fixture_dataset(root, test_set, False, fast, image_size) for fast in (False, True)}
    preds: Dict[bool, np.ndarray] = {}
    diffs = []
    for fast, ds in sets.items():
        oracle = CocoKeypointEvaluator(ds.coco, use_gt_bbox=True, oks_thre=0.9)  # the official yamls' OKS_THRE
        learned = CocoKeypointEvaluator(ds.coco, use_gt_bbox=True, oks_thre=0.9)
        kept = []
        for i in range(len(ds)):
            image, target, _, meta = ds[i]
            center, scale = meta["center"][None], meta["scale"][None]
            p, v = ds.codec.decode(target[None].numpy(), center, scale)
            oracle.process(p, v, center, scale, [1.0], [meta["image_id"]])
            if model is not None:
                with torch.no_grad():
                    hm = model(image[None]).float().numpy()
                p, v = ds.codec.decode(hm, center, scale)
                learned.process(p, v, center, scale, [1.0], [meta["image_id"]])
                kept.append(p[0])
            if fast:
                diffs.append(np.abs(ds.prepare(i)["crop"].astype(np.float64)
                                    - sets[False].prepare(i)["crop"]).mean())
        key = "fast" if fast else "plain"
        out[f"oracle_AP_{key}"] = oracle.evaluate()["AP"]
        if model is not None:
            out[f"model_AP_{key}"] = learned.evaluate()["AP"]
            preds[fast] = np.stack(kept)
    if model is not None:
        out["model_keypoint_shift_px"] = float(np.linalg.norm(preds[True] - preds[False], axis=-1).mean())
    out["crop_mean_abs_diff"] = float(np.mean(diffs))
    return out


# ---------------------------------------------------------------------------------------------------- inference
def fixture_crops(root: str, test_set: str = "mini_val2017", image_size=(192, 256)) -> np.ndarray:
    """The normalised GT-box crops [N, 3, H, W] of the fixture's test set (plain decoding)."""
    ds = fixture_dataset(root, test_set, False, False, image_size)
    return np.stack([ds[i][0].numpy() for i in range(len(ds))])


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, crops: np.ndarray) -> nn.Module:
    """Set every BN's running statistics to those of `crops` (one train-mode forward, cumulative average), so that
    an untrained network has the activation scale of a trained one: freshly initialised weights with BN statistics
    0/1 shrink activations towards the denormal range, where x86 arithmetic is 10-100x slower and timings mislead."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    model(torch.from_numpy(np.ascontiguousarray(crops, dtype=np.float32)))
    for m, momentum in zip(bns, momenta):
        m.momentum = momentum
    return model.eval()


def bench_inference(model: nn.Module, crops: np.ndarray, batch_sizes: Sequence[int] = (1,), iters: int = 20,
                    threads: int = 2, routes: Sequence[str] = ROUTES) -> List[Dict]:
    """Latency of every route per batch size (crops repeated to fill a batch) and its error against official."""
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            built = build_routes(model, crops.shape[2:], tmp, crops, threads, routes)
            errors = route_errors(built, crops)
            rows = []
            for batch in batch_sizes:
                x = np.ascontiguousarray(np.resize(crops, (batch,) + crops.shape[1:]))
                timing = time_routes(built, x, iters)
                base = timing["official"]["ms"]
                for name in built:
                    rows.append({"task": f"inference batch {batch}", "variant": name, "batch": batch,
                                 "setting": f"input {crops.shape[3]}x{crops.shape[2]}, {threads} threads",
                                 **timing[name], "speedup": base / timing[name]["ms"], **errors[name]})
    finally:
        torch.set_num_threads(torch_threads)
    return rows


# ---------------------------------------------------------------------------------------------------- all
def run_cpu_benchmark(model: nn.Module, data_root: str, image_size=(192, 256), parts: Sequence[str] = (
        "eval", "data", "infer"), batch_sizes: Sequence[int] = (1,), iters: int = 20, threads: int = 2,
        routes: Sequence[str] = ROUTES, eval_images: int = 5000, eval_predictions: int = 100_000,
        trained: bool = False) -> List[Dict]:
    """Every part requested, plain and fast side by side; rows for `format_rows` / JSON. An untrained `model`
    (`trained` False) gets its BN statistics from the fixture crops first (`calibrate_batchnorm`)."""
    rows: List[Dict] = []
    if not trained and ("data" in parts or "infer" in parts):
        calibrate_batchnorm(model, fixture_crops(data_root, image_size=image_size))
    if "eval" in parts:
        rows += bench_evaluation(eval_images, eval_predictions)
    if "data_cold" in parts:
        rows += bench_data_cold(data_root, image_size=image_size)
    if "data" in parts:
        rows += bench_data(data_root, image_size=image_size)
        effect = fast_decode_ap(data_root, image_size=image_size, model=model.eval())
        rows.append({"task": "data test", "variant": "AP effect of FAST_DECODE (GT boxes, fixture val)",
                     "setting": f"input {image_size[0]}x{image_size[1]}", **effect})
    if "infer" in parts:
        crops = fixture_crops(data_root, image_size=image_size)
        rows += bench_inference(model, crops, batch_sizes, iters, threads, routes)
    return rows


def format_rows(rows: List[Dict]) -> str:
    """A plain-text table: a header per task (with its setting), then one line per variant with its main figure
    and its ratio to the task's first (plain / official) row."""
    lines: List[str] = []
    task, base = None, 1.0
    for r in rows:
        if r["task"] != task:
            task = r["task"]
            lines.append(f"{task} [{r.get('setting', '')}]")
            base = r.get("seconds") or r.get("samples_per_s") or r.get("ms") or 1.0
        if "seconds" in r:
            fig = (f"{r['seconds']:8.2f} s    x{base / r['seconds']:5.2f}   AP {r['AP']:.4f}"
                   + ("   identical stats" if r["identical"] else "   STATS DIFFER"))
        elif "samples_per_s" in r:
            fig = f"{r['samples_per_s']:8.1f} /s   x{r['samples_per_s'] / base:5.2f}"
            if r["reduced_fraction"]:
                fig += f"   reduced decode for {100 * r['reduced_fraction']:.0f}% of the samples"
        elif "ms" in r:
            fig = (f"{r['ms']:8.1f} ms   x{r['speedup']:5.2f}   heatmap max err {r['heatmap_max_abs_err']:.1e}, "
                   f"keypoint err mean {r['kp_err_mean_px']:.3f} / max {r['kp_err_max_px']:.3f} px")
        else:
            fig = ", ".join(f"{k} {v:.4f}" for k, v in r.items() if isinstance(v, float))
        lines.append(f"  {r['variant']:<56} {fig}")
    return "\n".join(lines)
