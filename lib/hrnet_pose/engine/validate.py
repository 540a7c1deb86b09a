"""Validation during training and the evaluation run behind `tools/test.py` (OKS AP, or PCKh for MPII; official
protocols).

Each process runs the model (flip test per TEST.FLIP_TEST, aligned as the codec says) on its shard of the person boxes,
decodes heatmaps [B,K,h,w] to image keypoints [B,K,2] + scores [B,K,1], and feeds the COCO evaluator (the MPII PCKh
evaluator for an MPII dataset: `mpii_evaluation`). The evaluator
states are all-gathered and merged by sample index (DistributedSampler pads the last shard with repeats), so N
processes report exactly the AP of one. Every AP logged or written names its protocol: GT or detector boxes, flip,
decoder and input size, UDP, flip alignment, refinement, forward precision and the COCO evaluation backend.
"""

import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from ..codecs.heatmap import FLIP_ALIGNMENT_TEXT, REFINEMENT_TEXT
from ..datasets.mpii import MpiiKeypoints
from ..errors import ConfigError
from ..evaluation.coco_keypoints import BACKENDS, CocoKeypointEvaluator, describe_protocol, format_results_table
from ..evaluation.mpii import PCKH_PROTOCOL, MpiiGroundTruthError, MpiiPCKhEvaluator, load_gt_mat
from ..evaluation.pck import accuracy
from ..evaluation.public_sets import PUBLIC_EVALUATORS, PUBLIC_PROTOCOLS, AP10KEvaluator
from ..fileio import write_json_atomic
from ..models.inference import autocast_context, heatmaps_with_flip, model_runner
from .checkpoint import unwrap_model
from .debug import as_numpy, save_debug_images
from .distributed import all_gather_object, broadcast_object, is_main_process
from .outputs import progress_bar_enabled

logger = logging.getLogger(__name__)

METRICS = ("AP", "PCK", "EPE")  # TEST.METRICS values (MPII reports PCKh instead)


def describe_run_protocol(cfg: Any, codec: Any, use_gt_bbox: bool, bbox_file: str,
                          metric: Optional[str] = None) -> Tuple[str, Dict[str, Any]]:
    """The protocol line printed under the AP table and its fields for metrics.json.

    The codec, not the raw TEST.* keys, says how the flip test was aligned and which refinement ran (under UDP:
    no shift, no quarter offset). Reads TEST.FLIP_TEST, TEST.COCO_EVAL_BACKEND, ENGINE.AMP and MODEL.IMAGE_SIZE.
    `metric` (a description) replaces the COCO evaluation backend at the end of the line, for non-COCO metrics.
    """
    backend = str(cfg.TEST.COCO_EVAL_BACKEND)
    if backend not in BACKENDS:
        raise ConfigError(f"TEST.COCO_EVAL_BACKEND is {backend!r}; valid: {list(BACKENDS)}")
    amp = str(cfg.ENGINE.AMP) or "fp32"
    flip_test = bool(cfg.TEST.FLIP_TEST)
    line = describe_protocol(
        use_gt_bbox, bbox_file, flip_test, codec.decoder, list(cfg.MODEL.IMAGE_SIZE), udp=codec.use_udp,
        flip_alignment=FLIP_ALIGNMENT_TEXT[codec.flip_alignment], refinement=REFINEMENT_TEXT[codec.refinement],
        forward_precision=amp, backend=None if metric else backend)
    if metric:
        line = f"{line}; {metric}"
    fields = {
        "boxes": "GT" if use_gt_bbox else "detector", "bbox_file": "" if use_gt_bbox else bbox_file,
        "flip_test": flip_test, "shift_heatmap": flip_test and codec.flip_shift,
        "flip_alignment": codec.flip_alignment if flip_test else "",
        "decoder": codec.decoder, "refinement": codec.refinement,
        "post_process": codec.refinement == "quarter_offset", "udp": codec.use_udp,
        "unbiased_encoding": codec.unbiased_encoding, "input_size": [int(v) for v in cfg.MODEL.IMAGE_SIZE],
        "forward_precision": amp, "decode_precision": "float32", "eval_backend": backend,
    }
    return line, fields


