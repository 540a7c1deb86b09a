"""The training loop behind `tools/train.py`: one process or many (torchrun, DDP), AMP, EMA, resume, validation.

Per epoch: re-seed from (ENGINE.SEED, epoch, rank) and shard/shuffle the data with a sampler seeded the same way (so
a resumed run sees exactly the data of an uninterrupted one), train with the non-finite guard, validate every
TEST.INTERVAL epochs and after the last, and write `checkpoint.pth` atomically on rank 0. A batch is
input [B,3,H,W], target [B,K,H/4,W/4], target_weight [B,K,1], meta; the loss is the official JointsMSELoss.
Every process takes every step together: a batch with no readable image on any process skips that step everywhere.
At start, a warning states the global batch when the number of processes differs from len(GPUS).
The step itself (forward, backward, update, guard, AMP, compile) is `engine.step.TrainStep`; the trainer only
orchestrates epochs, validation, logging and checkpoints, and reads device values back once per PRINT_FREQ window.
"""

import contextlib
import logging
import math
import os
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..codecs.heatmap import build_codec
from ..datasets.annotations import DataCheckError
from ..datasets.build import build_dataloader, build_dataset
from ..errors import ConfigError
from ..evaluation.pck import accuracy_torch
from ..fileio import write_json_atomic
from ..keypoints import KeypointSetError
from ..models import CheckpointMismatchError, build_model
from ..models.loss import build_loss
from . import checkpoint as ckpt_io
from .debug import save_debug_images
from .distributed import (DistInfo, all_gather_object, all_reduce_sum, any_true, barrier, broadcast_object,
                          init_distributed)
from .optim import ModelEma, build_optimizer, build_scheduler
from .outputs import (TensorBoard, close_logging, dump_config, log_config, progress_bar_enabled, run_paths,
                      setup_logging)
from .step import StepOutput, TrainStep, flatten_buffers
from .validate import Validator

logger = logging.getLogger(__name__)

_AMP_MODES = ("", "bf16", "fp16")


class NonFiniteLossError(RuntimeError):
    """Training produced ENGINE.MAX_NONFINITE consecutive non-finite losses or gradients."""


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """A well-mixed 32-bit seed for (seed, epoch >= -1, rank): each epoch's randomness is independent of history."""
    return int(np.random.SeedSequence([int(seed), int(epoch) + 1, int(rank)]).generate_state(1)[0])


def global_batch_warning(gpus: Sequence[int], world_size: int, batch_per_gpu: int) -> Optional[str]:
    """The warning for a run whose process count differs from len(GPUS), or None when they agree.

    Official yamls list `GPUS: (0,1,2,3)` with BATCH_SIZE_PER_GPU 32: their TRAIN.LR and schedule are meant for a
    global batch of 128. GPUS selects no device here (torchrun starts one process per device), so a one-process run
    would otherwise train with batch 32 at that learning rate without a word.
    """
    n = len(gpus)
    if n == 0 or n == world_size:
        return None
    intended, actual = n * batch_per_gpu, world_size * batch_per_gpu
    fixes = [f"run `torchrun --nproc_per_node {n} tools/train.py ...`"]
    if intended % world_size == 0:
        fixes.append(f"set TRAIN.BATCH_SIZE_PER_GPU {intended // world_size} if it fits in memory")
    return (f"GPUS lists {n} device(s) {tuple(gpus)}, so the config implies a global batch of {n} x {batch_per_gpu} = "
            f"{intended} (its TRAIN.LR and schedule are meant for that), but this run has {world_size} process(es): "
            f"the global batch is {world_size} x {batch_per_gpu} = {actual}. To train as the config intends, "
            f"{' or '.join(fixes)}; to keep {actual}, list {world_size} device(s) in GPUS (and consider TRAIN.LR).")


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def determinism(cfg: Any):
    """ENGINE.DETERMINISTIC and CUDNN.*; restores the previous global settings on exit (tests call train twice)."""
    prev = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
            torch.backends.cudnn.deterministic, torch.backends.cudnn.enabled)
    torch.backends.cudnn.enabled = bool(cfg.CUDNN.ENABLED)
    if cfg.ENGINE.DETERMINISTIC:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    else:
        torch.backends.cudnn.benchmark = bool(cfg.CUDNN.BENCHMARK)
        torch.backends.cudnn.deterministic = bool(cfg.CUDNN.DETERMINISTIC)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev[0])
        (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, torch.backends.cudnn.enabled) = prev[1:]


