"""Config -> dataset and dataloader adapters (the only place where DATASET.*, TEST.*, AUG.* keys are read).

`build_dataset(cfg, split)` gives a `CocoKeypoints` over real COCO (`DATASET.DATASET: coco`) or over the synthetic
COCO-format set (`synthetic`, generated under DATASET.ROOT on first use), or an `MpiiKeypoints` over MPII (`mpii`) or
the synthetic MPII-format set (`synthetic_mpii`, generated likewise); for training with DATASET.SELECT_DATA it
keeps the samples the official `select_data` keeps. `build_dataloader` batches samples (input [B, 3, H, W], target
[B, K, h, w], target_weight [B, K, 1], meta) and drops unreadable images.
"""

import logging
import os
import random
import shutil
import tempfile
from typing import Any, List, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from torch.utils.data._utils.collate import default_collate

from ..config import MPII_DATASETS, check_config
from ..errors import ConfigError
from ..geometry import PIXEL_STD
from ..keypoints import KeypointSetError, get_keypoint_set
from .annotations import DataCheckError, check_keypoint_data, read_keypoint_file
from .coco import CocoKeypoints
from .mpii import MpiiKeypoints
from .public_sets import PUBLIC_DATASETS, public_dataset_files
from .synthetic import DETECTION_FILE, generate_synthetic_coco
from .synthetic_mpii import generate_synthetic_mpii
from .transforms import AugmentationConfig

logger = logging.getLogger(__name__)

DATASET_NAMES = ("coco", "synthetic") + MPII_DATASETS + tuple(PUBLIC_DATASETS)


def augmentation_config(cfg) -> AugmentationConfig:
    """AugmentationConfig from DATASET.{FLIP, SCALE_FACTOR, ROT_FACTOR, PROB_HALF_BODY, ...}, AUG.*, COMPAT.*."""
    return AugmentationConfig(
        flip=bool(cfg.DATASET.FLIP),
        scale_factor=float(cfg.DATASET.SCALE_FACTOR),
        rot_factor=float(cfg.DATASET.ROT_FACTOR),
        prob_half_body=float(cfg.DATASET.PROB_HALF_BODY),
        num_joints_half_body=int(cfg.DATASET.NUM_JOINTS_HALF_BODY),
        half_body_randn=bool(cfg.COMPAT.HALF_BODY_RANDN),
        photometric=bool(cfg.AUG.PHOTOMETRIC),
        brightness=float(cfg.AUG.BRIGHTNESS),
        contrast=float(cfg.AUG.CONTRAST),
        hue_shift=float(cfg.AUG.HUE_SHIFT),
        sat_shift=float(cfg.AUG.SAT_SHIFT),
        blur_prob=float(cfg.AUG.BLUR_PROB),
        noise_prob=float(cfg.AUG.NOISE_PROB),
        prob=float(cfg.AUG.PROB),
    )


def ensure_synthetic(cfg) -> str:
    """Generate the synthetic dataset under DATASET.ROOT unless it is there; atomic (temp dir, then rename)."""
    sc = cfg.SYNTHETIC
    return _generate_once(
        cfg.DATASET.ROOT, os.path.join("annotations", f"person_keypoints_{cfg.DATASET.TEST_SET}.json"),
        lambda out: generate_synthetic_coco(out, sc.NUM_TRAIN_IMAGES, sc.NUM_VAL_IMAGES, seed=sc.SEED,
                                            image_size=tuple(sc.IMAGE_SIZE), max_people=sc.MAX_PEOPLE,
                                            crowd_prob=sc.CROWD_PROB, occluder_prob=sc.OCCLUDER_PROB,
                                            detections=sc.DETECTIONS),
        f"synthetic dataset ({sc.NUM_TRAIN_IMAGES} train / {sc.NUM_VAL_IMAGES} val images, seed {sc.SEED})")