def build_evaluator(cfg: Any, coco: Any, keypoint_set: Any, use_gt_bbox: bool,
                    dataset: Any = None) -> CocoKeypointEvaluator:
    """The evaluator of the validation protocol: TEST.IN_VIS_THRE, OKS_THRE, SOFT_NMS and COCO_EVAL_BACKEND; the
    public sets' own scoring for DATASET.DATASET coco_wholebody, crowdpose and ap10k (`evaluation.public_sets`;
    AP-10K reads each sample's species from `dataset.db`)."""
    kwargs = dict(keypoint_set=keypoint_set, use_gt_bbox=use_gt_bbox, in_vis_thre=float(cfg.TEST.IN_VIS_THRE),
                  oks_thre=float(cfg.TEST.OKS_THRE), soft_nms=bool(cfg.TEST.SOFT_NMS),
                  backend=str(cfg.TEST.COCO_EVAL_BACKEND))
    name = str(cfg.DATASET.DATASET).lower()
    if name == "ap10k" and dataset is not None:
        return AP10KEvaluator(coco, sample_categories=[r.get("category_id", 1) for r in dataset.db], **kwargs)
    if name in PUBLIC_EVALUATORS and name != "ap10k":
        return PUBLIC_EVALUATORS[name](coco, **kwargs)
    return CocoKeypointEvaluator(coco, **kwargs)


def mpii_evaluation(cfg: Any, codec: Any, dataset: MpiiKeypoints) -> Tuple[MpiiPCKhEvaluator, str, Dict[str, Any]]:
    """MPII: the PCKh evaluator over the dataset's gt_<set>.mat (none for a test split, which writes pred.mat only),
    the protocol line and its metrics.json fields. The boxes are always the annotated ones."""
    gt = load_gt_mat(dataset.gt_file) if dataset.has_labels else None
    if gt is not None and len(gt) != len(dataset):
        raise MpiiGroundTruthError(
            f"{dataset.gt_file} has {len(gt)} persons but {dataset.ann_file} has {len(dataset)}: they must be the "
            f"same split, in the same order (DATASET.TEST_SET {dataset.image_set!r})")
    line, fields = describe_run_protocol(cfg, codec, True, "", metric=PCKH_PROTOCOL)
    fields.update(boxes="MPII annotation", eval_backend="mpii_pckh")
    return MpiiPCKhEvaluator(gt, num_samples=len(dataset)), line, fields


@dataclass(frozen=True)
class ValidationSettings:
    """The config values a validation pass reads, taken once when the Validator is built."""

    flip_test: bool  # TEST.FLIP_TEST
    amp: str  # ENGINE.AMP: the forward's precision ('' = fp32); heatmaps are decoded in float32 regardless
    channels_last: bool  # ENGINE.CHANNELS_LAST
    progress_bar: bool  # ENGINE.PROGRESS_BAR
    debug: Any  # the DEBUG node: debug images every PRINT_FREQ batches when DEBUG.DEBUG
    print_freq: int  # PRINT_FREQ
    color_rgb: bool  # DATASET.COLOR_RGB, for the debug images
    test_set: str  # DATASET.TEST_SET, names the results file
    model_name: str  # MODEL.NAME, heads the AP table
    metrics: Tuple[str, ...] = ("AP", "PCK", "EPE")  # TEST.METRICS: PCK / EPE printed beside AP when listed
    pck_threshold: float = 0.2  # TEST.PCK_THRESHOLD

    @classmethod
    def from_config(cls, cfg: Any) -> "ValidationSettings":
        metrics = tuple(str(m).upper() for m in cfg.TEST.METRICS)
        unknown = [m for m in metrics if m not in METRICS]
        if unknown:
            raise ConfigError(f"TEST.METRICS has {unknown}; valid: {list(METRICS)} (AP is always computed)")
        return cls(metrics=metrics, pck_threshold=float(cfg.TEST.PCK_THRESHOLD),
                   flip_test=bool(cfg.TEST.FLIP_TEST), amp=str(cfg.ENGINE.AMP),
                   channels_last=bool(cfg.ENGINE.CHANNELS_LAST), progress_bar=bool(cfg.ENGINE.PROGRESS_BAR),
                   debug=cfg.DEBUG, print_freq=int(cfg.PRINT_FREQ), color_rgb=bool(cfg.DATASET.COLOR_RGB),
                   test_set=str(cfg.DATASET.TEST_SET), model_name=str(cfg.MODEL.NAME))