def make_train_loader(cfg: Any, dataset: Dataset, info: DistInfo) -> DataLoader:
    """The training loader: its sampler is seeded from (ENGINE.SEED, epoch) for any world size (see build_dataloader)."""
    return build_dataloader(cfg, dataset, "train", distributed=info.distributed, world_size=info.world_size,
                            rank=info.rank)


class Trainer:
    """Builds everything from the config and runs `fit()`. Datasets may be passed in (tests); else built from cfg."""

    def __init__(self, cfg: Any, cfg_path: str, train_dataset: Optional[Dataset] = None,
                 val_dataset: Optional[Dataset] = None):
        if cfg.ENGINE.AMP not in _AMP_MODES:
            raise ConfigError(f"ENGINE.AMP is {cfg.ENGINE.AMP!r}; valid: {list(_AMP_MODES)}")
        self.cfg = cfg
        self.info = init_distributed(cfg.ENGINE.DIST_BACKEND, cfg.ENGINE.DEVICE)
        self.device = self.info.device
        self._setup_run(cfg_path)
        # the data first: its check names every problem of the keypoint set and both files before a model is built
        try:
            self.codec = build_codec(cfg)
        except KeypointSetError:
            self.codec = None  # build_dataset lists the yaml's problems with the data's
        self._build_data(train_dataset, val_dataset)
        self.codec = self.codec or build_codec(cfg)
        # model initialisation draws right after the seed, as before the data were built first
        seed_everything(epoch_seed(cfg.ENGINE.SEED, -1, self.info.rank))
        self.model = self._build_model()
        self.loss_fn = build_loss(cfg).to(self.device)
        self._build_optimization()
        self.begin_epoch, self.best_perf, self.best_state = int(cfg.TRAIN.BEGIN_EPOCH), -1.0, None
        self.history: List[Dict[str, Any]] = []
        self.ckpt_path = os.path.join(self.paths.output_dir, ckpt_io.CHECKPOINT_NAME)
        if cfg.AUTO_RESUME and os.path.isfile(self.ckpt_path):
            self._resume()
        self.net = self.model
        if self.info.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.tb = TensorBoard(self.paths.tb_dir, cfg.ENGINE.TENSORBOARD and self.info.is_main)
        self.validator = Validator(cfg, self.codec, self.val_set, self.val_loader, self.device, self.loss_fn,
                                   self.paths.output_dir, self.tb)
        self.step = self._build_step()
        self.nonfinite_total = 0
        self.global_step = self.begin_epoch * len(self.train_loader)

    # ------------------------------------------------------------------ build
    def _setup_run(self, cfg_path: str) -> None:
        """The output folder, logging and the config copy (main process), and the global batch warning."""
        cfg = self.cfg
        # one timestamp for all ranks, so every process agrees on the log/TensorBoard names
        self.paths = run_paths(cfg, cfg_path, "train", broadcast_object(time.strftime("%Y-%m-%d-%H-%M")))
        if self.info.is_main:
            os.makedirs(self.paths.output_dir, exist_ok=True)
        setup_logging(self.paths.log_file, self.info.is_main, self.info.rank)
        if self.info.is_main:
            dump_config(cfg, self.paths.output_dir)
        log_config(cfg)
        logger.info("output %s, device %s, world size %d", self.paths.output_dir, self.device, self.info.world_size)
        batch_note = global_batch_warning(tuple(cfg.GPUS), self.info.world_size, int(cfg.TRAIN.BATCH_SIZE_PER_GPU))
        if batch_note and self.info.is_main:
            logger.warning(batch_note)

    def _build_model(self) -> nn.Module:
        """The model on the device (SyncBN under DDP on GPUs, ENGINE.CHANNELS_LAST), its BN buffers flattened."""
        cfg = self.cfg
        model = build_model(cfg, is_train=True)
        if cfg.ENGINE.SYNC_BN and self.info.distributed:
            if self.device.type == "cuda":
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            else:
                logger.warning("ENGINE.SYNC_BN ignored: torch's SyncBatchNorm runs on GPUs only; on CPU each "
                               "process normalises with its own batch statistics")
        mem = torch.channels_last if cfg.ENGINE.CHANNELS_LAST else torch.contiguous_format
        model = model.to(self.device, memory_format=mem)
        flatten_buffers(model)  # before DDP and EMA: the step saves/restores BN statistics as one tensor
        return model

    def _build_data(self, train_dataset: Optional[Dataset], val_dataset: Optional[Dataset]) -> None:
        """The datasets (given, or built from the config) and their loaders, sharded over the processes."""
        cfg = self.cfg
        problems = []
        try:
            self.train_set = train_dataset if train_dataset is not None else build_dataset(cfg, "train", self.codec)
        except DataCheckError as err:
            problems += err.problems
        try:
            self.val_set = val_dataset if val_dataset is not None else build_dataset(cfg, "val", self.codec)
        except DataCheckError as err:
            problems += [p for p in err.problems if p not in problems]  # the set's own problems only once
        if problems:
            raise DataCheckError(problems)
        self.train_loader = make_train_loader(cfg, self.train_set, self.info)
        self.val_loader = build_dataloader(cfg, self.val_set, "val", distributed=self.info.distributed,
                                           world_size=self.info.world_size, rank=self.info.rank)

    def _build_optimization(self) -> None:
        """Optimizer, LR schedule, the fp16 gradient scaler and the EMA of the weights (each when configured)."""
        cfg = self.cfg
        self.optimizer = build_optimizer(cfg, self.model, self.device)
        self.scheduler = build_scheduler(cfg, self.optimizer)
        self.scaler = torch.amp.GradScaler(self.device.type) if cfg.ENGINE.AMP == "fp16" else None
        self.ema = ModelEma(self.model, cfg.ENGINE.EMA_DECAY) if cfg.ENGINE.EMA_DECAY > 0 else None

    def _build_step(self) -> TrainStep:
        """The training step with the ENGINE.* switches (AMP, channels-last, clipping, compile, CUDA graph)."""
        cfg = self.cfg
        return TrainStep(self.model, self.net, self.optimizer, self.loss_fn, self.device, amp=cfg.ENGINE.AMP,
                         channels_last=bool(cfg.ENGINE.CHANNELS_LAST), clip_grad=float(cfg.ENGINE.CLIP_GRAD),
                         scaler=self.scaler, ema=self.ema, gpu_normalize=bool(cfg.ENGINE.GPU_NORMALIZE),
                         compile_mode=str(cfg.ENGINE.COMPILE), cuda_graph=bool(cfg.ENGINE.CUDA_GRAPH))

    # ------------------------------------------------------------------ resume
    def _resume(self) -> None:
        state = ckpt_io.load_checkpoint(self.ckpt_path, map_location="cpu")
        try:
            self.model.load_state_dict(state["model"] if "model" in state else state["state_dict"], strict=True)
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            # the run folder holds a checkpoint of another model or optimizer: the user's setup, not a bug
            raise CheckpointMismatchError(
                f"AUTO_RESUME: {self.ckpt_path} does not fit this config's model or optimizer: "
                f"{str(err).strip().splitlines()[0]}\n{err}",
                hint="it was written by a run with another MODEL or TRAIN.OPTIMIZER setting: set AUTO_RESUME False, "
                     "or give this run its own --modelDir / config name") from err
        if state.get("scheduler"):
            self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state.get("ema"):
            self.ema.load_state_dict(state["ema"])
        self.begin_epoch = int(state["epoch"])
        self.best_perf = float(state.get("best_perf", state.get("perf", -1.0)))
        self.best_state = state.get("best_state_dict")
        self.history = list(state.get("history", []))
        ckpt_io.restore_rng_state(state["rng"])
        logger.info("=> resumed from %s at epoch %d (best AP %.4f)", self.ckpt_path, self.begin_epoch, self.best_perf)

    # ------------------------------------------------------------------ one epoch
    def _empty_step(self, batch: Any, window: "_Window") -> bool:
        """Count unreadable images; True when some process has no image in its batch, and all skip the step."""
        # None: every image of this process's batch was unreadable (DATASET.SKIP_BAD_IMAGES). All processes skip
        # the step together; one alone skipping would leave the others waiting in DDP's all-reduce forever.
        window.skipped_images += int(self.train_loader.batch_size) if batch is None else int(
            batch[3].get("num_skipped", 0))
        if not any_true(batch is None, self.device):
            return False
        window.empty_steps += 1
        window.add_empty(self.device)
        self.global_step += 1  # still advances: resume computes it as epoch x len(loader)
        return True

    def _check_guard(self, last_iter: int) -> None:
        """Read the step's non-finite counters (one host read per print window): warn about newly skipped steps and
        stop after ENGINE.MAX_NONFINITE in a row. Detection delay: at most PRINT_FREQ iterations."""
        cfg = self.cfg
        stats = self.step.stats()
        new = stats["nonfinite_total"] - self.nonfinite_total
        self.nonfinite_total = stats["nonfinite_total"]
        if new:
            logger.warning("non-finite loss/gradient: %d step(s) skipped up to iteration %d (%d in a row now, %d in "
                           "total)", new, last_iter, stats["nonfinite_run"], self.nonfinite_total)
        if stats["nonfinite_max_run"] >= cfg.ENGINE.MAX_NONFINITE:
            raise NonFiniteLossError(
                f"{stats['nonfinite_max_run']} consecutive non-finite losses/gradients (ENGINE.MAX_NONFINITE="
                f"{cfg.ENGINE.MAX_NONFINITE}), detected at iteration {last_iter}. Lower TRAIN.LR, add warm-up "
                f"(ENGINE.WARMUP_ITERS) or ENGINE.CLIP_GRAD, use ENGINE.AMP 'bf16' instead of 'fp16', or check "
                f"the data for NaN/Inf. The last good checkpoint is {self.ckpt_path}")

    def _log_window(self, epoch: int, i: int, lr: float, window: "_Window") -> None:
        loss, acc, speed = window.flush(self.info.world_size, self.info.distributed, self.device)
        self._check_guard(self.global_step - 1)
        logger.info("Epoch: [%d][%d/%d] Speed %.1f samples/s Loss %.5f Accuracy %.3f lr %.3e",
                    epoch, i, len(self.train_loader), speed, loss, acc, lr)
        self.tb.scalars({"train_loss": loss, "train_acc": acc, "learning_rate": lr, "throughput": speed},
                        self.global_step)

    def train_one_epoch(self, epoch: int) -> Dict[str, float]:
        cfg = self.cfg
        self.net.train()
        window, t0 = _Window(), time.time()
        bar = tqdm(self.train_loader, desc=f"train {epoch}", leave=False, dynamic_ncols=True,
                   disable=not (self.info.is_main and progress_bar_enabled(cfg.ENGINE.PROGRESS_BAR)))
        for i, batch in enumerate(bar):
            if self._empty_step(batch, window):
                continue
            images, target, weight, meta = batch
            lr = self.scheduler.apply(epoch, self.global_step)[0]
            target = target.to(self.device, non_blocking=True)
            out = self.step(images, target, weight)
            self.global_step += 1
            window.add(out, target, images.shape[0])
            if i % cfg.PRINT_FREQ == 0 or i == len(self.train_loader) - 1:
                self._log_window(epoch, i, lr, window)
                bar.set_postfix(loss=f"{window.losses[-1]:.3e}", lr=f"{lr:.2e}")
                if cfg.DEBUG.DEBUG and self.info.is_main:
                    prefix = os.path.join(self.paths.output_dir, f"train_{i}")
                    save_debug_images(cfg.DEBUG, images, meta, target, out.output, prefix, cfg.DATASET.COLOR_RGB,
                                      self.tb, self.global_step, "train")
        bar.close()
        window.flush(self.info.world_size, False, self.device)
        self._check_guard(self.global_step - 1)
        return self._epoch_summary(epoch, window, t0)

    def _epoch_summary(self, epoch: int, window: "_Window", t0: float) -> Dict[str, Any]:
        """The global per-iteration loss curve (sample-weighted mean over processes), accuracy and skip totals."""
        gathered = all_gather_object((window.losses, window.counts, window.skipped_images))
        skipped = sum(g[2] for g in gathered)
        if skipped and self.info.is_main:
            logger.warning("epoch %d: %d unreadable training images skipped (DATASET.SKIP_BAD_IMAGES; set it False "
                           "to stop on the first one)", epoch, skipped)
        if window.empty_steps and self.info.is_main:
            logger.warning("epoch %d: %d steps skipped because a batch had no readable image%s", epoch,
                           window.empty_steps, " on some process (every process skips them together)"
                           if self.info.distributed else "")
        curve = []
        for it in range(len(window.losses)):
            n = sum(c[1][it] for c in gathered)
            curve.append(sum(c[0][it] * c[1][it] for c in gathered if c[1][it]) / n if n else float("nan"))
        finite = [v for v in curve if math.isfinite(v)]
        accs = [a for a in window.accs if math.isfinite(a)]
        return {"loss": float(np.mean(finite)) if finite else float("nan"), "loss_curve": curve,
                "skipped_images": skipped, "acc": float(np.mean(accs)) if accs else 0.0,
                "lr": float(self.scheduler.get_last_lr()[0]),
                "samples_per_s": sum(window.counts) * self.info.world_size / max(time.time() - t0, 1e-9)}

    # ------------------------------------------------------------------ fit
    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.net

    def fit(self) -> Dict[str, Any]:
        cfg = self.cfg
        end = int(cfg.TRAIN.END_EPOCH)
        perf, metrics = -1.0, {}
        with determinism(cfg):
            for epoch in range(self.begin_epoch, end):
                seed_everything(epoch_seed(cfg.ENGINE.SEED, epoch, self.info.rank))
                self.train_loader.sampler.set_epoch(epoch)
                stats = self.train_one_epoch(epoch)
                record = {"epoch": epoch, **stats}
                if epoch == end - 1 or (epoch + 1) % max(1, int(cfg.TEST.INTERVAL)) == 0:
                    metrics = self.validator.run(self.eval_model(), epoch=epoch)
                    # the best model is picked by AP (COCO) or Mean PCKh (MPII), as the official perf_indicator
                    perf = float(metrics.get(self.validator.perf_name, float("nan")))
                    record.update({self.validator.perf_name: perf, "val_loss": metrics.get("loss")})
                self.history.append(record)
                self._end_of_epoch(epoch, perf)
            final = ckpt_io.bare_state_dict(self.eval_model())
            if self.info.is_main:
                ckpt_io.save_weights(final, os.path.join(self.paths.output_dir, ckpt_io.FINAL_NAME))
                write_json_atomic(self.history, os.path.join(self.paths.output_dir, "history.json"), indent=2)
                logger.info("=> saving final model state to %s", os.path.join(self.paths.output_dir,
                                                                                ckpt_io.FINAL_NAME))
        barrier()
        self.tb.close()
        return {"best_perf": self.best_perf, "perf": perf, "metrics": metrics, "history": self.history,
                "nonfinite_steps": self.nonfinite_total, "output_dir": self.paths.output_dir}

    def _end_of_epoch(self, epoch: int, perf: float) -> None:
        weights = ckpt_io.bare_state_dict(self.eval_model())
        is_best = math.isfinite(perf) and perf > self.best_perf and ckpt_io.state_is_finite(weights)
        if math.isfinite(perf) and perf > self.best_perf and not is_best:
            logger.warning("epoch %d: %s %.4f but the weights hold NaN/Inf: not saved as best", epoch,
                           self.validator.perf_name, perf)
        if is_best:
            self.best_perf, self.best_state = perf, weights
        if self.info.is_main:
            if is_best:
                ckpt_io.save_weights(weights, os.path.join(self.paths.output_dir, ckpt_io.BEST_NAME))
            state = ckpt_io.build_checkpoint(
                epoch=epoch + 1, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler, perf=perf,
                best_perf=self.best_perf, best_state_dict=self.best_state, scaler=self.scaler, ema=self.ema,
                config_yaml=self.cfg.dump(), extra={"history": self.history})
            ckpt_io.atomic_save(state, self.ckpt_path)
            def fmt(ap: float) -> str:
                return f"{ap:.4f}" if ap >= 0 else "n/a"

            logger.info("=> saving checkpoint to %s (epoch %d, last validated %s %s, best %s)", self.ckpt_path,
                        epoch + 1, self.validator.perf_name, fmt(perf), fmt(self.best_perf))
        barrier()


