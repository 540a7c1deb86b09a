"""AUTO_RESUME: a run stopped after epoch k and resumed ends with bit-identical weights to an uninterrupted run."""

import os

import torch

from hrnet_pose.engine import checkpoint as ckpt_io
from hrnet_pose.engine.trainer import Trainer
from hrnet_pose.evaluation import run_cocoeval

from engine_testlib import tiny_train_cfg

# EMA, weight decay, warm-up and the full official augmentation are on, so their state must be restored too
OPTS = ["ENGINE.EMA_DECAY", "0.9", "TRAIN.WD", "0.0001", "ENGINE.WARMUP_ITERS", "2", "DATASET.PROB_HALF_BODY", "0.3"]


def _load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def _assert_same_state(a, b):
    assert list(a.keys()) == list(b.keys())
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_is_bitwise_identical(tiny_synthetic_root, tmp_path):
    full = Trainer(tiny_train_cfg(tiny_synthetic_root, str(tmp_path / "full"), OPTS), "tiny.yaml").fit()

    part_dir = str(tmp_path / "part")
    stopped = Trainer(tiny_train_cfg(tiny_synthetic_root, part_dir, OPTS + ["TRAIN.END_EPOCH", "2"]), "tiny.yaml")
    stopped.fit()
    ckpt = _load(os.path.join(stopped.paths.output_dir, "checkpoint.pth"))
    assert ckpt["epoch"] == 2
    resumed = Trainer(tiny_train_cfg(tiny_synthetic_root, part_dir, OPTS + ["AUTO_RESUME", "True"]), "tiny.yaml")
    assert resumed.begin_epoch == 2
    result = resumed.fit()
    assert len(result["history"]) == 3  # the resumed history continues the stopped one

    a, b = full["output_dir"], result["output_dir"]
    _assert_same_state(_load(os.path.join(a, "final_state.pth")), _load(os.path.join(b, "final_state.pth")))
    ca, cb = _load(os.path.join(a, "checkpoint.pth")), _load(os.path.join(b, "checkpoint.pth"))
    _assert_same_state(ca["model"], cb["model"])
    _assert_same_state(ca["ema"]["module"], cb["ema"]["module"])
    for sa, sb in zip(ca["optimizer"]["state"].values(), cb["optimizer"]["state"].values()):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
    assert ca["perf"] == cb["perf"] and ca["best_perf"] == cb["best_perf"]
    # the uninterrupted run actually trained: the weights moved away from the stopped run's epoch-2 state
    assert not torch.equal(ckpt["model"]["final_layer.weight"], ca["model"]["final_layer.weight"])


def test_checkpoint_contents(tiny_synthetic_root, tmp_path):
    out = Trainer(tiny_train_cfg(tiny_synthetic_root, str(tmp_path), ["TRAIN.END_EPOCH", "1"]), "tiny.yaml").fit()
    ckpt = _load(os.path.join(out["output_dir"], "checkpoint.pth"))
    for key in ("epoch", "model", "state_dict", "best_state_dict", "perf", "optimizer", "scheduler", "scaler",
                "ema", "best_perf", "rng", "config"):
        assert key in ckpt, key
    assert set(ckpt["rng"]) >= {"torch", "numpy", "python"}
    assert not any(k.startswith("module.") for k in ckpt["state_dict"])
    assert "final_layer.weight" in ckpt["model"]
    assert "TRAIN:" in ckpt["config"]
    best = _load(os.path.join(out["output_dir"], "model_best.pth"))
    final = _load(os.path.join(out["output_dir"], "final_state.pth"))
    assert list(best) == list(ckpt["model"]) == list(final)


def test_amp_channels_last_clipping_and_sgd_on_cpu(tiny_synthetic_root, tmp_path):
    opts = ["TRAIN.END_EPOCH", "1", "ENGINE.AMP", "bf16", "ENGINE.CHANNELS_LAST", "True", "ENGINE.CLIP_GRAD", "1.0",
            "TRAIN.OPTIMIZER", "sgd", "TRAIN.LR", "0.01", "ENGINE.EMA_DECAY", "0.99"]
    trainer = Trainer(tiny_train_cfg(tiny_synthetic_root, str(tmp_path), opts), "tiny.yaml")
    before = ckpt_io.bare_state_dict(trainer.model)
    result = trainer.fit()
    assert result["nonfinite_steps"] == 0 and all(v == v for v in result["history"][0]["loss_curve"])
    final = _load(os.path.join(result["output_dir"], "final_state.pth"))  # the EMA weights
    assert ckpt_io.state_is_finite(final)
    assert not torch.equal(final["final_layer.weight"], before["final_layer.weight"])
    # the AP is pycocotools' own on the keypoints written, and the protocol says the forward ran in bf16
    results_file = os.path.join(result["output_dir"], "results", "keypoints_val_results_0.json")
    ann_file = os.path.join(tiny_synthetic_root, "annotations", "person_keypoints_val.json")
    assert result["perf"] == run_cocoeval(ann_file, results_file)["AP"]
    assert result["metrics"]["forward_precision"] == "bf16" and "forward bf16 autocast" in result["metrics"]["protocol"]
