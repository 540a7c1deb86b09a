"""The training loop behind `tools/train.py`: one process or many (torchrun, DDP), AMP, EMA, resume, validation.

Per epoch: re-seed from (ENGINE.SEED, epoch, rank) and shard/shuffle the data with a sampler seeded the same way (so
a resumed run sees exactly the data of an uninterrupted one), train with the non-finite guard, validate every
TEST.INTERVAL epochs and after the last, and write `checkpoint.pth` atomically on rank 0. A batch is
input [B,3,H,W], target [B,K,H/4,W/4], target_weight [B,K,1], meta; the loss is the official JointsMSELoss.
Every process takes every step together: a batch with no readable image on any process skips that step everywhere.
At start, a warning states the global batch when the number of processes differs from len(GPUS).
"""

import contextlib
import logging
import math
import os
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..codecs.heatmap import build_codec
from ..datasets.build import build_dataloader, build_dataset
from ..evaluation.pck import accuracy
from ..fileio import write_json_atomic
from ..models import CheckpointMismatchError, build_model
from ..models.loss import build_loss
from . import checkpoint as ckpt_io
from .debug import save_debug_images
from .distributed import DistInfo, all_gather_object, any_true, barrier, broadcast_object, init_distributed
from .optim import ModelEma, build_optimizer, build_scheduler
from .outputs import TensorBoard, close_logging, dump_config, log_config, run_paths, setup_logging
from .validate import Validator, autocast_context

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
            raise ValueError(f"ENGINE.AMP is {cfg.ENGINE.AMP!r}; valid: {list(_AMP_MODES)}")
        self.cfg = cfg
        self.info = init_distributed(cfg.ENGINE.DIST_BACKEND, cfg.ENGINE.DEVICE)
        self.device = self.info.device
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
        seed_everything(epoch_seed(cfg.ENGINE.SEED, -1, self.info.rank))

        self.codec = build_codec(cfg)
        model = build_model(cfg, is_train=True)
        if cfg.ENGINE.SYNC_BN and self.info.distributed:
            if self.device.type == "cuda":
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            else:
                logger.warning("ENGINE.SYNC_BN ignored: torch's SyncBatchNorm runs on GPUs only; on CPU each "
                               "process normalises with its own batch statistics")
        mem = torch.channels_last if cfg.ENGINE.CHANNELS_LAST else torch.contiguous_format
        self.model = model.to(self.device, memory_format=mem)
        self.loss_fn = build_loss(cfg).to(self.device)
        self.train_set = train_dataset if train_dataset is not None else build_dataset(cfg, "train", self.codec)
        self.val_set = val_dataset if val_dataset is not None else build_dataset(cfg, "val", self.codec)
        self.train_loader = make_train_loader(cfg, self.train_set, self.info)
        self.val_loader = build_dataloader(cfg, self.val_set, "val", distributed=self.info.distributed,
                                           world_size=self.info.world_size, rank=self.info.rank)
        self.optimizer = build_optimizer(cfg, self.model)
        self.scheduler = build_scheduler(cfg, self.optimizer)
        self.scaler = torch.amp.GradScaler(self.device.type) if cfg.ENGINE.AMP == "fp16" else None
        self.ema = ModelEma(self.model, cfg.ENGINE.EMA_DECAY) if cfg.ENGINE.EMA_DECAY > 0 else None
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
        self._buffers = [b for b in self.model.buffers()]
        self._buffer_backup = [b.detach().clone() for b in self._buffers]
        self.nonfinite_total, self._nonfinite_run = 0, 0
        self.global_step = self.begin_epoch * len(self.train_loader)

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

    # ------------------------------------------------------------------ one step
    def _step(self, images: torch.Tensor, target: torch.Tensor, weight: torch.Tensor):
        """Forward/backward/update; returns (loss, output) or None when the step was skipped as non-finite."""
        cfg = self.cfg
        if self._buffers:
            torch._foreach_copy_(self._buffer_backup, self._buffers)
        with autocast_context(self.device, cfg.ENGINE.AMP):
            output = self.net(images)
        loss = self.loss_fn(output.float(), target, weight)
        bad = any_true(not bool(torch.isfinite(loss)), self.device)
        if not bad:
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
            else:
                loss.backward()
            if cfg.ENGINE.CLIP_GRAD > 0:
                if self.scaler is not None:
                    self.scaler.unscale_(self.optimizer)
                norm = nn.utils.clip_grad_norm_(self.model.parameters(), cfg.ENGINE.CLIP_GRAD)
                # fp16 overflow is the GradScaler's business (it skips and lowers the scale); elsewhere it is ours
                bad = self.scaler is None and not math.isfinite(float(norm))
        elif self.net is not self.model:
            # DDP expects a backward after every training forward; these gradients are discarded below
            (output.float().sum() * 0.0).backward()
        if bad:
            self.optimizer.zero_grad(set_to_none=True)
            # the forward already ran BN in train mode: undo its running-statistics update
            if self._buffers:
                torch._foreach_copy_(self._buffers, self._buffer_backup)
            self.nonfinite_total += 1
            self._nonfinite_run += 1
            logger.warning("non-finite loss/gradient at iteration %d: step skipped (%d in a row, %d in total)",
                           self.global_step, self._nonfinite_run, self.nonfinite_total)
            if self._nonfinite_run >= cfg.ENGINE.MAX_NONFINITE:
                raise NonFiniteLossError(
                    f"{self._nonfinite_run} consecutive non-finite losses/gradients (ENGINE.MAX_NONFINITE="
                    f"{cfg.ENGINE.MAX_NONFINITE}) at iteration {self.global_step}. Lower TRAIN.LR, add warm-up "
                    f"(ENGINE.WARMUP_ITERS) or ENGINE.CLIP_GRAD, use ENGINE.AMP 'bf16' instead of 'fp16', or check "
                    f"the data for NaN/Inf. The last good checkpoint is {self.ckpt_path}")
            return None
        self._nonfinite_run = 0
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model)
        return loss.detach(), output.detach()

    def train_one_epoch(self, epoch: int) -> Dict[str, float]:
        cfg = self.cfg
        self.net.train()
        losses: List[float] = []
        counts: List[int] = []
        accs, seen, t0 = [], 0, time.time()
        window_seen, window_t0 = 0, t0  # speed over the last PRINT_FREQ window: start-up does not dilute it
        bar = tqdm(self.train_loader, desc=f"train {epoch}", leave=False, dynamic_ncols=True,
                   disable=not (self.info.is_main and cfg.ENGINE.PROGRESS_BAR))
        mem = torch.channels_last if cfg.ENGINE.CHANNELS_LAST else torch.contiguous_format
        skipped, empty_steps = 0, 0
        for i, batch in enumerate(bar):
            # None: every image of this process's batch was unreadable (DATASET.SKIP_BAD_IMAGES). All processes skip
            # the step together; one alone skipping would leave the others waiting in DDP's all-reduce forever.
            if batch is None:
                skipped += int(self.train_loader.batch_size)
            else:
                skipped += int(batch[3].get("num_skipped", 0))
            if any_true(batch is None, self.device):
                empty_steps += 1  # global_step still advances: resume computes it as epoch x len(loader)
                self.global_step += 1
                losses.append(float("nan"))
                counts.append(0)
                continue
            images, target, weight, meta = batch
            lr = self.scheduler.apply(epoch, self.global_step)[0]
            images = images.to(self.device, non_blocking=True, memory_format=mem)
            target = target.to(self.device, non_blocking=True)
            weight = weight.to(self.device, non_blocking=True)
            result = self._step(images, target, weight)
            self.global_step += 1
            if result is None:
                losses.append(float("nan"))
                counts.append(0)
                continue
            loss, output = result
            losses.append(float(loss))
            counts.append(images.shape[0])
            seen += images.shape[0]
            window_seen += images.shape[0]
            _, avg_acc, _ = accuracy(output.float().cpu().numpy(), target.cpu().numpy())
            accs.append(avg_acc)
            bar.set_postfix(loss=f"{losses[-1]:.3e}", lr=f"{lr:.2e}")
            if i % cfg.PRINT_FREQ == 0 or i == len(self.train_loader) - 1:
                now = time.time()
                speed = window_seen * self.info.world_size / max(now - window_t0, 1e-9)
                window_seen, window_t0 = 0, now
                logger.info("Epoch: [%d][%d/%d] Speed %.1f samples/s Loss %.5f Accuracy %.3f lr %.3e",
                            epoch, i, len(self.train_loader), speed, losses[-1], avg_acc, lr)
                self.tb.scalars({"train_loss": losses[-1], "train_acc": avg_acc, "learning_rate": lr,
                                 "throughput": speed}, self.global_step)
                if cfg.DEBUG.DEBUG and self.info.is_main:
                    prefix = os.path.join(self.paths.output_dir, f"train_{i}")
                    save_debug_images(cfg.DEBUG, images, meta, target, output, prefix, cfg.DATASET.COLOR_RGB,
                                      self.tb, self.global_step, "train")
        bar.close()
        # the global per-iteration loss curve (sample-weighted mean over processes) and the skipped-image total
        gathered = all_gather_object((losses, counts, skipped))
        skipped = sum(g[2] for g in gathered)
        if skipped and self.info.is_main:
            logger.warning("epoch %d: %d unreadable training images skipped (DATASET.SKIP_BAD_IMAGES; set it False "
                           "to stop on the first one)", epoch, skipped)
        if empty_steps and self.info.is_main:
            logger.warning("epoch %d: %d steps skipped because a batch had no readable image%s", epoch, empty_steps,
                           " on some process (every process skips them together)" if self.info.distributed else "")
        curve = []
        for it in range(len(losses)):
            n = sum(c[1][it] for c in gathered)
            curve.append(sum(c[0][it] * c[1][it] for c in gathered if c[1][it]) / n if n else float("nan"))
        finite = [v for v in curve if math.isfinite(v)]
        return {"loss": float(np.mean(finite)) if finite else float("nan"), "loss_curve": curve,
                "skipped_images": skipped,
                "acc": float(np.mean(accs)) if accs else 0.0, "lr": float(self.scheduler.get_last_lr()[0]),
                "samples_per_s": seen * self.info.world_size / max(time.time() - t0, 1e-9)}

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
                    perf = float(metrics["AP"])
                    record.update(AP=perf, val_loss=metrics.get("loss"))
                self.history.append(record)
                self._end_of_epoch(epoch, perf)
            final = ckpt_io.bare_state_dict(self.eval_model())
            if self.info.is_main:
                ckpt_io.atomic_save(final, os.path.join(self.paths.output_dir, ckpt_io.FINAL_NAME))
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
            logger.warning("epoch %d: AP %.4f but the weights hold NaN/Inf: not saved as best", epoch, perf)
        if is_best:
            self.best_perf, self.best_state = perf, weights
        if self.info.is_main:
            if is_best:
                ckpt_io.atomic_save(weights, os.path.join(self.paths.output_dir, ckpt_io.BEST_NAME))
            state = ckpt_io.build_checkpoint(
                epoch=epoch + 1, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler, perf=perf,
                best_perf=self.best_perf, best_state_dict=self.best_state, scaler=self.scaler, ema=self.ema,
                config_yaml=self.cfg.dump(), extra={"history": self.history})
            ckpt_io.atomic_save(state, self.ckpt_path)
            def fmt(ap: float) -> str:
                return f"{ap:.4f}" if ap >= 0 else "n/a"

            logger.info("=> saving checkpoint to %s (epoch %d, last validated AP %s, best %s)", self.ckpt_path,
                        epoch + 1, fmt(perf), fmt(self.best_perf))
        barrier()


def train(cfg: Any, cfg_path: str) -> Dict[str, Any]:
    """Entry point of tools/train.py."""
    try:
        return Trainer(cfg, cfg_path).fit()
    finally:
        close_logging()