class Validator:
    """Runs one evaluation pass over a loader; `run(model)` -> dict of the 10 COCO stats (MPII: the 9 PCKh values),
    loss, acc, protocol. `perf_name` is the stat that picks the best model ('AP'; MPII 'Mean')."""

    def __init__(self, cfg: Any, codec: Any, dataset: Any, loader: Any, device: torch.device,
                 loss_fn: Optional[nn.Module], output_dir: str, tensorboard: Any = None):
        self.codec, self.dataset, self.loader = codec, dataset, loader
        self.device, self.loss_fn, self.output_dir, self.tb = device, loss_fn, output_dir, tensorboard
        self.settings = ValidationSettings.from_config(cfg)
        base = getattr(dataset, "dataset", dataset)  # a Subset wraps the real dataset
        self.keypoint_set = base.keypoint_set
        self.use_gt_bbox = bool(getattr(base, "use_gt_bbox", cfg.TEST.USE_GT_BBOX))
        bbox_file = getattr(base, "bbox_file", "") or cfg.TEST.COCO_BBOX_FILE
        if isinstance(base, MpiiKeypoints):
            self.evaluator, self.protocol, self.protocol_fields = mpii_evaluation(cfg, codec, base)
        else:
            self.protocol, self.protocol_fields = describe_run_protocol(
                cfg, codec, self.use_gt_bbox, bbox_file, metric=PUBLIC_PROTOCOLS.get(str(cfg.DATASET.DATASET).lower()))
            self.evaluator = build_evaluator(cfg, base.coco, self.keypoint_set, self.use_gt_bbox, base)
        self.perf_name = getattr(self.evaluator, "perf_name", "AP")
        # which set's left/right pairs the flip test swapped (a custom set's own, never COCO's by default)
        self.protocol_fields.update(keypoint_set=self.keypoint_set.name,
                                    flip_pairs=[list(p) for p in self.keypoint_set.flip_pairs])

    @torch.no_grad()
    def run(self, model: nn.Module, epoch: Optional[int] = None) -> Dict[str, Any]:
        """Evaluate `model` on the loader (all processes); every process gets the same result dict."""
        net = unwrap_model(model)
        was_training = net.training
        net.eval()
        self.evaluator.reset()
        run = model_runner(net)
        t0 = time.time()
        loss_sum, acc_sum, count = 0.0, 0.0, 0
        bar = tqdm(self.loader, desc="val" if epoch is None else f"val {epoch}", leave=False, dynamic_ncols=True,
                   disable=not (is_main_process() and progress_bar_enabled(self.settings.progress_bar)))
        for i, batch in enumerate(bar):
            if batch is None:
                continue
            loss, acc, n = self._process_batch(run, batch, i, epoch)
            loss_sum, acc_sum, count = loss_sum + loss, acc_sum + acc, count + n
        bar.close()
        result, stat_names = self._merge_results(loss_sum, acc_sum, count)
        if is_main_process():
            self._report(result, stat_names, time.time() - t0, epoch)
        if was_training:
            net.train()
        return result

    def _process_batch(self, run: Callable[[torch.Tensor], torch.Tensor], batch: Any, i: int,
                       epoch: Optional[int]) -> Tuple[float, float, int]:
        """Forward (flip test), loss, accuracy and decode of one batch; the keypoints go to the evaluator.
        Returns (loss x n, accuracy x n, n) for the batch's n samples."""
        settings = self.settings
        images, target, weight, meta = batch
        mem = torch.channels_last if settings.channels_last else torch.contiguous_format
        images = images.to(self.device, non_blocking=True, memory_format=mem)
        with autocast_context(self.device, settings.amp):
            heatmaps = heatmaps_with_flip(run, images, self.keypoint_set.flip_index, settings.flip_test,
                                          self.codec.flip_shift)
        heatmaps = heatmaps.float()  # decoded in float32 whatever precision the forward ran in
        n = images.shape[0]
        loss_sum = 0.0
        if self.loss_fn is not None:
            # official: loss and accuracy of the flip-averaged output (meaningless with detector boxes)
            loss = self.loss_fn(heatmaps, target.to(self.device), weight.to(self.device))
            loss_sum = float(loss) * n
        hm = heatmaps.cpu().numpy()
        acc_sum = accuracy(hm, as_numpy(target))[1] * n
        center, scale = as_numpy(meta["center"]), as_numpy(meta["scale"])
        preds, maxvals = self.codec.decode(hm, center, scale)
        self.evaluator.process(preds, maxvals, center, scale, as_numpy(meta["score"]), as_numpy(meta["image_id"]),
                               as_numpy(meta["index"]))
        if settings.debug.DEBUG and is_main_process() and i % settings.print_freq == 0:
            save_debug_images(settings.debug, images, meta, target, heatmaps, os.path.join(self.output_dir, f"val_{i}"),
                              settings.color_rgb, self.tb, 0 if epoch is None else epoch, "val")
        return loss_sum, acc_sum, n

    def _merge_results(self, loss_sum: float, acc_sum: float, count: int) -> Tuple[Dict[str, Any], List[str]]:
        """All processes' evaluator states merged and evaluated on the main process, the result broadcast to all;
        also the names of the COCO stats in it (empty on the other processes)."""
        states = all_gather_object((self.evaluator.state(), loss_sum, acc_sum, count))
        result: Dict[str, Any] = {}
        stat_names: List[str] = []
        if is_main_process():
            self.evaluator.merge_states([s[0] for s in states])
            stats = self.evaluator.evaluate(self.output_dir, name=self.settings.test_set)
            stat_names = list(stats)
            total = max(1, sum(s[3] for s in states))
            result = dict(stats)
            result.update(loss=sum(s[1] for s in states) / total, acc=sum(s[2] for s in states) / total,
                          num_instances=len(self.evaluator), protocol=self.protocol, **self.protocol_fields)
            result.update(self._keypoint_errors())
            if getattr(self.evaluator, "pred_file", None):  # MPII: the official pred.mat
                result["pred_file"] = self.evaluator.pred_file
        return broadcast_object(result), stat_names

    def _keypoint_errors(self) -> Dict[str, Any]:
        """PCK@TEST.PCK_THRESHOLD of the box size and EPE (TEST.METRICS) of the evaluated keypoints; {} for MPII."""
        settings = self.settings
        wanted = [m for m in ("PCK", "EPE") if m in settings.metrics]
        if not wanted or not hasattr(self.evaluator, "keypoint_errors"):
            return {}
        errors = self.evaluator.keypoint_errors(settings.pck_threshold)
        out: Dict[str, Any] = {m: errors[m] for m in wanted}
        out.update(pck_threshold=settings.pck_threshold, pck_norm="max(GT box w, h)",
                   pck_persons_matched=errors["matched"], pck_persons=errors["persons"])
        return out

    def _report(self, result: Dict[str, Any], stat_names: List[str], elapsed: float, epoch: Optional[int]) -> None:
        """The stats table and protocol line in the log; loss, accuracy and stats to TensorBoard during training."""
        table = (format_results_table({k: result[k] for k in stat_names}, self.settings.model_name) if stat_names
                 else "(no ground truth for this split: predictions written, nothing to score)")
        errors = ""
        if "PCK" in result or "EPE" in result:
            parts = ([f"PCK@{result['pck_threshold']:g} {result['PCK']:.4f} (of max(GT box w, h))"]
                     if "PCK" in result else []) + ([f"EPE {result['EPE']:.2f} px"] if "EPE" in result else [])
            errors = (f"\n{', '.join(parts)}; {result['pck_persons_matched']} of {result['pck_persons']} labelled "
                      "instances paired with a prediction")
        logger.info("Test: %s%d samples in %.1fs, loss %.5f, accuracy %.3f\n%s%s\n%s",
                    "" if epoch is None else f"epoch {epoch}, ", result["num_instances"], elapsed,
                    result["loss"], result["acc"], table, errors, self.protocol)
        if self.tb is not None and epoch is not None:
            self.tb.scalars({"valid_loss": result["loss"], "valid_acc": result["acc"],
                             **{f"valid/{k}": result[k] for k in stat_names + ["PCK", "EPE"] if k in result}}, epoch)