class _Window:
    """Per-iteration loss and PCK of one epoch, held on the device between print windows: `flush` reads a window
    back in one host transfer (and one all-reduce under DDP for the logged global loss)."""

    def __init__(self):
        self.losses: List[float] = []
        self.counts: List[int] = []
        self.accs: List[float] = []
        self.skipped_images, self.empty_steps = 0, 0
        self._loss: List[torch.Tensor] = []
        self._acc: List[torch.Tensor] = []
        self._sizes: List[int] = []
        self._t0, self._seen = time.time(), 0

    def add(self, out: StepOutput, target: torch.Tensor, batch_size: int) -> None:
        _, avg_acc, _ = accuracy_torch(out.output, target)
        self._loss.append(out.loss.to(torch.float64))
        self._acc.append(torch.where(out.skipped, torch.full_like(avg_acc, float("nan")), avg_acc))
        self._sizes.append(batch_size)
        self._seen += batch_size

    def add_empty(self, device: torch.device) -> None:
        nan = torch.full((), float("nan"), dtype=torch.float64, device=device)
        self._loss.append(nan)
        self._acc.append(nan)
        self._sizes.append(0)

    def flush(self, world_size: int, distributed: bool, device: torch.device) -> Tuple[float, float, float]:
        """Move the pending window to the host lists; returns its (global mean loss, mean PCK, samples/s)."""
        n = len(self._loss)
        values = torch.stack(self._loss + self._acc).tolist() if n else []
        losses, accs = values[:n], values[n:]
        counts = [c if math.isfinite(v) else 0 for v, c in zip(losses, self._sizes)]
        good = [(v, c) for v, c in zip(losses, counts) if c]
        sums = [sum(v * c for v, c in good), float(sum(c for _, c in good)),
                sum(a for a in accs if math.isfinite(a)), float(sum(math.isfinite(a) for a in accs))]
        if distributed:
            sums = all_reduce_sum(torch.tensor(sums, dtype=torch.float64, device=device)).tolist()
        self.losses += losses
        self.accs += accs
        self.counts += counts
        self._loss, self._acc, self._sizes = [], [], []
        now = time.time()
        speed = self._seen * world_size / max(now - self._t0, 1e-9)
        self._t0, self._seen = now, 0
        return (sums[0] / sums[1] if sums[1] else float("nan"), sums[2] / sums[3] if sums[3] else 0.0, speed)


def train(cfg: Any, cfg_path: str) -> Dict[str, Any]:
    """Entry point of tools/train.py."""
    try:
        return Trainer(cfg, cfg_path).fit()
    finally:
        close_logging()