def ensure_synthetic_mpii(cfg) -> str:
    """`ensure_synthetic` for the synthetic MPII-format set (splits 'train' and 'valid', from the SYNTHETIC.* keys
    that apply: SEED, NUM_TRAIN_IMAGES, NUM_VAL_IMAGES, IMAGE_SIZE, MAX_PEOPLE, OCCLUDER_PROB)."""
    sc = cfg.SYNTHETIC
    return _generate_once(
        cfg.DATASET.ROOT, os.path.join("annot", f"{cfg.DATASET.TEST_SET}.json"),
        lambda out: generate_synthetic_mpii(out, sc.NUM_TRAIN_IMAGES, sc.NUM_VAL_IMAGES, seed=sc.SEED,
                                            image_size=tuple(sc.IMAGE_SIZE), max_people=sc.MAX_PEOPLE,
                                            occluder_prob=sc.OCCLUDER_PROB),
        f"synthetic MPII dataset ({sc.NUM_TRAIN_IMAGES} train / {sc.NUM_VAL_IMAGES} valid images, seed {sc.SEED})")


def _generate_once(root: str, marker_rel: str, generate, what: str) -> str:
    """Run `generate(folder)` into a temporary folder beside `root` and rename it to `root`, unless `root` already
    holds `marker_rel`; a non-empty `root` without it is an error (nothing of the user's is overwritten)."""
    marker = os.path.join(root, marker_rel)
    if os.path.isfile(marker):
        return root
    if os.path.isdir(root) and os.listdir(root):
        raise FileExistsError(f"DATASET.ROOT {root} exists but has no {marker}: remove it or point DATASET.ROOT at "
                              "an empty or missing folder to generate the synthetic dataset there")
    parent = os.path.dirname(os.path.abspath(root))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".synthetic-", dir=parent)
    logger.info("generating the %s in %s", what, root)
    try:
        generate(tmp)
        if os.path.isdir(root):
            os.rmdir(root)  # empty (checked above)
        os.rename(tmp, root)
    except OSError:
        # another process (e.g. another rank) finished first: its output is identical, keep it
        if not os.path.isfile(marker):
            raise
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def select_data(db: List[dict], pixel_std: float = PIXEL_STD) -> List[dict]:
    """The official `JointsDataset.select_data` (applied to training sets when DATASET.SELECT_DATA is true).

    A sample is kept when its visible joints' mean lies close to the box centre, in an OKS-like sense:
    ``exp(-|mean_joint - center|^2 / (2 * 0.2^2 * area)) > 0.2 / 16 * (num_visible - 1) + 0.45`` with
    ``area = scale_w * scale_h * 200^2``; samples without a visible joint are dropped. Records need joints_3d [K, 3],
    joints_3d_vis [K, 3], center [2] and scale [2]; the kept records are returned in their order.
    """
    if not db:
        return []
    joints = np.stack([np.asarray(r["joints_3d"], dtype=np.float64)[:, :2] for r in db])  # [N, K, 2]
    vis = np.stack([np.asarray(r["joints_3d_vis"])[:, 0] for r in db]) > 0  # [N, K]
    centers = np.stack([np.asarray(r["center"], dtype=np.float64) for r in db])  # [N, 2]
    scales = np.stack([np.asarray(r["scale"], dtype=np.float32) for r in db])  # [N, 2]
    num_vis = vis.sum(axis=1)
    joint_center = (joints * vis[..., None]).sum(axis=1) / np.maximum(num_vis, 1)[:, None]
    # float32 like the official records, so the comparison below tips the same way on the same data
    area = (scales[:, 0] * scales[:, 1] * np.float32(pixel_std ** 2)).astype(np.float64)
    dist2 = ((joint_center - centers) ** 2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ks = np.exp(-dist2 / (0.2 ** 2 * 2.0 * area))
    metric = (0.2 / 16) * num_vis + 0.45 - 0.2 / 16
    keep = (num_vis > 0) & (ks > metric)
    return [r for r, k in zip(db, keep) if k]


def build_dataset(cfg, split: str, codec: Any = None) -> Dataset:
    """`split` 'train' (DATASET.TRAIN_SET, augmented; DATASET.SELECT_DATA applies) or 'val' (DATASET.TEST_SET; GT
    or detector boxes)."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    check_config(cfg)  # DATASET.DATA_FORMAT 'zip' and friends, for configs not made by load_config/update_config
    name = str(cfg.DATASET.DATASET).lower()
    if name not in DATASET_NAMES:
        raise ConfigError(f"DATASET.DATASET {cfg.DATASET.DATASET!r} is not supported; valid: {list(DATASET_NAMES)}")
    if codec is None:
        from ..codecs.heatmap import build_codec

        try:
            codec = build_codec(cfg)
        except KeypointSetError:
            codec = None  # a broken keypoint-set yaml: the data check names its problems with the file's
    if name in MPII_DATASETS:
        dataset = build_mpii_dataset(cfg, split, codec)
    elif name in PUBLIC_DATASETS:
        dataset = build_public_dataset(cfg, split, codec)
    else:
        dataset = build_coco_dataset(cfg, split, codec)
    if split == "train" and cfg.DATASET.SELECT_DATA:
        before = len(dataset.db)
        dataset.db = select_data(dataset.db)
        logger.info("DATASET.SELECT_DATA: kept %d of %d training samples (official select_data)", len(dataset.db),
                    before)
    return dataset


def build_mpii_dataset(cfg, split: str, codec: Any) -> MpiiKeypoints:
    """MpiiKeypoints of DATASET.TRAIN_SET / TEST_SET under DATASET.ROOT (`synthetic_mpii`: generated first).
    MPII evaluation uses the annotated boxes: TEST.USE_GT_BBOX and TEST.COCO_BBOX_FILE do not apply."""
    if cfg.DATASET.IMAGE_CACHE_DIR:
        raise ConfigError(f"DATASET.IMAGE_CACHE_DIR is {cfg.DATASET.IMAGE_CACHE_DIR!r}, but the image cache needs the "
                         "image sizes of a COCO annotation file; MPII annotations have none: set it to ''")
    if str(cfg.DATASET.DATASET).lower() == "synthetic_mpii":
        ensure_synthetic_mpii(cfg)
    return MpiiKeypoints(keypoint_set=cfg.DATASET.KEYPOINT_SET or "mpii", **_sampling_kwargs(cfg, split, codec))


def build_coco_dataset(cfg, split: str, codec: Any) -> CocoKeypoints:
    """CocoKeypoints of DATASET.TRAIN_SET / TEST_SET (`synthetic`: generated first), GT or detector boxes."""
    name = str(cfg.DATASET.DATASET).lower()
    bbox_file = cfg.TEST.COCO_BBOX_FILE
    if name == "synthetic":
        ensure_synthetic(cfg)
        if not bbox_file:
            bbox_file = os.path.join(cfg.DATASET.ROOT, "person_detection_results", DETECTION_FILE)
    kwargs = _sampling_kwargs(cfg, split, codec)
    ann_file, image_dir = custom_paths(cfg, split)
    path = ann_file or os.path.join(cfg.DATASET.ROOT, "annotations", f"person_keypoints_{kwargs['image_set']}.json")
    data = None
    if os.path.isfile(path):  # else CocoKeypoints raises its error with the expected layout
        data = read_keypoint_file(path, str(cfg.DATASET.CATEGORY))
        check_data(cfg, data, path, warn=split == "val")
    return CocoKeypoints(keypoint_set=cfg.DATASET.KEYPOINT_SET, use_gt_bbox=bool(cfg.TEST.USE_GT_BBOX),
                         bbox_file=bbox_file, image_thre=float(cfg.TEST.IMAGE_THRE),
                         image_cache_dir=str(cfg.DATASET.IMAGE_CACHE_DIR), ann_file=ann_file or None,
                         image_dir=image_dir or None, category=str(cfg.DATASET.CATEGORY), annotations=data, **kwargs)


def _resolve(root: str, path: str) -> str:
    """A custom path as given when absolute; else under DATASET.ROOT when it exists there, else from the cwd."""
    if not path or os.path.isabs(path) or not root:
        return path
    under_root = os.path.join(root, path)
    return under_root if os.path.exists(under_root) or not os.path.exists(path) else path


def custom_paths(cfg, split: str):
    """(annotation json, image folder) of DATASET.TRAIN_ANNOTATIONS / TRAIN_IMAGES (or TEST_*), '' when unset; a
    set json that does not exist is an error naming the key."""
    ann_key, img_key = ("TRAIN_ANNOTATIONS", "TRAIN_IMAGES") if split == "train" else ("TEST_ANNOTATIONS",
                                                                                        "TEST_IMAGES")
    ann, images = _resolve(cfg.DATASET.ROOT, str(cfg.DATASET[ann_key])), _resolve(cfg.DATASET.ROOT,
                                                                                   str(cfg.DATASET[img_key]))
    if ann and not os.path.isfile(ann):
        raise FileNotFoundError(f"DATASET.{ann_key} {cfg.DATASET[ann_key]!r}: annotation file not found (looked for "
                                f"{ann}; a relative path is looked up under DATASET.ROOT, then from the working "
                                "directory)")
    if images and not os.path.isdir(images):
        raise FileNotFoundError(f"DATASET.{img_key} {cfg.DATASET[img_key]!r}: image folder not found (looked for "
                                f"{images})")
    if ann and not images:
        images = os.path.dirname(os.path.abspath(ann))  # the json beside its images, as annotation tools export
        logger.info("DATASET.%s is empty: images are looked up beside %s", img_key, ann)
    return ann, images


def check_data(cfg, data: dict, ann_file: str, warn: bool = True) -> None:
    """The data check before training or evaluation (`annotations.check_keypoint_data`): DataCheckError listing
    every problem of the keypoint set, MODEL.NUM_JOINTS and this annotation file; with `warn`, the warning for a set
    without sigmas."""
    spec = str(cfg.DATASET.KEYPOINT_SET)
    try:
        kset = get_keypoint_set(spec)
    except KeypointSetError as err:
        kset, first = None, err
    problems = check_keypoint_data(data, ann_file, spec, kset, int(cfg.MODEL.NUM_JOINTS))
    if kset is None and not problems:
        raise first
    if problems:
        raise DataCheckError(problems)
    if warn and not kset.sigmas_given:
        logger.warning("keypoint set '%s' (%s) gives no OKS sigmas: every keypoint uses %.4f (the mean of COCO's), so "
                       "its AP is a convention; compare PCK@%g and EPE, or add 'sigmas' to the yaml (COCO measured "
                       "them as the spread of repeated human labels)", kset.name, spec, kset.sigmas[0],
                       float(cfg.TEST.PCK_THRESHOLD))


def build_public_dataset(cfg, split: str, codec: Any) -> CocoKeypoints:
    """COCO-WholeBody, CrowdPose, AP-10K or OCHuman (`datasets.public_sets`) from their usual layout under
    DATASET.ROOT; the keypoint set is the dataset's own unless DATASET.KEYPOINT_SET names another."""
    name = str(cfg.DATASET.DATASET).lower()
    if name == "ochuman" and split == "train":
        raise ConfigError("DATASET.DATASET 'ochuman' has no training split (OCHuman is for evaluation only: val and "
                          "test); train on COCO and evaluate on OCHuman with tools/test.py")
    kwargs = _sampling_kwargs(cfg, split, codec)
    ann_file, image_dir = public_dataset_files(name, kwargs["root"], kwargs["image_set"])
    dataset_cls = PUBLIC_DATASETS[name][0]
    return dataset_cls(keypoint_set=cfg.DATASET.KEYPOINT_SET or name, use_gt_bbox=bool(cfg.TEST.USE_GT_BBOX),
                       bbox_file=cfg.TEST.COCO_BBOX_FILE, image_thre=float(cfg.TEST.IMAGE_THRE),
                       image_cache_dir=str(cfg.DATASET.IMAGE_CACHE_DIR), ann_file=ann_file, image_dir=image_dir,
                       **kwargs)


def _sampling_kwargs(cfg, split: str, codec: Any) -> dict:
    """The keyword arguments every keypoint dataset takes from the config: split, input size, codec, augmentation
    (DATASET.*, MODEL.IMAGE_SIZE, AUG.*, COMPAT.HALF_BODY_RANDN)."""
    is_train = split == "train"
    return {"root": cfg.DATASET.ROOT, "image_set": cfg.DATASET.TRAIN_SET if is_train else cfg.DATASET.TEST_SET,
            "is_train": is_train, "image_size": tuple(cfg.MODEL.IMAGE_SIZE), "codec": codec,
            "transform_cfg": augmentation_config(cfg), "color_rgb": bool(cfg.DATASET.COLOR_RGB),
            "skip_bad_images": bool(cfg.DATASET.SKIP_BAD_IMAGES), "fast_decode": bool(cfg.DATASET.FAST_DECODE)}


def collate_skip_none(batch: List[Any]) -> Optional[Any]:
    """default_collate without the None samples (unreadable images); meta['num_skipped'] counts them.

    An all-None batch gives None, which the training loop skips.
    """
    kept = [b for b in batch if b is not None]
    if not kept:
        return None
    out = default_collate(kept)
    out[3]["num_skipped"] = len(batch) - len(kept)
    return out


def worker_init_fn(worker_id: int) -> None:
    """Seed numpy and `random` in each worker from torch's per-worker seed (torch does not seed numpy)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def build_dataloader(cfg, dataset: Dataset, split: str, distributed: bool = False, world_size: int = 1,
                     rank: int = 0) -> DataLoader:
    """Training: a sampler seeded from ENGINE.SEED (shuffled per TRAIN.SHUFFLE, re-shuffled by `set_epoch`) for any
    world size, so N processes split exactly the global batches one process would see and a resumed run replays the
    same order. Evaluation: ordered, sharded by a DistributedSampler when `distributed`."""
    is_train = split == "train"
    sampler = None
    if is_train:
        sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=bool(cfg.TRAIN.SHUFFLE),
                                     seed=int(cfg.ENGINE.SEED), drop_last=False)
    elif distributed:
        sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=False, drop_last=False)
    batch_size = cfg.TRAIN.BATCH_SIZE_PER_GPU if is_train else cfg.TEST.BATCH_SIZE_PER_GPU
    workers = int(cfg.WORKERS)
    # ENGINE.PERSISTENT_WORKERS / PREFETCH_FACTOR: torch accepts them only with worker processes. Persistent workers
    # are kept for training only (its loader is iterated every epoch; validation runs every TEST.INTERVAL epochs).
    # Off by default: persistent workers keep their RNG across epochs, so a resumed run would augment differently.
    extra = {}
    if workers > 0:
        extra = {"persistent_workers": bool(cfg.ENGINE.PERSISTENT_WORKERS) and is_train,
                 "prefetch_factor": int(cfg.ENGINE.PREFETCH_FACTOR)}
    return DataLoader(
        dataset,
        batch_size=int(batch_size),
        sampler=sampler,
        num_workers=workers,
        pin_memory=bool(cfg.PIN_MEMORY) and torch.cuda.is_available(),
        collate_fn=collate_skip_none,
        worker_init_fn=worker_init_fn,
        drop_last=False,
        **extra,
    )