def evaluate_model_file(cfg: Any, cfg_path: str) -> Dict[str, Any]:
    """Entry point of tools/test.py: load TEST.MODEL_FILE (or OUTPUT/.../final_state.pth) strictly and evaluate.

    Writes results/keypoints_<TEST_SET>_results_0.json (MPII: the official pred.mat) and metrics.json (the stats +
    protocol) atomically.
    """
    from ..codecs.heatmap import build_codec
    from ..datasets.build import build_dataloader, build_dataset
    from ..models import build_model, load_weights
    from ..models.loss import build_loss
    from .checkpoint import FINAL_NAME
    from .distributed import init_distributed
    from .outputs import close_logging, dump_config, log_config, run_paths, setup_logging

    info = init_distributed(cfg.ENGINE.DIST_BACKEND, cfg.ENGINE.DEVICE)
    paths = run_paths(cfg, cfg_path, "test", broadcast_object(time.strftime("%Y-%m-%d-%H-%M")))
    if info.is_main:
        os.makedirs(paths.output_dir, exist_ok=True)
    setup_logging(paths.log_file, info.is_main, info.rank)
    try:
        if info.is_main:
            dump_config(cfg, paths.output_dir, "config_test.yaml")
        log_config(cfg)
        model_file = cfg.TEST.MODEL_FILE or os.path.join(paths.output_dir, FINAL_NAME)
        if not os.path.isfile(model_file):
            raise FileNotFoundError(
                f"model file not found: {model_file}. Set TEST.MODEL_FILE to a .pth (official release, ours, or a "
                f"training checkpoint), or train first so that {FINAL_NAME} exists in {paths.output_dir}")
        model = build_model(cfg, is_train=False)
        report = load_weights(model, model_file)
        logger.info("=> loaded %d tensors from %s (strict)", report.loaded, model_file)
        mem = torch.channels_last if cfg.ENGINE.CHANNELS_LAST else torch.contiguous_format
        model = model.to(info.device, memory_format=mem)
        codec = build_codec(cfg)
        dataset = build_dataset(cfg, "val", codec)
        loader = build_dataloader(cfg, dataset, "val", distributed=info.distributed, world_size=info.world_size,
                                  rank=info.rank)
        validator = Validator(cfg, codec, dataset, loader, info.device, build_loss(cfg).to(info.device),
                              paths.output_dir)
        metrics = validator.run(model)
        metrics["model_file"] = model_file
        if info.is_main:
            write_json_atomic(metrics, os.path.join(paths.output_dir, "metrics.json"), indent=2)
            logger.info("=> wrote %s", os.path.join(paths.output_dir, "metrics.json"))
        metrics["output_dir"] = paths.output_dir
        return metrics
    finally:
        close_logging()
