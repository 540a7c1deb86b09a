"""Distributed training and evaluation with 2 gloo processes on CPU (torch.multiprocessing.spawn, env://).

Loss curve: torch's SyncBatchNorm runs on GPUs only, so on CPU each process normalises with its own batch statistics,
which differ from one process's statistics over the global batch. To compare exactly, the training set holds every
sample twice, in adjacent positions, and is not shuffled: one process sees global batches [a, a, b, b, c, c, d, d],
each of two processes sees [a, b, c, d]. Batch means and (biased) variances are then the same, and so are the
averaged gradients, so the curves agree up to float summation order. That noise is amplified from step to step by
this tiny, freshly initialised network (BN channels with near-zero variance): in ONE process, 1 vs 2 intra-op
threads already move the 4th loss by ~1e-3 relative. Tolerances: step 1 rtol 1e-6, step 2 (one update, which
changes the loss by >1%, so a wrong gradient scale would show) rtol 1e-5, the whole curve rtol 1e-2 (measured: 0,
3e-7, 7e-6, 1e-4). This pins the sampler sharding, DDP gradient averaging and the cross-process loss bookkeeping.
Evaluation: the same weights evaluated by 2 processes (7 val samples, so the DistributedSampler pads one) give
exactly the single-process AP, because evaluator states are gathered and de-duplicated by sample index.
"""

import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from torch.utils.data import Subset

from hrnet_pose.datasets.build import build_dataset
from hrnet_pose.engine.distributed import cleanup
from hrnet_pose.engine.trainer import Trainer
from hrnet_pose.engine.validate import evaluate_model_file

from engine_testlib import tiny_train_cfg

NO_AUG = ["DATASET.FLIP", "False", "DATASET.SCALE_FACTOR", "0.0", "DATASET.ROT_FACTOR", "0",
          "DATASET.PROB_HALF_BODY", "0.0", "TRAIN.SHUFFLE", "False", "TRAIN.END_EPOCH", "2"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _doubled_train_set(cfg):
    base = build_dataset(cfg, "train")
    unique = min(len(base), 8)
    return Subset(base, [i // 2 for i in range(2 * unique)])


def _run(root, out, batch, model_file):
    cfg = tiny_train_cfg(root, out, NO_AUG + ["TRAIN.BATCH_SIZE_PER_GPU", str(batch)])
    result = Trainer(cfg, "tiny.yaml", train_dataset=_doubled_train_set(cfg)).fit()
    eval_cfg = tiny_train_cfg(root, out, NO_AUG + ["TEST.MODEL_FILE", model_file or
                                                   os.path.join(result["output_dir"], "final_state.pth")])
    metrics = evaluate_model_file(eval_cfg, "tiny_eval.yaml")
    return result, metrics


def _worker(rank, world, port, root, out, model_file):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    try:
        _run(root, out, 4, model_file)
    finally:
        cleanup()


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="needs torch.distributed with gloo")
def test_two_processes_match_one(tiny_synthetic_root, tmp_path):
    single, single_metrics = _run(tiny_synthetic_root, str(tmp_path / "one"), 8, "")
    ref_model = os.path.join(single["output_dir"], "final_state.pth")

    mp.spawn(_worker, args=(2, _free_port(), tiny_synthetic_root, str(tmp_path / "two"), ref_model), nprocs=2,
             join=True)
    two_dir = single["output_dir"].replace(str(tmp_path / "one"), str(tmp_path / "two"))
    with open(os.path.join(two_dir, "history.json")) as f:
        history = json.load(f)
    two_eval_dir = single_metrics["output_dir"].replace(str(tmp_path / "one"), str(tmp_path / "two"))
    with open(os.path.join(two_eval_dir, "metrics.json")) as f:
        two_metrics = json.load(f)

    one_curve = [v for rec in single["history"] for v in rec["loss_curve"]]
    two_curve = [v for rec in history for v in rec["loss_curve"]]
    assert len(one_curve) == len(two_curve) == 4
    assert two_curve[0] == pytest.approx(one_curve[0], rel=1e-6)  # same weights, data and BN statistics
    assert two_curve[1] == pytest.approx(one_curve[1], rel=1e-5)  # after one DDP-averaged update
    assert abs(one_curve[1] - one_curve[0]) > 0.01 * one_curve[0]  # ... which changed the loss by over 1%
    assert two_curve == pytest.approx(one_curve, rel=1e-2)

    # same weights, 1 vs 2 processes: the padded duplicate is dropped, the kept results and all stats are identical
    # (the tiny model's AP is near 0 after 4 steps, so the results themselves are compared too)
    assert two_metrics["num_instances"] == single_metrics["num_instances"] == 7
    for key in ("AP", "Ap .5", "AP .75", "AP (M)", "AP (L)", "AR", "AR .5", "AR .75", "AR (M)", "AR (L)"):
        assert two_metrics[key] == single_metrics[key], key
    results = []
    for d in (single_metrics["output_dir"], two_eval_dir):
        with open(os.path.join(d, "results", "keypoints_val_results_0.json")) as f:
            results.append(json.load(f))
    assert len(results[0]) == len(results[1]) > 0
    for a, b in zip(*results):
        assert a["image_id"] == b["image_id"] and a["center"] == b["center"]
        assert a["keypoints"] == pytest.approx(b["keypoints"], abs=1e-4) and a["score"] == pytest.approx(b["score"])
