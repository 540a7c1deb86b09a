"""Under DDP, a batch in which every image is unreadable must not desynchronise the processes.

Two gloo processes on CPU; without shuffling, DistributedSampler deals positions 0, 2, 4, ... to rank 0, so a training
set ordered [bad, good, bad, good, ...] gives rank 0 a first batch of two unreadable images while rank 1's is fine.
If rank 0 alone skipped the step, rank 1 would wait for it in the gradient all-reduce; here both skip it together
and train the second step. A short collective timeout turns a deadlock into a failure instead of a hung test.
"""

import datetime
import glob
import json
import math
import os
import socket
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import Subset

from hrnet_pose.datasets.build import build_dataset
from hrnet_pose.engine.distributed import cleanup
from hrnet_pose.engine.trainer import Trainer

from engine_testlib import tiny_train_cfg

OPTS = ["TRAIN.SHUFFLE", "False", "TRAIN.END_EPOCH", "1", "TRAIN.BATCH_SIZE_PER_GPU", "2", "DATASET.FLIP", "False",
        "DATASET.ROT_FACTOR", "0", "DATASET.SCALE_FACTOR", "0.0"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _datasets(cfg, bad_name):
    train = build_dataset(cfg, "train")
    names = [os.path.basename(rec["image"]) for rec in train.db]
    bad = names.index(bad_name)
    good = [i for i, n in enumerate(names) if n != bad_name][:6]
    order = [bad, good[0], bad, good[1], good[2], good[3], good[4], good[5]]
    return Subset(train, order), Subset(build_dataset(cfg, "val"), [0, 1])


def _worker(rank, world, port, root, out, bad_name):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    # joined here with a short timeout, so a desynchronised collective fails fast (Trainer reuses this group)
    dist.init_process_group("gloo", init_method="env://", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=60))
    try:
        cfg = tiny_train_cfg(root, out, OPTS)
        train_set, val_set = _datasets(cfg, bad_name)
        Trainer(cfg, "tiny.yaml", train_dataset=train_set, val_dataset=val_set).fit()
    finally:
        cleanup()


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed + gloo")
def test_batch_without_readable_images_on_one_rank(root_with_bad_image, tmp_path):
    root, bad_name = root_with_bad_image
    context = mp.spawn(_worker, args=(2, _free_port(), root, str(tmp_path), bad_name), nprocs=2, join=False)
    deadline = time.time() + 300
    while not context.join(timeout=5):
        if time.time() > deadline:
            for p in context.processes:
                p.terminate()
            pytest.fail("the two training processes did not finish: deadlock")

    out_dir = glob.glob(os.path.join(str(tmp_path), "output", "*", "pose_hrnet", "tiny"))[0]
    with open(os.path.join(out_dir, "history.json")) as f:
        record = json.load(f)[0]
    assert record["skipped_images"] == 2  # both images of rank 0's first batch, counted over all processes
    first, second = record["loss_curve"]
    assert math.isnan(first) and math.isfinite(second)  # step 1 skipped by both ranks, step 2 trained by both
    log = open(glob.glob(os.path.join(out_dir, "tiny_*_train.log"))[0]).read()
    assert "1 steps skipped because a batch had no readable image on some process" in log
